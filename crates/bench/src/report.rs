//! The Markdown report (docs/BENCHMARKS.md): machine, figures against their targets, method.

use std::fmt::Write as _;

use crate::machine::Machine;
use crate::memory::MemoryResult;
use crate::pipeline::PipelineResult;
use crate::stats::{median, min, secs};
use crate::{Plan, Scale};

/// Ratio of the recorder's wall time to bare libopus, at most.
pub const TARGET_PIPELINE_RATIO: f64 = 1.3;
/// Peak RSS above the reading at the mark, at most (bytes; MB = 10^6 bytes).
pub const TARGET_MEMORY_GROWTH: u64 = 5_000_000;
/// Sealed bytes per track-hour, at most.
pub const TARGET_BYTES_PER_HOUR: f64 = 11_000_000.0;

/// One frame of 20 ms on the 48 kHz timeline: the tolerance of the output check.
const FRAME_48K: u64 = 960;

#[derive(Debug, Clone)]
pub struct Report {
    pub machine: Machine,
    pub plan: Plan,
    pub pipeline: Option<PipelineResult>,
    pub memory: Option<MemoryResult>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Miss,
}

impl Verdict {
    fn of(pass: bool) -> Verdict {
        if pass { Verdict::Pass } else { Verdict::Miss }
    }

    fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Miss => "MISS",
        }
    }
}

/// The pipeline figures derived from the runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PipelineFigures {
    pub pipe_median: f64,
    pub pipe_min: f64,
    pub raw_median: f64,
    pub raw_min: f64,
    /// Median T_pipe over median T_raw: the figure the target applies to.
    pub ratio_median: f64,
    pub ratio_min: f64,
}

impl PipelineFigures {
    pub fn of(result: &PipelineResult) -> Option<PipelineFigures> {
        let pipe = secs(result.recorder.iter().map(|r| r.wall));
        let raw = secs(result.raw.iter().map(|r| r.wall));
        let pipe_median = median(&pipe)?;
        let raw_median = median(&raw)?;
        let pipe_min = min(&pipe)?;
        let raw_min = min(&raw)?;
        Some(PipelineFigures {
            pipe_median,
            pipe_min,
            raw_median,
            raw_min,
            ratio_median: pipe_median / raw_median,
            ratio_min: pipe_min / raw_min,
        })
    }

    pub fn verdict(&self) -> Verdict {
        Verdict::of(self.ratio_median <= TARGET_PIPELINE_RATIO)
    }
}

/// Bytes of the first recorder run, scaled to one hour of track audio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BytesFigures {
    pub bytes: u64,
    pub audio_secs: f64,
    pub per_hour: f64,
    pub kbit_per_sec: f64,
    pub segments: u64,
}

impl BytesFigures {
    pub fn of(result: &PipelineResult) -> Option<BytesFigures> {
        let run = result.recorder.first()?;
        let audio_secs = run.duration_48k as f64 / 48_000.0;
        if audio_secs <= 0.0 {
            return None;
        }
        Some(BytesFigures {
            bytes: run.bytes_on_disk,
            audio_secs,
            per_hour: run.bytes_on_disk as f64 * 3600.0 / audio_secs,
            kbit_per_sec: run.bytes_on_disk as f64 * 8.0 / audio_secs / 1000.0,
            segments: run.segments,
        })
    }

    pub fn verdict(&self) -> Verdict {
        Verdict::of(self.per_hour <= TARGET_BYTES_PER_HOUR)
    }
}

pub fn memory_verdict(m: &MemoryResult) -> Verdict {
    Verdict::of(m.growth() <= TARGET_MEMORY_GROWTH)
}

fn mb(bytes: f64) -> String {
    format!("{:.2} MB", bytes / 1e6)
}

fn mb_u(bytes: u64) -> String {
    mb(bytes as f64)
}

fn s(v: f64) -> String {
    format!("{v:.2} s")
}

fn x(audio_secs: f64, wall: f64) -> String {
    if wall > 0.0 {
        format!("{:.0}x", audio_secs / wall)
    } else {
        "n/a".into()
    }
}

/// h:mm:ss of a timeline position.
pub fn clock(ms: u64) -> String {
    let total = ms / 1000;
    format!("{}:{:02}:{:02}", total / 3600, total / 60 % 60, total % 60)
}

