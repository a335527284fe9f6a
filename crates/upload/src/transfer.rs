//! One file to one tus upload, surviving every failure the network and server can produce.
//!
//! The loop keeps one belief: the server's offset, taken only from the server (a creation, HEAD
//! or PATCH answer) and forgotten after any failure, so the next step is a HEAD. The local count
//! of bytes sent is never trusted: a server may keep fewer bytes than it was sent.
//!
//! | failure | reaction |
//! |---|---|
//! | reset, timeout, cut mid-body, bad answer | back off, HEAD, continue from its offset |
//! | 409 (offset mismatch) | HEAD at once, continue from its offset |
//! | 460 (checksum mismatch) | back off, HEAD, resend from its offset |
//! | 404 / 410 (upload gone) | journal "lost", create again (idempotent on a Chronote server) |
//! | 408 / 423 / 429 / 5xx | wait `Retry-After` (capped) or back off, then HEAD |
//! | 422 (content rejected) | a few retries from scratch, then give up |
//! | anything else (401, 403, 409 on create, 413, ...) | give up: a person must act |

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use reqwest::Url;
use tokio::sync::watch;

use crate::error::UploadError;
use crate::retry::Backoff;
use crate::tus::{Chunk, TusClient};

/// Where a transfer records what the server confirmed, so a crash can resume exactly.
pub trait Journal {
    /// An upload exists at `url` (called before anything else is recorded for it).
    fn created(&mut self, url: &Url) -> Result<(), UploadError>;
    /// The server confirmed `offset` bytes.
    fn confirmed(&mut self, offset: u64) -> Result<(), UploadError>;
    /// The server forgot the upload (404/410); the next attempt creates it again.
    fn lost(&mut self) -> Result<(), UploadError>;
    /// A response just showed the upload complete, before anything is recorded about it.
    /// (Test hook point: see [`crate::UploaderConfig::test_exit_before_ack`].)
    fn completing(&mut self) {}
}

/// The transfer's knobs.
#[derive(Debug, Clone)]
pub struct TransferLimits {
    pub chunk_bytes: u64,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured; a longer one is cut to this.
    pub max_retry_after: Duration,
    /// Give up after this many failures in a row without any progress (None = never, for the
    /// background uploader, which must outlast long outages).
    pub max_failures: Option<u32>,
}

/// What to upload.
#[derive(Debug, Clone)]
pub struct TransferSpec {
    pub path: PathBuf,
    pub length: u64,
    pub metadata: String,
    /// An upload to continue (from a journal), if any.
    pub resume_url: Option<Url>,
    /// For Chronote segments: the sha256 (hex) the server's receipt must carry. None for plain
    /// tus, where offset == length is the end.
    pub expect_receipt: Option<String>,
    /// The upload is known complete but its receipt was not recorded: look it up by creating
    /// again without a body (idempotent) instead of sending data.
    pub confirm_only: bool,
}

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transferred {
    pub url: Url,
    /// The receipt's sha256, when one was required.
    pub receipt: Option<String>,
}

const MAX_REJECTIONS: u32 = 3;

