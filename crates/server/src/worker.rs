//! The scheduler and its workers: tokio tasks that claim jobs fairly, respect provider limits,
//! call the engines and commit results fenced by their lease.
//!
//! A worker first takes a free concurrency slot of each provider that is not paused, then
//! claims the next job among the kinds it holds a slot for (so a claimed job never waits for
//! a slot), then waits for rate-limit tokens with its lease being renewed, then calls the
//! engine. Idle workers sleep until a job is queued or finishes, or `poll` passes (retries
//! and expired leases become due without anyone saying so).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chronote_assemble::{Utterance, final_window, next_window, prompt_tail};
use chronote_summarize::{Notes, SummarizeError, SummarizeRequest};
use chronote_transcribe::{TimedText, TranscribeError, TranscribeRequest, Transcript};
use rand::RngCore;
use tokio::sync::{Notify, OwnedSemaphorePermit, watch};
use tokio::task::JoinHandle;

use crate::db::{JobChange, JobRow, RecordingRow, SegmentProgress};
use crate::error::ServerError;
use crate::jobs::{JobEvent, JobKind, JobState};
use crate::limits::ProviderGate;
use crate::processing::ProcessingConfig;
use crate::progress::{self, Progress};
use crate::{AppState, now_ms};

/// Shared by every worker of one server.
pub(crate) struct Scheduler {
    state: AppState,
    config: Arc<ProcessingConfig>,
    transcribe_gate: ProviderGate,
    summarize_gate: ProviderGate,
    /// The meeting served last: round-robin continues after it.
    cursor: Mutex<Option<(i64, String)>>,
}

/// Why a job attempt ended without a normal result.
enum Outcome {
    /// Committed (or fenced: another worker owns the job now).
    Finished,
    RateLimited(Option<Duration>),
    Transient(String),
    Permanent(String),
    /// Not ready (finalization waiting for segments); run again at this time.
    Later(i64),
}

impl From<TranscribeError> for Outcome {
    fn from(e: TranscribeError) -> Self {
        match e {
            TranscribeError::RateLimited { retry_after } => Outcome::RateLimited(retry_after),
            TranscribeError::Transient(m) => Outcome::Transient(m),
            TranscribeError::Permanent(m) => Outcome::Permanent(m),
        }
    }
}

impl From<SummarizeError> for Outcome {
    fn from(e: SummarizeError) -> Self {
        match e {
            SummarizeError::RateLimited { retry_after } => Outcome::RateLimited(retry_after),
            SummarizeError::Transient(m) => Outcome::Transient(m),
            SummarizeError::Permanent(m) => Outcome::Permanent(m),
        }
    }
}

impl From<ServerError> for Outcome {
    fn from(e: ServerError) -> Self {
        // Our own database or disk failing: worth another attempt later.
        Outcome::Transient(e.to_string())
    }
}

fn new_token() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Starts `config.workers` workers; they stop when `stop` turns true.
pub(crate) fn start(state: AppState, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let config = state.config.processing.clone();
    if config.transcriber.is_none() && config.summarizer.is_none() {
        return Vec::new();
    }
    let scheduler = Arc::new(Scheduler {
        transcribe_gate: ProviderGate::new("transcribe", config.transcribe_limits),
        summarize_gate: ProviderGate::new("summarize", config.summarize_limits),
        config: Arc::new(config.clone()),
        state,
        cursor: Mutex::new(None),
    });
    (0..config.workers.max(1))
        .map(|_| tokio::spawn(worker(scheduler.clone(), stop.clone())))
        .collect()
}

async fn worker(s: Arc<Scheduler>, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let wake = s.state.wake.clone();
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match s.next().await {
            Ok(Some((job, token, slot))) => {
                s.run(job, token, slot).await;
                s.state.wake.notify_waiters();
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "claiming a job failed"),
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep(s.config.poll) => {}
            _ = stop.changed() => return,
        }
    }
}

fn notify(wake: &Notify) {
    wake.notify_waiters();
}

impl Scheduler {
    fn gate(&self, kind: JobKind) -> &ProviderGate {
        match kind {
            JobKind::Transcribe => &self.transcribe_gate,
            JobKind::Summarize | JobKind::Finalize => &self.summarize_gate,
        }
    }

