//! SIGKILL the real `chronote server` process mid-PATCH, restart it: the upload resumes from
//! an offset between what was acknowledged and what was sent, and completes byte-identical.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use reqwest::Method;

/// The `chronote` binary of the same build (built by `cargo build --workspace`).
fn chronote_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("chronote");
    assert!(
        bin.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace`, which `make test` does)",
        bin.display()
    );
    bin
}

fn start(data: &Path) -> (Child, String) {
    let mut child = Command::new(chronote_bin())
        .args(["server", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        // This test is about upload; transcription would only compete for the CPU.
        .args(["--transcriber", "none"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, addr)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_patch_then_restart_resumes_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(chronote_bin())
        .args(["server", "token", "create", "--name", "alice", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.trim().to_string();
    assert!(
        token.starts_with("cht_") && stdout.lines().count() == 1,
        "{stdout:?}"
    );

    let (mut server, addr) = start(dir.path());
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let r = client
        .post(format!("{base}/v1/recordings"))
        .bearer_auth(&token)
        .json(&recording_body("rec", "Crash"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (file, len48) = segment("rec", "me", 0, 1500);
    assert!(file.len() > 60_000, "segment is {} bytes", file.len());
    let r = client
        .post(format!("{base}/files"))
        .bearer_auth(&token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", file.len().to_string())
        .header(
            "Upload-Metadata",
            segment_metadata("rec", "me", 0, &file, len48),
        )
        .header("Content-Type", "application/offset+octet-stream")
        .body(file[..20_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "upload-offset"), "20000");
    let path = location(&r)
        .split_once("/files/")
        .map(|(_, id)| format!("/files/{id}"))
        .unwrap();

    // A PATCH that has sent 40,000 more bytes when the server is killed.
    let mut c = TcpStream::connect(&addr).unwrap();
    write!(
        c,
        "PATCH {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Tus-Resumable: 1.0.0\r\nUpload-Offset: 20000\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: {}\r\n\r\n",
        file.len() - 20_000
    )
    .unwrap();
    c.write_all(&file[20_000..60_000]).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    drop(c);

    let (mut server, addr) = start(dir.path());
    let base = format!("http://{addr}");
    let head = |c: &reqwest::Client| {
        c.request(Method::HEAD, format!("{base}{path}"))
            .bearer_auth(&token)
            .header("Tus-Resumable", "1.0.0")
            .send()
    };
    let r = head(&client).await.unwrap();
    assert_eq!(r.status(), 200);
    let offset: usize = header(&r, "upload-offset").parse().unwrap();
    assert!(
        (20_000..=60_000).contains(&offset),
        "offset {offset} after restart"
    );
    let r = client
        .patch(format!("{base}{path}"))
        .bearer_auth(&token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", offset.to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .body(file[offset..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        header(&r, "chronote-segment"),
        format!("received; sha256={}", sha256_hex(&file))
    );
    let id = path.rsplit('/').next().unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("uploads").join(format!("{id}.bin"))).unwrap(),
        file
    );
    let r = head(&client).await.unwrap();
    assert!(header(&r, "chronote-segment").starts_with("received"));
    server.kill().unwrap();
    server.wait().unwrap();
}

/// A checksummed PATCH is written straight into the blob; SIGKILL mid-body leaves unverified
/// bytes past the stored offset. After the restart they are cut (never counted), the offset is
/// exactly what was acknowledged, and the upload completes byte-identical.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_checksummed_patch_cuts_unverified_bytes_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(chronote_bin())
        .args(["server", "token", "create", "--name", "alice", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let (mut server, addr) = start(dir.path());
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let file = bytes(100_000, 7);
    let r = client
        .post(format!("{base}/files"))
        .bearer_auth(&token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", file.len().to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .header(
            "Upload-Checksum",
            format!("sha256 {}", sha256_b64(&file[..20_000])),
        )
        .body(file[..20_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "upload-offset"), "20000");
    let path = location(&r)
        .split_once("/files/")
        .map(|(_, id)| format!("/files/{id}"))
        .unwrap();
    let id = path.rsplit('/').next().unwrap().to_string();
    let blob = dir.path().join("uploads").join(format!("{id}.bin"));

    // A checksummed PATCH that has sent 40,000 of its 80,000 bytes when the server is killed.
    let mut c = TcpStream::connect(&addr).unwrap();
    write!(
        c,
        "PATCH {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Tus-Resumable: 1.0.0\r\nUpload-Offset: 20000\r\nUpload-Checksum: sha256 {}\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: {}\r\n\r\n",
        sha256_b64(&file[20_000..]),
        file.len() - 20_000
    )
    .unwrap();
    c.write_all(&file[20_000..60_000]).unwrap();
    // The unverified bytes really are in the blob when the server dies.
    for _ in 0..500 {
        if std::fs::metadata(&blob).unwrap().len() >= 60_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(std::fs::metadata(&blob).unwrap().len(), 60_000);
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    drop(c);

    let (mut server, addr) = start(dir.path());
    assert_eq!(std::fs::metadata(&blob).unwrap().len(), 20_000);
    let base = format!("http://{addr}");
    let r = client
        .request(Method::HEAD, format!("{base}{path}"))
        .bearer_auth(&token)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "upload-offset"), "20000");
    let r = client
        .patch(format!("{base}{path}"))
        .bearer_auth(&token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", "20000")
        .header("Content-Type", "application/offset+octet-stream")
        .header(
            "Upload-Checksum",
            format!("sha256 {}", sha256_b64(&file[20_000..])),
        )
        .body(file[20_000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "upload-offset"), "100000");
    assert_eq!(std::fs::read(&blob).unwrap(), file);
    server.kill().unwrap();
    server.wait().unwrap();
}

fn sha256_b64(data: &[u8]) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(data))
}
