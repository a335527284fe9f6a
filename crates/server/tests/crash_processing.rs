//! SIGKILL the real `chronote server` while transcription jobs hold leases, twice: a restart
//! under the same node name requeues its own leases at once; a different node has to wait for
//! them to expire before it takes the jobs over. Every segment ends up transcribed exactly
//! once, every job `done`, and the notes `ready`.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chronote_transcribe::testing::FixedLatency;
use common::*;
use serde_json::{Value, json};

const SEGMENTS: u64 = 20;
/// 100 frames of 20 ms: 2 s per segment.
const FRAMES: usize = 100;
const LEN_48K: u64 = 96_000;
const LATENCY_MS: u64 = 500;
/// At most this many transcriptions run at once, so the 20 jobs take about 5 s of engine time
/// and a kill always finds some done, some running and some queued.
const CONCURRENCY: usize = 2;

/// The `chronote` binary of the same build (built by `cargo build --workspace`).
fn chronote_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("chronote");
    assert!(
        bin.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace`, which `make test` does)",
        bin.display()
    );
    bin
}

/// A `chronote server` child with the fixed-latency engine; its stderr (the log) goes to a file.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
    started: Instant,
}

impl Server {
    fn start(data: &Path, node: &str, lease_secs: u64, log: PathBuf) -> Server {
        let started = Instant::now();
        let mut cmd = Command::new(chronote_bin());
        cmd.args(["server", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(["--transcriber", "fixed", "--summarizer", "extractive"])
            .args(["--fixed-latency-ms", &LATENCY_MS.to_string()]);
        // Only what this test sets: nothing from the caller's environment.
        for (k, _) in std::env::vars() {
            if k.starts_with("CHRONOTE_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .env("CHRONOTE_NODE", node)
            .env("CHRONOTE_LEASE_SECS", lease_secs.to_string())
            .env("CHRONOTE_WORKERS", "4")
            .env("CHRONOTE_TRANSCRIBE_CONCURRENCY", CONCURRENCY.to_string())
            .env("RUST_LOG", "warn,chronote_server=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .to_string();
        Server {
            child,
            base: format!("http://{addr}"),
            log,
            started,
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// Log lines containing `what`.
    fn log_lines(&self, what: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(what))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token(data: &Path) -> String {
    let out = Command::new(chronote_bin())
        .args(["server", "token", "create", "--name", "alice", "--data"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A transcription job row as the server database has it.
#[derive(Debug, Clone)]
struct Job {
    id: i64,
    sequence: u64,
    state: String,
    attempts: i64,
    lease_owner: Option<String>,
    lease_expiry_ms: Option<i64>,
    finished_ms: Option<i64>,
}

fn db(data: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open_with_flags(
        data.join("server.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

/// The transcription jobs of `recording`, by sequence.
fn transcribe_jobs(data: &Path, recording: &str) -> Vec<Job> {
    let conn = db(data);
    let mut stmt = conn
        .prepare(
            "SELECT id, sequence, state, attempts, lease_owner, lease_expiry_ms, finished_ms
             FROM jobs WHERE kind = 'transcribe' AND recording_id = ?1 ORDER BY sequence",
        )
        .unwrap();
    stmt.query_map([recording], |r| {
        Ok(Job {
            id: r.get(0)?,
            sequence: r.get::<_, i64>(1)? as u64,
            state: r.get(2)?,
            attempts: r.get(3)?,
            lease_owner: r.get(4)?,
            lease_expiry_ms: r.get(5)?,
            finished_ms: r.get(6)?,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn in_state<'a>(jobs: &'a [Job], state: &str) -> Vec<&'a Job> {
    jobs.iter().filter(|j| j.state == state).collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Waits until the server reports at least `n` segments of `id` transcribed and (unless `n` is
/// all of them) the database shows a transcription in flight; returns the status it saw.
async fn transcribed_at_least(
    data: &Path,
    client: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    n: u64,
) -> Value {
    eventually(
        Duration::from_secs(30),
        &format!("{n} segments transcribed"),
        || async {
            let (status, body) =
                get_json(client, base, token, &format!("/v1/recordings/{id}")).await;
            assert_eq!(status, 200, "{body}");
            if body["processing"]["transcribed"].as_u64() < Some(n) {
                return None;
            }
            // Only kill with a transcription in flight.
            let running = transcribe_jobs(data, id)
                .iter()
                .filter(|j| j.state == "running")
                .count();
            (n == SEGMENTS || running > 0).then_some(body)
        },
    )
    .await
}

/// Kills `server` mid-transcription and returns the job rows as the kill left them, after
/// checking that some were done, some held by `node` and some not started.
fn kill_mid_transcription(server: Server, data: &Path, id: &str, node: &str) -> Vec<Job> {
    server.kill();
    let jobs = transcribe_jobs(data, id);
    assert_eq!(jobs.len() as u64, SEGMENTS);
    let done = in_state(&jobs, "done").len();
    let running = in_state(&jobs, "running");
    let queued = in_state(&jobs, "queued").len();
    assert!(
        (1..=CONCURRENCY).contains(&running.len()),
        "the kill must find transcriptions in flight: {jobs:#?}"
    );
    assert!(
        done >= 1 && queued >= 1,
        "some done and some queued: {jobs:#?}"
    );
    assert_eq!(
        done + running.len() + queued,
        SEGMENTS as usize,
        "{jobs:#?}"
    );
    for j in &running {
        assert_eq!(j.lease_owner.as_deref(), Some(node), "{j:?}");
        assert_eq!(j.attempts, 0, "{j:?}");
    }
    // A result exists exactly for the done jobs.
    assert_eq!(count_rows(data, "transcripts", id), done as i64);
    jobs
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_transcription_then_same_node_and_other_node_restarts_transcribe_each_segment_once()
 {
    let test_started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let token = token(&data);
    let client = reqwest::Client::new();
    let id = "crashy";

    // Run 1: node alpha with a 30 s lease.
    let alpha = Server::start(&data, "alpha", 30, dir.path().join("alpha1.log"));
    let base = alpha.base.clone();
    create_recording(&client, &base, &token, id, &["me"]).await;
    let files: Vec<Vec<u8>> = (0..SEGMENTS)
        .map(|seq| {
            let (file, len) = segment(id, "me", seq, FRAMES);
            assert_eq!(len, LEN_48K);
            file
        })
        .collect();
    for (seq, file) in files.iter().enumerate() {
        let seq = seq as u64;
        upload_segment(
            &client,
            &base,
            &token,
            id,
            "me",
            seq,
            seq * LEN_48K,
            file,
            LEN_48K,
        )
        .await;
    }
    let seen = transcribed_at_least(&data, &client, &base, &token, id, 4).await;
    assert!(seen["processing"]["pending"].as_u64() > Some(0), "{seen}");
    let killed1_ms = now_ms();
    let after_kill1 = kill_mid_transcription(alpha, &data, id, "alpha");
    let held1: Vec<Job> = in_state(&after_kill1, "running")
        .into_iter()
        .cloned()
        .collect();
    for j in &held1 {
        let expiry = j.lease_expiry_ms.unwrap();
        assert!(
            expiry > killed1_ms + 20_000,
            "30 s lease: {j:?} killed at {killed1_ms}"
        );
    }
    let done1 = in_state(&after_kill1, "done").len();

    // Run 2: alpha again, now with a 3 s lease. Its start requeues the leases alpha held, so
    // they run at once, long before the 30 s leases would have expired.
    let alpha = Server::start(&data, "alpha", 3, dir.path().join("alpha2.log"));
    let base = alpha.base.clone();
    let restarted2_ms = now_ms();
    let requeued = alpha.log_lines("requeued jobs this node held before it stopped");
    assert_eq!(requeued.len(), 1, "{}", alpha.log());
    assert!(
        requeued[0].contains(&format!("jobs={}", held1.len()))
            && requeued[0].contains("node=alpha"),
        "{requeued:?}"
    );
    let held1_done = eventually(Duration::from_secs(20), "requeued jobs done", || async {
        let jobs = transcribe_jobs(&data, id);
        let done: Vec<Job> = held1
            .iter()
            .map(|h| jobs.iter().find(|j| j.id == h.id).unwrap().clone())
            .filter(|j| j.state == "done")
            .collect();
        (done.len() == held1.len()).then_some(done)
    })
    .await;
    for (j, old) in held1_done.iter().zip(&held1) {
        let finished = j.finished_ms.unwrap();
        assert!(
            finished < old.lease_expiry_ms.unwrap() - 15_000,
            "requeued at once, not after the old lease expired: {j:?} (old lease {old:?})"
        );
        assert!(finished >= restarted2_ms, "{j:?}");
    }
    let requeue_to_done_ms = held1_done
        .iter()
        .map(|j| j.finished_ms.unwrap() - restarted2_ms)
        .max()
        .unwrap();
    transcribed_at_least(
        &data,
        &client,
        &base,
        &token,
        id,
        done1 as u64 + held1.len() as u64 + 3,
    )
    .await;
    let killed2_ms = now_ms();
    let after_kill2 = kill_mid_transcription(alpha, &data, id, "alpha");
    let held2: Vec<Job> = in_state(&after_kill2, "running")
        .into_iter()
        .cloned()
        .collect();
    for j in &held2 {
        let expiry = j.lease_expiry_ms.unwrap();
        assert!(
            expiry > killed2_ms - 1_000 && expiry <= killed2_ms + 3_000,
            "3 s lease renewed every second: {j:?} killed at {killed2_ms}"
        );
    }
    let done2 = in_state(&after_kill2, "done").len();
    assert!(done2 < SEGMENTS as usize, "{after_kill2:#?}");

    // Run 3: node beta. Nothing of its own to requeue; alpha's leases must expire first.
    let beta = Server::start(&data, "beta", 3, dir.path().join("beta.log"));
    let base = beta.base.clone();
    let restarted3_ms = now_ms();
    assert_eq!(
        beta.log_lines("requeued jobs this node held").len(),
        0,
        "{}",
        beta.log()
    );
    transcribed_at_least(&data, &client, &base, &token, id, SEGMENTS).await;
    let jobs = transcribe_jobs(&data, id);
    let mut takeover_wait_ms = 0;
    for old in &held2 {
        let j = jobs.iter().find(|j| j.id == old.id).unwrap();
        let expiry = old.lease_expiry_ms.unwrap();
        let finished = j.finished_ms.unwrap();
        // Taken over only once expired, then one engine call.
        assert!(
            finished >= expiry + LATENCY_MS as i64,
            "taken over before alpha's lease expired: {j:?} (alpha's lease {old:?})"
        );
        takeover_wait_ms = takeover_wait_ms.max(finished - restarted3_ms);
    }
    let takeovers = beta.log_lines("lease expired, taking the job over");
    assert_eq!(takeovers.len(), held2.len(), "{}", beta.log());
    for old in &held2 {
        assert_eq!(
            takeovers
                .iter()
                .filter(|l| l.contains(&format!("job={} ", old.id)))
                .count(),
            1,
            "job {} taken over once: {takeovers:?}",
            old.id
        );
    }

    // Stop: the notes become final and ready.
    stop_recording(&client, &base, &token, id, json!({ "me": SEGMENTS - 1 })).await;
    let stopped = Instant::now();
    let notes = eventually(Duration::from_secs(20), "final notes", || async {
        let (_, n) = get_json(
            &client,
            &base,
            &token,
            &format!("/v1/recordings/{id}/notes"),
        )
        .await;
        (n["is_final"] == true).then_some(n)
    })
    .await;
    let stop_to_notes = stopped.elapsed();
    assert_eq!(notes["outcome"], "ready", "{notes}");
    assert_eq!(notes["version"], 1, "{notes}");
    assert_eq!(notes["covers_until_ms"], SEGMENTS * 2000, "{notes}");

    // The transcript: every segment exactly once, in order, with its own text.
    let (status, transcript) = get_json(
        &client,
        &base,
        &token,
        &format!("/v1/recordings/{id}/transcript"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(transcript["segments_received"], SEGMENTS);
    assert_eq!(transcript["segments_transcribed"], SEGMENTS);
    assert_eq!(transcript["segments_failed"], 0);
    assert_eq!(transcript["complete"], true);
    let utterances = transcript["utterances"].as_array().unwrap();
    assert_eq!(utterances.len() as u64, SEGMENTS, "{transcript}");
    for (seq, file) in files.iter().enumerate() {
        let text = FixedLatency::text_for(LEN_48K, file);
        let matching: Vec<&Value> = utterances.iter().filter(|u| u["text"] == text).collect();
        assert_eq!(matching.len(), 1, "segment {seq} ({text}) in {transcript}");
        let start = seq as u64 * 2000;
        assert_eq!(
            matching[0],
            &json!({"start_ms": start, "end_ms": start + 2000, "track": "me", "speaker": "me",
                    "text": text})
        );
        assert_eq!(utterances[seq], *matching[0], "in time order");
    }

    // The database: 20 transcription jobs, all done, each with one counted attempt (a killed
    // attempt never committed, so it counts nothing), one transcript row each from its own
    // job; the finalization job done too, and no other job.
    let jobs = transcribe_jobs(&data, id);
    assert_eq!(jobs.len() as u64, SEGMENTS);
    for (seq, j) in jobs.iter().enumerate() {
        assert_eq!(j.sequence, seq as u64);
        assert_eq!((j.state.as_str(), j.attempts), ("done", 1), "{j:?}");
        assert_eq!(
            (j.lease_owner.as_deref(), j.lease_expiry_ms),
            (None, None),
            "{j:?}"
        );
    }
    let conn = db(&data);
    let rows: Vec<(i64, i64, String)> = conn
        .prepare(
            "SELECT sequence, job_id, engine FROM transcripts WHERE recording_id = ?1
             ORDER BY sequence",
        )
        .unwrap()
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        jobs.iter()
            .map(|j| (j.sequence as i64, j.id, "fixed-latency".to_string()))
            .collect::<Vec<_>>()
    );
    let by_kind: Vec<(String, String, i64)> = conn
        .prepare("SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state ORDER BY kind")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        by_kind,
        [
            ("finalize".to_string(), "done".to_string(), 1),
            ("transcribe".into(), "done".into(), SEGMENTS as i64)
        ]
    );
    let (_, queue) = get_json(&client, &base, &token, "/v1/queue").await;
    let nonzero: Vec<&Value> = queue["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["count"] != 0)
        .collect();
    assert_eq!(
        nonzero,
        [
            &json!({"kind": "transcribe", "state": "done", "count": SEGMENTS}),
            &json!({"kind": "finalize", "state": "done", "count": 1})
        ],
        "{queue}"
    );
    assert_eq!(
        queue["meetings"],
        json!([]),
        "a finished meeting leaves the queue"
    );

    eprintln!(
        "crash_processing: kill 1 after {done1} done with {} held (30 s lease); same-node \
         restart finished them {requeue_to_done_ms} ms after start; kill 2 after {done2} done \
         with {} held (3 s lease); other node finished them {takeover_wait_ms} ms after start; \
         stop to final notes {stop_to_notes:?}; beta up for {:?}; test {:?}",
        held1.len(),
        held2.len(),
        beta.started.elapsed(),
        test_started.elapsed()
    );
}
