//! What happens when an upload reaches its length (verification and "segment received"), what
//! startup does with uploads a crash interrupted, and expiry.

use std::time::Duration;

use axum::http::StatusCode;

use crate::db::{UploadRow, UploadState};
use crate::error::{ApiError, ServerError};
use crate::metadata::check_timeline;
use crate::{AppState, now_ms};

/// Completes `upload` (its offset equals its length; the caller holds its lock).
///
/// A segment upload must lie within the bounded timeline, hash to its metadata sha256 and be
/// a well-formed Ogg Opus stream of the declared length; otherwise it is deleted (so the client can create it again) and the
/// answer is 422. Then the blob is fsynced and "complete" plus "segment received" commit in one
/// transaction, before the caller sends its 204.
pub(crate) async fn finalize(state: &AppState, upload: UploadRow) -> Result<UploadRow, ApiError> {
    let verdict = state
        .blocking(move |db, blobs| {
            let id = upload.id.clone();
            let length = upload.offset;
            if let Some(slot) = &upload.segment {
                let reject = |message: String| -> Result<Result<UploadRow, String>, ServerError> {
                    db.delete_upload(&id)?;
                    blobs.delete(&id)?;
                    tracing::warn!(upload = %id, %message, "segment rejected");
                    Ok(Err(message))
                };
                // Checked at creation; this catches an upload created before the bound.
                if let Err(e) = check_timeline(slot.start_48k, slot.length_48k) {
                    return reject(format!("{}; the upload was discarded", e.message));
                }
                let actual = blobs.sha256(&id)?;
                if actual != slot.sha256 {
                    return reject(format!(
                        "sha256 mismatch: Upload-Metadata says {}, the {length} bytes received \
                         hash to {actual}; the upload was discarded, create it again",
                        slot.sha256
                    ));
                }
                let path = blobs.path(&id);
                match chronote_encode::inspect(&path) {
                    Err(e) => {
                        // The message names our file; the client only needs the reason.
                        let reason = e.to_string().replace(&path.display().to_string(), "upload");
                        return reject(format!(
                            "not a well-formed Ogg Opus stream ({reason}); the upload was \
                             discarded"
                        ));
                    }
                    Ok(info) if info.length_48k != slot.length_48k => {
                        return reject(format!(
                            "the Ogg Opus stream is {} samples long (48 kHz), Upload-Metadata \
                             length_48k says {}; the upload was discarded",
                            info.length_48k, slot.length_48k
                        ));
                    }
                    Ok(_) => {}
                }
            }
            blobs.sync(&id)?;
            db.complete_upload(&upload, length, now_ms())?;
            let mut done = upload;
            done.state = UploadState::Complete;
            tracing::info!(upload = %done.id, bytes = length, segment = done.segment.is_some(), "upload complete");
            Ok(Ok(done))
        })
        .await?;
    let done =
        verdict.map_err(|message| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message))?;
    if done.segment.is_some() {
        state.metrics.add("chronote_uploads_total", vec![], 1.0);
        state
            .metrics
            .add("chronote_upload_bytes_total", vec![], done.offset as f64);
        // Its transcription job was queued with the segment: wake a worker for it.
        state.wake.notify_waiters();
    }
    Ok(done)
}

/// If the upload is incomplete but has all its bytes (a crash between the last append and the
/// completion, or a zero-length upload), completes it now.
pub(crate) async fn settle(state: &AppState, upload: UploadRow) -> Result<UploadRow, ApiError> {
    if upload.state == UploadState::Uploading && upload.length == Some(upload.offset) {
        finalize(state, upload).await
    } else {
        Ok(upload)
    }
}

/// Marks an overdue upload expired and deletes its bytes. The caller holds its lock (or got
/// it with `try_acquire`). Returns true if it expired now.
pub(crate) async fn expire(state: &AppState, id: String) -> Result<bool, ServerError> {
    state
        .blocking(move |db, blobs| {
            let expired = db.mark_expired(&id, now_ms())?;
            if expired {
                blobs.delete(&id)?;
                tracing::info!(upload = %id, "upload expired");
            }
            Ok(expired)
        })
        .await
}

/// Startup: the blob file is the truth about bytes received. A SIGKILL can land after bytes were
/// appended but before the offset was stored, so the stored offset becomes the blob length
/// (capped at Upload-Length); uploads that have every byte are completed (or rejected) now.
pub(crate) async fn reconcile(state: &AppState) -> Result<(), ServerError> {
    let max_size = state.config.max_size;
    let due = state
        .blocking(move |db, blobs| {
            let now = now_ms();
            let mut due = Vec::new();
            for mut upload in db.uploads_in_progress()? {
                if upload.expires_ms <= now {
                    if db.mark_expired(&upload.id, now)? {
                        blobs.delete(&upload.id)?;
                    }
                    continue;
                }
                let len = match blobs.len(&upload.id)? {
                    Some(len) => len,
                    None => {
                        blobs.create(&upload.id)?;
                        0
                    }
                };
                let target = len.min(upload.length.unwrap_or(max_size));
                if len > target {
                    blobs.truncate(&upload.id, target)?;
                }
                if target != upload.offset {
                    tracing::info!(upload = %upload.id, stored = upload.offset, blob = target, "offset recovered from the blob");
                    db.set_offset(&upload.id, target, upload.expires_ms)?;
                    upload.offset = target;
                }
                if upload.length == Some(target) {
                    due.push(upload);
                }
            }
            Ok(due)
        })
        .await?;
    for upload in due {
        let id = upload.id.clone();
        let _guard = state.locks.acquire(&id).await;
        match finalize(state, upload).await {
            Ok(_) => {}
            Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {}
            Err(e) => {
                return Err(ServerError::Corrupt(format!(
                    "completing upload {id} at startup failed: {}",
                    e.message
                )));
            }
        }
    }
    Ok(())
}

/// Expires overdue uploads in the background; uploads busy with a request are left to that
/// request (which checks expiry itself).
pub(crate) async fn sweep_expired(state: AppState) {
    let period =
        (state.config.expiration / 2).clamp(Duration::from_millis(200), Duration::from_secs(60));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let candidates = match state.db(|db| db.expiry_candidates(now_ms())).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "expiry sweep failed");
                continue;
            }
        };
        for id in candidates {
            let Some(_guard) = state.locks.try_acquire(&id) else {
                continue;
            };
            if let Err(e) = expire(&state, id).await {
                tracing::error!(error = %e, "expiring an upload failed");
            }
        }
    }
}
