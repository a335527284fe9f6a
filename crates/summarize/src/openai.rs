//! The OpenAI-compatible chat summarizer: `POST {base_url}/v1/chat/completions`.
//!
//! Works against OpenAI and local servers speaking the same API (llama.cpp's server, vLLM,
//! Ollama, LocalAI). The prompt carries the previous notes as JSON and the new window as
//! `[HH:MM:SS] Speaker: text` lines, and asks for a JSON object with the four fields of
//! [`Notes`] (`response_format: {"type": "json_object"}`).
//!
//! **Bounded prompt.** The previous notes are bounded by [`NotesLimits`] before they go in, and
//! the window text by [`OpenAiChatConfig::max_window_chars`]. A window over the budget (a very
//! talkative window, or a small local model's context) loses lines from its *start*, with a
//! marker line saying how many: the previous notes already cover what came before the window,
//! while its end is where the meeting stands now, and at Stop it holds the wrap-up (recaps of
//! decisions and action items) that the final notes most need.
//!
//! **Answer.** The message content must be a JSON object, optionally wrapped in a Markdown
//! fence (` ```json ... ``` `), which some local models add despite `response_format`. A missing
//! or null field means empty; a field of the wrong type, or anything that is not such an
//! object, is garbage.
//!
//! Error mapping, which a scheduler relies on:
//! - 429: [`SummarizeError::RateLimited`] with `Retry-After` (delta seconds or an HTTP date).
//! - 5xx, 408, timeouts, refused or cut connections: [`SummarizeError::Transient`].
//! - any other 4xx: [`SummarizeError::Permanent`], with the provider's error message.
//! - a 2xx whose body is not a chat completion with such notes ("garbage"):
//!   [`SummarizeError::Transient`]; a retry often gets a well-formed answer, and the
//!   scheduler's attempt limit stops a provider that never gives one.

use std::time::{Duration, SystemTime};

use chronote_assemble::{Utterance, render_text};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, RETRY_AFTER};
use serde_json::{Value, json};

use crate::limits::NotesLimits;
use crate::{BoxFuture, Notes, SummarizeError, SummarizeRequest, Summarizer};

/// The most of a response body we read; notes are a few kB.
const MAX_BODY: usize = 4 * 1024 * 1024;
/// How much of an unexpected body an error message quotes.
const QUOTE: usize = 200;

/// Where and how to reach an OpenAI-compatible chat endpoint.
#[derive(Clone)]
pub struct OpenAiChatConfig {
    /// Server root, e.g. `https://api.openai.com` or `http://127.0.0.1:8080`; a trailing `/v1`
    /// is accepted too.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>` when set; local servers usually need none.
    pub api_key: Option<String>,
    /// Model name, e.g. `gpt-4o-mini`.
    pub model: String,
    /// Limit for one whole request (connect, send, generation, answer).
    pub timeout: Duration,
    /// Characters of window text the prompt carries at most. Default 48,000 (about 12k
    /// tokens): a 10-minute window of speech is about 10,000 characters, so only an unusual
    /// window is cut.
    pub max_window_chars: usize,
    /// Sampling temperature sent with the request. Default `Some(0.0)`: notes should not vary
    /// from run to run. `None` leaves it out, for models that only accept their default
    /// (OpenAI's reasoning models answer 400 to any other value).
    pub temperature: Option<f64>,
    /// Bounds applied to the previous notes in the prompt and to the answer.
    pub limits: NotesLimits,
}

impl Default for OpenAiChatConfig {
    fn default() -> Self {
        OpenAiChatConfig {
            base_url: "https://api.openai.com".into(),
            api_key: None,
            model: "gpt-4o-mini".into(),
            timeout: Duration::from_secs(120),
            max_window_chars: 48_000,
            temperature: Some(0.0),
            limits: NotesLimits::default(),
        }
    }
}

impl std::fmt::Debug for OpenAiChatConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key must never reach a log line.
        f.debug_struct("OpenAiChatConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .field("max_window_chars", &self.max_window_chars)
            .field("temperature", &self.temperature)
            .field("limits", &self.limits)
            .finish()
    }
}

/// The chat summarizer. Cheap to share: one connection pool for every request.
#[derive(Debug, Clone)]
pub struct OpenAiChatSummarizer {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    config: OpenAiChatConfig,
}

/// Smallest window budget that still carries a useful amount of speech.
const MIN_WINDOW_CHARS: usize = 200;

