//! The OpenAI-compatible HTTP engine: `POST {base_url}/v1/audio/transcriptions`.
//!
//! Works against OpenAI itself and local servers speaking the same API (faster-whisper-server,
//! whisper.cpp's server, LocalAI). The segment is sent as it is stored, an Ogg Opus file, so no
//! decoding happens on our side.
//!
//! Error mapping, which a scheduler relies on:
//! - 429: [`TranscribeError::RateLimited`] with `Retry-After` (delta seconds or an HTTP date).
//! - 5xx, 408, timeouts, refused or cut connections: [`TranscribeError::Transient`].
//! - any other 4xx: [`TranscribeError::Permanent`], with the provider's error message; the same
//!   request would be refused again.
//! - a 2xx whose body is not a transcription ("garbage"): [`TranscribeError::Transient`]. A
//!   misbehaving proxy or an overloaded server is the usual cause and a retry often succeeds;
//!   the scheduler's attempt limit keeps a provider that always answers garbage from looping.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, RETRY_AFTER};
use reqwest::multipart::{Form, Part};
use serde::Deserialize;

use crate::{BoxFuture, TimedText, TranscribeError, TranscribeRequest, Transcriber, Transcript};

/// The most of a response body we read; a transcript of a few minutes of audio is a few kB.
const MAX_BODY: usize = 8 * 1024 * 1024;
/// How much of an unexpected body an error message quotes.
const QUOTE: usize = 200;

/// Where and how to reach an OpenAI-compatible transcription endpoint.
#[derive(Clone)]
pub struct OpenAiConfig {
    /// Server root, e.g. `https://api.openai.com` or `http://127.0.0.1:8000`. A trailing `/v1`
    /// is accepted too, since that is how OpenAI documents its base URL.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>` when set.
    pub api_key: Option<String>,
    /// Model name, e.g. `whisper-1`.
    pub model: String,
    /// Limit for one whole request (connect, upload, transcription, answer).
    pub timeout: Duration,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        OpenAiConfig {
            base_url: "https://api.openai.com".into(),
            api_key: None,
            model: "whisper-1".into(),
            timeout: Duration::from_secs(120),
        }
    }
}

impl std::fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key must never reach a log line.
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The OpenAI-compatible engine. Cheap to share: one connection pool for every request.
#[derive(Debug, Clone)]
pub struct OpenAiTranscriber {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    config: OpenAiConfig,
}

impl OpenAiTranscriber {
    /// Checks the configuration and builds the HTTP client.
    pub fn new(config: OpenAiConfig) -> Result<Self, TranscribeError> {
        let endpoint = endpoint(&config.base_url)?;
        if config.model.trim().is_empty() {
            return Err(TranscribeError::Permanent(
                "the transcription model name is empty".into(),
            ));
        }
        if config.timeout.is_zero() {
            return Err(TranscribeError::Permanent(
                "the transcription request timeout is zero".into(),
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| {
                TranscribeError::Permanent(format!("cannot build the HTTP client: {e}"))
            })?;
        Ok(OpenAiTranscriber {
            client,
            endpoint,
            config,
        })
    }

    /// The full URL requests go to.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    async fn run(&self, request: TranscribeRequest) -> Result<Transcript, TranscribeError> {
        let file = Part::stream(reqwest::Body::from(request.audio))
            .file_name("segment.ogg")
            .mime_str("audio/ogg")
            .map_err(|e| TranscribeError::Permanent(format!("multipart file part: {e}")))?;
        // faster-whisper-server 0.0.3 reads `model_name` instead of `model`; OpenAI ignores the
        // extra field.
        let mut form = Form::new()
            .text("model", self.config.model.clone())
            .text("model_name", self.config.model.clone())
            .text("response_format", "verbose_json");
        if let Some(language) = &request.language {
            form = form.text("language", language.clone());
        }
        if let Some(prompt) = request.prompt.as_ref().filter(|p| !p.trim().is_empty()) {
            form = form.text("prompt", prompt.clone());
        }
        form = form.part("file", file);

        let mut http = self.client.post(self.endpoint.clone()).multipart(form);
        if let Some(key) = &self.config.api_key {
            http = http.header(AUTHORIZATION, format!("Bearer {key}"));
        }
        let response = http.send().await.map_err(|e| self.send_error(&e))?;
        let status = response.status();
        let retry_after = retry_after(response.headers(), SystemTime::now());
        let body = read_body(response).await.map_err(|e| self.send_error(&e))?;

        if status == StatusCode::TOO_MANY_REQUESTS {
            tracing::warn!(endpoint = %self.endpoint, ?retry_after, "transcription provider rate limit");
            return Err(TranscribeError::RateLimited { retry_after });
        }
        if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
            return Err(TranscribeError::Transient(format!(
                "{} answered {status}: {}",
                self.endpoint,
                error_message(&body)
            )));
        }
        if !status.is_success() {
            return Err(TranscribeError::Permanent(format!(
                "{} refused the request with {status}: {}",
                self.endpoint,
                error_message(&body)
            )));
        }
        parse_verbose_json(&body, request.language.as_deref()).map_err(|reason| {
            TranscribeError::Transient(format!(
                "{} answered {status} with a body that is not a verbose_json transcription ({reason}): {}",
                self.endpoint,
                quote(&body)
            ))
        })
    }

