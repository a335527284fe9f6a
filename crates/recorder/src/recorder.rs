//! Starting, running and stopping a recording.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use chronote_capture::Source;
use chronote_spool::{NewRecording, RecordingEvent, RecordingSource, Spool};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{error, info};

use crate::config::{RecorderConfig, TrackSpec};
use crate::error::RecorderError;
use crate::event::{RecorderEvent, TrackEnd};
use crate::summary::{RecordingSummary, summarize};
use crate::track::{TrackContext, TrackPipeline};

type TrackResult = Result<TrackEnd, RecorderError>;

/// A running recording: one thread per track, all writing into one spool.
pub struct Recorder {
    recording_id: String,
    spool: Arc<Mutex<Spool>>,
    stop: Arc<AtomicBool>,
    threads: Vec<(String, JoinHandle<TrackResult>)>,
    events: Receiver<RecorderEvent>,
}

/// What a track thread reports once it has (or has not) opened its source.
type Ready = Result<(u32, String), RecorderError>;

impl Recorder {
    /// Opens every track's source, then creates the recording in the spool and starts capturing.
    /// Nothing is written to the spool if any source fails to open.
    pub fn start(
        spool: Arc<Mutex<Spool>>,
        config: RecorderConfig,
        tracks: Vec<TrackSpec>,
    ) -> Result<Recorder, RecorderError> {
        config.validate()?;
        if tracks.is_empty() {
            return Err(RecorderError::Config("a recording needs at least one track".into()));
        }
        let mut names = HashSet::new();
        for track in &tracks {
            if !names.insert(track.name.clone()) {
                return Err(RecorderError::Config(format!(
                    "track name {:?} is used twice",
                    track.name
                )));
            }
        }

        let stop = Arc::new(AtomicBool::new(false));
        let (events_tx, events) = mpsc::channel();
        let mut starting = Vec::new();
        for track in tracks {
            let (ready_tx, ready_rx) = mpsc::channel::<Ready>();
            let (go_tx, go_rx) = mpsc::channel::<Option<TrackContext>>();
            let capture_config = config.capture.clone();
            let name = track.name.clone();
            let handle = std::thread::Builder::new()
                .name(format!("track-{name}"))
                .spawn(move || track_thread(track, capture_config, ready_tx, go_rx))
                .map_err(|e| RecorderError::Config(format!("cannot start a thread: {e}")))?;
            starting.push((name, handle, ready_rx, go_tx));
        }

        let mut failure = None;
        let mut opened = Vec::new();
        for (name, _, ready_rx, _) in &starting {
            match ready_rx.recv() {
                Ok(Ok((rate, source))) => opened.push((name.clone(), rate, source)),
                Ok(Err(err)) => {
                    failure.get_or_insert(err);
                }
                Err(_) => {
                    failure.get_or_insert(RecorderError::ThreadPanicked { track: name.clone() });
                }
            }
        }
        if let Some(err) = failure {
            for (_, handle, _, go_tx) in starting {
                let _ = go_tx.send(None);
                let _ = handle.join();
            }
            return Err(err);
        }

        let started_at = OffsetDateTime::now_utc();
        let recording_id = uuid::Uuid::now_v7().to_string();
        let new = NewRecording {
            id: recording_id.clone(),
            title: config.title.clone(),
            source: RecordingSource::Desktop,
            started_at: started_at.format(&Rfc3339).unwrap_or_default(),
            tracks: opened.iter().map(|(name, _, _)| name.clone()).collect(),
        };
        let created = spool
            .lock()
            .map_err(|_| RecorderError::SpoolPoisoned)?
            .create_recording(&new);
        if let Err(err) = created {
            for (_, handle, _, go_tx) in starting {
                let _ = go_tx.send(None);
                let _ = handle.join();
            }
            return Err(err.into());
        }
        info!(%recording_id, "recording started");

        let mut threads = Vec::new();
        for ((name, handle, _, go_tx), (_, rate, source)) in starting.into_iter().zip(opened) {
            let _ = events_tx.send(RecorderEvent::TrackStarted {
                track: name.clone(),
                source,
                sample_rate: rate,
            });
            let ctx = TrackContext {
                name: name.clone(),
                recording_id: recording_id.clone(),
                started_at,
                config: config.clone(),
                spool: Arc::clone(&spool),
                events: events_tx.clone(),
                stop: Arc::clone(&stop),
            };
            let _ = go_tx.send(Some(ctx));
            threads.push((name, handle));
        }
        Ok(Recorder {
            recording_id,
            spool,
            stop,
            threads,
            events,
        })
    }

