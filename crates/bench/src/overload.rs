//! Lag under overload: meetings upload segments at twice what the transcription provider can
//! take, into an in-process `chronote-server` with a `FixedLatency` engine of latency L and
//! transcribe concurrency C (capacity C / L segments per second). `GET /v1/queue` is sampled
//! every 500 ms: every meeting should fall behind at the same pace, none starves, nothing is
//! dropped.
//!
//! Time is compressed: each segment holds 30 s of audio but a meeting sends one every
//! `meetings / arrival rate` seconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::ingest::{self, Segment};
use crate::server4::{self, Counted, MeetingView};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OverloadPlan {
    pub meetings: usize,
    /// Engine latency per segment.
    pub latency: Duration,
    /// Transcribe concurrency.
    pub concurrency: usize,
    /// Arrival rate over capacity.
    pub factor: f64,
    /// How long segments arrive.
    pub duration: Duration,
    pub sample_every: Duration,
}

impl OverloadPlan {
    /// Segments per second the provider can take: C / L.
    pub fn capacity(&self) -> f64 {
        self.concurrency as f64 / self.latency.as_secs_f64()
    }

    pub fn arrival_rate(&self) -> f64 {
        self.capacity() * self.factor
    }

    /// Workers: twice the concurrency, so a worker committing one result never holds the
    /// provider idle (a slot is freed as soon as the engine answers).
    pub fn workers(&self) -> usize {
        self.concurrency * 2
    }
}

/// One reading of `GET /v1/queue`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    /// Since the first arrival.
    pub at: Duration,
    /// Transcription jobs queued or running.
    pub depth: u64,
    /// Meetings in recording-id order.
    pub meetings: Vec<MeetingView>,
}

impl Sample {
    pub fn received(&self) -> u64 {
        self.meetings.iter().map(|m| m.received).sum()
    }

    pub fn transcribed(&self) -> u64 {
        self.meetings.iter().map(|m| m.transcribed).sum()
    }

    pub fn lags(&self) -> Vec<f64> {
        self.meetings.iter().map(|m| m.lag_seconds).collect()
    }

