//! Settings of one recording.

use std::path::PathBuf;
use std::time::Duration;

use chronote_capture::{CaptureConfig, Source};
use chronote_encode::EncoderConfig;

use crate::error::RecorderError;

/// Shortest and longest segment target the recorder accepts, in seconds.
pub const SEGMENT_SECS_RANGE: std::ops::RangeInclusive<u32> = 5..=600;

#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// Target segment length; segments end at the quietest frame of the last `cut_window`.
    pub segment_secs: u32,
    pub cut_window: Duration,
    pub encoder: EncoderConfig,
    pub capture: CaptureConfig,
    /// Stop after this much timeline (gaps included), if set.
    pub duration: Option<Duration>,
    pub title: String,
    /// How often a paused recorder (spool at its bound) asks the spool again for room.
    pub spool_retry: Duration,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            segment_secs: 30,
            cut_window: Duration::from_secs(2),
            encoder: EncoderConfig::default(),
            capture: CaptureConfig::default(),
            duration: None,
            title: String::new(),
            spool_retry: Duration::from_secs(1),
        }
    }
}

impl RecorderConfig {
    pub fn validate(&self) -> Result<(), RecorderError> {
        if !SEGMENT_SECS_RANGE.contains(&self.segment_secs) {
            return Err(RecorderError::Config(format!(
                "segment length {} s is outside {}..={} s",
                self.segment_secs,
                SEGMENT_SECS_RANGE.start(),
                SEGMENT_SECS_RANGE.end()
            )));
        }
        if self.cut_window.as_millis() < u128::from(self.encoder.frame_ms)
            || self.cut_window.as_secs() >= u64::from(self.segment_secs)
        {
            return Err(RecorderError::Config(format!(
                "cut window {} ms must be between one frame and the segment length",
                self.cut_window.as_millis()
            )));
        }
        if !(6_000..=510_000).contains(&self.encoder.bitrate_bps) {
            return Err(RecorderError::Config(format!(
                "bitrate {} bit/s is outside 6000..=510000 (the range Opus supports)",
                self.encoder.bitrate_bps
            )));
        }
        Ok(())
    }
}

/// One track of a recording and where its audio comes from.
#[derive(Debug, Clone)]
pub struct TrackSpec {
    pub name: String,
    pub source: Source,
}

impl TrackSpec {
    pub fn device(name: &str, device: Option<String>) -> Self {
        TrackSpec {
            name: name.to_string(),
            source: Source::Device { name: device },
        }
    }

    pub fn file(name: &str, path: PathBuf, realtime: bool) -> Self {
        TrackSpec {
            name: name.to_string(),
            source: Source::File { path, realtime },
        }
    }
}
