//! Real speech inputs: a short multi-speaker clip synthesised with espeak-ng, looped with sox to
//! any length, and cached under a name derived from every parameter that shapes the audio.
//!
//! Generating an hour of 48 kHz audio takes sox tens of seconds, ten hours of 16 kHz a few
//! minutes; the cache makes every later run start measuring at once.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Bump when the generation recipe changes so old cached files are not reused.
const RECIPE_VERSION: u32 = 1;

/// Who says what: (espeak-ng voice, words per minute, pause after the line in ms, line).
/// Four accents with male and female variants make several distinct speakers, like a meeting.
const SCRIPT: &[(&str, u32, u32, &str)] = &[
    (
        "en-us+m3",
        165,
        450,
        "Good morning everyone, thanks for joining the weekly planning call.",
    ),
    (
        "en-gb+f2",
        155,
        700,
        "Before we start, can everybody hear me clearly on their side?",
    ),
    (
        "en-gb-scotland+m1",
        170,
        350,
        "Yes, loud and clear. I have a short update on the release schedule.",
    ),
    (
        "en-029+f4",
        160,
        900,
        "The build for the desktop recorder passed all of its checks last night.",
    ),
    (
        "en-us+f3",
        175,
        500,
        "We still need to decide how long each audio segment should be before upload.",
    ),
    (
        "en-gb+m7",
        150,
        650,
        "Thirty seconds feels right to me, because the transcription service handles that size well.",
    ),
    (
        "en-us+m3",
        165,
        300,
        "Agreed. What happens if the network drops in the middle of a long meeting?",
    ),
    (
        "en-gb-scotland+m1",
        170,
        800,
        "The segments stay in the local spool until the server acknowledges them.",
    ),
    (
        "en-029+f4",
        160,
        450,
        "And the spool has a size limit, so the disk never fills up completely.",
    ),
    (
        "en-gb+f2",
        155,
        1200,
        "Good. Let us move on to the second item, the summary format for the notes.",
    ),
    (
        "en-us+f3",
        175,
        400,
        "I would like action items listed first, with an owner and a due date for each one.",
    ),
    (
        "en-gb+m7",
        150,
        600,
        "That works. I will write a draft and share it with the team before Friday.",
    ),
];

/// Files of generated speech under one cache directory.
#[derive(Debug, Clone)]
pub struct InputCache {
    dir: PathBuf,
}

