//! `chronote`: the headless command-line tool.
//!
//! Records into the spool (from a device or a WAV file), lists input devices, and inspects or
//! recovers the spool. Every command that changes the spool runs crash recovery first.

mod model_cmd;
mod output;
mod server_cmd;
mod upload_cmd;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chronote_recorder::{Recorder, RecorderConfig, RecorderEvent, TrackSpec};
use chronote_spool::{Spool, SpoolConfig};
use clap::{Args, Parser, Subcommand};

use crate::output::Output;

#[derive(Parser)]
#[command(
    name = "chronote",
    version,
    about = "Chronote Recorder: long-running meeting recorder"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Record into the spool until Ctrl-C, the end of --input, or --duration.
    Record(RecordArgs),
    /// List audio input devices.
    Devices {
        #[arg(long)]
        json: bool,
    },
    /// Inspect or repair the spool.
    #[command(subcommand)]
    Spool(SpoolCommand),
    /// Run the Chronote server, or manage its tokens.
    Server(server_cmd::ServerArgs),
    /// Upload every sealed segment in the spool to a server, then exit.
    Upload(upload_cmd::UploadArgs),
    /// Manage the embedded transcription engine's Whisper model.
    #[command(subcommand)]
    Model(model_cmd::ModelCommand),
}

#[derive(Args)]
pub(crate) struct SpoolArgs {
    /// Spool directory [default: $CHRONOTE_SPOOL, else the platform data dir]
    #[arg(long, value_name = "DIR")]
    pub(crate) spool: Option<PathBuf>,
    /// Upper bound of the spool's size in bytes, partial segments included.
    #[arg(long, value_name = "BYTES", default_value_t = SpoolConfig::default().max_bytes)]
    pub(crate) max_spool_bytes: u64,
    /// Capture pauses when the disk has less free space than this.
    #[arg(long, value_name = "BYTES", default_value_t = SpoolConfig::default().min_free_bytes)]
    pub(crate) min_free_bytes: u64,
}

#[derive(Args)]
struct RecordArgs {
    /// Input device name (see `chronote devices`) [default: the default input]
    #[arg(long, value_name = "NAME", conflicts_with = "input")]
    device: Option<String>,
    /// Record a WAV file instead of a device (as fast as possible unless --realtime).
    #[arg(long, value_name = "FILE.wav")]
    input: Option<PathBuf>,
    /// Pace --input in real time, as a live device would deliver it.
    #[arg(long, requires = "input")]
    realtime: bool,
    /// A second input recorded as the track "others" (e.g. a PulseAudio monitor source).
    #[arg(long, value_name = "NAME")]
    others_device: Option<String>,
    /// Stop after this many seconds of timeline.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Target segment length in seconds (5-600).
    #[arg(long, value_name = "N", default_value_t = 30)]
    segment_secs: u32,
    /// Opus bitrate in bit/s (VBR).
    #[arg(long, value_name = "BPS", default_value_t = 24_000)]
    bitrate: u32,
    /// Title stored with the recording.
    #[arg(long, default_value = "")]
    title: String,
    /// Capture ring size in ms: how long the encoder may fall behind the device before audio
    /// is dropped (and recorded as an overflow gap).
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    ring_ms: u32,
    /// Print events and the final summary as JSON lines on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    spool: SpoolArgs,
    #[command(flatten)]
    remote: upload_cmd::RemoteArgs,
}

