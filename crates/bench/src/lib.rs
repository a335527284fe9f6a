//! Chronote Recorder benchmarks, written to `docs/BENCHMARKS.md` by `make bench`.
//!
//! Each benchmark runs the real code side by side with a baseline in the same process and
//! reports ratios, so the figures mean something on any machine:
//!
//! - **pipeline**: the recorder (WAV file source, fast mode, default settings) over an hour of
//!   espeak-ng speech into a temporary spool, against bare libopus encoding the same speech
//!   (resampled to 16 kHz by sox and decoded into memory beforehand), runs interleaved;
//! - **memory**: ten hours through the file source in a child process, VmRSS sampled as the
//!   timeline advances, peak against the reading at 10 minutes;
//! - **bytes**: sealed segment bytes per track-hour at the default bitrate;
//! - **goodput**: 1 GiB through our tus client to an in-process `chronote-server`, against a
//!   plain HTTP POST of the same bytes to the same server (`/v1/bench/sink`), runs interleaved;
//! - **ingest**: 1,000 simulated recorders each uploading a 30 s segment per round over plain
//!   tus, against `chronote-server` and `@tus/server` 2 (Node), each in a child process, rounds
//!   interleaved: segments per second, p99 latency, server RSS;
//! - **scheduler**: a queue of transcription jobs (10 meetings) drained by an in-process
//!   `chronote-server` with an instant engine, default 8 workers against 1 worker and against
//!   the bare SQLite commits a job needs, runs interleaved: jobs per second, cost per job;
//! - **whisper**: whisper.cpp tiny.en on 30 s segments of espeak-ng speech encoded by the
//!   recorder's encoder, in a child process: real-time factor, decode time, peak RSS;
//! - **overload**: 10 meetings uploading at twice the capacity of a fixed-latency provider,
//!   `GET /v1/queue` sampled every 500 ms: per-meeting lag and its spread, queue depth.
//!
//! ```text
//! cargo run --release -p chronote-bench -- --write docs/BENCHMARKS.md
//! cargo run --release -p chronote-bench -- --only pipeline --quick
//! ```
//!
//! Generated speech is cached under `$HOME/.cache/chronote/bench-inputs`.

pub mod goodput;
pub mod ingest;
pub mod inputs;
pub mod machine;
pub mod memory;
pub mod overload;
pub mod peers;
pub mod pipeline;
pub mod procfs;
pub mod report;
pub mod scheduler;
pub mod server4;
pub mod stats;
pub mod whisper;

use std::path::Path;

use anyhow::Result;

use crate::goodput::GoodputResult;
use crate::ingest::{IngestPlan, IngestResult};
use crate::inputs::InputCache;
use crate::machine::Machine;
use crate::memory::{Marks, MemoryResult};
use crate::overload::{OverloadPlan, OverloadResult};
use crate::pipeline::PipelineResult;
use crate::report::Report;
use crate::scheduler::{SchedulerPlan, SchedulerResult};
use crate::whisper::WhisperResult;

/// The encoder rate the recorder uses by default; the raw baseline and the long memory input
/// are prepared at this rate.
const ENCODER_RATE: u32 = 16_000;
/// The pipeline input is what a desktop microphone typically delivers.
const PIPELINE_INPUT_RATE: u32 = 48_000;

/// Which benchmarks to run and how big.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub pipeline: bool,
    pub memory: bool,
    pub bytes: bool,
    pub goodput: bool,
    pub ingest: bool,
    pub scheduler: bool,
    pub whisper: bool,
    pub overload: bool,
    /// Interleaved pipeline/raw pairs.
    pub runs: usize,
    pub pipeline_secs: u32,
    pub memory_secs: u32,
    pub marks: Marks,
    /// Size of the goodput upload.
    pub goodput_bytes: u64,
    /// Interleaved tus/plain pairs.
    pub goodput_runs: usize,
    pub ingest_plan: IngestPlan,
    pub scheduler_plan: SchedulerPlan,
    /// 30 s segments per whisper thread setting.
    pub whisper_segments: usize,
    pub overload_plan: OverloadPlan,
    /// Measure memory in a re-executed child (the binary) or in this process (tests).
    pub memory_in_child: bool,
    /// Printed in the report so a scaled-down run is never mistaken for the real one.
    pub scale: Scale,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Full,
    Quick,
    Custom,
}

