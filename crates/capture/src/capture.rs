//! [`Capture`]: the consumer side shared by device and file sources.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::device::InputBackend;
use crate::error::CaptureError;
use crate::ring::{Clock, Next, Segment, Stats};
use crate::state::{ReadEvent, ReadPhase};
use crate::supervisor::{Supervisor, start_stream};
use crate::{CaptureConfig, file};

/// Longest sleep inside [`Capture::read`] while nothing is available.
const POLL: Duration = Duration::from_millis(2);

/// What one [`Capture::read`] call produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// `n` mono samples were written to the start of `out`, at [`Capture::sample_rate`].
    Audio(usize),
    /// Audio is missing here: exactly `samples` samples at `rate` Hz (the rate of the audio before
    /// the gap). The timeline continues after the gap.
    Gap {
        /// Length of the hole.
        samples: u64,
        /// Rate `samples` is counted in.
        rate: u32,
        /// Why the audio is missing.
        reason: GapReason,
    },
    /// After a device reopen at another rate: all following audio is at this rate.
    RateChanged(u32),
    /// Nothing arrived within the timeout.
    Idle,
    /// The file source is finished; every sample was delivered. Repeats on further calls.
    End,
}

/// Why a [`Chunk::Gap`] happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GapReason {
    /// The ring was full: the reader did not keep up with the device.
    Overflow,
    /// The device stopped delivering (unplugged, stalled, or failed) until it was reopened.
    DeviceLost,
}

/// Counters since the capture was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Samples dropped because the ring was full (equals the sum of all `Gap{Overflow}` lengths
    /// once they have been read).
    pub overflow_samples: u64,
    /// Separate overflow episodes.
    pub overflow_events: u64,
    /// Successful reopens after a device loss.
    pub device_reopens: u64,
    /// Total length of `Gap{DeviceLost}` emitted so far, in nanoseconds.
    pub device_lost_ns: u64,
    /// Overruns the driver reported (audio lost inside the driver; not measurable as a gap).
    pub xruns: u64,
}

enum Worker {
    File {
        thread: Option<JoinHandle<()>>,
        cancel: Arc<AtomicBool>,
    },
    Device {
        thread: Option<JoinHandle<()>>,
        stop: Arc<AtomicBool>,
        segments: mpsc::Receiver<Segment>,
        /// A reopened stream that has not delivered audio yet.
        next: Option<Segment>,
        /// End time of the last delivered device audio, if any was delivered.
        anchor_ns: Option<u64>,
    },
}

/// An open audio source. Read it with [`read`](Self::read) from one thread.
pub struct Capture {
    segment: Segment,
    rate: u32,
    phase: ReadPhase,
    queued: VecDeque<Chunk>,
    stats: Arc<Stats>,
    worker: Worker,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("rate", &self.rate)
            .field("phase", &self.phase)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn validate(config: &CaptureConfig) -> Result<(), CaptureError> {
    if config.ring_ms == 0 {
        return Err(CaptureError::InvalidConfig(
            "ring_ms must be at least 1".into(),
        ));
    }
    if config.stall_timeout.is_zero() {
        return Err(CaptureError::InvalidConfig(
            "stall_timeout must be positive".into(),
        ));
    }
    Ok(())
}

impl Capture {
    pub(crate) fn open_file(
        path: &std::path::Path,
        realtime: bool,
        config: &CaptureConfig,
    ) -> Result<Capture, CaptureError> {
        validate(config)?;
        let stats = Arc::new(Stats::default());
        let src = file::open(path, realtime, config.ring_ms, stats.clone(), Clock::real())?;
        Ok(Capture {
            rate: src.segment.rate(),
            segment: src.segment,
            phase: ReadPhase::Live,
            queued: VecDeque::with_capacity(4),
            stats,
            worker: Worker::File {
                thread: Some(src.thread),
                cancel: src.cancel,
            },
        })
    }

