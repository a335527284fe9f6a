//! Uploading with the real binaries: `chronote server` as a process, `chronote record
//! --server` uploading while it records, and `chronote upload` killed between the server's
//! final answer and the spool's acknowledgement, then restarted.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chronote_e2e::{chronote, json_lines, speech_wav, summary, u};
use chronote_upload::{RecordingStatus, RecordingsApi};
use serde_json::Value;

/// `chronote server` on a free port, killed when dropped.
struct ServerProcess {
    child: Child,
    url: String,
    token: String,
    data: PathBuf,
}

impl ServerProcess {
    fn start(data: &Path) -> ServerProcess {
        let out = chronote()
            .args(["server", "token", "create", "--name", "alice", "--data"])
            .arg(data)
            .output()
            .expect("run chronote server token create");
        assert!(
            out.status.success(),
            "token create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(token.starts_with("cht_"), "token {token:?}");
        let mut child = chronote()
            .args(["server", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            // These tests are about upload; transcription would only compete for the CPU.
            .args(["--transcriber", "none"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start chronote server");
        let stdout = child.stdout.take().expect("server stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the server's first line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        ServerProcess {
            child,
            url: format!("http://{addr}"),
            token,
            data: data.to_path_buf(),
        }
    }

    fn status(&self, id: &str) -> RecordingStatus {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let api = RecordingsApi::new(
            reqwest::Client::new(),
            reqwest::Url::parse(&format!("{}/", self.url)).expect("url"),
            self.token.clone(),
            Duration::from_secs(10),
        );
        rt.block_on(api.status(id)).expect("GET status")
    }

    /// (segment rows, uploads ever created) in the server's database.
    fn counts(&self) -> (u64, u64) {
        let conn = rusqlite::Connection::open_with_flags(
            self.data.join("server.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open server db");
        let segments: i64 = conn
            .query_row("SELECT COUNT(*) FROM segments", [], |r| r.get(0))
            .expect("count segments");
        let uploads: i64 = conn
            .query_row("SELECT COUNT(*) FROM uploads", [], |r| r.get(0))
            .expect("count uploads");
        (segments as u64, uploads as u64)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_all_received(status: &RecordingStatus, segments: u64) {
    assert!(
        status.state == "stopped" || status.state == "complete",
        "state {}",
        status.state
    );
    assert_eq!(status.tracks.len(), 1, "{status:?}");
    let t = &status.tracks[0];
    assert_eq!(t.name, "me");
    assert_eq!(t.received, segments, "{status:?}");
    assert_eq!(t.missing, Vec::<u64>::new(), "{status:?}");
    assert_eq!(t.final_sequence, Some(segments - 1), "{status:?}");
}

fn speech(dir: &Path, seconds: u32) -> PathBuf {
    let clip = speech_wav(
        dir,
        "clip",
        "The quick brown fox jumps over the lazy dog. Chronote uploads while it records.",
        "en-us",
        16_000,
    );
    let input = dir.join(format!("speech{seconds}.wav"));
    chronote_e2e::lengthen(&clip, &input, seconds);
    input
}

#[test]
fn record_with_server_uploads_every_segment_while_recording() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let input = speech(dir.path(), 600);
    let out = chronote()
        .args([
            "record",
            "--json",
            "--min-free-bytes",
            "0",
            "--segment-secs",
            "30",
        ])
        .args(["--server", &server.url, "--token", &server.token])
        .arg("--input")
        .arg(&input)
        .arg("--spool")
        .arg(dir.path().join("spool"))
        .output()
        .expect("run chronote record");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "record failed: {stderr}");
    let lines = json_lines(&out);
    let s = summary(&out);
    let id = s["recording_id"]
        .as_str()
        .expect("recording id")
        .to_string();
    let segments = u(&s["segments"]);
    // Cuts land at the quietest frame of the last 2 s before each 30 s target, so 600 s make
    // between ceil(600 / 30) = 20 and ceil(600 / 28) = 22 segments.
    assert!((20..=22).contains(&segments), "{segments} segments");
    assert_eq!(s["server_recording_id"], Value::String(id.clone()));
    assert_eq!(u(&s["uploaded_segments"]), segments);
    assert_eq!(u(&s["pending_segments"]), 0);

    let kinds: Vec<&str> = lines.iter().filter_map(|l| l["event"].as_str()).collect();
    let sealed = kinds.iter().filter(|k| **k == "segment_sealed").count() as u64;
    let uploaded = kinds.iter().filter(|k| **k == "segment_uploaded").count() as u64;
    assert_eq!(sealed, segments);
    assert_eq!(uploaded, segments);
    assert_eq!(
        kinds.iter().filter(|k| **k == "recording_stopped").count(),
        1
    );
    // Uploads happen while recording: they interleave with the seals, and most segments are
    // acknowledged before the last one is sealed.
    let last_seal = kinds
        .iter()
        .rposition(|k| *k == "segment_sealed")
        .expect("a seal");
    let early = kinds[..last_seal]
        .iter()
        .filter(|k| **k == "segment_uploaded")
        .count() as u64;
    assert!(
        early * 2 >= segments,
        "only {early} of {segments} uploaded before the last seal: {kinds:?}"
    );
    let first_upload = kinds
        .iter()
        .position(|k| *k == "segment_uploaded")
        .expect("an upload");
    let first_seal_after = kinds[first_upload..].contains(&"segment_sealed");
    assert!(
        first_seal_after,
        "uploads did not interleave with seals: {kinds:?}"
    );
    // Each uploaded event names the track and sequence of a sealed one, in order.
    let uploaded_seqs: Vec<u64> = lines
        .iter()
        .filter(|l| l["event"] == "segment_uploaded")
        .map(|l| u(&l["sequence"]))
        .collect();
    assert_eq!(uploaded_seqs, (0..segments).collect::<Vec<_>>());

    assert_all_received(&server.status(&id), segments);
    assert_eq!(server.counts(), (segments, segments));
}

/// A spool with one stopped recording of `seconds` in 5 s segments, recorded without a server.
fn recorded_spool(dir: &Path, seconds: u32) -> (PathBuf, String, u64) {
    let input = speech(dir, seconds);
    let spool = dir.join("spool");
    let out = chronote()
        .args([
            "record",
            "--json",
            "--min-free-bytes",
            "0",
            "--segment-secs",
            "5",
        ])
        .arg("--input")
        .arg(&input)
        .arg("--spool")
        .arg(&spool)
        .output()
        .expect("run chronote record");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&out);
    assert_eq!(s["server_recording_id"], Value::Null);
    assert_eq!(u(&s["uploaded_segments"]), 0);
    assert_eq!(u(&s["pending_segments"]), u(&s["segments"]));
    (
        spool,
        s["recording_id"].as_str().expect("id").to_string(),
        u(&s["segments"]),
    )
}

fn upload(server: &ServerProcess, spool: &Path) -> Command {
    let mut cmd = chronote();
    cmd.args([
        "upload",
        "--json",
        "--min-free-bytes",
        "0",
        "--timeout",
        "120",
    ])
    .args(["--server", &server.url, "--token", &server.token])
    .arg("--spool")
    .arg(spool);
    cmd
}

fn segment_states(spool: &Path, id: &str) -> Vec<String> {
    let list = chronote_e2e::spool_list(spool);
    let rec = list
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("recording {id} not in {list:?}"));
    let states = &rec["tracks"][0]["states"];
    ["sealed", "uploading", "uploaded", "acknowledged", "evicted"]
        .iter()
        .map(|k| format!("{k}={}", u(&states[*k])))
        .collect()
}

/// Killed right after the final PATCH's 204 (the segment goes in several chunks), before the
/// spool records it: the restart finds the upload complete by HEAD and takes its receipt.
#[test]
fn client_killed_after_the_final_patch_completes_on_restart_without_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let (spool, id, segments) = recorded_spool(dir.path(), 20);
    assert!(segments >= 4, "{segments} segments");

    let out = upload(&server, &spool)
        .args(["--chunk-bytes", "4096"])
        .env("CHRONOTE_TEST_EXIT_BEFORE_ACK", "2")
        .output()
        .expect("run chronote upload");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "the test hook must kill the client: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let acked: Vec<Value> = json_lines(&out)
        .into_iter()
        .filter(|l| l["event"] == "segment_uploaded")
        .collect();
    assert_eq!(acked.len(), 1, "one segment acknowledged before the kill");
    // The server has two segments; the spool knows of one, the other is still "uploading".
    assert_eq!(server.counts(), (2, 2));
    assert_eq!(
        segment_states(&spool, &id),
        [
            format!("sealed={}", segments - 2),
            "uploading=1".into(),
            "uploaded=0".into(),
            "acknowledged=1".into(),
            "evicted=0".into()
        ]
    );

    let out = upload(&server, &spool)
        .args(["--chunk-bytes", "4096"])
        .output()
        .expect("rerun chronote upload");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json_lines(&out)
        .into_iter()
        .find(|l| l["event"] == "upload_summary")
        .expect("upload summary");
    assert_eq!(u(&report["acknowledged"]), segments - 1);
    assert_eq!(report["stopped"], serde_json::json!([id]));
    assert_eq!(server.counts(), (segments, segments), "no duplicate upload");
    assert_all_received(&server.status(&id), segments);
    assert_eq!(
        segment_states(&spool, &id),
        [
            "sealed=0".to_string(),
            "uploading=0".into(),
            "uploaded=0".into(),
            format!("acknowledged={segments}"),
            "evicted=0".into()
        ]
    );
}

/// Killed right after a creation-with-upload answered complete, before the spool even recorded
/// the upload URL: the restart creates again, the server answers with the same upload.
#[test]
fn client_killed_after_creation_with_upload_completes_on_restart_without_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let (spool, id, segments) = recorded_spool(dir.path(), 20);

    let out = upload(&server, &spool)
        .env("CHRONOTE_TEST_EXIT_BEFORE_ACK", "1")
        .output()
        .expect("run chronote upload");
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{:?}", out.status);
    assert_eq!(server.counts(), (1, 1));
    assert_eq!(
        segment_states(&spool, &id),
        [
            format!("sealed={segments}"),
            "uploading=0".into(),
            "uploaded=0".into(),
            "acknowledged=0".into(),
            "evicted=0".into()
        ]
    );

    let out = upload(&server, &spool)
        .output()
        .expect("rerun chronote upload");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.counts(), (segments, segments), "no duplicate upload");
    assert_all_received(&server.status(&id), segments);
}

#[test]
fn upload_to_an_unreachable_server_fails_clearly_after_its_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (spool, _, _) = recorded_spool(dir.path(), 10);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let out = chronote()
        .args([
            "upload",
            "--timeout",
            "2",
            "--min-free-bytes",
            "0",
            "--token",
            "t",
        ])
        .args(["--server", &url])
        .arg("--spool")
        .arg(&spool)
        .output()
        .expect("run chronote upload");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("gave up after 2 s"), "{stderr}");
    assert!(
        stderr.contains(&format!("not uploaded to {url}")),
        "{stderr}"
    );
    assert!(stderr.contains("cannot connect"), "{stderr}");

    let out = chronote()
        .args(["upload", "--min-free-bytes", "0", "--server", &url])
        .env_remove("CHRONOTE_TOKEN")
        .arg("--spool")
        .arg(&spool)
        .output()
        .expect("run chronote upload");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pass --token or set CHRONOTE_TOKEN"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn record_with_a_rejected_token_keeps_the_audio_and_exits_non_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let input = speech(dir.path(), 40);
    let spool = dir.path().join("spool");
    let out = chronote()
        .args(["record", "--json", "--min-free-bytes", "0"])
        .args(["--segment-secs", "10", "--upload-wait", "3"])
        .args(["--server", &server.url, "--token", "cht_not_a_token"])
        .arg("--input")
        .arg(&input)
        .arg("--spool")
        .arg(&spool)
        .output()
        .expect("run chronote record");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    assert!(stderr.contains("saved in the spool"), "{stderr}");
    assert!(
        stderr.contains("run `chronote upload` to finish"),
        "{stderr}"
    );
    // The summary still reports what was recorded, and every segment waits in the spool.
    let s = summary(&out);
    let segments = u(&s["segments"]);
    assert!((4..=5).contains(&segments), "{segments} segments");
    assert_eq!(u(&s["pending_segments"]), segments);
    let id = s["recording_id"].as_str().expect("recording id");
    assert_eq!(
        segment_states(&spool, id),
        [
            format!("sealed={segments}"),
            "uploading=0".into(),
            "uploaded=0".into(),
            "acknowledged=0".into(),
            "evicted=0".into()
        ]
    );
    assert_eq!(server.counts(), (0, 0), "nothing reached the server");
}
