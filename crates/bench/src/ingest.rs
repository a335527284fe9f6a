//! Ingest: many simulated recorders each uploading one 30 s Ogg Opus segment per round over
//! plain tus 1.0 (creation-with-upload), against `chronote-server` and `@tus/server` 2 with
//! `@tus/file-store`, each in its own process, rounds interleaved (ours, theirs, ours, ...).
//!
//! Time is compressed: a round is what 30 s of wall time would bring (one segment from every
//! recorder), sent as fast as the bounded concurrency allows, and the next round follows at
//! once.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use bytes::Bytes;
use chronote_encode::{EncoderConfig, SegmentTags, SegmentWriter};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::peers::{self, ServerProcess};
use crate::procfs;

/// Audio per segment, the recorder's default.
pub const SEGMENT_SECS: u32 = 30;
/// Request bodies are handed to the client in pieces of this size, so "last byte sent" is the
/// moment the last piece was taken.
const BODY_PIECE: usize = 16 * 1024;
const TRACK: &str = "mic";
/// Errors quoted in the report, at most.
const MAX_QUOTED: usize = 5;

/// How much load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestPlan {
    pub recorders: usize,
    pub rounds: usize,
    /// Requests in flight at once, at most.
    pub concurrency: usize,
}

/// One real segment, sent by every recorder into its own slot.
#[derive(Debug, Clone)]
pub struct Segment {
    pub bytes: Bytes,
    pub length_48k: u64,
    pub sha256: String,
}

/// What one server did under the load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerLoad {
    pub name: String,
    /// Segments the server confirmed complete (offset = length).
    pub segments: u64,
    pub failures: u64,
    pub errors: Vec<String>,
    /// Wall time of each round.
    pub rounds: Vec<Duration>,
    /// Last body byte handed to the client to the final response, every confirmed segment.
    pub latencies: Vec<Duration>,
    /// Segments the server holds afterwards (its API or its store directory).
    pub stored: u64,
    pub rss_idle: u64,
    pub rss_end: u64,
    pub hwm_end: u64,
    /// Largest VmRSS sampled every 100 ms during the rounds.
    pub rss_peak_sampled: u64,
}

impl ServerLoad {
    fn new(name: &str) -> ServerLoad {
        ServerLoad {
            name: name.to_string(),
            segments: 0,
            failures: 0,
            errors: Vec::new(),
            rounds: Vec::new(),
            latencies: Vec::new(),
            stored: 0,
            rss_idle: 0,
            rss_end: 0,
            hwm_end: 0,
            rss_peak_sampled: 0,
        }
    }

    pub fn wall(&self) -> Duration {
        self.rounds.iter().sum()
    }

    pub fn segments_per_sec(&self) -> f64 {
        let secs = self.wall().as_secs_f64();
        if secs > 0.0 {
            self.segments as f64 / secs
        } else {
            f64::NAN
        }
    }

    /// The `q` quantile (0..=1, nearest rank) of the latencies.
    pub fn latency(&self, q: f64) -> Option<Duration> {
        let mut sorted = self.latencies.clone();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort();
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        Some(sorted[rank - 1])
    }