impl InputCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        InputCache { dir: dir.into() }
    }

    /// `$HOME/.cache/chronote/bench-inputs`.
    pub fn default_dir() -> Result<PathBuf> {
        let home = std::env::var_os("HOME").context(
            "HOME is not set: pass --inputs DIR to choose where generated audio is cached",
        )?;
        Ok(PathBuf::from(home).join(".cache/chronote/bench-inputs"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Mono 16-bit speech at `rate` Hz, exactly `seconds` long: the script clip repeated.
    pub fn speech(&self, rate: u32, seconds: u32) -> Result<PathBuf> {
        let path = self.dir.join(format!(
            "speech-{:016x}-{rate}hz-{seconds}s.wav",
            recipe_key()
        ));
        let frames = u64::from(rate) * u64::from(seconds);
        if is_valid(&path, rate, frames) {
            return Ok(path);
        }
        let clip = self.clip(rate)?;
        let clip_frames = wav_frames(&clip, rate)?;
        if clip_frames == 0 {
            bail!("generated speech clip {} is empty", clip.display());
        }
        // `repeat N` plays the clip N more times after the first.
        let repeats = frames.div_ceil(clip_frames).saturating_sub(1);
        eprintln!(
            "generating {seconds} s of {rate} Hz speech into {} (once; cached)",
            path.display()
        );
        let partial = partial_path(&path);
        sox(&[
            clip.as_os_str(),
            "-t".as_ref(),
            "wav".as_ref(),
            partial.as_os_str(),
            "repeat".as_ref(),
            repeats.to_string().as_ref(),
            "trim".as_ref(),
            "0".as_ref(),
            format!("{frames}s").as_ref(),
        ])?;
        finish(&partial, &path, rate, frames)?;
        Ok(path)
    }

    /// `source` resampled by sox to `rate` Hz, cached next to the other inputs.
    pub fn resampled(&self, source: &Path, rate: u32) -> Result<PathBuf> {
        let stem = source
            .file_stem()
            .and_then(|s| s.to_str())
            .with_context(|| format!("input {} has no usable file name", source.display()))?;
        let path = self.dir.join(format!("{stem}-sox-{rate}hz.wav"));
        let spec = wav_spec(source)?;
        let frames_in = wav_frames(source, spec.sample_rate)?;
        let frames = frames_in * u64::from(rate) / u64::from(spec.sample_rate);
        if is_valid(&path, rate, frames) {
            return Ok(path);
        }
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let partial = partial_path(&path);
        sox(&[
            source.as_os_str(),
            "-t".as_ref(),
            "wav".as_ref(),
            "-r".as_ref(),
            rate.to_string().as_ref(),
            partial.as_os_str(),
        ])?;
        finish(&partial, &path, rate, frames)?;
        Ok(path)
    }

    /// One pass of the script at `rate` Hz. Lower rates are resampled from the 48 kHz clip so
    /// every input carries the same speech.
    fn clip(&self, rate: u32) -> Result<PathBuf> {
        let path = self
            .dir
            .join(format!("clip-{:016x}-{rate}hz.wav", recipe_key()));
        if path.is_file() && wav_spec(&path).is_ok_and(|s| s.sample_rate == rate) {
            return Ok(path);
        }
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        if rate != 48_000 {
            let clip48 = self.clip(48_000)?;
            let partial = partial_path(&path);
            sox(&[
                clip48.as_os_str(),
                "-t".as_ref(),
                "wav".as_ref(),
                "-r".as_ref(),
                rate.to_string().as_ref(),
                partial.as_os_str(),
            ])?;
            fs::rename(&partial, &path)
                .with_context(|| format!("cannot move clip into {}", path.display()))?;
            return Ok(path);
        }
        let work = tempfile::tempdir_in(&self.dir)
            .with_context(|| format!("cannot create a work directory in {}", self.dir.display()))?;
        let mut lines = Vec::new();
        for (i, (voice, wpm, pause_ms, text)) in SCRIPT.iter().enumerate() {
            let raw = work.path().join(format!("line{i:02}-espeak.wav"));
            let status = Command::new("espeak-ng")
                .args(["-v", voice, "-s", &wpm.to_string(), "-w"])
                .arg(&raw)
                .arg(text)
                .output()
                .context("cannot run espeak-ng: install it (`apt-get install espeak-ng`, or `make deps`)")?;
            if !status.status.success() {
                bail!(
                    "espeak-ng failed for voice {voice}: {}",
                    String::from_utf8_lossy(&status.stderr).trim()
                );
            }
            let line = work.path().join(format!("line{i:02}.wav"));
            let pause = format!("{:.3}", f64::from(*pause_ms) / 1000.0);
            sox(&[
                raw.as_os_str(),
                "-r".as_ref(),
                "48000".as_ref(),
                "-c".as_ref(),
                "1".as_ref(),
                "-b".as_ref(),
                "16".as_ref(),
                "-e".as_ref(),
                "signed-integer".as_ref(),
                line.as_os_str(),
                "pad".as_ref(),
                "0".as_ref(),
                pause.as_ref(),
            ])?;
            lines.push(line);
        }
        let partial = partial_path(&path);
        let mut args: Vec<&std::ffi::OsStr> = lines.iter().map(|p| p.as_os_str()).collect();
        args.extend(["-t".as_ref(), "wav".as_ref(), partial.as_os_str()]);
        sox(&args)?;
        fs::rename(&partial, &path)
            .with_context(|| format!("cannot move clip into {}", path.display()))?;
        Ok(path)
    }
}

/// A stable hash of everything that shapes the generated audio (FNV-1a, 64 bit).
fn recipe_key() -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator keeps ("ab", "c") and ("a", "bc") apart.
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    };
    eat(&RECIPE_VERSION.to_le_bytes());
    for (voice, wpm, pause, text) in SCRIPT {
        eat(voice.as_bytes());
        eat(&wpm.to_le_bytes());
        eat(&pause.to_le_bytes());
        eat(text.as_bytes());
    }
    hash
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

fn sox(args: &[&std::ffi::OsStr]) -> Result<()> {
    let out = Command::new("sox")
        .args(args)
        .output()
        .context("cannot run sox: install it (`apt-get install sox`, or `make deps`)")?;
    if !out.status.success() {
        bail!(
            "sox {:?} failed: {}",
            args,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Checks what sox produced and moves it into place, so a half-written file is never cached.
fn finish(partial: &Path, path: &Path, rate: u32, frames: u64) -> Result<()> {
    let got = wav_frames(partial, rate)?;
    if got != frames {
        bail!(
            "sox wrote {got} samples into {} where {frames} were expected",
            partial.display()
        );
    }
    fs::rename(partial, path)
        .with_context(|| format!("cannot move generated audio into {}", path.display()))
}

pub(crate) fn wav_spec(path: &Path) -> Result<hound::WavSpec> {
    let reader = hound::WavReader::open(path)
        .with_context(|| format!("cannot read WAV {}", path.display()))?;
    Ok(reader.spec())
}

/// Samples per channel of a mono 16-bit WAV at `rate`; anything else is an error.
pub(crate) fn wav_frames(path: &Path, rate: u32) -> Result<u64> {
    let reader = hound::WavReader::open(path)
        .with_context(|| format!("cannot read WAV {}", path.display()))?;
    let spec = reader.spec();
    if spec.channels != 1 || spec.bits_per_sample != 16 || spec.sample_rate != rate {
        bail!(
            "{} is {} channel(s), {} bit, {} Hz; expected mono 16 bit {rate} Hz",
            path.display(),
            spec.channels,
            spec.bits_per_sample,
            spec.sample_rate
        );
    }
    Ok(u64::from(reader.duration()))
}

fn is_valid(path: &Path, rate: u32, frames: u64) -> bool {
    path.is_file() && wav_frames(path, rate).is_ok_and(|n| n == frames)
}

/// The whole file as f32 samples in [-1, 1), the way the recorder's file source scales them.
pub fn read_pcm_f32(path: &Path) -> Result<(u32, Vec<f32>)> {
    let mut reader = hound::WavReader::open(path)
        .with_context(|| format!("cannot read WAV {}", path.display()))?;
    let spec = reader.spec();
    if spec.channels != 1 || spec.bits_per_sample != 16 {
        bail!(
            "{} must be mono 16 bit (is {} channel(s), {} bit)",
            path.display(),
            spec.channels,
            spec.bits_per_sample
        );
    }
    let mut pcm = Vec::with_capacity(reader.duration() as usize);
    for sample in reader.samples::<i16>() {
        let s = sample.with_context(|| format!("cannot decode samples of {}", path.display()))?;
        pcm.push(f32::from(s) / 32768.0);
    }
    Ok((spec.sample_rate, pcm))
}

/// Reads a file once so the page cache holds it before a timed run reads it again.
pub fn warm_page_cache(path: &Path) -> Result<u64> {
    let mut file =
        fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    std::io::copy(&mut file, &mut std::io::sink())
        .with_context(|| format!("cannot read {}", path.display()))
}
