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
//! - **bytes**: sealed segment bytes per track-hour at the default bitrate.
//!
//! ```text
//! cargo run --release -p chronote-bench -- --write docs/BENCHMARKS.md
//! cargo run --release -p chronote-bench -- --only pipeline --quick
//! ```
//!
//! Generated speech is cached under `$HOME/.cache/chronote/bench-inputs`.

pub mod inputs;
pub mod machine;
pub mod memory;
pub mod pipeline;
pub mod procfs;
pub mod report;
pub mod stats;

use std::path::Path;

use anyhow::Result;

use crate::inputs::InputCache;
use crate::machine::Machine;
use crate::memory::{Marks, MemoryResult};
use crate::pipeline::PipelineResult;
use crate::report::Report;

/// The encoder rate the recorder uses by default; the raw baseline and the long memory input
/// are prepared at this rate.
const ENCODER_RATE: u32 = 16_000;
/// The pipeline input is what a desktop microphone typically delivers.
const PIPELINE_INPUT_RATE: u32 = 48_000;

/// Which benchmarks to run and how big.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub pipeline: bool,
    pub memory: bool,
    pub bytes: bool,
    /// Interleaved pipeline/raw pairs.
    pub runs: usize,
    pub pipeline_secs: u32,
    pub memory_secs: u32,
    pub marks: Marks,
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
    /// The figures the issue asks for: 1 h pipeline x3, 10 h memory with the 10 min mark.
    pub fn full() -> Plan {
        Plan {
            pipeline: true,
            memory: true,
            bytes: true,
            runs: 3,
            pipeline_secs: 3600,
            memory_secs: 36_000,
            marks: Marks {
                mark_ms: 600_000,
                checkpoint_ms: 3_600_000,
            },
            memory_in_child: true,
            scale: Scale::Full,
        }
    }

    /// A smoke test of the same code: 5 min pipeline, 30 min memory.
    pub fn quick() -> Plan {
        Plan {
            pipeline_secs: 300,
            memory_secs: 1800,
            marks: Marks {
                mark_ms: 600_000,
                checkpoint_ms: 180_000,
            },
            scale: Scale::Quick,
            ..Plan::full()
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
    Ok(Report {
        machine,
        plan: plan.clone(),
        pipeline,
        memory,
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
            runs: 1,
            pipeline_secs: 20,
            memory_secs: 20,
            marks: Marks {
                mark_ms: 5_000,
                checkpoint_ms: 5_000,
            },
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
    }
}
