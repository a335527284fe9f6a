//! The account of a recording that `chronote record --json` prints at the end.

use chronote_spool::{Spool, SpoolError};
use serde::Serialize;

use crate::clock::TIMELINE_RATE;

const UNITS_PER_MS: u64 = TIMELINE_RATE / 1000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordingSummary {
    pub recording_id: String,
    pub state: String,
    pub segments: u64,
    /// Audio in sealed segments, per track at most; gaps are not counted.
    pub duration_ms: u64,
    pub duration_48k: u64,
    pub bytes: u64,
    pub tracks: Vec<TrackSummary>,
    pub gaps: Vec<GapSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackSummary {
    pub name: String,
    pub segments: u64,
    pub duration_ms: u64,
    pub duration_48k: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapSummary {
    pub track: String,
    pub start_48k: u64,
    pub length_48k: u64,
    pub start_ms: u64,
    pub duration_ms: u64,
    pub reason: String,
}

/// Reads a recording's segments and gaps back from the spool.
pub fn summarize(spool: &Spool, recording_id: &str) -> Result<RecordingSummary, SpoolError> {
    let recording = spool.recording(recording_id)?;
    let segments = spool.segments(recording_id)?;
    let gaps = spool.gaps(recording_id)?;
    let mut tracks: Vec<TrackSummary> = Vec::new();
    for seg in &segments {
        let index = match tracks.iter().position(|t| t.name == seg.track) {
            Some(i) => i,
            None => {
                tracks.push(TrackSummary {
                    name: seg.track.clone(),
                    segments: 0,
                    duration_ms: 0,
                    duration_48k: 0,
                    bytes: 0,
                });
                tracks.len() - 1
            }
        };
        let t = &mut tracks[index];
        t.segments += 1;
        t.duration_48k += seg.length_48k;
        t.duration_ms = t.duration_48k / UNITS_PER_MS;
        t.bytes += seg.bytes;
    }
    let duration_48k = tracks.iter().map(|t| t.duration_48k).max().unwrap_or(0);
    Ok(RecordingSummary {
        recording_id: recording_id.to_string(),
        state: recording
            .map(|r| r.state.to_string())
            .unwrap_or_else(|| "unknown".to_string()),
        segments: segments.len() as u64,
        duration_ms: duration_48k / UNITS_PER_MS,
        duration_48k,
        bytes: tracks.iter().map(|t| t.bytes).sum(),
        tracks,
        gaps: gaps
            .iter()
            .map(|g| GapSummary {
                track: g.track.clone(),
                start_48k: g.start_48k,
                length_48k: g.length_48k,
                start_ms: g.start_48k / UNITS_PER_MS,
                duration_ms: g.length_48k / UNITS_PER_MS,
                reason: g.reason.to_string(),
            })
            .collect(),
    })
}
