//! tus 1.0.0 handlers at `/files`: core (HEAD, PATCH, OPTIONS), creation,
//! creation-with-upload, creation-defer-length, expiration, checksum, termination.
//!
//! Every handler that works on an upload takes its lock first (see `locks` for the policy),
//! and every body is streamed into the blob as it arrives (see [`receive`]), so the bytes of a
//! PATCH cut mid-body are kept. PATCH and POST run in their own task: if the client vanishes
//! and hyper drops the handler, the bytes received are still counted.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{head, post};
use futures_util::StreamExt;
use rand::RngCore;

use crate::auth::Owner;
use crate::checksum::{self, Expected};
use crate::db::{Created, UploadRow, UploadState};
use crate::error::{ApiError, ServerError};
use crate::locks::UploadGuard;
use crate::metadata::{self, Metadata, parse_decimal};
use crate::segment::{self, settle};
use crate::{AppState, now_ms};

const TUS_VERSION: &str = "1.0.0";
const EXTENSIONS: &str =
    "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination";
const OFFSET_STREAM: &str = "application/offset+octet-stream";

static TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
static TUS_VERSION_H: HeaderName = HeaderName::from_static("tus-version");
static UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
static UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
static UPLOAD_DEFER_LENGTH: HeaderName = HeaderName::from_static("upload-defer-length");
static UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");
static UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");
static UPLOAD_CHECKSUM: HeaderName = HeaderName::from_static("upload-checksum");
/// The client's proof that a segment is on stable storage and verified.
static CHRONOTE_SEGMENT: HeaderName = HeaderName::from_static("chronote-segment");

/// The status tus assigns to a checksum mismatch.
fn checksum_mismatch() -> StatusCode {
    // 460 is inside 100..=999, so this cannot fail; BAD_REQUEST keeps the type total.
    StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST)
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/files", post(create).options(options))
        .route("/files/", post(create).options(options))
        .route(
            "/files/{id}",
            head(head_upload)
                .patch(patch)
                .delete(terminate)
                .options(options),
        )
        // Bodies are streamed to disk and bounded by Upload-Length / Tus-Max-Size instead.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn(tus_resumable))
}

/// 412 for requests without `Tus-Resumable: 1.0.0` (OPTIONS excepted), and the header on
/// every response.
async fn tus_resumable(request: Request, next: Next) -> Response {
    let supported = request
        .headers()
        .get(&TUS_RESUMABLE)
        .is_some_and(|v| v.as_bytes() == TUS_VERSION.as_bytes());
    let mut response = if request.method() == Method::OPTIONS || supported {
        next.run(request).await
    } else {
        ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "Tus-Resumable: 1.0.0 is required",
        )
        .with_header(TUS_VERSION_H.clone(), HeaderValue::from_static(TUS_VERSION))
        .into_response()
    };
    response
        .headers_mut()
        .insert(TUS_RESUMABLE.clone(), HeaderValue::from_static(TUS_VERSION));
    response
}

async fn options(State(state): State<AppState>, _owner: Owner) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(TUS_VERSION_H.clone(), HeaderValue::from_static(TUS_VERSION));
    headers.insert(
        HeaderName::from_static("tus-extension"),
        HeaderValue::from_static(EXTENSIONS),
    );
    headers.insert(
        HeaderName::from_static("tus-max-size"),
        HeaderValue::from(state.config.max_size),
    );
    headers.insert(
        HeaderName::from_static("tus-checksum-algorithm"),
        HeaderValue::from_static(checksum::ALGORITHMS),
    );
    (StatusCode::NO_CONTENT, headers).into_response()
}

/// Upload ids are 32 lowercase hex digits; anything else cannot be an upload (404), and only
/// checked ids reach the blob store's paths.
fn parse_id(id: &str) -> Result<String, ApiError> {
    if id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(id.to_string())
    } else {
        Err(ApiError::not_found())
    }
}

fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    checksum::hex(&bytes)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::bad_request(format!("{name} is not visible ASCII")))
        })
        .transpose()
}

fn header_u64(headers: &HeaderMap, name: &HeaderName) -> Result<Option<u64>, ApiError> {
    header_str(headers, name)?
        .map(|v| {
            parse_decimal(v.trim()).ok_or_else(|| {
                ApiError::bad_request(format!("{name} must be a non-negative integer"))
            })
        })
        .transpose()
}

fn is_offset_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(OFFSET_STREAM))
}

fn body_present(headers: &HeaderMap) -> bool {
    match headers.get(header::CONTENT_LENGTH) {
        Some(v) => v.to_str().ok().and_then(parse_decimal).unwrap_or(1) > 0,
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

/// RFC 7231 IMF-fixdate.
fn http_date(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    ))
    .unwrap_or_default()
}

