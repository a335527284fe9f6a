//! Reading sealed segments back with the `ogg` crate's `PacketReader`: validation, tags and
//! decoding.

use std::io::{Cursor, ErrorKind};
use std::path::Path;

use ogg::{OggReadError, PacketReader};
use opus::{Channels, Decoder};

use crate::EncodeError;
use crate::config::GRANULE_RATE;
use crate::fs_util::read_all;
use crate::opus_header::{OpusHead, OpusTags, SegmentTags};
use crate::page_scan::CAPTURE_PATTERN;

/// What [`inspect`] found in a segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Channel count from OpusHead.
    pub channels: u8,
    /// Original input rate from OpusHead (the encoder rate).
    pub input_rate: u32,
    /// Pre-skip in 48 kHz units.
    pub pre_skip: u16,
    /// Granule position of the last page.
    pub final_granule: u64,
    /// Playable length: `final_granule - pre_skip`, 48 kHz units.
    pub length_48k: u64,
    /// Pages including the two header pages.
    pub pages: u64,
    /// Audio packets (header packets not counted).
    pub packets: u64,
    /// File size.
    pub bytes: u64,
    /// OpusTags vendor string.
    pub vendor: String,
    /// OpusTags comments as (key, value), in file order.
    pub tags: Vec<(String, String)>,
    /// The last page carries the end-of-stream flag (always true for a file `inspect` accepts).
    pub eos: bool,
}

/// Checks that `path` is a complete Ogg Opus file as Chronote writes them and describes it.
///
/// Verified: every page CRC (by the `ogg` crate), a single logical stream, OpusHead and
/// OpusTags each alone on their page, granule positions never decreasing, the end-of-stream
/// flag on the last page, and a final granule between pre-skip and the audio carried.
pub fn inspect(path: &Path) -> Result<SegmentInfo, EncodeError> {
    Ok(read_stream(path, false)?.0)
}

/// Decodes a segment with libopus at 48 kHz mono, dropping pre-skip and trimming the end, so
/// the result has exactly [`SegmentInfo::length_48k`] samples.
pub fn decode(path: &Path) -> Result<Vec<f32>, EncodeError> {
    let (info, audio) = read_stream(path, true)?;
    let mut decoder = Decoder::new(GRANULE_RATE, Channels::Mono)
        .map_err(|e| EncodeError::opus("create decoder", e))?;
    // 120 ms at 48 kHz: the longest an Opus packet can be.
    let mut buf = vec![0f32; 5760];
    let pre_skip = usize::from(info.pre_skip);
    let wanted = usize::try_from(info.length_48k)
        .map_err(|_| EncodeError::corrupt(path, "length does not fit in memory"))?;
    let mut out = Vec::with_capacity(pre_skip + wanted + buf.len());
    for (index, packet) in audio.iter().enumerate() {
        let n = decoder
            .decode_float(packet, &mut buf, false)
            .map_err(|source| EncodeError::Decode {
                path: path.to_path_buf(),
                index: index as u64,
                source,
            })?;
        out.extend_from_slice(&buf[..n]);
    }
    if out.len() < pre_skip + wanted {
        return Err(EncodeError::corrupt(
            path,
            format!(
                "decoded {} samples, fewer than pre-skip {pre_skip} + length {wanted}",
                out.len()
            ),
        ));
    }
    out.drain(..pre_skip);
    out.truncate(wanted);
    Ok(out)
}

/// Reads the Chronote comments of a segment file or journal (only its header pages are read).
pub fn read_tags(path: &Path) -> Result<SegmentTags, EncodeError> {
    let bytes = read_all(path)?;
    check_start(path, &bytes)?;
    let mut reader = PacketReader::new(Cursor::new(&bytes[..]));
    let mut pages = 0u64;
    let mut next = || -> Result<Option<ogg::Packet>, EncodeError> {
        let p = reader
            .read_packet()
            .map_err(|e| ogg_error(path, e, pages))?;
        if p.as_ref().is_some_and(|p| p.last_in_page()) {
            pages += 1;
        }
        Ok(p)
    };
    let head = next()?.ok_or_else(|| EncodeError::not_opus(path, "missing OpusHead"))?;
    OpusHead::parse(&head.data).map_err(|r| EncodeError::not_opus(path, r))?;
    let tags = next()?.ok_or_else(|| EncodeError::not_opus(path, "missing OpusTags"))?;
    OpusTags::parse(&tags.data)
        .map_err(|r| EncodeError::not_opus(path, r))?
        .segment_tags(path)
}