    /// Claims the next job the free slots allow, with its lease token and slot.
    async fn next(&self) -> Result<Option<(JobRow, String, OwnedSemaphorePermit)>, ServerError> {
        let t_slot = self
            .config
            .transcriber
            .as_ref()
            .and_then(|_| self.transcribe_gate.try_slot());
        let s_slot = self
            .config
            .summarizer
            .as_ref()
            .and_then(|_| self.summarize_gate.try_slot());
        let mut kinds = Vec::new();
        if t_slot.is_some() {
            kinds.push(JobKind::Transcribe);
        }
        if s_slot.is_some() {
            kinds.push(JobKind::Summarize);
            kinds.push(JobKind::Finalize);
        }
        if kinds.is_empty() {
            return Ok(None);
        }
        let token = new_token();
        let node = self.config.node.clone();
        let lease = ms(self.config.lease);
        let cursor = self
            .cursor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let claim_token = token.clone();
        let job = self
            .state
            .db(move |db| {
                db.claim_next(
                    now_ms(),
                    &node,
                    &claim_token,
                    lease,
                    &kinds,
                    cursor.as_ref(),
                )
            })
            .await?;
        let Some(job) = job else {
            return Ok(None);
        };
        if job.kind != JobKind::Finalize {
            *self.cursor.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((job.owner_id, job.recording_id.clone()));
        }
        let slot = match job.kind {
            JobKind::Transcribe => t_slot,
            JobKind::Summarize | JobKind::Finalize => s_slot,
        };
        let Some(slot) = slot else {
            return Err(ServerError::Corrupt(format!(
                "claimed job {} of a kind without a slot",
                job.id
            )));
        };
        tracing::debug!(job = job.id, kind = job.kind.as_str(), recording = %job.recording_id, "claimed");
        Ok(Some((job, token, slot)))
    }

