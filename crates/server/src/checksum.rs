//! The tus checksum extension: `Upload-Checksum: <algorithm> <base64 of the raw digest>`.
//!
//! sha1 (required by the spec), sha256 and crc32 (IEEE, the 4-byte big-endian value).

use base64::Engine;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The value of `Tus-Checksum-Algorithm`.
pub const ALGORITHMS: &str = "sha1,sha256,crc32";

/// A parsed `Upload-Checksum` header.
#[derive(Debug, Clone)]
pub struct Expected {
    algorithm: &'static str,
    digest: Vec<u8>,
}

/// A running digest of a request body.
pub enum Hasher {
    Sha1(Sha1),
    Sha256(Sha256),
    // crc32fast uses carry-less multiplication where the CPU has it: a table-driven CRC
    // would be slower than the network on loopback.
    Crc32(crc32fast::Hasher),
}

impl Expected {
    /// Parses the header; an unknown algorithm or a malformed value is the client's error (400).
    pub fn parse(value: &str) -> Result<Expected, ApiError> {
        let (algo, digest) = value.trim().split_once(' ').ok_or_else(|| {
            ApiError::bad_request("Upload-Checksum must be '<algorithm> <base64>'")
        })?;
        let (algorithm, len) = match algo {
            "sha1" => ("sha1", 20),
            "sha256" => ("sha256", 32),
            "crc32" => ("crc32", 4),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unsupported checksum algorithm; supported: {ALGORITHMS}"
                )));
            }
        };
        let digest = base64::engine::general_purpose::STANDARD
            .decode(digest.trim())
            .map_err(|_| ApiError::bad_request("Upload-Checksum digest is not valid base64"))?;
        if digest.len() != len {
            return Err(ApiError::bad_request(format!(
                "Upload-Checksum {algorithm} digest must be {len} bytes"
            )));
        }
        Ok(Expected { algorithm, digest })
    }

    pub fn hasher(&self) -> Hasher {
        match self.algorithm {
            "sha1" => Hasher::Sha1(Sha1::new()),
            "sha256" => Hasher::Sha256(Sha256::new()),
            _ => Hasher::Crc32(crc32fast::Hasher::new()),
        }
    }

    pub fn algorithm(&self) -> &'static str {
        self.algorithm
    }

    pub fn matches(&self, hasher: Hasher) -> bool {
        hasher.finish() == self.digest
    }
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Crc32(c) => c.update(data),
        }
    }

    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Crc32(c) => c.finalize().to_be_bytes().to_vec(),
        }
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xF)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        let mut h = Hasher::Crc32(crc32fast::Hasher::new());
        h.update(b"1234");
        h.update(b"56789");
        assert_eq!(h.finish(), 0xCBF4_3926u32.to_be_bytes().to_vec());
    }

    #[test]
    fn parse_rejects_bad_headers() {
        assert_eq!(Expected::parse("md5 AAAA").unwrap_err().status, 400);
        assert_eq!(Expected::parse("sha1").unwrap_err().status, 400);
        assert_eq!(Expected::parse("sha1 !!!").unwrap_err().status, 400);
        assert_eq!(Expected::parse("crc32 AAAAAAAA").unwrap_err().status, 400);
        assert!(Expected::parse("crc32 AAAAAA==").is_ok());
    }
}
