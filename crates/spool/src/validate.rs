//! Checks on names that end up in file paths or the database.
//!
//! Recording ids and track names become directory names, so they are restricted to characters
//! that cannot form `..`, separators or hidden files; that is what rules out path traversal.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::SpoolError;

/// Recording ids: `[A-Za-z0-9-]{1,64}` (UUIDs fit).
pub fn recording_id(id: &str) -> Result<(), SpoolError> {
    let ok_chars = id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if id.is_empty() || id.len() > 64 || !ok_chars {
        return Err(SpoolError::Invalid {
            what: "recording id",
            value: id.to_string(),
            reason: "must be 1-64 characters of A-Z, a-z, 0-9 and '-'".to_string(),
        });
    }
    Ok(())
}

/// Track names: `[a-z0-9_-]{1,32}`.
pub fn track_name(name: &str) -> Result<(), SpoolError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if name.is_empty() || name.len() > 32 || !ok_chars {
        return Err(SpoolError::Invalid {
            what: "track name",
            value: name.to_string(),
            reason: "must be 1-32 characters of a-z, 0-9, '_' and '-'".to_string(),
        });
    }
    Ok(())
}

/// SHA-256 digests are stored as 64 lowercase hex digits.
pub fn sha256_hex(hex: &str) -> Result<(), SpoolError> {
    let ok = hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !ok {
        return Err(SpoolError::Invalid {
            what: "sha256",
            value: hex.to_string(),
            reason: "must be 64 lowercase hex digits".to_string(),
        });
    }
    Ok(())
}

/// Parses an RFC 3339 timestamp and returns it as Unix milliseconds (for ordering).
pub fn rfc3339_millis(text: &str) -> Result<i64, SpoolError> {
    let t = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| SpoolError::Invalid {
        what: "started_at",
        value: text.to_string(),
        reason: format!("not an RFC 3339 timestamp: {e}"),
    })?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| SpoolError::Invalid {
        what: "started_at",
        value: text.to_string(),
        reason: "out of range".to_string(),
    })
}

/// The current time as Unix milliseconds.
pub fn now_millis() -> i64 {
    // Clamp instead of failing: the clock being past year 292 million is not a spool problem.
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Formats Unix milliseconds as RFC 3339 UTC (for rows shown to people).
pub fn millis_rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{ms}ms"))
}

/// Converts a sample count or byte size to SQLite's signed integer.
pub fn to_i64(value: u64, what: &'static str) -> Result<i64, SpoolError> {
    i64::try_from(value).map_err(|_| SpoolError::Invalid {
        what,
        value: value.to_string(),
        reason: "larger than 2^63-1".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_ids() {
        for ok in [
            "a",
            "0b9d2c1e-7d3f-4c1a-9a55-1f2e3d4c5b6a",
            &"x".repeat(64),
            "ABC-123",
        ] {
            assert!(recording_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "..",
            "a/b",
            "a.b",
            "a b",
            "a_b",
            &"x".repeat(65),
            "é",
            "a\0",
        ] {
            assert!(recording_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn track_names() {
        for ok in ["mic", "system_audio", "user-42", &"a".repeat(32), "0"] {
            assert!(track_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Mic", "..", "a/b", "a.b", &"a".repeat(33), " mic"] {
            assert!(track_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sha256_digests() {
        assert!(sha256_hex(&"0123456789abcdef".repeat(4)).is_ok());
        assert!(sha256_hex(&"0123456789ABCDEF".repeat(4)).is_err());
        assert!(sha256_hex("abc").is_err());
        assert!(sha256_hex(&"g".repeat(64)).is_err());
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_millis("1970-01-01T00:00:01.5Z").unwrap(), 1500);
        assert_eq!(rfc3339_millis("1970-01-01T01:00:00+01:00").unwrap(), 0);
        assert!(rfc3339_millis("yesterday").is_err());
        assert_eq!(millis_rfc3339(1500), "1970-01-01T00:00:01.5Z");
    }
}