    /// Runs one claimed job to the end of its attempt, renewing its lease meanwhile.
    async fn run(self: &Arc<Self>, job: JobRow, token: String, slot: OwnedSemaphorePermit) {
        let renewer = {
            let state = self.state.clone();
            let lease = self.config.lease;
            let (id, token) = (job.id, token.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval((lease / 3).max(Duration::from_millis(50)));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let t = token.clone();
                    let expiry = now_ms().saturating_add(ms(lease));
                    match state.db(move |db| db.renew_lease(id, &t, expiry)).await {
                        Ok(JobChange::Applied(_)) => {}
                        Ok(JobChange::Fenced) => {
                            tracing::warn!(job = id, "lease lost while running");
                            return;
                        }
                        Err(e) => tracing::error!(job = id, error = %e, "lease renewal failed"),
                    }
                }
            })
        };
        let outcome = match job.kind {
            JobKind::Transcribe => self.transcribe(&job, &token, slot).await,
            JobKind::Summarize => self.summarize(&job, &token, slot).await,
            JobKind::Finalize => self.finalize(&job, &token, slot).await,
        };
        renewer.abort();
        if let Err(e) = self.settle(&job, &token, outcome).await {
            tracing::error!(job = job.id, error = %e, "recording a job outcome failed");
        }
    }

    /// Records how an attempt ended: retry with backoff, requeue after a 429, or give up.
    async fn settle(&self, job: &JobRow, token: &str, outcome: Outcome) -> Result<(), ServerError> {
        let now = now_ms();
        let provider = self.gate(job.kind).name;
        let (event, next, error) = match outcome {
            Outcome::Finished => return Ok(()),
            Outcome::Later(at) => (JobEvent::Requeue, at, None),
            Outcome::RateLimited(after) => {
                let pause = after.unwrap_or(self.config.default_rate_limit_pause);
                self.gate(job.kind).pause(pause);
                self.state.metrics.add(
                    "chronote_provider_rate_limited_total",
                    vec![("provider", provider.into())],
                    1.0,
                );
                tracing::warn!(
                    job = job.id,
                    ?pause,
                    provider,
                    "rate limited: provider paused"
                );
                (
                    JobEvent::Requeue,
                    now.saturating_add(ms(pause)),
                    Some("rate limited".to_string()),
                )
            }
            Outcome::Transient(m) => {
                self.state.metrics.add(
                    "chronote_provider_errors_total",
                    vec![("provider", provider.into()), ("class", "transient".into())],
                    1.0,
                );
                let attempts = job.attempts.saturating_add(1);
                tracing::warn!(job = job.id, attempts, error = %m, "attempt failed");
                (
                    JobEvent::Fail {
                        attempts,
                        max_attempts: self.config.max_attempts,
                    },
                    now.saturating_add(ms(self.config.backoff(attempts))),
                    Some(m),
                )
            }
            Outcome::Permanent(m) => {
                self.state.metrics.add(
                    "chronote_provider_errors_total",
                    vec![("provider", provider.into()), ("class", "permanent".into())],
                    1.0,
                );
                tracing::warn!(job = job.id, error = %m, "job failed permanently");
                (JobEvent::GiveUp, now, Some(m))
            }
        };
        let (id, t) = (job.id, token.to_string());
        let change = self
            .state
            .db(move |db| db.end_attempt(id, &t, event, next, error.as_deref(), now))
            .await?;
        if let JobChange::Applied(JobState::Dead) = change {
            tracing::error!(job = job.id, kind = job.kind.as_str(), "job is dead");
            if job.kind == JobKind::Transcribe {
                // A dead segment counts as finished: processing moves on without it.
                self.after_segment(job.owner_id, &job.recording_id, now)
                    .await?;
            }
        }
        Ok(())
    }

    async fn transcribe(&self, job: &JobRow, token: &str, slot: OwnedSemaphorePermit) -> Outcome {
        let Some(engine) = self.config.transcriber.clone() else {
            return Outcome::Later(now_ms().saturating_add(ms(self.config.poll)));
        };
        let (Some(track), Some(seq)) = (job.track.clone(), job.sequence) else {
            return Outcome::Permanent("transcription job without a segment".into());
        };
        let (owner, rec) = (job.owner_id, job.recording_id.clone());
        let loaded = {
            let (rec, track) = (rec.clone(), track.clone());
            self.state
                .blocking(move |db, blobs| {
                    let Some(src) = db.segment_source(owner, &rec, &track, seq)? else {
                        return Ok(None);
                    };
                    let audio = blobs.read(&src.upload_id)?;
                    let previous = match seq.checked_sub(1) {
                        Some(p) => db.transcript_spans(owner, &rec, &track, p)?,
                        None => None,
                    };
                    Ok(Some((src, audio, previous)))
                })
                .await
        };
        let (src, audio, previous) = match loaded {
            Ok(Some(x)) => x,
            Ok(None) => return Outcome::Permanent("segment is not recorded as received".into()),
            Err(e) => return e.into(),
        };
        // The previous segment's last words, only when it is already done: never wait for it.
        let prompt = previous
            .and_then(|json| serde_json::from_str::<Vec<TimedText>>(&json).ok())
            .map(|spans| {
                let text = Transcript {
                    spans,
                    language: None,
                }
                .text();
                prompt_tail(&text, self.config.prompt_words)
            })
            .filter(|p| !p.is_empty());
        let waited = self
            .transcribe_gate
            .admit(src.length_48k as f64 / 48_000.0)
            .await;
        self.state.metrics.add(
            "chronote_rate_limiter_wait_seconds_total",
            vec![("provider", "transcribe".into())],
            waited.as_secs_f64(),
        );
        let started = std::time::Instant::now();
        let result = engine
            .transcribe(TranscribeRequest {
                audio: audio.into(),
                length_48k: src.length_48k,
                language: self.config.language.clone(),
                prompt,
            })
            .await;
        drop(slot);
        self.observe_duration(JobKind::Transcribe, engine.name(), started.elapsed());
        let transcript = match result {
            Ok(t) => t,
            Err(e) => return e.into(),
        };
        let spans = match serde_json::to_string(&transcript.spans) {
            Ok(s) => s,
            Err(e) => return Outcome::Permanent(format!("encode transcript: {e}")),
        };
        let (id, t, name) = (job.id, token.to_string(), engine.name().to_string());
        let committed = now_ms();
        match self
            .state
            .db(move |db| db.commit_transcript(id, &t, &spans, &name, committed))
            .await
        {
            Ok(JobChange::Applied(_)) => {}
            Ok(JobChange::Fenced) => {
                tracing::warn!(job = job.id, "lease taken over: result discarded");
                return Outcome::Finished;
            }
            Err(e) => return e.into(),
        }
        if let Err(e) = self.after_segment(owner, &rec, committed).await {
            tracing::error!(error = %e, recording = %rec, "scheduling after a transcript failed");
        }
        Outcome::Finished
    }

    fn observe_duration(&self, kind: JobKind, engine: &str, d: Duration) {
        self.state.metrics.observe(
            "chronote_job_duration_seconds",
            vec![("engine", engine.into()), ("kind", kind.as_str().into())],
            d.as_secs_f64(),
        );
    }

    /// A segment of the recording finished (transcribed or dead) or a rolling summary was
    /// stored, at `finished_ms` (just before its commit): queue a rolling summary if a window
    /// is complete, and let finalization look again.
    async fn after_segment(
        &self,
        owner: i64,
        rec: &str,
        finished_ms: i64,
    ) -> Result<(), ServerError> {
        self.schedule_summary(owner, rec).await?;
        let id = rec.to_string();
        self.state
            .db(move |db| {
                if db.stop_of(owner, &id)?.is_some() {
                    // Final notes written after this result was committed already hold it when
                    // they are `ready` or `empty` (those need every segment finished, so their
                    // snapshot came after this commit); re-finalizing would only add a
                    // duplicate version. `partial` or `failed` notes may have missed it.
                    let has_final = db.latest_notes(owner, &id, false)?.is_some_and(|n| {
                        n.is_final
                            && (n.created_ms <= finished_ms
                                || !matches!(n.outcome.as_deref(), Some("ready" | "empty")))
                    });
                    if has_final {
                        // A late segment after the final notes: they get a new version.
                        db.ensure_finalize(owner, &id, now_ms())?;
                    } else {
                        db.wake_finalize(owner, &id, now_ms())?;
                    }
                }
                Ok(())
            })
            .await?;
        notify(&self.state.wake);
        Ok(())
    }

    /// Loads what summaries and finalization look at.
    async fn snapshot(
        &self,
        owner: i64,
        rec: &str,
        with_spans: bool,
    ) -> Result<
        Option<(
            RecordingRow,
            Vec<SegmentProgress>,
            Progress,
            Option<Notes>,
            u64,
        )>,
        ServerError,
    > {
        let id = rec.to_string();
        self.state
            .db(move |db| {
                let Some(r) = db.recording(owner, &id)? else {
                    return Ok(None);
                };
                let rows = db.progress(owner, &id, with_spans)?;
                let p = progress::compute(&r, &rows);
                let rolling = db.latest_notes(owner, &id, true)?;
                let until = rolling.as_ref().map_or(0, |n| n.summarized_until_ms);
                let notes = rolling.and_then(|n| serde_json::from_str::<Notes>(&n.notes).ok());
                Ok(Some((r, rows, p, notes, until)))
            })
            .await
    }

    /// Queues the next rolling window once the contiguous transcript end has passed it. A
    /// stopped, settled recording whose remainder fits in one window is left to finalization,
    /// which summarizes that remainder in its single call.
    ///
    /// Windows without utterances are skipped ([`next_window`]): a long silence, a paused
    /// meeting or a segment placed far along the timeline costs no summary call and no notes
    /// version, so summary jobs are bounded by the transcript, not by the timeline's length.
    async fn schedule_summary(&self, owner: i64, rec: &str) -> Result<bool, ServerError> {
        let window = u64::try_from(self.config.summary_window.as_millis()).unwrap_or(u64::MAX);
        if window == 0 {
            return Ok(false);
        }
        // Cheap check first: no window can be complete before the contiguous end has passed
        // one window length beyond the last summarized point.
        let Some((_, _, p, _, until)) = self.snapshot(owner, rec, false).await? else {
            return Ok(false);
        };
        if until
            .checked_add(window)
            .is_none_or(|end| p.contiguous_end_ms < end)
        {
            return Ok(false);
        }
        // Which window holds the next utterance needs the transcript.
        let Some((r, rows, p, _, until)) = self.snapshot(owner, rec, true).await? else {
            return Ok(false);
        };
        let utterances = progress::utterances(&rows);
        let Some(next) = next_window(&utterances, until, p.contiguous_end_ms, window) else {
            return Ok(false);
        };
        let (start, end) = (next.start_ms, next.end_ms);
        if r.final_sequences.is_some() && p.settled() && p.contiguous_end_ms <= end {
            return Ok(false);
        }
        let id = rec.to_string();
        let queued = self
            .state
            .db(move |db| db.enqueue_summary(owner, &id, start, end, now_ms()))
            .await?;
        if queued {
            tracing::info!(
                recording = rec,
                start_ms = start,
                end_ms = end,
                skipped_ms = start.saturating_sub(until),
                "rolling summary queued"
            );
            notify(&self.state.wake);
        }
        Ok(queued)
    }

    /// Whether a rolling summary of the recording is queued, running or waiting for a retry.
    async fn open_summaries(&self, owner: i64, rec: &str) -> Result<bool, ServerError> {
        let id = rec.to_string();
        let jobs = self.state.db(move |db| db.jobs_of(owner, &id)).await?;
        Ok(jobs
            .iter()
            .any(|j| j.kind == JobKind::Summarize && !j.state.is_finished()))
    }

    async fn call_summarizer(
        &self,
        kind: JobKind,
        request: SummarizeRequest,
        slot: OwnedSemaphorePermit,
    ) -> Result<(Notes, String), Outcome> {
        let Some(engine) = self.config.summarizer.clone() else {
            return Err(Outcome::Later(
                now_ms().saturating_add(ms(self.config.poll)),
            ));
        };
        let waited = self.summarize_gate.admit(0.0).await;
        self.state.metrics.add(
            "chronote_rate_limiter_wait_seconds_total",
            vec![("provider", "summarize".into())],
            waited.as_secs_f64(),
        );
        let started = std::time::Instant::now();
        let result = engine.summarize(request).await;
        drop(slot);
        self.observe_duration(kind, engine.name(), started.elapsed());
        result
            .map(|n| (n, engine.name().to_string()))
            .map_err(Outcome::from)
    }

    async fn summarize(&self, job: &JobRow, token: &str, slot: OwnedSemaphorePermit) -> Outcome {
        let Some((start, end)) = job.window else {
            return Outcome::Permanent("summary job without a window".into());
        };
        let (owner, rec) = (job.owner_id, job.recording_id.clone());
        let (_, rows, previous) = match self.snapshot(owner, &rec, true).await {
            Ok(Some((r, rows, _, previous, _))) => (r, rows, previous),
            Ok(None) => return Outcome::Permanent("recording is gone".into()),
            Err(e) => return e.into(),
        };
        let window: Vec<Utterance> = progress::utterances(&rows)
            .into_iter()
            .filter(|u| u.start_ms >= start && u.start_ms < end)
            .collect();
        let request = SummarizeRequest {
            previous,
            window,
            is_final: false,
        };
        let (notes, engine) = match self
            .call_summarizer(JobKind::Summarize, request, slot)
            .await
        {
            Ok(x) => x,
            Err(o) => return o,
        };
        let committed = now_ms();
        if let Err(o) = self
            .commit_notes(job, token, false, None, end, &notes, &engine)
            .await
        {
            return o;
        }
        if let Err(e) = self.after_segment(owner, &rec, committed).await {
            tracing::error!(error = %e, recording = %rec, "scheduling after a summary failed");
        }
        Outcome::Finished
    }

    #[allow(clippy::too_many_arguments)]
    async fn commit_notes(
        &self,
        job: &JobRow,
        token: &str,
        is_final: bool,
        outcome: Option<&'static str>,
        until: u64,
        notes: &Notes,
        engine: &str,
    ) -> Result<(), Outcome> {
        let json = serde_json::to_string(notes)
            .map_err(|e| Outcome::Permanent(format!("encode notes: {e}")))?;
        let (id, t, engine) = (job.id, token.to_string(), engine.to_string());
        let committed = self
            .state
            .db(move |db| {
                db.commit_notes(id, &t, is_final, outcome, until, &json, &engine, now_ms())
            })
            .await
            .map_err(Outcome::from)?;
        match committed {
            None => tracing::warn!(job = job.id, "lease taken over: notes discarded"),
            Some((version, latency)) => {
                tracing::info!(job = job.id, recording = %job.recording_id, version, is_final, ?outcome, "notes stored");
                if let Some(latency) = latency {
                    self.state.metrics.observe(
                        "chronote_stop_to_notes_seconds",
                        vec![],
                        latency as f64 / 1000.0,
                    );
                }
            }
        }
        Ok(())
    }

    async fn finalize(&self, job: &JobRow, token: &str, slot: OwnedSemaphorePermit) -> Outcome {
        let (owner, rec) = (job.owner_id, job.recording_id.clone());
        let now = now_ms();
        let stop = {
            let id = rec.clone();
            match self.state.db(move |db| db.stop_of(owner, &id)).await {
                Ok(Some(s)) => s,
                Ok(None) => return Outcome::Permanent("recording was not stopped".into()),
                Err(e) => return e.into(),
            }
        };
        let deadline = stop
            .stopped_ms
            .saturating_add(ms(self.config.finalize_deadline));
        if now < deadline {
            // Woken early by any finished segment or summary of this recording.
            let later = Outcome::Later(deadline.min(now.saturating_add(1_000)));
            let settled = match self.snapshot(owner, &rec, false).await {
                Ok(Some((_, _, p, _, _))) => p.settled(),
                Ok(None) => return Outcome::Permanent("recording is gone".into()),
                Err(e) => return e.into(),
            };
            if !settled {
                return later;
            }
            match self.open_summaries(owner, &rec).await {
                Ok(false) => {}
                Ok(true) => return later,
                Err(e) => return e.into(),
            }
            match self.schedule_summary(owner, &rec).await {
                Ok(true) => return later,
                Ok(false) => {}
                Err(e) => return e.into(),
            }
            // Looked at again: the last segment's own scheduling may have queued the window
            // just now (our enqueue then found it and answered false). Finalizing alongside
            // it would summarize that window twice.
            match self.open_summaries(owner, &rec).await {
                Ok(false) => {}
                Ok(true) => return later,
                Err(e) => return e.into(),
            }
        }
        // Read after the checks above, so `until` includes every rolling summary.
        let (_, rows, p, previous, until) = match self.snapshot(owner, &rec, true).await {
            Ok(Some(x)) => x,
            Ok(None) => return Outcome::Permanent("recording is gone".into()),
            Err(e) => return e.into(),
        };
        let utterances = progress::utterances(&rows);
        let window = final_window(&utterances, until);
        let untranscribed = p.untranscribed();
        let outcome = if untranscribed > 0 {
            "partial"
        } else if utterances.is_empty() {
            "empty"
        } else {
            "ready"
        };
        let notes = if outcome == "empty" {
            Ok((
                Notes {
                    summary: "No usable speech was recorded in this meeting.".into(),
                    ..Notes::default()
                },
                "none".to_string(),
            ))
        } else {
            let request = SummarizeRequest {
                previous: previous.clone(),
                window: window.utterances.clone(),
                is_final: true,
            };
            self.call_summarizer(JobKind::Finalize, request, slot).await
        };
        let (mut notes, engine, outcome) = match notes {
            Ok((n, e)) => (n, e, outcome),
            Err(Outcome::Transient(m))
                if job.attempts.saturating_add(1) < self.config.max_attempts =>
            {
                return Outcome::Transient(m);
            }
            Err(Outcome::Transient(m)) | Err(Outcome::Permanent(m)) => {
                // Out of attempts: the final notes say so, with whatever rolling notes exist.
                let mut n = previous.unwrap_or_default();
                n.summary = format!("Final notes could not be produced ({m}). {}", n.summary)
                    .trim_end()
                    .to_string();
                (n, "none".to_string(), "failed")
            }
            Err(other) => return other,
        };
        if outcome == "partial" {
            let total = p.received.saturating_add(p.missing);
            notes.summary = format!(
                "Partial notes: {untranscribed} of {total} segments could not be transcribed. {}",
                notes.summary
            )
            .trim_end()
            .to_string();
        }
        match self
            .commit_notes(
                job,
                token,
                true,
                Some(outcome),
                window.end_ms,
                &notes,
                &engine,
            )
            .await
        {
            Ok(()) => Outcome::Finished,
            Err(o) => o,
        }
    }
}