/// Runs the transfer to the end, a permanent error, or `abort` turning true.
pub async fn transfer(
    tus: &TusClient,
    spec: &TransferSpec,
    limits: &TransferLimits,
    journal: &mut dyn Journal,
    abort: &mut watch::Receiver<bool>,
    on_error: &mut (dyn FnMut(&UploadError) + Send),
) -> Result<Transferred, UploadError> {
    let mut url = spec.resume_url.clone();
    let mut known: Option<u64> = None;
    let mut backoff = Backoff::new(limits.min_backoff, limits.max_backoff);
    let mut failures = 0u32;
    let mut rejections = 0u32;
    let mut best = 0u64;
    let mut ahead: Option<Prefetch> = None;
    loop {
        if *abort.borrow() {
            return Err(UploadError::Aborted);
        }
        let step = step(tus, spec, limits, journal, &mut url, &mut known, &mut ahead).await;
        let err = match step {
            Ok(Step::Done(receipt)) => {
                // `url` is always set once a step completed the upload.
                let url = url.ok_or_else(|| UploadError::Protocol {
                    request: format!("upload of {}", spec.path.display()),
                    detail: "completed without an upload URL".to_string(),
                })?;
                return Ok(Transferred { url, receipt });
            }
            Ok(Step::At { offset, sent }) => {
                if offset > best {
                    backoff.reset();
                    failures = 0;
                    best = offset;
                    continue;
                }
                if !sent {
                    // A creation or HEAD only told us where to go on from.
                    continue;
                }
                // A PATCH that moved nothing forward: count it like a failure, so a server
                // that never keeps anything cannot make us spin.
                UploadError::Protocol {
                    request: format!("upload of {}", spec.path.display()),
                    detail: format!(
                        "no progress: server offset {offset} after a PATCH, had {best}"
                    ),
                }
            }
            Err(e) => e,
        };
        known = None;
        on_error(&err);
        if !err.is_offline() {
            tracing::debug!(file = %spec.path.display(), error = %err, "upload step failed");
        }
        let delay = match err.status() {
            Some(404 | 410) if url.is_some() => {
                journal.lost()?;
                url = None;
                // A new upload starts from nothing; its progress is measured afresh.
                best = 0;
                Some(backoff.next_delay())
            }
            Some(409) if url.is_some() => None,
            Some(409) => {
                return Err(UploadError::Conflict {
                    what: format!("{}", spec.path.display()),
                    detail: err.to_string(),
                });
            }
            Some(460) => Some(backoff.next_delay()),
            Some(422) => {
                rejections += 1;
                if rejections >= MAX_REJECTIONS {
                    return Err(UploadError::Conflict {
                        what: format!("{}", spec.path.display()),
                        detail: format!("rejected {rejections} times, last: {err}"),
                    });
                }
                // The server reset the upload; the next HEAD sees 404 and creates again.
                Some(backoff.next_delay())
            }
            _ if err.is_transient() => Some(match err.retry_after() {
                Some(after) => after.min(limits.max_retry_after),
                None => backoff.next_delay(),
            }),
            _ => return Err(err),
        };
        failures += 1;
        if let Some(max) = limits.max_failures
            && failures >= max
        {
            return Err(err);
        }
        if let Some(delay) = delay {
            sleep_or_abort(delay, abort).await?;
        }
    }
}

/// The next chunk, read and hashed on a blocking thread while the current one is sent.
struct Prefetch {
    offset: u64,
    len: u64,
    task: tokio::task::JoinHandle<Result<Chunk, UploadError>>,
}

impl Prefetch {
    fn start(
        tus: &TusClient,
        spec: &TransferSpec,
        limits: &TransferLimits,
        offset: u64,
    ) -> Option<Prefetch> {
        if offset >= spec.length {
            return None;
        }
        let len = (spec.length - offset).min(limits.chunk_bytes);
        let path = spec.path.clone();
        let hash = tus.checksum();
        let task = tokio::task::spawn_blocking(move || {
            read_chunk(&path, offset, len).map(|data| Chunk::new(data, hash))
        });
        Some(Prefetch { offset, len, task })
    }

    /// The chunk at `offset` of `len` bytes: the one read ahead if it is that one.
    async fn take(
        ahead: &mut Option<Prefetch>,
        tus: &TusClient,
        path: &Path,
        offset: u64,
        len: u64,
    ) -> Result<Chunk, UploadError> {
        if let Some(p) = ahead.take()
            && p.offset == offset
            && p.len == len
            && let Ok(chunk) = p.task.await
        {
            return chunk;
        }
        // Not read ahead (or the read-ahead thread died): read it now.
        Ok(Chunk::new(read_chunk(path, offset, len)?, tus.checksum()))
    }
}

enum Step {
    /// The server confirmed this offset (the upload is not complete); `sent` if a PATCH did.
    At {
        offset: u64,
        sent: bool,
    },
    Done(Option<String>),
}

