//! The one lock-free path from a producer (audio callback or file thread) to [`Capture::read`].
//!
//! A *segment* is what one producer writes at one sample rate: an `rtrb` ring of mono f32 plus a
//! small second ring of overflow gap events. The producer side ([`RingWriter`]) never allocates,
//! locks or blocks (except [`RingWriter::push_waiting`], which the non-real-time file reader uses).
//!
//! Overflow accounting: the producer counts its pushed samples (`pushed`). When the ring is full
//! it drops the rest of the block and remembers a pending gap `{at: pushed, len}`; while the ring
//! stays full it keeps dropping and growing `len`. On the first block that finds space again it
//! publishes the event to the gap ring *before* pushing audio, so a reader that sees audio past
//! `at` is guaranteed to also see the event (the audio ring's release store orders it). A drop
//! still pending when the producer ends is left in `pending_drop` and read once the segment is
//! closed. So every dropped sample ends up in exactly one gap, at its exact position.
//!
//! [`Capture::read`]: crate::Capture::read

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::convert::{AudioSample, frame_to_mono};
use crate::error::CaptureError;

/// Capacity of the gap event ring; the producer keeps dropping (and counting) while it is full.
const GAP_EVENTS: usize = 64;

/// Monotonic nanoseconds that keep counting while the machine sleeps, so a laptop suspended
/// mid-recording gets a device-loss gap as long as the suspend (`Instant` stops during suspend on
/// Linux). Tests swap in a manual clock to make device-loss timing exact.
#[derive(Clone, Debug)]
pub(crate) enum Clock {
    Real(u64),
    #[cfg_attr(not(test), allow(dead_code))]
    Manual(Arc<AtomicU64>),
}

#[cfg(target_os = "linux")]
fn boot_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we own; CLOCK_BOOTTIME exists since
    // Linux 2.6.39 and is served by the vDSO (no syscall, no lock: fine in the audio callback).
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return fallback_ns();
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

#[cfg(not(target_os = "linux"))]
fn boot_ns() -> u64 {
    fallback_ns()
}

fn fallback_ns() -> u64 {
    use std::sync::OnceLock;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    u64::try_from(ORIGIN.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl Clock {
    pub(crate) fn real() -> Self {
        Clock::Real(boot_ns())
    }

    /// Nanoseconds since the clock's origin. Lock-free; fine in the audio callback.
    pub(crate) fn now_ns(&self) -> u64 {
        match self {
            Clock::Real(origin) => boot_ns().saturating_sub(*origin),
            Clock::Manual(t) => t.load(Ordering::Acquire),
        }
    }
}

/// Counters shared by every segment of one capture.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub overflow_samples: AtomicU64,
    pub overflow_events: AtomicU64,
    pub device_reopens: AtomicU64,
    pub device_lost_ns: AtomicU64,
    pub xruns: AtomicU64,
    /// Peak |sample| of the latest block, as f32 bits.
    pub level_bits: AtomicU32,
}

/// A position in the pushed-sample count where `len` samples were dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct GapEvent {
    pub at: u64,
    pub len: u64,
}

/// State of one segment visible to both sides (and to the device supervisor).
#[derive(Debug)]
pub(crate) struct SegmentShared {
    /// No more audio will be pushed (set after the last push, by the producer or its owner).
    closed: AtomicBool,
    /// The first block arrived; `first_cb_ns` and `first_frames` are valid.
    started: AtomicBool,
    first_cb_ns: AtomicU64,
    first_frames: AtomicU64,
    /// Time of the latest block (or of the segment's creation, before any block): stall detection.
    last_cb_ns: AtomicU64,
    /// Samples dropped since the last published gap event.
    pending_drop: AtomicU64,
    /// The stream reported an error that means it is gone.
    lost: AtomicBool,
    /// Why a file producer stopped early; taken by the reader after the last sample.
    failure: Mutex<Option<CaptureError>>,
}

