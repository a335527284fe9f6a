//! Ogg Opus to 16 kHz PCM with libopus: exact lengths (pre-skip and end trimming honoured),
//! no added delay, and clear errors for what is not a segment.

mod common;

use chronote_transcribe::opus_pcm::{DecodeError, decode_16k_mono};

fn tone(len: usize, hz: f32) -> Vec<f32> {
    (0..len)
        .map(|i| 0.5 * (2.0 * std::f32::consts::PI * hz * i as f32 / 16_000.0).sin())
        .collect()
}

/// Normalised cross-correlation of `a` against `b` delayed by `lag` samples.
fn ncc(a: &[f32], b: &[f32], lag: i64) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (i, &x) in a.iter().enumerate() {
        let j = i as i64 - lag;
        if j < 0 || j as usize >= b.len() {
            continue;
        }
        let y = f64::from(b[j as usize]);
        ab += f64::from(x) * y;
        aa += f64::from(x) * f64::from(x);
        bb += y * y;
    }
    ab / (aa * bb).sqrt()
}

#[test]
fn decoded_length_is_exact_for_whole_and_partial_frames() {
    let dir = tempfile::tempdir().unwrap();
    // Whole frames, a partial last frame, one sample, and 30 s (a default segment).
    for len in [16_000usize, 16_000 * 3 + 7, 1, 319, 321, 480_000] {
        let pcm = tone(len, 440.0);
        let seg = common::encode_16k(&pcm, dir.path());
        assert_eq!(seg.length_48k, len as u64 * 3);
        let decoded = decode_16k_mono(&seg.bytes).unwrap();
        assert_eq!(decoded.len(), len, "length for {len} samples");
    }
}

#[test]
fn pre_skip_is_removed_so_the_tone_is_not_delayed() {
    let dir = tempfile::tempdir().unwrap();
    // A chirp-like mix so the correlation has one clear peak.
    let pcm: Vec<f32> = (0..32_000)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            0.3 * (2.0 * std::f32::consts::PI * 300.0 * t * (1.0 + t)).sin()
                + 0.2 * (2.0 * std::f32::consts::PI * 1234.0 * t).sin()
        })
        .collect();
    let seg = common::encode_16k(&pcm, dir.path());
    let decoded = decode_16k_mono(&seg.bytes).unwrap();
    assert_eq!(decoded.len(), pcm.len());
    let best = (-40i64..=40)
        .max_by(|&a, &b| ncc(&decoded, &pcm, a).total_cmp(&ncc(&decoded, &pcm, b)))
        .unwrap();
    assert_eq!(best, 0, "decoded audio is shifted by {best} samples");
    assert!(ncc(&decoded, &pcm, 0) > 0.95, "{}", ncc(&decoded, &pcm, 0));
}

#[test]
fn garbage_truncated_and_foreign_streams_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let seg = common::encode_16k(&tone(16_000, 440.0), dir.path());

    let err = decode_16k_mono(b"RIFF\0\0\0\0WAVEfmt not an ogg").unwrap_err();
    assert!(matches!(err, DecodeError::Ogg(_)), "{err}");

    // Header pages only: a valid stream with no audio decodes to nothing.
    let headers = &seg.bytes[..header_len(&seg.bytes)];
    assert_eq!(decode_16k_mono(headers).unwrap().len(), 0);

    // The OpusHead magic broken: an Ogg stream, but not Opus.
    let mut not_opus = seg.bytes.clone();
    let at = find(&not_opus, b"OpusHead").unwrap();
    not_opus[at..at + 8].copy_from_slice(b"VorbisXX");
    let err = decode_16k_mono(&not_opus).unwrap_err();
    // The page CRC no longer matches, which the Ogg layer reports first.
    assert!(
        matches!(err, DecodeError::Ogg(_) | DecodeError::Head(_)),
        "{err}"
    );
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Bytes of the two header pages: everything before the third "OggS".
fn header_len(bytes: &[u8]) -> usize {
    let mut starts = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"OggS")
        .map(|(i, _)| i);
    starts.nth(2).unwrap()
}
