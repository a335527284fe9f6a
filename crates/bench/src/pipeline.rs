//! Pipeline cost: the whole recorder (WAV file source -> resample -> Opus -> Ogg -> spool) against
//! bare libopus encoding the same speech, already at 16 kHz and in memory, in the same process.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chronote_recorder::{Recorder, RecorderConfig, RecorderEvent, TIMELINE_RATE, TrackSpec};
use chronote_spool::{Spool, SpoolConfig};
use opus::{Application, Bitrate, Channels, Encoder};
use serde::{Deserialize, Serialize};

use crate::inputs;
use crate::procfs;

/// One run of the real recorder over a WAV file in fast mode, into a fresh spool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecorderRun {
    pub wall: Duration,
    pub cpu: Duration,
    pub segments: u64,
    /// Timeline covered by sealed segments.
    pub duration_48k: u64,
    /// Sizes of the sealed segment files as the spool recorded them.
    pub bytes: u64,
    /// The same, measured on disk after the run.
    pub bytes_on_disk: u64,
    pub gaps: u64,
    pub warnings: Vec<String>,
}

/// One run of bare libopus over the whole input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawRun {
    pub wall: Duration,
    pub cpu: Duration,
    pub packets: u64,
    pub bytes: u64,
}

/// Every run of both sides, in the order they ran (recorder, raw, recorder, raw, ...).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineResult {
    /// Length of the input in 48 kHz samples.
    pub input_48k: u64,
    pub input_rate: u32,
    pub recorder: Vec<RecorderRun>,
    pub raw: Vec<RawRun>,
}

impl PipelineResult {
    pub fn audio_secs(&self) -> f64 {
        self.input_48k as f64 / TIMELINE_RATE as f64
    }
}

/// Runs the recorder and the raw baseline `runs` times, interleaved so that drift in machine
/// load affects both sides alike. `input` is fed to the recorder; `input_16k` is the same audio
/// resampled to the encoder rate beforehand, decoded into memory before any timing starts.
pub fn bench(input: &Path, input_16k: &Path, runs: usize) -> Result<PipelineResult> {
    let spec = inputs::wav_spec(input)?;
    let frames = inputs::wav_frames(input, spec.sample_rate)?;
    let input_48k = frames * TIMELINE_RATE / u64::from(spec.sample_rate);
    inputs::warm_page_cache(input)?;
    let (rate_16k, pcm) = inputs::read_pcm_f32(input_16k)?;
    let mut result = PipelineResult {
        input_48k,
        input_rate: spec.sample_rate,
        recorder: Vec::new(),
        raw: Vec::new(),
    };
    for i in 1..=runs {
        let rec = run_recorder(input)?;
        eprintln!(
            "pipeline run {i}/{runs}: recorder {:.2} s wall, {:.2} s CPU",
            rec.wall.as_secs_f64(),
            rec.cpu.as_secs_f64()
        );
        result.recorder.push(rec);
        let raw = run_raw(rate_16k, &pcm)?;
        eprintln!(
            "pipeline run {i}/{runs}: raw libopus {:.2} s wall, {:.2} s CPU",
            raw.wall.as_secs_f64(),
            raw.cpu.as_secs_f64()
        );
        result.raw.push(raw);
    }
    Ok(result)
}

/// The recorder exactly as `chronote record --input FILE` runs it, default settings, fast mode.
pub fn run_recorder(input: &Path) -> Result<RecorderRun> {
    let dir = tempfile::tempdir().context("cannot create a temporary spool directory")?;
    let root = dir.path().join("spool");
    let spool = Spool::open(&root, SpoolConfig::default())
        .with_context(|| format!("cannot open a spool in {}", root.display()))?;
    let spool = Arc::new(Mutex::new(spool));
    let tracks = vec![TrackSpec::file("me", input.to_path_buf(), false)];

    let cpu0 = procfs::cpu_time()?;
    let t0 = Instant::now();
    let recorder = Recorder::start(Arc::clone(&spool), RecorderConfig::default(), tracks)
        .with_context(|| format!("cannot start the recorder on {}", input.display()))?;
    let mut warnings = Vec::new();
    for event in recorder.events().iter() {
        match event {
            RecorderEvent::Warning { message, .. } => warnings.push(message),
            RecorderEvent::TrackEnded {
                error: Some(error), ..
            } => warnings.push(error),
            _ => {}
        }
    }
    let summary = recorder
        .wait()
        .with_context(|| format!("the recorder failed on {}", input.display()))?;
    let wall = t0.elapsed();
    let cpu = procfs::cpu_time()?.saturating_sub(cpu0);

    let rows = spool
        .lock()
        .map_err(|_| anyhow::anyhow!("the spool lock was poisoned by a recorder thread"))?
        .segments(&summary.recording_id)
        .context("cannot list the recorded segments")?;
    let mut bytes_on_disk = 0;
    for row in &rows {
        bytes_on_disk += std::fs::metadata(&row.path)
            .with_context(|| format!("sealed segment {} is missing", row.path.display()))?
            .len();
    }
    Ok(RecorderRun {
        wall,
        cpu,
        segments: summary.segments,
        duration_48k: summary.duration_48k,
        bytes: summary.bytes,
        bytes_on_disk,
        gaps: summary.gaps.len() as u64,
        warnings,
    })
}

/// Bare libopus with the recorder's encoder settings, every frame into one in-memory buffer.
pub fn run_raw(rate: u32, pcm: &[f32]) -> Result<RawRun> {
    let config = RecorderConfig::default().encoder;
    if rate != config.sample_rate {
        bail!(
            "the baseline input is {rate} Hz but the encoder runs at {} Hz",
            config.sample_rate
        );
    }
    let frame_len = (config.sample_rate * config.frame_ms / 1000) as usize;
    let bitrate = i32::try_from(config.bitrate_bps).context("bitrate out of range")?;
    let frames = pcm.len().div_ceil(frame_len);
    // About twice the nominal packet size: the buffer never reallocates inside the timing.
    let mut out = Vec::with_capacity(frames * (config.bitrate_bps as usize / 8 / 50 + 1) * 2);
    let mut lengths = Vec::with_capacity(frames);
    let mut packet = [0u8; 1500];
    let mut tail = vec![0.0f32; frame_len];

    let cpu0 = procfs::cpu_time()?;
    let t0 = Instant::now();
    let mut encoder = Encoder::new(rate, Channels::Mono, Application::Voip)
        .context("cannot create an Opus encoder")?;
    encoder
        .set_bitrate(Bitrate::Bits(bitrate))
        .context("cannot set the Opus bitrate")?;
    encoder.set_vbr(true).context("cannot enable Opus VBR")?;
    for chunk in pcm.chunks(frame_len) {
        let frame = if chunk.len() == frame_len {
            chunk
        } else {
            tail[..chunk.len()].copy_from_slice(chunk);
            &tail[..]
        };
        let n = encoder
            .encode_float(frame, &mut packet)
            .context("libopus failed to encode a frame")?;
        out.extend_from_slice(&packet[..n]);
        lengths.push(n as u16);
    }
    let wall = t0.elapsed();
    let cpu = procfs::cpu_time()?.saturating_sub(cpu0);
    std::hint::black_box((&out, &lengths));
    Ok(RawRun {
        wall,
        cpu,
        packets: lengths.len() as u64,
        bytes: out.len() as u64,
    })
}