impl Plan {
    /// The figures the issues ask for: 1 h pipeline x3, 10 h memory with the 10 min mark,
    /// 1 GiB goodput x3, 1,000 recorders x5 rounds, 2,000 jobs x3, 6 whisper segments, 20 s
    /// of overload.
    pub fn full() -> Plan {
        Plan {
            pipeline: true,
            memory: true,
            bytes: true,
            goodput: true,
            ingest: true,
            scheduler: true,
            whisper: true,
            overload: true,
            runs: 3,
            pipeline_secs: 3600,
            memory_secs: 36_000,
            marks: Marks {
                mark_ms: 600_000,
                checkpoint_ms: 3_600_000,
            },
            goodput_bytes: 1 << 30,
            goodput_runs: 3,
            ingest_plan: IngestPlan {
                recorders: 1000,
                rounds: 5,
                concurrency: 64,
            },
            scheduler_plan: SchedulerPlan {
                meetings: 10,
                segments_per_meeting: 200,
                runs: 3,
            },
            whisper_segments: 6,
            overload_plan: OverloadPlan {
                meetings: 10,
                latency: std::time::Duration::from_millis(100),
                concurrency: 2,
                factor: 2.0,
                duration: std::time::Duration::from_secs(20),
                sample_every: std::time::Duration::from_millis(500),
            },
            memory_in_child: true,
            scale: Scale::Full,
        }
    }

    /// A smoke test of the same code: 5 min pipeline, 30 min memory, 64 MiB goodput, 100
    /// recorders, 200 jobs, 2 whisper segments, 5 s of overload.
    pub fn quick() -> Plan {
        let full = Plan::full();
        Plan {
            pipeline_secs: 300,
            memory_secs: 1800,
            marks: Marks {
                mark_ms: 600_000,
                checkpoint_ms: 180_000,
            },
            goodput_bytes: 64 << 20,
            ingest_plan: IngestPlan {
                recorders: 100,
                rounds: 3,
                concurrency: 64,
            },
            scheduler_plan: SchedulerPlan {
                meetings: 10,
                segments_per_meeting: 20,
                runs: 1,
            },
            whisper_segments: 2,
            overload_plan: OverloadPlan {
                duration: std::time::Duration::from_secs(5),
                ..full.overload_plan
            },
            scale: Scale::Quick,
            ..full
        }
    }
}

