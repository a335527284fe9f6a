//! The CLI's contract with its users: clear errors for bad input, nothing sealed ever lost, a
//! second process refused, the spool bound held, a full disk survived.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use chronote_e2e::{chronote, speech_wav, spool_list, summary, u};
use serde_json::Value;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn record(args: &[&str], input: &Path, spool: &Path) -> std::process::Output {
    chronote()
        .args(["record", "--json", "--min-free-bytes", "0"])
        .args(args)
        .arg("--input")
        .arg(input)
        .arg("--spool")
        .arg(spool)
        .output()
        .expect("run chronote record")
}

#[test]
fn bad_input_files_get_clear_errors_and_create_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = dir.path().join("spool");
    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, b"").expect("write");
    let garbage = dir.path().join("garbage.wav");
    std::fs::write(&garbage, b"this is not audio at all, just text pretending").expect("write");
    let missing = dir.path().join("missing.wav");
    let no_samples = dir.path().join("no-samples.wav");
    hound::WavWriter::create(
        &no_samples,
        hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        },
    )
    .expect("wav")
    .finalize()
    .expect("finalize");

    for (file, expect) in [
        (&empty, "empty.wav"),
        (&garbage, "garbage.wav"),
        (&missing, "missing.wav"),
        (&no_samples, "no audio"),
    ] {
        let out = record(&[], file, &spool);
        assert!(!out.status.success(), "{} should fail", file.display());
        let err = stderr(&out);
        assert!(
            err.contains(expect),
            "error for {} names it: {err}",
            file.display()
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let recordings = spool_list(&spool);
    assert!(
        recordings.is_empty(),
        "no recording was created: {recordings:?}"
    );
}

#[test]
fn bad_settings_are_refused_with_the_allowed_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = speech_wav(dir.path(), "clip", "Testing one two.", "en-us", 16_000);
    let spool = dir.path().join("spool");
    for (args, expect) in [
        (&["--segment-secs", "4"][..], "5..=600"),
        (&["--segment-secs", "601"][..], "5..=600"),
        (&["--bitrate", "100"][..], "6000..=510000"),
        (&["--duration", "0"][..], "--duration"),
    ] {
        let out = record(args, &input, &spool);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr(&out).contains(expect), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn truncated_wav_keeps_what_was_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = speech_wav(
        dir.path(),
        "clip",
        "This recording will be cut off in the middle of a sentence, but what we got is kept.",
        "en-us",
        16_000,
    );
    let bytes = std::fs::read(&clip).expect("read");
    let truncated = dir.path().join("truncated.wav");
    // Keep the header (which still claims the full length) and half of the samples.
    std::fs::write(&truncated, &bytes[..bytes.len() / 2 + 1]).expect("write");
    let spool = dir.path().join("spool");
    let out = record(&[], &truncated, &spool);
    let err = stderr(&out);
    assert!(!out.status.success(), "a truncated file is an error");
    assert!(err.contains("truncated.wav"), "{err}");
    let recordings = spool_list(&spool);
    assert_eq!(recordings.len(), 1);
    let segments = recordings[0]["segments"].as_array().expect("segments");
    let total: u64 = segments.iter().map(|s| u(&s["length_48k"])).sum();
    let half_48k = ((bytes.len() / 2 - 44) / 2) as u64 * 3;
    assert!(
        total.abs_diff(half_48k) <= 960,
        "kept {total} samples of the {half_48k} that were readable"
    );
    for seg in segments {
        assert_eq!(seg["state"], "sealed");
        chronote_encode::decode(Path::new(seg["path"].as_str().expect("path"))).expect("decodes");
    }
}

#[test]
fn unwritable_spool_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = speech_wav(dir.path(), "clip", "Testing.", "en-us", 16_000);
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").expect("write");
    let out = record(&[], &input, &file.join("spool"));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("plain-file"), "names the path: {err}");
}

