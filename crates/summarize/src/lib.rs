//! Meeting notes for Chronote recordings.
//!
//! A [`Summarizer`] turns a bounded piece of transcript into [`Notes`]. The server calls it in
//! rolling windows: each call gets the previous notes plus one window of new utterances
//! ([`SummarizeRequest`]), never the whole meeting, so the input of every call stays bounded
//! however long the meeting runs. The final call at Stop has `is_final` set and gets the last,
//! partial window.
//!
//! Two summarizers: [`ExtractiveSummarizer`], embedded and deterministic, the default so the
//! system works with no API key; and [`OpenAiChatSummarizer`], OpenAI-compatible chat
//! completions. Both hold their notes to [`NotesLimits`]. [`render_markdown`] formats notes
//! for text output.
//!
//! Errors say whether a retry can help, like the transcription engines', so one scheduler can
//! treat both kinds of provider alike.

mod cues;
mod extractive;
mod limits;
mod markdown;
pub mod openai;
mod stopwords;
pub mod text;

pub use extractive::ExtractiveSummarizer;
pub use limits::NotesLimits;
pub use markdown::render_markdown;
pub use openai::{OpenAiChatConfig, OpenAiChatSummarizer};

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chronote_assemble::Utterance;
use serde::{Deserialize, Serialize};

/// A boxed, sendable future; keeps [`Summarizer`] object-safe (`Arc<dyn Summarizer>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Notes about a meeting, or about the part of it summarized so far.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Notes {
    /// A few sentences of prose.
    pub summary: String,
    pub key_points: Vec<String>,
    pub decisions: Vec<String>,
    pub action_items: Vec<String>,
}

impl Notes {
    /// True when the notes say nothing at all.
    pub fn is_empty(&self) -> bool {
        self.summary.trim().is_empty()
            && self.key_points.is_empty()
            && self.decisions.is_empty()
            && self.action_items.is_empty()
    }
}

/// One summarizer call: the notes so far plus one window of new transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct SummarizeRequest {
    /// Notes from the previous call for this meeting; `None` for the first window.
    pub previous: Option<Notes>,
    /// The new transcript, in time order, bounded by the caller (one rolling window).
    pub window: Vec<Utterance>,
    /// Set for the final notes at Stop.
    pub is_final: bool,
}

/// Why a summarizer could not produce notes.
#[derive(Debug, thiserror::Error)]
pub enum SummarizeError {
    /// The provider asked us to slow down (HTTP 429); `retry_after` is its hint, if any.
    #[error("provider rate limit reached")]
    RateLimited { retry_after: Option<Duration> },
    /// A failure that may pass on retry: network errors, timeouts, 5xx answers, garbage.
    #[error("transient failure: {0}")]
    Transient(String),
    /// A failure a retry cannot fix: a rejected request, a bad key.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

impl SummarizeError {
    /// Whether trying the same request again later can succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, SummarizeError::Permanent(_))
    }
}

/// Makes notes from a bounded piece of transcript.
pub trait Summarizer: Send + Sync {
    /// A short name for logs and metrics labels, e.g. `"extractive"` or `"openai"`.
    fn name(&self) -> &str;

    /// Produces the updated notes: `request.previous` merged with what `request.window` adds.
    fn summarize(&self, request: SummarizeRequest) -> BoxFuture<'_, Result<Notes, SummarizeError>>;
}