fn hours(secs: u32) -> String {
    if secs.is_multiple_of(3600) {
        format!("{} h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// What the recorder runs produced must match the input, or the timing means nothing.
fn output_problems(result: &PipelineResult) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, run) in result.recorder.iter().enumerate() {
        let n = i + 1;
        let off = run.duration_48k.abs_diff(result.input_48k);
        if off > FRAME_48K {
            problems.push(format!(
                "run {n}: segments cover {} of {} timeline samples (off by {off})",
                run.duration_48k, result.input_48k
            ));
        }
        if run.gaps > 0 {
            problems.push(format!("run {n}: {} gap(s) recorded", run.gaps));
        }
        if run.bytes != run.bytes_on_disk {
            problems.push(format!(
                "run {n}: spool records {} bytes, files hold {}",
                run.bytes, run.bytes_on_disk
            ));
        }
        for w in &run.warnings {
            problems.push(format!("run {n}: {w}"));
        }
    }
    problems
}

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; the results are ignored on purpose.
    let _ = write_all(&mut out, report);
    out
}

fn write_all(out: &mut String, report: &Report) -> std::fmt::Result {
    let plan = &report.plan;
    writeln!(out, "# Benchmarks")?;
    writeln!(out)?;
    writeln!(
        out,
        "Measured by `crates/bench` (`chronote-bench`). Every figure is measured side by side with \
         a baseline in the same run, so ratios carry over between machines better than absolute \
         times. This file is rewritten by `make bench`; do not edit the figures by hand."
    )?;
    writeln!(out)?;
    if plan.scale != Scale::Full {
        writeln!(
            out,
            "> **Scaled-down run** ({} pipeline, {} memory): a smoke test, not the figures the \
             targets refer to. Run `make bench` for those.",
            hours(plan.pipeline_secs),
            hours(plan.memory_secs)
        )?;
        writeln!(out)?;
    }
    write_machine(out, &report.machine)?;
    write_how_to_run(out)?;

    writeln!(out, "## Issue 2: recorder engine")?;
    writeln!(out)?;
    write_summary(out, report)?;
    if plan.pipeline
        && let Some(p) = &report.pipeline
    {
        write_pipeline(out, plan, p)?;
    }
    if let Some(m) = &report.memory {
        write_memory(out, plan, m)?;
    }
    if plan.bytes
        && let Some(p) = &report.pipeline
    {
        write_bytes(out, plan, p)?;
    }
    write_method(out)?;
    Ok(())
}

fn write_machine(out: &mut String, m: &Machine) -> std::fmt::Result {
    writeln!(out, "## Machine")?;
    writeln!(out)?;
    writeln!(out, "| | |")?;
    writeln!(out, "|---|---|")?;
    writeln!(out, "| Date | {} |", m.date_utc)?;
    writeln!(out, "| Commit | `{}` |", m.commit)?;
    writeln!(out, "| CPU | {} ({} logical CPUs) |", m.cpu, m.logical_cpus)?;
    let memory = m.memory_bytes.map_or("unknown".to_string(), |b| {
        format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
    });
    writeln!(out, "| Memory | {memory} |")?;
    writeln!(out, "| OS | {} (kernel {}) |", m.os, m.kernel)?;
    writeln!(out, "| Rust | {} |", m.rustc)?;
    writeln!(out, "| libopus | {} |", m.libopus)?;
    writeln!(out, "| Build | {} |", m.profile)?;
    writeln!(out, "| Load average at start | {} |", m.load_average)?;
    writeln!(out)?;
    Ok(())
}

fn write_how_to_run(out: &mut String) -> std::fmt::Result {
    writeln!(out, "## How to run")?;
    writeln!(out)?;
    writeln!(out, "```sh")?;
    writeln!(
        out,
        "make bench                                   # everything; rewrites this file"
    )?;
    writeln!(
        out,
        "cargo run --release -p chronote-bench -- --only pipeline|memory|bytes   # one figure, printed"
    )?;
    writeln!(
        out,
        "cargo run --release -p chronote-bench -- --quick                        # scaled-down smoke run"
    )?;
    writeln!(out, "```")?;
    writeln!(out)?;
    writeln!(
        out,
        "`--only` may be repeated; `--write PATH` writes the report instead of printing it; \
         `--runs N` sets the number of interleaved pipeline pairs (default 3). Needs `espeak-ng` \
         and `sox` (`make deps`). Generated speech is cached in \
         `$HOME/.cache/chronote/bench-inputs` (about 1.6 GB for the full run), so only the first \
         run pays for generating it."
    )?;
    writeln!(out)?;
    Ok(())
}

