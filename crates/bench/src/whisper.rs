//! Whisper tiny.en on this machine: real-time factor per 30 s segment of espeak-ng speech
//! encoded by chronote-encode, with decoding (Ogg Opus -> 16 kHz PCM) timed apart from
//! inference. Each thread setting runs in a child process of its own (a hidden
//! `whisper-child` subcommand), so its peak RSS is the engine's and nothing else's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chronote_encode::{EncoderConfig, SegmentTags, SegmentWriter};
use chronote_transcribe::whisper::{WhisperConfig, WhisperTranscriber};
use serde::{Deserialize, Serialize};

use crate::inputs::{self, InputCache};
use crate::procfs;

/// Audio per segment, the recorder's default.
pub const SEGMENT_SECS: u32 = 30;
/// The hidden subcommand the child runs.
pub const CHILD_COMMAND: &str = "whisper-child";
const RATE: u32 = 16_000;

/// One segment through the engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentRun {
    pub audio: Duration,
    pub bytes: u64,
    /// `opus_pcm::decode_16k_mono`: Ogg Opus to 16 kHz mono f32.
    pub decode: Duration,
    /// `WhisperTranscriber::transcribe_pcm` (whisper.cpp `full`, greedy, the server's
    /// parameters).
    pub whisper: Duration,
    pub text: String,
}

impl SegmentRun {
    pub fn rtf(&self) -> f64 {
        self.whisper.as_secs_f64() / self.audio.as_secs_f64()
    }

    pub fn total_rtf(&self) -> f64 {
        (self.decode + self.whisper).as_secs_f64() / self.audio.as_secs_f64()
    }
}

/// One child process: one thread setting over every segment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreadsRun {
    pub threads: usize,
    pub model: String,
    pub model_bytes: u64,
    pub load: Duration,
    pub rss_before_load: u64,
    pub rss_after_load: u64,
    /// VmHWM at the end: the child's peak, model and state and buffers included.
    pub peak_rss: u64,
    pub segments: Vec<SegmentRun>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WhisperResult {
    /// The engine's default: every logical CPU.
    pub default: ThreadsRun,
    /// One thread, for scale.
    pub single: ThreadsRun,
}

/// The installed model, or an error saying how to install it.
pub fn model_path() -> Result<PathBuf> {
    let path = chronote_transcribe::model::default_model_path()
        .context("cannot find the Whisper model directory")?;
    if !path.is_file() {
        bail!(
            "the Whisper model is not installed at {}: run `chronote model install` (or `make \
             model`), or set CHRONOTE_WHISPER_MODEL",
            path.display()
        );
    }
    Ok(path)
}

/// Speech for `segments` segments, then one child per thread setting.
pub fn bench(cache: &InputCache, segments: usize) -> Result<WhisperResult> {
    model_path()?;
    let secs = SEGMENT_SECS * u32::try_from(segments.max(1)).unwrap_or(1);
    let input = cache.speech(RATE, secs)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let default = run_child(&input, segments, cores)?;
    let single = run_child(&input, segments, 1)?;
    Ok(WhisperResult { default, single })
}