#[derive(Subcommand)]
enum SpoolCommand {
    /// List recordings with their tracks, segments and gaps.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        spool: SpoolArgs,
    },
    /// Repair what a crash left behind: interrupted recordings and partial segments.
    Recover {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        spool: SpoolArgs,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Record(args) => record(args),
        Command::Devices { json } => devices(json),
        Command::Spool(SpoolCommand::List { json, spool }) => spool_list(&spool, json),
        Command::Spool(SpoolCommand::Recover { json, spool }) => spool_recover(&spool, json),
        Command::Server(args) => server_cmd::run(args),
        Command::Upload(args) => upload_cmd::run(args),
        Command::Model(command) => model_cmd::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("chronote: error: {}", error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by ": ", leaving out a cause whose text the message before
/// it already contains: many error types include their source in their own message, and
/// `{:#}` would then print it twice.
fn error_chain(err: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut last = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !last.is_empty() && last.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
        last = text;
    }
    out
}

pub(crate) fn open_spool(args: &SpoolArgs) -> Result<Spool> {
    let dir = match (&args.spool, std::env::var_os("CHRONOTE_SPOOL")) {
        (Some(dir), _) => dir.clone(),
        (None, Some(dir)) if !dir.is_empty() => PathBuf::from(dir),
        _ => Spool::default_dir().context("cannot find a data directory for the spool")?,
    };
    let config = SpoolConfig {
        max_bytes: args.max_spool_bytes,
        min_free_bytes: args.min_free_bytes,
    };
    Spool::open(&dir, config).with_context(|| format!("cannot open the spool at {}", dir.display()))
}

fn record(args: RecordArgs) -> Result<()> {
    let out = Output::new(args.json);
    let mut config = RecorderConfig {
        segment_secs: args.segment_secs,
        title: args.title.clone(),
        ..RecorderConfig::default()
    };
    config.encoder.bitrate_bps = args.bitrate;
    config.capture.ring_ms = args.ring_ms;
    if let Some(secs) = args.duration {
        if !secs.is_finite() || secs <= 0.0 {
            bail!("--duration must be a positive number of seconds, got {secs}");
        }
        config.duration = Some(Duration::from_secs_f64(secs));
    }
    config.validate()?;

    let mut tracks = vec![match &args.input {
        Some(path) => TrackSpec::file("me", path.clone(), args.realtime),
        None => TrackSpec::device("me", args.device.clone()),
    }];
    if let Some(name) = &args.others_device {
        tracks.push(TrackSpec::device("others", Some(name.clone())));
    }

    let mut spool = open_spool(&args.spool)?;
    let report = spool.recover().context("spool recovery failed")?;
    out.recovery(&report, true);
    let spool = Arc::new(Mutex::new(spool));

    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let interrupted = Arc::clone(&interrupted);
        ctrlc::set_handler(move || interrupted.store(true, Ordering::SeqCst))
            .context("cannot install the Ctrl-C handler")?;
    }

    let recorder = Recorder::start(Arc::clone(&spool), config, tracks)?;
    out.started(recorder.recording_id(), &spool);
    // With --server, segments go up as they are sealed, on the uploader's own thread.
    let mut upload =
        upload_cmd::LiveUpload::start(&args.remote, &spool, recorder.recording_id(), args.json)?;
    let mut stop_requested = false;
    loop {
        match recorder.events().recv_timeout(Duration::from_millis(100)) {
            Ok(event) => {
                out.event(&event);
                if let (Some(up), RecorderEvent::SegmentSealed { .. }) = (&upload, &event) {
                    up.handle().nudge();
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if let Some(up) = upload.as_mut() {
            up.pump();
        }
        if interrupted.load(Ordering::SeqCst) && !stop_requested {
            stop_requested = true;
            out.note("stopping: sealing the current segment");
            recorder.request_stop();
        }
    }
    let recording_id = recorder.recording_id().to_string();
    let summary = recorder.wait()?;
    let uploading = upload.is_some();
    let counts = match upload.take() {
        Some(up) => up.finish(&out, &spool)?,
        None => upload_cmd::counts(&spool, &recording_id, false)?,
    };
    if args.json {
        let mut value = serde_json::to_value(&summary)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("event".into(), "summary".into());
        }
        upload_cmd::extend_summary(&mut value, &counts);
        println!("{value}");
    } else {
        out.summary(&summary);
        if let Some(id) = &counts.server_recording_id {
            println!(
                "server recording {id}: {} segment(s) uploaded, {} pending",
                counts.uploaded_segments, counts.pending_segments
            );
        }
    }
    // The audio is safe in the spool either way, but a script that asked for an upload must
    // be able to tell that it did not finish.
    if uploading && counts.pending_segments > 0 {
        bail!(
            "the recording is saved in the spool, but {} segment(s) were not uploaded: \
             run `chronote upload` to finish",
            counts.pending_segments
        );
    }
    Ok(())
}

fn devices(json: bool) -> Result<()> {
    let devices = chronote_capture::list_input_devices()?;
    Output::new(json).devices(&devices);
    Ok(())
}

fn spool_list(args: &SpoolArgs, json: bool) -> Result<()> {
    let spool = open_spool(args)?;
    let recordings = spool.recordings()?;
    Output::new(json).recordings(&spool, &recordings)
}

fn spool_recover(args: &SpoolArgs, json: bool) -> Result<()> {
    let mut spool = open_spool(args)?;
    let report = spool.recover().context("spool recovery failed")?;
    Output::new(json).recovery(&report, false);
    if !report.errors.is_empty() {
        bail!(
            "{} item(s) could not be recovered (see above)",
            report.errors.len()
        );
    }
    Ok(())
}
