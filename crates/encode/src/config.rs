//! Encoder settings and the frame/page arithmetic derived from them.

use crate::EncodeError;

/// The Opus timeline is always counted at 48 kHz (RFC 7845 §4).
pub(crate) const GRANULE_RATE: u32 = 48_000;

/// How a segment is encoded and paged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Encoder input rate in Hz: 8000, 12000, 16000, 24000 or 48000.
    pub sample_rate: u32,
    /// Target bitrate in bits per second (VBR), 500..=512000.
    pub bitrate_bps: u32,
    /// Opus frame duration in milliseconds: 10, 20, 40 or 60.
    pub frame_ms: u32,
    /// Audio per journal page: the most a crash can lose. At least one frame per page.
    pub journal_page_ms: u32,
    /// Audio per page of a sealed file. At least one frame per page.
    pub sealed_page_ms: u32,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            sample_rate: 16_000,
            bitrate_bps: 24_000,
            frame_ms: 20,
            journal_page_ms: 500,
            sealed_page_ms: 1000,
        }
    }
}

impl EncoderConfig {
    /// Checks every field; the writer calls this before touching the disk.
    pub fn validate(&self) -> Result<(), EncodeError> {
        if ![8_000, 12_000, 16_000, 24_000, 48_000].contains(&self.sample_rate) {
            return Err(EncodeError::Config(format!(
                "sample_rate {} Hz is not one of 8000, 12000, 16000, 24000, 48000",
                self.sample_rate
            )));
        }
        if !(500..=512_000).contains(&self.bitrate_bps) {
            return Err(EncodeError::Config(format!(
                "bitrate_bps {} is outside 500..=512000",
                self.bitrate_bps
            )));
        }
        if ![10, 20, 40, 60].contains(&self.frame_ms) {
            return Err(EncodeError::Config(format!(
                "frame_ms {} is not one of 10, 20, 40, 60",
                self.frame_ms
            )));
        }
        if self.journal_page_ms == 0 {
            return Err(EncodeError::Config("journal_page_ms must be > 0".into()));
        }
        if self.sealed_page_ms == 0 {
            return Err(EncodeError::Config("sealed_page_ms must be > 0".into()));
        }
        Ok(())
    }

    /// Samples per frame at the encoder rate (320 for 16 kHz / 20 ms).
    pub fn frame_len(&self) -> usize {
        (self.sample_rate / 1000 * self.frame_ms) as usize
    }

    /// Duration of one frame in 48 kHz units (960 for 20 ms).
    pub fn frame_48k(&self) -> u64 {
        u64::from(GRANULE_RATE / 1000 * self.frame_ms)
    }

    /// 48 kHz units per encoder-rate sample (3 at 16 kHz).
    pub fn rate_factor(&self) -> u64 {
        u64::from(GRANULE_RATE / self.sample_rate)
    }

    /// Frames per journal page; rounding down keeps the crash loss within `journal_page_ms`.
    pub fn journal_page_frames(&self) -> usize {
        (self.journal_page_ms / self.frame_ms).max(1) as usize
    }

    /// Frames per page of a sealed file.
    pub fn sealed_page_frames(&self) -> usize {
        (self.sealed_page_ms / self.frame_ms).max(1) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_16k_24kbps_20ms() {
        let c = EncoderConfig::default();
        c.validate().unwrap();
        assert_eq!(c.frame_len(), 320);
        assert_eq!(c.frame_48k(), 960);
        assert_eq!(c.rate_factor(), 3);
        assert_eq!(c.journal_page_frames(), 25);
        assert_eq!(c.sealed_page_frames(), 50);
    }

    #[test]
    fn every_rate_and_frame_size_is_accepted() {
        for rate in [8_000, 12_000, 16_000, 24_000, 48_000] {
            for frame_ms in [10, 20, 40, 60] {
                let c = EncoderConfig {
                    sample_rate: rate,
                    frame_ms,
                    ..EncoderConfig::default()
                };
                c.validate().unwrap();
                assert_eq!(c.frame_len() as u32, rate / 1000 * frame_ms);
                assert_eq!(c.frame_48k(), u64::from(48 * frame_ms));
            }
        }
    }

    #[test]
    fn bad_values_are_rejected_with_the_field_named() {
        let cases: [(EncoderConfig, &str); 6] = [
            (
                EncoderConfig {
                    sample_rate: 44_100,
                    ..Default::default()
                },
                "sample_rate 44100",
            ),
            (
                EncoderConfig {
                    bitrate_bps: 100,
                    ..Default::default()
                },
                "bitrate_bps 100",
            ),
            (
                EncoderConfig {
                    frame_ms: 25,
                    ..Default::default()
                },
                "frame_ms 25",
            ),
            (
                EncoderConfig {
                    frame_ms: 5,
                    ..Default::default()
                },
                "frame_ms 5",
            ),
            (
                EncoderConfig {
                    journal_page_ms: 0,
                    ..Default::default()
                },
                "journal_page_ms",
            ),
            (
                EncoderConfig {
                    sealed_page_ms: 0,
                    ..Default::default()
                },
                "sealed_page_ms",
            ),
        ];
        for (config, needle) in cases {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} lacks {needle:?}");
        }
    }

    #[test]
    fn short_page_settings_still_hold_one_frame() {
        let c = EncoderConfig {
            journal_page_ms: 5,
            sealed_page_ms: 30,
            ..Default::default()
        };
        assert_eq!(c.journal_page_frames(), 1);
        assert_eq!(c.sealed_page_frames(), 1);
    }
}
