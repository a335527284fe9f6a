//! The background uploader: drains the spool to a Chronote server.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chronote_spool::{
    RecordingEvent, RecordingState, RecordingSummary, SegmentEvent, SegmentRow, SegmentState, Spool,
};
use reqwest::Url;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, watch};

use crate::api::{CreateRecording, RecordingsApi, StopRecording};
use crate::config::{Scope, UploaderConfig, http_client};
use crate::error::UploadError;
use crate::progress::{RateMeter, UploadEvent, UploadProgress};
use crate::retry::Backoff;
use crate::transfer::{Journal, TransferSpec, sleep_or_abort, transfer};
use crate::tus::{TusClient, encode_metadata};

/// What a run did, and what is left.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UploadReport {
    /// Segments acknowledged during this run.
    pub acknowledged: u64,
    /// Recordings whose stop call went through during this run.
    pub stopped: Vec<String>,
    /// Recordings the server has (created or found during this run).
    pub server_recordings: Vec<String>,
    /// Segments or recordings given up on, with the reason.
    pub failures: Vec<String>,
    /// In scope and not yet acknowledged when the run ended.
    pub pending_segments: u64,
    /// In scope and not yet stopped on the server when the run ended.
    pub unfinished_recordings: Vec<String>,
}

impl UploadReport {
    /// Everything in scope is acknowledged and stopped.
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
            && self.pending_segments == 0
            && self.unfinished_recordings.is_empty()
    }
}

/// Controls a running uploader from another thread.
#[derive(Debug, Clone)]
pub struct UploaderHandle {
    finish: Arc<watch::Sender<bool>>,
    abort: Arc<watch::Sender<bool>>,
    nudge: Arc<Notify>,
}

impl UploaderHandle {
    /// No more segments will be sealed: upload what is left, stop the recordings, return.
    pub fn finish(&self) {
        self.finish.send_replace(true);
    }

    /// Stop now, wherever the uploader is. The spool stays consistent: everything the server
    /// confirmed is recorded, everything else is retried by the next run.
    pub fn abort(&self) {
        self.abort.send_replace(true);
    }

    /// A segment was just sealed: look now instead of at the next poll.
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }
}

/// An uploader running on its own thread (with its own single-threaded tokio runtime), for
/// synchronous callers such as the recorder CLI.
#[derive(Debug)]
pub struct UploaderThread {
    pub handle: UploaderHandle,
    pub progress: watch::Receiver<UploadProgress>,
    join: std::thread::JoinHandle<Result<UploadReport, UploadError>>,
}

impl UploaderThread {
    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }

    /// Waits for the thread. A panic inside it is reported as an error, not propagated.
    pub fn join(self) -> Result<UploadReport, UploadError> {
        self.join.join().unwrap_or_else(|_| {
            Err(UploadError::Protocol {
                request: "uploader thread".to_string(),
                detail: "panicked".to_string(),
            })
        })
    }
}

/// Drains sealed segments from a shared spool to a Chronote server.
///
/// Segments go up one at a time in id order, which is sequence order within each track. The
/// spool's mutex is only held for short reads and single transactions, never across an await.
pub struct Uploader {
    spool: Arc<Mutex<Spool>>,
    config: UploaderConfig,
    base: Url,
    tus: TusClient,
    api: RecordingsApi,
    caps_known: bool,
    progress: watch::Sender<UploadProgress>,
    events: Option<std::sync::mpsc::Sender<UploadEvent>>,
    finish: Arc<watch::Sender<bool>>,
    abort: Arc<watch::Sender<bool>>,
    nudge: Arc<Notify>,
    created: HashSet<String>,
    failed_segments: HashSet<i64>,
    failed_recordings: HashSet<String>,
    report: UploadReport,
    rate: Arc<Mutex<RateMeter>>,
    completions: Arc<AtomicU32>,
}

/// Work found in the spool at one moment.
#[derive(Debug, Default)]
struct Snapshot {
    segments: Vec<SegmentRow>,
    /// Stopped recordings whose every segment is acknowledged: ready for the stop call.
    ready_to_stop: Vec<String>,
    /// In-scope recordings not yet Uploaded/Complete.
    unfinished: Vec<String>,
    /// Some in-scope recording is still recording (Active or Stopping).
    recording: bool,
}

