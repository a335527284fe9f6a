//! The recordings API: create (idempotent on the client's id), stop, status, transcript,
//! notes; the owner's queue, and the server's metrics.
//!
//! Recordings are keyed by (owner, id): every owner has its own id space, so another owner's
//! id is simply "not found" and a creation can never reveal that an id is taken elsewhere.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::auth::Owner;
use crate::db::{RecordingRow, SegmentProgress, SegmentRow};
use crate::error::ApiError;
use crate::metadata::{MAX_SEQUENCE, valid_name};
use crate::{AppState, JSON, now_ms, progress, queue};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/recordings", post(create))
        .route("/v1/recordings/{id}", get(status))
        .route("/v1/recordings/{id}/stop", post(stop))
        .route("/v1/recordings/{id}/transcript", get(transcript))
        .route("/v1/recordings/{id}/notes", get(notes))
        .route("/v1/queue", get(queue))
        .route("/metrics", get(metrics))
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
    processing: ProcessingStatus,
}

/// How far transcription and notes have got.
#[derive(Debug, Serialize)]
struct ProcessingStatus {
    transcribed: u64,
    /// Segments given up on (they are missing from the transcript).
    failed: u64,
    /// Segments waiting for transcription.
    pending: u64,
    /// End of received audio minus the contiguous transcript end.
    lag_seconds: f64,
    contiguous_end_ms: u64,
    received_end_ms: u64,
    /// Latest notes version (0: none yet), whether it is final, and its outcome.
    notes_version: u64,
    notes_final: bool,
    outcome: Option<String>,
    /// Time from the stop to the first final notes.
    stop_to_notes_ms: Option<i64>,
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn check_time(field: &str, value: &str) -> Result<(), ApiError> {
    parse_time(field, value).map(|_| ())
}

fn parse_time(field: &str, value: &str) -> Result<time::OffsetDateTime, ApiError> {
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map_err(|_| ApiError::bad_request(format!("{field} must be an RFC 3339 time")))
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Result<Response, ApiError> {
    let body = serde_json::to_string(value)
        .map_err(|e| crate::ServerError::Corrupt(format!("encode response: {e}")))?;
    Ok((status, [(header::CONTENT_TYPE, JSON)], body).into_response())
}

/// Per-track status; `missing` = sequence numbers absent from 0..=max(final, highest received).
fn build_status(
    rec: &RecordingRow,
    segments: &[SegmentRow],
    processing: ProcessingStatus,
) -> RecordingStatus {
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
        processing,
    }
}

async fn status_of(
    state: &AppState,
    owner: Owner,
    rec: RecordingRow,
) -> Result<RecordingStatus, ApiError> {
    let id = rec.id.clone();
    let r = rec.clone();
    let (segments, processing) = state
        .db(move |db| {
            let segments = db.segments(owner.0, &id)?;
            let p = progress::compute(&r, &db.progress(owner.0, &id, false)?);
            let notes = db.latest_notes(owner.0, &id, false)?;
            let stop = db.stop_of(owner.0, &id)?;
            let processing = ProcessingStatus {
                transcribed: p.transcribed,
                failed: p.dead,
                pending: p.pending,
                lag_seconds: p.lag_ms() as f64 / 1000.0,
                contiguous_end_ms: p.contiguous_end_ms,
                received_end_ms: p.received_end_ms,
                notes_version: notes.as_ref().map_or(0, |n| n.version),
                notes_final: notes.as_ref().is_some_and(|n| n.is_final),
                outcome: notes.and_then(|n| n.outcome),
                stop_to_notes_ms: stop.and_then(|s| s.notes_latency_ms),
            };
            Ok((segments, processing))
        })
        .await?;
    Ok(build_status(&rec, &segments, processing))
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
    let ended = parse_time("ended_at", &req.ended_at)?;
    // A stored started_at was checked at creation; an unparsable one cannot be compared.
    if let Ok(started) = parse_time("started_at", &rec.started_at)
        && ended < started
    {
        return Err(ApiError::bad_request(format!(
            "ended_at {} is before the recording's started_at {}",
            req.ended_at, rec.started_at
        )));
    }
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
    if rec.final_sequences.is_none() {
        // Final sequences below what was already received would disown received audio.
        let key = rec.id.clone();
        let segments = state.db(move |db| db.segments(owner.0, &key)).await?;
        for (track, last) in &req.final_sequences {
            let received = segments
                .iter()
                .filter(|s| &s.track == track)
                .map(|s| s.sequence)
                .max();
            let below = match (last, received) {
                (Some(last), Some(received)) => received > *last,
                (None, Some(_)) => true,
                _ => false,
            };
            if below {
                return Err(ApiError::conflict(format!(
                    "final_sequences: track {track} already has segment {} on the server, \
                     past the final sequence given ({})",
                    received.unwrap_or_default(),
                    last.map_or("none".to_string(), |l| l.to_string())
                )));
            }
        }
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
                .db(move |db| db.stop_recording(owner.0, &key, &finals, &ended, now_ms()))
                .await?;
            // Its finalization job is queued.
            state.wake.notify_waiters();
            rec.final_sequences = Some(req.final_sequences);
            rec.ended_at = Some(req.ended_at);
        }
    }
    let status = status_of(&state, owner, rec).await?;
    json_response(StatusCode::OK, &status)
}

