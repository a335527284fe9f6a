//! Helpers shared by the end-to-end tests: locating the `chronote` binary, making real speech
//! with espeak-ng and sox, running the CLI and reading its JSON lines.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// The `chronote` binary of the same build as the running test.
pub fn chronote_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/chronote
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let bin = dir.join("chronote");
    assert!(
        bin.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace`, which `make test` does)",
        bin.display()
    );
    bin
}

pub fn chronote() -> Command {
    let mut cmd = Command::new(chronote_bin());
    cmd.env("RUST_LOG", "warn").stdin(Stdio::null());
    cmd
}

/// Fails with an install hint when a tool the test needs is missing.
pub fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is missing: run `apt-get install {package}` (or `make deps`)"
    );
}

fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Speaks `text` with espeak-ng and converts it to a mono 16-bit WAV at `rate`.
pub fn speech_wav(dir: &Path, name: &str, text: &str, voice: &str, rate: u32) -> PathBuf {
    require_tool("espeak-ng", "espeak-ng");
    require_tool("sox", "sox");
    let raw = dir.join(format!("{name}.espeak.wav"));
    run_ok(
        Command::new("espeak-ng")
            .args(["-v", voice, "-w"])
            .arg(&raw)
            .arg(text),
        "espeak-ng",
    );
    let out = dir.join(format!("{name}.wav"));
    run_ok(
        Command::new("sox")
            .arg(&raw)
            .args([
                "-r",
                &rate.to_string(),
                "-c",
                "1",
                "-b",
                "16",
                "-e",
                "signed-integer",
            ])
            .arg(&out),
        "sox",
    );
    out
}

/// Repeats `input` and trims it to exactly `seconds` (sox pads nothing: the result is at least
/// as long as asked because the repeats cover it).
pub fn lengthen(input: &Path, output: &Path, seconds: u32) {
    let clip = hound::WavReader::open(input).expect("clip").duration() as f64
        / f64::from(
            hound::WavReader::open(input)
                .expect("clip")
                .spec()
                .sample_rate,
        );
    let repeats = (f64::from(seconds) / clip).ceil() as u32 + 1;
    run_ok(
        Command::new("sox").arg(input).arg(output).args([
            "repeat",
            &repeats.to_string(),
            "trim",
            "0",
            &seconds.to_string(),
        ]),
        "sox repeat",
    );
}

/// Parses stdout of a `--json` command into its JSON lines.
pub fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The `{"event":"summary"}` line of `chronote record --json`.
pub fn summary(out: &Output) -> Value {
    json_lines(out)
        .into_iter()
        .find(|v| v["event"] == "summary")
        .unwrap_or_else(|| {
            panic!(
                "no summary line; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// `chronote spool list --json` for `spool`, as the list of recordings.
pub fn spool_list(spool: &Path) -> Vec<Value> {
    let out = chronote()
        .args([
            "spool",
            "list",
            "--json",
            "--min-free-bytes",
            "0",
            "--spool",
        ])
        .arg(spool)
        .output()
        .expect("run chronote spool list");
    assert!(
        out.status.success(),
        "spool list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    lines[0]["recordings"]
        .as_array()
        .expect("recordings array")
        .clone()
}

pub fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not an unsigned integer: {v}"))
}

/// Runs opusinfo on a file and fails the test on any warning or error.
pub fn opusinfo_ok(path: &Path) {
    require_tool("opusinfo", "opus-tools");
    let out = Command::new("opusinfo")
        .arg(path)
        .output()
        .expect("opusinfo");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "opusinfo {} failed: {text}",
        path.display()
    );
    assert!(
        !text.contains("WARNING") && !text.contains("ERROR"),
        "opusinfo {} complained: {text}",
        path.display()
    );
}

/// Decodes with opusdec (an independent decoder) and returns the number of 48 kHz samples.
pub fn opusdec_samples(path: &Path, scratch: &Path) -> u64 {
    require_tool("opusdec", "opus-tools");
    let wav = scratch.join("opusdec.wav");
    let out = Command::new("opusdec")
        .args(["--quiet", "--rate", "48000"])
        .arg(path)
        .arg(&wav)
        .output()
        .expect("opusdec");
    assert!(
        out.status.success(),
        "opusdec {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let reader = hound::WavReader::open(&wav).expect("opusdec output is a WAV");
    u64::from(reader.duration())
}
