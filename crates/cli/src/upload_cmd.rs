//! `chronote upload` and the `--server/--token` options of `record`.
//!
//! Test hook: `CHRONOTE_TEST_EXIT_BEFORE_ACK=N` makes the uploader abort the process the N-th
//! time a server response shows a segment upload complete, before the spool records it (see
//! `chronote_upload::UploaderConfig::test_exit_before_ack`). Only the crash tests set it.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chronote_spool::Spool;
use chronote_upload::{
    Scope, UploadEvent, UploadReport, Uploader, UploaderConfig, UploaderHandle, UploaderThread,
};
use clap::Args;
use serde_json::json;

use crate::output::Output;
use crate::{SpoolArgs, open_spool};

/// The server to talk to.
#[derive(Args, Debug, Clone, Default)]
pub struct Endpoint {
    /// Chronote server base URL [default: $CHRONOTE_SERVER]
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Bearer token from `chronote server token create` [default: $CHRONOTE_TOKEN]
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Bytes per upload request (a whole segment goes in one request by default).
    #[arg(long, value_name = "BYTES", hide = true)]
    pub chunk_bytes: Option<u64>,
}

/// Where to upload to; on `record` these turn on uploading while recording.
#[derive(Args, Debug, Clone, Default)]
pub struct RemoteArgs {
    #[command(flatten)]
    pub endpoint: Endpoint,
    /// With --server: after recording, wait at most this long for the last uploads and the
    /// stop call (what is left goes up with `chronote upload`).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub upload_wait: u64,
}

#[derive(Args)]
pub struct UploadArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// Give up (exit non-zero) if everything is not uploaded within this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    timeout: u64,
    /// Print events and the final report as JSON lines on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    spool: SpoolArgs,
}

fn env_or(value: &Option<String>, var: &str) -> Option<String> {
    value
        .clone()
        .or_else(|| std::env::var(var).ok())
        .filter(|v| !v.trim().is_empty())
}

impl Endpoint {
    /// The uploader config, or None when no server is set.
    fn config(&self, scope: Scope) -> Result<Option<UploaderConfig>> {
        let Some(server) = env_or(&self.server, "CHRONOTE_SERVER") else {
            if self.token.is_some() {
                bail!("--token needs --server (or CHRONOTE_SERVER)");
            }
            return Ok(None);
        };
        let Some(token) = env_or(&self.token, "CHRONOTE_TOKEN") else {
            bail!("no token for {server}: pass --token or set CHRONOTE_TOKEN");
        };
        let mut config = UploaderConfig::new(server, token);
        config.scope = scope;
        if let Some(n) = self.chunk_bytes {
            if n == 0 {
                bail!("--chunk-bytes must be positive");
            }
            config.chunk_bytes = n;
        }
        config.test_exit_before_ack = std::env::var("CHRONOTE_TEST_EXIT_BEFORE_ACK")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0);
        config.base_url()?;
        Ok(Some(config))
    }
}

/// Prints an upload event: a JSON line, or a short line on stderr for people.
fn print_event(json: bool, event: &UploadEvent) {
    if json {
        if let Ok(text) = serde_json::to_string(event) {
            println!("{text}");
        }
        return;
    }
    match event {
        UploadEvent::RecordingCreated { recording_id } => {
            eprintln!("chronote: server has recording {recording_id}")
        }
        UploadEvent::SegmentUploaded {
            track,
            sequence,
            bytes,
            ..
        } => eprintln!("chronote: track {track}: segment {sequence} uploaded ({bytes} bytes)"),
        UploadEvent::RecordingStopped { recording_id } => {
            eprintln!("chronote: recording {recording_id} complete on the server")
        }
        UploadEvent::UploadFailed { what, error, .. } => {
            eprintln!("chronote: upload of {what} failed: {error}")
        }
    }
}

/// Uploading alongside `chronote record`.
pub struct LiveUpload {
    thread: UploaderThread,
    events: Receiver<UploadEvent>,
    json: bool,
    wait: Duration,
    recording_id: String,
    server_has_recording: bool,
}

/// What `record --json` adds to its summary.
pub struct UploadCounts {
    pub server_recording_id: Option<String>,
    pub uploaded_segments: u64,
    pub pending_segments: u64,
}

impl LiveUpload {
    /// Starts uploading `recording_id` if `--server` (or CHRONOTE_SERVER) is set.
    pub fn start(
        args: &RemoteArgs,
        spool: &Arc<Mutex<Spool>>,
        recording_id: &str,
        json: bool,
    ) -> Result<Option<LiveUpload>> {
        let Some(config) = args
            .endpoint
            .config(Scope::Recording(recording_id.to_string()))?
        else {
            return Ok(None);
        };
        let mut uploader = Uploader::new(Arc::clone(spool), config)?;
        let (tx, rx) = mpsc::channel();
        uploader.set_events(tx);
        Ok(Some(LiveUpload {
            thread: uploader.spawn()?,
            events: rx,
            json,
            wait: Duration::from_secs(args.upload_wait),
            recording_id: recording_id.to_string(),
            server_has_recording: false,
        }))
    }

    pub fn handle(&self) -> &UploaderHandle {
        &self.thread.handle
    }