impl Uploader {
    pub fn new(spool: Arc<Mutex<Spool>>, config: UploaderConfig) -> Result<Uploader, UploadError> {
        let base = config.base_url()?;
        let http = http_client(config.connect_timeout)?;
        let files = base.join("files/").map_err(|e| UploadError::InvalidUrl {
            url: config.server.clone(),
            reason: e.to_string(),
        })?;
        let tus = TusClient::new(
            http.clone(),
            files,
            Some(config.token.clone()),
            config.request_timeout,
        );
        let api = RecordingsApi::new(
            http,
            base.clone(),
            config.token.clone(),
            config.request_timeout,
        );
        let (progress, _) = watch::channel(UploadProgress::default());
        Ok(Uploader {
            spool,
            base,
            tus,
            api,
            caps_known: false,
            progress,
            events: None,
            finish: Arc::new(watch::channel(false).0),
            abort: Arc::new(watch::channel(false).0),
            nudge: Arc::new(Notify::new()),
            created: HashSet::new(),
            failed_segments: HashSet::new(),
            failed_recordings: HashSet::new(),
            report: UploadReport::default(),
            rate: Arc::new(Mutex::new(RateMeter::new())),
            completions: Arc::new(AtomicU32::new(0)),
            config,
        })
    }

    /// Progress snapshots, updated as uploads advance.
    pub fn progress(&self) -> watch::Receiver<UploadProgress> {
        self.progress.subscribe()
    }

    pub fn handle(&self) -> UploaderHandle {
        UploaderHandle {
            finish: Arc::clone(&self.finish),
            abort: Arc::clone(&self.abort),
            nudge: Arc::clone(&self.nudge),
        }
    }

    /// Sends [`UploadEvent`]s to `tx` (a std channel, so synchronous code can read them).
    pub fn set_events(&mut self, tx: std::sync::mpsc::Sender<UploadEvent>) {
        self.events = Some(tx);
    }

    /// Runs [`Uploader::run_until_stopped`] on a new thread.
    pub fn spawn(self) -> Result<UploaderThread, UploadError> {
        self.spawn_mode(false)
    }

    /// Runs [`Uploader::drain`] on a new thread.
    pub fn spawn_drain(self) -> Result<UploaderThread, UploadError> {
        self.spawn_mode(true)
    }

