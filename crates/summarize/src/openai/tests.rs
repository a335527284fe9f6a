use super::*;
use reqwest::header::HeaderValue;

fn utterance(start_ms: u64, speaker: &str, text: &str) -> Utterance {
    Utterance {
        start_ms,
        end_ms: start_ms + 1000,
        track: speaker.to_lowercase(),
        speaker: speaker.into(),
        text: text.into(),
    }
}

#[test]
fn endpoint_accepts_root_and_v1_base() {
    for base in [
        "http://127.0.0.1:8080",
        "http://127.0.0.1:8080/",
        "http://127.0.0.1:8080/v1",
        " http://127.0.0.1:8080/v1/ ",
    ] {
        assert_eq!(
            endpoint(base).map(|u| u.to_string()).ok().as_deref(),
            Some("http://127.0.0.1:8080/v1/chat/completions"),
            "{base}"
        );
    }
    assert!(matches!(
        endpoint("ftp://example.com"),
        Err(SummarizeError::Permanent(m)) if m.contains("not http or https")
    ));
    assert!(matches!(
        endpoint("no url"),
        Err(SummarizeError::Permanent(m)) if m.contains("not a valid URL")
    ));
}

#[test]
fn retry_after_reads_seconds_and_dates() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut h = HeaderMap::new();
    assert_eq!(retry_after(&h, now), None);
    h.insert(RETRY_AFTER, HeaderValue::from_static("12"));
    assert_eq!(retry_after(&h, now), Some(Duration::from_secs(12)));
    let later = httpdate::fmt_http_date(now + Duration::from_secs(45));
    h.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
    assert_eq!(retry_after(&h, now), Some(Duration::from_secs(45)));
    let earlier = httpdate::fmt_http_date(now - Duration::from_secs(5));
    h.insert(RETRY_AFTER, HeaderValue::from_str(&earlier).unwrap());
    assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
    h.insert(RETRY_AFTER, HeaderValue::from_static("later"));
    assert_eq!(retry_after(&h, now), None);
}

