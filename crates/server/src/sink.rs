//! `POST /v1/bench/sink`: the baseline of the goodput benchmark (crates/bench), mounted only
//! when [`crate::ServerConfig::bench_sink`] is on.
//!
//! It stores a plain request body the way an upload is stored, without the tus protocol: the
//! same bearer authentication, a blob created durably, the body streamed into it as it arrives,
//! fdatasync at the end of the body and fsync of the file and its directory as at completion.
//! Then the blob is deleted (a benchmark sends gigabytes) and the answer is
//! `200 {"bytes": N}`, N being the bytes stored. A body over `max_size` gets 413, a body that
//! breaks off or stalls gets 400/408; nothing of those is kept.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt;
use rand::RngCore;

use crate::auth::Owner;
use crate::error::{ApiError, ServerError};
use crate::{AppState, JSON, checksum};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/bench/sink", post(sink))
        .layer(DefaultBodyLimit::disable())
}

async fn sink(
    State(state): State<AppState>,
    _owner: Owner,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.config.max_size) {
        return too_large(state.config.max_size).into_response();
    }
    // In its own task, so a client hanging up cannot leave the blob behind.
    let result = match tokio::spawn(store(state, body)).await {
        Ok(result) => result,
        Err(e) => Err(ApiError::from(ServerError::Worker(e.to_string()))),
    };
    match result {
        Ok(bytes) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, JSON)],
            serde_json::json!({ "bytes": bytes }).to_string(),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn store(state: AppState, body: Body) -> Result<u64, ApiError> {
    // The same id space as uploads (32 hex digits), so the blob store's path rule holds.
    let mut raw = [0u8; 16];
    rand::rng().fill_bytes(&mut raw);
    let id = checksum::hex(&raw);
    let key = id.clone();
    state.blocking(move |_, blobs| blobs.create(&key)).await?;
    let stored = receive(&state, &id, body).await;
    let key = id.clone();
    let durable = match stored {
        Ok(n) => state
            .blocking(move |_, blobs| blobs.sync(&key).map(|()| n))
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    state.blocking(move |_, blobs| blobs.delete(&id)).await?;
    durable
}

async fn receive(state: &AppState, id: &str, body: Body) -> Result<u64, ApiError> {
    let mut blob = state.blobs.appender(id).await?;
    let idle: Duration = state.config.body_idle_timeout;
    let limit = state.config.max_size;
    let mut stream = body.into_data_stream();
    let mut written = 0u64;
    loop {
        match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "the body stalled; nothing was kept",
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(_))) => {
                return Err(ApiError::bad_request(
                    "the body ended early; nothing was kept",
                ));
            }
            Ok(Some(Ok(bytes))) => {
                written += bytes.len() as u64;
                if written > limit {
                    return Err(too_large(limit));
                }
                blob.write(&bytes).await?;
            }
        }
    }
    blob.finish(true).await?;
    Ok(written)
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is over the server's max size ({limit} bytes); nothing was kept"),
    )
}