impl OpenAiChatSummarizer {
    /// Checks the configuration and builds the HTTP client.
    pub fn new(config: OpenAiChatConfig) -> Result<Self, SummarizeError> {
        let endpoint = endpoint(&config.base_url)?;
        if config.model.trim().is_empty() {
            return Err(SummarizeError::Permanent(
                "the summary model name is empty".into(),
            ));
        }
        if config.timeout.is_zero() {
            return Err(SummarizeError::Permanent(
                "the summary request timeout is zero".into(),
            ));
        }
        if config.max_window_chars < MIN_WINDOW_CHARS {
            return Err(SummarizeError::Permanent(format!(
                "the summary window budget of {} characters is below the minimum of {MIN_WINDOW_CHARS}",
                config.max_window_chars
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| SummarizeError::Permanent(format!("cannot build the HTTP client: {e}")))?;
        Ok(OpenAiChatSummarizer {
            client,
            endpoint,
            config,
        })
    }

    /// The full URL requests go to.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// The JSON body sent for `request`.
    pub fn request_body(&self, request: &SummarizeRequest) -> Value {
        let previous = request
            .previous
            .clone()
            .map(|p| self.config.limits.bound(p));
        let mut body = json!({
            "model": self.config.model,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": system_prompt(&self.config.limits)},
                {"role": "user", "content": user_prompt(
                    previous.as_ref(),
                    &request.window,
                    request.is_final,
                    self.config.max_window_chars,
                )},
            ],
        });
        if let (Some(t), Some(object)) = (self.config.temperature, body.as_object_mut()) {
            object.insert("temperature".into(), json!(t));
        }
        body
    }

    async fn run(&self, request: SummarizeRequest) -> Result<Notes, SummarizeError> {
        if request.window.is_empty() {
            // Nothing new was said: the notes stay as they are, and no call is spent on it.
            return Ok(self
                .config
                .limits
                .bound(request.previous.unwrap_or_default()));
        }
        let body = self.request_body(&request);
        let mut http = self.client.post(self.endpoint.clone()).json(&body);
        if let Some(key) = &self.config.api_key {
            http = http.header(AUTHORIZATION, format!("Bearer {key}"));
        }
        let response = http.send().await.map_err(|e| self.send_error(&e))?;
        let status = response.status();
        let retry_after = retry_after(response.headers(), SystemTime::now());
        let body = read_body(response).await.map_err(|e| self.send_error(&e))?;

        if status == StatusCode::TOO_MANY_REQUESTS {
            tracing::warn!(endpoint = %self.endpoint, ?retry_after, "summary provider rate limit");
            return Err(SummarizeError::RateLimited { retry_after });
        }
        if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
            return Err(SummarizeError::Transient(format!(
                "{} answered {status}: {}",
                self.endpoint,
                error_message(&body)
            )));
        }
        if !status.is_success() {
            return Err(SummarizeError::Permanent(format!(
                "{} refused the request with {status}: {}",
                self.endpoint,
                error_message(&body)
            )));
        }
        let notes = parse_completion(&body).map_err(|reason| {
            SummarizeError::Transient(format!(
                "{} answered {status} with a body that is not notes ({reason}): {}",
                self.endpoint,
                quote(&body)
            ))
        })?;
        Ok(self.config.limits.bound(notes))
    }

    fn send_error(&self, e: &reqwest::Error) -> SummarizeError {
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
        SummarizeError::Transient(format!("{}: {what} ({detail})", self.endpoint))
    }
}

impl Summarizer for OpenAiChatSummarizer {
    fn name(&self) -> &str {
        "openai"
    }

    fn summarize(&self, request: SummarizeRequest) -> BoxFuture<'_, Result<Notes, SummarizeError>> {
        Box::pin(self.run(request))
    }
}

fn system_prompt(limits: &NotesLimits) -> String {
    format!(
        "You keep the notes of a meeting while it runs. You get the notes so far (JSON, or none \
         for the first part) and the next part of the transcript, one line per utterance as \
         `[HH:MM:SS] Speaker: text`. Answer with one JSON object and nothing else, with exactly \
         these fields: \"summary\" (a string: a few sentences of prose covering the whole \
         meeting so far, naming speakers where it helps), \"key_points\" (an array of at most \
         {kp} strings), \"decisions\" (an array of at most {d} strings) and \"action_items\" (an \
         array of at most {a} strings, each naming who said it and the owner and due date when \
         known, as \"Speaker: item\"). Keep the earlier decisions and action items unless the \
         transcript reverses them, add new ones in the order they came up, and never invent \
         anything that was not said. Use empty arrays when there is nothing to list.",
        kp = limits.key_points,
        d = limits.decisions,
        a = limits.action_items,
    )
}