/// `?format=text` or `?format=json`; without it, `Accept: text/plain` picks text.
fn wants_text(query: Option<&str>, headers: &HeaderMap) -> Result<bool, ApiError> {
    let mut format = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "format" {
            format = Some(v.to_string());
        }
    }
    match format.as_deref() {
        Some("text") => Ok(true),
        Some("json") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "format must be \"json\" or \"text\", not {other:?}"
        ))),
        None => Ok(headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| {
                a.split(',')
                    .any(|t| t.trim().to_ascii_lowercase().starts_with("text/plain"))
            })),
    }
}

#[derive(Debug, Serialize)]
struct TranscriptBody {
    recording_id: String,
    segments_received: u64,
    segments_transcribed: u64,
    segments_failed: u64,
    /// Every segment up to the final sequences is received and finished.
    complete: bool,
    utterances: Vec<chronote_assemble::Utterance>,
}

async fn transcript(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let text = wants_text(query.as_deref(), &headers)?;
    let rec = load(&state, owner, id).await?;
    let key = rec.id.clone();
    let rows: Vec<SegmentProgress> = state.db(move |db| db.progress(owner.0, &key, true)).await?;
    let p = progress::compute(&rec, &rows);
    let utterances = progress::utterances(&rows);
    if text {
        return Ok((
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            chronote_assemble::render_text(&utterances),
        )
            .into_response());
    }
    json_response(
        StatusCode::OK,
        &TranscriptBody {
            recording_id: rec.id,
            segments_received: p.received,
            segments_transcribed: p.transcribed,
            segments_failed: p.dead,
            complete: p.settled(),
            utterances,
        },
    )
}

#[derive(Debug, Serialize)]
struct NotesBody {
    recording_id: String,
    /// 0 while there are no notes yet.
    version: u64,
    is_final: bool,
    /// Final notes: `ready`, `empty`, `partial` or `failed`.
    outcome: Option<String>,
    /// The notes cover the transcript up to here (ms).
    covers_until_ms: u64,
    engine: Option<String>,
    notes: Option<serde_json::Value>,
}

async fn notes(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let rec = load(&state, owner, id).await?;
    let key = rec.id.clone();
    let row = state
        .db(move |db| db.latest_notes(owner.0, &key, false))
        .await?;
    let body = match row {
        None => NotesBody {
            recording_id: rec.id,
            version: 0,
            is_final: false,
            outcome: None,
            covers_until_ms: 0,
            engine: None,
            notes: None,
        },
        Some(n) => NotesBody {
            recording_id: rec.id,
            version: n.version,
            is_final: n.is_final,
            outcome: n.outcome,
            covers_until_ms: n.summarized_until_ms,
            engine: Some(n.engine),
            notes: Some(serde_json::from_str(&n.notes).map_err(|e| {
                crate::ServerError::Corrupt(format!("stored notes version {}: {e}", n.version))
            })?),
        },
    };
    json_response(StatusCode::OK, &body)
}

/// The caller's own queue: job counts and active meetings of this owner only.
async fn queue(State(state): State<AppState>, owner: Owner) -> Result<Response, ApiError> {
    let snapshot = state
        .db(move |db| queue::snapshot(db, Some(owner.0), now_ms()))
        .await?;
    json_response(StatusCode::OK, &snapshot)
}

/// Prometheus text format. Needs the metrics token when one is configured (see
/// `ServerConfig::metrics_token`).
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(expected) = &state.config.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        // Compare hashes so the comparison time says nothing about the token.
        let ok = given.is_some_and(|g| crate::auth::hash(g) == crate::auth::hash(expected));
        if !ok {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "metrics need the metrics token (Authorization: Bearer <token>)",
            )
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
    }
    let snapshot = state
        .db(move |db| queue::snapshot(db, None, now_ms()))
        .await?;
    let body = state.metrics.render(&queue::gauges(&snapshot));
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response())
}