/// Runs what `plan` asks for and gathers the figures.
pub fn run(plan: &Plan, cache: &InputCache, repo: &Path) -> Result<Report> {
    let machine = Machine::detect(repo);
    let mut pipeline: Option<PipelineResult> = None;
    if plan.pipeline || plan.bytes {
        let input = cache.speech(PIPELINE_INPUT_RATE, plan.pipeline_secs)?;
        let input_16k = cache.resampled(&input, ENCODER_RATE)?;
        // The byte count needs one recorder run; timing needs the interleaved pairs.
        let runs = if plan.pipeline { plan.runs.max(1) } else { 1 };
        eprintln!(
            "pipeline: {} s of speech, {runs} interleaved run(s) each side",
            plan.pipeline_secs
        );
        pipeline = Some(pipeline::bench(&input, &input_16k, runs)?);
    }
    let mut memory: Option<MemoryResult> = None;
    if plan.memory {
        let input = cache.speech(ENCODER_RATE, plan.memory_secs)?;
        eprintln!(
            "memory: {} s of speech through the file source{}",
            plan.memory_secs,
            if plan.memory_in_child {
                " in a child process"
            } else {
                ""
            }
        );
        memory = Some(if plan.memory_in_child {
            memory::measure_in_child(&input, plan.marks)?
        } else {
            memory::measure_in_process(&input, plan.marks)?
        });
    }
    let mut goodput: Option<GoodputResult> = None;
    if plan.goodput {
        eprintln!(
            "goodput: {} MiB, {} interleaved run(s) each side",
            plan.goodput_bytes >> 20,
            plan.goodput_runs
        );
        goodput = Some(goodput::bench(
            plan.goodput_bytes,
            plan.goodput_runs.max(1),
        )?);
    }
    let mut ingest: Option<IngestResult> = None;
    if plan.ingest {
        let p = plan.ingest_plan;
        eprintln!(
            "ingest: {} recorders x {} rounds, {} in flight, chronote-server and @tus/server",
            p.recorders, p.rounds, p.concurrency
        );
        ingest = Some(ingest::bench(p)?);
    }
    let mut scheduler: Option<SchedulerResult> = None;
    if plan.scheduler {
        let p = plan.scheduler_plan;
        eprintln!(
            "scheduler: {} jobs ({} meetings x {}), {} interleaved round(s) of {} workers, 1 worker, bare SQLite",
            p.jobs(),
            p.meetings,
            p.segments_per_meeting,
            p.runs,
            scheduler::DEFAULT_WORKERS
        );
        scheduler = Some(scheduler::bench(p)?);
    }
    let mut whisper: Option<WhisperResult> = None;
    if plan.whisper {
        whisper = Some(whisper::bench(cache, plan.whisper_segments)?);
    }
    let mut overload: Option<OverloadResult> = None;
    if plan.overload {
        overload = Some(overload::bench(plan.overload_plan)?);
    }
    Ok(Report {
        machine,
        plan: plan.clone(),
        pipeline,
        memory,
        goodput,
        ingest,
        scheduler,
        whisper,
        overload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole benchmark on 20 s of speech: it completes and its figures are sane. No timing
    /// is asserted; the machine running tests is shared and busy.
    #[test]
    fn small_benchmark_completes_with_sane_figures() {
        let dir = tempfile::tempdir().unwrap();
        let cache = InputCache::new(dir.path().join("inputs"));
        let plan = Plan {
            pipeline: true,
            memory: true,
            bytes: true,
            goodput: false,
            ingest: false,
            scheduler: false,
            whisper: false,
            overload: false,
            runs: 1,
            pipeline_secs: 20,
            memory_secs: 20,
            marks: Marks {
                mark_ms: 5_000,
                checkpoint_ms: 5_000,
            },
            goodput_bytes: 1 << 20,
            goodput_runs: 1,
            ingest_plan: IngestPlan {
                recorders: 1,
                rounds: 1,
                concurrency: 1,
            },
            scheduler_plan: Plan::full().scheduler_plan,
            whisper_segments: 1,
            overload_plan: Plan::full().overload_plan,
            memory_in_child: false,
            scale: Scale::Custom,
        };
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let report = run(&plan, &cache, repo).unwrap();

        let pipeline = report.pipeline.as_ref().unwrap();
        assert_eq!(pipeline.input_48k, 20 * 48_000);
        assert_eq!(pipeline.input_rate, 48_000);
        assert_eq!(pipeline.recorder.len(), 1);
        assert_eq!(pipeline.raw.len(), 1);
        let rec = &pipeline.recorder[0];
        assert_eq!(rec.gaps, 0);
        // 20 s is shorter than one 30 s segment.
        assert_eq!(rec.segments, 1);
        assert!(rec.duration_48k.abs_diff(20 * 48_000) <= 960, "{rec:?}");
        assert_eq!(rec.bytes, rec.bytes_on_disk);
        // 24 kbit/s for 20 s is 60 kB; VBR speech with pauses lands well inside these bounds.
        assert!((20_000..=90_000).contains(&rec.bytes), "{rec:?}");
        let raw = &pipeline.raw[0];
        assert_eq!(raw.packets, 20 * 50);
        assert!((20_000..=90_000).contains(&raw.bytes), "{raw:?}");

        let mem = report.memory.as_ref().unwrap();
        // Progress comes once per second of timeline, so the last report may fall short of 20 s.
        assert!((19_000..=20_000).contains(&mem.captured_ms), "{mem:?}");
        assert_eq!(
            mem.checkpoints
                .iter()
                .take(3)
                .map(|c| c.0)
                .collect::<Vec<_>>(),
            vec![5_000, 10_000, 15_000]
        );
        assert!(mem.rss_at_mark > 1 << 20 && mem.peak() >= mem.rss_at_mark);
        assert!(mem.hwm_at_end >= mem.rss_at_end);

        let text = report::render(&report);
        assert!(text.contains("## Issue 2: recorder engine"));
        assert!(text.contains("T_pipe / T_raw"));
        assert!(text.contains("Bytes per track-hour"));
        assert!(text.contains("| 0:00:05 | "), "{text}");
        assert!(!text.contains("## Issue 3"));
    }

    /// Goodput on 3 MiB: both sides confirm every byte and the report shows the ratio.
    #[test]
    fn small_goodput_confirms_every_byte() {
        let result = goodput::bench(3 << 20, 1).unwrap();
        assert_eq!(result.tus.len(), 1);
        assert_eq!(result.plain.len(), 1);
        for run in result.tus.iter().chain(&result.plain) {
            assert_eq!(run.confirmed, 3 << 20);
            assert!(run.mb_per_sec() > 0.0);
        }
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let plan = Plan {
            pipeline: false,
            memory: false,
            bytes: false,
            ingest: false,
            scheduler: false,
            whisper: false,
            overload: false,
            goodput_bytes: 3 << 20,
            scale: Scale::Custom,
            ..Plan::full()
        };
        let report = Report {
            machine: Machine::detect(repo),
            plan,
            pipeline: None,
            memory: None,
            goodput: Some(result),
            ingest: None,
            scheduler: None,
            whisper: None,
            overload: None,
        };
        let text = report::render(&report);
        assert!(text.contains("## Issue 3: upload"), "{text}");
        assert!(text.contains("tus / plain POST (median MB/s)"), "{text}");
        assert!(!text.contains("## Issue 2"), "{text}");
    }

    /// The ingest segment is a real 30 s segment near 90 kB.
    #[test]
    fn ingest_segment_is_real() {
        let dir = tempfile::tempdir().unwrap();
        let segment = ingest::make_segment(dir.path()).unwrap();
        assert_eq!(segment.length_48k, 30 * 48_000);
        assert!(
            (75_000..=100_000).contains(&segment.bytes.len()),
            "{} bytes",
            segment.bytes.len()
        );
        assert_eq!(segment.sha256.len(), 64);
    }

    /// A small queue: both worker settings drain every job, and the report has issue 4.
    #[test]
    fn small_scheduler_drains_every_job() {
        let result = scheduler::bench(SchedulerPlan {
            meetings: 2,
            segments_per_meeting: 3,
            runs: 1,
        })
        .unwrap();
        for run in result.default_workers.iter().chain(&result.one_worker) {
            assert_eq!(run.jobs, 6);
            assert!(run.engine_calls >= 6, "{run:?}");
            assert!(run.jobs_per_sec() > 0.0);
        }
        assert_eq!(result.sqlite.len(), 1);
        assert!(result.sqlite[0].jobs_per_sec() > 0.0);
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let report = Report {
            machine: Machine::detect(repo),
            plan: Plan {
                scale: Scale::Custom,
                ..Plan::full()
            },
            pipeline: None,
            memory: None,
            goodput: None,
            ingest: None,
            scheduler: Some(result),
            whisper: None,
            overload: None,
        };
        let text = report::render(&report);
        assert!(text.contains("## Issue 4: server processing"), "{text}");
        assert!(text.contains("### Scheduler"), "{text}");
        assert!(!text.contains("## Issue 3"), "{text}");
    }

    /// Two seconds at twice the capacity: the queue grows, then everything is transcribed.
    #[test]
    fn small_overload_loses_nothing() {
        let plan = OverloadPlan {
            meetings: 3,
            latency: std::time::Duration::from_millis(50),
            concurrency: 1,
            factor: 2.0,
            duration: std::time::Duration::from_secs(2),
            sample_every: std::time::Duration::from_millis(500),
        };
        let result = overload::bench(plan).unwrap();
        assert_eq!(result.uploaded, 80);
        assert_eq!(result.end.received(), 80);
        assert_eq!(result.transcribed_after_drain, 80);
        assert!(result.end.depth > 0, "{:?}", result.end);
        assert_eq!(result.end.meetings.len(), 3);
        assert!(!result.samples.is_empty());
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let report = Report {
            machine: Machine::detect(repo),
            plan: Plan {
                scale: Scale::Custom,
                ..Plan::full()
            },
            pipeline: None,
            memory: None,
            goodput: None,
            ingest: None,
            scheduler: None,
            whisper: None,
            overload: Some(result),
        };
        let text = report::render(&report);
        assert!(text.contains("### Lag under overload"), "{text}");
    }
}
