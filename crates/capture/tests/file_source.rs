//! WAV file source through the public API: every supported encoding, rate and channel count,
//! fast and realtime pacing, and every error the brief names.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chronote_capture::convert::{AudioSample, frame_to_mono};
use chronote_capture::{CaptureConfig, CaptureError, Chunk, GapReason, Source, open};

const WAIT: Duration = Duration::from_secs(5);

fn spec(rate: u32, channels: u16, bits: u16, float: bool) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    }
}

fn write_wav<S: hound::Sample + Copy>(path: &Path, spec: hound::WavSpec, samples: &[S]) {
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in samples {
        w.write_sample(*s).unwrap();
    }
    w.finalize().unwrap();
}

/// Reads everything until End; returns the audio and asserts there were no gaps.
fn read_all(source: Source, config: &CaptureConfig) -> (Vec<f32>, u32) {
    let mut cap = open(&source, config).unwrap();
    let rate = cap.sample_rate();
    let mut all = Vec::new();
    let mut buf = vec![0.0f32; 777];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline);
        match cap.read(&mut buf, WAIT).unwrap() {
            Chunk::Audio(n) => all.extend_from_slice(&buf[..n]),
            Chunk::End => break,
            Chunk::Idle => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(cap.read(&mut buf, WAIT).unwrap(), Chunk::End, "End repeats");
    assert_eq!(cap.stats().overflow_samples, 0);
    cap.stop();
    (all, rate)
}

fn expected<T: AudioSample>(interleaved: &[T], channels: usize) -> Vec<f32> {
    interleaved
        .chunks_exact(channels)
        .map(frame_to_mono)
        .collect()
}

fn file(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

fn fast(path: &Path) -> Source {
    Source::File {
        path: path.to_owned(),
        realtime: false,
    }
}

#[test]
fn i16_mono_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir, "a.wav");
    let samples: Vec<i16> = (0..16000)
        .map(|i| ((i * 37) % 65536 - 32768) as i16)
        .collect();
    write_wav(&path, spec(16000, 1, 16, false), &samples);
    let (got, rate) = read_all(fast(&path), &CaptureConfig::default());
    assert_eq!(rate, 16000);
    assert_eq!(got.len(), 16000);
    for (g, s) in got.iter().zip(&samples) {
        assert_eq!(*g, *s as f32 / 32768.0);
    }
}

#[test]
fn every_encoding_rate_and_channel_count() {
    let dir = tempfile::tempdir().unwrap();
    let frames = 2500usize;
    for (rate, channels) in [
        (8000u32, 1u16),
        (22050, 2),
        (44100, 3),
        (48000, 2),
        (96000, 1),
    ] {
        let ch = usize::from(channels);
        let n = frames * ch;
        // 8-bit: hound stores offset binary, reads back as i8.
        let i8s: Vec<i8> = (0..n).map(|i| ((i * 7) % 256) as u8 as i8).collect();
        let p = file(&dir, &format!("i8_{rate}_{channels}.wav"));
        write_wav(&p, spec(rate, channels, 8, false), &i8s);
        let (got, r) = read_all(fast(&p), &CaptureConfig::default());
        assert_eq!(r, rate);
        assert_eq!(got, expected(&i8s, ch), "8-bit {rate} Hz x{channels}");

        let i16s: Vec<i16> = (0..n).map(|i| ((i * 331) % 65536) as u16 as i16).collect();
        let p = file(&dir, &format!("i16_{rate}_{channels}.wav"));
        write_wav(&p, spec(rate, channels, 16, false), &i16s);
        assert_eq!(
            read_all(fast(&p), &CaptureConfig::default()).0,
            expected(&i16s, ch)
        );

        let i24s: Vec<i32> = (0..n)
            .map(|i| ((i as i64 * 104_729) % 16_777_216 - 8_388_608) as i32)
            .collect();
        let p = file(&dir, &format!("i24_{rate}_{channels}.wav"));
        write_wav(&p, spec(rate, channels, 24, false), &i24s);
        let as_i24: Vec<cpal::I24> = i24s.iter().map(|v| cpal::I24::new(*v).unwrap()).collect();
        assert_eq!(
            read_all(fast(&p), &CaptureConfig::default()).0,
            expected(&as_i24, ch)
        );

        let i32s: Vec<i32> = (0..n)
            .map(|i| (i as i32).wrapping_mul(1_234_567_891))
            .collect();
        let p = file(&dir, &format!("i32_{rate}_{channels}.wav"));
        write_wav(&p, spec(rate, channels, 32, false), &i32s);
        assert_eq!(
            read_all(fast(&p), &CaptureConfig::default()).0,
            expected(&i32s, ch)
        );

        let f32s: Vec<f32> = (0..n).map(|i| ((i % 401) as f32 - 200.0) / 190.0).collect();
        let p = file(&dir, &format!("f32_{rate}_{channels}.wav"));
        write_wav(&p, spec(rate, channels, 32, true), &f32s);
        let got = read_all(fast(&p), &CaptureConfig::default()).0;
        assert_eq!(got.len(), frames);
        assert_eq!(got, expected(&f32s, ch));
        // Out-of-range floats are clamped.
        assert!(got.iter().all(|v| (-1.0..=1.0).contains(v)));
    }
}

