//! Capture-level tests of the device path with a fault-injecting fake backend and a manual clock:
//! the real ring, supervisor and reader run; only the stream is simulated.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::device::{InputBackend, LiveStream, PreparedInput};
use crate::ring::{Clock, RingWriter};
use crate::{Capture, CaptureConfig, CaptureError, Chunk, GapReason};

const MS: u64 = 1_000_000;

#[derive(Default)]
struct World {
    /// One slot per started stream; `None` once the stream was dropped.
    streams: Mutex<Vec<Option<RingWriter>>>,
    /// What each `prepare` call returns: a rate, or an error.
    plan: Mutex<VecDeque<Result<u32, CaptureError>>>,
    prepares: AtomicUsize,
    names: Mutex<Vec<Option<String>>>,
}

impl World {
    fn new(plan: Vec<Result<u32, CaptureError>>) -> Arc<World> {
        let w = World::default();
        *w.plan.lock().unwrap() = plan.into();
        Arc::new(w)
    }

    fn push<T: crate::convert::AudioSample>(&self, stream: usize, data: &[T], channels: usize) {
        let mut streams = self.streams.lock().unwrap();
        streams[stream]
            .as_mut()
            .expect("stream was dropped")
            .push_or_drop(data, channels);
    }

    fn fail(&self, stream: usize) {
        let streams = self.streams.lock().unwrap();
        streams[stream].as_ref().unwrap().shared().mark_lost();
    }

    fn started(&self) -> usize {
        self.streams.lock().unwrap().len()
    }

    fn is_live(&self, stream: usize) -> bool {
        self.streams.lock().unwrap()[stream].is_some()
    }
}

struct FakeBackend(Arc<World>);
struct FakePrepared(Arc<World>, u32);
struct FakeLive(Arc<World>, usize);

impl InputBackend for FakeBackend {
    fn prepare(&mut self, name: Option<&str>) -> Result<Box<dyn PreparedInput>, CaptureError> {
        self.0.prepares.fetch_add(1, Ordering::SeqCst);
        self.0.names.lock().unwrap().push(name.map(str::to_owned));
        match self.0.plan.lock().unwrap().pop_front() {
            Some(Ok(rate)) => Ok(Box::new(FakePrepared(self.0.clone(), rate))),
            Some(Err(e)) => Err(e),
            None => Err(CaptureError::NoDevice {
                detail: "fake: plan exhausted".into(),
            }),
        }
    }
}

impl PreparedInput for FakePrepared {
    fn rate(&self) -> u32 {
        self.1
    }
    fn device_name(&self) -> &str {
        "fake"
    }
    fn start(self: Box<Self>, writer: RingWriter) -> Result<LiveStream, CaptureError> {
        let mut streams = self.0.streams.lock().unwrap();
        streams.push(Some(writer));
        Ok(Box::new(FakeLive(self.0.clone(), streams.len() - 1)))
    }
}

