//! `Upload-Metadata`: comma-separated `key base64value` pairs, and the Chronote segment keys.
//!
//! Values are kept in their base64 form: that is what is stored and echoed in HEAD, so a decoded
//! value (arbitrary bytes) never reaches a header. Only the Chronote keys are decoded, into
//! validated numbers and names.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::db::SegmentSlot;
use crate::error::ApiError;

/// Larger `Upload-Metadata` headers get 431: Chronote needs a few hundred bytes, generic
/// clients a file name.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// Highest sequence number accepted; bounds the "missing" list of the status call.
pub const MAX_SEQUENCE: u64 = 1_000_000;

/// Latest point of a recording's timeline a segment may reach (`start_48k + length_48k`), in
/// 48 kHz samples: 31 days. Far beyond any meeting, yet small enough that every computation on
/// timeline positions (milliseconds, 16 kHz sample positions, window arithmetic) stays many
/// orders of magnitude away from overflow. Without a bound, one segment placed at
/// `start_48k = i64::MAX` would stretch the timeline to 6 million years.
pub const MAX_TIMELINE_48K: u64 = 31 * 24 * 3600 * 48_000;

/// Standard alphabet; some clients drop the padding, which is harmless to accept.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Parsed metadata: (key, canonical base64 value) in the client's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata(pub Vec<(String, String)>);

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic() && b != b',')
}

impl Metadata {
    /// Parses the header value. Empty values (`key` alone or `key ` ) are legal and kept.
    pub fn parse(value: &str) -> Result<Metadata, ApiError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if value.trim().is_empty() {
            return Ok(Metadata(pairs));
        }
        for pair in value.split(',') {
            let pair = pair.trim_matches(' ');
            let (key, encoded) = match pair.split_once(' ') {
                Some((k, v)) => (k, v.trim_matches(' ')),
                None => (pair, ""),
            };
            if !valid_key(key) {
                return Err(ApiError::bad_request(
                    "Upload-Metadata: a key is empty or has characters other than visible ASCII",
                ));
            }
            if encoded.contains(' ') {
                return Err(ApiError::bad_request(format!(
                    "Upload-Metadata: value of {key:?} has a space"
                )));
            }
            let decoded = BASE64.decode(encoded).map_err(|_| {
                ApiError::bad_request(format!("Upload-Metadata: value of {key:?} is not base64"))
            })?;
            if pairs.iter().any(|(k, _)| k == key) {
                return Err(ApiError::bad_request(format!(
                    "Upload-Metadata: duplicate key {key:?}"
                )));
            }
            pairs.push((
                key.to_string(),
                base64::engine::general_purpose::STANDARD.encode(decoded),
            ));
        }
        Ok(Metadata(pairs))
    }

    /// The header value to echo: `key value` pairs, a lone key for an empty value.
    pub fn to_header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    k.clone()
                } else {
                    format!("{k} {v}")
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    fn text(&self, key: &str) -> Result<Option<String>, ApiError> {
        let Some((_, v)) = self.0.iter().find(|(k, _)| k == key) else {
            return Ok(None);
        };
        let bytes = BASE64
            .decode(v)
            .map_err(|_| ApiError::bad_request(format!("Upload-Metadata: {key} is not base64")))?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("Upload-Metadata: {key} is not UTF-8")))
    }

    fn required(&self, key: &str) -> Result<String, ApiError> {
        self.text(key)?.ok_or_else(|| {
            ApiError::bad_request(format!(
                "Upload-Metadata: segment uploads need {key} (recording_id, track, sequence, \
                 start_48k, length_48k, sha256, codec)"
            ))
        })
    }

    fn number(&self, key: &str) -> Result<u64, ApiError> {
        let s = self.required(key)?;
        parse_decimal(&s).ok_or_else(|| {
            ApiError::bad_request(format!("Upload-Metadata: {key} must be a decimal integer"))
        })
    }

    /// The segment slot, if this upload carries `recording_id` (a plain tus upload otherwise).
    pub fn segment(&self) -> Result<Option<SegmentSlot>, ApiError> {
        let Some(recording_id) = self.text("recording_id")? else {
            return Ok(None);
        };
        if !valid_name(&recording_id) {
            return Err(ApiError::bad_request(
                "Upload-Metadata: recording_id must be 1-128 of A-Z a-z 0-9 - _ .",
            ));
        }
        let track = self.required("track")?;
        if !valid_name(&track) {
            return Err(ApiError::bad_request(
                "Upload-Metadata: track must be 1-128 of A-Z a-z 0-9 - _ .",
            ));
        }
        let sequence = self.number("sequence")?;
        if sequence > MAX_SEQUENCE {
            return Err(ApiError::bad_request(format!(
                "Upload-Metadata: sequence above {MAX_SEQUENCE}"
            )));
        }
        let sha256 = self.required("sha256")?.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::bad_request(
                "Upload-Metadata: sha256 must be 64 hex digits",
            ));
        }
        let codec = self.required("codec")?;
        if codec != "opus" {
            return Err(ApiError::bad_request(
                "Upload-Metadata: codec must be \"opus\"",
            ));
        }
        let start_48k = self.number("start_48k")?;
        let length_48k = self.number("length_48k")?;
        check_timeline(start_48k, length_48k)?;
        Ok(Some(SegmentSlot {
            recording_id,
            track,
            sequence,
            sha256,
            start_48k,
            length_48k,
        }))
    }
}

