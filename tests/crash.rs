//! SIGKILL a real `chronote record` at random moments, then recover: at most about a second of
//! audio may be lost, every sealed segment stays intact and every file decodes.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chronote_e2e::{chronote, lengthen, opusinfo_ok, speech_wav, spool_list, u};
use rand::{Rng, SeedableRng};
use serde_json::Value;

const TRIALS: usize = 20;
/// The most audio a crash may cost, with room for the time between the recorder's `started` line
/// and the moment the file source began delivering.
const MAX_LOSS_MS: u64 = 1500;

#[test]
fn sigkill_at_random_moments_loses_at_most_about_a_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = speech_wav(
        dir.path(),
        "clip",
        "The quick brown fox jumps over the lazy dog. We will meet again on Friday to review the budget.",
        "en-us",
        48_000,
    );
    let input = dir.path().join("input.wav");
    lengthen(&clip, &input, 30);
    let spool = dir.path().join("spool");

    let seed: u64 = std::env::var("CHRONOTE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("crash trials seed {seed} (set CHRONOTE_CRASH_SEED to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    for trial in 0..TRIALS {
        let segment_secs = rng.random_range(5..=8);
        let kill_after = Duration::from_millis(rng.random_range(300..=9_000));
        let captured_ms = record_and_kill(&input, &spool, segment_secs, kill_after);
        let recovered = recover(&spool);
        check_trial(trial, &spool, &recovered, captured_ms, dir.path());
    }
}

/// Runs a real-time recording and SIGKILLs it `after` its `started` line; returns how much audio
/// it had been given by then, in ms.
fn record_and_kill(input: &Path, spool: &Path, segment_secs: u32, after: Duration) -> u64 {
    let mut child = chronote()
        .args(["record", "--realtime", "--json", "--min-free-bytes", "0"])
        .args(["--segment-secs", &segment_secs.to_string()])
        .arg("--input")
        .arg(input)
        .arg("--spool")
        .arg(spool)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chronote record");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .expect("chronote record ended before it started")
            .expect("read stdout");
        let value: Value = serde_json::from_str(&line).expect("JSON line");
        if value["event"] == "started" {
            break;
        }
    }
    let started = Instant::now();
    // Keep draining stdout so the recorder never blocks on a full pipe.
    let drain = std::thread::spawn(move || for _ in lines {});
    std::thread::sleep(after);
    let captured_ms = started.elapsed().as_millis() as u64;
    // SAFETY: plain kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill failed");
    let status = child.wait().expect("wait");
    assert!(!status.success(), "the recorder was supposed to die");
    let _ = drain.join();
    captured_ms
}

fn recover(spool: &Path) -> Value {
    let out = chronote()
        .args([
            "spool",
            "recover",
            "--json",
            "--min-free-bytes",
            "0",
            "--spool",
        ])
        .arg(spool)
        .output()
        .expect("run spool recover");
    assert!(
        out.status.success(),
        "spool recover failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().next().expect("one JSON line")).expect("JSON")
}

fn check_trial(trial: usize, spool: &Path, recovered: &Value, captured_ms: u64, scratch: &Path) {
    let interrupted = recovered["interrupted"]
        .as_array()
        .expect("interrupted list");
    assert_eq!(
        interrupted.len(),
        1,
        "trial {trial}: one recording was interrupted: {recovered}"
    );
    let id = interrupted[0].as_str().expect("id");
    let recordings = spool_list(spool);
    let rec = recordings
        .iter()
        .find(|r| r["id"] == id)
        .expect("interrupted recording is listed");
    assert_eq!(rec["state"], "interrupted", "trial {trial}");
    let segments = rec["segments"].as_array().expect("segments");
    let mut expected_start = 0;
    let mut total_48k = 0;
    for seg in segments {
        assert_eq!(seg["state"], "sealed", "trial {trial}: {seg}");
        assert_eq!(
            u(&seg["start_48k"]),
            expected_start,
            "trial {trial}: segments tile"
        );
        let length = u(&seg["length_48k"]);
        assert!(length > 0);
        expected_start += length;
        total_48k += length;
        let path = Path::new(seg["path"].as_str().expect("path"));
        let info = chronote_encode::inspect(path)
            .unwrap_or_else(|e| panic!("trial {trial}: {} does not inspect: {e}", path.display()));
        assert_eq!(
            info.length_48k, length,
            "trial {trial}: spool and file agree"
        );
        assert_eq!(info.bytes, u(&seg["bytes"]), "trial {trial}");
        let pcm = chronote_encode::decode(path).expect("decodes");
        assert_eq!(pcm.len() as u64, length, "trial {trial}: decoded length");
        opusinfo_ok(path);
        let _ = scratch;
    }
    let recovered_ms = total_48k / 48;
    eprintln!(
        "trial {trial}: captured {captured_ms} ms, recovered {recovered_ms} ms in {} segment(s)",
        segments.len()
    );
    assert!(
        recovered_ms + MAX_LOSS_MS >= captured_ms,
        "trial {trial}: captured {captured_ms} ms but recovered only {recovered_ms} ms"
    );
    assert!(
        recovered_ms <= captured_ms + 1000,
        "trial {trial}: recovered {recovered_ms} ms is more than was captured ({captured_ms} ms)"
    );
}
