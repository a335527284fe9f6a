//! Real cpal capture on a machine without a sound card: espeak-ng speech, converted by sox to raw
//! s16le mono 48 kHz, served as the default ALSA capture device by the `file` plugin (see
//! `chronote_capture::alsa_feed`: the infile holds the same samples as f32 stereo, the format cpal
//! negotiates). The samples captured through `Source::Device { name: None }` must equal the
//! file's samples exactly.
//!
//! This is its own test binary because it sets `ALSA_CONFIG_PATH` before ALSA is first used, and
//! has a single test so that nothing else in the process reads the environment concurrently.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chronote_capture::{CaptureConfig, Chunk, Source, alsa_feed, list_input_devices, open};

const RATE: u32 = 48_000;

fn require_tool(tool: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is required for this test; install it with: apt-get install espeak-ng sox"
    );
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_speech(dir: &Path) -> (std::path::PathBuf, Vec<i16>) {
    require_tool("espeak-ng");
    require_tool("sox");
    let wav = dir.join("speech.wav");
    let raw = dir.join("speech.raw");
    run(Command::new("espeak-ng")
        .args(["-v", "en-us", "-w"])
        .arg(&wav)
        .arg("The quick brown fox jumps over the lazy dog. Chronote records every sample."));
    run(Command::new("sox")
        .arg(&wav)
        .args([
            "-r",
            "48000",
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            "-t",
            "raw",
        ])
        .arg(&raw));
    let bytes = std::fs::read(&raw).unwrap();
    let samples: Vec<i16> = bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    (raw, samples)
}

#[test]
fn default_device_captures_the_fed_file_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, expected) = make_speech(dir.path());
    assert!(
        expected.len() > RATE as usize,
        "speech too short: {}",
        expected.len()
    );
    assert!(
        expected.iter().any(|s| s.unsigned_abs() > 3000),
        "speech is silent"
    );

    let feed = alsa_feed::write_feed(dir.path(), &alsa_feed::s16_to_f32(&expected)).unwrap();
    // SAFETY: the only test of this binary, and no other thread exists yet that reads the
    // environment; ALSA reads the variable when cpal first initialises it, below.
    unsafe { std::env::set_var("ALSA_CONFIG_PATH", &feed.alsa_config_path) };

    // Listing must work (and must not panic) with the fed default device.
    let devices = list_input_devices().unwrap();
    eprintln!("input devices: {devices:?}");
    let default = devices
        .iter()
        .find(|d| d.is_default)
        .expect("a default input device");
    assert_eq!(default.id, "default");
    assert_eq!(
        (
            default.sample_rate,
            default.channels,
            default.sample_format.as_str()
        ),
        (alsa_feed::FEED_RATE, alsa_feed::FEED_CHANNELS, "f32")
    );

    let config = CaptureConfig {
        // The file plugin runs faster than real time: hold a minute so the reader never drops.
        ring_ms: 60_000,
        ..CaptureConfig::default()
    };
    let mut cap = open(&Source::Device { name: None }, &config).unwrap();
    assert_eq!(cap.sample_rate(), RATE);

    let mut got: Vec<f32> = Vec::with_capacity(expected.len());
    let mut buf = vec![0.0f32; 4800];
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < expected.len() {
        assert!(
            Instant::now() < deadline,
            "only {} samples captured",
            got.len()
        );
        let want = (expected.len() - got.len()).min(buf.len());
        match cap
            .read(&mut buf[..want], Duration::from_millis(500))
            .unwrap()
        {
            Chunk::Audio(n) => got.extend_from_slice(&buf[..n]),
            Chunk::Idle => {}
            other => panic!("unexpected {other:?} after {} samples", got.len()),
        }
    }
    let stats = cap.stats();
    cap.stop();
    assert_eq!(got.len(), expected.len());
    assert_eq!(stats.overflow_samples, 0);
    assert_eq!(stats.device_reopens, 0);

    if let Ok(dump) = std::env::var("CHRONOTE_DUMP") {
        let bytes: Vec<u8> = got.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(format!("{dump}.f32"), bytes).unwrap();
        std::fs::copy(&raw, format!("{dump}.raw")).unwrap();
    }
    let lsb = 1.0 / 32768.0;
    let mut worst = 0.0f32;
    let mut exact = 0usize;
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        let want = f32::from(*e) / 32768.0;
        let diff = (g - want).abs();
        assert!(diff <= lsb, "sample {i}: captured {g}, file {want}");
        worst = worst.max(diff);
        exact += usize::from(diff == 0.0);
    }
    eprintln!(
        "{} samples compared, {exact} bit-exact, worst difference {worst}",
        expected.len()
    );
    assert_eq!(exact, expected.len(), "capture should be bit-exact");
}
