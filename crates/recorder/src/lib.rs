//! The Chronote recorder engine.
//!
//! It wires the stages of the desktop half of the pipeline together, one thread per track:
//!
//! ```text
//! chronote_capture (device or WAV) -> Resampler -> 20 ms frames -> chronote_encode::SegmentWriter
//!     -> sealed Ogg Opus segment -> chronote_spool (files + SQLite)
//! ```
//!
//! The engine owns the decisions that need all three: where a segment ends (the quietest frame
//! before the target length), how gaps land on the timeline (overflow, device loss, a full spool),
//! and when capture pauses because the spool is at its bound. It never holds more than a few
//! seconds of audio in memory per track, whatever the length of the recording.
//!
//! ```no_run
//! use std::sync::{Arc, Mutex};
//! use chronote_recorder::{Recorder, RecorderConfig, TrackSpec};
//! use chronote_spool::{Spool, SpoolConfig};
//!
//! let spool = Spool::open(std::path::Path::new("/tmp/spool"), SpoolConfig::default())?;
//! let spool = Arc::new(Mutex::new(spool));
//! let tracks = vec![TrackSpec::file("me", "meeting.wav".into(), false)];
//! let recorder = Recorder::start(spool, RecorderConfig::default(), tracks)?;
//! let summary = recorder.wait()?;
//! println!("{} segments", summary.segments);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod clock;
mod config;
mod cut;
mod error;
mod event;
mod recorder;
mod source;
mod summary;
mod track;

pub use clock::TIMELINE_RATE;
pub use config::{RecorderConfig, TrackSpec};
pub use error::RecorderError;
pub use event::{RecorderEvent, TrackEnd};
pub use recorder::Recorder;
pub use source::{AudioSource, OpenTrack};
pub use summary::{GapSummary, RecordingSummary, TrackSummary, summarize};
