//! The tus 1.0.0 requests, one function each, returning what the server confirmed.
//!
//! Nothing here retries: [`crate::transfer`] decides what to do after a failure. Every request
//! carries `Tus-Resumable: 1.0.0` and, when a token is set, `Authorization: Bearer`.

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use sha2::{Digest, Sha256};

use crate::error::UploadError;
use crate::retry::parse_retry_after;

pub const TUS_VERSION: &str = "1.0.0";
const OFFSET_STREAM: &str = "application/offset+octet-stream";
/// The header with which a Chronote server proves a segment is stored and verified.
pub const RECEIPT_HEADER: &str = "chronote-segment";

/// What `OPTIONS` said the server supports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub versions: Vec<String>,
    pub extensions: Vec<String>,
    pub max_size: Option<u64>,
    pub checksum_algorithms: Vec<String>,
}

impl Capabilities {
    pub fn has_extension(&self, name: &str) -> bool {
        self.extensions.iter().any(|e| e.eq_ignore_ascii_case(name))
    }

    /// Only send `Upload-Checksum` to servers that announce sha256: a server without the
    /// checksum extension may reject an unknown header or, worse, ignore a mismatch silently.
    pub fn checksum_sha256(&self) -> bool {
        self.offers_checksum("sha256")
    }

    /// The cheapest per-request checksum the server offers: crc32 (several GB/s with
    /// hardware support), else sha256. A per-request checksum only guards the transfer; a
    /// segment's end-to-end check is its sha256 in the metadata, verified at completion.
    pub fn fastest_checksum(&self) -> Option<ChecksumAlgorithm> {
        if self.offers_checksum("crc32") {
            Some(ChecksumAlgorithm::Crc32)
        } else if self.offers_checksum("sha256") {
            Some(ChecksumAlgorithm::Sha256)
        } else {
            None
        }
    }

    fn offers_checksum(&self, algorithm: &str) -> bool {
        self.has_extension("checksum")
            && self
                .checksum_algorithms
                .iter()
                .any(|a| a.eq_ignore_ascii_case(algorithm))
    }
}

/// An `Upload-Checksum` algorithm this client can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    Sha256,
    /// IEEE CRC-32, sent as its 4-byte big-endian value.
    Crc32,
}

impl ChecksumAlgorithm {
    /// The `Upload-Checksum` value for `data`: the algorithm and base64 of the raw digest.
    pub fn header_value(self, data: &[u8]) -> String {
        match self {
            ChecksumAlgorithm::Sha256 => format!("sha256 {}", BASE64.encode(Sha256::digest(data))),
            ChecksumAlgorithm::Crc32 => {
                format!(
                    "crc32 {}",
                    BASE64.encode(crc32fast::hash(data).to_be_bytes())
                )
            }
        }
    }
}

/// The answer to a creation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub url: Url,
    /// Present when the server took a body (creation-with-upload) or the upload already existed.
    pub offset: Option<u64>,
    pub receipt: Option<String>,
}

/// The answer to `HEAD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub offset: u64,
    pub length: Option<u64>,
    pub receipt: Option<String>,
}

/// The answer to `PATCH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patched {
    pub offset: u64,
    pub receipt: Option<String>,
}

/// A PATCH body and, when computed ahead, its `Upload-Checksum` value.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub data: Bytes,
    pub checksum: Option<(ChecksumAlgorithm, String)>,
}

impl Chunk {
    /// `data`, with its checksum computed now when an algorithm is given.
    pub fn new(data: Bytes, algorithm: Option<ChecksumAlgorithm>) -> Chunk {
        let checksum = algorithm.map(|a| (a, a.header_value(&data)));
        Chunk { data, checksum }
    }
}

/// A tus endpoint (the creation URL, e.g. `https://host/files/`) with optional bearer auth.
#[derive(Debug, Clone)]
pub struct TusClient {
    http: reqwest::Client,
    files_url: Url,
    token: Option<String>,
    request_timeout: Duration,
    checksum: Option<ChecksumAlgorithm>,
    creation_with_upload: bool,
}

