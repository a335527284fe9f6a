//! Shared helpers: an in-process server on 127.0.0.1:0 with two owners, raw TCP requests,
//! real Ogg Opus segments.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use chronote_encode::{EncoderConfig, SegmentTags, SegmentWriter};
use chronote_server::{RunningServer, ServerConfig};
use reqwest::{Method, RequestBuilder, Response};
use sha2::{Digest, Sha256};

pub struct Srv {
    pub addr: SocketAddr,
    pub base: String,
    pub token_a: String,
    pub token_b: String,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    pub server: Option<RunningServer>,
}

impl Srv {
    pub async fn start() -> Srv {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(f: impl FnOnce(&mut ServerConfig)) -> Srv {
        let dir = tempfile::tempdir().unwrap();
        let token_a = chronote_server::create_token(dir.path(), "alice").unwrap();
        let token_b = chronote_server::create_token(dir.path(), "bob").unwrap();
        let mut config = ServerConfig::new(dir.path());
        config.listen = "127.0.0.1:0".parse().unwrap();
        f(&mut config);
        let server = chronote_server::bind(config).await.unwrap();
        let addr = server.local_addr();
        Srv {
            addr,
            base: format!("http://{addr}"),
            token_a,
            token_b,
            dir,
            client: reqwest::Client::new(),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// A request as owner A with Tus-Resumable.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.req_as(Some(&self.token_a), method, path)
    }

    pub fn req_as(&self, token: Option<&str>, method: Method, path: &str) -> RequestBuilder {
        let mut r = self
            .client
            .request(method, self.url(path))
            .header("Tus-Resumable", "1.0.0");
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    }

    /// Creates a plain upload of `length` bytes and returns its Location.
    pub async fn create(&self, length: u64) -> String {
        let r = self
            .req(Method::POST, "/files")
            .header("Upload-Length", length.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        location(&r)
    }

    pub async fn patch(&self, loc: &str, offset: u64, body: Vec<u8>) -> Response {
        self.req(Method::PATCH, loc)
            .header("Upload-Offset", offset.to_string())
            .header("Content-Type", "application/offset+octet-stream")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn head(&self, loc: &str) -> Response {
        self.req(Method::HEAD, loc).send().await.unwrap()
    }

    pub async fn offset(&self, loc: &str) -> u64 {
        let r = self.head(loc).await;
        assert_eq!(r.status(), 200);
        header(&r, "upload-offset").parse().unwrap()
    }

    pub fn blob_path(&self, loc: &str) -> PathBuf {
        blob_path(self.dir.path(), loc)
    }

    pub fn blob(&self, loc: &str) -> Vec<u8> {
        std::fs::read(self.blob_path(loc)).unwrap()
    }

    /// Creates recording `id` for owner A with tracks me/others.
    pub async fn recording(&self, id: &str) {
        let r = self
            .client
            .post(self.url("/v1/recordings"))
            .bearer_auth(&self.token_a)
            .json(&recording_body(id, "Standup"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
}

pub fn blob_path(data: &Path, loc: &str) -> PathBuf {
    let id = loc.rsplit('/').next().unwrap();
    data.join("uploads").join(format!("{id}.bin"))
}

pub fn recording_body(id: &str, title: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id, "title": title, "source": "desktop", "tracks": ["me", "others"],
        "started_at": "2026-01-02T03:04:05Z"
    })
}

pub fn header(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("response has no {name}: {:?}", r.headers()))
        .to_str()
        .unwrap()
        .to_string()
}

pub fn location(r: &Response) -> String {
    header(r, "location")
}

pub fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

pub fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Deterministic pseudo-random bytes.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// A real sealed Ogg Opus segment of `frames` 20 ms frames: (file bytes, length_48k).
pub fn segment(recording: &str, track: &str, sequence: u64, frames: usize) -> (Vec<u8>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("s.opus.part");
    let tags = SegmentTags {
        recording_id: recording.into(),
        track: track.into(),
        sequence,
        start_48k: 0,
        start_time: "2026-01-02T03:04:05Z".into(),
    };
    let mut w = SegmentWriter::create(&part, &EncoderConfig::default(), &tags).unwrap();
    let n = w.frame_len();
    for f in 0..frames {
        let frame: Vec<f32> = (0..n)
            .map(|i| {
                let t = (f * n + i) as f32 / 16_000.0;
                0.3 * (t * 440.0 * std::f32::consts::TAU + sequence as f32).sin()
            })
            .collect();
        w.push_frame(&frame).unwrap();
    }
    let keep = (frames * n) as u64;
    let final_path = dir.path().join("s.opus");
    w.seal(&final_path, keep).unwrap();
    (std::fs::read(&final_path).unwrap(), keep * 3)
}

/// Upload-Metadata for a Chronote segment.
pub fn segment_metadata(
    recording: &str,
    track: &str,
    seq: u64,
    file: &[u8],
    length_48k: u64,
) -> String {
    format!(
        "recording_id {},track {},sequence {},start_48k {},length_48k {},sha256 {},codec {}",
        b64(recording.as_bytes()),
        b64(track.as_bytes()),
        b64(seq.to_string().as_bytes()),
        b64(b"0"),
        b64(length_48k.to_string().as_bytes()),
        b64(sha256_hex(file).as_bytes()),
        b64(b"opus")
    )
}

/// Sends `request` over a fresh TCP connection and returns everything the server answered
/// until it closed the connection (or 5 s passed).
pub fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The server may answer and close before reading everything (e.g. 431): ignore write errors.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw response, 0 if there was none.
pub fn raw_status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Upload-Metadata for a Chronote segment starting at `start_48k` on its track.
pub fn segment_metadata_at(
    recording: &str,
    track: &str,
    seq: u64,
    start_48k: u64,
    file: &[u8],
    length_48k: u64,
) -> String {
    format!(
        "recording_id {},track {},sequence {},start_48k {},length_48k {},sha256 {},codec {}",
        b64(recording.as_bytes()),
        b64(track.as_bytes()),
        b64(seq.to_string().as_bytes()),
        b64(start_48k.to_string().as_bytes()),
        b64(length_48k.to_string().as_bytes()),
        b64(sha256_hex(file).as_bytes()),
        b64(b"opus")
    )
}

/// Creates recording `id` as the owner of `token` with `tracks`, against `base`.
pub async fn create_recording(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    tracks: &[&str],
) {
    let r = client
        .post(format!("{base}/v1/recordings"))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "id": id, "title": "Processing", "source": "desktop", "tracks": tracks,
            "started_at": "2026-01-02T03:04:05Z"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
}

/// Uploads a whole segment in its creation request (creation-with-upload) and checks that
/// the server recorded it as received.
#[allow(clippy::too_many_arguments)]
pub async fn upload_segment(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    recording: &str,
    track: &str,
    seq: u64,
    start_48k: u64,
    file: &[u8],
    length_48k: u64,
) {
    let r = client
        .post(format!("{base}/files"))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", file.len().to_string())
        .header(
            "Upload-Metadata",
            segment_metadata_at(recording, track, seq, start_48k, file, length_48k),
        )
        .header("Content-Type", "application/offset+octet-stream")
        .body(file.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    assert_eq!(header(&r, "upload-offset"), file.len().to_string());
}

/// Stops recording `id` with `final_sequences` (a JSON object of track -> sequence or null).
pub async fn stop_recording(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    finals: serde_json::Value,
) {
    let r = client
        .post(format!("{base}/v1/recordings/{id}/stop"))
        .bearer_auth(token)
        .json(&serde_json::json!({"final_sequences": finals, "ended_at": "2026-01-02T04:04:05Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
}

/// GET `path` as the owner of `token`; (status, JSON body).
pub async fn get_json(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
) -> (u16, serde_json::Value) {
    let r = client
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

/// Polls `check` every 20 ms until it returns Some, or panics after `limit` naming `what`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Rows of `table` in the server database of `data` whose recording is `recording`.
pub fn count_rows(data: &Path, table: &str, recording: &str) -> i64 {
    let conn = rusqlite::Connection::open(data.join("server.db")).unwrap();
    conn.query_row(
        &format!("SELECT COUNT(*) FROM {table} WHERE recording_id = ?1"),
        [recording],
        |r| r.get(0),
    )
    .unwrap()
}
