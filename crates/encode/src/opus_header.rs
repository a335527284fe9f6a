//! The two Ogg Opus header packets (RFC 7845 §5) and the Chronote comments in OpusTags.

use sha2::{Digest, Sha256};
use std::path::Path;

use crate::EncodeError;

const HEAD_MAGIC: &[u8; 8] = b"OpusHead";
const TAGS_MAGIC: &[u8; 8] = b"OpusTags";
const HEAD_LEN: usize = 19;

const KEY_RECORDING_ID: &str = "CHRONOTE_RECORDING_ID";
const KEY_TRACK: &str = "CHRONOTE_TRACK";
const KEY_SEQUENCE: &str = "CHRONOTE_SEQUENCE";
const KEY_START_SAMPLE: &str = "CHRONOTE_START_SAMPLE";
const KEY_START_TIME: &str = "CHRONOTE_START_TIME";
const KEY_ENCODER: &str = "ENCODER";
const ENCODER_NAME: &str = "chronote";

/// Where a segment sits in its recording; stored as OpusTags comments so a file explains itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentTags {
    /// Recording the segment belongs to.
    pub recording_id: String,
    /// Track within the recording (e.g. "mic").
    pub track: String,
    /// Segment number within the track.
    pub sequence: u64,
    /// Timeline position of the first sample, in 48 kHz units.
    pub start_48k: u64,
    /// Wall-clock time of the first sample, RFC 3339.
    pub start_time: String,
}

/// The identification header fields Chronote uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpusHead {
    pub channels: u8,
    pub pre_skip: u16,
    pub input_rate: u32,
}

impl OpusHead {
    /// Version 1, output gain 0, mapping family 0.
    pub fn to_packet(self) -> Vec<u8> {
        let mut p = Vec::with_capacity(HEAD_LEN);
        p.extend_from_slice(HEAD_MAGIC);
        p.push(1);
        p.push(self.channels);
        p.extend_from_slice(&self.pre_skip.to_le_bytes());
        p.extend_from_slice(&self.input_rate.to_le_bytes());
        p.extend_from_slice(&0i16.to_le_bytes());
        p.push(0);
        p
    }

    /// Parses an identification header; the reason string explains a refusal.
    pub fn parse(packet: &[u8]) -> Result<Self, String> {
        if packet.len() < HEAD_MAGIC.len() || &packet[..HEAD_MAGIC.len()] != HEAD_MAGIC {
            return Err("missing OpusHead".into());
        }
        if packet.len() < HEAD_LEN {
            return Err(format!(
                "OpusHead is {} bytes, needs at least {HEAD_LEN}",
                packet.len()
            ));
        }
        let version = packet[8];
        // RFC 7845 §5.1: the upper four bits are the major version; only 0 is understood.
        if version >> 4 != 0 {
            return Err(format!("unsupported OpusHead version {version}"));
        }
        let channels = packet[9];
        let mapping = packet[18];
        if mapping != 0 {
            return Err(format!("unsupported channel mapping family {mapping}"));
        }
        if !(1..=2).contains(&channels) {
            return Err(format!(
                "channel count {channels} is invalid for mapping family 0"
            ));
        }
        Ok(OpusHead {
            channels,
            pre_skip: u16::from_le_bytes([packet[10], packet[11]]),
            input_rate: u32::from_le_bytes([packet[12], packet[13], packet[14], packet[15]]),
        })
    }
}

/// Vendor string written into OpusTags.
pub(crate) fn vendor() -> String {
    format!(
        "chronote-encode {}; {}",
        env!("CARGO_PKG_VERSION"),
        opus::version()
    )
}

/// Comment header with the Chronote comments.
pub(crate) fn tags_packet(tags: &SegmentTags) -> Vec<u8> {
    let comments = [
        format!("{KEY_RECORDING_ID}={}", tags.recording_id),
        format!("{KEY_TRACK}={}", tags.track),
        format!("{KEY_SEQUENCE}={}", tags.sequence),
        format!("{KEY_START_SAMPLE}={}", tags.start_48k),
        format!("{KEY_START_TIME}={}", tags.start_time),
        format!("{KEY_ENCODER}={ENCODER_NAME}"),
    ];
    let vendor = vendor();
    let mut p =
        Vec::with_capacity(64 + vendor.len() + comments.iter().map(String::len).sum::<usize>());
    p.extend_from_slice(TAGS_MAGIC);
    push_string(&mut p, &vendor);
    p.extend_from_slice(&(comments.len() as u32).to_le_bytes());
    for c in &comments {
        push_string(&mut p, c);
    }
    p
}