fn run_child(input: &Path, segments: usize, threads: usize) -> Result<ThreadsRun> {
    eprintln!(
        "whisper: {segments} segment(s) of {SEGMENT_SECS} s, {threads} thread(s), in a child process"
    );
    let exe = std::env::current_exe().context("cannot find this benchmark's executable")?;
    let output = Command::new(&exe)
        .arg(CHILD_COMMAND)
        .arg("--input")
        .arg(input)
        .arg("--segments")
        .arg(segments.to_string())
        .arg("--threads")
        .arg(threads.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start {} {CHILD_COMMAND}", exe.display()))?;
    if !output.status.success() {
        bail!("the whisper child process failed ({})", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .context("the whisper child process printed no result")?;
    serde_json::from_str(line).with_context(|| format!("cannot parse the whisper result {line:?}"))
}

/// Entry point of the child: measure, print the result as one JSON line.
pub fn child_main(input: &Path, segments: usize, threads: usize) -> Result<()> {
    let result = measure(input, segments, threads)?;
    let line = serde_json::to_string(&result).context("cannot serialise the whisper result")?;
    println!("{line}");
    Ok(())
}

/// Encodes `segments` consecutive 30 s pieces of `input`, loads the model and runs each.
pub fn measure(input: &Path, segments: usize, threads: usize) -> Result<ThreadsRun> {
    let model = model_path()?;
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let (rate, pcm) = inputs::read_pcm_f32(input)?;
    if rate != RATE {
        bail!("{} is {rate} Hz, expected {RATE}", input.display());
    }
    let per = (RATE * SEGMENT_SECS) as usize;
    let mut files = Vec::new();
    for (i, piece) in pcm.chunks_exact(per).take(segments).enumerate() {
        files.push(encode(piece, i as u64, dir.path())?);
    }
    if files.len() < segments {
        bail!(
            "{} holds {} whole segments, {segments} wanted",
            input.display(),
            files.len()
        );
    }
    let rss_before_load = procfs::memory()?.rss;
    let mut config = WhisperConfig::new(model.clone());
    config.threads = threads;
    let started = Instant::now();
    let engine = WhisperTranscriber::new(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let load = started.elapsed();
    let rss_after_load = procfs::memory()?.rss;
    let mut runs = Vec::new();
    for (i, bytes) in files.iter().enumerate() {
        let started = Instant::now();
        let pcm = chronote_transcribe::opus_pcm::decode_16k_mono(bytes)
            .map_err(|e| anyhow::anyhow!("segment {i} does not decode: {e}"))?;
        let decode = started.elapsed();
        let started = Instant::now();
        let transcript = engine
            .transcribe_pcm(&pcm, Some("en"), None)
            .map_err(|e| anyhow::anyhow!("whisper failed on segment {i}: {e}"))?;
        let whisper = started.elapsed();
        let run = SegmentRun {
            audio: Duration::from_secs_f64(pcm.len() as f64 / f64::from(RATE)),
            bytes: bytes.len() as u64,
            decode,
            whisper,
            text: transcript.text(),
        };
        eprintln!(
            "whisper segment {}/{}: decode {:.1} ms, whisper {:.2} s, RTF {:.3}",
            i + 1,
            files.len(),
            decode.as_secs_f64() * 1000.0,
            whisper.as_secs_f64(),
            run.rtf()
        );
        runs.push(run);
    }
    let peak_rss = procfs::memory()?.hwm;
    Ok(ThreadsRun {
        threads,
        model: model.display().to_string(),
        model_bytes: std::fs::metadata(&model).map_or(0, |m| m.len()),
        load,
        rss_before_load,
        rss_after_load,
        peak_rss,
        segments: runs,
    })
}

/// A sealed segment of exactly these 16 kHz samples, as the recorder writes it.
fn encode(pcm: &[f32], sequence: u64, dir: &Path) -> Result<Vec<u8>> {
    let config = EncoderConfig::default();
    let tags = SegmentTags {
        recording_id: "bench-whisper".into(),
        track: "mic".into(),
        sequence,
        start_48k: sequence * u64::from(SEGMENT_SECS) * 48_000,
        start_time: "2026-01-01T00:00:00Z".into(),
    };
    let part = dir.join(format!("seg-{sequence}.opus.part"));
    let sealed = dir.join(format!("seg-{sequence}.opus"));
    let mut writer =
        SegmentWriter::create(&part, &config, &tags).context("cannot create a segment")?;
    let frame = writer.frame_len();
    for chunk in pcm.chunks(frame) {
        let mut f = chunk.to_vec();
        f.resize(frame, 0.0);
        writer.push_frame(&f).context("cannot encode a segment")?;
    }
    writer
        .seal(&sealed, pcm.len() as u64)
        .context("cannot seal a segment")?;
    std::fs::read(&sealed).with_context(|| format!("cannot read {}", sealed.display()))
}
