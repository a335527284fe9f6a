//! Memory over a long recording: many hours of audio through the fast file source in one
//! process, resident memory sampled as the timeline advances.
//!
//! The measurement runs in a child process (this binary re-executed with a hidden subcommand),
//! so nothing the benchmark itself allocated — decoded baselines, earlier runs — is counted.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use chronote_recorder::{Recorder, RecorderConfig, RecorderEvent, TrackSpec};
use chronote_spool::{Spool, SpoolConfig};
use serde::{Deserialize, Serialize};

use crate::procfs;

/// How often the sampler thread reads VmRSS.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// Where on the timeline to take the reference reading and the checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marks {
    /// The reference: RSS when the timeline first passes this point.
    pub mark_ms: u64,
    /// RSS is also recorded at every multiple of this.
    pub checkpoint_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryResult {
    pub input: PathBuf,
    pub marks: Marks,
    /// Timeline the recorder reported last.
    pub captured_ms: u64,
    pub wall: Duration,
    pub rss_at_mark: u64,
    /// Largest VmRSS sample taken after the mark.
    pub peak_sampled: u64,
    pub samples_after_mark: u64,
    /// VmHWM once the recording has ended: the peak over the whole process life.
    pub hwm_at_end: u64,
    pub rss_at_end: u64,
    /// (timeline ms, VmRSS bytes) at every checkpoint.
    pub checkpoints: Vec<(u64, u64)>,
    pub segments: u64,
    pub bytes: u64,
    pub gaps: u64,
    /// spool.db plus its WAL and shared-memory files at the end: SQLite caches pages of it.
    pub db_bytes: u64,
}

impl MemoryResult {
    /// The figure the target is about: the highest resident size seen after the mark (a sample
    /// or the kernel's high-water mark, whichever is larger).
    pub fn peak(&self) -> u64 {
        self.peak_sampled.max(self.hwm_at_end)
    }

    /// How far the peak rose above the reference, in bytes (0 if it never did).
    pub fn growth(&self) -> u64 {
        self.peak().saturating_sub(self.rss_at_mark)
    }

    /// RSS change per hour of timeline between the first checkpoint after the mark and the
    /// last one; `None` with fewer than two such checkpoints.
    pub fn slope_per_hour(&self) -> Option<f64> {
        let after: Vec<&(u64, u64)> = self
            .checkpoints
            .iter()
            .filter(|(at, _)| *at >= self.marks.mark_ms)
            .collect();
        let (first, last) = (after.first()?, after.last()?);
        if last.0 <= first.0 {
            return None;
        }
        let hours = (last.0 - first.0) as f64 / 3_600_000.0;
        Some((last.1 as f64 - first.1 as f64) / hours)
    }
}