#[test]
fn known_values_through_the_file_path() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(&dir, "k16.wav");
    write_wav(&p, spec(8000, 1, 16, false), &[-32768i16, 16384, 0, 32767]);
    let (got, _) = read_all(fast(&p), &CaptureConfig::default());
    assert_eq!(got, vec![-1.0, 0.5, 0.0, 32767.0 / 32768.0]);

    let p = file(&dir, "k8.wav");
    // i8 -128 is stored as byte 0, i8 0 as byte 128.
    write_wav(&p, spec(8000, 1, 8, false), &[-128i8, 0, 64]);
    assert_eq!(
        read_all(fast(&p), &CaptureConfig::default()).0,
        vec![-1.0, 0.0, 0.5]
    );

    let p = file(&dir, "k24.wav");
    write_wav(
        &p,
        spec(8000, 2, 24, false),
        &[-8_388_608i32, -8_388_608, 4_194_304, 0],
    );
    assert_eq!(
        read_all(fast(&p), &CaptureConfig::default()).0,
        vec![-1.0, 0.25]
    );
}

#[test]
fn fast_mode_never_drops_with_a_tiny_ring() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(&dir, "long.wav");
    let samples: Vec<i16> = (0..96_000).map(|i| (i % 30_000) as i16).collect();
    write_wav(&p, spec(48000, 1, 16, false), &samples);
    let config = CaptureConfig {
        ring_ms: 1, // 48 samples
        ..CaptureConfig::default()
    };
    let mut cap = open(&fast(&p), &config).unwrap();
    let mut buf = vec![0.0f32; 1000];
    let mut got = Vec::new();
    loop {
        match cap.read(&mut buf, WAIT).unwrap() {
            Chunk::Audio(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.len() % 4800 < 48 {
                    std::thread::sleep(Duration::from_millis(1)); // a slow reader
                }
            }
            Chunk::End => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got.len(), 96_000);
    assert_eq!(got, expected(&samples, 1));
    assert_eq!(cap.stats().overflow_samples, 0);
}

#[test]
fn realtime_mode_is_paced_by_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(&dir, "rt.wav");
    let samples: Vec<i16> = (0..4800).map(|i| i as i16).collect(); // 300 ms at 16 kHz
    write_wav(&p, spec(16000, 1, 16, false), &samples);
    let started = Instant::now();
    let (got, _) = read_all(
        Source::File {
            path: p,
            realtime: true,
        },
        &CaptureConfig::default(),
    );
    let took = started.elapsed();
    assert_eq!(got, expected(&samples, 1));
    assert!(took >= Duration::from_millis(290), "took {took:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn realtime_mode_overflows_like_a_device_when_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(&dir, "rt_over.wav");
    let samples: Vec<i16> = (0..8000).map(|i| i as i16).collect(); // 500 ms at 16 kHz
    write_wav(&p, spec(16000, 1, 16, false), &samples);
    let config = CaptureConfig {
        ring_ms: 100, // 1600 samples
        ..CaptureConfig::default()
    };
    let mut cap = open(
        &Source::File {
            path: p,
            realtime: true,
        },
        &config,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(700)); // the whole file has "played" by now
    let mut buf = vec![0.0f32; 10_000];
    let mut pos = 0u64;
    let mut gaps = 0u64;
    loop {
        match cap.read(&mut buf, WAIT).unwrap() {
            Chunk::Audio(n) => {
                for (i, v) in buf[..n].iter().enumerate() {
                    assert_eq!(
                        *v,
                        (pos + i as u64) as f32 / 32768.0,
                        "sample at {}",
                        pos + i as u64
                    );
                }
                pos += n as u64;
            }
            Chunk::Gap {
                samples,
                rate: 16000,
                reason: GapReason::Overflow,
            } => {
                pos += samples;
                gaps += samples;
            }
            Chunk::End => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(pos, 8000);
    assert_eq!(gaps, 8000 - 1600);
    assert_eq!(cap.stats().overflow_samples, 6400);
}

fn open_err(source: Source) -> CaptureError {
    open(&source, &CaptureConfig::default()).unwrap_err()
}

#[test]
fn missing_file_is_a_clear_error() {
    let e = open_err(fast(Path::new("/nonexistent/dir/x.wav")));
    assert!(matches!(e, CaptureError::FileOpen { .. }));
    assert_eq!(
        e.to_string(),
        "cannot open audio file /nonexistent/dir/x.wav: No such file or directory (os error 2)"
    );
}

#[test]
fn empty_wav_contains_no_audio() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(&dir, "empty.wav");
    write_wav::<i16>(&p, spec(16000, 1, 16, false), &[]);
    let e = open_err(fast(&p));
    assert_eq!(e.to_string(), format!("{} contains no audio", p.display()));
}

#[test]
fn not_a_wav_names_the_file_and_hound_reason() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(&dir, "notes.wav");
    std::fs::write(&p, "this is text, not audio").unwrap();
    let e = open_err(fast(&p));
    assert!(matches!(e, CaptureError::NotWav { .. }));
    assert_eq!(
        e.to_string(),
        format!(
            "{} is not a readable WAV file: Ill-formed WAVE file: no RIFF tag found",
            p.display()
        )
    );
    let p = file(&dir, "zero.wav");
    std::fs::write(&p, "").unwrap();
    assert!(matches!(open_err(fast(&p)), CaptureError::NotWav { .. }));
}

