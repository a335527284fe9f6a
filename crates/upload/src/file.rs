//! Plain tus: one local file to any tus 1.0 server, resuming after every failure. No Chronote
//! metadata, recordings or receipts; used for interoperability with other tus servers.

use std::path::Path;
use std::time::Duration;

use reqwest::Url;
use tokio::sync::watch;

use crate::config::http_client;
use crate::error::UploadError;
use crate::retry::Backoff;
use crate::transfer::{Journal, TransferLimits, TransferSpec, sleep_or_abort, transfer};
use crate::tus::{TusClient, encode_metadata};

/// Knobs of [`upload_file`].
#[derive(Debug, Clone)]
pub struct FileUploadOptions {
    /// Sent as `Authorization: Bearer` when set.
    pub token: Option<String>,
    pub chunk_bytes: u64,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub max_retry_after: Duration,
    /// Failures in a row without progress before giving up.
    pub max_failures: u32,
}

impl Default for FileUploadOptions {
    fn default() -> Self {
        FileUploadOptions {
            token: None,
            // Big PATCH bodies amortize the per-request fdatasync and round trip; the next
            // one is read and hashed while this one is sent, so two are in memory.
            chunk_bytes: 16 << 20,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            max_failures: 30,
        }
    }
}

/// Uploads `path` to the tus creation URL `files_url` (e.g. `http://host/files/`) with
/// `metadata`, and returns the upload's URL once the server has every byte.
pub async fn upload_file(
    files_url: &str,
    path: &Path,
    metadata: &[(String, String)],
    options: &FileUploadOptions,
) -> Result<Url, UploadError> {
    let url = Url::parse(files_url).map_err(|e| UploadError::InvalidUrl {
        url: files_url.to_string(),
        reason: e.to_string(),
    })?;
    let length = std::fs::metadata(path)
        .map_err(|source| UploadError::File {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let http = http_client(options.connect_timeout)?;
    let mut tus = TusClient::new(http, url, options.token.clone(), options.request_timeout);
    // The abort channel is never triggered here; keeping the sender alive keeps waits plain.
    let (_abort_tx, mut abort) = watch::channel(false);
    discover(&mut tus, options, &mut abort).await?;
    let spec = TransferSpec {
        path: path.to_path_buf(),
        length,
        metadata: encode_metadata(metadata)?,
        resume_url: None,
        expect_receipt: None,
        confirm_only: false,
    };
    let limits = TransferLimits {
        chunk_bytes: options.chunk_bytes.max(1),
        min_backoff: options.min_backoff,
        max_backoff: options.max_backoff,
        max_retry_after: options.max_retry_after,
        max_failures: Some(options.max_failures.max(1)),
    };
    let mut journal = Remember;
    let mut on_error = |e: &UploadError| tracing::info!(error = %e, "tus upload attempt failed");
    let done = transfer(
        &tus,
        &spec,
        &limits,
        &mut journal,
        &mut abort,
        &mut on_error,
    )
    .await?;
    Ok(done.url)
}

/// OPTIONS with retries; a server that refuses OPTIONS still gets plain tus.
async fn discover(
    tus: &mut TusClient,
    options: &FileUploadOptions,
    abort: &mut watch::Receiver<bool>,
) -> Result<(), UploadError> {
    let mut backoff = Backoff::new(options.min_backoff, options.max_backoff);
    let mut failures = 0;
    loop {
        match tus.options().await {
            Ok(caps) => {
                tus.set_checksum_algorithm(caps.fastest_checksum());
                tus.set_creation_with_upload(caps.has_extension("creation-with-upload"));
                return Ok(());
            }
            Err(e) if e.is_transient() => {
                failures += 1;
                if failures >= options.max_failures.max(1) {
                    return Err(e);
                }
                sleep_or_abort(backoff.next_delay(), abort).await?;
            }
            Err(e) => {
                tracing::info!(error = %e, "no tus OPTIONS; assuming core tus only");
                tus.set_checksum(false);
                tus.set_creation_with_upload(false);
                return Ok(());
            }
        }
    }
}

/// Plain uploads keep no journal beyond the process: nothing to persist.
struct Remember;

impl Journal for Remember {
    fn created(&mut self, url: &Url) -> Result<(), UploadError> {
        tracing::debug!(%url, "tus upload created");
        Ok(())
    }

    fn confirmed(&mut self, _offset: u64) -> Result<(), UploadError> {
        Ok(())
    }

    fn lost(&mut self) -> Result<(), UploadError> {
        Ok(())
    }
}