fn push_string(p: &mut Vec<u8>, s: &str) {
    // Our strings are far below 4 GiB; the cast cannot truncate in practice.
    p.extend_from_slice(&(s.len() as u32).to_le_bytes());
    p.extend_from_slice(s.as_bytes());
}

/// A parsed comment header: vendor and KEY=value pairs in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpusTags {
    pub vendor: String,
    pub comments: Vec<(String, String)>,
}

impl OpusTags {
    pub fn parse(packet: &[u8]) -> Result<Self, String> {
        if packet.len() < TAGS_MAGIC.len() || &packet[..TAGS_MAGIC.len()] != TAGS_MAGIC {
            return Err("missing OpusTags".into());
        }
        let mut rest = &packet[TAGS_MAGIC.len()..];
        let vendor = take_string(&mut rest, "vendor string")?;
        let count = take_u32(&mut rest, "comment count")?;
        // Each comment needs at least its 4-byte length, which bounds a hostile count.
        if count as usize > rest.len() / 4 {
            return Err(format!(
                "OpusTags claims {count} comments in {} bytes",
                rest.len()
            ));
        }
        let mut comments = Vec::with_capacity(count as usize);
        for i in 0..count {
            let c = take_string(&mut rest, "comment")?;
            match c.split_once('=') {
                Some((k, v)) => comments.push((k.to_string(), v.to_string())),
                None => return Err(format!("comment {i} has no '=': {c:?}")),
            }
        }
        Ok(OpusTags { vendor, comments })
    }