fn user_prompt(
    previous: Option<&Notes>,
    window: &[Utterance],
    is_final: bool,
    max_window_chars: usize,
) -> String {
    let mut out = String::new();
    match previous {
        Some(notes) => {
            out.push_str("Notes so far (JSON):\n");
            // Serializing plain strings and arrays cannot fail.
            out.push_str(&serde_json::to_string(notes).unwrap_or_else(|_| "{}".into()));
            out.push_str("\n\n");
        }
        None => out.push_str("Notes so far: none, this is the start of the meeting.\n\n"),
    }
    out.push_str(if is_final {
        "The meeting has ended. This is the last part of the transcript; answer with the final notes.\n"
    } else {
        "The meeting is still going. This is the next part of the transcript:\n"
    });
    out.push_str(&window_text(window, max_window_chars));
    out
}

/// The window as transcript lines, at most `max_chars` characters: whole lines are dropped
/// from the start, and a marker line says how many, when it is longer.
pub fn window_text(window: &[Utterance], max_chars: usize) -> String {
    let text = render_text(window);
    if text.chars().count() <= max_chars {
        return text;
    }
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let marker = |n: usize| {
        format!("[... {n} earlier lines of this window left out to fit the prompt budget ...]\n")
    };
    let cut_marker = |n: usize| {
        format!(
            "[... {n} earlier lines and the start of the next left out to fit the prompt budget ...]\n"
        )
    };
    // The markers' lengths depend on the count; the count of all lines bounds them.
    let room = max_chars.saturating_sub(cut_marker(lines.len()).chars().count());
    let mut kept = 0;
    let mut used = 0;
    for line in lines.iter().rev() {
        let len = line.chars().count();
        if used + len > room {
            break;
        }
        used += len;
        kept += 1;
    }
    let dropped = lines.len() - kept;
    let mut out = marker(dropped);
    if kept == 0 {
        // A single line longer than the budget: keep its end.
        let last = lines.last().copied().unwrap_or_default();
        let skip = last.chars().count().saturating_sub(room);
        out = cut_marker(dropped - 1);
        out.extend(last.chars().skip(skip));
        return out;
    }
    for line in &lines[dropped..] {
        out.push_str(line);
    }
    out
}

fn endpoint(base_url: &str) -> Result<reqwest::Url, SummarizeError> {
    let trimmed = base_url.trim().trim_end_matches('/');
    let root = trimmed.strip_suffix("/v1").unwrap_or(trimmed);
    let url = format!("{root}/v1/chat/completions");
    let parsed = reqwest::Url::parse(&url).map_err(|e| {
        SummarizeError::Permanent(format!(
            "summary base URL {base_url:?} is not a valid URL: {e}"
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(SummarizeError::Permanent(format!(
            "summary base URL {base_url:?} is not http or https"
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

/// Notes from a chat completion body: `choices[0].message.content`, parsed by
/// [`parse_notes`]. Errors name what is wrong.
pub fn parse_completion(body: &[u8]) -> Result<Notes, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let content = value
        .pointer("/choices/0/message/content")
        .ok_or("no choices[0].message.content")?
        .as_str()
        .ok_or("choices[0].message.content is not a string")?;
    parse_notes(content)
}

/// Notes from the model's message: a JSON object, optionally in a ```` ```json ```` fence.
/// Missing or null fields are empty; wrong types are errors.
pub fn parse_notes(content: &str) -> Result<Notes, String> {
    let json = unfence(content.trim());
    let value: Value =
        serde_json::from_str(json).map_err(|e| format!("message content is not JSON: {e}"))?;
    let object = value
        .as_object()
        .ok_or("message content is not a JSON object")?;
    let summary = match object.get("summary") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(_) => return Err("\"summary\" is not a string".into()),
    };
    let list = |field: &str| -> Result<Vec<String>, String> {
        match object.get(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(|s| s.trim().to_string())
                        .ok_or_else(|| format!("{field:?} has an item that is not a string"))
                })
                .collect(),
            Some(_) => Err(format!("{field:?} is not an array")),
        }
    };
    Ok(Notes {
        summary,
        key_points: list("key_points")?,
        decisions: list("decisions")?,
        action_items: list("action_items")?,
    })
}

/// The inside of a Markdown code fence (```` ``` ```` or ```` ```json ````), or the text as is.
fn unfence(s: &str) -> &str {
    let Some(rest) = s.strip_prefix("```") else {
        return s;
    };
    let Some(inner) = rest.trim_end().strip_suffix("```") else {
        return s;
    };
    // The opening line may name the language.
    match inner.find('\n') {
        Some(i) if inner[..i].trim().chars().all(|c| c.is_ascii_alphanumeric()) => &inner[i + 1..],
        _ => inner,
    }
}

/// The provider's own error message when the body is OpenAI's `{"error": {"message": ..}}` or
/// `{"detail": ..}` (FastAPI), otherwise a quote of the body.
fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
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
mod tests;