    /// Prints the events that arrived so far.
    pub fn pump(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            self.show(&event);
        }
    }

    fn show(&mut self, event: &UploadEvent) {
        show(
            event,
            self.json,
            &self.recording_id,
            &mut self.server_has_recording,
        );
    }

    /// The recording ended: waits (bounded) for the last segments and the stop call.
    pub fn finish(self, out: &Output, spool: &Arc<Mutex<Spool>>) -> Result<UploadCounts> {
        let LiveUpload {
            thread,
            events,
            json,
            wait,
            recording_id,
            mut server_has_recording,
        } = self;
        thread.handle.finish();
        let deadline = Instant::now() + wait;
        let mut timed_out = false;
        while !thread.is_finished() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                timed_out = true;
                thread.handle.abort();
                break;
            }
            match events.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(event) => show(&event, json, &recording_id, &mut server_has_recording),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let last_error = thread.progress.borrow().last_error.clone();
        let result = thread.join();
        // Events sent before the thread ended.
        while let Ok(event) = events.try_recv() {
            show(&event, json, &recording_id, &mut server_has_recording);
        }
        let counts = counts(spool, &recording_id, server_has_recording)?;
        match result {
            Ok(report) => {
                for failure in &report.failures {
                    out.note(&format!("upload failed: {failure}"));
                }
            }
            Err(chronote_upload::UploadError::Aborted) if timed_out => out.note(&format!(
                "uploads not finished after {} s{}; {} segment(s) left: run `chronote upload` to finish",
                wait.as_secs(),
                last_error.map(|e| format!(" (last error: {e})")).unwrap_or_default(),
                counts.pending_segments
            )),
            Err(e) => out.note(&format!(
                "uploading stopped: {e}; {} segment(s) left: run `chronote upload` to finish",
                counts.pending_segments
            )),
        }
        Ok(counts)
    }
}

/// Prints an event and notes when the server confirmed our recording.
fn show(event: &UploadEvent, json: bool, recording_id: &str, server_has_recording: &mut bool) {
    if matches!(event, UploadEvent::RecordingCreated { recording_id: id } if id == recording_id) {
        *server_has_recording = true;
    }
    print_event(json, event);
}

/// Upload counts of one recording, read from the spool.
pub fn counts(
    spool: &Arc<Mutex<Spool>>,
    recording_id: &str,
    server_has_recording: bool,
) -> Result<UploadCounts> {
    let spool = spool
        .lock()
        .map_err(|_| anyhow::anyhow!("the spool lock is poisoned"))?;
    let rec = spool
        .recording(recording_id)?
        .with_context(|| format!("recording {recording_id} vanished from the spool"))?;
    let (mut uploaded, mut pending) = (0, 0);
    for t in &rec.tracks {
        uploaded += t.states.acknowledged + t.states.evicted;
        pending += t.states.sealed + t.states.uploading + t.states.uploaded;
    }
    Ok(UploadCounts {
        server_recording_id: server_has_recording.then(|| recording_id.to_string()),
        uploaded_segments: uploaded,
        pending_segments: pending,
    })
}

/// Adds the upload counts to `record --json`'s summary object.
pub fn extend_summary(summary: &mut serde_json::Value, counts: &UploadCounts) {
    if let Some(map) = summary.as_object_mut() {
        map.insert(
            "server_recording_id".into(),
            json!(counts.server_recording_id),
        );
        map.insert("uploaded_segments".into(), json!(counts.uploaded_segments));
        map.insert("pending_segments".into(), json!(counts.pending_segments));
    }
}

/// `chronote upload`: recover the spool, upload everything, stop the recordings, exit.
pub fn run(args: UploadArgs) -> Result<()> {
    let out = Output::new(args.json);
    let Some(config) = args.endpoint.config(Scope::All)? else {
        bail!("no server: pass --server URL or set CHRONOTE_SERVER");
    };
    let server = config.server.clone();
    let mut spool = open_spool(&args.spool)?;
    let report = spool.recover().context("spool recovery failed")?;
    out.recovery(&report, true);
    let spool = Arc::new(Mutex::new(spool));
    let mut uploader = Uploader::new(spool, config)?;
    let (tx, rx) = mpsc::channel();
    uploader.set_events(tx);
    let thread = uploader.spawn_drain()?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut timed_out = false;
    while !thread.is_finished() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            timed_out = true;
            thread.handle.abort();
            break;
        }
        match rx.recv_timeout(left.min(Duration::from_millis(100))) {
            Ok(event) => print_event(args.json, &event),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let progress = thread.progress.borrow().clone();
    let result = thread.join();
    while let Ok(event) = rx.try_recv() {
        print_event(args.json, &event);
    }
    let report: UploadReport = match result {
        Ok(report) => report,
        Err(chronote_upload::UploadError::Aborted) if timed_out => bail!(
            "gave up after {} s: {} segment(s) not uploaded to {server}{}",
            args.timeout,
            progress.segments_pending,
            progress
                .last_error
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default()
        ),
        Err(e) => return Err(e).with_context(|| format!("uploading to {server} failed")),
    };
    if args.json {
        let mut value = serde_json::to_value(&report).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert("event".into(), "upload_summary".into());
            map.insert("bytes_sent".into(), json!(progress.bytes_sent));
        }
        println!("{value}");
    } else {
        println!(
            "uploaded {} segment(s), {} recording(s) complete on {server}",
            report.acknowledged,
            report.stopped.len()
        );
    }
    if !report.is_complete() {
        for failure in &report.failures {
            out.note(&format!("failed: {failure}"));
        }
        bail!(
            "{} segment(s) not uploaded, {} recording(s) not complete on {server}",
            report.pending_segments,
            report.unfinished_recordings.len()
        );
    }
    Ok(())
}