impl SegmentShared {
    fn new(now_ns: u64) -> Self {
        SegmentShared {
            closed: AtomicBool::new(false),
            started: AtomicBool::new(false),
            first_cb_ns: AtomicU64::new(0),
            first_frames: AtomicU64::new(0),
            last_cb_ns: AtomicU64::new(now_ns),
            pending_drop: AtomicU64::new(0),
            lost: AtomicBool::new(false),
            failure: Mutex::new(None),
        }
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn mark_lost(&self) {
        self.lost.store(true, Ordering::Release);
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    pub(crate) fn last_activity_ns(&self) -> u64 {
        self.last_cb_ns.load(Ordering::Acquire)
    }

    /// Time of the first block and its length in frames, once audio flows.
    pub(crate) fn first_block(&self) -> Option<(u64, u64)> {
        if self.started.load(Ordering::Acquire) {
            Some((
                self.first_cb_ns.load(Ordering::Relaxed),
                self.first_frames.load(Ordering::Relaxed),
            ))
        } else {
            None
        }
    }

    pub(crate) fn set_failure(&self, err: CaptureError) {
        let mut slot = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some(err);
    }

    fn take_failure(&self) -> Option<CaptureError> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// Creates the two ends of a segment holding `ring_ms` of audio at `rate`.
pub(crate) fn segment(
    rate: u32,
    ring_ms: u32,
    stats: Arc<Stats>,
    clock: Clock,
) -> (RingWriter, Segment) {
    let capacity = usize::try_from(u64::from(rate) * u64::from(ring_ms) / 1000)
        .unwrap_or(usize::MAX / 8)
        .max(1);
    let (audio_tx, audio_rx) = rtrb::RingBuffer::new(capacity);
    let (gap_tx, gap_rx) = rtrb::RingBuffer::new(GAP_EVENTS);
    let shared = Arc::new(SegmentShared::new(clock.now_ns()));
    let writer = RingWriter {
        audio: audio_tx,
        gaps: gap_tx,
        shared: shared.clone(),
        stats,
        clock,
        pushed: 0,
        pending: GapEvent::default(),
    };
    let reader = Segment {
        audio: audio_rx,
        gaps: gap_rx,
        shared,
        rate,
        read_pos: 0,
        tail_reported: false,
    };
    (writer, reader)
}

/// Producer end. Owned by exactly one audio callback or file thread.
pub(crate) struct RingWriter {
    audio: rtrb::Producer<f32>,
    gaps: rtrb::Producer<GapEvent>,
    shared: Arc<SegmentShared>,
    stats: Arc<Stats>,
    clock: Clock,
    pushed: u64,
    pending: GapEvent,
}

impl RingWriter {
    pub(crate) fn shared(&self) -> &Arc<SegmentShared> {
        &self.shared
    }

    pub(crate) fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The audio callback's entry point: convert, downmix and push one interleaved block; what
    /// does not fit is dropped and accounted as an overflow gap. Never allocates, locks or blocks.
    pub(crate) fn push_or_drop<T: AudioSample>(&mut self, data: &[T], channels: usize) {
        let frames = data.len().checked_div(channels).unwrap_or(0);
        self.note_block(frames as u64);
        if !self.publish_pending() {
            self.drop_frames(frames as u64);
            return;
        }
        let written = self.push_available(data, channels);
        self.drop_frames((frames - written) as u64);
    }

    /// The fast file reader's entry point: push everything, waiting while the ring is full.
    /// Returns `false` if `cancel` was raised before all frames were pushed.
    pub(crate) fn push_waiting<T: AudioSample>(
        &mut self,
        data: &[T],
        channels: usize,
        cancel: &AtomicBool,
    ) -> bool {
        let frames = data.len().checked_div(channels).unwrap_or(0);
        self.note_block(frames as u64);
        let mut done = 0;
        while done < frames {
            done += self.push_available(&data[done * channels..frames * channels], channels);
            if done < frames {
                if cancel.load(Ordering::Acquire) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        true
    }

    /// Closes the segment: the reader will drain it and then report its end.
    pub(crate) fn close(self) {
        // Drop does the work; this just names the intent at call sites.
    }

    fn note_block(&mut self, frames: u64) {
        let now = self.clock.now_ns();
        if !self.shared.started.load(Ordering::Relaxed) {
            self.shared.first_cb_ns.store(now, Ordering::Relaxed);
            self.shared.first_frames.store(frames, Ordering::Relaxed);
            self.shared.started.store(true, Ordering::Release);
        }
        self.shared.last_cb_ns.store(now, Ordering::Release);
    }

    /// Publishes a pending gap if there is room for audio after it. Returns whether audio may be
    /// pushed now (no gap pending any more).
    fn publish_pending(&mut self) -> bool {
        if self.pending.len == 0 {
            return true;
        }
        if self.audio.slots() == 0 {
            return false;
        }
        if self.gaps.push(self.pending).is_err() {
            return false;
        }
        self.pending = GapEvent::default();
        self.shared.pending_drop.store(0, Ordering::Release);
        true
    }

    fn drop_frames(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        if self.pending.len == 0 {
            self.pending.at = self.pushed;
            self.stats.overflow_events.fetch_add(1, Ordering::Relaxed);
        }
        self.pending.len += n;
        self.stats.overflow_samples.fetch_add(n, Ordering::Relaxed);
        self.shared
            .pending_drop
            .store(self.pending.len, Ordering::Release);
    }

    /// Writes as many whole frames as fit; returns how many.
    fn push_available<T: AudioSample>(&mut self, data: &[T], channels: usize) -> usize {
        if channels == 0 {
            return 0;
        }
        let frames = data.len() / channels;
        let n = frames.min(self.audio.slots());
        let mut peak = 0.0f32;
        if n > 0 {
            let Ok(chunk) = self.audio.write_chunk_uninit(n) else {
                // slots() just said n are free and only this side fills them: unreachable.
                return 0;
            };
            let written = chunk.fill_from_iter(data.chunks_exact(channels).map(|frame| {
                let v = frame_to_mono(frame);
                peak = peak.max(v.abs());
                v
            }));
            self.pushed += written as u64;
            self.stats
                .level_bits
                .store(peak.to_bits(), Ordering::Relaxed);
            return written;
        }
        0
    }
}

impl Drop for RingWriter {
    fn drop(&mut self) {
        // pending_drop already holds any unpublished drop; the reader reports it after draining.
        self.shared.close();
    }
}

/// What the consumer end yields next.
#[derive(Debug)]
pub(crate) enum Next {
    /// `n` samples were copied.
    Audio(usize),
    /// An overflow gap of this many samples sits here.
    Overflow(u64),
    /// Nothing yet; the producer is still alive.
    Empty,
    /// The producer is closed and everything was delivered.
    Drained,
    /// The producer failed after delivering everything before this point.
    Failed(CaptureError),
}

impl PartialEq for Next {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Next::Audio(a), Next::Audio(b)) => a == b,
            (Next::Overflow(a), Next::Overflow(b)) => a == b,
            (Next::Empty, Next::Empty) | (Next::Drained, Next::Drained) => true,
            // Errors carry io errors, which do not compare; tests match on them instead.
            _ => false,
        }
    }
}

/// Consumer end, owned by [`Capture`](crate::Capture).
pub(crate) struct Segment {
    audio: rtrb::Consumer<f32>,
    gaps: rtrb::Consumer<GapEvent>,
    shared: Arc<SegmentShared>,
    rate: u32,
    read_pos: u64,
    tail_reported: bool,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("rate", &self.rate)
            .field("read_pos", &self.read_pos)
            .finish_non_exhaustive()
    }
}

impl Segment {
    pub(crate) fn rate(&self) -> u32 {
        self.rate
    }

