//! What the recorder reports while it runs.

use serde::Serialize;

/// Why a track stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackEnd {
    EndOfInput,
    Duration,
    Stopped,
    Failed,
}

/// Events are sent as they happen; the CLI prints them as JSON lines.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RecorderEvent {
    TrackStarted {
        track: String,
        source: String,
        sample_rate: u32,
    },
    SegmentSealed {
        track: String,
        sequence: u64,
        start_48k: u64,
        length_48k: u64,
        bytes: u64,
        path: String,
    },
    Gap {
        track: String,
        start_48k: u64,
        length_48k: u64,
        reason: String,
    },
    Warning {
        track: String,
        message: String,
    },
    Progress {
        track: String,
        captured_ms: u64,
    },
    TrackEnded {
        track: String,
        reason: TrackEnd,
        error: Option<String>,
    },
}
