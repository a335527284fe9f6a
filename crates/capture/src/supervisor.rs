//! The device supervisor: a thread that owns the live cpal stream, watches it for loss (an error
//! callback saying the device is gone, or no callback for `stall_timeout`), and then reopens the
//! default input device every `reopen_interval` until it works. Each new stream gets a fresh
//! segment, handed to the reader over a channel; the reader turns the switch into a
//! `Gap{DeviceLost}` of exact length and, if needed, `RateChanged`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use crate::CaptureConfig;
use crate::device::{InputBackend, LiveStream};
use crate::error::CaptureError;
use crate::ring::{self, Clock, Segment, SegmentShared, Stats};
use crate::state::{DeviceEvent, DeviceState};

/// How often the supervisor looks at the stream.
const TICK: Duration = Duration::from_millis(10);

/// Prepares and starts a stream from `backend`, with a fresh segment sized for its rate.
pub(crate) fn start_stream(
    backend: &mut dyn InputBackend,
    name: Option<&str>,
    ring_ms: u32,
    stats: &Arc<Stats>,
    clock: &Clock,
) -> Result<(LiveStream, Segment), CaptureError> {
    let prepared = backend.prepare(name)?;
    tracing::debug!(
        device = prepared.device_name(),
        rate = prepared.rate(),
        "starting input stream"
    );
    let (writer, segment) = ring::segment(prepared.rate(), ring_ms, stats.clone(), clock.clone());
    let stream = prepared.start(writer)?;
    Ok((stream, segment))
}

pub(crate) struct Supervisor {
    pub backend: Box<dyn InputBackend>,
    pub stream: Option<LiveStream>,
    pub current: Arc<SegmentShared>,
    pub segments: mpsc::Sender<Segment>,
    pub stop: Arc<AtomicBool>,
    pub stats: Arc<Stats>,
    pub clock: Clock,
    pub config: CaptureConfig,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Supervisor {
    pub(crate) fn run(mut self) {
        let stall_ns = nanos(self.config.stall_timeout);
        let reopen_ns = nanos(self.config.reopen_interval);
        let mut state = DeviceState::Streaming;
        let mut next_attempt_ns = 0u64;
        let mut failures = 0u32;
        loop {
            let now = self.clock.now_ns();
            let event = if self.stop.load(Ordering::Acquire) {
                self.close_current();
                Some(DeviceEvent::Stop)
            } else {
                match state {
                    DeviceState::Streaming => {
                        let lost = self.current.is_lost();
                        let silent_ns = now.saturating_sub(self.current.last_activity_ns());
                        if lost || silent_ns > stall_ns {
                            tracing::warn!(
                                reason = if lost {
                                    "stream error"
                                } else {
                                    "no audio callbacks"
                                },
                                silent_ms = silent_ns / 1_000_000,
                                "audio input lost; reopening the default input device"
                            );
                            self.close_current();
                            next_attempt_ns = now;
                            failures = 0;
                            Some(DeviceEvent::Lost)
                        } else {
                            None
                        }
                    }
                    DeviceState::Reopening if now >= next_attempt_ns => {
                        match start_stream(
                            self.backend.as_mut(),
                            None,
                            self.config.ring_ms,
                            &self.stats,
                            &self.clock,
                        ) {
                            Ok((stream, segment)) => {
                                tracing::info!(
                                    rate = segment.rate(),
                                    attempts = failures + 1,
                                    "audio input reopened"
                                );
                                self.current = segment.shared().clone();
                                self.stream = Some(stream);
                                self.stats.device_reopens.fetch_add(1, Ordering::Relaxed);
                                if self.segments.send(segment).is_err() {
                                    // The reader is gone; nobody needs audio any more.
                                    self.close_current();
                                    return;
                                }
                                Some(DeviceEvent::Reopened)
                            }
                            Err(e) => {
                                if failures == 0 {
                                    tracing::warn!(error = %e, "reopening the audio input failed; retrying");
                                } else {
                                    tracing::debug!(error = %e, failures, "reopen failed");
                                }
                                failures = failures.saturating_add(1);
                                next_attempt_ns = now.saturating_add(reopen_ns);
                                Some(DeviceEvent::ReopenFailed)
                            }
                        }
                    }
                    DeviceState::Reopening => None,
                    DeviceState::Stopped => return,
                }
            };
            if let Some(event) = event {
                match state.on(event) {
                    Ok(next) => state = next,
                    Err(e) => {
                        tracing::error!(error = %e, "device supervisor bug; stopping capture");
                        self.close_current();
                        return;
                    }
                }
            }
            if state == DeviceState::Stopped {
                return;
            }
            std::thread::park_timeout(TICK);
        }
    }

    /// Stops the stream (which drops its callback) and marks its segment closed, so the reader
    /// drains what was captured and then waits for the next stream.
    fn close_current(&mut self) {
        drop(self.stream.take());
        self.current.close();
    }
}