fn location(state: &AppState, headers: &HeaderMap, id: &str) -> String {
    if let Some(base) = &state.config.public_url {
        return format!("{}/files/{id}", base.trim_end_matches('/'));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        });
    match host {
        Some(host) => format!("http://{host}/files/{id}"),
        None => format!("/files/{id}"),
    }
}

/// The upload's state headers: offset, length, expiry while incomplete, and the segment proof.
fn upload_headers(upload: &UploadRow) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(UPLOAD_OFFSET.clone(), HeaderValue::from(upload.offset));
    match upload.length {
        Some(len) => h.insert(UPLOAD_LENGTH.clone(), HeaderValue::from(len)),
        None => h.insert(UPLOAD_DEFER_LENGTH.clone(), HeaderValue::from_static("1")),
    };
    if upload.state == UploadState::Uploading
        && let Ok(v) = HeaderValue::from_str(&http_date(upload.expires_ms))
    {
        h.insert(UPLOAD_EXPIRES.clone(), v);
    }
    // sha256 was checked to be 64 hex digits at creation, so the value is a valid header.
    if upload.state == UploadState::Complete
        && let Some(slot) = &upload.segment
        && let Ok(v) = HeaderValue::from_str(&format!("received; sha256={}", slot.sha256))
    {
        h.insert(CHRONOTE_SEGMENT.clone(), v);
    }
    h
}

/// Loads the caller's upload (holding its lock): 404 if unknown or another owner's, 410 if
/// expired (expiring it now if it is overdue).
async fn load_live(state: &AppState, owner: Owner, id: &str) -> Result<UploadRow, ApiError> {
    let key = id.to_string();
    let upload = state
        .db(move |db| db.upload(owner.0, &key))
        .await?
        .ok_or_else(ApiError::not_found)?;
    let gone = || ApiError::new(StatusCode::GONE, "upload expired");
    match upload.state {
        UploadState::Expired => Err(gone()),
        UploadState::Uploading if upload.expires_ms <= now_ms() => {
            segment::expire(state, upload.id.clone()).await?;
            Err(gone())
        }
        _ => Ok(upload),
    }
}

async fn head_upload(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let _guard = state.locks.acquire(&id).await;
    let upload = load_live(&state, owner, &id).await?;
    let upload = settle(&state, upload).await?;
    let mut headers = upload_headers(&upload);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if !upload.metadata.is_empty() {
        let meta = Metadata(upload.metadata.clone()).to_header();
        // Stored values are canonical base64 and keys visible ASCII, so this always succeeds.
        if let Ok(v) = HeaderValue::from_str(&meta) {
            headers.insert(UPLOAD_METADATA.clone(), v);
        }
    }
    Ok((StatusCode::OK, headers).into_response())
}

