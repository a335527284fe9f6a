//! Rolling processing with the real binaries: `chronote record --server` uploads 5 s segments
//! of a 4-minute speech file to a `chronote server --transcriber fixed` process, which
//! transcribes them while the recording is still going; after the recorder exits the final
//! notes follow within seconds, and /metrics counts every upload.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chronote_e2e::{chronote, speech_wav, u};
use serde_json::Value;

const INPUT_SECS: u32 = 240;
const SEGMENT_SECS: u64 = 5;
const LATENCY_MS: u64 = 200;
/// From the recorder's exit to final notes.
const NOTES_WITHIN: Duration = Duration::from_secs(5);

/// `chronote server` with the fixed-latency engine on a free port, killed when dropped.
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
        let mut cmd = chronote();
        // Only the settings given here: nothing from the caller's environment.
        for (k, _) in std::env::vars() {
            if k.starts_with("CHRONOTE_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .args(["server", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(["--transcriber", "fixed", "--summarizer", "extractive"])
            .args(["--fixed-latency-ms", &LATENCY_MS.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start chronote server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("server stdout"))
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

    /// GET `path` as alice: (status, body as JSON, or as a string if it is not JSON).
    fn get(&self, path: &str) -> (u16, Value) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let r = reqwest::Client::new()
                .get(format!("{}{path}", self.url))
                .bearer_auth(&self.token)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {path}: {e}"));
            let status = r.status().as_u16();
            let text = r.text().await.expect("body");
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            (status, body)
        })
    }

    fn db(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_with_flags(
            self.data.join("server.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open server db");
        conn.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        conn
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the poller saw while the recorder was running.
#[derive(Debug, Default)]
struct WhileRecording {
    /// Most segments transcribed in one look while the server still said `recording`.
    transcribed: u64,
    /// Utterances in that look.
    utterances: usize,
    /// Time from the recorder's start to the first transcript entry.
    first_entry_after: Option<Duration>,
    /// Segments received by the server at that look.
    received: u64,
}

#[test]
fn record_with_server_is_transcribed_while_recording_and_notes_follow_within_seconds() {
    let test_started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let clip = speech_wav(
        dir.path(),
        "clip",
        "We agreed to ship the release on Friday. Alice will update the migration guide before \
         the review. The team decided to keep the old endpoint for one more month.",
        "en-us",
        16_000,
    );
    let input = dir.path().join("meeting.wav");
    chronote_e2e::lengthen(&clip, &input, INPUT_SECS);

    let started = Instant::now();
    let mut recorder = chronote()
        .args([
            "record",
            "--json",
            "--min-free-bytes",
            "0",
            "--segment-secs",
            &SEGMENT_SECS.to_string(),
        ])
        .args(["--server", &server.url, "--token", &server.token])
        .arg("--input")
        .arg(&input)
        .arg("--spool")
        .arg(dir.path().join("spool"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chronote record");
    let (tx, rx) = mpsc::channel::<Value>();
    let stdout = recorder.stdout.take().expect("recorder stdout");
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("recorder stdout line");
            if line.trim().is_empty() {
                continue;
            }
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    let stderr = recorder.stderr.take().expect("recorder stderr");
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
        text
    });

    let first = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the recorder's first JSON line");
    assert_eq!(first["event"], "started", "{first}");
    let id = first["recording_id"]
        .as_str()
        .expect("recording id")
        .to_string();

    // Poll the server while the recorder runs.
    let mut seen = WhileRecording::default();
    let mut lines = vec![first];
    let exit = loop {
        lines.extend(rx.try_iter());
        if let Some(status) = recorder.try_wait().expect("try_wait") {
            break status;
        }
        let (code, transcript) = server.get(&format!("/v1/recordings/{id}/transcript"));
        if code == 200 {
            let transcribed = u(&transcript["segments_transcribed"]);
            let utterances = transcript["utterances"].as_array().map_or(0, Vec::len);
            // Stop is final: if the server says `recording` now, it did at the transcript look.
            let (_, status) = server.get(&format!("/v1/recordings/{id}"));
            if status["state"] == "recording" && transcribed > seen.transcribed {
                if seen.first_entry_after.is_none() && utterances > 0 {
                    seen.first_entry_after = Some(started.elapsed());
                }
                seen.transcribed = transcribed;
                seen.utterances = utterances;
                seen.received = u(&transcript["segments_received"]);
            }
        } else {
            assert_eq!(code, 404, "{transcript}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let exited = Instant::now();
    let record_time = started.elapsed();
    reader.join().expect("stdout reader");
    lines.extend(rx.try_iter());
    let stderr_text = stderr_reader.join().expect("stderr reader");
    assert!(exit.success(), "record failed: {stderr_text}");
    let summary = lines
        .iter()
        .find(|l| l["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary line; stderr: {stderr_text}"))
        .clone();
    assert_eq!(summary["recording_id"], Value::String(id.clone()));
    assert_eq!(summary["server_recording_id"], Value::String(id.clone()));
    let segments = u(&summary["segments"]);
    // 240 s in 5 s targets, each cut up to 2 s early at the quietest frame.
    assert!((48..=80).contains(&segments), "{segments} segments");
    assert_eq!(u(&summary["uploaded_segments"]), segments);
    assert_eq!(u(&summary["pending_segments"]), 0);

    assert!(
        seen.transcribed >= 1 && seen.utterances >= 1,
        "no transcript entry while recording (recorder ran {record_time:?}): {seen:?}"
    );

    // After the exit: final notes within seconds.
    let notes = loop {
        let (code, notes) = server.get(&format!("/v1/recordings/{id}/notes"));
        assert_eq!(code, 200, "{notes}");
        if notes["is_final"] == true {
            break notes;
        }
        assert!(
            exited.elapsed() < NOTES_WITHIN,
            "no final notes {NOTES_WITHIN:?} after the recorder exited: {notes}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let exit_to_notes = exited.elapsed();
    assert_eq!(notes["outcome"], "ready", "{notes}");
    assert_eq!(notes["engine"], "extractive", "{notes}");
    assert_eq!(
        u(&notes["covers_until_ms"]),
        u(&summary["duration_ms"]),
        "{notes}"
    );
    assert!(
        !notes["notes"]["summary"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{notes}"
    );

    // Every segment transcribed once: one utterance each, all different, back to back.
    let (_, transcript) = server.get(&format!("/v1/recordings/{id}/transcript"));
    assert_eq!(u(&transcript["segments_received"]), segments);
    assert_eq!(u(&transcript["segments_transcribed"]), segments);
    assert_eq!(u(&transcript["segments_failed"]), 0);
    assert_eq!(transcript["complete"], true);
    let utterances = transcript["utterances"].as_array().expect("utterances");
    assert_eq!(utterances.len() as u64, segments, "{transcript}");
    let mut texts = std::collections::BTreeSet::new();
    let mut end = 0;
    for utt in utterances {
        let text = utt["text"].as_str().expect("text");
        assert!(text.starts_with("segment "), "{utt}");
        assert!(texts.insert(text.to_string()), "{text} twice");
        assert_eq!(u(&utt["start_ms"]), end, "{utt}");
        end = u(&utt["end_ms"]);
    }
    assert_eq!(end, u(&summary["duration_ms"]));

    // The database agrees: most segments were transcribed before the recorder said stop.
    let db = server.db();
    let stopped_ms: i64 = db
        .query_row(
            "SELECT stopped_ms FROM stops WHERE recording_id = ?1",
            [&id],
            |r| r.get(0),
        )
        .expect("stop row");
    let before_stop: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM transcripts WHERE recording_id = ?1 AND created_ms < ?2",
            rusqlite::params![id, stopped_ms],
            |r| r.get(0),
        )
        .expect("count transcripts");
    assert!(
        before_stop as u64 * 2 >= segments,
        "only {before_stop} of {segments} transcribed before the stop"
    );

    let (code, metrics) = server.get("/metrics");
    assert_eq!(code, 200);
    let metrics = metrics.as_str().expect("metrics text");
    let uploads = format!("chronote_uploads_total {segments}");
    assert!(
        metrics.lines().any(|l| l == uploads),
        "no `{uploads}` line in:\n{metrics}"
    );

    eprintln!(
        "record_processing: {segments} segments of {INPUT_SECS} s; recorder ran {record_time:?}; \
         first transcript entry {:?} after its start; while recording the server had {} \
         transcribed of {} received; {before_stop} transcribed before the stop; exit to final \
         notes {exit_to_notes:?}; test {:?}",
        seen.first_entry_after,
        seen.transcribed,
        seen.received,
        test_started.elapsed()
    );
}