impl TusClient {
    pub fn new(
        http: reqwest::Client,
        files_url: Url,
        token: Option<String>,
        request_timeout: Duration,
    ) -> TusClient {
        TusClient {
            http,
            files_url,
            token,
            request_timeout,
            checksum: None,
            creation_with_upload: true,
        }
    }

    pub fn files_url(&self) -> &Url {
        &self.files_url
    }

    /// Turns `Upload-Checksum: sha256` on PATCH and creation bodies on or off.
    pub fn set_checksum(&mut self, on: bool) {
        self.checksum = on.then_some(ChecksumAlgorithm::Sha256);
    }

    /// Sends `Upload-Checksum` with `algorithm`, or none.
    pub fn set_checksum_algorithm(&mut self, algorithm: Option<ChecksumAlgorithm>) {
        self.checksum = algorithm;
    }

    /// Whether a creation request may carry the first chunk (the server announced
    /// creation-with-upload); on by default, as in every current tus server.
    pub fn set_creation_with_upload(&mut self, on: bool) {
        self.creation_with_upload = on;
    }

    pub fn creation_with_upload(&self) -> bool {
        self.creation_with_upload
    }

    /// Time allowed for one request: the base timeout plus time for the body at a slow
    /// 16 KiB/s, so a big chunk on a poor uplink is not cut while a stalled one still is.
    fn timeout_for(&self, body: usize) -> Duration {
        self.request_timeout + Duration::from_secs((body / 16_384) as u64)
    }

    fn request(&self, method: Method, url: &Url, body: usize) -> RequestBuilder {
        let mut req = self
            .http
            .request(method, url.clone())
            .header("Tus-Resumable", TUS_VERSION)
            .timeout(self.timeout_for(body));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req
    }

    pub async fn options(&self) -> Result<Capabilities, UploadError> {
        let what = format!("OPTIONS {}", self.files_url);
        let resp = send(self.request(Method::OPTIONS, &self.files_url, 0), &what).await?;
        let resp = expect(resp, &[StatusCode::OK, StatusCode::NO_CONTENT], &what).await?;
        let h = resp.headers();
        Ok(Capabilities {
            versions: list(h, "tus-version"),
            extensions: list(h, "tus-extension"),
            max_size: header_text(h, "tus-max-size").and_then(|v| v.parse().ok()),
            checksum_algorithms: list(h, "tus-checksum-algorithm"),
        })
    }

    /// `POST` to the creation URL. With `body`, this is creation-with-upload.
    pub async fn create(
        &self,
        length: u64,
        metadata: &str,
        body: Option<Bytes>,
    ) -> Result<Created, UploadError> {
        let what = format!("POST {}", self.files_url);
        let body_len = body.as_ref().map_or(0, Bytes::len);
        let mut req = self
            .request(Method::POST, &self.files_url, body_len)
            .header("Upload-Length", length);
        if !metadata.is_empty() {
            req = req.header("Upload-Metadata", metadata);
        }
        req = match body {
            Some(body) if !body.is_empty() => {
                let req = req.header("Content-Type", OFFSET_STREAM);
                self.with_checksum(req, &body).body(body)
            }
            _ => req.header("Content-Length", 0),
        };
        let resp = send(req, &what).await?;
        let resp = expect(resp, &[StatusCode::CREATED], &what).await?;
        let h = resp.headers();
        let location = header_text(h, "location").ok_or_else(|| UploadError::Protocol {
            request: what.clone(),
            detail: "201 without a Location header".to_string(),
        })?;
        let url = self
            .files_url
            .join(&location)
            .map_err(|e| UploadError::Protocol {
                request: what.clone(),
                detail: format!("unusable Location {location:?}: {e}"),
            })?;
        let offset = optional_offset(h, &what)?;
        Ok(Created {
            url,
            offset,
            receipt: receipt(h),
        })
    }

