//! The engine's timeline arithmetic under faults that real hardware will not produce on demand:
//! a scripted source (fault injection only) delivers audio, overflow and device-loss gaps and rate
//! changes at exact samples, and every segment and gap must land exactly where it belongs.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chronote_capture::{CaptureError, Chunk, GapReason};
use chronote_recorder::{
    AudioSource, OpenTrack, Recorder, RecorderConfig, RecorderEvent, RecordingSummary,
};
use chronote_spool::{SegmentEvent, SegmentState, Spool, SpoolConfig};

enum Step {
    /// `seconds` of a deterministic noisy signal at the current rate.
    Audio {
        seconds: f64,
        level: f32,
    },
    Gap {
        samples: u64,
        rate: u32,
        reason: GapReason,
    },
    Rate(u32),
    /// Runs an action between two reads (e.g. fill the disk), at an exact point of the timeline.
    Call(Box<dyn FnOnce() + Send>),
}

struct Scripted {
    rate: u32,
    steps: VecDeque<Step>,
    /// Samples left of the current Audio step.
    left: u64,
    level: f32,
    seed: u32,
    /// After the script: keep delivering audio (paced) until stopped, or end.
    endless: bool,
}

impl Scripted {
    fn new(rate: u32, steps: Vec<Step>) -> Self {
        Scripted {
            rate,
            steps: steps.into(),
            left: 0,
            level: 0.0,
            seed: 0x1234_5678,
            endless: false,
        }
    }

    fn noise(&mut self) -> f32 {
        // xorshift: deterministic, loud enough to never be the quietest frame by accident.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 17;
        self.seed ^= self.seed << 5;
        (self.seed as f32 / u32::MAX as f32 * 2.0 - 1.0) * self.level
    }
}

impl AudioSource for Scripted {
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn read(&mut self, out: &mut [f32], _timeout: Duration) -> Result<Chunk, CaptureError> {
        loop {
            if self.left > 0 {
                let n = (self.left as usize).min(out.len()).min(960);
                for s in out[..n].iter_mut() {
                    *s = self.noise();
                }
                self.left -= n as u64;
                return Ok(Chunk::Audio(n));
            }
            match self.steps.pop_front() {
                Some(Step::Audio { seconds, level }) => {
                    self.left = (seconds * f64::from(self.rate)).round() as u64;
                    self.level = level;
                }
                Some(Step::Gap {
                    samples,
                    rate,
                    reason,
                }) => {
                    return Ok(Chunk::Gap {
                        samples,
                        rate,
                        reason,
                    });
                }
                Some(Step::Call(action)) => action(),
                Some(Step::Rate(rate)) => {
                    self.rate = rate;
                    return Ok(Chunk::RateChanged(rate));
                }
                None if self.endless => {
                    std::thread::sleep(Duration::from_millis(5));
                    self.left = u64::from(self.rate) / 10;
                    self.level = 0.3;
                }
                None => return Ok(Chunk::End),
            }
        }
    }

    fn stop(self: Box<Self>) {}
}

fn spool(dir: &std::path::Path, max_bytes: u64) -> Arc<Mutex<Spool>> {
    let spool = Spool::open(
        &dir.join("spool"),
        SpoolConfig {
            max_bytes,
            min_free_bytes: 0,
        },
    )
    .expect("spool");
    Arc::new(Mutex::new(spool))
}

fn record(
    spool: &Arc<Mutex<Spool>>,
    config: RecorderConfig,
    source: Scripted,
) -> (RecordingSummary, Vec<RecorderEvent>) {
    let recorder = Recorder::start_sources(
        Arc::clone(spool),
        config,
        vec![OpenTrack {
            name: "me".into(),
            description: "scripted".into(),
            source: Box::new(source),
        }],
    )
    .expect("start");
    let events: Vec<_> = recorder.events().iter().collect();
    (recorder.wait().expect("wait"), events)
}

/// (start, length) of every segment, in order.
fn segments(spool: &Arc<Mutex<Spool>>, id: &str) -> Vec<(u64, u64)> {
    let spool = spool.lock().expect("lock");
    spool
        .segments(id)
        .expect("segments")
        .iter()
        .map(|s| (s.start_48k, s.length_48k))
        .collect()
}