/// Checks that a segment `[start_48k, start_48k + length_48k)` lies within the first
/// [`MAX_TIMELINE_48K`] samples of its recording's timeline; the 400 names the field at fault.
pub fn check_timeline(start_48k: u64, length_48k: u64) -> Result<(), ApiError> {
    const DAYS: u64 = MAX_TIMELINE_48K / (24 * 3600 * 48_000);
    if start_48k >= MAX_TIMELINE_48K {
        return Err(ApiError::bad_request(format!(
            "Upload-Metadata: start_48k must be below {MAX_TIMELINE_48K} ({DAYS} days of 48 kHz \
             audio), got {start_48k}"
        )));
    }
    if length_48k > MAX_TIMELINE_48K {
        return Err(ApiError::bad_request(format!(
            "Upload-Metadata: length_48k must be at most {MAX_TIMELINE_48K} ({DAYS} days of \
             48 kHz audio), got {length_48k}"
        )));
    }
    match start_48k.checked_add(length_48k) {
        Some(end) if end <= MAX_TIMELINE_48K => Ok(()),
        _ => Err(ApiError::bad_request(format!(
            "Upload-Metadata: start_48k + length_48k ({start_48k} + {length_48k}) must be at \
             most {MAX_TIMELINE_48K} ({DAYS} days of 48 kHz audio)"
        ))),
    }
}

/// Recording ids and track names: they appear in URLs and JSON, so a small alphabet.
pub fn valid_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A non-negative decimal integer with digits only (no sign, no spaces) that fits in i64, so
/// it can be stored as is.
pub fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().filter(|&v| v <= i64::MAX as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_and_empty_values() {
        let m = Metadata::parse("filename d29ybGQ=,empty,other ").unwrap();
        assert_eq!(
            m.0,
            vec![
                ("filename".to_string(), "d29ybGQ=".to_string()),
                ("empty".to_string(), String::new()),
                ("other".to_string(), String::new()),
            ]
        );
        assert_eq!(m.to_header(), "filename d29ybGQ=,empty,other");
    }

    #[test]
    fn rejects_duplicates_and_bad_base64() {
        assert_eq!(Metadata::parse("a YQ==,a YQ==").unwrap_err().status, 400);
        assert_eq!(Metadata::parse("a @@@").unwrap_err().status, 400);
        assert_eq!(Metadata::parse(",a YQ==").unwrap_err().status, 400);
        assert_eq!(Metadata::parse("a YQ== YQ==").unwrap_err().status, 400);
    }

    fn segment_with(start: &str, length: &str) -> Result<Option<SegmentSlot>, ApiError> {
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        Metadata::parse(&format!(
            "recording_id {},track {},sequence {},start_48k {},length_48k {},sha256 {},codec {}",
            b("rec"),
            b("me"),
            b("0"),
            b(start),
            b(length),
            b(&"ab".repeat(32)),
            b("opus")
        ))
        .unwrap()
        .segment()
    }

    #[test]
    fn timeline_positions_are_bounded() {
        let max = MAX_TIMELINE_48K;
        assert_eq!(max, 128_563_200_000);
        let ok = segment_with(&(max - 240_000).to_string(), "240000")
            .unwrap()
            .unwrap();
        assert_eq!((ok.start_48k, ok.length_48k), (max - 240_000, 240_000));
        for (start, length, field) in [
            (
                i64::MAX.to_string(),
                "240000".to_string(),
                "start_48k must be below",
            ),
            (max.to_string(), "0".to_string(), "start_48k must be below"),
            (
                u64::MAX.to_string(),
                "240000".to_string(),
                "start_48k must be a decimal",
            ),
            (
                "0".to_string(),
                i64::MAX.to_string(),
                "length_48k must be at most",
            ),
            (
                (max - 240_000).to_string(),
                "240001".to_string(),
                "start_48k + length_48k",
            ),
        ] {
            let e = segment_with(&start, &length).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(e.message.contains(field), "{start}+{length}: {}", e.message);
        }
        assert!(check_timeline(max - 1, 1).is_ok());
        assert!(check_timeline(max - 1, 2).is_err());
        assert!(check_timeline(1, u64::MAX).is_err());
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal("0"), Some(0));
        assert_eq!(parse_decimal("+1"), None);
        assert_eq!(parse_decimal(" 1"), None);
        assert_eq!(parse_decimal("99999999999999999999"), None);
    }
}