    pub async fn head(&self, url: &Url) -> Result<Head, UploadError> {
        let what = format!("HEAD {url}");
        let resp = send(self.request(Method::HEAD, url, 0), &what).await?;
        let resp = expect(resp, &[StatusCode::OK, StatusCode::NO_CONTENT], &what).await?;
        let h = resp.headers();
        let offset = optional_offset(h, &what)?.ok_or_else(|| UploadError::Protocol {
            request: what.clone(),
            detail: "no Upload-Offset header".to_string(),
        })?;
        let length = match header_text(h, "upload-length") {
            Some(v) => Some(v.parse::<u64>().map_err(|_| UploadError::Protocol {
                request: what.clone(),
                detail: format!("bad Upload-Length {v:?}"),
            })?),
            None => None,
        };
        Ok(Head {
            offset,
            length,
            receipt: receipt(h),
        })
    }

    /// The `Upload-Checksum` algorithm of PATCH and creation bodies, if any.
    pub fn checksum(&self) -> Option<ChecksumAlgorithm> {
        self.checksum
    }

    /// PATCH with `chunk` as the body; its sha256 may already be known (hashed ahead, while
    /// the previous chunk was on the wire), else it is computed here if checksums are on.
    pub async fn patch_chunk(
        &self,
        url: &Url,
        offset: u64,
        chunk: Chunk,
    ) -> Result<Patched, UploadError> {
        let Chunk {
            data: body,
            checksum,
        } = chunk;
        let what = format!("PATCH {url} at {offset} ({} bytes)", body.len());
        let req = self
            .request(Method::PATCH, url, body.len())
            .header("Upload-Offset", offset)
            .header("Content-Type", OFFSET_STREAM);
        let req = match checksum {
            Some((algorithm, value)) if self.checksum == Some(algorithm) => {
                req.header("Upload-Checksum", value)
            }
            _ => self.with_checksum(req, &body),
        };
        let req = req.body(body);
        let resp = send(req, &what).await?;
        let resp = expect(resp, &[StatusCode::NO_CONTENT, StatusCode::OK], &what).await?;
        let h = resp.headers();
        let offset = optional_offset(h, &what)?.ok_or_else(|| UploadError::Protocol {
            request: what.clone(),
            detail: "no Upload-Offset header".to_string(),
        })?;
        Ok(Patched {
            offset,
            receipt: receipt(h),
        })
    }

    fn with_checksum(&self, req: RequestBuilder, body: &[u8]) -> RequestBuilder {
        match self.checksum {
            // The checksum extension wants base64 of the raw digest, not hex.
            Some(algorithm) => req.header("Upload-Checksum", algorithm.header_value(body)),
            None => req,
        }
    }
}

/// Encodes `Upload-Metadata`: `key base64(value)` pairs joined by commas; an empty value is
/// sent as the bare key. Keys must be non-empty ASCII without spaces or commas.
pub fn encode_metadata(pairs: &[(String, String)]) -> Result<String, UploadError> {
    let mut out = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        let valid = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b',' && b != b' ');
        if !valid {
            return Err(UploadError::Protocol {
                request: "Upload-Metadata".to_string(),
                detail: format!("invalid metadata key {key:?}"),
            });
        }
        if value.is_empty() {
            out.push(key.clone());
        } else {
            out.push(format!("{key} {}", BASE64.encode(value.as_bytes())));
        }
    }
    Ok(out.join(","))
}

async fn send(req: RequestBuilder, what: &str) -> Result<Response, UploadError> {
    req.send().await.map_err(|source| UploadError::Transport {
        request: what.to_string(),
        source,
    })
}

/// Passes responses with an expected status; turns others into [`UploadError::Status`] with
/// the server's Retry-After and the start of its message.
async fn expect(resp: Response, ok: &[StatusCode], what: &str) -> Result<Response, UploadError> {
    let status = resp.status();
    if ok.contains(&status) {
        return Ok(resp);
    }
    let retry_after = header_text(resp.headers(), "retry-after")
        .and_then(|v| parse_retry_after(&v, SystemTime::now()));
    // The body is only for the message; a cut here must not hide the status.
    let message = match resp.bytes().await {
        Ok(b) => clean_message(&b),
        Err(_) => String::new(),
    };
    Err(UploadError::Status {
        request: what.to_string(),
        status: status.as_u16(),
        retry_after,
        message,
    })
}

