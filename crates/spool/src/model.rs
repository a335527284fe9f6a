//! Values passed into and returned from the spool. Everything returned derives `Serialize` so the
//! CLI can print it as JSON.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::state::{RecordingState, SegmentState};

/// Where a recording's audio came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingSource {
    Desktop,
    Discord,
    Import,
}

impl RecordingSource {
    pub const ALL: [RecordingSource; 3] = [
        RecordingSource::Desktop,
        RecordingSource::Discord,
        RecordingSource::Import,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordingSource::Desktop => "desktop",
            RecordingSource::Discord => "discord",
            RecordingSource::Import => "import",
        }
    }

    pub fn parse(text: &str) -> Option<RecordingSource> {
        RecordingSource::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// Why a stretch of a track's timeline has no audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// The capture ring was full; the encoder fell behind.
    Overflow,
    /// The capture device disappeared.
    DeviceLost,
    /// The spool had no room; audio was discarded (but counted).
    SpoolFull,
    /// The process died.
    Crash,
}

impl GapReason {
    pub const ALL: [GapReason; 4] = [
        GapReason::Overflow,
        GapReason::DeviceLost,
        GapReason::SpoolFull,
        GapReason::Crash,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GapReason::Overflow => "overflow",
            GapReason::DeviceLost => "device_lost",
            GapReason::SpoolFull => "spool_full",
            GapReason::Crash => "crash",
        }
    }

    pub fn parse(text: &str) -> Option<GapReason> {
        GapReason::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Short name for [`RecordingSource`].
pub type Source = RecordingSource;

impl fmt::Display for RecordingSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for GapReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A recording to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecording {
    /// `[A-Za-z0-9-]{1,64}`, usually a UUID.
    pub id: String,
    pub title: String,
    pub source: RecordingSource,
    /// RFC 3339.
    pub started_at: String,
    /// Track names, `[a-z0-9_-]{1,32}`, unique, at least one.
    pub tracks: Vec<String>,
}

/// A recording as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordingRow {
    pub id: String,
    pub title: String,
    pub source: RecordingSource,
    pub state: RecordingState,
    pub started_at: String,
    pub tracks: Vec<String>,
}

/// A freshly opened segment: write the journal to `part_path`, seal into `final_path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenSegment {
    pub id: i64,
    pub sequence: u64,
    pub part_path: PathBuf,
    pub final_path: PathBuf,
}

/// What sealing produced (the final file must already be on disk with exactly `bytes` bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedInfo {
    pub bytes: u64,
    pub length_48k: u64,
    /// 64 lowercase hex digits.
    pub sha256: String,
}

/// A segment as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentRow {
    pub id: i64,
    pub recording_id: String,
    pub track: String,
    pub sequence: u64,
    pub start_48k: u64,
    /// Length in 48 kHz samples; 0 while open.
    pub length_48k: u64,
    /// Size of the final file; 0 while open.
    pub bytes: u64,
    /// SHA-256 of the final file as lowercase hex; empty while open.
    pub sha256: String,
    pub state: SegmentState,
    /// The `.opus.part` journal while open, the final `.opus` afterwards.
    pub path: PathBuf,
    /// RFC 3339 UTC, once sealed.
    pub sealed_at: Option<String>,
}

/// A recorded hole in a track's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GapRow {
    pub id: i64,
    pub recording_id: String,
    pub track: String,
    pub start_48k: u64,
    pub length_48k: u64,
    pub reason: GapReason,
    /// RFC 3339 UTC.
    pub recorded_at: String,
}

/// How many of a track's segments are in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SegmentStateCounts {
    pub open: u64,
    pub sealed: u64,
    pub uploading: u64,
    pub uploaded: u64,
    pub acknowledged: u64,
    pub evicted: u64,
}

/// One track of a recording summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrackSummary {
    pub name: String,
    /// End of the track's timeline, once known (set at stop or by crash recovery).
    pub end_48k: Option<u64>,
    /// All segment rows, whatever their state.
    pub segments: u64,
    /// Sum of sealed segments' lengths (open segments have none yet).
    pub duration_48k: u64,
    /// Sum of sealed segments' file sizes (including evicted ones).
    pub bytes: u64,
    pub states: SegmentStateCounts,
}

/// A recording with per-track totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordingSummary {
    pub id: String,
    pub title: String,
    pub source: RecordingSource,
    pub state: RecordingState,
    pub started_at: String,
    pub tracks: Vec<TrackSummary>,
    pub gaps: u64,
}

/// Result of [`crate::Spool::ensure_room`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Room {
    Available,
    /// Nothing more can be evicted; the caller must stop writing (record a spool_full gap).
    Full {
        usage: u64,
        max_bytes: u64,
        free: u64,
        min_free: u64,
    },
}
