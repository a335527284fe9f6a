//! Speech-to-text engines for Chronote segments.
//!
//! Every engine implements [`Transcriber`]: it takes one complete Ogg Opus segment (as sealed by
//! the recorder and received by the server) and returns text with timings relative to the start
//! of that segment. Shifting timings onto the recording's timeline is the caller's job, because
//! only the caller knows where the segment starts.
//!
//! Engines: [`openai::OpenAiTranscriber`] (any OpenAI-compatible HTTP server) and
//! [`whisper::WhisperTranscriber`] (whisper.cpp in-process, model from [`model`]).
//!
//! Errors say whether a retry can help ([`TranscribeError::is_retryable`]) and carry a provider's
//! `Retry-After` so a scheduler can pause that provider instead of hammering it.

pub mod model;
pub mod openai;
pub mod opus_pcm;
pub mod testing;
pub mod whisper;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A boxed, sendable future; keeps [`Transcriber`] object-safe so schedulers can hold
/// `Arc<dyn Transcriber>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One segment to transcribe.
#[derive(Debug, Clone)]
pub struct TranscribeRequest {
    /// A complete Ogg Opus file (RFC 7845).
    pub audio: bytes::Bytes,
    /// Length of the segment in 48 kHz samples, as recorded in the spool and on the server.
    pub length_48k: u64,
    /// ISO-639-1 language hint, e.g. `"en"`; `None` lets the engine detect it.
    pub language: Option<String>,
    /// The last words of the previous segment of the same track, for continuity across a cut.
    pub prompt: Option<String>,
}

/// A span of recognised text, timed relative to the start of its segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimedText {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

/// An engine's answer for one segment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Transcript {
    /// Text spans in time order; empty when the segment holds no usable speech.
    pub spans: Vec<TimedText>,
    /// Detected or requested language, when the engine reports one.
    pub language: Option<String>,
}

impl Transcript {
    /// All span texts joined by single spaces.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for span in &self.spans {
            let t = span.text.trim();
            if t.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(t);
        }
        out
    }
}

/// Why an engine could not transcribe a segment.
#[derive(Debug, thiserror::Error)]
pub enum TranscribeError {
    /// The provider asked us to slow down (HTTP 429); `retry_after` is its hint, if any.
    #[error("provider rate limit reached")]
    RateLimited { retry_after: Option<Duration> },
    /// A failure that may pass on retry: network errors, timeouts, 5xx answers.
    #[error("transient failure: {0}")]
    Transient(String),
    /// A failure a retry cannot fix: undecodable audio, a rejected request, a broken model.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

impl TranscribeError {
    /// Whether trying the same request again later can succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, TranscribeError::Permanent(_))
    }
}

/// A speech-to-text engine.
pub trait Transcriber: Send + Sync {
    /// A short name for logs and metrics labels, e.g. `"openai"` or `"whisper"`.
    fn name(&self) -> &str;

    /// Transcribes one segment.
    fn transcribe(
        &self,
        request: TranscribeRequest,
    ) -> BoxFuture<'_, Result<Transcript, TranscribeError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_joins_non_empty_spans() {
        let t = Transcript {
            spans: vec![
                TimedText {
                    start_ms: 0,
                    end_ms: 900,
                    text: " Hello".into(),
                },
                TimedText {
                    start_ms: 900,
                    end_ms: 1000,
                    text: "  ".into(),
                },
                TimedText {
                    start_ms: 1000,
                    end_ms: 2000,
                    text: "world. ".into(),
                },
            ],
            language: None,
        };
        assert_eq!(t.text(), "Hello world.");
    }

    #[test]
    fn only_permanent_errors_are_final() {
        assert!(TranscribeError::RateLimited { retry_after: None }.is_retryable());
        assert!(TranscribeError::Transient("timeout".into()).is_retryable());
        assert!(!TranscribeError::Permanent("not opus".into()).is_retryable());
    }
}