fn check_start(path: &Path, bytes: &[u8]) -> Result<(), EncodeError> {
    if bytes.is_empty() {
        return Err(EncodeError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    if bytes.starts_with(CAPTURE_PATTERN) {
        return Ok(());
    }
    if CAPTURE_PATTERN.starts_with(bytes) {
        return Err(EncodeError::Truncated {
            path: path.to_path_buf(),
            reason: format!("only {} bytes", bytes.len()),
        });
    }
    let shown: String = bytes
        .iter()
        .take(4)
        .map(|&b| {
            if b.is_ascii_graphic() {
                char::from(b)
            } else {
                '.'
            }
        })
        .collect();
    let hint = if bytes.starts_with(b"RIFF") {
        " (a RIFF/WAV file)"
    } else {
        ""
    };
    Err(EncodeError::NotOgg {
        path: path.to_path_buf(),
        reason: format!("starts with {shown:?}{hint}, not the capture pattern \"OggS\""),
    })
}

fn ogg_error(path: &Path, e: OggReadError, page: u64) -> EncodeError {
    match e {
        OggReadError::HashMismatch(..) => {
            EncodeError::corrupt(path, format!("page {page} has a bad CRC"))
        }
        OggReadError::ReadError(io) if io.kind() == ErrorKind::UnexpectedEof => {
            EncodeError::Truncated {
                path: path.to_path_buf(),
                reason: format!("file ends inside page {page}"),
            }
        }
        OggReadError::ReadError(io) => EncodeError::io(path, "read", io),
        // Callers checked that the file starts with "OggS", so the reader can only miss the
        // capture pattern when the first page header itself is cut short.
        OggReadError::NoCapturePatternFound => EncodeError::Truncated {
            path: path.to_path_buf(),
            reason: format!("file ends inside page {page}"),
        },
        OggReadError::InvalidStreamStructVer(v) => EncodeError::corrupt(
            path,
            format!("page {page} has unknown stream structure version {v}"),
        ),
        OggReadError::InvalidData => {
            EncodeError::corrupt(path, format!("page {page} breaks the Ogg framing rules"))
        }
    }
}

/// Reads and validates the whole stream; keeps the audio packets if asked to.
fn read_stream(path: &Path, keep_audio: bool) -> Result<(SegmentInfo, Vec<Vec<u8>>), EncodeError> {
    let bytes = read_all(path)?;
    check_start(path, &bytes)?;
    let mut reader = PacketReader::new(Cursor::new(&bytes[..]));

    let mut head: Option<OpusHead> = None;
    let mut tags: Option<OpusTags> = None;
    let mut serial: Option<u32> = None;
    let mut audio = Vec::new();
    let mut packets = 0u64;
    let mut pages = 0u64;
    let mut samples = 0u64;
    let mut granule = 0u64;
    let mut eos = false;

    while let Some(packet) = reader
        .read_packet()
        .map_err(|e| ogg_error(path, e, pages))?
    {
        let page = pages;
        match serial {
            None => serial = Some(packet.stream_serial()),
            Some(s) if s != packet.stream_serial() => {
                return Err(EncodeError::corrupt(
                    path,
                    format!(
                        "page {page} belongs to a second logical stream (serial {:#x}, first was {s:#x})",
                        packet.stream_serial()
                    ),
                ));
            }
            Some(_) => {}
        }
        if eos {
            return Err(EncodeError::corrupt(
                path,
                format!("page {page} follows the end-of-stream page"),
            ));
        }
        let alone = packet.first_in_page() && packet.last_in_page();
        let ends_page = packet.last_in_page();
        let ends_stream = packet.last_in_stream();
        if head.is_none() {
            let h = OpusHead::parse(&packet.data).map_err(|r| EncodeError::not_opus(path, r))?;
            if !alone || !packet.first_in_stream() {
                return Err(EncodeError::corrupt(
                    path,
                    "OpusHead is not alone on the first page",
                ));
            }
            head = Some(h);
        } else if tags.is_none() {
            let t = OpusTags::parse(&packet.data).map_err(|r| EncodeError::not_opus(path, r))?;
            if !packet.last_in_page() {
                return Err(EncodeError::corrupt(
                    path,
                    format!("OpusTags shares page {page} with audio"),
                ));
            }
            tags = Some(t);
        } else {
            let n = opus::packet::get_nb_samples(&packet.data, GRANULE_RATE).map_err(|source| {
                EncodeError::Decode {
                    path: path.to_path_buf(),
                    index: packets,
                    source,
                }
            })?;
            samples += n as u64;
            packets += 1;
            if packet.last_in_page() {
                let g = packet.absgp_page();
                if g < granule {
                    return Err(EncodeError::corrupt(
                        path,
                        format!(
                            "page {page} has granule {g}, less than the previous page's {granule}"
                        ),
                    ));
                }
                granule = g;
            }
            if keep_audio {
                audio.push(packet.data);
            }
        }
        if ends_page {
            pages += 1;
        }
        eos = ends_stream;
    }

    let head = head.ok_or_else(|| EncodeError::not_opus(path, "missing OpusHead"))?;
    let tags = tags.ok_or_else(|| EncodeError::not_opus(path, "missing OpusTags"))?;
    if packets == 0 {
        return Err(EncodeError::corrupt(path, "no audio packets"));
    }
    if !eos {
        return Err(EncodeError::Truncated {
            path: path.to_path_buf(),
            reason: format!(
                "no end-of-stream page after page {}",
                pages.saturating_sub(1)
            ),
        });
    }
    let pre_skip = u64::from(head.pre_skip);
    if granule < pre_skip {
        return Err(EncodeError::corrupt(
            path,
            format!("final granule {granule} is less than pre-skip {pre_skip}"),
        ));
    }
    if granule > samples {
        return Err(EncodeError::corrupt(
            path,
            format!("final granule {granule} exceeds the {samples} samples of audio"),
        ));
    }
    let info = SegmentInfo {
        channels: head.channels,
        input_rate: head.input_rate,
        pre_skip: head.pre_skip,
        final_granule: granule,
        length_48k: granule - pre_skip,
        pages,
        packets,
        bytes: bytes.len() as u64,
        vendor: tags.vendor,
        tags: tags.comments,
        eos,
    };
    Ok((info, audio))
}