    /// The larger of VmHWM at the end and the sampled peak.
    pub fn peak_rss(&self) -> u64 {
        self.hwm_end.max(self.rss_peak_sampled)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestResult {
    pub recorders: usize,
    pub rounds: usize,
    pub concurrency: usize,
    pub segment_bytes: u64,
    pub segment_48k: u64,
    pub ours: ServerLoad,
    pub theirs: ServerLoad,
    pub node: String,
    pub tus_server: String,
    pub file_store: String,
}

/// Encodes one 30 s segment with the recorder's encoder and default settings (16 kHz, 24 kbit/s
/// VBR). The signal is low-level noise with a few tones, which keeps VBR near its target as
/// room sound does, so the segment is close to 30 s x 24 kbit/s = 90 kB.
pub fn make_segment(dir: &Path) -> Result<Segment> {
    let config = EncoderConfig::default();
    let tags = SegmentTags {
        recording_id: "bench".into(),
        track: TRACK.into(),
        sequence: 0,
        start_48k: 0,
        start_time: "2026-01-01T00:00:00Z".into(),
    };
    let part = dir.join("segment.opus.part");
    let sealed = dir.join("segment.opus");
    let mut writer = SegmentWriter::create(&part, &config, &tags)
        .context("cannot create the benchmark segment")?;
    let n = writer.frame_len();
    let frames = (SEGMENT_SECS * 1000 / config.frame_ms) as usize;
    let rate = config.sample_rate as f32;
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for f in 0..frames {
        let frame: Vec<f32> = (0..n)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let noise = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                let t = (f * n + i) as f32 / rate;
                let tone = (t * 220.0 * std::f32::consts::TAU).sin()
                    + 0.5 * (t * 587.0 * std::f32::consts::TAU).sin();
                0.15 * tone + 0.2 * noise
            })
            .collect();
        writer
            .push_frame(&frame)
            .context("cannot encode the benchmark segment")?;
    }
    let keep = (frames * n) as u64;
    writer
        .seal(&sealed, keep)
        .context("cannot seal the benchmark segment")?;
    let bytes =
        std::fs::read(&sealed).with_context(|| format!("cannot read {}", sealed.display()))?;
    let info = chronote_encode::inspect(&sealed).context("the benchmark segment is invalid")?;
    let sha256 = hex(&Sha256::digest(&bytes));
    Ok(Segment {
        bytes: Bytes::from(bytes),
        length_48k: info.length_48k,
        sha256,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

fn recording_id(recorder: usize) -> String {
    format!("bench-{recorder:05}")
}

/// The Chronote segment metadata (see crates/upload's `segment_metadata`), the same for both
/// servers; `@tus/server` stores it without looking at it.
fn metadata(recorder: usize, sequence: u64, segment: &Segment) -> String {
    let id = recording_id(recorder);
    [
        ("recording_id", id),
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
    .join(",")
}

/// Both servers, the same requests, rounds interleaved.
pub fn bench(plan: IngestPlan) -> Result<IngestResult> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let segment = make_segment(dir.path())?;
    let peers_dir = peers::tus_peers()?;

    let data = dir.path().join("chronote");
    let token = chronote_server::create_token(&data, "bench")
        .context("cannot create a token for the benchmark server")?;
    let ours = peers::start_chronote(&data)?;
    let store = dir.path().join("tus-store");
    std::fs::create_dir_all(&store)
        .with_context(|| format!("cannot create {}", store.display()))?;
    let theirs = peers::start_tus_node(&peers_dir, dir.path(), &store)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let (ours_load, theirs_load) =
        runtime.block_on(run_load(plan, &segment, &token, &ours, &theirs, &store))?;
    ours.stop();
    theirs.stop();
    Ok(IngestResult {
        recorders: plan.recorders,
        rounds: plan.rounds,
        concurrency: plan.concurrency,
        segment_bytes: segment.bytes.len() as u64,
        segment_48k: segment.length_48k,
        ours: ours_load,
        theirs: theirs_load,
        node: peers::node_version(),
        tus_server: peers::npm_version(&peers_dir, "@tus/server"),
        file_store: peers::npm_version(&peers_dir, "@tus/file-store"),
    })
}

async fn run_load(
    plan: IngestPlan,
    segment: &Segment,
    token: &str,
    ours: &ServerProcess,
    theirs: &ServerProcess,
    store: &Path,
) -> Result<(ServerLoad, ServerLoad)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .context("cannot build the HTTP client")?;
    let ours_base = format!("http://{}", ours.addr);
    let theirs_base = format!("http://{}", theirs.addr);
    create_recordings(&http, &ours_base, token, plan).await?;

    let mut a = ServerLoad::new("chronote-server");
    let mut b = ServerLoad::new("@tus/server + @tus/file-store");
    a.rss_idle = procfs::memory_of(ours.pid())?.rss;
    b.rss_idle = procfs::memory_of(theirs.pid())?.rss;
    let sampler = RssSampler::start(vec![ours.pid(), theirs.pid()]);
    for round in 0..plan.rounds {
        let sequence = round as u64;
        for (load, base) in [(&mut a, &ours_base), (&mut b, &theirs_base)] {
            let started = Instant::now();
            // Each request in its own task, so responses are noted as soon as they arrive.
            let results = futures_util::stream::iter(0..plan.recorders)
                .map(|r| {
                    let (http, base, token) = (http.clone(), base.clone(), token.to_string());
                    let segment = segment.clone();
                    tokio::spawn(async move {
                        send_segment(&http, &base, &token, r, sequence, &segment).await
                    })
                })
                .buffer_unordered(plan.concurrency.max(1))
                .collect::<Vec<_>>()
                .await;
            let wall = started.elapsed();
            load.rounds.push(wall);
            for result in results {
                match result.map_err(anyhow::Error::from).and_then(|r| r) {
                    Ok(latency) => {
                        load.segments += 1;
                        load.latencies.push(latency);
                    }
                    Err(e) => {
                        load.failures += 1;
                        if load.errors.len() < MAX_QUOTED {
                            load.errors.push(format!("{e:#}"));
                        }
                    }
                }
            }
            eprintln!(
                "ingest round {}/{}: {} {} segments in {:.2} s",
                round + 1,
                plan.rounds,
                load.name,
                plan.recorders,
                wall.as_secs_f64()
            );
        }
    }
    let peaks = sampler.stop().await;
    for (load, pid, peak) in [
        (&mut a, ours.pid(), peaks.first()),
        (&mut b, theirs.pid(), peaks.get(1)),
    ] {
        let m = procfs::memory_of(pid)?;
        load.rss_end = m.rss;
        load.hwm_end = m.hwm;
        load.rss_peak_sampled = peak.copied().unwrap_or(0);
    }
    a.stored = count_ours(&http, &ours_base, token, plan).await?;
    b.stored = count_store(store, segment.bytes.len() as u64)?;
    Ok((a, b))
}

/// `POST /v1/recordings` for every recorder (not timed; `@tus/server` needs nothing).
async fn create_recordings(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    plan: IngestPlan,
) -> Result<()> {
    let results = futures_util::stream::iter(0..plan.recorders)
        .map(|r| async move {
            let body = serde_json::json!({
                "id": recording_id(r),
                "title": format!("ingest benchmark recorder {r}"),
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
        })
        .buffer_unordered(plan.concurrency.max(1))
        .collect::<Vec<Result<()>>>()
        .await;
    results.into_iter().collect()
}

/// A request body that notes when its last piece was taken by the client.
fn timed_body(bytes: Bytes, last: Arc<Mutex<Option<Instant>>>) -> reqwest::Body {
    let pieces: Vec<Bytes> = (0..bytes.len())
        .step_by(BODY_PIECE)
        .map(|at| bytes.slice(at..(at + BODY_PIECE).min(bytes.len())))
        .collect();
    let stream = futures_util::stream::unfold(
        (pieces.into_iter(), last),
        |(mut pieces, last)| async move {
            let piece = pieces.next();
            if let Ok(mut at) = last.lock() {
                *at = Some(Instant::now());
            }
            piece.map(|p| (Ok::<Bytes, std::io::Error>(p), (pieces, last)))
        },
    );
    reqwest::Body::wrap_stream(stream)
}

fn offset_of(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get("upload-offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// One segment: creation-with-upload, and a PATCH for whatever the creation did not take.
/// Returns the time from the last body byte to the final response.
async fn send_segment(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    recorder: usize,
    sequence: u64,
    segment: &Segment,
) -> Result<Duration> {
    let length = segment.bytes.len() as u64;
    let last = Arc::new(Mutex::new(None));
    let response = http
        .post(format!("{base}/files/"))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", length)
        .header("Upload-Metadata", metadata(recorder, sequence, segment))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/offset+octet-stream",
        )
        .header(reqwest::header::CONTENT_LENGTH, length)
        .body(timed_body(segment.bytes.clone(), last.clone()))
        .send()
        .await
        .context("creation-with-upload failed")?;
    let answered = Instant::now();
    if response.status().as_u16() != 201 {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        bail!("creation-with-upload answered {status}: {text}");
    }
    let offset = offset_of(&response).unwrap_or(0);
    if offset == length {
        return elapsed_since(&last, answered);
    }
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow!("creation answered 201 without a Location"))?;
    let url = reqwest::Url::parse(base)
        .and_then(|b| b.join(location))
        .with_context(|| format!("bad Location {location:?}"))?;
    let last = Arc::new(Mutex::new(None));
    let rest = segment.bytes.slice(offset as usize..);
    let response = http
        .patch(url.clone())
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", offset)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/offset+octet-stream",
        )
        .header(reqwest::header::CONTENT_LENGTH, rest.len() as u64)
        .body(timed_body(rest, last.clone()))
        .send()
        .await
        .with_context(|| format!("PATCH {url} failed"))?;
    let answered = Instant::now();
    if response.status().as_u16() != 204 || offset_of(&response) != Some(length) {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        bail!("PATCH {url} answered {status}: {text}");
    }
    elapsed_since(&last, answered)
}

fn elapsed_since(last: &Mutex<Option<Instant>>, answered: Instant) -> Result<Duration> {
    let sent = last
        .lock()
        .map_err(|_| anyhow!("the body timer was poisoned"))?
        .ok_or_else(|| anyhow!("the client answered before sending the body"))?;
    Ok(answered.saturating_duration_since(sent))
}

/// Segments chronote-server says it received, over every recording.
async fn count_ours(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    plan: IngestPlan,
) -> Result<u64> {
    let counts = futures_util::stream::iter(0..plan.recorders)
        .map(|r| async move {
            let id = recording_id(r);
            let response = http
                .get(format!("{base}/v1/recordings/{id}"))
                .bearer_auth(token)
                .send()
                .await
                .with_context(|| format!("GET /v1/recordings/{id} failed"))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if !status.is_success() {
                bail!("GET /v1/recordings/{id} answered {status}: {text}");
            }
            let value: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("GET /v1/recordings/{id} answered {text:?}"))?;
            Ok(value
                .get("tracks")
                .and_then(|t| t.as_array())
                .map_or(0, |tracks| {
                    tracks
                        .iter()
                        .filter_map(|t| t.get("received").and_then(|n| n.as_u64()))
                        .sum()
                }))
        })
        .buffer_unordered(plan.concurrency.max(1))
        .collect::<Vec<Result<u64>>>()
        .await;
    counts.into_iter().sum()
}

/// Files of exactly the segment's size in `@tus/file-store`'s directory (each upload is a data
/// file plus a `.json` info file).
fn count_store(store: &Path, size: u64) -> Result<u64> {
    let mut n = 0;
    for entry in
        std::fs::read_dir(store).with_context(|| format!("cannot list {}", store.display()))?
    {
        let entry = entry.with_context(|| format!("cannot list {}", store.display()))?;
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".json") {
            continue;
        }
        let meta = entry
            .metadata()
            .with_context(|| format!("cannot stat {}", entry.path().display()))?;
        if meta.is_file() && meta.len() == size {
            n += 1;
        }
    }
    Ok(n)
}

/// Samples VmRSS of some processes every 100 ms on a thread and keeps each one's maximum.
struct RssSampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u64>>,
}

impl RssSampler {
    fn start(pids: Vec<u32>) -> RssSampler {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peaks = vec![0u64; pids.len()];
            loop {
                for (peak, pid) in peaks.iter_mut().zip(&pids) {
                    if let Ok(m) = procfs::memory_of(*pid) {
                        *peak = (*peak).max(m.rss);
                    }
                }
                if flag.load(std::sync::atomic::Ordering::Relaxed) {
                    return peaks;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        RssSampler { stop, thread }
    }

    async fn stop(self) -> Vec<u64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join().unwrap_or_default())
            .await
            .unwrap_or_default()
    }
}