#[test]
fn a_second_process_is_refused_while_the_first_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = speech_wav(
        dir.path(),
        "clip",
        "A long enough sentence to keep the recorder busy for a few seconds while we test.",
        "en-us",
        16_000,
    );
    let spool = dir.path().join("spool");
    let mut first = chronote()
        .args(["record", "--json", "--realtime", "--min-free-bytes", "0"])
        .arg("--input")
        .arg(&input)
        .arg("--spool")
        .arg(&spool)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(first.stdout.take().expect("stdout")).lines();
    loop {
        let line = lines.next().expect("started").expect("line");
        let v: Value = serde_json::from_str(&line).expect("json");
        if v["event"] == "started" {
            break;
        }
    }
    for args in [&["spool", "list"][..], &["spool", "recover"][..]] {
        let out = chronote()
            .args(args)
            .args(["--min-free-bytes", "0", "--spool"])
            .arg(&spool)
            .output()
            .expect("second process");
        assert!(!out.status.success(), "{args:?} must be refused");
        assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(first.id() as libc::pid_t, libc::SIGINT) };
    let status = first.wait().expect("wait");
    assert!(status.success(), "Ctrl-C stops cleanly");
    for _ in lines {}
    let recordings = spool_list(&spool);
    assert_eq!(recordings[0]["state"], "stopped", "Ctrl-C seals and stops");
}

#[test]
fn spool_bound_is_never_exceeded_and_unacknowledged_audio_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = speech_wav(
        dir.path(),
        "clip",
        "Nothing drains this spool, so the recorder must pause at the bound and say so.",
        "en-us",
        16_000,
    );
    let input = dir.path().join("input.wav");
    chronote_e2e::lengthen(&clip, &input, 120);
    let spool = dir.path().join("spool");
    let max = 160_000u64;
    let out = record(
        &["--segment-secs", "5", "--max-spool-bytes", &max.to_string()],
        &input,
        &spool,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = chronote_e2e::json_lines(&out);
    assert!(
        lines.iter().any(|v| v["event"] == "warning"
            && v["message"].as_str().unwrap_or("").contains("spool full")),
        "a warning event says the spool is full"
    );
    let summary = summary(&out);
    let gaps = summary["gaps"].as_array().expect("gaps");
    assert!(!gaps.is_empty());
    assert!(gaps.iter().all(|g| g["reason"] == "spool_full"));
    // Audio plus the spool_full gap covers the whole input: nothing vanished untracked.
    let audio = u(&summary["duration_48k"]);
    let gap: u64 = gaps.iter().map(|g| u(&g["length_48k"])).sum();
    assert_eq!(audio + gap, 120 * 48_000);
    let on_disk = dir_size(&spool);
    assert!(on_disk <= max, "spool holds {on_disk} bytes, bound {max}");
    let recordings = spool_list(&spool);
    for seg in recordings[0]["segments"].as_array().expect("segments") {
        assert_eq!(seg["state"], "sealed");
        assert!(Path::new(seg["path"].as_str().expect("path")).exists());
    }
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let meta = entry.metadata().expect("metadata");
        if meta.is_dir() {
            total += dir_size(&entry.path());
        } else if entry.file_name() != "spool.lock" {
            total += meta.len();
        }
    }
    total
}

#[test]
fn full_disk_mid_segment_keeps_every_sealed_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = speech_wav(
        dir.path(),
        "clip",
        "Filling a tiny disk until it is full.",
        "en-us",
        16_000,
    );
    let input = dir.path().join("input.wav");
    chronote_e2e::lengthen(&clip, &input, 240);
    let mount = dir.path().join("tiny");
    std::fs::create_dir_all(&mount).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=400k", "tmpfs"])
        .arg(&mount)
        .status()
        .expect("mount");
    assert!(
        mounted.success(),
        "this test mounts a tiny tmpfs and needs root"
    );
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(&mount);
    let spool = mount.join("spool");
    let out = record(&["--segment-secs", "5"], &input, &spool);
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    // Whether the recorder could go on (pausing) or had to stop, it says the disk is full...
    let said_full = err.contains("full") || String::from_utf8_lossy(&out.stdout).contains("full");
    assert!(said_full, "the user is told the disk is full: {err}");
    // ...and every segment the spool calls sealed is intact.
    let recordings = spool_list(&spool);
    let segments = recordings[0]["segments"].as_array().expect("segments");
    assert!(
        !segments.is_empty(),
        "audio before the disk filled was kept"
    );
    for seg in segments {
        if seg["state"] == "sealed" {
            let path = Path::new(seg["path"].as_str().expect("path"));
            let info = chronote_encode::inspect(path).expect("sealed segment inspects");
            assert_eq!(info.length_48k, u(&seg["length_48k"]));
        }
    }
}
