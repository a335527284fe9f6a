//! The OpenAI-compatible chat summarizer against a scripted HTTP server on loopback: what it
//! sends, and how each fault a real provider can produce (429 with both Retry-After forms, 5xx,
//! a server slower than the timeout, refused connections, garbage bodies, 4xx) maps to an
//! error. The faults are injected because no real server produces them on demand.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chronote_assemble::{Utterance, render_text};
use chronote_summarize::{
    Notes, OpenAiChatConfig, OpenAiChatSummarizer, SummarizeError, SummarizeRequest, Summarizer,
};
use serde_json::{Value, json};

/// One request as the scripted server saw it.
#[derive(Debug, Clone)]
struct Seen {
    authorization: Option<String>,
    content_type: Option<String>,
    body: Value,
}

type Log = Arc<Mutex<Vec<Seen>>>;

const NOTES_JSON: &str = r#"{"summary":"Alice opened the launch planning. Bob reported on the vendor contract.","key_points":["The launch depends on the vendor contract"],"decisions":["Move the launch to May"],"action_items":["Alice: The design team will send the budget by Friday"]}"#;

fn completion(content: &str) -> String {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "test-model",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop"
        }]
    })
    .to_string()
}

async fn handler(
    State(log): State<Log>,
    Path(case): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    log.lock().unwrap().push(Seen {
        authorization: text(header::AUTHORIZATION),
        content_type: text(header::CONTENT_TYPE),
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
    });
    let json_type = [(header::CONTENT_TYPE, "application/json")];
    match case.as_str() {
        "ok" => (json_type, completion(NOTES_JSON)).into_response(),
        "fenced" => (
            json_type,
            completion(&format!("```json\n{NOTES_JSON}\n```")),
        )
            .into_response(),
        "partial" => (json_type, completion(r#"{"summary":"Only a summary."}"#)).into_response(),
        "429-seconds" => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "7")],
            r#"{"error":{"message":"Rate limit reached"}}"#,
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
        "401" => (
            StatusCode::UNAUTHORIZED,
            r#"{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error"}}"#,
        )
            .into_response(),
        "400" => (
            StatusCode::BAD_REQUEST,
            r#"{"error":{"message":"This model's maximum context length is 8192 tokens."}}"#,
        )
            .into_response(),
        "garbage-html" => (
            [(header::CONTENT_TYPE, "text/html")],
            "<html>gateway</html>",
        )
            .into_response(),
        "garbage-no-choices" => (json_type, r#"{"object":"list","data":[]}"#).into_response(),
        "garbage-prose" => (
            json_type,
            completion("Here are your notes: the meeting went well."),
        )
            .into_response(),
        "garbage-types" => (
            json_type,
            completion(r#"{"summary":"S.","key_points":"one point"}"#),
        )
            .into_response(),
        "garbage-truncated" => (
            json_type,
            completion(r#"{"summary":"The meeting was about"#),
        )
            .into_response(),
        "slow" => {
            // Answers, but only after the client's timeout has passed.
            tokio::time::sleep(Duration::from_secs(3)).await;
            (json_type, completion(NOTES_JSON)).into_response()
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
        .route("/{case}/v1/chat/completions", post(handler))
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        base: format!("http://{addr}"),
        log,
    }
}

fn summarizer(base: String, timeout: Duration) -> OpenAiChatSummarizer {
    OpenAiChatSummarizer::new(OpenAiChatConfig {
        base_url: base,
        api_key: Some("sk-test-key".into()),
        model: "test-model".into(),
        timeout,
        ..OpenAiChatConfig::default()
    })
    .unwrap()
}

fn say(start_ms: u64, speaker: &str, text: &str) -> Utterance {
    Utterance {
        start_ms,
        end_ms: start_ms + 4_000,
        track: speaker.to_lowercase(),
        speaker: speaker.into(),
        text: text.into(),
    }
}

fn previous() -> Notes {
    Notes {
        summary: "Alice opened the launch planning.".into(),
        key_points: vec!["The launch depends on the vendor contract".into()],
        decisions: vec!["Move the launch to May".into()],
        action_items: vec!["Alice: The design team will send the budget by Friday".into()],
    }
}

fn request() -> SummarizeRequest {
    SummarizeRequest {
        previous: Some(previous()),
        window: vec![
            say(605_000, "Bob", "The vendor contract was signed yesterday."),
            say(3_725_000, "Carol", "Let's go with the blue design."),
        ],
        is_final: false,
    }
}

async fn run(s: &Server, case: &str) -> Result<Notes, SummarizeError> {
    summarizer(format!("{}/{case}", s.base), Duration::from_secs(5))
        .summarize(request())
        .await
}

fn expected_notes() -> Notes {
    Notes {
        summary: "Alice opened the launch planning. Bob reported on the vendor contract.".into(),
        key_points: vec!["The launch depends on the vendor contract".into()],
        decisions: vec!["Move the launch to May".into()],
        action_items: vec!["Alice: The design team will send the budget by Friday".into()],
    }
}

#[tokio::test]
async fn sends_a_chat_request_and_parses_the_notes() {
    let s = server().await;
    let notes = run(&s, "ok").await.unwrap();
    assert_eq!(notes, expected_notes());

    let seen = s.log.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.authorization.as_deref(), Some("Bearer sk-test-key"));
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(r.body["model"], "test-model");
    assert_eq!(r.body["response_format"], json!({"type": "json_object"}));
    assert_eq!(r.body["temperature"], 0.0);
    let messages = r.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], "system");
    let system = messages[0]["content"].as_str().unwrap();
    for field in [
        "\"summary\"",
        "\"key_points\"",
        "\"decisions\"",
        "\"action_items\"",
    ] {
        assert!(system.contains(field), "system prompt names {field}");
    }
    assert_eq!(messages[1]["role"], "user");
    let user = messages[1]["content"].as_str().unwrap();
    assert!(
        user.contains(
            "[00:10:05] Bob: The vendor contract was signed yesterday.\n\
             [01:02:05] Carol: Let's go with the blue design.\n"
        ),
        "{user}"
    );
    assert!(user.ends_with(&render_text(&request().window)), "{user}");
    assert!(
        user.contains(&serde_json::to_string(&previous()).unwrap()),
        "the previous notes go in as JSON: {user}"
    );
    assert!(user.contains("still going"), "{user}");
}

#[tokio::test]
async fn the_first_and_the_final_call_say_so_and_no_key_is_sent_when_none_is_set() {
    let s = server().await;
    let local = OpenAiChatSummarizer::new(OpenAiChatConfig {
        base_url: format!("{}/partial/v1/", s.base),
        api_key: None,
        model: "llama-3.2-3b".into(),
        timeout: Duration::from_secs(5),
        temperature: None,
        ..OpenAiChatConfig::default()
    })
    .unwrap();
    let notes = local
        .summarize(SummarizeRequest {
            previous: None,
            is_final: true,
            ..request()
        })
        .await
        .unwrap();
    // Missing fields are empty.
    assert_eq!(
        notes,
        Notes {
            summary: "Only a summary.".into(),
            ..Notes::default()
        }
    );
    let seen = s.log.lock().unwrap().clone();
    assert_eq!(seen[0].authorization, None);
    assert_eq!(seen[0].body["model"], "llama-3.2-3b");
    assert_eq!(seen[0].body.get("temperature"), None);
    let user = seen[0].body["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains("Notes so far: none"), "{user}");
    assert!(user.contains("The meeting has ended"), "{user}");
}

#[tokio::test]
async fn a_fenced_json_answer_is_accepted() {
    let s = server().await;
    assert_eq!(run(&s, "fenced").await.unwrap(), expected_notes());
}

#[tokio::test]
async fn an_empty_window_costs_no_request() {
    let s = server().await;
    let e = summarizer(format!("{}/ok", s.base), Duration::from_secs(5));
    let notes = e
        .summarize(SummarizeRequest {
            window: vec![],
            ..request()
        })
        .await
        .unwrap();
    assert_eq!(notes, previous());
    let notes = e
        .summarize(SummarizeRequest {
            previous: None,
            window: vec![],
            is_final: true,
        })
        .await
        .unwrap();
    assert!(notes.is_empty());
    assert!(s.log.lock().unwrap().is_empty());
    assert_eq!(e.name(), "openai");
}

#[tokio::test]
async fn rate_limits_carry_retry_after_in_both_forms() {
    let s = server().await;
    match run(&s, "429-seconds").await {
        Err(SummarizeError::RateLimited { retry_after }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)))
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    match run(&s, "429-date").await {
        Err(SummarizeError::RateLimited {
            retry_after: Some(d),
        }) => {
            // An HTTP date has whole seconds, and time passes between formatting and reading.
            assert!(
                d <= Duration::from_secs(30) && d >= Duration::from_secs(28),
                "retry_after {d:?} should be about 30 s"
            );
        }
        other => panic!("expected RateLimited with a delay, got {other:?}"),
    }
    match run(&s, "429-bare").await {
        Err(SummarizeError::RateLimited { retry_after }) => assert_eq!(retry_after, None),
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

fn transient(r: Result<Notes, SummarizeError>) -> String {
    match r {
        Err(e @ SummarizeError::Transient(_)) => {
            assert!(e.is_retryable());
            e.to_string()
        }
        other => panic!("expected Transient, got {other:?}"),
    }
}

fn permanent(r: Result<Notes, SummarizeError>) -> String {
    match r {
        Err(e @ SummarizeError::Permanent(_)) => {
            assert!(!e.is_retryable());
            e.to_string()
        }
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
    let m = permanent(run(&s, "401").await);
    assert!(
        m.contains("401 Unauthorized") && m.contains("Incorrect API key provided."),
        "{m}"
    );
    let m = permanent(run(&s, "400").await);
    assert!(
        m.contains("400 Bad Request") && m.contains("maximum context length"),
        "{m}"
    );
    let m = permanent(run(&s, "no-such-case").await);
    assert!(m.contains("404"), "{m}");
}

#[tokio::test]
async fn garbage_from_a_200_is_transient_and_says_what_is_wrong() {
    let s = server().await;
    for (case, reason) in [
        ("garbage-html", "invalid JSON"),
        ("garbage-no-choices", "no choices[0].message.content"),
        ("garbage-prose", "message content is not JSON"),
        ("garbage-types", "\"key_points\" is not an array"),
        ("garbage-truncated", "message content is not JSON"),
    ] {
        let m = transient(run(&s, case).await);
        assert!(
            m.contains("200 OK with a body that is not notes"),
            "{case}: {m}"
        );
        assert!(m.contains(reason), "{case}: {m} should say {reason}");
    }
}

#[tokio::test]
async fn a_server_slower_than_the_timeout_is_transient() {
    let s = server().await;
    let started = std::time::Instant::now();
    let r = summarizer(format!("{}/slow", s.base), Duration::from_millis(500))
        .summarize(request())
        .await;
    let m = transient(r);
    assert!(m.contains("timed out after 500ms"), "{m}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn refused_connections_are_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let m = transient(
        summarizer(format!("http://{addr}"), Duration::from_secs(5))
            .summarize(request())
            .await,
    );
    assert!(m.contains("could not connect"), "{m}");
}
