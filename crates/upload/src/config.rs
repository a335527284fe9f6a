//! How the uploader is set up.

use std::time::Duration;

use reqwest::Url;

use crate::error::UploadError;
use crate::transfer::TransferLimits;

/// Which recordings an uploader works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every recording in the spool (`chronote upload`).
    All,
    /// One recording (`chronote record --server`): its end-of-recording wait then covers only
    /// what this recording needs, not an old backlog.
    Recording(String),
}

/// Server, credentials and limits.
#[derive(Debug, Clone)]
pub struct UploaderConfig {
    /// Base URL of the Chronote server, e.g. `https://chronote.example/`.
    pub server: String,
    /// Bearer token (`chronote server token create`).
    pub token: String,
    pub scope: Scope,
    /// Bytes per request. A segment (~90 KB at 30 s) goes in one creation-with-upload request.
    pub chunk_bytes: u64,
    /// First backoff delay after a failure.
    pub min_backoff: Duration,
    /// Cap of the exponential backoff.
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured.
    pub max_retry_after: Duration,
    /// Base time allowed per request (plus time for its body; see the tus module).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// How often to look for newly sealed segments while recording.
    pub poll_interval: Duration,
    /// TEST HOOK (from `CHRONOTE_TEST_EXIT_BEFORE_ACK=N` in the CLI): abort the process the
    /// N-th time a response shows a segment upload complete, before the spool records it. Lets
    /// the crash tests kill the client exactly between the final PATCH and the acknowledgement.
    pub test_exit_before_ack: Option<u32>,
}

impl UploaderConfig {
    pub fn new(server: impl Into<String>, token: impl Into<String>) -> Self {
        UploaderConfig {
            server: server.into(),
            token: token.into(),
            scope: Scope::All,
            chunk_bytes: 4 << 20,
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(500),
            test_exit_before_ack: None,
        }
    }

    /// The server base URL with a trailing slash, so relative joins keep its path.
    pub fn base_url(&self) -> Result<Url, UploadError> {
        let mut text = self.server.trim().to_string();
        if !text.ends_with('/') {
            text.push('/');
        }
        let url = Url::parse(&text).map_err(|e| UploadError::InvalidUrl {
            url: self.server.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UploadError::InvalidUrl {
                url: self.server.clone(),
                reason: "only http and https are supported".to_string(),
            });
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(UploadError::InvalidUrl {
                url: self.server.clone(),
                reason: "a server URL has no query or fragment".to_string(),
            });
        }
        Ok(url)
    }

    pub(crate) fn limits(&self, max_failures: Option<u32>) -> TransferLimits {
        TransferLimits {
            chunk_bytes: self.chunk_bytes.max(1),
            min_backoff: self.min_backoff,
            max_backoff: self.max_backoff,
            max_retry_after: self.max_retry_after,
            max_failures,
        }
    }
}

/// Builds the HTTP client every request goes through.
pub(crate) fn http_client(connect_timeout: Duration) -> Result<reqwest::Client, UploadError> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .user_agent(concat!("chronote-upload/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(UploadError::Client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let c = UploaderConfig::new("http://127.0.0.1:8080", "t");
        assert_eq!(c.base_url().unwrap().as_str(), "http://127.0.0.1:8080/");
        let c = UploaderConfig::new("https://h/chronote", "t");
        assert_eq!(
            c.base_url().unwrap().join("files/").unwrap().as_str(),
            "https://h/chronote/files/"
        );
        assert!(UploaderConfig::new("ftp://h", "t").base_url().is_err());
        assert!(UploaderConfig::new("not a url", "t").base_url().is_err());
        assert!(
            UploaderConfig::new("http://h/?a=b", "t")
                .base_url()
                .is_err()
        );
    }
}
