//! Where a track's audio comes from, as the engine sees it.

use std::time::Duration;

use chronote_capture::{Capture, CaptureError, Chunk};

/// A live stream of mono audio with gaps, as [`chronote_capture::Capture`] delivers it.
///
/// The engine records from real devices and files through `Capture`; the trait exists so that
/// tests can inject what real hardware will not do on demand (an overflow at an exact sample, a
/// device that vanishes and comes back at another rate).
pub trait AudioSource: Send {
    fn sample_rate(&self) -> u32;
    fn read(&mut self, out: &mut [f32], timeout: Duration) -> Result<Chunk, CaptureError>;
    fn stop(self: Box<Self>);
}

impl AudioSource for Capture {
    fn sample_rate(&self) -> u32 {
        Capture::sample_rate(self)
    }

    fn read(&mut self, out: &mut [f32], timeout: Duration) -> Result<Chunk, CaptureError> {
        Capture::read(self, out, timeout)
    }

    fn stop(self: Box<Self>) {
        Capture::stop(*self)
    }
}

/// A track ready to record: its name, a description for people, and its open source.
pub struct OpenTrack {
    pub name: String,
    pub description: String,
    pub source: Box<dyn AudioSource>,
}