/// The first 300 characters of a server message, on one line, control characters dropped, so a
/// hostile server cannot forge log lines or flood the terminal.
fn clean_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    out = out.trim().to_string();
    out
}

fn header_text(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(|v| v.trim().to_string())
}

fn list(h: &HeaderMap, name: &str) -> Vec<String> {
    header_text(h, name)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn optional_offset(h: &HeaderMap, what: &str) -> Result<Option<u64>, UploadError> {
    match header_text(h, "upload-offset") {
        None => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .map(Some)
            .map_err(|_| UploadError::Protocol {
                request: what.to_string(),
                detail: format!("bad Upload-Offset {v:?}"),
            }),
    }
}

/// `Chronote-Segment: received; sha256=<hex>` -> the hex digest (lowercased).
pub fn receipt(h: &HeaderMap) -> Option<String> {
    let text = header_text(h, RECEIPT_HEADER)?;
    parse_receipt(&text)
}

pub fn parse_receipt(text: &str) -> Option<String> {
    let mut parts = text.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("received") {
        return None;
    }
    parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("sha256") {
            let v = v.trim().to_ascii_lowercase();
            (v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())).then_some(v)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_encoding() {
        let pairs = vec![
            ("recording_id".to_string(), "abc".to_string()),
            ("empty".to_string(), String::new()),
            ("track".to_string(), "me".to_string()),
        ];
        assert_eq!(
            encode_metadata(&pairs).unwrap(),
            "recording_id YWJj,empty,track bWU="
        );
        assert!(encode_metadata(&[("a b".into(), "x".into())]).is_err());
        assert!(encode_metadata(&[("a,b".into(), "x".into())]).is_err());
        assert!(encode_metadata(&[(String::new(), "x".into())]).is_err());
        assert_eq!(encode_metadata(&[]).unwrap(), "");
    }

    #[test]
    fn receipts() {
        let hex = "ab".repeat(32);
        assert_eq!(
            parse_receipt(&format!("received; sha256={hex}")),
            Some(hex.clone())
        );
        assert_eq!(
            parse_receipt(&format!("Received;SHA256={}", hex.to_uppercase())),
            Some(hex.clone())
        );
        assert_eq!(parse_receipt(&format!("pending; sha256={hex}")), None);
        assert_eq!(parse_receipt("received; sha256=abc"), None);
        assert_eq!(parse_receipt("received"), None);
    }

    #[test]
    fn messages_are_cleaned() {
        assert_eq!(
            clean_message(b"bad\r\nX-Forged: 1\x1b[31m"),
            "bad  X-Forged: 1 [31m"
        );
        assert_eq!(clean_message(&[b'a'; 1000]).len(), 300);
    }

    #[test]
    fn capabilities_checksum() {
        let mut c = Capabilities {
            extensions: vec!["creation".into(), "checksum".into()],
            checksum_algorithms: vec!["sha1".into(), "sha256".into()],
            ..Capabilities::default()
        };
        assert!(c.checksum_sha256());
        assert_eq!(c.fastest_checksum(), Some(ChecksumAlgorithm::Sha256));
        c.checksum_algorithms.push("crc32".into());
        assert_eq!(c.fastest_checksum(), Some(ChecksumAlgorithm::Crc32));
        c.extensions.pop();
        assert!(!c.checksum_sha256());
        assert_eq!(c.fastest_checksum(), None);
    }

    #[test]
    fn checksum_header_values() {
        // crc32("123456789") is the standard check value 0xCBF43926.
        assert_eq!(
            ChecksumAlgorithm::Crc32.header_value(b"123456789"),
            format!("crc32 {}", BASE64.encode([0xCB, 0xF4, 0x39, 0x26]))
        );
        assert_eq!(
            ChecksumAlgorithm::Sha256.header_value(b"abc"),
            "sha256 ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }
}