/// Runs the measurement in a fresh child process and reads its result.
pub fn measure_in_child(input: &Path, marks: Marks) -> Result<MemoryResult> {
    let exe = std::env::current_exe().context("cannot find this benchmark's executable")?;
    let output = Command::new(&exe)
        .arg(CHILD_COMMAND)
        .arg("--input")
        .arg(input)
        .arg("--mark-ms")
        .arg(marks.mark_ms.to_string())
        .arg("--checkpoint-ms")
        .arg(marks.checkpoint_ms.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start {} {CHILD_COMMAND}", exe.display()))?;
    if !output.status.success() {
        bail!("the memory child process failed ({})", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .context("the memory child process printed no result")?;
    serde_json::from_str(line).with_context(|| format!("cannot parse the memory result {line:?}"))
}

/// The hidden subcommand the child runs.
pub const CHILD_COMMAND: &str = "memory-child";

/// Entry point of the child: measure, print the result as one JSON line.
pub fn child_main(input: &Path, marks: Marks) -> Result<()> {
    let result = measure_in_process(input, marks)?;
    let line = serde_json::to_string(&result).context("cannot serialise the memory result")?;
    println!("{line}");
    Ok(())
}

/// Records `input` with default settings into a temporary spool while watching this process's
/// resident memory.
pub fn measure_in_process(input: &Path, marks: Marks) -> Result<MemoryResult> {
    if marks.mark_ms == 0 || marks.checkpoint_ms == 0 {
        bail!("the memory marks must be positive (got {marks:?})");
    }
    let dir = tempfile::tempdir().context("cannot create a temporary spool directory")?;
    let root = dir.path().join("spool");
    let spool = Spool::open(&root, SpoolConfig::default())
        .with_context(|| format!("cannot open a spool in {}", root.display()))?;
    let spool = Arc::new(Mutex::new(spool));

    let captured = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let captured = Arc::clone(&captured);
        let done = Arc::clone(&done);
        let mark = marks.mark_ms;
        std::thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || sample_rss(&captured, &done, mark))
            .context("cannot start the RSS sampler thread")?
    };

    let t0 = Instant::now();
    let tracks = vec![TrackSpec::file("me", input.to_path_buf(), false)];
    let recorder = Recorder::start(Arc::clone(&spool), RecorderConfig::default(), tracks)
        .with_context(|| format!("cannot start the recorder on {}", input.display()));
    let recorder = match recorder {
        Ok(r) => r,
        Err(err) => {
            done.store(true, Ordering::SeqCst);
            let _ = sampler.join();
            return Err(err);
        }
    };
    let mut rss_at_mark = None;
    let mut checkpoints = Vec::new();
    let mut next_checkpoint = marks.checkpoint_ms;
    let mut last_report = Instant::now();
    let mut failure: Option<anyhow::Error> = None;
    for event in recorder.events().iter() {
        match event {
            RecorderEvent::Progress { captured_ms, .. } => {
                captured.store(captured_ms, Ordering::SeqCst);
                let wants_mark = rss_at_mark.is_none() && captured_ms >= marks.mark_ms;
                let wants_checkpoint = captured_ms >= next_checkpoint;
                let wants_report = last_report.elapsed() >= Duration::from_secs(10);
                if !(wants_mark || wants_checkpoint || wants_report) {
                    continue;
                }
                let rss = match procfs::memory() {
                    Ok(m) => m.rss,
                    Err(err) => {
                        // Without readings the run is worthless: stop it and report why.
                        recorder.request_stop();
                        failure.get_or_insert(err);
                        continue;
                    }
                };
                if wants_mark {
                    rss_at_mark = Some(rss);
                }
                while captured_ms >= next_checkpoint {
                    checkpoints.push((next_checkpoint, rss));
                    next_checkpoint += marks.checkpoint_ms;
                }
                if wants_report {
                    last_report = Instant::now();
                    eprintln!(
                        "memory: {:.2} h recorded, RSS {:.1} MiB",
                        captured_ms as f64 / 3_600_000.0,
                        mib(rss)
                    );
                }
            }
            RecorderEvent::TrackEnded { error: Some(e), .. } => {
                failure.get_or_insert(anyhow!("the recording track failed: {e}"));
            }
            _ => {}
        }
    }
    let summary = recorder
        .wait()
        .with_context(|| format!("the recorder failed on {}", input.display()))?;
    let wall = t0.elapsed();
    done.store(true, Ordering::SeqCst);
    let (peak_sampled, samples_after_mark) = sampler
        .join()
        .map_err(|_| anyhow!("the RSS sampler thread panicked"))??;
    let end = procfs::memory()?;
    if let Some(err) = failure {
        return Err(err);
    }
    let db_bytes = ["spool.db", "spool.db-wal", "spool.db-shm"]
        .iter()
        .filter_map(|name| std::fs::metadata(root.join(name)).ok())
        .map(|m| m.len())
        .sum();
    let rss_at_mark = rss_at_mark.with_context(|| {
        format!(
            "the recording ended at {} ms, before the {} ms mark",
            captured.load(Ordering::SeqCst),
            marks.mark_ms
        )
    })?;
    Ok(MemoryResult {
        input: input.to_path_buf(),
        marks,
        captured_ms: captured.load(Ordering::SeqCst),
        wall,
        rss_at_mark,
        peak_sampled: peak_sampled.max(rss_at_mark),
        samples_after_mark,
        hwm_at_end: end.hwm,
        rss_at_end: end.rss,
        checkpoints,
        segments: summary.segments,
        bytes: summary.bytes,
        gaps: summary.gaps.len() as u64,
        db_bytes,
    })
}

/// Samples VmRSS until `done`; returns the largest sample taken after the mark and how many.
fn sample_rss(captured: &AtomicU64, done: &AtomicBool, mark_ms: u64) -> Result<(u64, u64)> {
    let mut peak_value = 0u64;
    let mut count = 0u64;
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(SAMPLE_EVERY);
        if captured.load(Ordering::SeqCst) >= mark_ms {
            peak_value = peak_value.max(procfs::memory()?.rss);
            count += 1;
        }
    }
    Ok((peak_value, count))
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
