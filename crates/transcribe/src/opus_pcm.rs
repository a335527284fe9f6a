//! Ogg Opus segment bytes to 16 kHz mono `f32`, Whisper's input, with libopus.
//!
//! libopus decodes straight to 16 kHz (it resamples internally) and down-mixes stereo when the
//! decoder is mono, so no resampler is needed here. The length follows RFC 7845: the first
//! `pre_skip` samples (48 kHz units) are encoder delay and are dropped, and the granule
//! position of the last page marks where the audio ends, trimming the padding of the final
//! frame. Both are converted to 16 kHz positions before cutting, so a segment of N samples at
//! 16 kHz decodes to exactly N samples.

use std::io::Cursor;

use opus::{Channels, Decoder};

/// Whisper's sample rate.
pub const WHISPER_RATE: u32 = 16_000;
const GRANULE_RATE: u64 = 48_000;
/// The longest Opus packet is 120 ms.
const MAX_FRAME_16K: usize = 1920;

/// Why a segment could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not an Ogg stream: {0}")]
    Ogg(String),
    #[error("not an Ogg Opus stream: {0}")]
    Head(String),
    #[error("libopus rejected packet {packet}: {message}")]
    Opus { packet: u64, message: String },
}

/// The fields of the OpusHead packet the decoder needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    channels: u8,
    pre_skip: u16,
    /// Q7.8 dB, applied to the output as RFC 7845 asks.
    gain: i16,
}

fn parse_head(p: &[u8]) -> Result<Head, DecodeError> {
    if p.len() < 19 || &p[..8] != b"OpusHead" {
        return Err(DecodeError::Head("the first packet is not OpusHead".into()));
    }
    if p[8] >> 4 != 0 {
        return Err(DecodeError::Head(format!(
            "OpusHead version {} is unsupported",
            p[8]
        )));
    }
    let channels = p[9];
    let family = p[18];
    if family != 0 || !(1..=2).contains(&channels) {
        return Err(DecodeError::Head(format!(
            "channel mapping family {family} with {channels} channels is unsupported \
             (mono or stereo, family 0)"
        )));
    }
    Ok(Head {
        channels,
        pre_skip: u16::from_le_bytes([p[10], p[11]]),
        gain: i16::from_le_bytes([p[16], p[17]]),
    })
}

fn to_16k(pos_48k: u64) -> usize {
    (pos_48k * u64::from(WHISPER_RATE) / GRANULE_RATE) as usize
}

/// Decodes a complete (or torn: it ends at the last intact page) Ogg Opus file.
pub fn decode_16k_mono(bytes: &[u8]) -> Result<Vec<f32>, DecodeError> {
    let mut reader = ogg::PacketReader::new(Cursor::new(bytes));
    let mut next = || -> Result<Option<ogg::Packet>, DecodeError> {
        reader
            .read_packet()
            .map_err(|e| DecodeError::Ogg(e.to_string()))
    };
    let head_packet = next()?.ok_or_else(|| DecodeError::Ogg("the stream is empty".into()))?;
    let serial = head_packet.stream_serial();
    let head = parse_head(&head_packet.data)?;
    match next()? {
        Some(p) if p.data.starts_with(b"OpusTags") => {}
        _ => {
            return Err(DecodeError::Head(
                "the second packet is not OpusTags".into(),
            ));
        }
    }
    // A mono decoder down-mixes a stereo stream itself.
    let mut decoder = Decoder::new(WHISPER_RATE, Channels::Mono)
        .map_err(|e| DecodeError::Head(format!("cannot create the decoder: {e}")))?;
    let mut pcm: Vec<f32> = Vec::new();
    let mut frame = vec![0f32; MAX_FRAME_16K];
    let mut end_granule: Option<u64> = None;
    let mut index = 0u64;
    while let Some(packet) = next()? {
        if packet.stream_serial() != serial {
            // A chained or multiplexed stream; a Chronote segment is one logical stream.
            continue;
        }
        let n = decoder
            .decode_float(&packet.data, &mut frame, false)
            .map_err(|e| DecodeError::Opus {
                packet: index,
                message: e.to_string(),
            })?;
        pcm.extend_from_slice(&frame[..n]);
        index += 1;
        if packet.last_in_page() && packet.absgp_page() != u64::MAX {
            end_granule = Some(packet.absgp_page());
        }
    }
    let start = to_16k(u64::from(head.pre_skip));
    let end = match end_granule {
        Some(g) => to_16k(g).min(pcm.len()),
        None => pcm.len(),
    };
    let mut out = if start < end {
        pcm[start..end].to_vec()
    } else {
        Vec::new()
    };
    if head.gain != 0 {
        let factor = 10f32.powf(f32::from(head.gain) / (256.0 * 20.0));
        for s in &mut out {
            *s *= factor;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_fields_are_read() {
        let mut p = b"OpusHead".to_vec();
        p.extend_from_slice(&[1, 2]);
        p.extend_from_slice(&312u16.to_le_bytes());
        p.extend_from_slice(&16_000u32.to_le_bytes());
        p.extend_from_slice(&(-256i16).to_le_bytes());
        p.push(0);
        assert_eq!(
            parse_head(&p).unwrap(),
            Head {
                channels: 2,
                pre_skip: 312,
                gain: -256
            }
        );
        p[18] = 1;
        assert!(parse_head(&p).unwrap_err().to_string().contains("family 1"));
        assert!(parse_head(b"OpusTags........xxx").is_err());
    }

    #[test]
    fn positions_convert_to_16k_by_flooring() {
        assert_eq!(to_16k(312), 104);
        assert_eq!(to_16k(48_000), 16_000);
        assert_eq!(to_16k(2), 0);
    }

    #[test]
    fn garbage_is_an_ogg_error() {
        let err = decode_16k_mono(b"definitely not an ogg file at all").unwrap_err();
        assert!(matches!(err, DecodeError::Ogg(_)), "{err:?}");
        let err = decode_16k_mono(b"").unwrap_err();
        assert!(matches!(err, DecodeError::Ogg(_)), "{err:?}");
    }
}
