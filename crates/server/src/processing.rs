//! Configuration of the processing pipeline: engines, worker count, provider limits, leases,
//! retries, rolling windows and the finalization deadline, with production-sized defaults and
//! `CHRONOTE_*` environment overrides.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chronote_summarize::Summarizer;
use chronote_transcribe::Transcriber;

use crate::error::ServerError;
use crate::limits::ProviderLimits;

/// How segments become transcripts and notes.
#[derive(Clone)]
pub struct ProcessingConfig {
    /// Speech-to-text engine; without one, transcription jobs wait in the queue.
    pub transcriber: Option<Arc<dyn Transcriber>>,
    /// Notes engine; without one, summary and finalization jobs wait in the queue.
    pub summarizer: Option<Arc<dyn Summarizer>>,
    /// Worker tasks (`CHRONOTE_WORKERS`, default 8).
    pub workers: usize,
    /// Transcription provider limits (`CHRONOTE_TRANSCRIBE_CONCURRENCY` default 8,
    /// `CHRONOTE_TRANSCRIBE_RPM` default 500, `CHRONOTE_TRANSCRIBE_AUDIO_SECS_PER_MIN`
    /// default 30000).
    pub transcribe_limits: ProviderLimits,
    /// Summarization provider limits (`CHRONOTE_SUMMARIZE_CONCURRENCY` default 4,
    /// `CHRONOTE_SUMMARIZE_RPM` default 500, no audio limit).
    pub summarize_limits: ProviderLimits,
    /// Lease length (`CHRONOTE_LEASE_SECS`, default 60 s); renewed every third of it.
    pub lease: Duration,
    /// Name of this server process in lease rows (`CHRONOTE_NODE`, default `local`). Every
    /// process sharing a database needs its own; on start a process requeues the jobs its own
    /// name still holds, since none of its workers can be alive.
    pub node: String,
    /// Attempts before a job is dead (`CHRONOTE_MAX_ATTEMPTS`, default 5).
    pub max_attempts: u32,
    /// First retry delay, doubled per attempt (`CHRONOTE_RETRY_BASE_MS`, default 2000).
    pub retry_base: Duration,
    /// Longest retry delay (default 5 min).
    pub retry_max: Duration,
    /// Pause after a 429 without Retry-After (default 10 s).
    pub default_rate_limit_pause: Duration,
    /// Rolling summary window (`CHRONOTE_SUMMARY_WINDOW_SECS`, default 600).
    pub summary_window: Duration,
    /// How long finalization waits for missing segments and unfinished jobs after Stop
    /// (`CHRONOTE_FINALIZE_DEADLINE_SECS`, default 120).
    pub finalize_deadline: Duration,
    /// How often an idle worker looks for due jobs (retries, expired leases) without being
    /// woken (default 500 ms).
    pub poll: Duration,
    /// Language hint for transcription (`CHRONOTE_LANGUAGE`, default none: detect).
    pub language: Option<String>,
    /// Words of the previous segment sent as the continuity prompt (default 32).
    pub prompt_words: usize,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        ProcessingConfig {
            transcriber: None,
            summarizer: None,
            workers: 8,
            transcribe_limits: ProviderLimits {
                concurrency: 8,
                requests_per_minute: 500.0,
                audio_seconds_per_minute: 30_000.0,
            },
            summarize_limits: ProviderLimits {
                concurrency: 4,
                requests_per_minute: 500.0,
                audio_seconds_per_minute: f64::INFINITY,
            },
            lease: Duration::from_secs(60),
            node: "local".into(),
            max_attempts: 5,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
            default_rate_limit_pause: Duration::from_secs(10),
            summary_window: Duration::from_secs(600),
            finalize_deadline: Duration::from_secs(120),
            poll: Duration::from_millis(500),
            language: None,
            prompt_words: 32,
        }
    }
}

impl fmt::Debug for ProcessingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessingConfig")
            .field("transcriber", &self.transcriber.as_ref().map(|t| t.name()))
            .field("summarizer", &self.summarizer.as_ref().map(|s| s.name()))
            .field("workers", &self.workers)
            .field("transcribe_limits", &self.transcribe_limits)
            .field("summarize_limits", &self.summarize_limits)
            .field("lease", &self.lease)
            .field("node", &self.node)
            .field("max_attempts", &self.max_attempts)
            .field("summary_window", &self.summary_window)
            .field("finalize_deadline", &self.finalize_deadline)
            .finish_non_exhaustive()
    }
}

fn parse<T: std::str::FromStr>(name: &str, value: &str, what: &str) -> Result<T, ServerError> {
    value
        .trim()
        .parse()
        .map_err(|_| ServerError::Invalid(format!("{name}={value:?}: expected {what}")))
}

fn positive(name: &str, value: &str) -> Result<u64, ServerError> {
    let v: u64 = parse(name, value, "a positive integer")?;
    if v == 0 {
        return Err(ServerError::Invalid(format!(
            "{name}={value:?}: expected a positive integer"
        )));
    }
    Ok(v)
}

fn rate(name: &str, value: &str) -> Result<f64, ServerError> {
    let v: f64 = parse(name, value, "a positive number")?;
    // NaN and infinity parse as f64 but would poison the token buckets.
    if !v.is_finite() || v <= 0.0 {
        return Err(ServerError::Invalid(format!(
            "{name}={value:?}: expected a positive, finite number"
        )));
    }
    Ok(v)
}