fn write_summary(out: &mut String, report: &Report) -> std::fmt::Result {
    let plan = &report.plan;
    writeln!(out, "| Figure | Measured | Target | Result |")?;
    writeln!(out, "|---|---|---|---|")?;
    if plan.pipeline
        && let Some(f) = report.pipeline.as_ref().and_then(PipelineFigures::of)
    {
        writeln!(
            out,
            "| Pipeline cost over {} of speech, T_pipe / T_raw (median) | {:.2} | <= {TARGET_PIPELINE_RATIO} | {} |",
            hours(plan.pipeline_secs),
            f.ratio_median,
            f.verdict().as_str()
        )?;
    }
    if let Some(m) = &report.memory {
        writeln!(
            out,
            "| Memory over {}: peak RSS - RSS at {} | {} | <= {} | {} |",
            hours(plan.memory_secs),
            clock(m.marks.mark_ms),
            mb_u(m.growth()),
            mb_u(TARGET_MEMORY_GROWTH),
            memory_verdict(m).as_str()
        )?;
    }
    if plan.bytes
        && let Some(b) = report.pipeline.as_ref().and_then(BytesFigures::of)
    {
        writeln!(
            out,
            "| Bytes per track-hour at 24 kbit/s | {} | <= {} | {} |",
            mb(b.per_hour),
            mb(TARGET_BYTES_PER_HOUR),
            b.verdict().as_str()
        )?;
    }
    writeln!(out)?;
    Ok(())
}