fn assert_tiles(segs: &[(u64, u64)], from: u64, to: u64) {
    let mut at = from;
    for &(start, length) in segs {
        assert_eq!(start, at, "segments tile: {segs:?}");
        at += length;
    }
    assert_eq!(at, to, "segments end at {to}: {segs:?}");
}

#[test]
fn overflow_gap_lands_at_its_exact_sample() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = spool(dir.path(), 1 << 30);
    let source = Scripted::new(
        48_000,
        vec![
            Step::Audio {
                seconds: 7.0,
                level: 0.5,
            },
            Step::Gap {
                samples: 12_345,
                rate: 48_000,
                reason: GapReason::Overflow,
            },
            Step::Audio {
                seconds: 6.0,
                level: 0.5,
            },
        ],
    );
    let config = RecorderConfig {
        segment_secs: 5,
        ..RecorderConfig::default()
    };
    let (summary, events) = record(&spool, config, source);
    let segs = segments(&spool, &summary.recording_id);
    let before: Vec<_> = segs.iter().copied().filter(|s| s.0 < 336_000).collect();
    let after: Vec<_> = segs.iter().copied().filter(|s| s.0 >= 336_000).collect();
    assert_tiles(&before, 0, 7 * 48_000);
    assert_tiles(&after, 7 * 48_000 + 12_345, 13 * 48_000 + 12_345);
    assert_eq!(summary.gaps.len(), 1);
    let gap = &summary.gaps[0];
    assert_eq!((gap.start_48k, gap.length_48k), (336_000, 12_345));
    assert_eq!(gap.reason, "overflow");
    assert_eq!(summary.duration_48k, 13 * 48_000);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RecorderEvent::Gap { reason, .. } if reason == "overflow"))
    );
}

#[test]
fn device_loss_and_a_new_rate_keep_the_timeline_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = spool(dir.path(), 1 << 30);
    let source = Scripted::new(
        48_000,
        vec![
            Step::Audio {
                seconds: 3.0,
                level: 0.5,
            },
            Step::Gap {
                samples: 96_000,
                rate: 48_000,
                reason: GapReason::DeviceLost,
            },
            Step::Rate(44_100),
            Step::Audio {
                seconds: 4.0,
                level: 0.5,
            },
        ],
    );
    let (summary, _) = record(&spool, RecorderConfig::default(), source);
    let segs = segments(&spool, &summary.recording_id);
    assert_eq!(segs, vec![(0, 144_000), (240_000, 192_000)]);
    let gap = &summary.gaps[0];
    assert_eq!(
        (gap.start_48k, gap.length_48k, gap.reason.as_str()),
        (144_000, 96_000, "device_lost")
    );
}

#[test]
fn a_rate_change_without_a_gap_continues_the_same_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = spool(dir.path(), 1 << 30);
    let source = Scripted::new(
        16_000,
        vec![
            Step::Audio {
                seconds: 2.0,
                level: 0.5,
            },
            Step::Rate(8_000),
            Step::Audio {
                seconds: 1.5,
                level: 0.5,
            },
        ],
    );
    let (summary, _) = record(&spool, RecorderConfig::default(), source);
    assert_eq!(segments(&spool, &summary.recording_id), vec![(0, 168_000)]);
    assert!(summary.gaps.is_empty());
}

#[test]
fn segments_end_after_the_quietest_frame_before_the_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = spool(dir.path(), 1 << 30);
    // Loud everywhere but one 20 ms frame at 28.50 s (inside the last 2 s before 30 s) and a
    // quieter-still frame at 27.00 s (before the window, so it must be ignored).
    let source = Scripted::new(
        16_000,
        vec![
            Step::Audio {
                seconds: 27.0,
                level: 0.5,
            },
            Step::Audio {
                seconds: 0.02,
                level: 0.0,
            },
            Step::Audio {
                seconds: 1.48,
                level: 0.5,
            },
            Step::Audio {
                seconds: 0.02,
                level: 0.01,
            },
            Step::Audio {
                seconds: 10.0,
                level: 0.5,
            },
        ],
    );
    let (summary, _) = record(&spool, RecorderConfig::default(), source);
    let segs = segments(&spool, &summary.recording_id);
    // Frame 1425 is the quiet one: the first segment keeps frames 0..=1425.
    assert_eq!(segs[0], (0, 1426 * 960));
    // 27 + 0.02 + 1.48 + 0.02 + 10 = 38.52 s.
    assert_tiles(&segs, 0, 1_848_960);
    // The carried-over frames were encoded again at the start of segment 1: its audio matches.
    let spool_guard = spool.lock().expect("lock");
    let rows = spool_guard.segments(&summary.recording_id).expect("rows");
    let pcm = chronote_encode::decode(std::path::Path::new(&rows[1].path)).expect("decode");
    assert_eq!(pcm.len() as u64, rows[1].length_48k);
    let head_rms = (pcm[..9_600].iter().map(|s| s * s).sum::<f32>() / 9_600.0).sqrt();
    assert!(
        head_rms > 0.1,
        "segment 1 starts with the loud carried frames (rms {head_rms})"
    );
}