    pub fn recording_id(&self) -> &str {
        &self.recording_id
    }

    /// Events as they happen. The channel closes once every track has ended.
    pub fn events(&self) -> &Receiver<RecorderEvent> {
        &self.events
    }

    /// A flag that stops the recording when set (for signal handlers).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// True once every track has ended on its own (end of input, duration, failure).
    pub fn is_finished(&self) -> bool {
        self.threads.iter().all(|(_, handle)| handle.is_finished())
    }

    /// Stops capturing, seals every track's last segment and marks the recording stopped.
    pub fn stop(self) -> Result<RecordingSummary, RecorderError> {
        self.request_stop();
        self.wait()
    }

    /// Waits for every track to end, then marks the recording stopped. If a track failed, the
    /// recording is still stopped (its sealed audio is kept) and the first failure is returned.
    pub fn wait(self) -> Result<RecordingSummary, RecorderError> {
        let mut failure = None;
        for (name, handle) in self.threads {
            match handle.join() {
                Ok(Ok(end)) => info!(track = %name, ?end, "track ended"),
                Ok(Err(err)) => {
                    error!(track = %name, "track failed: {err}");
                    failure.get_or_insert(err);
                }
                Err(_) => {
                    failure.get_or_insert(RecorderError::ThreadPanicked { track: name });
                }
            }
        }
        let mut spool = self.spool.lock().map_err(|_| RecorderError::SpoolPoisoned)?;
        spool.apply_recording_event(&self.recording_id, RecordingEvent::Stop)?;
        spool.apply_recording_event(&self.recording_id, RecordingEvent::Finalized)?;
        let summary = summarize(&spool, &self.recording_id)?;
        drop(spool);
        match failure {
            Some(err) => Err(err),
            None => Ok(summary),
        }
    }
}

fn describe(source: &Source) -> String {
    match source {
        Source::Device { name: Some(name) } => format!("device {name}"),
        Source::Device { name: None } => "default input device".to_string(),
        Source::File { path, realtime } => format!(
            "file {}{}",
            path.display(),
            if *realtime { " (real time)" } else { "" }
        ),
    }
}

fn track_thread(
    track: TrackSpec,
    capture_config: chronote_capture::CaptureConfig,
    ready: Sender<Ready>,
    go: Receiver<Option<TrackContext>>,
) -> TrackResult {
    let capture = match chronote_capture::open(&track.source, &capture_config) {
        Ok(capture) => capture,
        Err(source) => {
            let err = RecorderError::Capture {
                track: track.name.clone(),
                source,
            };
            let _ = ready.send(Err(err));
            return Ok(TrackEnd::Failed);
        }
    };
    let rate = capture.sample_rate();
    let _ = ready.send(Ok((rate, describe(&track.source))));
    let Ok(Some(ctx)) = go.recv() else {
        capture.stop();
        return Ok(TrackEnd::Failed);
    };
    let events = ctx.events.clone();
    let name = ctx.name.clone();
    let result = TrackPipeline::new(ctx, rate).and_then(|pipeline| pipeline.run(capture));
    let (reason, error) = match &result {
        Ok(end) => (*end, None),
        Err(err) => (TrackEnd::Failed, Some(err.to_string())),
    };
    let _ = events.send(RecorderEvent::TrackEnded {
        track: name,
        reason,
        error,
    });
    result
}