async fn terminate(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let _guard = state.locks.acquire(&id).await;
    let upload = load_live(&state, owner, &id).await?;
    if upload.state == UploadState::Complete && upload.segment.is_some() {
        // Its bytes are part of a recording now; deleting them would make the recording lose
        // a segment the client was told is safe.
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this segment was received and belongs to its recording; it cannot be terminated",
        ));
    }
    state
        .blocking(move |db, blobs| {
            db.delete_upload(&id)?;
            blobs.delete(&id)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// How a body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The whole body arrived (and, with a checksum, matched).
    Complete,
    /// The connection broke mid-body.
    ClientGone,
    /// A newer request for this upload took over.
    Interrupted,
    /// Nothing arrived for `body_idle_timeout`.
    IdleTimeout,
    /// The body would pass Upload-Length (or Tus-Max-Size); nothing of it was kept.
    TooLarge,
    /// The checksum did not match; nothing of it was kept.
    ChecksumMismatch,
}

struct Received {
    /// Bytes added to the blob (and now counted in the offset).
    appended: u64,
    ending: Ending,
}

/// A parsed `Upload-Checksum` and its text (kept for the blob's `.pending` record).
struct Checksum {
    expected: Expected,
    header: String,
}

fn parse_checksum(headers: &HeaderMap) -> Result<Option<Checksum>, ApiError> {
    header_str(headers, &UPLOAD_CHECKSUM)?
        .map(|v| {
            let expected = Expected::parse(v)?;
            // Parsed, so this is `<algorithm> <base64 of a digest of at most 32 bytes>`; the
            // normal form keeps the `.pending` record short whatever spacing the client sent.
            let digest = v.trim().split_once(' ').map_or("", |(_, d)| d.trim());
            Ok(Checksum {
                header: format!("{} {digest}", expected.algorithm()),
                expected,
            })
        })
        .transpose()
}

/// Streams `body` into upload `id` from offset `start` and stores the new offset.
///
/// Bytes go straight into the blob at `start`. Without a checksum they count even if the body
/// breaks off. With one they are hashed on the way and count only if the whole body arrived
/// and its digest matched; otherwise the blob is cut back to `start`. Before the first of those
/// bytes lands, the blob store durably records that they are unverified (see `blobs`), so a
/// crash mid-body cannot make them count either. A body passing `limit` is cut back to `start`.
/// The blob is fdatasynced once, before the offset is stored, so an offset the client was told
/// is durable.
async fn receive(
    state: &AppState,
    guard: &mut UploadGuard,
    upload: &UploadRow,
    limit: u64,
    checksum: Option<Checksum>,
    body: Body,
) -> Result<Received, ApiError> {
    let start = upload.offset;
    let id = upload.id.clone();
    // The blob may hold bytes past the stored offset if storing the offset failed after an
    // append, or a checksummed body was cut; those were never counted, so they go.
    let key = id.clone();
    let pending = checksum.as_ref().map(|c| c.header.clone());
    state
        .blocking(move |_, blobs| {
            match blobs.len(&key)? {
                None => blobs.create(&key)?,
                Some(len) if len > start => blobs.truncate(&key, start)?,
                Some(len) if len < start => {
                    return Err(ServerError::Corrupt(format!(
                        "upload {key}: blob has {len} bytes, offset says {start}"
                    )));
                }
                Some(_) => {}
            }
            match pending {
                Some(header) => blobs.begin_unverified(&key, start, &header),
                None => blobs.clear_unverified(&key),
            }
        })
        .await?;

    let (expected, hasher) = match checksum {
        Some(c) => {
            let hasher = c.expected.hasher();
            (Some(c.expected), Some(hasher))
        }
        None => (None, None),
    };
    let mut sink = state.blobs.body_writer(&id, start, hasher);
    let idle: Duration = state.config.body_idle_timeout;
    let mut stream = body.into_data_stream();
    let mut sent = 0u64;
    let mut ending = loop {
        // Data that is already there is taken first: a writer that is making progress
        // finishes its chunk, and the interruption lands as soon as its body stalls.
        let next = tokio::select! {
            biased;
            next = tokio::time::timeout(idle, stream.next()) => next,
            () = guard.interrupted() => break Ending::Interrupted,
        };
        match next {
            Err(_) => break Ending::IdleTimeout,
            Ok(None) => break Ending::Complete,
            Ok(Some(Err(e))) => {
                tracing::debug!(upload = %id, error = %e, sent, "request body broke off");
                break Ending::ClientGone;
            }
            Ok(Some(Ok(bytes))) => {
                if start + sent + bytes.len() as u64 > limit {
                    break Ending::TooLarge;
                }
                sent += bytes.len() as u64;
                if sink.write(bytes).await.is_err() {
                    // The writer failed; finishing below reports its error.
                    break Ending::ClientGone;
                }
            }
        }
    };
    // Bytes that may be kept are made durable; the others are cut below.
    let keep = match &expected {
        Some(_) => ending == Ending::Complete,
        None => ending != Ending::TooLarge,
    };
    let written = sink.finish(keep).await?;

    let appended = match (expected, written.hasher) {
        (Some(expected), Some(hasher)) if ending == Ending::Complete => {
            if expected.matches(hasher) {
                written.bytes
            } else {
                tracing::info!(upload = %id, algorithm = expected.algorithm(), "checksum mismatch, chunk discarded");
                ending = Ending::ChecksumMismatch;
                0
            }
        }
        // An unverifiable partial chunk is worth nothing; so is a body over the limit.
        (Some(_), _) => 0,
        (None, _) if ending == Ending::TooLarge => 0,
        (None, _) => written.bytes,
    };
    if appended == 0 && written.bytes > 0 {
        let key = id.clone();
        state
            .blocking(move |_, blobs| blobs.truncate(&key, start))
            .await?;
    }
    if appended > 0 {
        let offset = start + appended;
        let expires = now_ms().saturating_add(expiration_ms(state));
        let key = id.clone();
        state
            .db(move |db| db.set_offset(&key, offset, expires))
            .await?;
    }
    Ok(Received { appended, ending })
}

fn expiration_ms(state: &AppState) -> i64 {
    i64::try_from(state.config.expiration.as_millis()).unwrap_or(i64::MAX)
}

/// The error for a body that did not end normally, or `None` for `Complete`.
fn ending_error(ending: Ending, appended: u64) -> Option<ApiError> {
    match ending {
        Ending::Complete => None,
        Ending::TooLarge => Some(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body would pass Upload-Length (or Tus-Max-Size); nothing of it was stored",
        )),
        Ending::ChecksumMismatch => Some(ApiError::new(
            checksum_mismatch(),
            "Upload-Checksum does not match the body; the chunk was discarded",
        )),
        Ending::Interrupted => Some(ApiError::conflict(format!(
            "interrupted by a newer request for this upload; {appended} bytes of this body were \
             kept, ask HEAD for the offset"
        ))),
        Ending::IdleTimeout => Some(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the body stalled; {appended} bytes were kept"),
        )),
        Ending::ClientGone => Some(ApiError::bad_request(format!(
            "the body ended early; {appended} bytes were kept"
        ))),
    }
}

