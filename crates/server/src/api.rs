//! The recordings API: create (idempotent on the client's id), stop, status.
//!
//! Recordings are keyed by (owner, id): every owner has its own id space, so another owner's
//! id is simply "not found" and a creation can never reveal that an id is taken elsewhere.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::auth::Owner;
use crate::db::{RecordingRow, SegmentRow};
use crate::error::ApiError;
use crate::metadata::{MAX_SEQUENCE, valid_name};
use crate::{AppState, JSON, now_ms};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/recordings", post(create))
        .route("/v1/recordings/{id}", get(status))
        .route("/v1/recordings/{id}/stop", post(stop))
}

#[derive(Debug, Deserialize)]
struct CreateRequest {
    id: String,
    title: String,
    source: String,
    tracks: Vec<String>,
    started_at: String,
}

#[derive(Debug, Deserialize)]
struct StopRequest {
    final_sequences: BTreeMap<String, Option<u64>>,
    ended_at: String,
}

#[derive(Debug, Serialize)]
struct TrackStatus {
    name: String,
    received: u64,
    missing: Vec<u64>,
    bytes: u64,
    final_sequence: Option<u64>,
}

#[derive(Debug, Serialize)]
struct RecordingStatus {
    id: String,
    title: String,
    source: String,
    state: &'static str,
    started_at: String,
    ended_at: Option<String>,
    tracks: Vec<TrackStatus>,
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn check_time(field: &str, value: &str) -> Result<(), ApiError> {
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map(|_| ())
        .map_err(|_| ApiError::bad_request(format!("{field} must be an RFC 3339 time")))
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Result<Response, ApiError> {
    let body = serde_json::to_string(value)
        .map_err(|e| crate::ServerError::Corrupt(format!("encode response: {e}")))?;
    Ok((status, [(header::CONTENT_TYPE, JSON)], body).into_response())
}

/// Per-track status; `missing` = sequence numbers absent from 0..=max(final, highest received).
fn build_status(rec: &RecordingRow, segments: &[SegmentRow]) -> RecordingStatus {
    let mut names: Vec<String> = rec.tracks.clone();
    let extra: BTreeSet<&String> = segments
        .iter()
        .map(|s| &s.track)
        .chain(rec.final_sequences.iter().flat_map(|f| f.keys()))
        .filter(|t| !rec.tracks.contains(t))
        .collect();
    names.extend(extra.into_iter().cloned());

    let mut complete = rec.final_sequences.is_some();
    let tracks = names
        .into_iter()
        .map(|name| {
            let received: BTreeSet<u64> = segments
                .iter()
                .filter(|s| s.track == name)
                .map(|s| s.sequence)
                .collect();
            let bytes = segments
                .iter()
                .filter(|s| s.track == name)
                .map(|s| s.bytes)
                .sum();
            let final_sequence = rec
                .final_sequences
                .as_ref()
                .and_then(|f| f.get(&name).copied().flatten());
            let top = final_sequence.max(received.last().copied());
            let missing: Vec<u64> = match top {
                Some(top) => (0..=top).filter(|s| !received.contains(s)).collect(),
                None => Vec::new(),
            };
            if !missing.is_empty() {
                complete = false;
            }
            TrackStatus {
                name,
                received: received.len() as u64,
                missing,
                bytes,
                final_sequence,
            }
        })
        .collect();
    let state = match (&rec.final_sequences, complete) {
        (None, _) => "recording",
        (Some(_), false) => "stopped",
        (Some(_), true) => "complete",
    };
    RecordingStatus {
        id: rec.id.clone(),
        title: rec.title.clone(),
        source: rec.source.clone(),
        state,
        started_at: rec.started_at.clone(),
        ended_at: rec.ended_at.clone(),
        tracks,
    }
}

async fn status_of(
    state: &AppState,
    owner: Owner,
    rec: RecordingRow,
) -> Result<RecordingStatus, ApiError> {
    let id = rec.id.clone();
    let segments = state.db(move |db| db.segments(owner.0, &id)).await?;
    Ok(build_status(&rec, &segments))
}

async fn create(
    State(state): State<AppState>,
    owner: Owner,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: CreateRequest = parse_json(&body)?;
    if !valid_name(&req.id) {
        return Err(ApiError::bad_request(
            "id must be 1-128 of A-Z a-z 0-9 - _ .",
        ));
    }
    if req.title.chars().count() > 1000 {
        return Err(ApiError::bad_request("title is over 1000 characters"));
    }
    if req.source != "desktop" && req.source != "discord" {
        return Err(ApiError::bad_request(
            "source must be \"desktop\" or \"discord\"",
        ));
    }
    if req.tracks.is_empty() || req.tracks.len() > 64 {
        return Err(ApiError::bad_request("tracks must list 1-64 track names"));
    }
    let distinct: BTreeSet<&String> = req.tracks.iter().collect();
    if distinct.len() != req.tracks.len() || !req.tracks.iter().all(|t| valid_name(t)) {
        return Err(ApiError::bad_request(
            "track names must be distinct, 1-128 of A-Z a-z 0-9 - _ .",
        ));
    }
    check_time("started_at", &req.started_at)?;
    let wanted = RecordingRow {
        id: req.id,
        title: req.title,
        source: req.source,
        tracks: req.tracks,
        started_at: req.started_at,
        ended_at: None,
        final_sequences: None,
    };
    let row = wanted.clone();
    let (stored, created) = state
        .db(move |db| db.create_recording(owner.0, &row, now_ms()))
        .await?;
    let same = stored.title == wanted.title
        && stored.source == wanted.source
        && stored.tracks == wanted.tracks
        && stored.started_at == wanted.started_at;
    if !same {
        return Err(ApiError::conflict(
            "a recording with this id exists with a different title, source, tracks or started_at",
        ));
    }
    let status = status_of(&state, owner, stored).await?;
    json_response(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &status,
    )
}

async fn load(state: &AppState, owner: Owner, id: String) -> Result<RecordingRow, ApiError> {
    if !valid_name(&id) {
        return Err(ApiError::not_found());
    }
    state
        .db(move |db| db.recording(owner.0, &id))
        .await?
        .ok_or_else(ApiError::not_found)
}

async fn status(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let rec = load(&state, owner, id).await?;
    let status = status_of(&state, owner, rec).await?;
    json_response(StatusCode::OK, &status)
}

async fn stop(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut rec = load(&state, owner, id).await?;
    let req: StopRequest = parse_json(&body)?;
    check_time("ended_at", &req.ended_at)?;
    if req.final_sequences.len() > 64
        || !req.final_sequences.keys().all(|t| valid_name(t))
        || req
            .final_sequences
            .values()
            .any(|s| s.is_some_and(|s| s > MAX_SEQUENCE))
    {
        return Err(ApiError::bad_request(format!(
            "final_sequences: at most 64 valid track names, sequences up to {MAX_SEQUENCE}"
        )));
    }
    match &rec.final_sequences {
        Some(existing) => {
            if *existing != req.final_sequences || rec.ended_at.as_deref() != Some(&req.ended_at) {
                return Err(ApiError::conflict(
                    "this recording was already stopped with different final sequences or end time",
                ));
            }
        }
        None => {
            let key = rec.id.clone();
            let finals = req.final_sequences.clone();
            let ended = req.ended_at.clone();
            state
                .db(move |db| db.stop_recording(owner.0, &key, &finals, &ended))
                .await?;
            rec.final_sequences = Some(req.final_sequences);
            rec.ended_at = Some(req.ended_at);
        }
    }
    let status = status_of(&state, owner, rec).await?;
    json_response(StatusCode::OK, &status)
}
