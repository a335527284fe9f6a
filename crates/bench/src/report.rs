//! The Markdown report (docs/BENCHMARKS.md): machine, figures against their targets, method.

use std::fmt::Write as _;

use crate::goodput::GoodputResult;
use crate::ingest::{IngestResult, ServerLoad};
use crate::machine::Machine;
use crate::memory::MemoryResult;
use crate::overload::{OverloadResult, Sample};
use crate::pipeline::PipelineResult;
use crate::scheduler::{DrainRun, SchedulerResult};
use crate::stats::{median, min, secs};
use crate::whisper::{ThreadsRun, WhisperResult};
use crate::{Plan, Scale};

/// Ratio of the recorder's wall time to bare libopus, at most.
pub const TARGET_PIPELINE_RATIO: f64 = 1.3;
/// Peak RSS above the reading at the mark, at most (bytes; MB = 10^6 bytes).
pub const TARGET_MEMORY_GROWTH: u64 = 5_000_000;
/// Sealed bytes per track-hour, at most.
pub const TARGET_BYTES_PER_HOUR: f64 = 11_000_000.0;
/// Goodput of our tus path over a plain POST of the same bytes, at least.
pub const TARGET_GOODPUT_RATIO: f64 = 0.8;

/// Between issue 2's section and the later ones; kept in place by [`merge`].
const MARKER: &str = "<!-- Later issues add their benchmarks below, one section per issue (\"## Issue N: ...\"). -->";

/// One frame of 20 ms on the 48 kHz timeline: the tolerance of the output check.
const FRAME_48K: u64 = 960;

#[derive(Debug, Clone)]
pub struct Report {
    pub machine: Machine,
    pub plan: Plan,
    pub pipeline: Option<PipelineResult>,
    pub memory: Option<MemoryResult>,
    pub goodput: Option<GoodputResult>,
    pub ingest: Option<IngestResult>,
    pub scheduler: Option<SchedulerResult>,
    pub whisper: Option<WhisperResult>,
    pub overload: Option<OverloadResult>,
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
    end_with_one_newline(out)
}

fn end_with_one_newline(mut text: String) -> String {
    text.truncate(text.trim_end().len());
    text.push('\n');
    text
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
    write_machine(out, &report.machine)?;
    write_how_to_run(out)?;

    if plan.pipeline || plan.memory || plan.bytes {
        writeln!(out, "## Issue 2: recorder engine")?;
        writeln!(out)?;
        write_run_line(out, &report.machine)?;
        if plan.scale != Scale::Full {
            writeln!(
                out,
                "> **Scaled-down run** ({} pipeline, {} memory): a smoke test, not the figures \
                 the targets refer to. Run `make bench` for those.",
                hours(plan.pipeline_secs),
                hours(plan.memory_secs)
            )?;
            writeln!(out)?;
        }
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
    }
    writeln!(out, "{MARKER}")?;
    if report.goodput.is_some() || report.ingest.is_some() {
        writeln!(out)?;
        write_issue3(out, report)?;
    }
    if report.scheduler.is_some() || report.whisper.is_some() || report.overload.is_some() {
        writeln!(out)?;
        write_issue4(out, report)?;
    }
    Ok(())
}

/// When and on what an issue's figures were measured (sections may come from different runs).
fn write_run_line(out: &mut String, m: &Machine) -> std::fmt::Result {
    writeln!(
        out,
        "Measured {}, commit `{}`, {} build, load average at start {}.",
        m.date_utc, m.commit, m.profile, m.load_average
    )?;
    writeln!(out)
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
        "cargo run --release -p chronote-bench -- --only pipeline|memory|bytes|goodput|ingest|scheduler|whisper|overload   # one figure, printed"
    )?;
    writeln!(
        out,
        "cargo run --release -p chronote-bench -- --only goodput --only ingest --write docs/BENCHMARKS.md   # rewrite issue 3's section only"
    )?;
    writeln!(
        out,
        "cargo run --release -p chronote-bench -- --only scheduler --only whisper --only overload --write docs/BENCHMARKS.md   # issue 4's section only"
    )?;
    writeln!(
        out,
        "cargo run --release -p chronote-bench -- --quick                        # scaled-down smoke run"
    )?;
    writeln!(out, "```")?;
    writeln!(out)?;
    writeln!(
        out,
        "`--only` may be repeated; `--write PATH` writes the report instead of printing it, and \
         together with `--only` replaces only the sections of the benchmarks that ran, keeping \
         the others from PATH (each section names the run it came from); `--runs N` sets the \
         number of interleaved pipeline pairs (default 3). `--quick` scales everything down (5 \
         min pipeline, 30 min memory, 64 MiB goodput, 100 recorders, 200 jobs, 2 Whisper \
         segments, 5 s of overload). Needs `espeak-ng` and `sox` for issues 2 and 4, Node 20 \
         with npm for the ingest comparison (`make deps`), and the Whisper model for the \
         whisper benchmark (`chronote model install`, or `make model`). \
         Generated speech is cached in `$HOME/.cache/chronote/bench-inputs` (about 1.6 GB for \
         the full run), so only the first run pays for generating it; `@tus/server` is \
         installed by npm into `$HOME/.cache/chronote/peers/tus-server` on first use. The \
         goodput benchmark writes a 1 GiB file and the server's copy under `$TMPDIR`."
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
    Ok(())
}

/// The goodput figures derived from the runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GoodputFigures {
    pub tus_median: f64,
    pub plain_median: f64,
    /// Median tus MB/s over median plain MB/s: the figure the target applies to.
    pub ratio: f64,
}

impl GoodputFigures {
    pub fn of(result: &GoodputResult) -> Option<GoodputFigures> {
        let tus: Vec<f64> = result.tus.iter().map(|r| r.mb_per_sec()).collect();
        let plain: Vec<f64> = result.plain.iter().map(|r| r.mb_per_sec()).collect();
        let tus_median = median(&tus)?;
        let plain_median = median(&plain)?;
        Some(GoodputFigures {
            tus_median,
            plain_median,
            ratio: tus_median / plain_median,
        })
    }

    pub fn verdict(&self) -> Verdict {
        Verdict::of(self.ratio >= TARGET_GOODPUT_RATIO)
    }
}

fn size(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

fn ms(d: Option<std::time::Duration>) -> String {
    d.map_or("n/a".into(), |d| {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    })
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        format!("{:.2}", a / b)
    } else {
        "n/a".into()
    }
}