#[test]
fn duration_limit_is_exact_to_the_sample() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = spool(dir.path(), 1 << 30);
    let source = Scripted::new(
        44_100,
        vec![Step::Audio {
            seconds: 10.0,
            level: 0.3,
        }],
    );
    let config = RecorderConfig {
        duration: Some(Duration::from_millis(2_510)),
        ..RecorderConfig::default()
    };
    let (summary, events) = record(&spool, config, source);
    assert_eq!(summary.duration_48k, 2_510 * 48);
    assert!(events.iter().any(|e| matches!(
        e,
        RecorderEvent::TrackEnded {
            reason: chronote_recorder::TrackEnd::Duration,
            ..
        }
    )));
}

#[test]
fn full_spool_pauses_capture_and_resumes_when_space_frees() {
    let dir = tempfile::tempdir().expect("tempdir");
    let max_bytes = 120_000;
    let spool = spool(dir.path(), max_bytes);
    let mut source = Scripted::new(16_000, vec![]);
    source.endless = true;
    let config = RecorderConfig {
        segment_secs: 5,
        spool_retry: Duration::from_millis(20),
        ..RecorderConfig::default()
    };
    let recorder = Recorder::start_sources(
        Arc::clone(&spool),
        config,
        vec![OpenTrack {
            name: "me".into(),
            description: "scripted".into(),
            source: Box::new(source),
        }],
    )
    .expect("start");
    let id = recorder.recording_id().to_string();
    let mut paused = 0;
    let mut resumed = 0;
    let mut sealed_after_resume = 0;
    let mut max_usage = 0;
    for event in recorder.events().iter() {
        let usage = spool.lock().expect("lock").usage_bytes().expect("usage");
        max_usage = max_usage.max(usage);
        match &event {
            RecorderEvent::Warning { message, .. } if message.contains("spool full") => {
                paused += 1;
                if paused == 1 {
                    // Nothing may have been deleted: every sealed file is still there.
                    let mut guard = spool.lock().expect("lock");
                    let rows = guard.segments(&id).expect("rows");
                    assert!(!rows.is_empty());
                    for row in &rows {
                        assert!(std::path::Path::new(&row.path).exists(), "{row:?}");
                    }
                    // Play the uploader: acknowledge every sealed segment so it may be evicted.
                    for row in rows.iter().filter(|r| r.state == SegmentState::Sealed) {
                        guard
                            .apply_segment_event(
                                row.id,
                                SegmentEvent::BeginUpload { url: "u".into() },
                            )
                            .expect("upload");
                        guard
                            .apply_segment_event(row.id, SegmentEvent::FinishUpload)
                            .expect("uploaded");
                        guard
                            .apply_segment_event(row.id, SegmentEvent::Acknowledge)
                            .expect("ack");
                    }
                }
            }
            RecorderEvent::Warning { message, .. } if message.contains("resumed") => resumed += 1,
            RecorderEvent::SegmentSealed { .. } if resumed > 0 => {
                sealed_after_resume += 1;
                if sealed_after_resume == 3 {
                    recorder.request_stop();
                }
            }
            _ => {}
        }
    }
    let summary = recorder.wait().expect("wait");
    assert!(
        paused >= 1 && resumed >= 1,
        "paused {paused} times, resumed {resumed} times"
    );
    assert!(
        max_usage <= max_bytes,
        "usage reached {max_usage} > {max_bytes}"
    );
    let gaps: Vec<_> = summary
        .gaps
        .iter()
        .filter(|g| g.reason == "spool_full")
        .collect();
    assert!(!gaps.is_empty());
    // Audio and spool_full gaps tile the timeline with no hole.
    let guard = spool.lock().expect("lock");
    let rows = guard.segments(&id).expect("rows");
    let mut pieces: Vec<(u64, u64)> = rows.iter().map(|r| (r.start_48k, r.length_48k)).collect();
    pieces.extend(summary.gaps.iter().map(|g| (g.start_48k, g.length_48k)));
    pieces.sort();
    let end = pieces.iter().map(|p| p.0 + p.1).max().unwrap_or(0);
    assert_tiles(&pieces, 0, end);
    for row in &rows {
        let exists = std::path::Path::new(&row.path).exists();
        match row.state {
            SegmentState::Evicted => {
                assert!(!exists, "evicted segment {} still on disk", row.sequence)
            }
            _ => assert!(
                exists,
                "segment {} ({:?}) lost its file",
                row.sequence, row.state
            ),
        }
    }
    assert!(
        rows.iter().any(|r| r.state == SegmentState::Evicted),
        "room was made by eviction"
    );
}

