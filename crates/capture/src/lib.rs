//! Audio capture for Chronote: mono f32 from a cpal input device or a WAV file, through one
//! lock-free ring, with every missing sample accounted for as an exact gap; plus an exact
//! resampler.
//!
//! ```no_run
//! use std::time::Duration;
//! use chronote_capture::{open, CaptureConfig, Chunk, Resampler, Source};
//!
//! let mut cap = open(&Source::Device { name: None }, &CaptureConfig::default())?;
//! let mut rs = Resampler::new(cap.sample_rate(), 16_000)?;
//! let (mut buf, mut out16k) = (vec![0.0f32; 4800], Vec::new());
//! loop {
//!     match cap.read(&mut buf, Duration::from_millis(100))? {
//!         Chunk::Audio(n) => rs.process(&buf[..n], &mut out16k),
//!         Chunk::Gap { samples, rate, reason } => { /* seal, record the gap, go on */ }
//!         Chunk::RateChanged(rate) => { rs.finish(&mut out16k); rs = Resampler::new(rate, 16_000)?; }
//!         Chunk::Idle => {}
//!         Chunk::End => break,
//!     }
//! }
//! # Ok::<(), chronote_capture::CaptureError>(())
//! ```
//!
//! How it fits together:
//! - A producer (the cpal data callback, or a WAV reader thread) converts each block to mono f32
//!   ([`convert`]) and pushes it into an `rtrb` ring. The callback never allocates, locks or
//!   blocks; when the ring is full it drops and counts, and publishes the exact gap position
//!   through a second small ring, so [`Capture::read`] returns audio up to the hole, then
//!   [`Chunk::Gap`] with [`GapReason::Overflow`].
//! - A device supervisor thread notices a lost device (error callback or `stall_timeout` without
//!   callbacks), reopens the default input every `reopen_interval`, and the reader turns the
//!   outage into one [`Chunk::Gap`] with [`GapReason::DeviceLost`] measured on the monotonic clock
//!   (then [`Chunk::RateChanged`] if the new stream runs at another rate). The timeline is never
//!   stretched or shifted.
//! - [`Resampler`] converts rates with rubato, compensating its delay and producing exactly
//!   `round(n * out / in)` samples for `n` input samples.
//! - [`alsa_feed`] explains (and helps) feeding a raw PCM file to cpal as the default ALSA capture
//!   device on machines without a sound card, for end-to-end tests.

pub mod alsa_feed;
mod capture;
pub mod convert;
mod device;
mod error;
mod file;
mod resample;
mod ring;
mod state;
mod supervisor;

use std::path::PathBuf;
use std::time::Duration;

pub use capture::{Capture, CaptureStats, Chunk, GapReason};
pub use device::{DeviceInfo, list_input_devices};
pub use error::CaptureError;
pub use resample::Resampler;

/// Where audio comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A cpal input device of the default host.
    Device {
        /// Exact device name (or backend id) as [`list_input_devices`] reports it; `None` for the
        /// default input device.
        name: Option<String>,
    },
    /// A WAV file.
    File {
        /// The file.
        path: PathBuf,
        /// `true`: deliver at the file's own pace (~10 ms blocks), like a device. `false`: as fast
        /// as the reader consumes, never dropping anything.
        realtime: bool,
    },
}

/// Tuning of a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureConfig {
    /// Ring capacity in milliseconds of audio at the source rate.
    pub ring_ms: u32,
    /// A device that delivers no callback for this long counts as lost.
    pub stall_timeout: Duration,
    /// Delay between attempts to reopen a lost device.
    pub reopen_interval: Duration,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            ring_ms: 2000,
            stall_timeout: Duration::from_secs(3),
            reopen_interval: Duration::from_millis(500),
        }
    }
}

/// Opens `source` and starts capturing.
///
/// For devices this picks the named device (or the default input), uses its default input
/// configuration and starts the stream; failures are returned here (no device, unknown name,
/// busy, unsupported sample format). For files, the header is validated here (missing, not a WAV,
/// unsupported encoding, no audio).
pub fn open(source: &Source, config: &CaptureConfig) -> Result<Capture, CaptureError> {
    match source {
        Source::Device { name } => Capture::open_device(
            Box::new(device::CpalBackend),
            name.as_deref(),
            config,
            ring::Clock::real(),
        ),
        Source::File { path, realtime } => Capture::open_file(path, *realtime, config),
    }
}

#[cfg(test)]
mod tests;
