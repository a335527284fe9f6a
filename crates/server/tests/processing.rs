//! Rolling processing over real HTTP: segments uploaded as real Ogg Opus files become jobs,
//! transcripts, rolling notes and final notes; fairness between meetings; bounded meeting end;
//! the queue and metrics endpoints.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chronote_server::ServerConfig;
use chronote_summarize::ExtractiveSummarizer;
use chronote_transcribe::testing::FixedLatency;
use chronote_transcribe::{BoxFuture, TranscribeError, TranscribeRequest, Transcriber, Transcript};
use common::*;
use serde_json::{Value, json};

fn with_engines(c: &mut ServerConfig, engine: Arc<dyn Transcriber>) {
    c.processing.transcriber = Some(engine);
    c.processing.summarizer = Some(Arc::new(ExtractiveSummarizer::new()));
    c.processing.poll = Duration::from_millis(50);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tracks_interleaved_come_out_in_time_order_with_labels_and_final_notes() {
    let srv = Srv::start_with(|c| {
        with_engines(c, Arc::new(FixedLatency::new(Duration::ZERO)));
    })
    .await;
    let (base, client) = (srv.base.clone(), srv.client.clone());
    create_recording(&client, &base, &srv.token_a, "meet", &["me", "others"]).await;
    // me speaks in [0, 2 s) and [4 s, 6 s); others in [2 s, 4 s) and [6 s, 7 s).
    let (me0, len2) = segment("meet", "me", 0, 100);
    let (me1, _) = segment("meet", "me", 1, 100);
    let (others0, _) = segment("meet", "others", 0, 100);
    let (others1, len1) = segment("meet", "others", 1, 50);
    assert_eq!((len2, len1), (96_000, 48_000));
    // Out of order on purpose: the transcript is ordered by time, not by arrival.
    upload_segment(
        &client,
        &base,
        &srv.token_a,
        "meet",
        "others",
        1,
        6 * 48_000,
        &others1,
        len1,
    )
    .await;
    upload_segment(
        &client,
        &base,
        &srv.token_a,
        "meet",
        "me",
        1,
        4 * 48_000,
        &me1,
        len2,
    )
    .await;
    upload_segment(
        &client,
        &base,
        &srv.token_a,
        "meet",
        "others",
        0,
        2 * 48_000,
        &others0,
        len2,
    )
    .await;
    upload_segment(&client, &base, &srv.token_a, "meet", "me", 0, 0, &me0, len2).await;

    let path = "/v1/recordings/meet/transcript";
    let body = eventually(
        Duration::from_secs(20),
        "4 transcribed segments",
        || async {
            let (status, body) = get_json(&client, &base, &srv.token_a, path).await;
            assert_eq!(status, 200);
            (body["segments_transcribed"] == 4).then_some(body)
        },
    )
    .await;
    let [a, b, c, d] = [
        FixedLatency::text_for(96_000, &me0),
        FixedLatency::text_for(96_000, &others0),
        FixedLatency::text_for(96_000, &me1),
        FixedLatency::text_for(48_000, &others1),
    ];
    assert_eq!(
        body["utterances"],
        json!([
            {"start_ms": 0, "end_ms": 2000, "track": "me", "speaker": "me", "text": a},
            {"start_ms": 2000, "end_ms": 4000, "track": "others", "speaker": "others", "text": b},
            {"start_ms": 4000, "end_ms": 6000, "track": "me", "speaker": "me", "text": c},
            {"start_ms": 6000, "end_ms": 7000, "track": "others", "speaker": "others", "text": d},
        ])
    );
    assert_eq!(body["complete"], false, "not stopped yet");

    let expected_text = format!(
        "[00:00:00] me: {a}\n[00:00:02] others: {b}\n[00:00:04] me: {c}\n[00:00:06] others: {d}\n"
    );
    for req in [
        client.get(format!("{base}{path}?format=text")),
        client
            .get(format!("{base}{path}"))
            .header("Accept", "text/plain"),
    ] {
        let r = req.bearer_auth(&srv.token_a).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "content-type"), "text/plain; charset=utf-8");
        assert_eq!(r.text().await.unwrap(), expected_text);
    }
    let r = client
        .get(format!("{base}{path}?format=xml"))
        .bearer_auth(&srv.token_a)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("format must be"));

    // Another owner sees nothing.
    for p in [path, "/v1/recordings/meet/notes", "/v1/recordings/meet"] {
        let (status, _) = get_json(&client, &base, &srv.token_b, p).await;
        assert_eq!(status, 404, "{p}");
    }
    let (_, queue_b) = get_json(&client, &base, &srv.token_b, "/v1/queue").await;
    assert_eq!(queue_b["meetings"], json!([]));

    let (_, notes) = get_json(&client, &base, &srv.token_a, "/v1/recordings/meet/notes").await;
    assert_eq!(
        (notes["version"].clone(), notes["notes"].clone()),
        (json!(0), Value::Null)
    );

    stop_recording(
        &client,
        &base,
        &srv.token_a,
        "meet",
        json!({"me": 1, "others": 1}),
    )
    .await;
    let notes = eventually(Duration::from_secs(20), "final notes", || async {
        let (_, n) = get_json(&client, &base, &srv.token_a, "/v1/recordings/meet/notes").await;
        (n["is_final"] == true).then_some(n)
    })
    .await;
    assert_eq!(notes["version"], 1);
    assert_eq!(notes["outcome"], "ready");
    assert_eq!(notes["covers_until_ms"], 7000);
    assert_eq!(notes["engine"], "extractive");
    assert!(
        !notes["notes"]["summary"].as_str().unwrap().is_empty(),
        "{notes}"
    );
    let (_, status) = get_json(&client, &base, &srv.token_a, "/v1/recordings/meet").await;
    let p = &status["processing"];
    assert_eq!(p["transcribed"], 4);
    assert_eq!(p["pending"], 0);
    assert_eq!(p["failed"], 0);
    assert_eq!(p["lag_seconds"], 0.0);
    assert_eq!(p["contiguous_end_ms"], 7000);
    assert_eq!(p["notes_version"], 1);
    assert_eq!(p["notes_final"], true);
    assert_eq!(p["outcome"], "ready");
    assert!(p["stop_to_notes_ms"].as_i64().unwrap() >= 0);
    assert_eq!(count_rows(srv.dir.path(), "transcripts", "meet"), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_and_partial_outcomes_say_so() {
    let srv = Srv::start_with(|c| {
        with_engines(c, Arc::new(Silent));
        c.processing.finalize_deadline = Duration::from_millis(300);
    })
    .await;
    let (base, client) = (srv.base.clone(), srv.client.clone());
    // Silence only: empty.
    create_recording(&client, &base, &srv.token_a, "quiet", &["me"]).await;
    let (file, len) = segment("quiet", "me", 0, 50);
    upload_segment(
        &client,
        &base,
        &srv.token_a,
        "quiet",
        "me",
        0,
        0,
        &file,
        len,
    )
    .await;
    stop_recording(&client, &base, &srv.token_a, "quiet", json!({"me": 0})).await;
    let notes = eventually(Duration::from_secs(20), "empty notes", || async {
        let (_, n) = get_json(&client, &base, &srv.token_a, "/v1/recordings/quiet/notes").await;
        (n["is_final"] == true).then_some(n)
    })
    .await;
    assert_eq!(notes["outcome"], "empty");
    assert_eq!(
        notes["notes"]["summary"],
        "No usable speech was recorded in this meeting."
    );

    // Segment 1 of 0..=2 never arrives: after the deadline, partial notes that say so.
    create_recording(&client, &base, &srv.token_a, "gappy", &["me"]).await;
    upload_segment(
        &client,
        &base,
        &srv.token_a,
        "gappy",
        "me",
        0,
        0,
        &file,
        len,
    )
    .await;
    upload_segment(
        &client,
        &base,
        &srv.token_a,
        "gappy",
        "me",
        2,
        2 * len,
        &file,
        len,
    )
    .await;
    stop_recording(&client, &base, &srv.token_a, "gappy", json!({"me": 2})).await;
    let notes = eventually(Duration::from_secs(20), "partial notes", || async {
        let (_, n) = get_json(&client, &base, &srv.token_a, "/v1/recordings/gappy/notes").await;
        (n["is_final"] == true).then_some(n)
    })
    .await;
    assert_eq!(notes["outcome"], "partial");
    assert!(
        notes["notes"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("Partial notes: 1 of 3 segments could not be transcribed."),
        "{notes}"
    );
    assert_eq!(notes["version"], 1);
    // The late segment arrives: the notes get a new version.
    upload_segment(
        &client,
        &base,
        &srv.token_a,
        "gappy",
        "me",
        1,
        len,
        &file,
        len,
    )
    .await;
    let notes = eventually(Duration::from_secs(20), "updated notes", || async {
        let (_, n) = get_json(&client, &base, &srv.token_a, "/v1/recordings/gappy/notes").await;
        (n["version"] == 2).then_some(n)
    })
    .await;
    assert_eq!(notes["is_final"], true);
    assert_eq!(notes["outcome"], "empty", "all three segments are silence");
}

/// An engine that hears nothing in any segment.
struct Silent;

impl Transcriber for Silent {
    fn name(&self) -> &str {
        "silent"
    }
    fn transcribe(
        &self,
        _request: TranscribeRequest,
    ) -> BoxFuture<'_, Result<Transcript, TranscribeError>> {
        Box::pin(async { Ok(Transcript::default()) })
    }
}

/// Holds every call until opened, and logs the segment length of each call in start order.
struct Gated {
    open: AtomicBool,
    calls: Mutex<Vec<u64>>,
}

impl Transcriber for Gated {
    fn name(&self) -> &str {
        "gated"
    }
    fn transcribe(
        &self,
        request: TranscribeRequest,
    ) -> BoxFuture<'_, Result<Transcript, TranscribeError>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(request.length_48k);
            while !self.open.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            FixedLatency::new(Duration::from_millis(2))
                .transcribe(request)
                .await
        })
    }
}

