//! The client's reaction to faults the real server cannot produce on demand (423/429/503 with
//! Retry-After, 460, a server that keeps fewer bytes than sent, a vanished upload, 409), from a
//! small scripted tus server. Everything else is tested against the real server.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chronote_upload::{FileUploadOptions, upload_file};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
enum Fault {
    /// Answer this status (with Retry-After if given) and keep nothing of the body.
    Status(u16, Option<String>),
    /// Keep only the first half of the PATCH body and say so in Upload-Offset.
    StoreHalf,
    /// Forget the upload and answer 404.
    Gone,
}

#[derive(Debug, Clone)]
struct Logged {
    method: String,
    offset: Option<u64>,
    status: u16,
    at: Instant,
}

#[derive(Default)]
struct Mock {
    uploads: HashMap<String, (u64, Vec<u8>)>,
    /// Faults for the next requests of a method, in order.
    script: VecDeque<(&'static str, Fault)>,
    log: Vec<Logged>,
    created: u64,
}

type Shared = Arc<Mutex<Mock>>;

async fn handle(
    axum::extract::State(state): axum::extract::State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut m = state.lock().unwrap();
    let offset_hdr = headers
        .get("upload-offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let id = uri.path().trim_start_matches("/files/").to_string();
    let fault = match m.script.front() {
        Some((name, _)) if *name == method.as_str() => m.script.pop_front().map(|(_, f)| f),
        _ => None,
    };
    let resp = respond(&mut m, &method, &id, &headers, offset_hdr, &body, fault);
    let status = resp.status().as_u16();
    m.log.push(Logged {
        method: method.to_string(),
        offset: offset_hdr,
        status,
        at: Instant::now(),
    });
    resp
}

fn tus(status: StatusCode) -> axum::http::response::Builder {
    Response::builder()
        .status(status)
        .header("Tus-Resumable", "1.0.0")
}

fn respond(
    m: &mut Mock,
    method: &Method,
    id: &str,
    headers: &HeaderMap,
    offset_hdr: Option<u64>,
    body: &[u8],
    fault: Option<Fault>,
) -> Response {
    match fault {
        Some(Fault::Status(code, retry_after)) => {
            let mut b = tus(StatusCode::from_u16(code).unwrap());
            if let Some(ra) = retry_after {
                b = b.header("Retry-After", ra);
            }
            return b.body(axum::body::Body::from("scripted")).unwrap();
        }
        Some(Fault::Gone) => {
            m.uploads.remove(id);
            return tus(StatusCode::NOT_FOUND).body(Default::default()).unwrap();
        }
        _ => {}
    }
    match *method {
        Method::OPTIONS => tus(StatusCode::NO_CONTENT)
            .header("Tus-Version", "1.0.0")
            .header("Tus-Extension", "creation,creation-with-upload,checksum")
            .header("Tus-Checksum-Algorithm", "sha256")
            .body(Default::default())
            .unwrap(),
        Method::POST => {
            let length: u64 = headers["upload-length"].to_str().unwrap().parse().unwrap();
            m.created += 1;
            let id = format!("{:032x}", m.created);
            m.uploads.insert(id.clone(), (length, body.to_vec()));
            tus(StatusCode::CREATED)
                .header("Location", format!("/files/{id}"))
                .header("Upload-Offset", body.len())
                .body(Default::default())
                .unwrap()
        }
        Method::HEAD => match m.uploads.get(id) {
            Some((len, data)) => tus(StatusCode::OK)
                .header("Upload-Offset", data.len())
                .header("Upload-Length", *len)
                .header("Cache-Control", "no-store")
                .body(Default::default())
                .unwrap(),
            None => tus(StatusCode::NOT_FOUND).body(Default::default()).unwrap(),
        },
        Method::PATCH => {
            let Some((_, data)) = m.uploads.get_mut(id) else {
                return tus(StatusCode::NOT_FOUND).body(Default::default()).unwrap();
            };
            if offset_hdr != Some(data.len() as u64) {
                return tus(StatusCode::CONFLICT).body(Default::default()).unwrap();
            }
            let Some(sum) = headers.get("upload-checksum").and_then(|v| v.to_str().ok()) else {
                return tus(StatusCode::BAD_REQUEST)
                    .body(Default::default())
                    .unwrap();
            };
            let want = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
            if sum != format!("sha256 {want}") {
                return tus(StatusCode::from_u16(460).unwrap())
                    .body(Default::default())
                    .unwrap();
            }
            let keep = match fault {
                Some(Fault::StoreHalf) => body.len() / 2,
                _ => body.len(),
            };
            data.extend_from_slice(&body[..keep]);
            tus(StatusCode::NO_CONTENT)
                .header("Upload-Offset", data.len())
                .body(Default::default())
                .unwrap()
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

async fn start(script: Vec<(&'static str, Fault)>) -> (SocketAddr, Shared) {
    let state: Shared = Arc::new(Mutex::new(Mock {
        script: script.into(),
        ..Mock::default()
    }));
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, state)
}

/// A 5,000-byte file of varied bytes.
fn file() -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..5_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
    let path = dir.path().join("data.bin");
    std::fs::write(&path, &data).unwrap();
    (dir, path, data)
}

fn options() -> FileUploadOptions {
    FileUploadOptions {
        chunk_bytes: 1_000,
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        request_timeout: Duration::from_secs(5),
        ..FileUploadOptions::default()
    }
}

/// Uploads through the scripted server; returns the log and the stored uploads.
async fn run(script: Vec<(&'static str, Fault)>) -> (Vec<Logged>, Vec<Vec<u8>>, Vec<u8>) {
    let (_dir, path, data) = file();
    let (addr, state) = start(script).await;
    let url = upload_file(&format!("http://{addr}/files/"), &path, &[], &options())
        .await
        .expect("upload");
    let m = state.lock().unwrap();
    let id = url.path().trim_start_matches("/files/");
    assert_eq!(m.uploads[id].1, data, "stored bytes differ");
    assert!(m.script.is_empty(), "unused faults: {:?}", m.script);
    let stored = m.uploads.values().map(|(_, d)| d.clone()).collect();
    (m.log.clone(), stored, data)
}

fn methods(log: &[Logged]) -> Vec<String> {
    log.iter()
        .map(|l| match l.offset {
            Some(o) => format!("{} {o} {}", l.method, l.status),
            None => format!("{} {}", l.method, l.status),
        })
        .collect()
}

#[tokio::test]
async fn clean_upload_is_one_creation_and_four_patches() {
    let (log, stored, _) = run(vec![]).await;
    assert_eq!(
        methods(&log),
        [
            "OPTIONS 204",
            "POST 201",
            "PATCH 1000 204",
            "PATCH 2000 204",
            "PATCH 3000 204",
            "PATCH 4000 204"
        ]
    );
    assert_eq!(stored.len(), 1);
}

#[tokio::test]
async fn locked_with_retry_after_seconds_waits_then_asks_the_offset() {
    let (log, _, _) = run(vec![("PATCH", Fault::Status(423, Some("1".into())))]).await;
    assert_eq!(
        methods(&log)[..5],
        [
            "OPTIONS 204",
            "POST 201",
            "PATCH 1000 423",
            "HEAD 200",
            "PATCH 1000 204"
        ]
    );
    let waited = log[3].at - log[2].at;
    assert!(waited >= Duration::from_secs(1), "waited {waited:?}");
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
}

#[tokio::test]
async fn too_many_requests_with_an_http_date_waits_until_then() {
    let when = SystemTime::now() + Duration::from_secs(2);
    let date = time::OffsetDateTime::from(when)
        .format(time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        ))
        .unwrap();
    let (log, _, _) = run(vec![("PATCH", Fault::Status(429, Some(date)))]).await;
    assert_eq!(methods(&log)[2..4], ["PATCH 1000 429", "HEAD 200"]);
    // Second resolution: at least one full second passes.
    let waited = log[3].at - log[2].at;
    assert!(waited >= Duration::from_secs(1), "waited {waited:?}");
    assert!(waited < Duration::from_secs(4), "waited {waited:?}");
}

#[tokio::test]
async fn unavailable_then_fine() {
    let (log, _, _) = run(vec![
        ("POST", Fault::Status(503, Some("0".into()))),
        ("POST", Fault::Status(503, None)),
    ])
    .await;
    assert_eq!(
        methods(&log)[..4],
        ["OPTIONS 204", "POST 503", "POST 503", "POST 201"]
    );
}

#[tokio::test]
async fn checksum_mismatch_resends_the_chunk_from_the_same_offset() {
    let (log, stored, _) = run(vec![
        ("PATCH", Fault::Status(460, None)),
        ("PATCH", Fault::Status(460, None)),
    ])
    .await;
    assert_eq!(
        methods(&log)[2..8],
        [
            "PATCH 1000 460",
            "HEAD 200",
            "PATCH 1000 460",
            "HEAD 200",
            "PATCH 1000 204",
            "PATCH 2000 204"
        ]
    );
    assert_eq!(stored.len(), 1);
}

#[tokio::test]
async fn a_server_that_keeps_fewer_bytes_is_followed_not_trusted_blindly() {
    let (log, stored, data) = run(vec![
        ("PATCH", Fault::StoreHalf),
        ("PATCH", Fault::StoreHalf),
    ])
    .await;
    // 1000 + 500 kept, then 1500 + 500 kept, then on from 2000.
    assert_eq!(
        methods(&log)[2..6],
        [
            "PATCH 1000 204",
            "PATCH 1500 204",
            "PATCH 2000 204",
            "PATCH 3000 204"
        ]
    );
    assert_eq!(stored, vec![data]);
}

#[tokio::test]
async fn a_vanished_upload_is_created_again() {
    let (log, stored, data) = run(vec![("PATCH", Fault::Gone)]).await;
    assert_eq!(
        methods(&log)[..5],
        [
            "OPTIONS 204",
            "POST 201",
            "PATCH 1000 404",
            "POST 201",
            "PATCH 1000 204"
        ]
    );
    assert_eq!(stored, vec![data]);
}

#[tokio::test]
async fn an_offset_conflict_asks_head_at_once() {
    let (log, _, _) = run(vec![("PATCH", Fault::Status(409, None))]).await;
    assert_eq!(
        methods(&log)[2..5],
        ["PATCH 1000 409", "HEAD 200", "PATCH 1000 204"]
    );
    // No backoff for a 409: the offset is simply asked again.
    assert!(log[3].at - log[2].at < Duration::from_millis(200));
}

#[tokio::test]
async fn a_client_error_gives_up_with_the_status() {
    let (_dir, path, _) = file();
    let (addr, _) = start(vec![("POST", Fault::Status(413, None))]).await;
    let err = upload_file(&format!("http://{addr}/files/"), &path, &[], &options())
        .await
        .expect_err("413 is final");
    assert_eq!(err.status(), Some(413));
    assert_eq!(
        err.to_string(),
        format!("POST http://{addr}/files/: server answered 413: scripted")
    );
}