    pub(crate) fn shared(&self) -> &Arc<SegmentShared> {
        &self.shared
    }

    /// Takes the next item without waiting.
    pub(crate) fn next(&mut self, out: &mut [f32]) -> Next {
        // Closed must be read before the rings: if it is set, everything pushed is visible.
        let closed = self.shared.is_closed();
        // Audio slots before gap events: seeing audio past a gap implies seeing the gap.
        let available = self.audio.slots();
        if let Ok(ev) = self.gaps.peek() {
            let ev = *ev;
            if ev.at <= self.read_pos {
                let _ = self.gaps.pop();
                return Next::Overflow(ev.len);
            }
            let until_gap = usize::try_from(ev.at - self.read_pos).unwrap_or(usize::MAX);
            return self.copy(available.min(until_gap), out);
        }
        if available > 0 {
            return self.copy(available, out);
        }
        if !closed {
            return Next::Empty;
        }
        if !self.tail_reported {
            self.tail_reported = true;
            let tail = self.shared.pending_drop.load(Ordering::Acquire);
            if tail > 0 {
                return Next::Overflow(tail);
            }
        }
        match self.shared.take_failure() {
            Some(e) => Next::Failed(e),
            None => Next::Drained,
        }
    }

    fn copy(&mut self, available: usize, out: &mut [f32]) -> Next {
        if out.is_empty() {
            return Next::Audio(0);
        }
        let n = available.min(out.len());
        if n == 0 {
            return Next::Empty;
        }
        let Ok(chunk) = self.audio.read_chunk(n) else {
            // slots() reported at least n readable and only this side consumes: unreachable.
            return Next::Empty;
        };
        let (a, b) = chunk.as_slices();
        out[..a.len()].copy_from_slice(a);
        out[a.len()..a.len() + b.len()].copy_from_slice(b);
        chunk.commit_all();
        self.read_pos += n as u64;
        Next::Audio(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(rate: u32, ring_ms: u32) -> (RingWriter, Segment, Arc<Stats>) {
        let stats = Arc::new(Stats::default());
        let (w, r) = segment(rate, ring_ms, stats.clone(), Clock::real());
        (w, r, stats)
    }

    fn block(start: i16, n: usize) -> Vec<i16> {
        (0..n).map(|i| start.wrapping_add(i as i16)).collect()
    }

    #[test]
    fn capacity_is_ring_ms_of_audio() {
        let (mut w, mut r, _) = seg(1000, 10); // 10 samples
        w.push_or_drop(&block(0, 12), 1);
        let mut out = [0.0; 32];
        assert_eq!(r.next(&mut out), Next::Audio(10));
        assert_eq!(r.next(&mut out), Next::Empty);
        w.push_or_drop(&block(0, 1), 1);
        assert_eq!(r.next(&mut out), Next::Overflow(2));
        assert_eq!(r.next(&mut out), Next::Audio(1));
    }

    #[test]
    fn gap_is_placed_at_exact_position() {
        let (mut w, mut r, stats) = seg(1000, 8); // 8 samples
        w.push_or_drop(&block(0, 5), 1); // pushed 0..5
        w.push_or_drop(&block(5, 5), 1); // 3 fit (5..8), 2 dropped (at 8)
        w.push_or_drop(&block(10, 4), 1); // ring full: all 4 dropped, same gap
        let mut out = [0.0; 6];
        assert_eq!(r.next(&mut out), Next::Audio(6));
        w.push_or_drop(&block(14, 3), 1); // room: publish {at 8, len 6}, push 3
        assert_eq!(r.next(&mut out), Next::Audio(2));
        assert_eq!(out[..2], [6.0 / 32768.0, 7.0 / 32768.0]);
        assert_eq!(r.next(&mut out), Next::Overflow(6));
        assert_eq!(r.next(&mut out), Next::Audio(3));
        assert_eq!(out[..3], [14.0 / 32768.0, 15.0 / 32768.0, 16.0 / 32768.0]);
        assert_eq!(r.next(&mut out), Next::Empty);
        assert_eq!(stats.overflow_samples.load(Ordering::Relaxed), 6);
        assert_eq!(stats.overflow_events.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn pending_drop_is_reported_after_close() {
        let (mut w, mut r, stats) = seg(1000, 4);
        w.push_or_drop(&block(0, 7), 1);
        drop(w);
        let mut out = [0.0; 8];
        assert_eq!(r.next(&mut out), Next::Audio(4));
        assert_eq!(r.next(&mut out), Next::Overflow(3));
        assert_eq!(r.next(&mut out), Next::Drained);
        assert_eq!(r.next(&mut out), Next::Drained);
        assert_eq!(stats.overflow_samples.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn failure_follows_the_last_sample() {
        let (mut w, mut r, _) = seg(1000, 100);
        w.push_or_drop(&block(0, 3), 1);
        w.shared()
            .set_failure(CaptureError::InvalidConfig("boom".into()));
        w.close();
        let mut out = [0.0; 8];
        assert_eq!(r.next(&mut out), Next::Audio(3));
        match r.next(&mut out) {
            Next::Failed(CaptureError::InvalidConfig(m)) => assert_eq!(m, "boom"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(r.next(&mut out), Next::Drained);
    }

    #[test]
    fn full_gap_ring_keeps_dropping_and_counting() {
        // The reader lags one sample per round behind a producer that overflows every round, so
        // gap events pile up until their ring is full; further drops must merge, not vanish.
        let (mut w, mut r, stats) = seg(1000, 100); // 100 samples
        w.push_or_drop(&block(0, 100), 1);
        w.push_or_drop(&block(0, 2), 1); // ring full: pending {at 100, len 2}
        let mut one = [0.0; 1];
        for _ in 0..70 {
            assert_eq!(r.next(&mut one), Next::Audio(1));
            w.push_or_drop(&block(0, 2), 1);
        }
        // Rounds 1..=64 published an event, pushed 1 and dropped 1; rounds 65..=70 found the
        // event ring full and dropped both samples.
        assert_eq!(
            stats.overflow_samples.load(Ordering::Relaxed),
            2 + 64 + 6 * 2
        );
        assert_eq!(stats.overflow_events.load(Ordering::Relaxed), 65);
        drop(w);
        let (mut audio, mut gap, mut gaps) = (70u64, 0u64, 0u64);
        let mut out = [0.0; 16];
        loop {
            match r.next(&mut out) {
                Next::Audio(n) => audio += n as u64,
                Next::Overflow(n) => {
                    gap += n;
                    gaps += 1;
                }
                Next::Drained => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(audio, 100 + 64);
        assert_eq!(gap, 78);
        assert_eq!(gaps, 65);
    }

    #[test]
    fn push_waiting_never_drops() {
        let (mut w, mut r, stats) = seg(1000, 4);
        let cancel = AtomicBool::new(false);
        let data: Vec<i16> = block(0, 1000);
        let t = std::thread::spawn(move || {
            let ok = w.push_waiting(&data, 1, &cancel);
            assert!(ok);
        });
        let mut got = Vec::new();
        let mut out = [0.0; 3];
        loop {
            match r.next(&mut out) {
                Next::Audio(n) => got.extend_from_slice(&out[..n]),
                Next::Empty => std::thread::yield_now(),
                Next::Drained => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        t.join().unwrap();
        assert_eq!(got.len(), 1000);
        for (i, v) in got.iter().enumerate() {
            assert_eq!(*v, i as f32 / 32768.0);
        }
        assert_eq!(stats.overflow_samples.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn push_waiting_stops_on_cancel() {
        let (mut w, _r, _) = seg(1000, 2);
        let cancel = AtomicBool::new(true);
        assert!(!w.push_waiting(&block(0, 5), 1, &cancel));
    }

    #[test]
    fn level_is_peak_of_latest_block() {
        let (mut w, _r, stats) = seg(1000, 100);
        w.push_or_drop(&[0i16, -16384, 8192], 1);
        assert_eq!(
            f32::from_bits(stats.level_bits.load(Ordering::Relaxed)),
            0.5
        );
    }

    #[test]
    fn first_block_and_activity_use_the_clock() {
        let t = Arc::new(AtomicU64::new(7));
        let stats = Arc::new(Stats::default());
        let (mut w, r) = segment(1000, 100, stats, Clock::Manual(t.clone()));
        assert_eq!(r.shared().first_block(), None);
        assert_eq!(r.shared().last_activity_ns(), 7);
        t.store(100, Ordering::Release);
        w.push_or_drop(&[0i16; 10], 2);
        t.store(200, Ordering::Release);
        w.push_or_drop(&[0i16; 4], 2);
        assert_eq!(r.shared().first_block(), Some((100, 5)));
        assert_eq!(r.shared().last_activity_ns(), 200);
    }
}
