//! Provider faults through the real OpenAI-compatible engine over HTTP: a scripted
//! transcription server on loopback answers 429 with Retry-After, 500, garbage, or nothing in
//! time, and the scheduler retries, pauses, gives up, and never stores a result twice. The
//! faults are injected because no real provider produces them on demand.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chronote_server::ServerConfig;
use chronote_summarize::ExtractiveSummarizer;
use chronote_transcribe::openai::{OpenAiConfig, OpenAiTranscriber};
use common::*;
use serde_json::json;

#[derive(Debug, Clone, Copy)]
enum Fault {
    RateLimited,
    ServerError,
    Garbage,
    Hang,
    BadRequest,
    Ok(&'static str),
}

#[derive(Default)]
struct Script {
    faults: VecDeque<Fault>,
    /// What to answer once the script ran out.
    then: Option<Fault>,
    /// (arrival, request body) of every request.
    seen: Vec<(Instant, Vec<u8>)>,
}

type Shared = Arc<Mutex<Script>>;

async fn transcriptions(State(script): State<Shared>, body: Bytes) -> Response {
    let fault = {
        let mut s = script.lock().unwrap();
        s.seen.push((Instant::now(), body.to_vec()));
        let next = s.faults.pop_front();
        next.or(s.then).unwrap_or(Fault::ServerError)
    };
    match fault {
        Fault::RateLimited => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            r#"{"error":{"message":"slow down"}}"#,
        )
            .into_response(),
        Fault::ServerError => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        Fault::Garbage => (StatusCode::OK, "<html>proxy error</html>").into_response(),
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (StatusCode::OK, "late").into_response()
        }
        Fault::BadRequest => (
            StatusCode::BAD_REQUEST,
            r#"{"error":{"message":"unsupported audio"}}"#,
        )
            .into_response(),
        Fault::Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"text": text, "language": "english",
                   "segments": [{"id": 0, "start": 0.0, "end": 0.9, "text": format!(" {text}")}]})
            .to_string(),
        )
            .into_response(),
    }
}

