//! The real cpal path: espeak-ng speech served by ALSA's `file` plugin as the default capture
//! device is recorded by `chronote record` into segments of exactly the requested length, and
//! the audio that comes out is the speech that went in.

use std::path::Path;

use chronote_capture::alsa_feed;
use chronote_e2e::{chronote, lengthen, opusinfo_ok, speech_wav, spool_list, summary, u};

#[test]
fn records_speech_from_the_default_alsa_device() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = speech_wav(
        dir.path(),
        "clip",
        "Hello from the default microphone. The quick brown fox jumps over the lazy dog.",
        "en-us",
        48_000,
    );
    // The file plugin returns silence after its end, so serve more than is recorded.
    let long = dir.path().join("long.wav");
    lengthen(&clip, &long, 30);
    let samples: Vec<i16> = hound::WavReader::open(&long)
        .expect("speech wav")
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .expect("samples");
    // The feed is what cpal opens on this device (f32 stereo, 48 kHz); see capture's alsa_feed.
    let feed = alsa_feed::write_feed(dir.path(), &alsa_feed::s16_to_f32(&samples)).expect("feed");
    let spool = dir.path().join("spool");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");

    let out = chronote()
        .env("ALSA_CONFIG_PATH", &feed.alsa_config_path)
        // No PulseAudio/PipeWire may take over the ALSA default device.
        .env("HOME", &home)
        .env_remove("PULSE_SERVER")
        // The file device delivers much faster than real time: a ring that holds the whole
        // take keeps the test about capture, not about overflow.
        .args([
            "record",
            "--json",
            "--duration",
            "12",
            "--segment-secs",
            "5",
        ])
        .args(["--ring-ms", "60000"])
        .args(["--min-free-bytes", "0", "--spool"])
        .arg(&spool)
        .output()
        .expect("run chronote record");
    assert!(
        out.status.success(),
        "record from ALSA failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = summary(&out);
    // The duration limit is counted in samples: exactly 12 s of timeline.
    assert_eq!(u(&summary["duration_48k"]), 12 * 48_000);
    assert!(summary["gaps"].as_array().expect("gaps").is_empty());

    let recordings = spool_list(&spool);
    let segments = recordings[0]["segments"].as_array().expect("segments");
    assert!(segments.len() >= 3, "12 s in segments of at most 5 s");
    let mut start = 0;
    let mut loudest = 0.0f32;
    for seg in segments {
        assert_eq!(u(&seg["start_48k"]), start);
        start += u(&seg["length_48k"]);
        let path = Path::new(seg["path"].as_str().expect("path"));
        opusinfo_ok(path);
        let pcm = chronote_encode::decode(path).expect("decode");
        loudest = pcm.iter().fold(loudest, |m, s| m.max(s.abs()));
    }
    assert_eq!(start, 12 * 48_000);
    // espeak speech peaks well above -20 dBFS; silence (a device we did not read) would not.
    assert!(loudest > 0.1, "captured audio is silent (peak {loudest})");
}