/// Meeting A has 500 queued segments when meeting B's first segment arrives. With W workers
/// (all busy on A's jobs at that moment), the scheduler's bound is: B's job is the first one
/// claimed after B arrives, i.e. call number W + 1.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_meeting_is_not_starved_by_a_500_segment_backlog() {
    const WORKERS: usize = 2;
    let engine = Arc::new(Gated {
        open: AtomicBool::new(false),
        calls: Mutex::new(Vec::new()),
    });
    let e = engine.clone();
    let srv = Srv::start_with(move |c| {
        with_engines(c, e);
        c.processing.workers = WORKERS;
        c.processing.transcribe_limits.concurrency = WORKERS;
    })
    .await;
    let (base, client) = (srv.base.clone(), srv.client.clone());
    create_recording(&client, &base, &srv.token_a, "a-meeting", &["me"]).await;
    create_recording(&client, &base, &srv.token_a, "b-meeting", &["me"]).await;
    let (a_file, a_len) = segment("a-meeting", "me", 0, 10);
    let (b_file, b_len) = segment("b-meeting", "me", 0, 5);
    assert_ne!(a_len, b_len);
    for seq in 0..500u64 {
        upload_segment(
            &client,
            &base,
            &srv.token_a,
            "a-meeting",
            "me",
            seq,
            seq * a_len,
            &a_file,
            a_len,
        )
        .await;
    }
    eventually(Duration::from_secs(10), "all workers busy on A", || async {
        (engine.calls.lock().unwrap().len() == WORKERS).then_some(())
    })
    .await;
    let (_, q) = get_json(&client, &base, &srv.token_a, "/v1/queue").await;
    let queued = q["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "transcribe" && j["state"] == "queued")
        .unwrap()["count"]
        .clone();
    assert_eq!(queued, 500 - WORKERS as u64);
    upload_segment(
        &client,
        &base,
        &srv.token_a,
        "b-meeting",
        "me",
        0,
        0,
        &b_file,
        b_len,
    )
    .await;
    engine.open.store(true, Ordering::SeqCst);
    eventually(Duration::from_secs(20), "B transcribed", || async {
        let (_, s) = get_json(&client, &base, &srv.token_a, "/v1/recordings/b-meeting").await;
        (s["processing"]["transcribed"] == 1).then_some(())
    })
    .await;
    let calls = engine.calls.lock().unwrap().clone();
    let b_at = calls.iter().position(|l| *l == b_len).unwrap();
    assert_eq!(b_at, WORKERS, "calls before B: {:?}", &calls[..b_at]);
}