    fn send_error(&self, e: &reqwest::Error) -> TranscribeError {
        let what = if e.is_timeout() {
            format!("timed out after {:?}", self.config.timeout)
        } else if e.is_connect() {
            "could not connect".to_string()
        } else {
            "request failed".to_string()
        };
        // reqwest's Display hides the cause (e.g. "connection refused"); walk the chain.
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            source = s.source();
        }
        TranscribeError::Transient(format!("{}: {what} ({detail})", self.endpoint))
    }
}

impl Transcriber for OpenAiTranscriber {
    fn name(&self) -> &str {
        "openai"
    }

    fn transcribe(
        &self,
        request: TranscribeRequest,
    ) -> BoxFuture<'_, Result<Transcript, TranscribeError>> {
        Box::pin(self.run(request))
    }
}

fn endpoint(base_url: &str) -> Result<reqwest::Url, TranscribeError> {
    let trimmed = base_url.trim().trim_end_matches('/');
    let root = trimmed.strip_suffix("/v1").unwrap_or(trimmed);
    let url = format!("{root}/v1/audio/transcriptions");
    let parsed = reqwest::Url::parse(&url).map_err(|e| {
        TranscribeError::Permanent(format!(
            "transcription base URL {base_url:?} is not a valid URL: {e}"
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(TranscribeError::Permanent(format!(
            "transcription base URL {base_url:?} is not http or https"
        )));
    }
    Ok(parsed)
}

async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY - body.len();
        if chunk.len() >= room {
            body.extend_from_slice(&chunk[..room]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `Retry-After` as a delay from `now`: delta seconds or an HTTP date (RFC 9110 §10.2.3).
/// A date in the past means "now"; an unreadable value is ignored.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[derive(Deserialize)]
struct VerboseJson {
    text: Option<String>,
    language: Option<String>,
    segments: Option<Vec<VerboseSegment>>,
}

#[derive(Deserialize)]
struct VerboseSegment {
    start: f64,
    end: f64,
    text: String,
}

/// Turns a `verbose_json` (or plain `json`) answer into a transcript. Errors name what is wrong.
pub fn parse_verbose_json(
    body: &[u8],
    requested_language: Option<&str>,
) -> Result<Transcript, String> {
    let parsed: VerboseJson =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let language = requested_language
        .map(str::to_string)
        .or_else(|| parsed.language.map(|l| language_code(&l)));
    if let Some(segments) = parsed.segments {
        let mut spans = Vec::with_capacity(segments.len());
        for (i, s) in segments.into_iter().enumerate() {
            let start_ms = seconds_to_ms(s.start)
                .ok_or_else(|| format!("segment {i} has start {} s", s.start))?;
            let end_ms =
                seconds_to_ms(s.end).ok_or_else(|| format!("segment {i} has end {} s", s.end))?;
            if end_ms < start_ms {
                return Err(format!(
                    "segment {i} ends ({} s) before it starts ({} s)",
                    s.end, s.start
                ));
            }
            if s.text.trim().is_empty() {
                continue;
            }
            spans.push(TimedText {
                start_ms,
                end_ms,
                text: s.text.trim().to_string(),
            });
        }
        return Ok(Transcript { spans, language });
    }
    // A plain `json` answer has no timings; the whole text spans the segment from its start.
    let text = parsed
        .text
        .ok_or_else(|| "neither \"segments\" nor \"text\" present".to_string())?;
    let spans = if text.trim().is_empty() {
        Vec::new()
    } else {
        vec![TimedText {
            start_ms: 0,
            end_ms: 0,
            text: text.trim().to_string(),
        }]
    };
    Ok(Transcript { spans, language })
}

fn seconds_to_ms(s: f64) -> Option<u64> {
    // Ten days bounds any segment; anything beyond is a broken answer, not a timing.
    if !(0.0..=864_000.0).contains(&s) {
        return None;
    }
    Some((s * 1000.0).round() as u64)
}

/// OpenAI's verbose_json names the language in English ("english"); callers use ISO 639-1.
fn language_code(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    let code = match lower.as_str() {
        "english" => "en",
        "german" => "de",
        "french" => "fr",
        "spanish" => "es",
        "italian" => "it",
        "portuguese" => "pt",
        "dutch" => "nl",
        "polish" => "pl",
        "russian" => "ru",
        "japanese" => "ja",
        "chinese" => "zh",
        "korean" => "ko",
        _ => return lower,
    };
    code.to_string()
}

/// The provider's own error message when the body is OpenAI's `{"error": {"message": ..}}` or
/// `{"detail": ..}` (FastAPI), otherwise a quote of the body.
fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(m) = v.pointer("/error/message").and_then(|m| m.as_str()) {
            return m.to_string();
        }
        if let Some(d) = v.get("detail") {
            return match d.as_str() {
                Some(s) => s.to_string(),
                None => d.to_string(),
            };
        }
    }
    quote(body)
}

fn quote(body: &[u8]) -> String {
    if body.is_empty() {
        return "empty body".into();
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(QUOTE)]);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.len() > QUOTE {
        out.push_str("...");
    }
    format!("{out:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn endpoint_accepts_root_and_v1_base() {
        for base in [
            "http://127.0.0.1:8000",
            "http://127.0.0.1:8000/",
            "http://127.0.0.1:8000/v1",
            "http://127.0.0.1:8000/v1/",
        ] {
            assert_eq!(
                endpoint(base).map(|u| u.to_string()).ok().as_deref(),
                Some("http://127.0.0.1:8000/v1/audio/transcriptions"),
                "{base}"
            );
        }
        assert!(matches!(
            endpoint("ftp://example.com"),
            Err(TranscribeError::Permanent(m)) if m.contains("not http or https")
        ));
        assert!(matches!(
            endpoint("not a url"),
            Err(TranscribeError::Permanent(m)) if m.contains("not a valid URL")
        ));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static(" 17 "));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(17)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(90)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(5));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&earlier).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("-3"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn verbose_json_segments_become_spans() {
        let body = br#"{"task":"transcribe","language":"english","duration":4.2,"text":" A b.",
            "segments":[{"id":0,"start":0.0,"end":2.345,"text":" The quick brown fox."},
                        {"id":1,"start":2.345,"end":4.2,"text":"   "},
                        {"id":2,"start":4.2,"end":4.2004,"text":" Jumps."}]}"#;
        let t = parse_verbose_json(body, None).unwrap();
        assert_eq!(t.language.as_deref(), Some("en"));
        assert_eq!(
            t.spans,
            vec![
                TimedText {
                    start_ms: 0,
                    end_ms: 2345,
                    text: "The quick brown fox.".into()
                },
                TimedText {
                    start_ms: 4200,
                    end_ms: 4200,
                    text: "Jumps.".into()
                },
            ]
        );
        let t = parse_verbose_json(body, Some("de")).unwrap();
        assert_eq!(t.language.as_deref(), Some("de"));
    }

    #[test]
    fn plain_json_falls_back_to_text() {
        let t = parse_verbose_json(br#"{"text":" Hello there. "}"#, None).unwrap();
        assert_eq!(t.text(), "Hello there.");
        assert_eq!(t.spans.len(), 1);
        let t = parse_verbose_json(br#"{"text":""}"#, Some("en")).unwrap();
        assert!(t.spans.is_empty());
        assert_eq!(t.language.as_deref(), Some("en"));
    }

    #[test]
    fn broken_answers_are_named() {
        let cases: [(&[u8], &str); 6] = [
            (b"<html>oops</html>", "invalid JSON"),
            (b"", "invalid JSON"),
            (br#"{"foo":1}"#, "neither \"segments\" nor \"text\""),
            (
                br#"{"segments":[{"start":-1,"end":1,"text":"x"}]}"#,
                "segment 0 has start -1",
            ),
            (
                br#"{"segments":[{"start":2,"end":1,"text":"x"}]}"#,
                "segment 0 ends (1 s) before it starts (2 s)",
            ),
            (br#"{"segments":[{"start":0,"text":"x"}]}"#, "invalid JSON"),
        ];
        for (body, want) in cases {
            let err = parse_verbose_json(body, None).unwrap_err();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
    }

    #[test]
    fn error_messages_prefer_the_providers_text() {
        assert_eq!(
            error_message(
                br#"{"error":{"message":"Invalid file format.","type":"invalid_request_error"}}"#
            ),
            "Invalid file format."
        );
        assert_eq!(error_message(br#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(error_message(b""), "empty body");
        assert_eq!(error_message(b"bad\ngateway"), "\"bad gateway\"");
        let long = vec![b'x'; 500];
        assert_eq!(
            error_message(&long),
            format!("{:?}", "x".repeat(200) + "...")
        );
    }

    #[test]
    fn config_debug_hides_the_key() {
        let c = OpenAiConfig {
            api_key: Some("sk-secret".into()),
            ..OpenAiConfig::default()
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("sk-secret"));
        assert!(shown.contains("<set>"));
    }

    #[test]
    fn new_rejects_bad_config() {
        let bad_model = OpenAiConfig {
            model: " ".into(),
            ..OpenAiConfig::default()
        };
        assert!(
            matches!(OpenAiTranscriber::new(bad_model), Err(TranscribeError::Permanent(m)) if m.contains("model name"))
        );
        let bad_timeout = OpenAiConfig {
            timeout: Duration::ZERO,
            ..OpenAiConfig::default()
        };
        assert!(
            matches!(OpenAiTranscriber::new(bad_timeout), Err(TranscribeError::Permanent(m)) if m.contains("timeout"))
        );
    }
}
