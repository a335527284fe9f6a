//! What the uploader tells the CLI and the tray: a progress snapshot and discrete events.

use std::time::{Duration, Instant};

use serde::Serialize;

/// A snapshot, published on a `watch` channel whenever it changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UploadProgress {
    /// Bytes the server confirmed during this run.
    pub bytes_sent: u64,
    /// Bytes of pending segments the server has not confirmed yet.
    pub bytes_left: u64,
    /// Segments not yet acknowledged (sealed, uploading or uploaded).
    pub segments_pending: u64,
    /// Recent goodput in bits per second (confirmed bytes, smoothed over a few seconds).
    pub rate_bps: u64,
    /// The most recent failure, cleared by the next success.
    pub last_error: Option<String>,
    /// The server could not be reached at the last attempt.
    pub offline: bool,
    /// Segments acknowledged during this run.
    pub acknowledged: u64,
}

/// Discrete things that happened, for JSON lines and logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum UploadEvent {
    /// The server has the recording (created now, or found identical).
    RecordingCreated { recording_id: String },
    /// The server confirmed a segment with a matching receipt; the spool may evict it.
    SegmentUploaded {
        recording_id: String,
        track: String,
        sequence: u64,
        bytes: u64,
    },
    /// The stop call went through; the recording is complete on the server.
    RecordingStopped { recording_id: String },
    /// A segment or recording the uploader gave up on for this run.
    UploadFailed {
        recording_id: String,
        what: String,
        error: String,
    },
}

/// Exponentially smoothed byte rate with a time constant of a few seconds.
#[derive(Debug)]
pub(crate) struct RateMeter {
    last: Instant,
    bytes_per_sec: f64,
}

const TIME_CONSTANT: Duration = Duration::from_secs(3);

impl RateMeter {
    pub fn new() -> Self {
        RateMeter {
            last: Instant::now(),
            bytes_per_sec: 0.0,
        }
    }

    /// Adds `bytes` confirmed now and returns the smoothed rate in bits per second.
    pub fn add(&mut self, bytes: u64, now: Instant) -> u64 {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        let tau = TIME_CONSTANT.as_secs_f64();
        let alpha = 1.0 - (-dt / tau).exp();
        // Bytes arriving in a burst count as spread over the time constant.
        let instant = bytes as f64 / dt.max(tau / 30.0);
        self.bytes_per_sec += alpha.max(1.0 / 30.0) * (instant - self.bytes_per_sec);
        (self.bytes_per_sec.max(0.0) * 8.0) as u64
    }

    /// The rate decayed to `now` with nothing new sent.
    pub fn current(&mut self, now: Instant) -> u64 {
        self.add(0, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_converges_to_a_steady_stream() {
        let mut m = RateMeter::new();
        let start = m.last;
        let mut rate = 0;
        // 100 KB every 100 ms = 1 MB/s = 8 Mbit/s, for 30 s.
        for i in 1..=300u64 {
            rate = m.add(100_000, start + Duration::from_millis(100 * i));
        }
        assert!((7_600_000..=8_400_000).contains(&rate), "{rate}");
        // After 30 s of silence the rate is near zero.
        let idle = m.current(start + Duration::from_secs(60));
        assert!(idle < 10_000, "{idle}");
    }
}