    fn spawn_mode(mut self, drain: bool) -> Result<UploaderThread, UploadError> {
        let handle = self.handle();
        let progress = self.progress();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| UploadError::File {
                path: "tokio runtime".into(),
                source,
            })?;
        let join = std::thread::Builder::new()
            .name("chronote-upload".to_string())
            .spawn(move || {
                runtime.block_on(async move {
                    if drain {
                        self.drain().await
                    } else {
                        self.run_until_stopped().await
                    }
                })
            })
            .map_err(|source| UploadError::File {
                path: "uploader thread".into(),
                source,
            })?;
        Ok(UploaderThread {
            handle,
            progress,
            join,
        })
    }

    /// While recording: uploads segments as they are sealed, until [`UploaderHandle::finish`]
    /// (then finishes what is left, stops the recordings, and returns) or `abort`.
    pub async fn run_until_stopped(&mut self) -> Result<UploadReport, UploadError> {
        self.run(false).await
    }

    /// After a crash or offline recording: finishes interrupted recordings (Interrupted ->
    /// Stopped), uploads every segment in scope, sends the stop calls, and returns.
    pub async fn drain(&mut self) -> Result<UploadReport, UploadError> {
        self.finish.send_replace(true);
        self.run(true).await
    }

    async fn run(&mut self, drain: bool) -> Result<UploadReport, UploadError> {
        let mut abort = self.abort.subscribe();
        let mut finish = self.finish.subscribe();
        loop {
            if *abort.borrow() {
                return Err(UploadError::Aborted);
            }
            let finishing = *finish.borrow();
            let snap = self.snapshot(drain)?;
            let did_work = !snap.segments.is_empty() || !snap.ready_to_stop.is_empty();
            // Abort also cancels a request in flight: dropping the work future is safe because
            // every spool write inside it is one synchronous transaction.
            let mut inner_abort = abort.clone();
            tokio::select! {
                r = self.work(snap, &mut inner_abort) => r?,
                _ = abort.wait_for(|a| *a) => return Err(UploadError::Aborted),
            }
            let after = self.snapshot(drain)?;
            self.publish_pending(&after.segments);
            let idle = after.segments.is_empty() && after.ready_to_stop.is_empty();
            // Drain does not wait for recordings still capturing (a recorder sharing this
            // spool); run_until_stopped does, since it was told they would end.
            if finishing && idle && (drain || !after.recording) {
                self.report.pending_segments = self.pending_in_scope(drain)?;
                self.report.unfinished_recordings = after.unfinished;
                return Ok(self.report.clone());
            }
            if did_work && !idle {
                continue;
            }
            // Nothing to do (or only what failed): wait for a nudge, the poll tick, finish, or abort.
            tokio::select! {
                () = self.nudge.notified() => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
                _ = finish.wait_for(|f| *f), if !finishing => {}
                _ = abort.wait_for(|a| *a) => {}
            }
        }
    }

    async fn work(
        &mut self,
        snap: Snapshot,
        abort: &mut watch::Receiver<bool>,
    ) -> Result<(), UploadError> {
        self.publish_pending(&snap.segments);
        for seg in &snap.segments {
            if self.failed_recordings.contains(&seg.recording_id) {
                continue;
            }
            match self.upload_segment(seg, abort).await {
                Ok(()) => {}
                Err(e) if is_fatal_for_run(&e) => return Err(e),
                Err(e) => {
                    let what = format!(
                        "segment {}/{}/{}",
                        seg.recording_id, seg.track, seg.sequence
                    );
                    tracing::error!(error = %e, "giving up on {what} for this run");
                    self.failed_segments.insert(seg.id);
                    self.fail(&seg.recording_id, what, &e);
                }
            }
        }
        for id in &snap.ready_to_stop {
            match self.stop_recording(id, abort).await {
                Ok(()) => {}
                Err(e) if is_fatal_for_run(&e) => return Err(e),
                Err(e) => {
                    tracing::error!(recording = %id, error = %e, "cannot stop the recording on the server");
                    self.failed_recordings.insert(id.clone());
                    self.fail(id, format!("recording {id}"), &e);
                }
            }
        }
        Ok(())
    }

    fn fail(&mut self, recording_id: &str, what: String, e: &UploadError) {
        self.report.failures.push(format!("{what}: {e}"));
        self.emit(UploadEvent::UploadFailed {
            recording_id: recording_id.to_string(),
            what,
            error: e.to_string(),
        });
    }

    fn emit(&self, event: UploadEvent) {
        if let Some(tx) = &self.events {
            // A reader that went away must not stop the uploads.
            let _ = tx.send(event);
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Spool>, UploadError> {
        self.spool.lock().map_err(|_| UploadError::SpoolPoisoned)
    }

    /// Reads the work to do under one short lock. In drain mode, first finishes recordings a
    /// crash interrupted, so they can be stopped on the server.
    fn snapshot(&self, drain: bool) -> Result<Snapshot, UploadError> {
        let mut spool = self.lock()?;
        let recordings: Vec<RecordingSummary> = match &self.config.scope {
            Scope::All => spool.recordings()?,
            Scope::Recording(id) => spool.recording(id)?.into_iter().collect(),
        };
        let mut snap = Snapshot::default();
        for mut rec in recordings {
            if drain && rec.state == RecordingState::Interrupted {
                rec.state = spool.apply_recording_event(&rec.id, RecordingEvent::Finish)?;
            }
            match rec.state {
                RecordingState::Uploaded | RecordingState::Complete => continue,
                RecordingState::Active | RecordingState::Stopping => snap.recording = true,
                RecordingState::Stopped | RecordingState::Interrupted => {}
            }
            snap.unfinished.push(rec.id.clone());
            if self.failed_recordings.contains(&rec.id) {
                continue;
            }
            let unacked: u64 = rec
                .tracks
                .iter()
                .map(|t| t.states.open + t.states.sealed + t.states.uploading + t.states.uploaded)
                .sum();
            if unacked == 0 {
                if rec.state == RecordingState::Stopped {
                    snap.ready_to_stop.push(rec.id.clone());
                }
                continue;
            }
            for seg in spool.segments(&rec.id)? {
                let pending = matches!(
                    seg.state,
                    SegmentState::Sealed | SegmentState::Uploading { .. } | SegmentState::Uploaded
                );
                if pending && !self.failed_segments.contains(&seg.id) {
                    snap.segments.push(seg);
                }
            }
        }
        snap.segments.sort_by_key(|s| s.id);
        Ok(snap)
    }

    fn pending_in_scope(&self, drain: bool) -> Result<u64, UploadError> {
        let spool = self.lock()?;
        let recordings = match &self.config.scope {
            Scope::All => spool.recordings()?,
            Scope::Recording(id) => spool.recording(id)?.into_iter().collect(),
        };
        Ok(recordings
            .iter()
            .filter(|r| drain || r.state != RecordingState::Interrupted)
            .flat_map(|r| &r.tracks)
            .map(|t| t.states.sealed + t.states.uploading + t.states.uploaded)
            .sum())
    }

    fn publish_pending(&self, segments: &[SegmentRow]) {
        let left: u64 = segments
            .iter()
            .map(|s| match &s.state {
                SegmentState::Uploading { offset, .. } => s.bytes.saturating_sub(*offset),
                SegmentState::Uploaded => 0,
                _ => s.bytes,
            })
            .sum();
        let rate = self
            .rate
            .lock()
            .map(|mut r| r.current(Instant::now()))
            .unwrap_or(0);
        self.progress.send_modify(|p| {
            p.bytes_left = left;
            p.segments_pending = segments.len() as u64;
            p.rate_bps = rate;
        });
    }

    /// Learns once whether the server takes sha256 checksums and creation-with-upload.
    async fn ensure_caps(&mut self, abort: &mut watch::Receiver<bool>) -> Result<(), UploadError> {
        if self.caps_known {
            return Ok(());
        }
        let mut backoff = Backoff::new(self.config.min_backoff, self.config.max_backoff);
        loop {
            match self.tus.options().await {
                Ok(caps) => {
                    self.tus.set_checksum(caps.checksum_sha256());
                    self.tus
                        .set_creation_with_upload(caps.has_extension("creation-with-upload"));
                    self.caps_known = true;
                    self.online();
                    return Ok(());
                }
                Err(e) if e.is_transient() => {
                    self.note_error(&e);
                    sleep_or_abort(backoff.next_delay(), abort).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn online(&self) {
        self.progress.send_if_modified(|p| {
            let changed = p.offline || p.last_error.is_some();
            p.offline = false;
            p.last_error = None;
            changed
        });
    }

    fn note_error(&self, e: &UploadError) {
        note_error(&self.progress, e);
    }

    /// Creates the server recording from the spool row (idempotent), once per run.
    async fn ensure_recording(
        &mut self,
        id: &str,
        abort: &mut watch::Receiver<bool>,
    ) -> Result<(), UploadError> {
        if self.created.contains(id) {
            return Ok(());
        }
        let body = {
            let spool = self.lock()?;
            let rec = spool.recording(id)?.ok_or_else(|| {
                chronote_spool::SpoolError::UnknownRecording { id: id.to_string() }
            })?;
            CreateRecording {
                id: rec.id.clone(),
                title: rec.title.clone(),
                source: server_source(rec.source).to_string(),
                tracks: rec.tracks.iter().map(|t| t.name.clone()).collect(),
                started_at: rec.started_at.clone(),
            }
        };
        let api = self.api.clone();
        self.with_retries(abort, || api.create(&body)).await?;
        self.created.insert(id.to_string());
        self.report.server_recordings.push(id.to_string());
        self.emit(UploadEvent::RecordingCreated {
            recording_id: id.to_string(),
        });
        Ok(())
    }

    /// Retries a recordings-API call through transient failures (Retry-After honoured).
    async fn with_retries<F, Fut>(
        &self,
        abort: &mut watch::Receiver<bool>,
        mut call: F,
    ) -> Result<(), UploadError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), UploadError>>,
    {
        let mut backoff = Backoff::new(self.config.min_backoff, self.config.max_backoff);
        loop {
            if *abort.borrow() {
                return Err(UploadError::Aborted);
            }
            match call().await {
                Ok(()) => {
                    self.online();
                    return Ok(());
                }
                Err(e) if e.is_transient() => {
                    self.note_error(&e);
                    let delay = e
                        .retry_after()
                        .map(|d| d.min(self.config.max_retry_after))
                        .unwrap_or_else(|| backoff.next_delay());
                    sleep_or_abort(delay, abort).await?;
                }
                Err(e) => {
                    self.note_error(&e);
                    return Err(e);
                }
            }
        }
    }

    async fn upload_segment(
        &mut self,
        seg: &SegmentRow,
        abort: &mut watch::Receiver<bool>,
    ) -> Result<(), UploadError> {
        self.ensure_caps(abort).await?;
        self.ensure_recording(&seg.recording_id, abort).await?;
        check_local_file(seg)?;
        match self.transfer_segment(seg, abort).await {
            // Unknown recording: the server lost it (or it was created elsewhere under another
            // token). Create it again, once, and retry.
            Err(UploadError::Status { status: 404, .. }) => {
                self.created.remove(&seg.recording_id);
                self.ensure_recording(&seg.recording_id, abort).await?;
                let fresh = self.lock()?.segment(seg.id)?;
                let fresh =
                    fresh.ok_or(chronote_spool::SpoolError::UnknownSegment { id: seg.id })?;
                self.transfer_segment(&fresh, abort).await
            }
            other => other,
        }
    }

    async fn transfer_segment(
        &mut self,
        seg: &SegmentRow,
        abort: &mut watch::Receiver<bool>,
    ) -> Result<(), UploadError> {
        let mut state = seg.state.clone();
        let mut resume_url = None;
        if let SegmentState::Uploading { url, .. } = &state {
            match Url::parse(url) {
                Ok(u) if u.origin() == self.base.origin() => resume_url = Some(u),
                // An upload on another server (the user changed --server) or an unreadable
                // URL: start over here rather than send the token elsewhere.
                _ => {
                    tracing::info!(segment = seg.id, %url, "stored upload URL is not on this server; creating again");
                    state = self
                        .lock()?
                        .apply_segment_event(seg.id, SegmentEvent::UploadLost)?;
                }
            }
        }
        let spec = TransferSpec {
            path: seg.path.clone(),
            length: seg.bytes,
            metadata: encode_metadata(&segment_metadata(seg))?,
            resume_url,
            expect_receipt: Some(seg.sha256.clone()),
            confirm_only: state == SegmentState::Uploaded,
        };
        let limits = self.config.limits(None);
        let mut journal = SpoolJournal {
            spool: Arc::clone(&self.spool),
            id: seg.id,
            state,
            length: seg.bytes,
            progress: self.progress.clone(),
            rate: Arc::clone(&self.rate),
            completions: Arc::clone(&self.completions),
            exit_at: self.config.test_exit_before_ack,
        };
        let progress = self.progress.clone();
        let mut on_error = move |e: &UploadError| note_error(&progress, e);
        let tus = self.tus.clone();
        transfer(&tus, &spec, &limits, &mut journal, abort, &mut on_error).await?;
        journal.acknowledge()?;
        self.report.acknowledged += 1;
        self.progress.send_modify(|p| p.acknowledged += 1);
        self.emit(UploadEvent::SegmentUploaded {
            recording_id: seg.recording_id.clone(),
            track: seg.track.clone(),
            sequence: seg.sequence,
            bytes: seg.bytes,
        });
        tracing::info!(
            recording = %seg.recording_id,
            track = %seg.track,
            sequence = seg.sequence,
            bytes = seg.bytes,
            "segment acknowledged"
        );
        Ok(())
    }

    /// Sends the stop call with each track's last sequence, then marks the recording Uploaded.
    async fn stop_recording(
        &mut self,
        id: &str,
        abort: &mut watch::Receiver<bool>,
    ) -> Result<(), UploadError> {
        self.ensure_recording(id, abort).await?;
        let body = {
            let spool = self.lock()?;
            let rec = spool.recording(id)?.ok_or_else(|| {
                chronote_spool::SpoolError::UnknownRecording { id: id.to_string() }
            })?;
            let segments = spool.segments(id)?;
            stop_body(&rec, &segments)
        };
        let api = self.api.clone();
        self.with_retries(abort, || api.stop(id, &body)).await?;
        self.lock()?
            .apply_recording_event(id, RecordingEvent::AllUploaded)?;
        self.report.stopped.push(id.to_string());
        self.emit(UploadEvent::RecordingStopped {
            recording_id: id.to_string(),
        });
        tracing::info!(recording = %id, "recording stopped on the server");
        Ok(())
    }
}

fn note_error(progress: &watch::Sender<UploadProgress>, e: &UploadError) {
    progress.send_modify(|p| {
        p.last_error = Some(e.to_string());
        p.offline = e.is_offline();
    });
}

/// Errors that end the whole run: every further request would fail the same way.
fn is_fatal_for_run(e: &UploadError) -> bool {
    matches!(
        e,
        UploadError::Aborted
            | UploadError::Spool(_)
            | UploadError::SpoolPoisoned
            | UploadError::InvalidUrl { .. }
            | UploadError::Client(_)
            | UploadError::Status {
                status: 401 | 403,
                ..
            }
    )
}

/// The server knows desktop and discord recordings; an imported file is a desktop recording.
fn server_source(source: chronote_spool::RecordingSource) -> &'static str {
    match source {
        chronote_spool::RecordingSource::Discord => "discord",
        chronote_spool::RecordingSource::Desktop | chronote_spool::RecordingSource::Import => {
            "desktop"
        }
    }
}

/// The Upload-Metadata pairs of a segment.
pub fn segment_metadata(seg: &SegmentRow) -> Vec<(String, String)> {
    vec![
        ("recording_id".into(), seg.recording_id.clone()),
        ("track".into(), seg.track.clone()),
        ("sequence".into(), seg.sequence.to_string()),
        ("start_48k".into(), seg.start_48k.to_string()),
        ("length_48k".into(), seg.length_48k.to_string()),
        ("sha256".into(), seg.sha256.clone()),
        ("codec".into(), "opus".into()),
    ]
}

/// The stop call: last sequence per track (None if a track has no segment) and the end time,
/// `started_at` plus the longest track's timeline.
pub(crate) fn stop_body(rec: &RecordingSummary, segments: &[SegmentRow]) -> StopRecording {
    let mut final_sequences: BTreeMap<String, Option<u64>> =
        rec.tracks.iter().map(|t| (t.name.clone(), None)).collect();
    let mut end_48k = 0u64;
    for s in segments {
        let slot = final_sequences.entry(s.track.clone()).or_insert(None);
        *slot = Some(slot.map_or(s.sequence, |v| v.max(s.sequence)));
        end_48k = end_48k.max(s.start_48k + s.length_48k);
    }
    for t in &rec.tracks {
        if let Some(end) = t.end_48k {
            end_48k = end_48k.max(end);
        }
    }
    StopRecording {
        final_sequences,
        ended_at: add_48k(&rec.started_at, end_48k),
    }
}

/// `started_at` + `units` 48 kHz samples, as RFC 3339 UTC with milliseconds. The spool
/// validated `started_at`; should it not parse, it is returned unchanged rather than guessed.
fn add_48k(started_at: &str, units: u64) -> String {
    use time::format_description::well_known::Rfc3339;
    let Ok(start) = time::OffsetDateTime::parse(started_at, &Rfc3339) else {
        return started_at.to_string();
    };
    let ms = i64::try_from(units / 48).unwrap_or(i64::MAX);
    let end = start.to_offset(time::UtcOffset::UTC) + time::Duration::milliseconds(ms);
    let end = end
        .replace_nanosecond(end.millisecond() as u32 * 1_000_000)
        .unwrap_or(end);
    end.format(&Rfc3339)
        .unwrap_or_else(|_| started_at.to_string())
}

/// The sealed file must still be exactly what was sealed: same size, same sha256.
fn check_local_file(seg: &SegmentRow) -> Result<(), UploadError> {
    let data = std::fs::read(&seg.path).map_err(|source| UploadError::File {
        path: seg.path.clone(),
        source,
    })?;
    if data.len() as u64 != seg.bytes {
        return Err(UploadError::LocalMismatch {
            path: seg.path.clone(),
            detail: format!("{} bytes, sealed with {}", data.len(), seg.bytes),
        });
    }
    let hex = hex(&Sha256::digest(&data));
    if hex != seg.sha256 {
        return Err(UploadError::LocalMismatch {
            path: seg.path.clone(),
            detail: format!("sha256 {hex}, sealed with {}", seg.sha256),
        });
    }
    Ok(())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Records a segment's upload in the spool as the server confirms it.
struct SpoolJournal {
    spool: Arc<Mutex<Spool>>,
    id: i64,
    /// The segment's state as last written.
    state: SegmentState,
    length: u64,
    progress: watch::Sender<UploadProgress>,
    rate: Arc<Mutex<RateMeter>>,
    completions: Arc<AtomicU32>,
    exit_at: Option<u32>,
}

impl SpoolJournal {
    fn apply(&mut self, event: SegmentEvent) -> Result<(), UploadError> {
        let mut spool = self.spool.lock().map_err(|_| UploadError::SpoolPoisoned)?;
        self.state = spool.apply_segment_event(self.id, event)?;
        Ok(())
    }

    fn acknowledge(&mut self) -> Result<(), UploadError> {
        if matches!(self.state, SegmentState::Uploading { .. }) {
            self.apply(SegmentEvent::FinishUpload)?;
        }
        if self.state == SegmentState::Uploaded {
            self.apply(SegmentEvent::Acknowledge)?;
        }
        Ok(())
    }
}

impl Journal for SpoolJournal {
    fn created(&mut self, url: &Url) -> Result<(), UploadError> {
        match &self.state {
            // Confirming an upload recorded as complete: nothing to write until the receipt.
            SegmentState::Uploaded => Ok(()),
            SegmentState::Uploading { url: old, .. } if old == url.as_str() => Ok(()),
            SegmentState::Uploading { .. } => {
                self.apply(SegmentEvent::UploadLost)?;
                self.apply(SegmentEvent::BeginUpload {
                    url: url.to_string(),
                })
            }
            _ => self.apply(SegmentEvent::BeginUpload {
                url: url.to_string(),
            }),
        }
    }

    fn confirmed(&mut self, offset: u64) -> Result<(), UploadError> {
        let SegmentState::Uploading { offset: old, .. } = self.state else {
            return Ok(());
        };
        if offset != old {
            self.apply(SegmentEvent::Progress { offset })?;
        }
        let gained = offset.saturating_sub(old);
        let rate = self
            .rate
            .lock()
            .map(|mut r| r.add(gained, Instant::now()))
            .unwrap_or(0);
        let lost = old.saturating_sub(offset);
        self.progress.send_modify(|p| {
            p.bytes_sent += gained;
            p.bytes_left = (p.bytes_left + lost).saturating_sub(gained);
            p.rate_bps = rate;
            p.offline = false;
            p.last_error = None;
        });
        Ok(())
    }

    fn lost(&mut self) -> Result<(), UploadError> {
        if let SegmentState::Uploading { offset, .. } = self.state {
            self.apply(SegmentEvent::UploadLost)?;
            self.progress
                .send_modify(|p| p.bytes_left += offset.min(self.length));
        }
        Ok(())
    }

    fn completing(&mut self) {
        let Some(n) = self.exit_at else { return };
        let seen = self.completions.fetch_add(1, Ordering::SeqCst) + 1;
        if seen >= n {
            // TEST HOOK (CHRONOTE_TEST_EXIT_BEFORE_ACK): die like a SIGKILL would, after the
            // server finished the upload and before the spool records anything about it.
            eprintln!("chronote: test hook: aborting before recording upload completion");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_time_adds_the_timeline() {
        assert_eq!(
            add_48k("2025-01-01T09:00:00Z", 48_000 * 90 + 24),
            "2025-01-01T09:01:30Z"
        );
        assert_eq!(
            add_48k("2025-01-01T09:00:00.250Z", 48_000 + 48 * 500),
            "2025-01-01T09:00:01.75Z"
        );
        assert_eq!(add_48k("garbage", 48_000), "garbage");
    }

    #[test]
    fn hex_digits() {
        assert_eq!(hex(&[0, 1, 0xab, 0xff]), "0001abff");
    }
}
