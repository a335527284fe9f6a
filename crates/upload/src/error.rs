//! What can go wrong while uploading, and how the uploader reacts to each kind.

use std::path::PathBuf;
use std::time::Duration;

use chronote_spool::SpoolError;

/// An upload failure. Each variant names the request or file involved.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// No HTTP answer: refused, reset, timed out, cut mid-body.
    #[error("{request}: {}", describe_transport(source))]
    Transport {
        request: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with a status the request did not expect.
    #[error("{request}: server answered {status}{}", message_suffix(message))]
    Status {
        request: String,
        status: u16,
        /// From a `Retry-After` header, if the server sent one.
        retry_after: Option<Duration>,
        /// The start of the response body, control characters removed.
        message: String,
    },
    /// The server answered, but not as the protocol says (e.g. no `Upload-Offset`).
    #[error("{request}: {detail}")]
    Protocol { request: String, detail: String },
    #[error("cannot read {}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The local file no longer matches what was sealed; uploading it would send wrong audio.
    #[error("{} does not match its seal: {detail}", path.display())]
    LocalMismatch { path: PathBuf, detail: String },
    /// The server holds different content for this segment or recording.
    #[error("the server refused {what}: {detail}")]
    Conflict { what: String, detail: String },
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("the spool lock is poisoned: another thread panicked while holding it")]
    SpoolPoisoned,
    #[error("the uploader was stopped")]
    Aborted,
}

fn message_suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

/// reqwest's top-level message ("error sending request") hides the cause; show the chain.
fn describe_transport(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        "timed out".to_string()
    } else if err.is_connect() {
        "cannot connect".to_string()
    } else {
        err.to_string()
    };
    let mut cause = std::error::Error::source(err);
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    text
}

impl UploadError {
    /// True when trying again later may succeed (network trouble, a busy or failing server).
    /// Everything else needs a person: a bad token, a conflicting segment, a broken local file.
    pub fn is_transient(&self) -> bool {
        match self {
            UploadError::Transport { .. } | UploadError::Protocol { .. } => true,
            UploadError::Status { status, .. } => is_transient_status(*status),
            _ => false,
        }
    }

    /// True when the server could not be reached at all (the uploader reports "offline").
    pub fn is_offline(&self) -> bool {
        matches!(self, UploadError::Transport { .. })
    }

    /// The HTTP status, if the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            UploadError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            UploadError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// 408/423/429 and 5xx say "not now"; 501 and 505 say "never" (the server lacks the feature).
pub(crate) fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 423 | 429)
        || (500..600).contains(&status) && !matches!(status, 501 | 505)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_statuses() {
        for s in [408, 423, 429, 500, 502, 503, 504] {
            assert!(is_transient_status(s), "{s}");
        }
        for s in [
            400, 401, 403, 404, 409, 410, 412, 413, 415, 422, 460, 501, 505,
        ] {
            assert!(!is_transient_status(s), "{s}");
        }
    }

    #[test]
    fn status_error_message() {
        let e = UploadError::Status {
            request: "PATCH http://h/files/1".into(),
            status: 409,
            retry_after: None,
            message: "offset mismatch".into(),
        };
        assert_eq!(
            e.to_string(),
            "PATCH http://h/files/1: server answered 409: offset mismatch"
        );
        assert!(!e.is_transient());
        assert_eq!(e.status(), Some(409));
    }
}