/// Stop-to-notes of a 3-hour meeting (360 segments of 30 s, transcribed and summarized while
/// it was "recording") against a 3-minute one, with a fixed-latency engine.
#[tokio::test(flavor = "multi_thread")]
async fn meeting_end_latency_does_not_grow_with_meeting_length() {
    let latency = Duration::from_millis(1500);
    let srv = Srv::start_with(move |c| {
        with_engines(c, Arc::new(FixedLatency::new(latency)));
        c.processing.workers = 32;
        c.processing.transcribe_limits.concurrency = 32;
        c.processing.transcribe_limits.requests_per_minute = 100_000.0;
    })
    .await;
    let (base, client) = (srv.base.clone(), srv.client.clone());
    // Four different 30 s files in turn, so consecutive segments say different things.
    let files: Vec<(Vec<u8>, u64)> = (0..4).map(|i| segment("x", "me", i, 1500)).collect();
    let len = files[0].1;
    assert_eq!(len, 30 * 48_000);

    let mut latencies = Vec::new();
    for (id, segments) in [("short", 6u64), ("long", 360u64)] {
        create_recording(&client, &base, &srv.token_a, id, &["me"]).await;
        for seq in 0..segments - 1 {
            let file = &files[(seq % 4) as usize].0;
            upload_segment(
                &client,
                &base,
                &srv.token_a,
                id,
                "me",
                seq,
                seq * len,
                file,
                len,
            )
            .await;
        }
        let status_path = format!("/v1/recordings/{id}");
        // "Recording": everything so far is transcribed and summarized before the stop.
        let expected_windows = (segments - 1) * 30 / 600;
        eventually(Duration::from_secs(300), "caught up", || async {
            let (_, s) = get_json(&client, &base, &srv.token_a, &status_path).await;
            let p = &s["processing"];
            (p["transcribed"] == segments - 1 && p["notes_version"] == expected_windows)
                .then_some(())
        })
        .await;
        let last = segments - 1;
        let file = &files[(last % 4) as usize].0;
        upload_segment(
            &client,
            &base,
            &srv.token_a,
            id,
            "me",
            last,
            last * len,
            file,
            len,
        )
        .await;
        stop_recording(&client, &base, &srv.token_a, id, json!({ "me": last })).await;
        let notes_path = format!("/v1/recordings/{id}/notes");
        let notes = eventually(Duration::from_secs(60), "final notes", || async {
            let (_, n) = get_json(&client, &base, &srv.token_a, &notes_path).await;
            (n["is_final"] == true).then_some(n)
        })
        .await;
        assert_eq!(notes["outcome"], "ready");
        assert_eq!(notes["covers_until_ms"], segments * 30_000);
        let (_, s) = get_json(&client, &base, &srv.token_a, &status_path).await;
        let ms = s["processing"]["stop_to_notes_ms"].as_i64().unwrap();
        latencies.push(ms);
        assert_eq!(
            count_rows(srv.dir.path(), "transcripts", id),
            segments as i64
        );
        // Every model call's input is bounded: rolling windows of 10 minutes, then the rest.
        assert_eq!(
            count_rows(srv.dir.path(), "notes", id),
            expected_windows as i64 + 1
        );
    }
    let (short, long) = (latencies[0], latencies[1]);
    eprintln!("stop-to-notes: 3 min meeting {short} ms, 3 h meeting {long} ms");
    assert!(short >= latency.as_millis() as i64 - 50, "{short}");
    assert!(
        long as f64 <= short as f64 * 1.2,
        "3 h meeting took {long} ms to notes, 3 min took {short} ms"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_valid_prometheus_text_and_need_the_metrics_token() {
    let srv = Srv::start_with(|c| {
        with_engines(c, Arc::new(FixedLatency::new(Duration::ZERO)));
        c.metrics_token = Some("scrape-me".into());
    })
    .await;
    let (base, client) = (srv.base.clone(), srv.client.clone());
    create_recording(&client, &base, &srv.token_a, "m", &["me"]).await;
    let (file, len) = segment("m", "me", 0, 50);
    upload_segment(&client, &base, &srv.token_a, "m", "me", 0, 0, &file, len).await;
    upload_segment(&client, &base, &srv.token_a, "m", "me", 1, len, &file, len).await;
    eventually(Duration::from_secs(20), "transcribed", || async {
        let (_, s) = get_json(&client, &base, &srv.token_a, "/v1/recordings/m").await;
        (s["processing"]["transcribed"] == 2).then_some(())
    })
    .await;
    for token in [None, Some(srv.token_a.as_str()), Some("wrong")] {
        let mut r = client.get(format!("{base}/metrics"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        assert_eq!(r.send().await.unwrap().status(), 401, "{token:?}");
    }
    let r = client
        .get(format!("{base}/metrics"))
        .bearer_auth("scrape-me")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "content-type"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    for line in [
        "chronote_jobs{kind=\"transcribe\",state=\"done\"} 2",
        "chronote_jobs{kind=\"transcribe\",state=\"queued\"} 0",
        "chronote_uploads_total 2",
        &format!("chronote_upload_bytes_total {}", 2 * file.len()),
        "chronote_job_duration_seconds_count{engine=\"fixed-latency\",kind=\"transcribe\"} 2",
        "chronote_meeting_lag_seconds{meeting=\"1/m\"} 0",
        "chronote_meeting_backlog_segments{meeting=\"1/m\"} 0",
        "chronote_active_meetings 1",
        "chronote_oldest_queued_job_age_seconds 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    let promtool = std::path::Path::new("/usr/bin/promtool");
    assert!(
        promtool.exists(),
        "promtool is missing: install the Debian package `prometheus` (make deps does)"
    );
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The queue JSON, owner-scoped.
    let (status, q) = get_json(&client, &base, &srv.token_a, "/v1/queue").await;
    assert_eq!(status, 200);
    assert_eq!(q["meetings"][0]["recording_id"], "m");
    assert_eq!(q["meetings"][0]["transcribed"], 2);
    assert_eq!(q["meetings"][0]["backlog"], 0);
    let (status, _) = get_json(&client, &base, "nope", "/v1/queue").await;
    assert_eq!(status, 401);
}