fn write_issue3(out: &mut String, report: &Report) -> std::fmt::Result {
    let plan = &report.plan;
    writeln!(out, "## Issue 3: upload")?;
    writeln!(out)?;
    write_run_line(out, &report.machine)?;
    if plan.scale != Scale::Full {
        writeln!(
            out,
            "> **Scaled-down run** ({} goodput, {} recorders x {} rounds): a smoke test, not the \
             figures the target refers to. Run `make bench` for those.",
            size(plan.goodput_bytes),
            plan.ingest_plan.recorders,
            plan.ingest_plan.rounds
        )?;
        writeln!(out)?;
    }
    writeln!(out, "| Figure | Measured | Target | Result |")?;
    writeln!(out, "|---|---|---|---|")?;
    if let Some(g) = &report.goodput
        && let Some(f) = GoodputFigures::of(g)
    {
        writeln!(
            out,
            "| Goodput of a {} upload over loopback, tus / plain POST (median MB/s) | {:.2} | >= {TARGET_GOODPUT_RATIO} | {} |",
            size(g.size),
            f.ratio,
            f.verdict().as_str()
        )?;
    }
    if let Some(i) = &report.ingest {
        let (a, b) = (&i.ours, &i.theirs);
        writeln!(
            out,
            "| Ingest, {} recorders: segments per second, chronote-server / @tus/server | {:.1} / {:.1} = {} | none set | |",
            i.recorders,
            a.segments_per_sec(),
            b.segments_per_sec(),
            ratio(a.segments_per_sec(), b.segments_per_sec())
        )?;
        writeln!(
            out,
            "| Ingest: p99 last byte sent to final response, chronote-server / @tus/server | {} / {} | none set | |",
            ms(a.latency(0.99)),
            ms(b.latency(0.99))
        )?;
        writeln!(
            out,
            "| Ingest: peak server RSS, chronote-server / @tus/server | {} / {} = {} | none set | |",
            mb_u(a.peak_rss()),
            mb_u(b.peak_rss()),
            ratio(a.peak_rss() as f64, b.peak_rss() as f64)
        )?;
    }
    writeln!(out)?;
    if let Some(g) = &report.goodput {
        write_goodput(out, g)?;
    }
    if let Some(i) = &report.ingest {
        write_ingest(out, i)?;
    }
    write_issue3_method(out, report)?;
    Ok(())
}