    pub(crate) fn open_device(
        mut backend: Box<dyn InputBackend>,
        name: Option<&str>,
        config: &CaptureConfig,
        clock: Clock,
    ) -> Result<Capture, CaptureError> {
        validate(config)?;
        let stats = Arc::new(Stats::default());
        let (stream, segment) =
            start_stream(backend.as_mut(), name, config.ring_ms, &stats, &clock)?;
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let supervisor = Supervisor {
            backend,
            stream: Some(stream),
            current: segment.shared().clone(),
            segments: tx,
            stop: stop.clone(),
            stats: stats.clone(),
            clock,
            config: config.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("chronote-input".into())
            .spawn(move || supervisor.run())
            .map_err(|source| CaptureError::Thread {
                what: "audio device supervisor",
                source,
            })?;
        Ok(Capture {
            rate: segment.rate(),
            segment,
            phase: ReadPhase::Live,
            queued: VecDeque::with_capacity(4),
            stats,
            worker: Worker::Device {
                thread: Some(thread),
                stop,
                segments: rx,
                next: None,
                anchor_ns: None,
            },
        })
    }

    /// Current mono sample rate of what [`read`](Self::read) returns (changes only right after a
    /// [`Chunk::RateChanged`]).
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Waits up to `timeout` for the next piece of the timeline.
    ///
    /// Audio is copied to `out` (at most `out.len()` samples). Gaps are returned at their exact
    /// position in the sample stream. Errors: a file that turned out truncated or unreadable
    /// (after everything readable was delivered; later calls return [`Chunk::End`]), or a device
    /// supervisor that died.
    pub fn read(&mut self, out: &mut [f32], timeout: Duration) -> Result<Chunk, CaptureError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(chunk) = self.queued.pop_front() {
                if let Chunk::RateChanged(rate) = chunk {
                    self.rate = rate;
                }
                return Ok(chunk);
            }
            match self.phase {
                ReadPhase::Live => match self.segment.next(out) {
                    Next::Audio(n) => return Ok(Chunk::Audio(n)),
                    Next::Overflow(samples) => {
                        return Ok(Chunk::Gap {
                            samples,
                            rate: self.rate,
                            reason: GapReason::Overflow,
                        });
                    }
                    Next::Failed(e) => {
                        self.advance(ReadEvent::Drained { reopenable: false });
                        return Err(e);
                    }
                    Next::Drained => {
                        let reopenable = self.on_drained();
                        self.advance(ReadEvent::Drained { reopenable });
                        continue;
                    }
                    Next::Empty => {}
                },
                ReadPhase::AwaitingAudio => match self.poll_reopened() {
                    Ok(true) => {
                        self.advance(ReadEvent::AudioResumed);
                        continue;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        self.advance(ReadEvent::SupervisorGone);
                        return Err(e);
                    }
                },
                ReadPhase::Ended => return Ok(Chunk::End),
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Chunk::Idle);
            }
            std::thread::sleep((deadline - now).min(POLL));
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> CaptureStats {
        CaptureStats {
            overflow_samples: self.stats.overflow_samples.load(Ordering::Relaxed),
            overflow_events: self.stats.overflow_events.load(Ordering::Relaxed),
            device_reopens: self.stats.device_reopens.load(Ordering::Relaxed),
            device_lost_ns: self.stats.device_lost_ns.load(Ordering::Relaxed),
            xruns: self.stats.xruns.load(Ordering::Relaxed),
        }
    }

    /// Peak absolute sample value of the most recent block the source delivered (0..=1), for a
    /// level meter.
    pub fn level(&self) -> f32 {
        f32::from_bits(self.stats.level_bits.load(Ordering::Relaxed))
    }

    /// Stops the source and joins its thread.
    pub fn stop(self) {
        // Drop does it; consuming `self` makes the end explicit at call sites.
    }

    fn advance(&mut self, event: ReadEvent) {
        match self.phase.on(event) {
            Ok(next) => self.phase = next,
            Err(e) => tracing::error!(error = %e, "capture reader bug"),
        }
    }

    /// The current segment is finished. Returns whether another (reopened) one may follow.
    fn on_drained(&mut self) -> bool {
        match &mut self.worker {
            Worker::File { .. } => false,
            Worker::Device { anchor_ns, .. } => {
                if self.segment.shared().first_block().is_some() {
                    *anchor_ns = Some(self.segment.shared().last_activity_ns());
                }
                true
            }
        }
    }

    /// Looks for a reopened stream that delivers audio; when found, queues the device-loss gap
    /// (and the rate change) and switches to it.
    fn poll_reopened(&mut self) -> Result<bool, CaptureError> {
        let Worker::Device {
            segments,
            next,
            anchor_ns,
            ..
        } = &mut self.worker
        else {
            return Ok(false);
        };
        loop {
            if next.is_none() {
                match segments.try_recv() {
                    Ok(seg) => *next = Some(seg),
                    Err(mpsc::TryRecvError::Empty) => return Ok(false),
                    Err(mpsc::TryRecvError::Disconnected) => {
                        return Err(CaptureError::SupervisorGone);
                    }
                }
            }
            let Some(candidate) = next.as_ref() else {
                return Ok(false);
            };
            let Some((first_cb_ns, first_frames)) = candidate.shared().first_block() else {
                if candidate.shared().is_closed() {
                    // Reopened, then lost again before any audio: nothing to deliver.
                    *next = None;
                    continue;
                }
                return Ok(false);
            };
            let Some(seg) = next.take() else {
                return Ok(false);
            };
            let new_rate = seg.rate();
            // The first callback arrives when its block is complete; its first sample is older.
            let block_ns = u128::from(first_frames) * 1_000_000_000 / u128::from(new_rate.max(1));
            let first_sample_ns =
                first_cb_ns.saturating_sub(u64::try_from(block_ns).unwrap_or(u64::MAX));
            if let Some(anchor) = *anchor_ns {
                let gap_ns = first_sample_ns.saturating_sub(anchor);
                let samples = u64::try_from(
                    (u128::from(gap_ns) * u128::from(self.rate) + 500_000_000) / 1_000_000_000,
                )
                .unwrap_or(u64::MAX);
                self.stats
                    .device_lost_ns
                    .fetch_add(gap_ns, Ordering::Relaxed);
                tracing::info!(
                    gap_ms = gap_ns / 1_000_000,
                    samples,
                    old_rate = self.rate,
                    new_rate,
                    "audio input resumed"
                );
                if samples > 0 {
                    self.queued.push_back(Chunk::Gap {
                        samples,
                        rate: self.rate,
                        reason: GapReason::DeviceLost,
                    });
                }
            }
            if new_rate != self.rate {
                self.queued.push_back(Chunk::RateChanged(new_rate));
            }
            self.segment = seg;
            return Ok(true);
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        match &mut self.worker {
            Worker::File { thread, cancel } => {
                cancel.store(true, Ordering::Release);
                if let Some(t) = thread.take() {
                    let _ = t.join();
                }
            }
            Worker::Device { thread, stop, .. } => {
                stop.store(true, Ordering::Release);
                if let Some(t) = thread.take() {
                    t.thread().unpark();
                    let _ = t.join();
                }
            }
        }
    }
}