impl ProcessingConfig {
    /// Applies the `CHRONOTE_*` variables that `lookup` returns (pass `std::env::var` wrapped
    /// in `.ok()`); a malformed value is an error naming the variable.
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ServerError> {
        let usize_of = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        if let Some(v) = lookup("CHRONOTE_WORKERS") {
            self.workers = usize_of(positive("CHRONOTE_WORKERS", &v)?);
        }
        if let Some(v) = lookup("CHRONOTE_TRANSCRIBE_CONCURRENCY") {
            self.transcribe_limits.concurrency =
                usize_of(positive("CHRONOTE_TRANSCRIBE_CONCURRENCY", &v)?);
        }
        if let Some(v) = lookup("CHRONOTE_TRANSCRIBE_RPM") {
            self.transcribe_limits.requests_per_minute = rate("CHRONOTE_TRANSCRIBE_RPM", &v)?;
        }
        if let Some(v) = lookup("CHRONOTE_TRANSCRIBE_AUDIO_SECS_PER_MIN") {
            self.transcribe_limits.audio_seconds_per_minute =
                rate("CHRONOTE_TRANSCRIBE_AUDIO_SECS_PER_MIN", &v)?;
        }
        if let Some(v) = lookup("CHRONOTE_SUMMARIZE_CONCURRENCY") {
            self.summarize_limits.concurrency =
                usize_of(positive("CHRONOTE_SUMMARIZE_CONCURRENCY", &v)?);
        }
        if let Some(v) = lookup("CHRONOTE_SUMMARIZE_RPM") {
            self.summarize_limits.requests_per_minute = rate("CHRONOTE_SUMMARIZE_RPM", &v)?;
        }
        if let Some(v) = lookup("CHRONOTE_LEASE_SECS") {
            self.lease = Duration::from_secs(positive("CHRONOTE_LEASE_SECS", &v)?);
        }
        if let Some(v) = lookup("CHRONOTE_NODE") {
            if v.trim().is_empty() || v.len() > 128 {
                return Err(ServerError::Invalid(
                    "CHRONOTE_NODE must be 1-128 characters".into(),
                ));
            }
            self.node = v.trim().to_string();
        }
        if let Some(v) = lookup("CHRONOTE_MAX_ATTEMPTS") {
            let n = positive("CHRONOTE_MAX_ATTEMPTS", &v)?;
            self.max_attempts = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(v) = lookup("CHRONOTE_RETRY_BASE_MS") {
            self.retry_base = Duration::from_millis(positive("CHRONOTE_RETRY_BASE_MS", &v)?);
        }
        if let Some(v) = lookup("CHRONOTE_SUMMARY_WINDOW_SECS") {
            self.summary_window =
                Duration::from_secs(positive("CHRONOTE_SUMMARY_WINDOW_SECS", &v)?);
        }
        if let Some(v) = lookup("CHRONOTE_FINALIZE_DEADLINE_SECS") {
            self.finalize_deadline =
                Duration::from_secs(parse("CHRONOTE_FINALIZE_DEADLINE_SECS", &v, "seconds")?);
        }
        if let Some(v) = lookup("CHRONOTE_LANGUAGE") {
            let v = v.trim();
            self.language = (!v.is_empty()).then(|| v.to_string());
        }
        Ok(())
    }

    /// Delay before attempt `attempts + 1` after `attempts` failures: base × 2^(attempts-1),
    /// capped.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
        self.retry_base.saturating_mul(factor).min(self.retry_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn defaults_are_production_sized() {
        let c = ProcessingConfig::default();
        assert_eq!(c.workers, 8);
        assert_eq!(c.transcribe_limits.concurrency, 8);
        assert_eq!(c.transcribe_limits.requests_per_minute, 500.0);
        assert_eq!(c.summary_window, Duration::from_secs(600));
        assert_eq!(c.finalize_deadline, Duration::from_secs(120));
    }

    #[test]
    fn env_overrides_and_rejects_garbage() {
        let mut c = ProcessingConfig::default();
        c.apply_env(env(&[
            ("CHRONOTE_WORKERS", "3"),
            ("CHRONOTE_TRANSCRIBE_CONCURRENCY", "2"),
            ("CHRONOTE_TRANSCRIBE_RPM", "60"),
            ("CHRONOTE_TRANSCRIBE_AUDIO_SECS_PER_MIN", "900.5"),
            ("CHRONOTE_SUMMARY_WINDOW_SECS", "300"),
            ("CHRONOTE_FINALIZE_DEADLINE_SECS", "0"),
            ("CHRONOTE_NODE", "a1"),
        ]))
        .unwrap();
        assert_eq!(c.workers, 3);
        assert_eq!(c.transcribe_limits.concurrency, 2);
        assert_eq!(c.transcribe_limits.requests_per_minute, 60.0);
        assert_eq!(c.transcribe_limits.audio_seconds_per_minute, 900.5);
        assert_eq!(c.summary_window, Duration::from_secs(300));
        assert_eq!(c.finalize_deadline, Duration::ZERO);
        assert_eq!(c.node, "a1");
        for (k, v) in [
            ("CHRONOTE_WORKERS", "0"),
            ("CHRONOTE_WORKERS", "many"),
            ("CHRONOTE_TRANSCRIBE_RPM", "-1"),
            ("CHRONOTE_TRANSCRIBE_RPM", "NaN"),
        ] {
            let err = ProcessingConfig::default()
                .apply_env(env(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(k), "{err}");
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let c = ProcessingConfig::default();
        assert_eq!(c.backoff(1), Duration::from_secs(2));
        assert_eq!(c.backoff(2), Duration::from_secs(4));
        assert_eq!(c.backoff(4), Duration::from_secs(16));
        assert_eq!(c.backoff(30), Duration::from_secs(300));
    }
}