/// A minimal PCM WAV header with arbitrary format fields.
fn raw_wav(format_tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    let block_align = channels * bits.div_ceil(8);
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&format_tag.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    v.extend_from_slice(&block_align.to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

#[test]
fn unsupported_encodings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, u16, u16, &str); 5] = [
        (
            "int48.wav",
            1,
            48,
            "unsupported WAV format: 48-bit integer samples (supported: 8/16/24/32-bit integer, 32-bit float)",
        ),
        (
            "int64.wav",
            1,
            64,
            "unsupported WAV format: 64-bit integer samples (supported: 8/16/24/32-bit integer, 32-bit float)",
        ),
        // hound refuses these headers itself; its reason is passed on.
        (
            "f64.wav",
            3,
            64,
            "is not a readable WAV file: Ill-formed WAVE file: bits per sample is not 32",
        ),
        (
            "int12.wav",
            1,
            12,
            "is not a readable WAV file: Ill-formed WAVE file: bits per sample is not a multiple of 8",
        ),
        (
            "alaw.wav",
            6,
            8,
            "is not a readable WAV file: The wave format of the file is not supported.",
        ),
    ];
    for (name, tag, bits, reason) in cases {
        let p = file(&dir, name);
        std::fs::write(&p, raw_wav(tag, 1, 8000, bits, &[0u8; 48])).unwrap();
        let e = open_err(fast(&p));
        let sep = if reason.starts_with("unsupported") {
            ": "
        } else {
            " "
        };
        assert_eq!(
            e.to_string(),
            format!("{}{sep}{reason}", p.display()),
            "{name}"
        );
    }
}

#[test]
fn truncated_file_delivers_what_was_read_then_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(&dir, "cut.wav");
    let samples: Vec<i16> = (0..1000).map(|i| i as i16).collect();
    write_wav(&p, spec(8000, 1, 16, false), &samples);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 101]).unwrap(); // 949 whole samples + 1 byte
    let mut cap = open(&fast(&p), &CaptureConfig::default()).unwrap();
    let mut buf = vec![0.0f32; 4096];
    let mut got = Vec::new();
    let err = loop {
        match cap.read(&mut buf, WAIT) {
            Ok(Chunk::Audio(n)) => got.extend_from_slice(&buf[..n]),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(got, expected(&samples[..949], 1));
    assert!(matches!(err, CaptureError::FileRead { frames: 949, .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "{} is truncated or unreadable after 949 frames: Failed to read enough bytes.",
            p.display()
        )
    );
    assert_eq!(cap.read(&mut buf, WAIT).unwrap(), Chunk::End);
}

#[test]
fn stop_mid_file_returns_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(&dir, "big.wav");
    write_wav(&p, spec(48000, 1, 16, false), &vec![1i16; 480_000]);
    for realtime in [false, true] {
        let cap = open(
            &Source::File {
                path: p.clone(),
                realtime,
            },
            &CaptureConfig::default(),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let started = Instant::now();
        cap.stop();
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