fn write_goodput(out: &mut String, g: &GoodputResult) -> std::fmt::Result {
    writeln!(out, "### Goodput")?;
    writeln!(out)?;
    writeln!(
        out,
        "{} of pseudo-random bytes from a file to an in-process chronote-server on 127.0.0.1, \
         {} interleaved run(s) of each side (tus, plain, diagnostic, tus, plain, ...).",
        size(g.size),
        g.tus.len()
    )?;
    writeln!(out)?;
    let Some(f) = GoodputFigures::of(g) else {
        writeln!(out, "No complete run pair.")?;
        writeln!(out)?;
        return Ok(());
    };
    let list = |v: &[f64]| {
        v.iter()
            .map(|t| format!("{t:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let tus: Vec<f64> = g.tus.iter().map(|r| r.mb_per_sec()).collect();
    let plain: Vec<f64> = g.plain.iter().map(|r| r.mb_per_sec()).collect();
    let pairs: Vec<f64> = tus.iter().zip(&plain).map(|(a, b)| a / b).collect();
    let walls = |runs: &[crate::goodput::GoodputRun]| {
        runs.iter()
            .map(|r| format!("{:.2}", r.wall.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    writeln!(out, "| | Median | Every run | Wall, every run (s) |")?;
    writeln!(out, "|---|---|---|---|")?;
    writeln!(
        out,
        "| tus: `chronote_upload::upload_file`, {} PATCH bodies | {:.1} MB/s | {} | {} |",
        size(g.chunk_bytes),
        f.tus_median,
        list(&tus),
        walls(&g.tus)
    )?;
    writeln!(
        out,
        "| plain: one `POST /v1/bench/sink` | {:.1} MB/s | {} | {} |",
        f.plain_median,
        list(&plain),
        walls(&g.plain)
    )?;
    let large: Vec<f64> = g.tus_large.iter().map(|r| r.mb_per_sec()).collect();
    if let Some(large_median) = median(&large) {
        writeln!(
            out,
            "| diagnostic: the same tus path with {} PATCH bodies | {:.1} MB/s | {} | {} |",
            size(crate::goodput::LARGE_CHUNK),
            large_median,
            list(&large),
            walls(&g.tus_large)
        )?;
    }
    writeln!(
        out,
        "| **tus / plain** | **{:.2}** | {} (per pair) | |",
        f.ratio,
        pairs
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Target: tus / plain >= {TARGET_GOODPUT_RATIO} (median over median): **{}**.",
        f.verdict().as_str()
    )?;
    writeln!(out)?;
    let all_whole = g
        .tus
        .iter()
        .chain(&g.plain)
        .chain(&g.tus_large)
        .all(|r| r.confirmed == g.size);
    if all_whole {
        writeln!(
            out,
            "Output check: every tus upload's offset (HEAD after the upload) and every sink \
             answer was {} bytes.",
            g.size
        )?;
    } else {
        writeln!(
            out,
            "**Output check failed**: a run confirmed fewer than {} bytes.",
            g.size
        )?;
    }
    writeln!(out)?;
    Ok(())
}

fn write_ingest(out: &mut String, i: &IngestResult) -> std::fmt::Result {
    writeln!(out, "### Ingest")?;
    writeln!(out)?;
    writeln!(
        out,
        "{} simulated recorders, each sending one {} byte Ogg Opus segment ({:.2} s, 24 kbit/s \
         VBR) per round, {} rounds (each round stands for 30 s of recording), at most {} \
         requests in flight; both servers in child processes, rounds interleaved (chronote-server, \
         @tus/server, chronote-server, ...). @tus/server {} with @tus/file-store {} on Node {}.",
        i.recorders,
        i.segment_bytes,
        i.segment_48k as f64 / 48_000.0,
        i.rounds,
        i.concurrency,
        i.tus_server,
        i.file_store,
        i.node
    )?;
    writeln!(out)?;
    let (a, b) = (&i.ours, &i.theirs);
    let row = |out: &mut String, label: &str, f: &dyn Fn(&ServerLoad) -> String| {
        writeln!(out, "| {label} | {} | {} |", f(a), f(b))
    };
    writeln!(out, "| | chronote-server | @tus/server + file-store |")?;
    writeln!(out, "|---|---|---|")?;
    row(
        out,
        "Segments confirmed (201/204 with offset = length)",
        &|l| format!("{} of {}", l.segments, i.recorders * i.rounds),
    )?;
    row(out, "Failed requests", &|l| l.failures.to_string())?;
    row(out, "Segments the server holds afterwards", &|l| {
        l.stored.to_string()
    })?;
    row(out, "Wall time of the rounds", &|l| {
        s(l.wall().as_secs_f64())
    })?;
    row(out, "Every round (s)", &|l| {
        l.rounds
            .iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    })?;
    row(out, "**Segments per second**", &|l| {
        format!("**{:.1}**", l.segments_per_sec())
    })?;
    row(out, "Upload goodput (MB/s)", &|l| {
        let secs = l.wall().as_secs_f64();
        if secs > 0.0 {
            format!("{:.1}", (l.segments * i.segment_bytes) as f64 / secs / 1e6)
        } else {
            "n/a".into()
        }
    })?;
    row(out, "Last byte to final response: p50", &|l| {
        ms(l.latency(0.5))
    })?;
    row(out, "p90", &|l| ms(l.latency(0.9)))?;
    row(out, "**p99**", &|l| format!("**{}**", ms(l.latency(0.99))))?;
    row(out, "max", &|l| ms(l.latency(1.0)))?;
    row(out, "Server RSS after start (idle)", &|l| mb_u(l.rss_idle))?;
    row(out, "**Server peak RSS** (VmHWM)", &|l| {
        format!("**{}**", mb_u(l.peak_rss()))
    })?;
    row(out, "Server RSS at the end", &|l| mb_u(l.rss_end))?;
    writeln!(out)?;
    writeln!(
        out,
        "Ratios chronote-server / @tus/server: segments per second {}, p99 {}, peak RSS {}.",
        ratio(a.segments_per_sec(), b.segments_per_sec()),
        ratio(
            a.latency(0.99).map_or(f64::NAN, |d| d.as_secs_f64()),
            b.latency(0.99).map_or(f64::NAN, |d| d.as_secs_f64())
        ),
        ratio(a.peak_rss() as f64, b.peak_rss() as f64)
    )?;
    writeln!(out)?;
    for l in [a, b] {
        if !l.errors.is_empty() {
            writeln!(out, "Errors from {} (first {}):", l.name, l.errors.len())?;
            writeln!(out)?;
            for e in &l.errors {
                writeln!(out, "- `{}`", e.replace('`', "'"))?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}

fn write_issue3_method(out: &mut String, report: &Report) -> std::fmt::Result {
    writeln!(out, "### Method")?;
    writeln!(out)?;
    let mut notes: Vec<String> = Vec::new();
    if report.goodput.is_some() {
        notes.push(
            "Goodput, tus side: `chronote_upload::upload_file` (the tus transfer engine the \
             uploader uses, without the spool) with its default options: OPTIONS, then \
             creation-with-upload and PATCHes of its default chunk size, each read (and its \
             checksum computed) ahead on another thread while the previous one is sent, with a \
             crc32 `Upload-Checksum` on every request (the cheapest algorithm the server \
             offers; the server verifies it before keeping the bytes); the \
             server writes each body straight into the upload's blob, fdatasyncs it and commits the \
             offset to SQLite before answering, and fsyncs the file and its directory at \
             completion. Timed from the call to its return; a HEAD afterwards confirms the \
             offset and a DELETE (not timed) frees the disk."
                .into(),
        );
        notes.push(
            "Goodput, plain side: one `POST /v1/bench/sink` with the whole file as the body \
             (Content-Length set, read in 1 MiB blocks by a thread), to the same server and \
             runtime. The sink stores the body in the same blob store with an upload's \
             durability (fdatasync at the end, fsync of the file and its directory) and answers \
             the byte count, then deletes the blob. Timed from the request to the answer."
                .into(),
        );
        notes.push(
            "Goodput, diagnostic row: `upload_file` again with 64 MiB PATCH bodies instead of \
             its default, in the same interleaving; it is not what the target applies to, it \
             shows how much of the gap is per-PATCH cost (a sync and a SQLite commit per PATCH \
             on the server, a request per chunk on the client)."
                .into(),
        );
        notes.push(
            "Both goodput sides run in one process and runtime (client and server on 127.0.0.1, \
             2 cores between them), interleaved, with `sync` before each run so one run's \
             writeback does not land in the next. The file is pseudo-random (nothing \
             compresses) and read once beforehand so it is in the page cache. MB/s = 10^6 bytes \
             confirmed by the server per second of wall time."
                .into(),
        );
    }
    if report.ingest.is_some() {
        notes.push(
            "Ingest segment: 30 s of low-level noise and tones encoded by chronote-encode's \
             `SegmentWriter` with the recorder's defaults (16 kHz mono, 24 kbit/s VBR, 20 ms \
             frames) and sealed, so it is a real segment that chronote-server verifies (sha256 \
             and Ogg Opus length); noise keeps VBR near its target, near 90 kB. Every recorder \
             sends the same bytes into its own slot: recording `bench-NNNNN`, track `mic`, \
             sequence = round."
                .into(),
        );
        notes.push(
            "Ingest client: a plain tus 1.0 client in the benchmark (reqwest), the same requests \
             to both servers: `POST /files/` with `Tus-Resumable: 1.0.0`, `Upload-Length`, \
             `Upload-Metadata` (the Chronote segment keys: recording_id, track, sequence, \
             start_48k, length_48k, sha256, codec), `Content-Type: \
             application/offset+octet-stream`, a bearer token and the whole segment as the body \
             (creation-with-upload); a PATCH would follow if a server took less than the whole \
             body (neither did). Each request is its own task, at most the stated number in \
             flight over a shared connection pool. chronote-server additionally got one `POST \
             /v1/recordings` per recorder before the first round (not timed); @tus/server needs \
             nothing and ignores the metadata."
                .into(),
        );
        notes.push(
            "Latency: from the moment the client took the last 16 KiB piece of the body to the \
             response headers of the request that completed the upload (201 with Upload-Offset \
             = Upload-Length here). Nearest-rank percentiles over every confirmed segment of all \
             rounds. Segments per second: confirmed segments over the summed wall time of that \
             server's rounds."
                .into(),
        );
        notes.push(
            "Servers: chronote-server with its default configuration (no transcription engine \
             configured, so the transcription job each segment queues waits; no log subscriber) \
             in a child process of the benchmark (hidden `server-child` subcommand), over a \
             fresh data directory; it fsyncs every completed segment and commits it to SQLite \
             before answering. @tus/server with @tus/file-store under Node, started by the same \
             script as crates/upload/tests/interop.rs; its file store does not fsync. RSS is \
             VmRSS/VmHWM from /proc/<pid>/status of each server process: after start (and, for \
             chronote-server, after the recordings were created), sampled every 100 ms during \
             the rounds, and at the end. MB = 10^6 bytes."
                .into(),
        );
        notes.push(
            "Client and both servers share the machine's cores; the client's cost is the same \
             for both servers."
                .into(),
        );
    }
    for note in notes {
        writeln!(out, "- {note}")?;
    }
    writeln!(out)?;
    Ok(())
}

fn ms_f(secs: f64) -> String {
    if secs.is_finite() {
        format!("{:.2} ms", secs * 1000.0)
    } else {
        "n/a".into()
    }
}

fn us_f(secs: f64) -> String {
    if secs.is_finite() {
        format!("{:.1} µs", secs * 1e6)
    } else {
        "n/a".into()
    }
}

fn list1(v: &[f64]) -> String {
    v.iter()
        .map(|t| format!("{t:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn list3(v: &[f64]) -> String {
    v.iter()
        .map(|t| format!("{t:.3}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Median figures of one drain configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DrainFigures {
    pub workers: usize,
    pub jobs_per_sec: f64,
    /// Wall time per job: 1 / throughput.
    pub wall_per_job: f64,
    /// Worker time per job: workers x wall / jobs (claim to commit, waits included).
    pub worker_per_job: f64,
    pub engine_per_job: f64,
    pub cpu_per_job: f64,
    pub wall_median: f64,
    pub bind_median: f64,
}

impl DrainFigures {
    pub fn of(runs: &[DrainRun]) -> Option<DrainFigures> {
        let first = runs.first()?;
        let jobs = first.jobs.max(1) as f64;
        let rates: Vec<f64> = runs.iter().map(DrainRun::jobs_per_sec).collect();
        let jobs_per_sec = median(&rates)?;
        let wall_median = median(&secs(runs.iter().map(|r| r.wall)))?;
        let per = |f: &dyn Fn(&DrainRun) -> f64| {
            median(&runs.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
        };
        Some(DrainFigures {
            workers: first.workers,
            jobs_per_sec,
            wall_per_job: 1.0 / jobs_per_sec,
            worker_per_job: per(&|r| r.workers as f64 * r.wall.as_secs_f64() / jobs),
            engine_per_job: per(&|r| r.engine.as_secs_f64() / r.engine_calls.max(1) as f64),
            cpu_per_job: per(&|r| r.cpu.as_secs_f64() / jobs),
            wall_median,
            bind_median: per(&|r| r.bind.as_secs_f64()),
        })
    }
}

fn sqlite_median(result: &SchedulerResult) -> Option<f64> {
    median(
        &result
            .sqlite
            .iter()
            .map(|r| r.jobs_per_sec())
            .collect::<Vec<_>>(),
    )
}

/// RTF figures of one thread setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RtfFigures {
    pub rtf_median: f64,
    pub rtf_min: f64,
    pub total_median: f64,
    pub decode_median: f64,
    pub decode_rtf_median: f64,
}

impl RtfFigures {
    pub fn of(run: &ThreadsRun) -> Option<RtfFigures> {
        let rtf: Vec<f64> = run.segments.iter().map(|s| s.rtf()).collect();
        let total: Vec<f64> = run.segments.iter().map(|s| s.total_rtf()).collect();
        let decode = secs(run.segments.iter().map(|s| s.decode));
        let decode_rtf: Vec<f64> = run
            .segments
            .iter()
            .map(|s| s.decode.as_secs_f64() / s.audio.as_secs_f64())
            .collect();
        Some(RtfFigures {
            rtf_median: median(&rtf)?,
            rtf_min: min(&rtf)?,
            total_median: median(&total)?,
            decode_median: median(&decode)?,
            decode_rtf_median: median(&decode_rtf)?,
        })
    }
}

/// min, median, max of the per-meeting lags of a sample.
fn lag_stats(sample: &Sample) -> Option<(f64, f64, f64)> {
    let lags = sample.lags();
    let lo = min(&lags)?;
    let mid = median(&lags)?;
    let hi = lags.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((lo, mid, hi))
}

fn spread(lo: f64, hi: f64) -> String {
    if lo > 0.0 {
        format!("{:.2}", hi / lo)
    } else {
        "n/a (a meeting has no lag)".into()
    }
}

fn write_issue4(out: &mut String, report: &Report) -> std::fmt::Result {
    let plan = &report.plan;
    writeln!(out, "## Issue 4: server processing")?;
    writeln!(out)?;
    write_run_line(out, &report.machine)?;
    if plan.scale != Scale::Full {
        writeln!(
            out,
            "> **Scaled-down run** ({} jobs, {} Whisper segments, {} s of overload): a smoke \
             test, not the full figures. Run `make bench` for those.",
            plan.scheduler_plan.jobs(),
            plan.whisper_segments,
            plan.overload_plan.duration.as_secs()
        )?;
        writeln!(out)?;
    }
    writeln!(out, "| Figure | Measured | Baseline | Ratio |")?;
    writeln!(out, "|---|---|---|---|")?;
    if let Some(r) = &report.scheduler
        && let Some(f) = DrainFigures::of(&r.default_workers)
    {
        let one = DrainFigures::of(&r.one_worker);
        let bound = sqlite_median(r);
        writeln!(
            out,
            "| Scheduler throughput, instant engine, {} workers (median) | {:.0} jobs/s | 1 worker {}; bare SQLite commits {} | {} of 1 worker; {} of bare SQLite |",
            f.workers,
            f.jobs_per_sec,
            one.map_or("n/a".into(), |o| format!("{:.0} jobs/s", o.jobs_per_sec)),
            bound.map_or("n/a".into(), |b| format!("{b:.0} jobs/s")),
            ratio(f.jobs_per_sec, one.map_or(f64::NAN, |o| o.jobs_per_sec)),
            ratio(f.jobs_per_sec, bound.unwrap_or(f64::NAN))
        )?;
        writeln!(
            out,
            "| Scheduler overhead per job ({} workers): wall time per job; CPU per job | {}; {} | bare SQLite {} per job | |",
            f.workers,
            ms_f(f.wall_per_job),
            ms_f(f.cpu_per_job),
            bound.map_or("n/a".into(), |b| ms_f(1.0 / b)),
        )?;
    }
    if let Some(w) = &report.whisper
        && let Some(d) = RtfFigures::of(&w.default)
    {
        let single = RtfFigures::of(&w.single);
        writeln!(
            out,
            "| Whisper tiny.en real-time factor per {} s segment, {} threads (engine default, median) | {:.3} | 1 thread {} | {} threads / 1 thread {} |",
            crate::whisper::SEGMENT_SECS,
            w.default.threads,
            d.rtf_median,
            single.map_or("n/a".into(), |s| format!("{:.3}", s.rtf_median)),
            w.default.threads,
            ratio(d.rtf_median, single.map_or(f64::NAN, |s| s.rtf_median))
        )?;
    }
    if let Some(o) = &report.overload
        && let Some((lo, mid, hi)) = lag_stats(&o.end)
    {
        writeln!(
            out,
            "| Lag after {} s at {:.0}x capacity, {} meetings: min / median / max | {:.0} / {:.0} / {:.0} s of audio | equal shares | max / min {} |",
            o.duration.as_secs(),
            o.arrival_rate / o.capacity,
            o.meetings,
            lo,
            mid,
            hi,
            spread(lo, hi)
        )?;
    }
    writeln!(out)?;
    writeln!(out, "No targets are set for these figures.")?;
    writeln!(out)?;
    if let Some(r) = &report.scheduler {
        write_scheduler(out, r)?;
    }
    if let Some(w) = &report.whisper {
        write_whisper(out, w)?;
    }
    if let Some(o) = &report.overload {
        write_overload(out, o)?;
    }
    write_issue4_method(out, report)?;
    Ok(())
}

fn write_scheduler(out: &mut String, r: &SchedulerResult) -> std::fmt::Result {
    writeln!(out, "### Scheduler")?;
    writeln!(out)?;
    let jobs = (r.meetings * r.segments_per_meeting) as u64;
    writeln!(
        out,
        "{jobs} transcription jobs ({} meetings x {} segments of {:.0} s, {} bytes each) queued \
         beforehand and drained by an in-process chronote-server whose engine answers at once; \
         {} interleaved round(s) of (default workers, 1 worker, bare SQLite). Queueing them \
         (uploads, not timed in the figures) took {}.",
        r.meetings,
        r.segments_per_meeting,
        r.segment_48k as f64 / 48_000.0,
        r.segment_bytes,
        r.sqlite.len(),
        s(r.upload_wall.as_secs_f64())
    )?;
    writeln!(out)?;
    let (Some(a), Some(b)) = (
        DrainFigures::of(&r.default_workers),
        DrainFigures::of(&r.one_worker),
    ) else {
        writeln!(out, "No complete run.")?;
        writeln!(out)?;
        return Ok(());
    };
    let bound = sqlite_median(r).unwrap_or(f64::NAN);
    let rates =
        |runs: &[DrainRun]| list1(&runs.iter().map(DrainRun::jobs_per_sec).collect::<Vec<_>>());
    writeln!(
        out,
        "| | {} workers (default) | 1 worker | bare SQLite: claim + result commits |",
        a.workers
    )?;
    writeln!(out, "|---|---|---|---|")?;
    writeln!(
        out,
        "| **Jobs per second** (median) | **{:.0}** | {:.0} | {:.0} |",
        a.jobs_per_sec, b.jobs_per_sec, bound
    )?;
    writeln!(
        out,
        "| Every run (jobs/s) | {} | {} | {} |",
        rates(&r.default_workers),
        rates(&r.one_worker),
        list1(
            &r.sqlite
                .iter()
                .map(|x| x.jobs_per_sec())
                .collect::<Vec<_>>()
        )
    )?;
    writeln!(
        out,
        "| Wall time of the drain (median) | {} | {} | {} |",
        s(a.wall_median),
        s(b.wall_median),
        median(&secs(r.sqlite.iter().map(|x| x.wall))).map_or("n/a".into(), s)
    )?;
    writeln!(
        out,
        "| **Wall time per job** (1 / throughput) | **{}** | {} | {} |",
        ms_f(a.wall_per_job),
        ms_f(b.wall_per_job),
        ms_f(1.0 / bound)
    )?;
    writeln!(
        out,
        "| Worker time per job (workers x wall / jobs: claim to commit, waits included) | {} | {} | |",
        ms_f(a.worker_per_job),
        ms_f(b.worker_per_job)
    )?;
    writeln!(
        out,
        "| Engine time per job (inside `transcribe`) | {} | {} | |",
        us_f(a.engine_per_job),
        us_f(b.engine_per_job)
    )?;
    writeln!(
        out,
        "| **Overhead per job** (worker time - engine time) | **{}** | {} | |",
        ms_f(a.worker_per_job - a.engine_per_job),
        ms_f(b.worker_per_job - b.engine_per_job)
    )?;
    writeln!(
        out,
        "| CPU per job (whole process, all threads) | {} | {} | |",
        ms_f(a.cpu_per_job),
        ms_f(b.cpu_per_job)
    )?;
    writeln!(
        out,
        "| Server start (`bind`, inside the wall time) | {} | {} | |",
        ms_f(a.bind_median),
        ms_f(b.bind_median)
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Ratios: {} workers / 1 worker {}; {} workers / bare SQLite {}; 1 worker / bare SQLite {}.",
        a.workers,
        ratio(a.jobs_per_sec, b.jobs_per_sec),
        a.workers,
        ratio(a.jobs_per_sec, bound),
        ratio(b.jobs_per_sec, bound)
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Every run is listed: the wall time is dominated by the durable commits (an fsync of \
         the WAL per commit), whose latency on this shared disk varies from run to run; the \
         interleaving lets each round's three figures share the same conditions."
    )?;
    writeln!(out)?;
    let all = r.default_workers.iter().chain(&r.one_worker);
    let exact = all.clone().all(|x| x.engine_calls == x.jobs);
    writeln!(
        out,
        "Output check: every drain ended with the queue reporting all {jobs} transcription jobs \
         done; the engine was called {} (retries or lease take-overs would call it more often).",
        if exact {
            "exactly once per job in every run".to_string()
        } else {
            format!(
                "{} times in total over {} runs",
                all.map(|x| x.engine_calls).sum::<u64>(),
                r.default_workers.len() + r.one_worker.len()
            )
        }
    )?;
    writeln!(out)?;
    Ok(())
}

fn write_whisper(out: &mut String, w: &WhisperResult) -> std::fmt::Result {
    writeln!(out, "### Whisper tiny.en")?;
    writeln!(out)?;
    let d = &w.default;
    writeln!(
        out,
        "{} segments of {} s of espeak-ng speech (the issue 2 meeting script, 16 kHz), each \
         encoded by chronote-encode at 24 kbit/s (mean {} bytes); model `{}` ({}); each \
         thread setting in its own child process, the default first.",
        d.segments.len(),
        crate::whisper::SEGMENT_SECS,
        d.segments
            .iter()
            .map(|x| x.bytes)
            .sum::<u64>()
            .checked_div(d.segments.len() as u64)
            .unwrap_or(0),
        d.model.rsplit('/').next().unwrap_or(&d.model),
        mb_u(d.model_bytes)
    )?;
    writeln!(out)?;
    let (Some(a), Some(b)) = (RtfFigures::of(&w.default), RtfFigures::of(&w.single)) else {
        writeln!(out, "No segment ran.")?;
        writeln!(out)?;
        return Ok(());
    };
    let every = |run: &ThreadsRun| list3(&run.segments.iter().map(|x| x.rtf()).collect::<Vec<_>>());
    writeln!(
        out,
        "| | {} threads (engine default: logical CPUs) | 1 thread |",
        w.default.threads
    )?;
    writeln!(out, "|---|---|---|")?;
    writeln!(
        out,
        "| **RTF: whisper wall / audio** (median) | **{:.3}** | {:.3} |",
        a.rtf_median, b.rtf_median
    )?;
    writeln!(out, "| RTF min | {:.3} | {:.3} |", a.rtf_min, b.rtf_min)?;
    writeln!(
        out,
        "| RTF, every segment | {} | {} |",
        every(&w.default),
        every(&w.single)
    )?;
    writeln!(
        out,
        "| Speed (1 / median RTF) | {} realtime | {} realtime |",
        x(1.0, a.rtf_median),
        x(1.0, b.rtf_median)
    )?;
    writeln!(
        out,
        "| Decode Ogg Opus -> 16 kHz PCM per segment (median) | {} (RTF {:.4}) | {} (RTF {:.4}) |",
        ms_f(a.decode_median),
        a.decode_rtf_median,
        ms_f(b.decode_median),
        b.decode_rtf_median
    )?;
    writeln!(
        out,
        "| RTF decode + whisper (what a server job spends in the engine) | {:.3} | {:.3} |",
        a.total_median, b.total_median
    )?;
    writeln!(
        out,
        "| Model load (`WhisperTranscriber::new`) | {} | {} |",
        s(w.default.load.as_secs_f64()),
        s(w.single.load.as_secs_f64())
    )?;
    writeln!(
        out,
        "| RSS before load / after load | {} / {} | {} / {} |",
        mb_u(w.default.rss_before_load),
        mb_u(w.default.rss_after_load),
        mb_u(w.single.rss_before_load),
        mb_u(w.single.rss_after_load)
    )?;
    writeln!(
        out,
        "| **Peak RSS** (VmHWM of the child) | **{}** | {} |",
        mb_u(w.default.peak_rss),
        mb_u(w.single.peak_rss)
    )?;
    writeln!(out)?;
    let spread_of = |run: &ThreadsRun| {
        let v: Vec<f64> = run.segments.iter().map(|x| x.rtf()).collect();
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        min(&v).map_or(f64::NAN, |lo| hi / lo)
    };
    writeln!(
        out,
        "RTF max / min over the segments: {:.1} with {} threads, {:.1} with 1 thread. whisper.cpp's \
         threads meet at a barrier at every step, so when other work on the machine takes one \
         core, a multi-threaded run waits for its slowest thread; the single thread only loses \
         its own share.",
        spread_of(&w.default),
        w.default.threads,
        spread_of(&w.single)
    )?;
    writeln!(out)?;
    let words: Vec<String> = w
        .default
        .segments
        .iter()
        .map(|x| x.text.split_whitespace().count().to_string())
        .collect();
    let first = w.default.segments.first().map_or("", |x| x.text.as_str());
    let mut quote: String = first.chars().take(160).collect();
    if first.chars().count() > 160 {
        quote.push_str(" ...");
    }
    writeln!(
        out,
        "Output check: words per segment {}; segment 1 begins \"{}\".",
        words.join(", "),
        quote.replace('|', "/")
    )?;
    writeln!(out)?;
    Ok(())
}

fn write_overload(out: &mut String, o: &OverloadResult) -> std::fmt::Result {
    writeln!(out, "### Lag under overload")?;
    writeln!(out)?;
    let seg_secs = o.segment_48k as f64 / 48_000.0;
    writeln!(
        out,
        "{} meetings upload {:.0} s segments in turn at {:.1} segments/s in total ({:.2} s apart \
         per meeting) for {} s, into an in-process chronote-server whose engine takes L = {} ms \
         per segment with transcribe concurrency C = {} ({} workers, no rate limits): capacity \
         C / L = {:.1} segments/s, so arrivals are {:.1}x capacity. `GET /v1/queue` every {} ms. \
         Time is compressed: a meeting sends 30 s of audio every {:.2} s, so lag is in seconds \
         of audio (backlog x {:.0} s).",
        o.meetings,
        seg_secs,
        o.arrival_rate,
        o.meetings as f64 / o.arrival_rate,
        o.duration.as_secs(),
        o.latency.as_millis(),
        o.concurrency,
        o.workers,
        o.capacity,
        o.arrival_rate / o.capacity,
        o.samples
            .windows(2)
            .next()
            .map_or(500, |w| (w[1].at - w[0].at).as_millis()),
        o.meetings as f64 / o.arrival_rate,
        seg_secs
    )?;
    writeln!(out)?;
    let wall = o.arrival_wall.as_secs_f64();
    let end = &o.end;
    let expected_depth = o.uploaded as f64 - o.capacity * wall;
    writeln!(out, "| At the end of the arrivals | |")?;
    writeln!(out, "|---|---|")?;
    writeln!(
        out,
        "| Segments uploaded (confirmed) / received by the server | {} / {} |",
        o.uploaded,
        end.received()
    )?;
    writeln!(
        out,
        "| Arrivals, first scheduled to last confirmed | {} ({} upload(s) started over one interval late) |",
        s(wall),
        o.late_uploads
    )?;
    writeln!(
        out,
        "| Transcribed | {} ({:.1} segments/s, capacity {:.1}) |",
        end.transcribed(),
        end.transcribed() as f64 / wall,
        o.capacity
    )?;
    writeln!(
        out,
        "| **Queue depth** (transcribe jobs queued + running) | **{}** |",
        end.depth
    )?;
    writeln!(
        out,
        "| Expected depth: arrivals - capacity x time = {} - {:.1} x {:.2} | {:.0} |",
        o.uploaded, o.capacity, wall, expected_depth
    )?;
    if let Some((lo, mid, hi)) = lag_stats(end) {
        writeln!(
            out,
            "| **Per-meeting lag** min / median / max | **{lo:.0} / {mid:.0} / {hi:.0} s** |"
        )?;
        writeln!(out, "| Spread max / min | {} |", spread(lo, hi))?;
    }
    writeln!(
        out,
        "| Backlog spread (largest - smallest, segments) | {} |",
        end.backlog_spread()
    )?;
    let worst = o
        .samples
        .iter()
        .map(Sample::backlog_spread)
        .max()
        .unwrap_or(0);
    writeln!(
        out,
        "| Largest backlog spread in any sample | {worst} segment(s) |"
    )?;
    writeln!(
        out,
        "| After the arrivals: every segment transcribed | {} of {} in {} |",
        o.transcribed_after_drain,
        o.uploaded,
        s(o.drain.as_secs_f64())
    )?;
    writeln!(out)?;
    let served = end.transcribed() as f64 / wall;
    if served > 0.0 {
        writeln!(
            out,
            "The provider took {served:.1} segments/s against C / L = {:.1}: each of the C \
             slots was busy {:.0} ms per segment, L plus the claim and the segment read, which \
             a worker does while holding its slot. Depth above the C / L expectation is that \
             difference.",
            o.capacity,
            o.concurrency as f64 / served * 1000.0
        )?;
        writeln!(out)?;
    }
    writeln!(
        out,
        "| Meeting | Received | Transcribed | Backlog | Lag (s of audio) |"
    )?;
    writeln!(out, "|---|---|---|---|---|")?;
    for m in &end.meetings {
        writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} |",
            m.recording_id, m.received, m.transcribed, m.backlog, m.lag_seconds
        )?;
    }
    writeln!(out)?;
    writeln!(out, "Over time (every 2 s of the samples):")?;
    writeln!(out)?;
    writeln!(
        out,
        "| t | Received | Transcribed | Depth | Lag min / median / max (s) | Backlog spread |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|")?;
    let step = o.samples.windows(2).next().map_or(4, |w| {
        let gap = (w[1].at - w[0].at).as_millis().max(1);
        (2000 / gap).max(1) as usize
    });
    let rows = o
        .samples
        .iter()
        .enumerate()
        .filter(|(i, _)| (i + 1) % step == 0)
        .map(|(_, s)| (String::new(), s))
        .chain(std::iter::once(("end of arrivals, ".to_string(), end)));
    for (label, sample) in rows {
        let lags = lag_stats(sample).map_or("n/a".into(), |(lo, mid, hi)| {
            format!("{lo:.0} / {mid:.0} / {hi:.0}")
        });
        writeln!(
            out,
            "| {label}{:.1} s | {} | {} | {} | {} | {} |",
            sample.at.as_secs_f64(),
            sample.received(),
            sample.transcribed(),
            sample.depth,
            lags,
            sample.backlog_spread()
        )?;
    }
    writeln!(out)?;
    let problems = end.received() != o.uploaded || o.transcribed_after_drain != o.uploaded;
    if problems {
        writeln!(
            out,
            "**Output check failed**: {} uploaded, {} received, {} transcribed after the drain.",
            o.uploaded,
            end.received(),
            o.transcribed_after_drain
        )?;
    } else {
        writeln!(
            out,
            "Output check: every uploaded segment was received and, once the arrivals stopped, \
             transcribed; nothing was dropped."
        )?;
    }
    writeln!(out)?;
    Ok(())
}

fn write_issue4_method(out: &mut String, report: &Report) -> std::fmt::Result {
    writeln!(out, "### Method")?;
    writeln!(out)?;
    let mut notes: Vec<String> = Vec::new();
    if report.scheduler.is_some() {
        notes.push(
            "Scheduler, queue: the ingest benchmark's real 30 s segment (noise and tones, \
             24 kbit/s) uploaded over tus (creation-with-upload, 16 in flight) into every slot \
             of 10 recordings, round by round, to a chronote-server with no engine, so every \
             segment's transcription job waits as `queued`; the server is then stopped. Each \
             run starts a server with the engine on a copy of that data directory (database \
             copied, blobs hard-linked) in the same temporary directory, after `sync`."
                .into(),
        );
        notes.push(
            "Scheduler, timing: from just before `chronote_server::bind` (its workers start \
             inside it and claim at once) until `GET /v1/queue` reports every transcription job \
             `done` (read every 5 ms once the engine has seen every job; before that a 1 ms \
             check of the engine's call counter, so polling does not load the server). Engine: \
             `FixedLatency::new(Duration::ZERO)` wrapped to count calls and time spent inside \
             them. Limits: transcribe concurrency = workers, requests and audio seconds per \
             minute unlimited (the defaults, 500 requests per minute, would be the bottleneck); \
             no summarizer, so rolling-summary jobs are queued after each 10 min window but not \
             run. Every other setting is the default: lease 60 s (no renewal happens), \
             `synchronous=FULL`. CPU per job is getrusage(RUSAGE_SELF) over the drain (server, \
             runtime and the check loop) / jobs."
                .into(),
        );
        notes.push(
            "Per job, the server claims (one transaction: pick the meeting after the \
             round-robin cursor, its oldest job, set the lease), reads the segment's row, blob \
             and the previous segment's transcript, calls the engine, commits the transcript \
             and the job's state in one transaction, then recomputes the meeting's progress to \
             decide on a rolling summary. Worker time per job is workers x wall / jobs: how long \
             each job occupied a worker from claim to commit, including waits for the \
             database's single connection; overhead = that minus the engine's time."
                .into(),
        );
        notes.push(
            "Bare SQLite baseline: one rusqlite connection with the server's settings (WAL, \
             `synchronous=FULL`) in the same temporary directory, a jobs table with the same \
             number of queued rows, and per job the two commits a fenced job needs at the \
             least: a claim (UPDATE state and lease) and a result (INSERT the transcript row, \
             UPDATE the job done), one job after the other. An untimed pass over as many jobs \
             comes first, so the WAL file has grown to its working size as the server's has; \
             commits that grow the file cost several times more here. It has no HTTP, no blob read, no \
             scheduling query and no progress computation, so it is the bound the durable \
             commits alone set, not an alternative implementation."
                .into(),
        );
    }
    if report.whisper.is_some() {
        notes.push(
            "Whisper: consecutive 30 s pieces of the issue 2 espeak-ng speech (16 kHz mono, \
             generated with sox, cached) encoded by chronote-encode's `SegmentWriter` with the \
             recorder's defaults and sealed. A child process (hidden `whisper-child` \
             subcommand) per thread setting loads the model with \
             `WhisperTranscriber::new(WhisperConfig)` (one state, language `en`, the server's \
             greedy parameters), then per segment times \
             `chronote_transcribe::opus_pcm::decode_16k_mono` (decode) and \
             `WhisperTranscriber::transcribe_pcm` (whisper) separately, one segment after the \
             other. RTF = whisper wall time / audio duration (below 1 is faster than real \
             time). Peak RSS is VmHWM of the child at the end (model, state, buffers, the \
             encoded segments). MB = 10^6 bytes."
                .into(),
        );
    }
    if report.overload.is_some() {
        notes.push(
            "Overload: one chronote-server in this process with a `FixedLatency` engine (sleeps \
             L, then answers), transcribe concurrency C, 2 x C workers (a worker committing a \
             result does not hold a provider slot, so the provider stays busy), no rate limits, \
             no summarizer. Arrival k goes to meeting k mod 10 at t0 + k / rate, each upload \
             its own task (creation-with-upload of the ingest segment, sequence k / 10, back to \
             back on the meeting's timeline); an upload that could not start within one \
             arrival interval of its time is counted as late. Lag and backlog per meeting are \
             the server's own figures from `GET /v1/queue` (end of received audio minus end of \
             contiguous transcribed audio; segments waiting); depth is transcription jobs \
             queued plus running. After the arrivals the benchmark waits until every job is \
             done."
                .into(),
        );
    }
    notes.push(
        "The machine may be shared with other work; the load average at start is in the run \
         line above. Client, server and engine share the machine's cores."
            .into(),
    );
    for note in notes {
        writeln!(out, "- {note}")?;
    }
    writeln!(out)?;
    Ok(())
}

/// One level-2 section of a report: its heading line and everything up to the next one.
struct Section {
    heading: String,
    text: String,
}

/// The text before the first `## ` heading, and the sections; marker lines are dropped.
fn split_sections(doc: &str) -> (String, Vec<Section>) {
    let mut preamble = String::new();
    let mut sections: Vec<Section> = Vec::new();
    for line in doc.lines() {
        if line.trim() == MARKER {
            continue;
        }
        if line.starts_with("## ") {
            sections.push(Section {
                heading: line.trim_end().to_string(),
                text: String::new(),
            });
        }
        let target = match sections.last_mut() {
            Some(section) => &mut section.text,
            None => &mut preamble,
        };
        target.push_str(line);
        target.push('\n');
    }
    (preamble, sections)
}

/// The issue number of an `## Issue N: ...` heading.
fn issue_number(heading: &str) -> Option<u32> {
    heading
        .strip_prefix("## Issue ")?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// A `| Name | value |` row of the old machine table.
fn table_value<'a>(section: &'a str, name: &str) -> Option<&'a str> {
    section.lines().find_map(|line| {
        let rest = line
            .strip_prefix("| ")?
            .strip_prefix(name)?
            .strip_prefix(" | ")?;
        Some(rest.strip_suffix(" |").unwrap_or(rest).trim())
    })
}

/// `new` (a report of some benchmarks) over `old` (the file it replaces): the new title, machine
/// and how-to-run sections, each issue section from `new` if it has it and from `old` otherwise.
/// A kept section without a "Measured ..." line gets one from the old machine table, since the
/// machine table now describes the new run.
pub fn merge(old: &str, new: &str) -> String {
    let (_, old_sections) = split_sections(old);
    let (preamble, new_sections) = split_sections(new);
    let old_run = old_sections
        .iter()
        .find(|s| s.heading == "## Machine")
        .and_then(|m| {
            let date = table_value(&m.text, "Date")?;
            let commit = table_value(&m.text, "Commit")?;
            let build = table_value(&m.text, "Build").unwrap_or("unknown");
            let load = table_value(&m.text, "Load average at start").unwrap_or("unknown");
            Some(format!(
                "Measured {date}, commit {commit}, {build} build, load average at start {load}."
            ))
        });
    let mut general: Vec<&Section> = Vec::new();
    let mut issues: Vec<(u32, String)> = Vec::new();
    for section in &new_sections {
        match issue_number(&section.heading) {
            Some(n) => issues.push((n, section.text.clone())),
            None => general.push(section),
        }
    }
    for section in &old_sections {
        let Some(n) = issue_number(&section.heading) else {
            continue;
        };
        if issues.iter().any(|(m, _)| *m == n) {
            continue;
        }
        let mut text = section.text.clone();
        if !text.contains("\nMeasured ")
            && let Some(line) = &old_run
            && let Some((heading, rest)) = text.split_once('\n')
        {
            text = format!("{heading}\n\n{line}\n{rest}");
        }
        issues.push((n, text));
    }
    issues.sort_by_key(|(n, _)| *n);
    // Every piece ends with exactly one blank line.
    let block = |text: &str| format!("{}\n\n", text.trim_end());
    let mut out = block(&preamble);
    for section in general {
        out.push_str(&block(&section.text));
    }
    let mut marked = false;
    for (n, text) in &issues {
        if *n > 2 && !marked {
            out.push_str(&block(MARKER));
            marked = true;
        }
        out.push_str(&block(text));
    }
    if !marked {
        out.push_str(MARKER);
        out.push('\n');
    }
    end_with_one_newline(out)
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

    const OLD: &str = "# Benchmarks\n\nIntro.\n\n## Machine\n\n| | |\n|---|---|\n\
        | Date | 2026-01-01 00:00 UTC |\n| Commit | `abc1234` |\n| Build | release |\n\
        | Load average at start | 1.00 1.00 1.00 |\n\n## How to run\n\nold\n\n\
        ## Issue 2: recorder engine\n\n| Figure |\n\n### Method\n\n- two\n\n";

    #[test]
    fn merge_keeps_sections_that_did_not_run() {
        let marker = MARKER;
        let old = format!("{OLD}{marker}\n");
        let new = format!(
            "# Benchmarks\n\nIntro.\n\n## Machine\n\n| Date | new |\n\n## How to run\n\nnew\n\n\
             {marker}\n\n## Issue 3: upload\n\nMeasured now.\n\n| three |\n\n"
        );
        let merged = merge(&old, &new);
        assert_eq!(
            merged,
            format!(
                "# Benchmarks\n\nIntro.\n\n## Machine\n\n| Date | new |\n\n## How to run\n\nnew\n\n\
                 ## Issue 2: recorder engine\n\nMeasured 2026-01-01 00:00 UTC, commit `abc1234`, \
                 release build, load average at start 1.00 1.00 1.00.\n\n| Figure |\n\n### Method\n\n\
                 - two\n\n{marker}\n\n## Issue 3: upload\n\nMeasured now.\n\n| three |\n"
            )
        );
        // Merging again keeps the one "Measured" line and replaces issue 3 again.
        let again = merge(&merged, &new);
        assert_eq!(again, merged);
        // A new issue 2 section replaces the old one and keeps the old issue 3.
        let new2 = format!(
            "# B\n\n## Machine\n\nm\n\n## Issue 2: recorder engine\n\nMeasured later.\n\n{marker}\n"
        );
        let merged2 = merge(&merged, &new2);
        assert!(merged2.contains("Measured later."), "{merged2}");
        assert!(!merged2.contains("| Figure |"), "{merged2}");
        assert!(merged2.ends_with("## Issue 3: upload\n\nMeasured now.\n\n| three |\n"));
    }
}