async fn patch(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run_detached(patch_inner(state, owner, id, headers, body)).await
}

/// Runs a request in its own task so that a client hanging up cannot cancel it between
/// "bytes appended" and "offset stored".
async fn run_detached<F>(work: F) -> Response
where
    F: Future<Output = Result<Response, ApiError>> + Send + 'static,
{
    match tokio::spawn(work).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => e.into_response(),
        Err(e) => ApiError::from(ServerError::Worker(e.to_string())).into_response(),
    }
}

async fn patch_inner(
    state: AppState,
    owner: Owner,
    id: String,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    if !is_offset_stream(&headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("PATCH needs Content-Type: {OFFSET_STREAM}"),
        ));
    }
    let offset = header_u64(&headers, &UPLOAD_OFFSET)?
        .ok_or_else(|| ApiError::bad_request("PATCH needs Upload-Offset"))?;
    let checksum = parse_checksum(&headers)?;
    let content_length = header_u64(&headers, &header::CONTENT_LENGTH)?;
    let new_length = header_u64(&headers, &UPLOAD_LENGTH)?;

    let mut guard = state.locks.acquire(&id).await;
    let mut upload = load_live(&state, owner, &id).await?;
    if upload.offset != offset {
        return Err(ApiError::conflict(format!(
            "Upload-Offset {offset} does not match the upload's offset; ask HEAD"
        ))
        .with_header(UPLOAD_OFFSET.clone(), HeaderValue::from(upload.offset)));
    }
    match (upload.length, new_length) {
        (None, Some(len)) => {
            if len > state.config.max_size {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Upload-Length is over Tus-Max-Size",
                ));
            }
            if len < upload.offset {
                return Err(ApiError::bad_request(
                    "Upload-Length is below the bytes already received",
                ));
            }
            let key = id.clone();
            state.db(move |db| db.set_length(&key, len)).await?;
            upload.length = Some(len);
        }
        (Some(have), Some(len)) if have != len => {
            return Err(ApiError::bad_request(
                "Upload-Length cannot change once it is set",
            ));
        }
        _ => {}
    }
    let limit = upload.length.unwrap_or(state.config.max_size);
    if content_length.is_some_and(|n| offset.saturating_add(n) > limit) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body would pass Upload-Length (or Tus-Max-Size); nothing of it was stored",
        ));
    }
    if upload.state == UploadState::Complete {
        // Reached only with an empty body at offset == length: a retry of the final PATCH
        // whose response was lost. Answer as the original did.
        return Ok((StatusCode::NO_CONTENT, upload_headers(&upload)).into_response());
    }
    let received = receive(&state, &mut guard, &upload, limit, checksum, body).await?;
    if let Some(e) = ending_error(received.ending, received.appended) {
        return Err(e);
    }
    upload.offset += received.appended;
    upload.expires_ms = now_ms().saturating_add(expiration_ms(&state));
    let upload = settle(&state, upload).await?;
    Ok((StatusCode::NO_CONTENT, upload_headers(&upload)).into_response())
}

async fn create(
    State(state): State<AppState>,
    owner: Owner,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run_detached(create_inner(state, owner, headers, body)).await
}