impl Drop for FakeLive {
    fn drop(&mut self) {
        let writer = self.0.streams.lock().unwrap()[self.1].take();
        drop(writer);
    }
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn config(ring_ms: u32) -> CaptureConfig {
    CaptureConfig {
        ring_ms,
        stall_timeout: Duration::from_secs(3),
        reopen_interval: Duration::from_millis(500),
    }
}

fn open_fake(world: &Arc<World>, name: Option<&str>, ring_ms: u32) -> (Capture, Arc<AtomicU64>) {
    let t = Arc::new(AtomicU64::new(0));
    let cap = Capture::open_device(
        Box::new(FakeBackend(world.clone())),
        name,
        &config(ring_ms),
        Clock::Manual(t.clone()),
    )
    .unwrap();
    (cap, t)
}

const SHORT: Duration = Duration::from_millis(20);

fn ramp(start: i16, n: usize) -> Vec<i16> {
    (0..n).map(|i| start + i as i16).collect()
}

#[test]
fn stall_reopens_with_exact_gap_and_rate_change() {
    let world = World::new(vec![
        Ok(48000),
        Err(CaptureError::NoDevice {
            detail: "fake: still unplugged".into(),
        }),
        Ok(44100),
    ]);
    let (mut cap, t) = open_fake(&world, Some("Mic"), 1000);
    assert_eq!(cap.sample_rate(), 48000);
    assert_eq!(*world.names.lock().unwrap(), vec![Some("Mic".to_owned())]);

    t.store(100 * MS, Ordering::Release);
    world.push(0, &ramp(0, 4800), 1);
    let mut out = vec![0.0f32; 10_000];
    assert_eq!(cap.read(&mut out, SHORT).unwrap(), Chunk::Audio(4800));
    assert_eq!(out[4799], 4799.0 / 32768.0);
    assert_eq!(cap.read(&mut out, SHORT).unwrap(), Chunk::Idle);

    // No callback for more than stall_timeout: the stream is dropped, the first reopen fails.
    t.store(3101 * MS + 1, Ordering::Release);
    wait_for("first reopen attempt", || {
        world.prepares.load(Ordering::SeqCst) == 2
    });
    assert!(!world.is_live(0));
    assert_eq!(cap.read(&mut out, SHORT).unwrap(), Chunk::Idle);
    // Retries wait for reopen_interval.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(world.prepares.load(Ordering::SeqCst), 2);
    t.store(3700 * MS, Ordering::Release);
    wait_for("second stream", || world.started() == 2);
    assert_eq!(
        world.names.lock().unwrap()[1..],
        [None, None],
        "reopen uses the default device"
    );
    assert_eq!(
        cap.read(&mut out, SHORT).unwrap(),
        Chunk::Idle,
        "no audio yet"
    );

    // First callback of the new stream at 4.0 s with 10 ms of stereo audio: its first sample was
    // captured at 3.99 s. The old audio ended at 0.1 s, so 3.89 s are missing: 186720 at 48 kHz.
    t.store(4000 * MS, Ordering::Release);
    let stereo: Vec<i16> = (0..441).flat_map(|i| [i as i16, i as i16]).collect();
    world.push(1, &stereo, 2);
    assert_eq!(
        cap.read(&mut out, SHORT).unwrap(),
        Chunk::Gap {
            samples: 186_720,
            rate: 48000,
            reason: GapReason::DeviceLost
        }
    );
    assert_eq!(cap.sample_rate(), 48000);
    assert_eq!(
        cap.read(&mut out, SHORT).unwrap(),
        Chunk::RateChanged(44100)
    );
    assert_eq!(cap.sample_rate(), 44100);
    assert_eq!(cap.read(&mut out, SHORT).unwrap(), Chunk::Audio(441));
    assert_eq!(out[440], 440.0 / 32768.0);
    let stats = cap.stats();
    assert_eq!(stats.device_reopens, 1);
    assert_eq!(stats.device_lost_ns, 3_890 * MS);
    assert_eq!(stats.overflow_samples, 0);
    cap.stop();
    assert!(!world.is_live(1), "stop drops the stream");
}

#[test]
fn error_callback_loss_keeps_tail_overflow_then_device_gap() {
    let world = World::new(vec![Ok(16000), Ok(16000)]);
    let (mut cap, t) = open_fake(&world, None, 100); // 1600 samples
    t.store(50 * MS, Ordering::Release);
    world.push(0, &ramp(0, 800), 1);
    t.store(112_500_000, Ordering::Release);
    world.push(0, &ramp(800, 1000), 1); // 800 fit, 200 dropped
    t.store(120 * MS, Ordering::Release);
    world.fail(0);
    wait_for("reopen", || world.started() == 2);
    assert!(!world.is_live(0));

    // New stream: first callback at 1.1225 s with 160 frames -> first sample at 1.1125 s;
    // the old stream's last callback was at 0.1125 s: exactly 1 s = 16000 samples lost.
    t.store(1_122_500_000, Ordering::Release);
    world.push(1, &ramp(0, 160), 1);

    let mut out = vec![0.0f32; 4096];
    assert_eq!(cap.read(&mut out, SHORT).unwrap(), Chunk::Audio(1600));
    assert_eq!(out[1599], 1599.0 / 32768.0);
    assert_eq!(
        cap.read(&mut out, SHORT).unwrap(),
        Chunk::Gap {
            samples: 200,
            rate: 16000,
            reason: GapReason::Overflow
        }
    );
    assert_eq!(
        cap.read(&mut out, SHORT).unwrap(),
        Chunk::Gap {
            samples: 16000,
            rate: 16000,
            reason: GapReason::DeviceLost
        }
    );
    assert_eq!(cap.read(&mut out, SHORT).unwrap(), Chunk::Audio(160));
    assert_eq!(cap.read(&mut out, SHORT).unwrap(), Chunk::Idle);
    let stats = cap.stats();
    assert_eq!(stats.overflow_samples, 200);
    assert_eq!(stats.overflow_events, 1);
    assert_eq!(stats.device_reopens, 1);
    assert_eq!(stats.device_lost_ns, 1_000 * MS);
}

#[test]
fn stream_lost_again_before_audio_is_skipped() {
    let world = World::new(vec![Ok(48000), Ok(32000), Ok(48000)]);
    let (mut cap, t) = open_fake(&world, None, 1000);
    t.store(20 * MS, Ordering::Release);
    world.push(0, &ramp(0, 960), 1);
    world.fail(0);
    wait_for("second stream", || world.started() == 2);
    let mut out = vec![0.0f32; 2048];
    assert_eq!(cap.read(&mut out, SHORT).unwrap(), Chunk::Audio(960));
    assert_eq!(cap.read(&mut out, SHORT).unwrap(), Chunk::Idle);
    world.fail(1); // dies without ever delivering
    wait_for("third stream", || world.started() == 3);
    t.store(520 * MS, Ordering::Release);
    world.push(2, &ramp(0, 480), 1); // first sample at 510 ms
    assert_eq!(
        cap.read(&mut out, SHORT).unwrap(),
        Chunk::Gap {
            samples: 23_520, // 490 ms at 48 kHz
            rate: 48000,
            reason: GapReason::DeviceLost
        }
    );
    // Same rate as before the loss: no RateChanged, the 32 kHz stream never delivered.
    assert_eq!(cap.read(&mut out, SHORT).unwrap(), Chunk::Audio(480));
    assert_eq!(cap.sample_rate(), 48000);
    assert_eq!(cap.stats().device_reopens, 2);
}

#[test]
fn stop_while_reopening_returns() {
    let world = World::new(vec![Ok(48000)]);
    let (cap, _t) = open_fake(&world, None, 100);
    world.fail(0);
    wait_for("failed reopen", || {
        world.prepares.load(Ordering::SeqCst) >= 2
    });
    let started = Instant::now();
    cap.stop();
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn open_errors_are_returned() {
    let world = World::new(vec![Err(CaptureError::DeviceNotFound {
        name: "X".into(),
        available: vec!["a".into(), "b".into()],
    })]);
    let err = Capture::open_device(
        Box::new(FakeBackend(world)),
        Some("X"),
        &CaptureConfig::default(),
        Clock::real(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no input device named \"X\"; available: a, b"
    );
}

#[test]
fn invalid_config_is_rejected() {
    let world = World::new(vec![Ok(48000)]);
    let cfg = CaptureConfig {
        ring_ms: 0,
        ..CaptureConfig::default()
    };
    let err =
        Capture::open_device(Box::new(FakeBackend(world)), None, &cfg, Clock::real()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid capture configuration: ring_ms must be at least 1"
    );
}

/// A producer thread pushes 48 kHz audio much faster than the reader takes it; every sample
/// carries its own index, so the reader can check that each delivered sample sits exactly where
/// the timeline (audio + gaps) says it does, and that the gaps add up to the drops.
#[test]
fn fast_producer_gaps_account_for_every_dropped_sample() {
    const TOTAL: usize = 400_000;
    let world = World::new(vec![Ok(48000)]);
    let (mut cap, _t) = open_fake(&world, None, 10); // 480 samples
    let producer = {
        let world = world.clone();
        std::thread::spawn(move || {
            let mut block = [0.0f32; 256];
            let mut next = 0usize;
            while next < TOTAL {
                let n = block.len().min(TOTAL - next);
                for (i, v) in block[..n].iter_mut().enumerate() {
                    *v = (next + i) as f32 / 16_777_216.0;
                }
                world.push(0, &block[..n], 1);
                next += n;
                if next.is_multiple_of(4096) {
                    std::thread::yield_now();
                }
            }
            // End of the stream: its segment closes, publishing any pending drop.
            drop(world.streams.lock().unwrap()[0].take());
        })
    };
    let mut out = vec![0.0f32; 100];
    let mut pos = 0u64;
    let mut gap_total = 0u64;
    let mut reads = 0u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while pos < TOTAL as u64 {
        assert!(Instant::now() < deadline, "stuck at {pos}");
        match cap.read(&mut out, SHORT).unwrap() {
            Chunk::Audio(n) => {
                for (i, v) in out[..n].iter().enumerate() {
                    assert_eq!((*v * 16_777_216.0) as u64, pos + i as u64);
                }
                pos += n as u64;
            }
            Chunk::Gap {
                samples,
                rate: 48000,
                reason: GapReason::Overflow,
            } => {
                pos += samples;
                gap_total += samples;
            }
            Chunk::Idle => {}
            other => panic!("unexpected {other:?}"),
        }
        reads += 1;
        if reads.is_multiple_of(4) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    producer.join().unwrap();
    assert_eq!(pos, TOTAL as u64);
    let stats = cap.stats();
    assert!(gap_total > 0, "the reader should have fallen behind");
    assert_eq!(gap_total, stats.overflow_samples);
    assert!(stats.overflow_events > 0);
}

#[test]
fn public_types_can_move_to_other_threads() {
    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send::<Capture>();
    assert_send::<crate::Resampler>();
    assert_send_sync::<CaptureError>();
    assert_send_sync::<crate::Source>();
    assert_send_sync::<CaptureConfig>();
}