async fn provider(script: Shared) -> String {
    let app = Router::new()
        .route("/v1/audio/transcriptions", post(transcriptions))
        .with_state(script);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn configure(c: &mut ServerConfig, base_url: String) {
    let engine = OpenAiTranscriber::new(OpenAiConfig {
        base_url,
        api_key: Some("sk-test".into()),
        model: "whisper-1".into(),
        timeout: Duration::from_secs(1),
    })
    .unwrap();
    c.processing.transcriber = Some(Arc::new(engine));
    c.processing.summarizer = Some(Arc::new(ExtractiveSummarizer::new()));
    c.processing.workers = 1;
    c.processing.max_attempts = 5;
    c.processing.retry_base = Duration::from_millis(100);
    c.processing.poll = Duration::from_millis(50);
    c.processing.finalize_deadline = Duration::from_millis(500);
}

fn job_attempts(data: &std::path::Path, recording: &str, seq: u64) -> (String, i64) {
    let conn = rusqlite::Connection::open(data.join("server.db")).unwrap();
    conn.query_row(
        "SELECT state, attempts FROM jobs WHERE kind = 'transcribe' AND recording_id = ?1
         AND sequence = ?2",
        rusqlite::params![recording, seq as i64],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

async fn metrics_text(client: &reqwest::Client, base: &str) -> String {
    let r = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_pauses_then_transient_faults_retry_to_exactly_one_transcript() {
    let script: Shared = Arc::default();
    script.lock().unwrap().faults = VecDeque::from([
        Fault::RateLimited,
        Fault::ServerError,
        Fault::Garbage,
        Fault::Hang,
        Fault::Ok("The quick brown fox."),
        Fault::Ok("Jumps over the lazy dog."),
    ]);
    let url = provider(script.clone()).await;
    let srv = Srv::start_with(|c| configure(c, url)).await;
    let (base, client) = (srv.base.clone(), srv.client.clone());
    create_recording(&client, &base, &srv.token_a, "f", &["me"]).await;
    let (file0, len) = segment("f", "me", 0, 50);
    let (file1, _) = segment("f", "me", 1, 50);
    upload_segment(&client, &base, &srv.token_a, "f", "me", 0, 0, &file0, len).await;
    eventually(Duration::from_secs(30), "segment 0 transcribed", || async {
        let (_, s) = get_json(&client, &base, &srv.token_a, "/v1/recordings/f").await;
        (s["processing"]["transcribed"] == 1).then_some(())
    })
    .await;
    // 429 (no attempt used), then 500, garbage and a timeout (three attempts), then success.
    assert_eq!(job_attempts(srv.dir.path(), "f", 0), ("done".into(), 4));
    {
        let s = script.lock().unwrap();
        assert_eq!(s.seen.len(), 5);
        let paused = s.seen[1].0 - s.seen[0].0;
        assert!(
            paused >= Duration::from_millis(950),
            "Retry-After: 1 honoured: {paused:?}"
        );
    }
    let text = metrics_text(&client, &base).await;
    for line in [
        "chronote_provider_rate_limited_total{provider=\"transcribe\"} 1",
        "chronote_provider_errors_total{provider=\"transcribe\",class=\"transient\"} 3",
        "chronote_job_duration_seconds_count{engine=\"openai\",kind=\"transcribe\"} 5",
    ] {
        assert!(has_line(&text, line), "missing {line:?} in\n{text}");
    }

    // The next segment's request carries the previous segment's last words.
    upload_segment(&client, &base, &srv.token_a, "f", "me", 1, len, &file1, len).await;
    eventually(Duration::from_secs(30), "segment 1 transcribed", || async {
        let (_, s) = get_json(&client, &base, &srv.token_a, "/v1/recordings/f").await;
        (s["processing"]["transcribed"] == 2).then_some(())
    })
    .await;
    {
        let s = script.lock().unwrap();
        let body = String::from_utf8_lossy(&s.seen[5].1).into_owned();
        assert!(
            body.contains("name=\"prompt\"\r\n\r\nThe quick brown fox.\r\n"),
            "{}",
            &body[..body.len().min(2000)]
        );
        let first = String::from_utf8_lossy(&s.seen[4].1).into_owned();
        assert!(
            !first.contains("name=\"prompt\""),
            "segment 0 has no previous words"
        );
    }
    let r = client
        .get(format!("{base}/v1/recordings/f/transcript?format=text"))
        .bearer_auth(&srv.token_a)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.text().await.unwrap(),
        "[00:00:00] me: The quick brown fox.\n[00:00:01] me: Jumps over the lazy dog.\n"
    );
    assert_eq!(count_rows(srv.dir.path(), "transcripts", "f"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_that_always_fails_makes_the_segment_dead_and_the_notes_partial() {
    let script: Shared = Arc::default();
    script.lock().unwrap().faults = VecDeque::from([Fault::Ok("Hello there.")]);
    script.lock().unwrap().then = Some(Fault::ServerError);
    let url = provider(script.clone()).await;
    let srv = Srv::start_with(|c| {
        configure(c, url);
        c.processing.max_attempts = 3;
    })
    .await;
    let (base, client) = (srv.base.clone(), srv.client.clone());
    create_recording(&client, &base, &srv.token_a, "d", &["me"]).await;
    let (file0, len) = segment("d", "me", 0, 50);
    let (file1, _) = segment("d", "me", 1, 50);
    upload_segment(&client, &base, &srv.token_a, "d", "me", 0, 0, &file0, len).await;
    eventually(Duration::from_secs(30), "segment 0 transcribed", || async {
        let (_, s) = get_json(&client, &base, &srv.token_a, "/v1/recordings/d").await;
        (s["processing"]["transcribed"] == 1).then_some(())
    })
    .await;
    upload_segment(&client, &base, &srv.token_a, "d", "me", 1, len, &file1, len).await;
    stop_recording(&client, &base, &srv.token_a, "d", json!({"me": 1})).await;
    let notes = eventually(Duration::from_secs(30), "final notes", || async {
        let (_, n) = get_json(&client, &base, &srv.token_a, "/v1/recordings/d/notes").await;
        (n["is_final"] == true).then_some(n)
    })
    .await;
    eventually(Duration::from_secs(30), "segment 1 given up", || async {
        let (_, s) = get_json(&client, &base, &srv.token_a, "/v1/recordings/d").await;
        (s["processing"]["failed"] == 1).then_some(())
    })
    .await;
    assert_eq!(job_attempts(srv.dir.path(), "d", 1), ("dead".into(), 3));
    assert_eq!(notes["outcome"], "partial");
    assert!(
        notes["notes"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("Partial notes: 1 of 2 segments could not be transcribed."),
        "{notes}"
    );
    let (_, s) = get_json(&client, &base, &srv.token_a, "/v1/recordings/d").await;
    assert_eq!(s["processing"]["failed"], 1);
    assert_eq!(s["processing"]["transcribed"], 1);
    let text = metrics_text(&client, &base).await;
    assert!(has_line(
        &text,
        "chronote_provider_errors_total{provider=\"transcribe\",class=\"transient\"} 3"
    ));
    assert!(has_line(
        &text,
        "chronote_jobs{kind=\"transcribe\",state=\"dead\"} 1"
    ));
    assert_eq!(script.lock().unwrap().seen.len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_request_is_not_retried() {
    let script: Shared = Arc::default();
    script.lock().unwrap().then = Some(Fault::BadRequest);
    let url = provider(script.clone()).await;
    let srv = Srv::start_with(|c| configure(c, url)).await;
    let (base, client) = (srv.base.clone(), srv.client.clone());
    create_recording(&client, &base, &srv.token_a, "p", &["me"]).await;
    let (file0, len) = segment("p", "me", 0, 50);
    upload_segment(&client, &base, &srv.token_a, "p", "me", 0, 0, &file0, len).await;
    eventually(Duration::from_secs(30), "segment given up", || async {
        let (_, s) = get_json(&client, &base, &srv.token_a, "/v1/recordings/p").await;
        (s["processing"]["failed"] == 1).then_some(())
    })
    .await;
    assert_eq!(job_attempts(srv.dir.path(), "p", 0), ("dead".into(), 1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(script.lock().unwrap().seen.len(), 1);
    let text = metrics_text(&client, &base).await;
    assert!(has_line(
        &text,
        "chronote_provider_errors_total{provider=\"transcribe\",class=\"permanent\"} 1"
    ));
}