async fn create_inner(
    state: AppState,
    owner: Owner,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let max = state.config.max_size;
    let length = match (
        header_u64(&headers, &UPLOAD_LENGTH)?,
        header_str(&headers, &UPLOAD_DEFER_LENGTH)?,
    ) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "send Upload-Length or Upload-Defer-Length, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "creation needs Upload-Length or Upload-Defer-Length: 1",
            ));
        }
        (None, Some("1")) => None,
        (None, Some(_)) => return Err(ApiError::bad_request("Upload-Defer-Length must be 1")),
        (Some(len), None) => Some(len),
    };
    if length.is_some_and(|l| l > max) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Upload-Length is over Tus-Max-Size ({max})"),
        ));
    }
    let metadata = match headers.get(&UPLOAD_METADATA) {
        None => Metadata::default(),
        Some(v) if v.len() > metadata::MAX_HEADER_BYTES => {
            return Err(ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!(
                    "Upload-Metadata is over {} bytes",
                    metadata::MAX_HEADER_BYTES
                ),
            ));
        }
        Some(v) => Metadata::parse(
            v.to_str()
                .map_err(|_| ApiError::bad_request("Upload-Metadata is not visible ASCII"))?,
        )?,
    };
    let segment = metadata.segment()?;
    let has_body = body_present(&headers);
    if has_body && !is_offset_stream(&headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("a creation request with a body needs Content-Type: {OFFSET_STREAM}"),
        ));
    }
    let checksum = parse_checksum(&headers)?;
    let limit = length.unwrap_or(max);
    if header_u64(&headers, &header::CONTENT_LENGTH)?.is_some_and(|n| n > limit) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is longer than Upload-Length (or Tus-Max-Size); nothing was stored",
        ));
    }
    if let Some(slot) = &segment {
        let recording = slot.recording_id.clone();
        let exists = state
            .db(move |db| db.recording(owner.0, &recording))
            .await?
            .is_some();
        if !exists {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "recording not found: create it with POST /v1/recordings first",
            ));
        }
    }

    let now = now_ms();
    let row = UploadRow {
        id: new_id(),
        owner_id: owner.0,
        length,
        offset: 0,
        metadata: metadata.0,
        created_ms: now,
        expires_ms: now.saturating_add(expiration_ms(&state)),
        state: UploadState::Uploading,
        segment: segment.clone(),
    };
    let new_row = row.clone();
    let created = state
        .blocking(move |db, blobs| {
            blobs.create(&new_row.id)?;
            let created = db.create_upload(&new_row);
            if !matches!(created, Ok(Created::New)) {
                blobs.delete(&new_row.id)?;
            }
            created
        })
        .await?;
    let (id, fresh) = match created {
        Created::New => (row.id.clone(), true),
        Created::Existing(existing) => {
            let theirs = existing.segment.as_ref().map(|s| s.sha256.as_str());
            let ours = segment.as_ref().map(|s| s.sha256.as_str());
            if theirs != ours {
                return Err(ApiError::conflict(format!(
                    "this segment (recording, track, sequence) already has an upload with a \
                     different sha256 ({}); a segment's content never changes",
                    theirs.unwrap_or("none")
                )));
            }
            if existing.length != length {
                return Err(ApiError::conflict(
                    "this segment already has an upload with a different Upload-Length",
                ));
            }
            (existing.id, false)
        }
    };

    let mut guard = state.locks.acquire(&id).await;
    let mut upload = load_live(&state, owner, &id).await?;
    // A body goes in only at offset 0: for an existing upload further along it is a resend of
    // bytes already stored, and appending it would corrupt the upload.
    if has_body && upload.state == UploadState::Uploading && upload.offset == 0 {
        let limit = upload.length.unwrap_or(max);
        let received = receive(&state, &mut guard, &upload, limit, checksum, body).await?;
        upload.offset += received.appended;
        match ending_error(received.ending, received.appended) {
            Some(e) if received.ending == Ending::TooLarge && fresh => {
                let key = id.clone();
                state
                    .blocking(move |db, blobs| {
                        db.delete_upload(&key)?;
                        blobs.delete(&key)
                    })
                    .await?;
                return Err(e);
            }
            Some(e) if received.ending == Ending::ChecksumMismatch => {
                return Err(e.with_header(
                    header::LOCATION,
                    header_value(&location(&state, &headers, &id)),
                ));
            }
            Some(e) if received.ending == Ending::TooLarge => return Err(e),
            // Interrupted or cut: the upload exists with what arrived; the client continues
            // with HEAD + PATCH.
            _ => {}
        }
    }
    let upload = settle(&state, upload).await?;
    let mut response_headers = upload_headers(&upload);
    response_headers.insert(
        header::LOCATION,
        header_value(&location(&state, &headers, &id)),
    );
    tracing::debug!(upload = %id, fresh, offset = upload.offset, "upload created");
    Ok((StatusCode::CREATED, response_headers).into_response())
}

/// Locations are built from checked ids and a checked host, so this never falls back in
/// practice; the fallback keeps a misconfigured public_url from panicking.
fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("/files/"))
}