/// Fills the filesystem holding `dir` with a file until writes fail with ENOSPC.
fn fill_disk(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("filler");
    let block = vec![0u8; 4096];
    while file
        .write_all(&block)
        .and_then(|()| file.sync_data())
        .is_ok()
    {}
    path
}

#[test]
fn enospc_mid_segment_pauses_keeps_the_journal_and_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mount = dir.path().join("tiny");
    std::fs::create_dir_all(&mount).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mount)
        .status()
        .expect("mount");
    assert!(
        mounted.success(),
        "this test mounts a small tmpfs and needs root"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mount.clone());
    let spool = spool(&mount, 1 << 30);
    let fill_at = mount.clone();
    let filler = mount.join("filler");
    let free_at = filler.clone();
    // 3.3 s of audio (mid-page, mid-segment), then the disk fills; 2 s later it frees again.
    let source = Scripted::new(
        16_000,
        vec![
            Step::Audio {
                seconds: 3.3,
                level: 0.5,
            },
            Step::Call(Box::new(move || {
                fill_disk(&fill_at);
            })),
            Step::Audio {
                seconds: 2.0,
                level: 0.5,
            },
            Step::Call(Box::new(move || {
                std::fs::remove_file(&free_at).expect("free the disk");
                // The recorder retries every spool_retry of wall time: give it that long.
                std::thread::sleep(Duration::from_millis(100));
            })),
            Step::Audio {
                seconds: 4.0,
                level: 0.5,
            },
        ],
    );
    let config = RecorderConfig {
        spool_retry: Duration::from_millis(20),
        ..RecorderConfig::default()
    };
    let (summary, events) = record(&spool, config, source);
    assert!(
        events.iter().any(
            |e| matches!(e, RecorderEvent::Warning { message, .. } if message.contains("disk full"))
        ),
        "the user is told the disk is full: {events:?}"
    );
    let segs = segments(&spool, &summary.recording_id);
    assert_eq!(summary.gaps.len(), 1, "{:?}", summary.gaps);
    let gap = &summary.gaps[0];
    assert_eq!(gap.reason, "spool_full");
    // The broken segment was repaired from its journal: it ends on a journal page boundary
    // (25 frames = 0.5 s; repair keeps whole pages, minus the 312-sample pre-skip), no more than
    // a page before the disk filled at 3.3 s and not much after it (the filler leaves less than
    // 4 KiB, room for a page or two).
    let first = segs[0];
    assert_eq!(first.0, 0);
    assert_eq!(
        (first.1 + 312) % 24_000,
        0,
        "repaired at a page boundary: {segs:?}"
    );
    assert!((144_000..=192_000).contains(&(first.1 + 312)), "{segs:?}");
    assert_eq!(gap.start_48k, first.1);
    // Everything after the gap tiles up to the end of the input (9.3 s).
    let after: Vec<_> = segs[1..].to_vec();
    assert_tiles(&after, gap.start_48k + gap.length_48k, 446_400);
    let guard = spool.lock().expect("lock");
    for row in guard.segments(&summary.recording_id).expect("rows") {
        assert_eq!(row.state, SegmentState::Sealed);
        let info = chronote_encode::inspect(std::path::Path::new(&row.path)).expect("inspect");
        assert_eq!(info.length_48k, row.length_48k);
    }
}