async fn step(
    tus: &TusClient,
    spec: &TransferSpec,
    limits: &TransferLimits,
    journal: &mut dyn Journal,
    url: &mut Option<Url>,
    known: &mut Option<u64>,
    ahead: &mut Option<Prefetch>,
) -> Result<Step, UploadError> {
    let Some(current) = url.clone() else {
        let body = if spec.confirm_only || spec.length == 0 || !tus.creation_with_upload() {
            None
        } else {
            Some(read_chunk(
                &spec.path,
                0,
                spec.length.min(limits.chunk_bytes),
            )?)
        };
        let body_sent = body.is_some();
        if let Some(b) = &body {
            *ahead = Prefetch::start(tus, spec, limits, b.len() as u64);
        }
        let created = tus.create(spec.length, &spec.metadata, body).await?;
        let what = format!("POST {}", tus.files_url());
        let offset = check_offset(created.offset.unwrap_or(0), spec.length, &what)?;
        if offset == spec.length {
            journal.completing();
        }
        journal.created(&created.url)?;
        *url = Some(created.url);
        if offset > 0 {
            journal.confirmed(offset)?;
        }
        *known = created.offset;
        return finish_or_continue(spec, offset, created.receipt, known, body_sent);
    };
    match *known {
        None => {
            let head = tus.head(&current).await?;
            let what = format!("HEAD {current}");
            if let Some(len) = head.length
                && len != spec.length
            {
                return Err(UploadError::Conflict {
                    what: format!("{}", spec.path.display()),
                    detail: format!(
                        "{what}: server upload is {len} bytes long, file has {}",
                        spec.length
                    ),
                });
            }
            let offset = check_offset(head.offset, spec.length, &what)?;
            journal.confirmed(offset)?;
            *known = Some(offset);
            finish_or_continue(spec, offset, head.receipt, known, false)
        }
        Some(offset) => {
            let n = (spec.length - offset).min(limits.chunk_bytes);
            let chunk = Prefetch::take(ahead, tus, &spec.path, offset, n).await?;
            *ahead = Prefetch::start(tus, spec, limits, offset + n);
            let patched = tus.patch_chunk(&current, offset, chunk).await?;
            let what = format!("PATCH {current}");
            let new = check_offset(patched.offset, spec.length, &what)?;
            if new < offset || new > offset + n {
                return Err(UploadError::Protocol {
                    request: what,
                    detail: format!("sent {n} bytes at {offset}, server says offset {new}"),
                });
            }
            if new == spec.length {
                journal.completing();
            }
            journal.confirmed(new)?;
            *known = Some(new);
            finish_or_continue(spec, new, patched.receipt, known, true)
        }
    }
}

/// At full length: done for plain tus; for Chronote, done only with a matching receipt (a
/// missing one is asked for again with HEAD, a different one is a conflict).
fn finish_or_continue(
    spec: &TransferSpec,
    offset: u64,
    receipt: Option<String>,
    known: &mut Option<u64>,
    sent: bool,
) -> Result<Step, UploadError> {
    if offset < spec.length {
        return Ok(Step::At { offset, sent });
    }
    let Some(expected) = &spec.expect_receipt else {
        return Ok(Step::Done(None));
    };
    match receipt {
        Some(r) if r == *expected => Ok(Step::Done(Some(r))),
        Some(r) => Err(UploadError::Conflict {
            what: format!("{}", spec.path.display()),
            detail: format!("server stored sha256 {r}, the file has {expected}"),
        }),
        None => {
            // Maybe the server is still verifying; ask again (HEAD) after a pause.
            *known = None;
            Err(UploadError::Protocol {
                request: format!("upload of {}", spec.path.display()),
                detail: "server has every byte but gave no Chronote-Segment receipt".to_string(),
            })
        }
    }
}

fn check_offset(offset: u64, length: u64, what: &str) -> Result<u64, UploadError> {
    if offset > length {
        return Err(UploadError::Protocol {
            request: what.to_string(),
            detail: format!("Upload-Offset {offset} is past the length {length}"),
        });
    }
    Ok(offset)
}

/// Reads `len` bytes at `offset`; the file must still be at least that long.
pub fn read_chunk(path: &Path, offset: u64, len: u64) -> Result<Bytes, UploadError> {
    let file_err = |source| UploadError::File {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(file_err)?;
    file.seek(SeekFrom::Start(offset)).map_err(file_err)?;
    let len = usize::try_from(len).map_err(|_| UploadError::LocalMismatch {
        path: path.to_path_buf(),
        detail: format!("chunk of {len} bytes does not fit in memory"),
    })?;
    // Read into spare capacity: no zeroing of a buffer the file overwrites anyway.
    let mut buf = Vec::with_capacity(len);
    file.take(len as u64)
        .read_to_end(&mut buf)
        .map_err(file_err)?;
    if buf.len() < len {
        return Err(UploadError::LocalMismatch {
            path: path.to_path_buf(),
            detail: format!("shorter than {} bytes", offset + len as u64),
        });
    }
    Ok(Bytes::from(buf))
}

pub async fn sleep_or_abort(
    delay: Duration,
    abort: &mut watch::Receiver<bool>,
) -> Result<(), UploadError> {
    if delay.is_zero() {
        return Ok(());
    }
    tokio::select! {
        () = tokio::time::sleep(delay) => Ok(()),
        changed = abort.wait_for(|a| *a) => match changed {
            Ok(_) => Err(UploadError::Aborted),
            // The sender is gone: nobody can abort any more, so just wait out the delay.
            Err(_) => {
                tokio::time::sleep(delay).await;
                Ok(())
            }
        },
    }
}