    fn get(&self, key: &str) -> Option<&str> {
        // Vorbis comment field names are case-insensitive.
        self.comments
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Extracts the Chronote comments.
    pub fn segment_tags(&self, path: &Path) -> Result<SegmentTags, EncodeError> {
        let text = |key: &str| {
            self.get(key)
                .map(str::to_string)
                .ok_or_else(|| EncodeError::tags(path, format!("missing {key}")))
        };
        let number = |key: &str| -> Result<u64, EncodeError> {
            let v = text(key)?;
            v.parse::<u64>().map_err(|_| {
                EncodeError::tags(path, format!("{key}={v:?} is not an unsigned integer"))
            })
        };
        Ok(SegmentTags {
            recording_id: text(KEY_RECORDING_ID)?,
            track: text(KEY_TRACK)?,
            sequence: number(KEY_SEQUENCE)?,
            start_48k: number(KEY_START_SAMPLE)?,
            start_time: text(KEY_START_TIME)?,
        })
    }
}

fn take_u32(rest: &mut &[u8], what: &str) -> Result<u32, String> {
    if rest.len() < 4 {
        return Err(format!("OpusTags ends inside the {what} length"));
    }
    let v = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    *rest = &rest[4..];
    Ok(v)
}

fn take_string(rest: &mut &[u8], what: &str) -> Result<String, String> {
    let len = take_u32(rest, what)? as usize;
    if rest.len() < len {
        return Err(format!(
            "OpusTags {what} claims {len} bytes but {} remain",
            rest.len()
        ));
    }
    let s = String::from_utf8(rest[..len].to_vec())
        .map_err(|_| format!("OpusTags {what} is not UTF-8"))?;
    *rest = &rest[len..];
    Ok(s)
}

/// Stream serial derived from the segment's identity, so its journal and sealed file (and a
/// repaired file) carry the same serial, while different segments rarely share one.
pub(crate) fn stream_serial(tags: &SegmentTags) -> u32 {
    let mut h = Sha256::new();
    h.update(b"chronote-serial\0");
    h.update(tags.recording_id.as_bytes());
    h.update(b"\0");
    h.update(tags.track.as_bytes());
    h.update(b"\0");
    h.update(tags.sequence.to_le_bytes());
    let d = h.finalize();
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags() -> SegmentTags {
        SegmentTags {
            recording_id: "rec-1".into(),
            track: "mic".into(),
            sequence: 7,
            start_48k: 1_440_000,
            start_time: "2025-01-02T03:04:05.678Z".into(),
        }
    }

    #[test]
    fn head_round_trip_and_layout() {
        let head = OpusHead {
            channels: 1,
            pre_skip: 312,
            input_rate: 16_000,
        };
        let p = head.to_packet();
        assert_eq!(p.len(), 19);
        assert_eq!(&p[..8], b"OpusHead");
        assert_eq!(p[8], 1);
        assert_eq!(&p[10..12], &[0x38, 0x01]);
        assert_eq!(&p[12..16], &16_000u32.to_le_bytes());
        assert_eq!(&p[16..19], &[0, 0, 0]);
        assert_eq!(OpusHead::parse(&p), Ok(head));
    }

    #[test]
    fn bad_heads_are_refused() {
        let good = OpusHead {
            channels: 1,
            pre_skip: 312,
            input_rate: 16_000,
        }
        .to_packet();
        assert_eq!(
            OpusHead::parse(b"\x01vorbis"),
            Err("missing OpusHead".into())
        );
        assert!(OpusHead::parse(&good[..12]).unwrap_err().contains("19"));
        let mut v = good.clone();
        v[8] = 0x10;
        assert!(OpusHead::parse(&v).unwrap_err().contains("version 16"));
        let mut c = good.clone();
        c[9] = 0;
        assert!(OpusHead::parse(&c).unwrap_err().contains("channel count 0"));
        let mut m = good;
        m[18] = 1;
        assert!(
            OpusHead::parse(&m)
                .unwrap_err()
                .contains("mapping family 1")
        );
    }

    #[test]
    fn tags_round_trip() {
        let t = tags();
        let parsed = OpusTags::parse(&tags_packet(&t)).unwrap();
        assert_eq!(parsed.vendor, vendor());
        assert!(parsed.vendor.starts_with("chronote-encode 0.1.0; libopus"));
        assert_eq!(
            parsed.comments,
            vec![
                ("CHRONOTE_RECORDING_ID".into(), "rec-1".into()),
                ("CHRONOTE_TRACK".into(), "mic".into()),
                ("CHRONOTE_SEQUENCE".into(), "7".into()),
                ("CHRONOTE_START_SAMPLE".into(), "1440000".into()),
                (
                    "CHRONOTE_START_TIME".into(),
                    "2025-01-02T03:04:05.678Z".into()
                ),
                ("ENCODER".into(), "chronote".into()),
            ]
        );
        assert_eq!(parsed.segment_tags(Path::new("x")).unwrap(), t);
    }

    #[test]
    fn bad_tags_are_refused() {
        let p = tags_packet(&tags());
        assert_eq!(OpusTags::parse(b"OpusHead"), Err("missing OpusTags".into()));
        for cut in 8..p.len() {
            assert!(OpusTags::parse(&p[..cut]).is_err(), "cut {cut}");
        }
        let mut huge = b"OpusTags".to_vec();
        huge.extend_from_slice(&0u32.to_le_bytes());
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(OpusTags::parse(&huge).unwrap_err().contains("claims"));

        let missing = OpusTags {
            vendor: "v".into(),
            comments: vec![("CHRONOTE_RECORDING_ID".into(), "r".into())],
        };
        let err = missing.segment_tags(Path::new("/s/1.opus")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "segment /s/1.opus: bad Chronote tags: missing CHRONOTE_TRACK"
        );
        let mut bad_number = OpusTags::parse(&p).unwrap();
        bad_number.comments[2].1 = "seven".into();
        let err = bad_number.segment_tags(Path::new("f")).unwrap_err();
        assert!(err.to_string().contains("CHRONOTE_SEQUENCE=\"seven\""));
    }

    #[test]
    fn serial_is_deterministic_and_identity_sensitive() {
        let a = tags();
        assert_eq!(stream_serial(&a), stream_serial(&a.clone()));
        let mut b = a.clone();
        b.sequence += 1;
        assert_ne!(stream_serial(&a), stream_serial(&b));
        let mut c = a.clone();
        c.start_48k += 1;
        assert_eq!(stream_serial(&a), stream_serial(&c));
    }
}
