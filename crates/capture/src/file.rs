//! WAV file source: a thread that reads the file with hound and feeds the same conversion and
//! ring path as the audio callback.
//!
//! Fast mode pushes as fast as the reader consumes and waits when the ring is full (a file is not
//! real-time, so nothing is ever dropped). Realtime mode releases one ~10 ms block each time the
//! wall clock says it has been "recorded", and behaves like a device: if the reader falls behind,
//! the ring overflows and the drop is reported as a gap.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cpal::I24;

use crate::convert::AudioSample;
use crate::error::CaptureError;
use crate::ring::{self, Clock, RingWriter, Segment, Stats};

type Reader = hound::WavReader<BufReader<File>>;

/// A started file reader.
pub(crate) struct FileSource {
    pub segment: Segment,
    pub thread: JoinHandle<()>,
    pub cancel: Arc<AtomicBool>,
}

/// Sample encodings a WAV file can have that this crate reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    I8,
    I16,
    I24,
    I32,
    F32,
}

fn encoding(path: &Path, spec: &hound::WavSpec) -> Result<Encoding, CaptureError> {
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, 8) => Ok(Encoding::I8),
        (hound::SampleFormat::Int, 16) => Ok(Encoding::I16),
        (hound::SampleFormat::Int, 24) => Ok(Encoding::I24),
        (hound::SampleFormat::Int, 32) => Ok(Encoding::I32),
        (hound::SampleFormat::Float, 32) => Ok(Encoding::F32),
        (format, bits) => Err(CaptureError::UnsupportedWav {
            path: path.to_owned(),
            detail: format!(
                "{bits}-bit {} samples (supported: 8/16/24/32-bit integer, 32-bit float)",
                match format {
                    hound::SampleFormat::Int => "integer",
                    hound::SampleFormat::Float => "float",
                }
            ),
        }),
    }
}

/// Opens and validates `path`, then starts its reader thread.
pub(crate) fn open(
    path: &Path,
    realtime: bool,
    ring_ms: u32,
    stats: Arc<Stats>,
    clock: Clock,
) -> Result<FileSource, CaptureError> {
    let file = File::open(path).map_err(|source| CaptureError::FileOpen {
        path: path.to_owned(),
        source,
    })?;
    let reader =
        hound::WavReader::new(BufReader::new(file)).map_err(|source| CaptureError::NotWav {
            path: path.to_owned(),
            source,
        })?;
    let spec = reader.spec();
    if spec.channels == 0 || spec.sample_rate == 0 {
        return Err(CaptureError::UnsupportedWav {
            path: path.to_owned(),
            detail: format!("{} channels at {} Hz", spec.channels, spec.sample_rate),
        });
    }
    let encoding = encoding(path, &spec)?;
    if reader.len() < u32::from(spec.channels) {
        return Err(CaptureError::EmptyFile {
            path: path.to_owned(),
        });
    }
    tracing::info!(
        file = %path.display(),
        rate = spec.sample_rate,
        channels = spec.channels,
        bits = spec.bits_per_sample,
        frames = reader.duration(),
        realtime,
        "reading audio file"
    );
    let (writer, segment) = ring::segment(spec.sample_rate, ring_ms, stats, clock);
    let cancel = Arc::new(AtomicBool::new(false));
    let pump = Pump {
        path: path.to_owned(),
        channels: usize::from(spec.channels),
        rate: spec.sample_rate,
        realtime,
        cancel: cancel.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("chronote-wav".into())
        .spawn(move || match encoding {
            Encoding::I8 => pump.run(reader, writer, |s: i8| s),
            Encoding::I16 => pump.run(reader, writer, |s: i16| s),
            // hound yields 24-bit samples as i32 within the 24-bit range.
            Encoding::I24 => pump.run(reader, writer, |s: i32| {
                I24::new_unchecked(s.clamp(-(1 << 23), (1 << 23) - 1))
            }),
            Encoding::I32 => pump.run(reader, writer, |s: i32| s),
            Encoding::F32 => pump.run(reader, writer, |s: f32| s),
        })
        .map_err(|source| CaptureError::Thread {
            what: "WAV reader",
            source,
        })?;
    Ok(FileSource {
        segment,
        thread,
        cancel,
    })
}

struct Pump {
    path: PathBuf,
    channels: usize,
    rate: u32,
    realtime: bool,
    cancel: Arc<AtomicBool>,
}

impl Pump {
    fn run<H, T>(self, mut reader: Reader, mut writer: RingWriter, map: impl Fn(H) -> T)
    where
        H: hound::Sample,
        T: AudioSample,
    {
        let block_frames = (self.rate / 100).max(1) as usize;
        let block_len = block_frames * self.channels;
        let mut block: Vec<T> = Vec::with_capacity(block_len);
        let mut samples = reader.samples::<H>();
        let mut frames_done = 0u64;
        let started = Instant::now();
        loop {
            block.clear();
            let mut failure = None;
            while block.len() < block_len {
                match samples.next() {
                    Some(Ok(s)) => block.push(map(s)),
                    Some(Err(e)) => {
                        failure = Some(e);
                        break;
                    }
                    None => break,
                }
            }
            let frames = block.len() / self.channels;
            let whole = &block[..frames * self.channels];
            if frames > 0 {
                if self.realtime {
                    self.wait_until(started, frames_done + frames as u64);
                    writer.push_or_drop(whole, self.channels);
                } else if !writer.push_waiting(whole, self.channels, &self.cancel) {
                    return;
                }
                frames_done += frames as u64;
            }
            if let Some(source) = failure {
                tracing::warn!(file = %self.path.display(), frames = frames_done, error = %source, "audio file ends early");
                writer.shared().set_failure(CaptureError::FileRead {
                    path: self.path.clone(),
                    frames: frames_done,
                    source,
                });
                break;
            }
            if block.len() < block_len || self.cancel.load(Ordering::Acquire) {
                if !block.len().is_multiple_of(self.channels) {
                    tracing::debug!(file = %self.path.display(), "ignoring a trailing partial frame");
                }
                break;
            }
        }
        writer.close();
    }

    /// Sleeps until `frames` frames' worth of time has passed since `started`.
    fn wait_until(&self, started: Instant, frames: u64) {
        let due = Duration::from_nanos(
            u64::try_from(u128::from(frames) * 1_000_000_000 / u128::from(self.rate))
                .unwrap_or(u64::MAX),
        );
        loop {
            let elapsed = started.elapsed();
            if elapsed >= due || self.cancel.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep((due - elapsed).min(Duration::from_millis(20)));
        }
    }
}
