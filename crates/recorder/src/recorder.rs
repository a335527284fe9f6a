//! Starting, running and stopping a recording.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
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
use crate::source::{AudioSource, OpenTrack};
use crate::summary::{RecordingSummary, summarize};
use crate::track::{TrackContext, TrackPipeline};

type TrackResult = Result<TrackEnd, RecorderError>;

/// Events that may wait for a reader before new ones are dropped.
const EVENT_QUEUE: usize = 4096;

/// A running recording: one thread per track, all writing into one spool.
pub struct Recorder {
    recording_id: String,
    spool: Arc<Mutex<Spool>>,
    stop: Arc<AtomicBool>,
    threads: Vec<(String, JoinHandle<TrackResult>)>,
    events: Receiver<RecorderEvent>,
}

impl Recorder {
    /// Opens every track's source, then creates the recording in the spool and starts capturing.
    /// Nothing is written to the spool if any source fails to open.
    pub fn start(
        spool: Arc<Mutex<Spool>>,
        config: RecorderConfig,
        tracks: Vec<TrackSpec>,
    ) -> Result<Recorder, RecorderError> {
        config.validate()?;
        let mut open = Vec::new();
        for track in tracks {
            let capture =
                chronote_capture::open(&track.source, &config.capture).map_err(|source| {
                    RecorderError::Capture {
                        track: track.name.clone(),
                        source,
                    }
                })?;
            open.push(OpenTrack {
                description: describe(&track.source),
                name: track.name,
                source: Box::new(capture),
            });
        }
        Self::start_sources(spool, config, open)
    }

    /// Starts recording from sources that are already open (one thread per track).
    pub fn start_sources(
        spool: Arc<Mutex<Spool>>,
        config: RecorderConfig,
        tracks: Vec<OpenTrack>,
    ) -> Result<Recorder, RecorderError> {
        config.validate()?;
        if tracks.is_empty() {
            return Err(RecorderError::Config(
                "a recording needs at least one track".into(),
            ));
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

        let started_at = OffsetDateTime::now_utc();
        let recording_id = uuid::Uuid::now_v7().to_string();
        let new = NewRecording {
            id: recording_id.clone(),
            title: config.title.clone(),
            source: RecordingSource::Desktop,
            started_at: started_at.format(&Rfc3339).unwrap_or_default(),
            tracks: tracks.iter().map(|t| t.name.clone()).collect(),
        };
        spool
            .lock()
            .map_err(|_| RecorderError::SpoolPoisoned)?
            .create_recording(&new)?;
        info!(%recording_id, "recording started");

        let stop = Arc::new(AtomicBool::new(false));
        // Bounded: a caller that stops reading events must not make a days-long recording grow
        // in memory. Events are advice; the spool holds the truth.
        let (events_tx, events) = mpsc::sync_channel(EVENT_QUEUE);
        let mut threads = Vec::new();
        for track in tracks {
            let _ = events_tx.try_send(RecorderEvent::TrackStarted {
                track: track.name.clone(),
                source: track.description.clone(),
                sample_rate: track.source.sample_rate(),
            });
            let ctx = TrackContext {
                name: track.name.clone(),
                recording_id: recording_id.clone(),
                started_at,
                config: config.clone(),
                spool: Arc::clone(&spool),
                events: events_tx.clone(),
                stop: Arc::clone(&stop),
            };
            let name = track.name.clone();
            let source = track.source;
            let spawned = std::thread::Builder::new()
                .name(format!("track-{name}"))
                .spawn(move || track_thread(ctx, source));
            match spawned {
                Ok(handle) => threads.push((name, handle)),
                Err(e) => {
                    stop.store(true, Ordering::SeqCst);
                    for (_, handle) in threads {
                        let _ = handle.join();
                    }
                    return Err(RecorderError::Config(format!("cannot start a thread: {e}")));
                }
            }
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

    /// Events as they happen. The channel closes once every track has ended; it holds at most
    /// 4096 unread events and drops newer ones, so read it (or ignore it: nothing else grows).
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
        let mut spool = self
            .spool
            .lock()
            .map_err(|_| RecorderError::SpoolPoisoned)?;
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

fn track_thread(ctx: TrackContext, source: Box<dyn AudioSource>) -> TrackResult {
    let events = ctx.events.clone();
    let name = ctx.name.clone();
    let rate = source.sample_rate();
    let result = match TrackPipeline::new(ctx, rate) {
        Ok(pipeline) => pipeline.run(source),
        Err(err) => {
            source.stop();
            Err(err)
        }
    };
    let (reason, error) = match &result {
        Ok(end) => (*end, None),
        Err(err) => (TrackEnd::Failed, Some(err.to_string())),
    };
    let _ = events.try_send(RecorderEvent::TrackEnded {
        track: name,
        reason,
        error,
    });
    result
}