#[test]
fn notes_parse_strictly() {
    let full = r#"{"summary":" We met. ","key_points":["a"],"decisions":["b"],"action_items":["Bob: c"],"extra":1}"#;
    assert_eq!(
        parse_notes(full),
        Ok(Notes {
            summary: "We met.".into(),
            key_points: vec!["a".into()],
            decisions: vec!["b".into()],
            action_items: vec!["Bob: c".into()],
        })
    );
    assert_eq!(
        parse_notes(r#"{"summary":"Only this.","decisions":null}"#),
        Ok(Notes {
            summary: "Only this.".into(),
            ..Notes::default()
        })
    );
    assert_eq!(parse_notes("{}"), Ok(Notes::default()));
    for (content, want) in [
        (r#"{"summary":["x"]}"#, "\"summary\" is not a string"),
        (r#"{"key_points":"x"}"#, "\"key_points\" is not an array"),
        (
            r#"{"action_items":["x", 3]}"#,
            "\"action_items\" has an item that is not a string",
        ),
        (r#"["summary"]"#, "not a JSON object"),
        ("Here are the notes: none", "not JSON"),
        ("", "not JSON"),
    ] {
        let err = parse_notes(content).unwrap_err();
        assert!(err.contains(want), "{content}: {err}");
    }
}

#[test]
fn fenced_json_is_accepted() {
    let want = Notes {
        summary: "S.".into(),
        ..Notes::default()
    };
    for content in [
        "```json\n{\"summary\":\"S.\"}\n```",
        "  ```\n{\"summary\":\"S.\"}\n```\n",
        "```{\"summary\":\"S.\"}```",
        "```JSON\n{\"summary\":\"S.\"}```",
    ] {
        assert_eq!(parse_notes(content), Ok(want.clone()), "{content:?}");
    }
    assert!(parse_notes("```json\n{\"summary\":\"S.\"}").is_err());
}

#[test]
fn completions_need_a_string_content() {
    assert_eq!(
        parse_completion(
            br#"{"choices":[{"message":{"role":"assistant","content":"{\"summary\":\"x\"}"}}]}"#
        ),
        Ok(Notes {
            summary: "x".into(),
            ..Notes::default()
        })
    );
    for (body, want) in [
        (&br#"{"choices":[]}"#[..], "no choices[0].message.content"),
        (
            br#"{"choices":[{"message":{"content":null}}]}"#,
            "not a string",
        ),
        (b"<html>", "invalid JSON"),
    ] {
        let err = parse_completion(body).unwrap_err();
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn window_text_keeps_the_end_within_budget() {
    let window: Vec<Utterance> = (0..10)
        .map(|i| utterance(i * 1000, "Alice", &format!("line number {i}")))
        .collect();
    let full = render_text(&window);
    assert_eq!(window_text(&window, full.chars().count()), full);
    let line_len = "[00:00:00] Alice: line number 0\n".len();
    let marker_len =
        "[... 10 earlier lines and the start of the next left out to fit the prompt budget ...]\n"
            .len();
    let cut = window_text(&window, marker_len + 3 * line_len + 5);
    assert_eq!(
        cut,
        "[... 7 earlier lines of this window left out to fit the prompt budget ...]\n\
         [00:00:07] Alice: line number 7\n\
         [00:00:08] Alice: line number 8\n\
         [00:00:09] Alice: line number 9\n"
    );
    assert!(cut.chars().count() <= marker_len + 3 * line_len + 5);

    let long = vec![utterance(0, "Bob", "word ".repeat(100).trim())];
    let cut = window_text(&long, 300);
    assert!(
        cut.starts_with("[... 0 earlier lines and the start of the next left out"),
        "{cut}"
    );
    assert!(cut.ends_with("word\n"), "{cut}");
    assert!(cut.chars().count() <= 300, "{}", cut.chars().count());
}

#[test]
fn prompt_is_bounded_whatever_the_previous_notes() {
    let s = OpenAiChatSummarizer::new(OpenAiChatConfig {
        base_url: "http://127.0.0.1:9".into(),
        max_window_chars: 1_000,
        ..OpenAiChatConfig::default()
    })
    .unwrap();
    let huge = Notes {
        summary: "blah ".repeat(100_000),
        key_points: vec!["point".repeat(1_000); 1_000],
        decisions: (0..1_000).map(|i| format!("decision {i}")).collect(),
        action_items: (0..1_000).map(|i| format!("action {i}")).collect(),
    };
    let window: Vec<Utterance> = (0..1_000)
        .map(|i| {
            utterance(
                i * 1000,
                "Alice",
                "a fairly long line of speech that goes on",
            )
        })
        .collect();
    let body = s.request_body(&SummarizeRequest {
        previous: Some(huge),
        window,
        is_final: false,
    });
    let size = body.to_string().len();
    assert!(size < 20_000, "request body is {size} bytes");
    let user = body["messages"][1]["content"].as_str().unwrap();
    assert!(
        user.contains("\"decision 999\""),
        "keeps the newest decisions"
    );
    assert!(!user.contains("\"decision 979\""), "drops beyond the cap");
    assert!(user.contains("[00:16:39] Alice: a fairly long line"));
}

#[test]
fn config_checks_and_hides_the_key() {
    let c = OpenAiChatConfig {
        api_key: Some("sk-secret".into()),
        ..OpenAiChatConfig::default()
    };
    let shown = format!("{c:?}");
    assert!(!shown.contains("sk-secret") && shown.contains("<set>"));
    for (bad, want) in [
        (
            OpenAiChatConfig {
                model: "".into(),
                ..OpenAiChatConfig::default()
            },
            "model name",
        ),
        (
            OpenAiChatConfig {
                timeout: Duration::ZERO,
                ..OpenAiChatConfig::default()
            },
            "timeout",
        ),
        (
            OpenAiChatConfig {
                max_window_chars: 10,
                ..OpenAiChatConfig::default()
            },
            "window budget",
        ),
    ] {
        assert!(
            matches!(OpenAiChatSummarizer::new(bad), Err(SummarizeError::Permanent(m)) if m.contains(want)),
            "{want}"
        );
    }
}

#[test]
fn error_messages_prefer_the_providers_text() {
    assert_eq!(
        error_message(br#"{"error":{"message":"Incorrect API key provided."}}"#),
        "Incorrect API key provided."
    );
    assert_eq!(error_message(br#"{"detail":"nope"}"#), "nope");
    assert_eq!(error_message(b""), "empty body");
    assert_eq!(error_message(b"bad\ngateway"), "\"bad gateway\"");
}
