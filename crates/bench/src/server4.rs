//! Shared by the issue 4 benchmarks (scheduler, overload): an in-process `chronote-server`,
//! recordings, real segments uploaded over tus (creation-with-upload), and `GET /v1/queue`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use chronote_transcribe::testing::FixedLatency;
use chronote_transcribe::{BoxFuture, TranscribeError, TranscribeRequest, Transcriber, Transcript};
use serde::{Deserialize, Serialize};

use crate::ingest::Segment;

/// The one track every benchmark recording has.
pub const TRACK: &str = "mic";

/// A [`FixedLatency`] engine that counts its calls and the time spent inside them.
pub struct Counted {
    inner: FixedLatency,
    calls: AtomicU64,
    nanos: AtomicU64,
}

impl Counted {
    pub fn new(latency: Duration) -> Arc<Counted> {
        Arc::new(Counted {
            inner: FixedLatency::new(latency),
            calls: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
        })
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Acquire)
    }

    /// Summed wall time inside the engine, over every call.
    pub fn engine_time(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }
}

impl Transcriber for Counted {
    fn name(&self) -> &str {
        "fixed-latency"
    }

    fn transcribe(
        &self,
        request: TranscribeRequest,
    ) -> BoxFuture<'_, Result<Transcript, TranscribeError>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.inner.transcribe(request).await;
            let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.nanos.fetch_add(nanos, Ordering::AcqRel);
            self.calls.fetch_add(1, Ordering::AcqRel);
            result
        })
    }
}

pub fn recording_id(meeting: usize) -> String {
    format!("meeting-{meeting:02}")
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

/// `POST /v1/recordings` with the one track.
pub async fn create_recording(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
) -> Result<()> {
    let body = serde_json::json!({
        "id": id,
        "title": format!("processing benchmark {id}"),
        "source": "desktop",
        "tracks": [TRACK],
        "started_at": "2026-01-01T00:00:00.000Z",
    });
    let response = http
        .post(format!("{base}/v1/recordings"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .context("POST /v1/recordings failed")?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        bail!("POST /v1/recordings answered {status}: {text}");
    }
    Ok(())
}

/// Segment `sequence` of recording `id`, placed back to back on the timeline, uploaded whole
/// in its creation request; the server must confirm every byte.
pub async fn upload(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    sequence: u64,
    segment: &Segment,
) -> Result<()> {
    let metadata = [
        ("recording_id", id.to_string()),
        ("track", TRACK.to_string()),
        ("sequence", sequence.to_string()),
        ("start_48k", (sequence * segment.length_48k).to_string()),
        ("length_48k", segment.length_48k.to_string()),
        ("sha256", segment.sha256.clone()),
        ("codec", "opus".to_string()),
    ]
    .iter()
    .map(|(k, v)| format!("{k} {}", b64(v)))
    .collect::<Vec<_>>()
    .join(",");
    let length = segment.bytes.len() as u64;
    let response = http
        .post(format!("{base}/files/"))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", length)
        .header("Upload-Metadata", metadata)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/offset+octet-stream",
        )
        .body(segment.bytes.clone())
        .send()
        .await
        .with_context(|| format!("uploading {id} segment {sequence} failed"))?;
    let status = response.status();
    let offset = response
        .headers()
        .get("upload-offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if status.as_u16() != 201 || offset != Some(length) {
        let text = response.text().await.unwrap_or_default();
        bail!("uploading {id} segment {sequence}: {status}, offset {offset:?}: {text}");
    }
    Ok(())
}

/// One meeting as `GET /v1/queue` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeetingView {
    pub recording_id: String,
    pub received: u64,
    pub transcribed: u64,
    pub backlog: u64,
    pub lag_seconds: f64,
}

#[derive(Debug, Clone, Deserialize)]
struct JobCount {
    kind: String,
    state: String,
    count: u64,
}

/// The parts of `GET /v1/queue` the benchmarks read.
#[derive(Debug, Clone, Deserialize)]
pub struct QueueView {
    jobs: Vec<JobCount>,
    pub meetings: Vec<MeetingView>,
}

impl QueueView {
    pub fn jobs(&self, kind: &str, state: &str) -> u64 {
        self.jobs
            .iter()
            .filter(|j| j.kind == kind && j.state == state)
            .map(|j| j.count)
            .sum()
    }
}

pub async fn queue(http: &reqwest::Client, base: &str, token: &str) -> Result<QueueView> {
    let response = http
        .get(format!("{base}/v1/queue"))
        .bearer_auth(token)
        .send()
        .await
        .context("GET /v1/queue failed")?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("GET /v1/queue answered {status}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("GET /v1/queue answered {text:?}"))
}

/// A copy of a stopped server's data directory: the database copied, the upload blobs
/// hard-linked (transcription only reads them).
pub fn clone_data(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to.join("uploads"))
        .with_context(|| format!("cannot create {}", to.display()))?;
    for name in ["server.db", "server.db-wal"] {
        let src = from.join(name);
        if src.is_file() {
            std::fs::copy(&src, to.join(name))
                .with_context(|| format!("cannot copy {}", src.display()))?;
        }
    }
    let uploads = from.join("uploads");
    for entry in
        std::fs::read_dir(&uploads).with_context(|| format!("cannot list {}", uploads.display()))?
    {
        let entry = entry.with_context(|| format!("cannot list {}", uploads.display()))?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::hard_link(entry.path(), to.join("uploads").join(entry.file_name()))
                .with_context(|| format!("cannot link {}", entry.path().display()))?;
        }
    }
    Ok(())
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

pub fn http() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .context("cannot build the HTTP client")
}