    /// Largest minus smallest backlog among the meetings, in segments.
    pub fn backlog_spread(&self) -> u64 {
        let max = self.meetings.iter().map(|m| m.backlog).max().unwrap_or(0);
        let min = self.meetings.iter().map(|m| m.backlog).min().unwrap_or(0);
        max - min
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OverloadResult {
    pub meetings: usize,
    pub latency: Duration,
    pub concurrency: usize,
    pub workers: usize,
    pub capacity: f64,
    pub arrival_rate: f64,
    pub duration: Duration,
    pub segment_bytes: u64,
    pub segment_48k: u64,
    pub uploaded: u64,
    /// First scheduled arrival to the last upload confirmed.
    pub arrival_wall: Duration,
    /// Uploads that started later than scheduled by more than one arrival interval.
    pub late_uploads: u64,
    /// Every 500 ms while segments arrive.
    pub samples: Vec<Sample>,
    /// Right after the last upload was confirmed.
    pub end: Sample,
    /// Engine calls by then.
    pub engine_calls_at_end: u64,
    /// After the arrivals: time until every segment was transcribed, and how many were.
    pub drain: Duration,
    pub transcribed_after_drain: u64,
}

pub fn bench(plan: OverloadPlan) -> Result<OverloadResult> {
    if plan.meetings == 0 || plan.concurrency == 0 || plan.latency.is_zero() {
        bail!("the overload benchmark needs meetings, concurrency and a latency");
    }
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let segment = ingest::make_segment(dir.path())?;
    let data = dir.path().join("server");
    let token = chronote_server::create_token(&data, "bench")
        .context("cannot create a token for the benchmark server")?;
    let runtime = server4::runtime()?;
    runtime.block_on(run(plan, &data, &token, segment))
}

async fn run(
    plan: OverloadPlan,
    data: &std::path::Path,
    token: &str,
    segment: Segment,
) -> Result<OverloadResult> {
    let engine = Counted::new(plan.latency);
    let mut config = chronote_server::ServerConfig::new(data);
    config.listen = ([127, 0, 0, 1], 0).into();
    let p = &mut config.processing;
    p.transcriber = Some(engine.clone() as Arc<dyn chronote_transcribe::Transcriber>);
    p.workers = plan.workers();
    p.transcribe_limits.concurrency = plan.concurrency;
    // Capacity is C / L alone: no rate limits.
    p.transcribe_limits.requests_per_minute = f64::INFINITY;
    p.transcribe_limits.audio_seconds_per_minute = f64::INFINITY;
    let server = chronote_server::bind(config)
        .await
        .context("cannot start the in-process chronote-server")?;
    let base = format!("http://{}", server.local_addr());
    let http = server4::http()?;
    for m in 0..plan.meetings {
        server4::create_recording(&http, &base, token, &server4::recording_id(m)).await?;
    }
    let interval = Duration::from_secs_f64(1.0 / plan.arrival_rate());
    let total = (plan.duration.as_secs_f64() * plan.arrival_rate()).round() as u64;
    let t0 = tokio::time::Instant::now() + Duration::from_millis(200);
    eprintln!(
        "overload: {} meetings, {total} segments at {:.1}/s into capacity {:.1}/s (L = {} ms, C = {})",
        plan.meetings,
        plan.arrival_rate(),
        plan.capacity(),
        plan.latency.as_millis(),
        plan.concurrency
    );
    // Arrival k goes to meeting k mod M at t0 + k x interval, each upload its own task.
    let mut uploads = Vec::new();
    for k in 0..total {
        let (http, base, token) = (http.clone(), base.clone(), token.to_string());
        let segment = segment.clone();
        let meetings = plan.meetings as u64;
        let due = t0 + interval.mul_f64(k as f64);
        uploads.push(tokio::spawn(async move {
            tokio::time::sleep_until(due).await;
            let late = tokio::time::Instant::now().saturating_duration_since(due) > interval;
            let id = server4::recording_id((k % meetings) as usize);
            server4::upload(&http, &base, &token, &id, k / meetings, &segment)
                .await
                .map(|()| late)
        }));
    }
    let sampler = {
        let (http, base, token) = (http.clone(), base.clone(), token.to_string());
        let every = plan.sample_every;
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval_at(t0 + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let at = tick.tick().await;
                match sample(&http, &base, &token, at.saturating_duration_since(t0)).await {
                    Ok(s) => samples.push(s),
                    Err(e) => return Err(e),
                }
                if at.saturating_duration_since(t0) >= plan.duration {
                    return Ok(samples);
                }
            }
        })
    };
    let mut late_uploads = 0;
    for u in uploads {
        if u.await.context("an upload task panicked")?? {
            late_uploads += 1;
        }
    }
    let arrival_wall = t0.elapsed();
    let end = sample(&http, &base, token, arrival_wall).await?;
    let engine_calls_at_end = engine.calls();
    let samples = sampler.await.context("the sampler panicked")??;
    eprintln!(
        "overload: arrivals done after {:.2} s: {} received, {} transcribed, depth {}",
        arrival_wall.as_secs_f64(),
        end.received(),
        end.transcribed(),
        end.depth
    );
    // Nothing is dropped: everything received is transcribed once the arrivals stop.
    let drain_started = Instant::now();
    let limit = plan
        .duration
        .mul_f64(plan.factor * 2.0)
        .max(Duration::from_secs(30));
    let transcribed_after_drain = loop {
        let q = server4::queue(&http, &base, token).await?;
        let done = q.jobs("transcribe", "done");
        if done >= total || drain_started.elapsed() > limit {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let drain = drain_started.elapsed();
    server
        .shutdown()
        .await
        .context("the benchmark server failed")?;
    Ok(OverloadResult {
        meetings: plan.meetings,
        latency: plan.latency,
        concurrency: plan.concurrency,
        workers: plan.workers(),
        capacity: plan.capacity(),
        arrival_rate: plan.arrival_rate(),
        duration: plan.duration,
        segment_bytes: segment.bytes.len() as u64,
        segment_48k: segment.length_48k,
        uploaded: total,
        arrival_wall,
        late_uploads,
        samples,
        end,
        engine_calls_at_end,
        drain,
        transcribed_after_drain,
    })
}

async fn sample(http: &reqwest::Client, base: &str, token: &str, at: Duration) -> Result<Sample> {
    let q = server4::queue(http, base, token).await?;
    let mut meetings = q.meetings.clone();
    meetings.sort_by(|a, b| a.recording_id.cmp(&b.recording_id));
    Ok(Sample {
        at,
        depth: q.jobs("transcribe", "queued") + q.jobs("transcribe", "running"),
        meetings,
    })
}