fn write_pipeline(out: &mut String, plan: &Plan, p: &PipelineResult) -> std::fmt::Result {
    writeln!(out, "### Pipeline cost")?;
    writeln!(out)?;
    let audio = p.audio_secs();
    writeln!(
        out,
        "{} of speech ({} Hz mono 16-bit WAV), {} interleaved run(s) of each side \
         (recorder, raw, recorder, raw, ...).",
        hours(plan.pipeline_secs),
        p.input_rate,
        p.recorder.len()
    )?;
    writeln!(out)?;
    let Some(f) = PipelineFigures::of(p) else {
        writeln!(out, "No complete run pair.")?;
        writeln!(out)?;
        return Ok(());
    };
    let list = |v: &[f64]| {
        v.iter()
            .map(|t| format!("{t:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let pipe = secs(p.recorder.iter().map(|r| r.wall));
    let raw = secs(p.raw.iter().map(|r| r.wall));
    let pipe_cpu = secs(p.recorder.iter().map(|r| r.cpu));
    let raw_cpu = secs(p.raw.iter().map(|r| r.cpu));
    let pairs: Vec<f64> = pipe.iter().zip(&raw).map(|(a, b)| a / b).collect();
    writeln!(out, "| | Median | Min | Every run |")?;
    writeln!(out, "|---|---|---|---|")?;
    writeln!(
        out,
        "| T_pipe: recorder, wall | {} | {} | {} |",
        s(f.pipe_median),
        s(f.pipe_min),
        list(&pipe)
    )?;
    writeln!(
        out,
        "| T_raw: bare libopus, wall | {} | {} | {} |",
        s(f.raw_median),
        s(f.raw_min),
        list(&raw)
    )?;
    writeln!(
        out,
        "| **T_pipe / T_raw** | **{:.2}** | {:.2} (min / min) | {} (per pair) |",
        f.ratio_median,
        f.ratio_min,
        list(&pairs)
    )?;
    writeln!(
        out,
        "| Recorder speed | {} realtime | {} realtime | |",
        x(audio, f.pipe_median),
        x(audio, f.pipe_min)
    )?;
    writeln!(
        out,
        "| Raw libopus speed | {} realtime | {} realtime | |",
        x(audio, f.raw_median),
        x(audio, f.raw_min)
    )?;
    if let (Some(pc), Some(rc)) = (median(&pipe_cpu), median(&raw_cpu)) {
        writeln!(
            out,
            "| CPU time (user + system, all threads): recorder | {} | {} | {} |",
            s(pc),
            s(min(&pipe_cpu).unwrap_or(pc)),
            list(&pipe_cpu)
        )?;
        writeln!(
            out,
            "| CPU time: raw libopus | {} | {} | {} |",
            s(rc),
            s(min(&raw_cpu).unwrap_or(rc)),
            list(&raw_cpu)
        )?;
        if rc > 0.0 {
            writeln!(out, "| CPU ratio recorder / raw | {:.2} | | |", pc / rc)?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "Target: T_pipe / T_raw <= {TARGET_PIPELINE_RATIO} (median over median): **{}**.",
        f.verdict().as_str()
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "T_pipe is wall time: besides the processing it includes the recorder's durability \
         syncs (journal pages, each sealed file and its directory, SQLite commits) and any wait \
         for a CPU on a shared machine, none of which T_raw has. The CPU-time rows show the \
         processing cost alone."
    )?;
    writeln!(out)?;
    write_output_check(out, p)?;
    Ok(())
}

fn write_output_check(out: &mut String, p: &PipelineResult) -> std::fmt::Result {
    let problems = output_problems(p);
    if problems.is_empty() {
        if let Some(run) = p.recorder.first() {
            writeln!(
                out,
                "Output check: every recorder run sealed {} segments covering {} of {} timeline \
                 samples (within one 20 ms frame), no gaps, spool byte counts equal to the files.",
                run.segments, run.duration_48k, p.input_48k
            )?;
        }
    } else {
        writeln!(
            out,
            "**Output check failed** (the timing may not be meaningful):"
        )?;
        writeln!(out)?;
        for problem in problems {
            writeln!(out, "- {problem}")?;
        }
    }
    writeln!(out)?;
    Ok(())
}

fn write_memory(out: &mut String, plan: &Plan, m: &MemoryResult) -> std::fmt::Result {
    writeln!(out, "### Memory")?;
    writeln!(out)?;
    let audio = m.captured_ms as f64 / 1000.0;
    writeln!(
        out,
        "{} of speech (16 kHz mono 16-bit WAV) through the fast file source in one child \
         process: {} segments, {}, {} gap(s), {} wall ({} realtime).",
        hours(plan.memory_secs),
        m.segments,
        mb_u(m.bytes),
        m.gaps,
        s(m.wall.as_secs_f64()),
        x(audio, m.wall.as_secs_f64())
    )?;
    writeln!(out)?;
    writeln!(out, "| | RSS |")?;
    writeln!(out, "|---|---|")?;
    writeln!(
        out,
        "| RSS at {} (reference) | {} |",
        clock(m.marks.mark_ms),
        mb_u(m.rss_at_mark)
    )?;
    writeln!(
        out,
        "| Peak of {} VmRSS samples after {} (every 200 ms) | {} |",
        m.samples_after_mark,
        clock(m.marks.mark_ms),
        mb_u(m.peak_sampled)
    )?;
    writeln!(
        out,
        "| VmHWM at the end (peak of the whole process) | {} |",
        mb_u(m.hwm_at_end)
    )?;
    writeln!(out, "| RSS at the end | {} |", mb_u(m.rss_at_end))?;
    writeln!(out, "| **Peak - reference** | **{}** |", mb_u(m.growth()))?;
    writeln!(out)?;
    writeln!(
        out,
        "Target: peak within {} of the reference: **{}**.",
        mb_u(TARGET_MEMORY_GROWTH),
        memory_verdict(m).as_str()
    )?;
    writeln!(out)?;
    let slope = m.slope_per_hour().map_or(String::new(), |b| {
        format!(
            "RSS changed by {:+.0} kB per hour of timeline between the first and the last \
             checkpoint after the reference. ",
            b / 1000.0
        )
    });
    writeln!(
        out,
        "{slope}At the end the spool's database (spool.db, WAL and shared memory) held {} \
         for {} segments.",
        mb_u(m.db_bytes),
        m.segments
    )?;
    writeln!(out)?;
    if !m.checkpoints.is_empty() {
        writeln!(out, "| Timeline | RSS | vs reference |")?;
        writeln!(out, "|---|---|---|")?;
        for &(at, rss) in &m.checkpoints {
            let delta = rss as f64 - m.rss_at_mark as f64;
            writeln!(
                out,
                "| {} | {} | {:+.2} MB |",
                clock(at),
                mb_u(rss),
                delta / 1e6
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}

fn write_bytes(out: &mut String, plan: &Plan, p: &PipelineResult) -> std::fmt::Result {
    writeln!(out, "### Bytes per track-hour")?;
    writeln!(out)?;
    let Some(b) = BytesFigures::of(p) else {
        writeln!(out, "No recorder run.")?;
        writeln!(out)?;
        return Ok(());
    };
    writeln!(
        out,
        "From the first recorder run over {} of speech at the default 24 kbit/s VBR:",
        hours(plan.pipeline_secs)
    )?;
    writeln!(out)?;
    writeln!(out, "| | |")?;
    writeln!(out, "|---|---|")?;
    writeln!(
        out,
        "| Sealed segment files | {} bytes in {} segments ({} audio) |",
        b.bytes,
        b.segments,
        s(b.audio_secs)
    )?;
    writeln!(out, "| **Bytes per track-hour** | **{}** |", mb(b.per_hour))?;
    writeln!(
        out,
        "| Mean bitrate of the files (Ogg framing and headers included) | {:.2} kbit/s |",
        b.kbit_per_sec
    )?;
    if let Some(raw) = p.raw.first() {
        let raw_kbps = raw.bytes as f64 * 8.0 / p.audio_secs() / 1000.0;
        writeln!(
            out,
            "| Bare Opus packets of the same speech (raw run) | {:.2} kbit/s |",
            raw_kbps
        )?;
        if raw.bytes > 0 {
            writeln!(
                out,
                "| Container and segmenting overhead | {:+.1} % |",
                (b.bytes as f64 / raw.bytes as f64 - 1.0) * 100.0
            )?;
        }
    }
    if let Some(mean) = b.bytes.checked_div(b.segments) {
        writeln!(out, "| Mean segment | {mean} bytes |")?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "Target: <= {} per track-hour: **{}**.",
        mb(TARGET_BYTES_PER_HOUR),
        b.verdict().as_str()
    )?;
    writeln!(out)?;
    Ok(())
}

fn write_method(out: &mut String) -> std::fmt::Result {
    writeln!(out, "### Method")?;
    writeln!(out)?;
    let notes = [
        "Input: twelve meeting-style sentences spoken by espeak-ng with four accents and male and \
         female variants, 0.3-1.2 s pauses between lines, converted by sox to mono 16-bit and \
         looped with `sox ... repeat N trim 0 <length>` to the exact length. The speech has \
         digital silence between lines (no room noise), which Opus VBR encodes cheaply."
            .to_string(),
        "T_pipe: `Recorder::start` to `Recorder::wait` returning, default `RecorderConfig` \
         (16 kHz, 24 kbit/s VBR, 20 ms frames, 30 s segments), one file track in fast mode \
         into a fresh spool in a temporary directory. It covers WAV decoding, resampling \
         48 -> 16 kHz, Opus encoding, Ogg paging, a journal page every 500 ms of audio \
         (fdatasync'd at most every 250 ms of wall time, so a few times a second in fast mode), \
         sealing (file rebuilt, fsync, rename) and the SQLite commits. The \
         WAV is read once beforehand so it is in the page cache for every run."
            .to_string(),
        "T_raw: `opus::Encoder` with the same settings (16 kHz mono VOIP, 24 kbit/s VBR, 20 ms \
         frames) encoding every frame of the same speech into one in-memory buffer. The PCM was \
         resampled to 16 kHz by sox and decoded into memory before timing starts, so T_raw is \
         libopus alone."
            .to_string(),
        "The two sides run interleaved in one process (recorder, raw, recorder, raw, ...) so that \
         changes in machine load hit both; the target applies to the median of T_pipe over the \
         median of T_raw, and the min/min ratio and every pair are shown too. CPU time is \
         getrusage(RUSAGE_SELF) around each run (every thread of the process)."
            .to_string(),
        "Memory: the benchmark binary re-executes itself (a hidden `memory-child` subcommand) so \
         that nothing the benchmark allocated is counted. The input is 16 kHz so that the 10 h \
         file stays near 1.15 GB. A thread reads VmRSS from /proc/self/status every 200 ms; the \
         reference is VmRSS when the recorder's Progress events first pass the mark; the peak \
         is the larger of the samples after the mark and VmHWM at the end (which also covers \
         the start-up). MB = 10^6 bytes throughout."
            .to_string(),
        "Bytes: sizes of the sealed `.opus` files on disk after the first recorder run, scaled \
         to one hour; they include per-segment OpusHead/OpusTags pages, Ogg page headers and \
         the extra packet each segment carries for the encoder lookahead."
            .to_string(),
        "The machine may be shared with other work; the load average at start is in the machine \
         table. Absolute times vary with load, the ratios much less."
            .to_string(),
    ];
    for note in notes {
        writeln!(out, "- {note}")?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "<!-- Later issues add their benchmarks below, one section per issue (\"## Issue N: ...\"). -->"
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_timeline_positions() {
        assert_eq!(clock(600_000), "0:10:00");
        assert_eq!(clock(36_000_000), "10:00:00");
        assert_eq!(clock(5_000), "0:00:05");
        assert_eq!(hours(3600), "1 h");
        assert_eq!(hours(1800), "30 min");
        assert_eq!(hours(20), "20 s");
    }
}
