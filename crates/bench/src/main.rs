//! `chronote-bench`: runs the benchmarks and prints or writes the Markdown report.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chronote_bench::inputs::InputCache;
use chronote_bench::memory::{self, Marks};
use chronote_bench::{Plan, report};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "chronote-bench",
    about = "Chronote Recorder benchmarks: pipeline cost, memory over 10 h, bytes per track-hour, \
             upload goodput, ingest of 1,000 recorders, scheduler throughput, Whisper real-time \
             factor, lag under overload"
)]
struct Cli {
    /// Write the Markdown report to PATH instead of printing it. With --only, only the sections
    /// of the benchmarks that ran are replaced; the others are kept from PATH.
    #[arg(long, value_name = "PATH")]
    write: Option<PathBuf>,
    /// Run only this benchmark (repeatable).
    #[arg(long, value_enum)]
    only: Vec<Bench>,
    /// Scaled-down smoke run: 5 min pipeline, 30 min memory, 64 MiB goodput, 100 recorders,
    /// 200 jobs, 2 whisper segments, 5 s of overload.
    #[arg(long)]
    quick: bool,
    /// Interleaved recorder/raw pairs for the pipeline benchmark.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    runs: u32,
    /// Where generated speech is cached [default: $HOME/.cache/chronote/bench-inputs].
    #[arg(long, value_name = "DIR")]
    inputs: Option<PathBuf>,
    #[command(subcommand)]
    child: Option<Child>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Bench {
    Pipeline,
    Memory,
    Bytes,
    Goodput,
    Ingest,
    Scheduler,
    Whisper,
    Overload,
}

#[derive(Debug, Subcommand)]
enum Child {
    /// Internal: the memory measurement, run in a child process by the benchmark itself.
    #[command(name = "memory-child", hide = true)]
    Memory {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        mark_ms: u64,
        #[arg(long)]
        checkpoint_ms: u64,
    },
    /// Internal: the whisper measurement, run in a child process by the benchmark itself.
    #[command(name = "whisper-child", hide = true)]
    Whisper {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        segments: usize,
        #[arg(long)]
        threads: usize,
    },
    /// Internal: chronote-server for the ingest benchmark, until stdin closes.
    #[command(name = "server-child", hide = true)]
    Server {
        #[arg(long)]
        data: PathBuf,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(Child::Server { data }) = &cli.child {
        return chronote_bench::peers::server_child_main(data);
    }
    if let Some(Child::Whisper {
        input,
        segments,
        threads,
    }) = &cli.child
    {
        return chronote_bench::whisper::child_main(input, *segments, *threads);
    }
    if let Some(Child::Memory {
        input,
        mark_ms,
        checkpoint_ms,
    }) = &cli.child
    {
        return memory::child_main(
            input,
            Marks {
                mark_ms: *mark_ms,
                checkpoint_ms: *checkpoint_ms,
            },
        );
    }

    let mut plan = if cli.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    plan.runs = cli.runs as usize;
    if !cli.only.is_empty() {
        plan.pipeline = cli.only.contains(&Bench::Pipeline);
        plan.memory = cli.only.contains(&Bench::Memory);
        plan.bytes = cli.only.contains(&Bench::Bytes);
        plan.goodput = cli.only.contains(&Bench::Goodput);
        plan.ingest = cli.only.contains(&Bench::Ingest);
        plan.scheduler = cli.only.contains(&Bench::Scheduler);
        plan.whisper = cli.only.contains(&Bench::Whisper);
        plan.overload = cli.only.contains(&Bench::Overload);
    }
    let inputs = match cli.inputs {
        Some(dir) => dir,
        None => InputCache::default_dir()?,
    };
    let cache = InputCache::new(inputs);
    let repo = workspace_root();
    let report = chronote_bench::run(&plan, &cache, &repo)?;
    let mut text = report::render(&report);
    match cli.write {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
                && !dir.is_dir()
            {
                bail!(
                    "cannot write {}: {} is not a directory",
                    path.display(),
                    dir.display()
                );
            }
            if !cli.only.is_empty() && path.exists() {
                let old = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {} to update it", path.display()))?;
                text = report::merge(&old, &text);
            }
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write the report to {}", path.display()))?;
            eprintln!("report written to {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// The workspace this crate was built in, for `git rev-parse`; the current directory if that
/// tree is gone (a copied binary).
fn workspace_root() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if built.is_dir() {
        built
    } else {
        PathBuf::from(".")
    }
}
