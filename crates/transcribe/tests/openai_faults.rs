//! The OpenAI-compatible engine against a scripted HTTP server on loopback: what the engine
//! sends, and how each fault a real provider can produce (429 with both Retry-After forms, 5xx,
//! a server that never answers, refused connections, garbage bodies, 4xx) maps to an error.
//! The faults are injected because no real server produces them on demand.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chronote_transcribe::openai::{OpenAiConfig, OpenAiTranscriber};
use chronote_transcribe::{TimedText, TranscribeError, TranscribeRequest, Transcriber};

/// One request as the scripted server saw it.
#[derive(Debug, Default, Clone)]
struct Seen {
    authorization: Option<String>,
    fields: Vec<(String, String)>,
    file_name: Option<String>,
    file_type: Option<String>,
    file: Vec<u8>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

const VERBOSE: &str = r#"{"task":"transcribe","language":"english","duration":3.5,
    "text":"The quick brown fox. Jumps over.",
    "segments":[{"id":0,"seek":0,"start":0.0,"end":1.98,"text":" The quick brown fox."},
                {"id":1,"seek":0,"start":1.98,"end":3.5,"text":" Jumps over."}]}"#;

async fn handler(
    State(log): State<Log>,
    Path(case): Path<String>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    let mut seen = Seen {
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        ..Seen::default()
    };
    while let Ok(Some(field)) = form.next_field().await {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            seen.file_name = field.file_name().map(str::to_string);
            seen.file_type = field.content_type().map(str::to_string);
            seen.file = field.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        } else {
            let value = field.text().await.unwrap_or_default();
            seen.fields.push((name, value));
        }
    }
    log.lock().unwrap().push(seen);

    match case.as_str() {
        "ok" => ([(header::CONTENT_TYPE, "application/json")], VERBOSE).into_response(),
        "plain" => (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"text":" Only text here. "}"#,
        )
            .into_response(),
        "429-seconds" => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "7")],
            "slow down",
        )
            .into_response(),
        "429-date" => {
            let when = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, when)],
                "",
            )
                .into_response()
        }
        "429-bare" => StatusCode::TOO_MANY_REQUESTS.into_response(),
        "500" => (StatusCode::INTERNAL_SERVER_ERROR, "model crashed").into_response(),
        "503" => (
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"error":{"message":"The server is overloaded."}}"#,
        )
            .into_response(),
        "400" => (
            StatusCode::BAD_REQUEST,
            r#"{"error":{"message":"Invalid file format.","type":"invalid_request_error"}}"#,
        )
            .into_response(),
        "401" => (StatusCode::UNAUTHORIZED, r#"{"detail":"bad key"}"#).into_response(),
        "garbage-html" => (
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>gateway</body></html>",
        )
            .into_response(),
        "garbage-json" => r#"{"object":"list","data":[]}"#.into_response(),
        "garbage-truncated" => r#"{"text":"The quick","segments":[{"start":0.0,"#.into_response(),
        "hang" => {
            // Never answers: the engine's own timeout must end the request.
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

struct Server {
    base: String,
    log: Log,
}

async fn server() -> Server {
    let log: Log = Arc::default();
    let app = Router::new()
        .route("/{case}/v1/audio/transcriptions", post(handler))
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        base: format!("http://{addr}"),
        log,
    }
}

fn engine(base: String, timeout: Duration) -> OpenAiTranscriber {
    OpenAiTranscriber::new(OpenAiConfig {
        base_url: base,
        api_key: Some("sk-test-key".into()),
        model: "whisper-1".into(),
        timeout,
    })
    .unwrap()
}

fn request() -> TranscribeRequest {
    TranscribeRequest {
        audio: bytes::Bytes::from_static(b"OggS not really opus, the server does not care"),
        length_48k: 48_000 * 3,
        language: Some("en".into()),
        prompt: Some("previous words".into()),
    }
}

async fn run(s: &Server, case: &str) -> Result<chronote_transcribe::Transcript, TranscribeError> {
    engine(format!("{}/{case}", s.base), Duration::from_secs(5))
        .transcribe(request())
        .await
}

#[tokio::test]
async fn sends_the_openai_form_and_parses_verbose_json() {
    let s = server().await;
    let t = run(&s, "ok").await.unwrap();
    assert_eq!(
        t.spans,
        vec![
            TimedText {
                start_ms: 0,
                end_ms: 1980,
                text: "The quick brown fox.".into()
            },
            TimedText {
                start_ms: 1980,
                end_ms: 3500,
                text: "Jumps over.".into()
            },
        ]
    );
    assert_eq!(t.language.as_deref(), Some("en"));

    let seen = s.log.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.authorization.as_deref(), Some("Bearer sk-test-key"));
    let mut fields = r.fields.clone();
    fields.sort();
    let want: Vec<(String, String)> = [
        ("language", "en"),
        ("model", "whisper-1"),
        ("model_name", "whisper-1"),
        ("prompt", "previous words"),
        ("response_format", "verbose_json"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(fields, want);
    assert_eq!(r.file_name.as_deref(), Some("segment.ogg"));
    assert_eq!(r.file_type.as_deref(), Some("audio/ogg"));
    assert_eq!(r.file, request().audio.to_vec());
}

#[tokio::test]
async fn no_key_no_language_no_prompt_are_left_out() {
    let s = server().await;
    let e = OpenAiTranscriber::new(OpenAiConfig {
        base_url: format!("{}/plain/v1/", s.base),
        api_key: None,
        model: "Systran/faster-whisper-tiny.en".into(),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    let t = e
        .transcribe(TranscribeRequest {
            language: None,
            prompt: Some("  ".into()),
            ..request()
        })
        .await
        .unwrap();
    assert_eq!(t.text(), "Only text here.");
    assert_eq!(t.language, None);
    let seen = s.log.lock().unwrap().clone();
    assert_eq!(seen[0].authorization, None);
    let mut names: Vec<&str> = seen[0].fields.iter().map(|(k, _)| k.as_str()).collect();
    names.sort();
    assert_eq!(names, ["model", "model_name", "response_format"]);
}

#[tokio::test]
async fn rate_limits_carry_retry_after_in_both_forms() {
    let s = server().await;
    match run(&s, "429-seconds").await {
        Err(TranscribeError::RateLimited { retry_after }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)))
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    match run(&s, "429-date").await {
        Err(TranscribeError::RateLimited {
            retry_after: Some(d),
        }) => {
            // An HTTP date has whole seconds, and some time passes between the server
            // formatting it and the client reading it.
            assert!(
                d <= Duration::from_secs(30) && d >= Duration::from_secs(28),
                "retry_after {d:?} should be about 30 s"
            );
        }
        other => panic!("expected RateLimited with a delay, got {other:?}"),
    }
    match run(&s, "429-bare").await {
        Err(TranscribeError::RateLimited { retry_after }) => assert_eq!(retry_after, None),
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

fn transient(r: Result<chronote_transcribe::Transcript, TranscribeError>) -> String {
    match r {
        Err(TranscribeError::Transient(m)) => m,
        other => panic!("expected Transient, got {other:?}"),
    }
}

fn permanent(r: Result<chronote_transcribe::Transcript, TranscribeError>) -> String {
    match r {
        Err(TranscribeError::Permanent(m)) => m,
        other => panic!("expected Permanent, got {other:?}"),
    }
}

#[tokio::test]
async fn server_errors_are_transient() {
    let s = server().await;
    let m = transient(run(&s, "500").await);
    assert!(
        m.contains("500 Internal Server Error") && m.contains("model crashed"),
        "{m}"
    );
    let m = transient(run(&s, "503").await);
    assert!(
        m.contains("503") && m.contains("The server is overloaded."),
        "{m}"
    );
}

#[tokio::test]
async fn client_errors_are_permanent_with_the_providers_message() {
    let s = server().await;
    let m = permanent(run(&s, "400").await);
    assert!(
        m.contains("400 Bad Request") && m.contains("Invalid file format."),
        "{m}"
    );
    let m = permanent(run(&s, "401").await);
    assert!(m.contains("401") && m.contains("bad key"), "{m}");
    let m = permanent(run(&s, "no-such-case").await);
    assert!(m.contains("404"), "{m}");
}

#[tokio::test]
async fn garbage_from_a_200_is_transient_and_says_so() {
    let s = server().await;
    for (case, quoted) in [
        ("garbage-html", "<html><body>gateway</body></html>"),
        ("garbage-json", "\\\"object\\\":\\\"list\\\""),
        ("garbage-truncated", "{\\\"text\\\":\\\"The quick\\\""),
    ] {
        let m = transient(run(&s, case).await);
        assert!(
            m.contains("200 OK with a body that is not a verbose_json transcription"),
            "{case}: {m}"
        );
        assert!(m.contains(quoted), "{case}: {m} should quote {quoted}");
    }
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let s = server().await;
    let started = std::time::Instant::now();
    let r = engine(format!("{}/hang", s.base), Duration::from_millis(700))
        .transcribe(request())
        .await;
    let m = transient(r);
    assert!(m.contains("timed out after 700ms"), "{m}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn refused_connections_are_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let m = transient(
        engine(format!("http://{addr}"), Duration::from_secs(5))
            .transcribe(request())
            .await,
    );
    assert!(m.contains("could not connect"), "{m}");
}
