//! Chronote's bounded on-disk spool: segment files plus SQLite state.
//!
//! The recorder writes each track as a series of Ogg Opus segments. The spool decides where each
//! segment lives, remembers what state it is in (open journal, sealed, uploading, ...), records
//! gaps in the timeline, keeps the total size under a budget by evicting segments the server has
//! acknowledged, and after a crash puts everything back into a consistent state.
//!
//! ```no_run
//! use chronote_spool::{NewRecording, SealedInfo, Source, Spool, SpoolConfig};
//! # fn main() -> Result<(), chronote_spool::SpoolError> {
//! let mut spool = Spool::open(&Spool::default_dir()?, SpoolConfig::default())?;
//! let report = spool.recover()?; // always, before anything else
//! # let _ = report;
//! spool.create_recording(&NewRecording {
//!     id: "0b9d2c1e-7d3f-4c1a-9a55-1f2e3d4c5b6a".into(),
//!     title: "Standup".into(),
//!     source: Source::Desktop,
//!     started_at: "2025-01-01T09:00:00Z".into(),
//!     tracks: vec!["mic".into()],
//! })?;
//! let seg = spool.open_segment("0b9d2c1e-7d3f-4c1a-9a55-1f2e3d4c5b6a", "mic", 0)?;
//! // ... the encoder journals into seg.part_path and seals into seg.final_path ...
//! # let sha256 = String::new();
//! spool.seal_segment(seg.id, &SealedInfo { bytes: 1234, length_48k: 1_440_000, sha256 })?;
//! # Ok(()) }
//! ```
//!
//! Layout: `<root>/spool.db` (WAL), `<root>/spool.lock` (held for the life of a [`Spool`]),
//! `<root>/segments/<recording_id>/<track>/<seq:06>.opus[.part]`.
//! Timeline positions and lengths are 48 kHz sample counts (`_48k`).

mod bound;
mod codec;
mod db;
mod error;
mod layout;
mod model;
mod recovery;
mod spool;
pub mod state;
mod validate;

pub use db::SCHEMA_VERSION;
pub use error::SpoolError;
pub use model::{
    GapReason, GapRow, NewRecording, OpenSegment, RecordingRow, RecordingSource, RecordingSummary,
    Room, SealedInfo, SegmentRow, SegmentStateCounts, Source, TrackSummary,
};
pub use recovery::RecoveryReport;
pub use spool::{Spool, SpoolConfig};
pub use state::{IllegalTransition, RecordingEvent, RecordingState, SegmentEvent, SegmentState};
