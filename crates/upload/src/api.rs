//! The Chronote recordings API: create (idempotent), stop, status.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};

use crate::error::UploadError;

/// `POST /v1/recordings` body. Built only from the spool row, so a retry sends the very same
/// body and the server's idempotency check matches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateRecording {
    pub id: String,
    pub title: String,
    pub source: String,
    pub tracks: Vec<String>,
    pub started_at: String,
}

/// `POST /v1/recordings/{id}/stop` body: the last sequence per track (None: no segments).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StopRecording {
    pub final_sequences: BTreeMap<String, Option<u64>>,
    pub ended_at: String,
}

/// `GET /v1/recordings/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecordingStatus {
    pub id: String,
    pub state: String,
    #[serde(default)]
    pub tracks: Vec<TrackStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TrackStatus {
    pub name: String,
    pub received: u64,
    pub missing: Vec<u64>,
    pub bytes: u64,
    pub final_sequence: Option<u64>,
}

/// A client for the recordings endpoints of one server and token.
#[derive(Debug, Clone)]
pub struct RecordingsApi {
    http: reqwest::Client,
    base: Url,
    token: String,
    timeout: Duration,
}

impl RecordingsApi {
    pub fn new(http: reqwest::Client, base: Url, token: String, timeout: Duration) -> Self {
        RecordingsApi {
            http,
            base,
            token,
            timeout,
        }
    }

    fn url(&self, path: &str) -> Result<Url, UploadError> {
        self.base.join(path).map_err(|e| UploadError::InvalidUrl {
            url: format!("{}{path}", self.base),
            reason: e.to_string(),
        })
    }

    async fn call<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        ok: &[StatusCode],
    ) -> Result<reqwest::Response, UploadError> {
        let url = self.url(path)?;
        let what = format!("{method} {url}");
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(&self.token)
            .timeout(self.timeout);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|source| UploadError::Transport {
            request: what.clone(),
            source,
        })?;
        if ok.contains(&resp.status()) {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| crate::retry::parse_retry_after(v, std::time::SystemTime::now()));
        let message = resp
            .bytes()
            .await
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .take(300)
                    .collect::<String>()
            })
            .unwrap_or_default();
        Err(UploadError::Status {
            request: what,
            status,
            retry_after,
            message: message.trim().to_string(),
        })
    }

    /// Creates the recording, or finds the same one already there (201 or 200).
    pub async fn create(&self, body: &CreateRecording) -> Result<(), UploadError> {
        self.call(
            Method::POST,
            "v1/recordings",
            Some(body),
            &[StatusCode::OK, StatusCode::CREATED],
        )
        .await
        .map(drop)
    }

    pub async fn stop(&self, id: &str, body: &StopRecording) -> Result<(), UploadError> {
        self.call(
            Method::POST,
            &format!("v1/recordings/{id}/stop"),
            Some(body),
            &[StatusCode::OK],
        )
        .await
        .map(drop)
    }

    pub async fn status(&self, id: &str) -> Result<RecordingStatus, UploadError> {
        let path = format!("v1/recordings/{id}");
        let resp = self
            .call::<()>(Method::GET, &path, None, &[StatusCode::OK])
            .await?;
        let what = format!("GET {path}");
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| UploadError::Transport {
                request: what.clone(),
                source,
            })?;
        serde_json::from_slice(&bytes).map_err(|e| UploadError::Protocol {
            request: what,
            detail: format!("unexpected status JSON: {e}"),
        })
    }
}
