//! Goodput: one large file through our tus client (`chronote_upload::upload_file`, the plain tus
//! transfer engine) to an in-process `chronote-server`, against a plain HTTP POST of the same
//! bytes to the same server's `POST /v1/bench/sink`, runs interleaved.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use chronote_server::ServerConfig;
use chronote_upload::{FileUploadOptions, upload_file};
use serde::{Deserialize, Serialize};

use crate::inputs;

/// Blocks the plain side reads the file in: the size of our client's PATCH bodies would favour
/// neither side, 1 MiB keeps the reader thread ahead of the socket.
const PLAIN_READ: usize = 1 << 20;
/// PATCH body size of the diagnostic third side: shows how much of the gap is per-PATCH cost.
pub const LARGE_CHUNK: u64 = 64 << 20;

/// One timed upload of the whole file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GoodputRun {
    pub wall: Duration,
    /// Bytes the server confirmed: the upload's offset (HEAD) or the sink's answer.
    pub confirmed: u64,
}

impl GoodputRun {
    /// MB/s (10^6 bytes per second) of confirmed bytes.
    pub fn mb_per_sec(&self) -> f64 {
        let secs = self.wall.as_secs_f64();
        if secs > 0.0 {
            self.confirmed as f64 / secs / 1e6
        } else {
            f64::NAN
        }
    }
}

/// Every run of both sides, in the order they ran (tus, plain, tus, plain, ...).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GoodputResult {
    pub size: u64,
    /// PATCH body size of our client (its default).
    pub chunk_bytes: u64,
    pub tus: Vec<GoodputRun>,
    pub plain: Vec<GoodputRun>,
    /// Diagnostic, not the target: the same tus path with [`LARGE_CHUNK`] PATCH bodies.
    pub tus_large: Vec<GoodputRun>,
}

/// Runs `runs` interleaved pairs over a file of `size` pseudo-random bytes in a temporary
/// directory (so under `$TMPDIR`), the server's data directory next to it.
pub fn bench(size: u64, runs: usize) -> Result<GoodputResult> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let file = dir.path().join("goodput.bin");
    write_file(&file, size)?;
    inputs::warm_page_cache(&file)?;
    let data = dir.path().join("server");
    let token = chronote_server::create_token(&data, "bench")
        .context("cannot create a token for the benchmark server")?;
    let mut config = ServerConfig::new(&data);
    config.listen = ([127, 0, 0, 1], 0).into();
    config.bench_sink = true;
    // Tus-Max-Size must admit the file (the default is exactly 1 GiB).
    config.max_size = config.max_size.max(size);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async move {
        let server = chronote_server::bind(config)
            .await
            .context("cannot start the in-process chronote-server")?;
        let result = interleave(server.local_addr(), &token, &file, size, runs).await;
        server
            .shutdown()
            .await
            .context("the benchmark server failed")?;
        result
    })
}

async fn interleave(
    addr: std::net::SocketAddr,
    token: &str,
    file: &Path,
    size: u64,
    runs: usize,
) -> Result<GoodputResult> {
    let options = FileUploadOptions {
        token: Some(token.to_string()),
        ..FileUploadOptions::default()
    };
    let http = reqwest::Client::new();
    let mut result = GoodputResult {
        size,
        chunk_bytes: options.chunk_bytes,
        tus: Vec::new(),
        plain: Vec::new(),
        tus_large: Vec::new(),
    };
    let large = FileUploadOptions {
        chunk_bytes: LARGE_CHUNK,
        ..options.clone()
    };
    for i in 1..=runs {
        settle();
        let tus = run_tus(&http, addr, token, file, size, &options).await?;
        eprintln!(
            "goodput run {i}/{runs}: tus {:.2} s, {:.1} MB/s",
            tus.wall.as_secs_f64(),
            tus.mb_per_sec()
        );
        result.tus.push(tus);
        settle();
        let plain = run_plain(&http, addr, token, file, size).await?;
        eprintln!(
            "goodput run {i}/{runs}: plain POST {:.2} s, {:.1} MB/s",
            plain.wall.as_secs_f64(),
            plain.mb_per_sec()
        );
        result.plain.push(plain);
        settle();
        let tus_large = run_tus(&http, addr, token, file, size, &large).await?;
        eprintln!(
            "goodput run {i}/{runs}: tus with {} MiB PATCHes {:.2} s, {:.1} MB/s (diagnostic)",
            LARGE_CHUNK >> 20,
            tus_large.wall.as_secs_f64(),
            tus_large.mb_per_sec()
        );
        result.tus_large.push(tus_large);
    }
    Ok(result)
}

/// Flushes what the previous run left dirty so it is not written back during the next one.
fn settle() {
    // SAFETY: sync() takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

async fn run_tus(
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
    token: &str,
    file: &Path,
    size: u64,
    options: &FileUploadOptions,
) -> Result<GoodputRun> {
    let metadata = vec![("filename".to_string(), "goodput.bin".to_string())];
    let started = Instant::now();
    let url = upload_file(&format!("http://{addr}/files/"), file, &metadata, options)
        .await
        .context("the tus upload failed")?;
    let wall = started.elapsed();
    let head = http
        .head(url.clone())
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .with_context(|| format!("HEAD {url} failed"))?;
    let confirmed = head
        .headers()
        .get("upload-offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .with_context(|| {
            format!(
                "HEAD {url} answered {} without a valid Upload-Offset",
                head.status()
            )
        })?;
    if confirmed != size {
        bail!("the tus upload ended at offset {confirmed}, expected {size}");
    }
    // Not timed: frees the disk for the next run (the sink deletes its copy itself).
    let deleted = http
        .delete(url.clone())
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .with_context(|| format!("DELETE {url} failed"))?;
    if !deleted.status().is_success() {
        bail!("DELETE {url} answered {}", deleted.status());
    }
    Ok(GoodputRun { wall, confirmed })
}

async fn run_plain(
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
    token: &str,
    file: &Path,
    size: u64,
) -> Result<GoodputRun> {
    let started = Instant::now();
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    let path = file.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || read_into(&path, tx));
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async {
        rx.recv().await.map(|chunk| (chunk, rx))
    }));
    let response = http
        .post(format!("http://{addr}/v1/bench/sink"))
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_LENGTH, size)
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(body)
        .send()
        .await
        .context("POST /v1/bench/sink failed")?;
    let status = response.status();
    let text = response
        .text()
        .await
        .context("cannot read the sink's answer")?;
    let wall = started.elapsed();
    reader
        .await
        .context("the file reader panicked")?
        .context("cannot read the goodput file")?;
    if !status.is_success() {
        bail!("POST /v1/bench/sink answered {status}: {text}");
    }
    let answer: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("the sink answered {text:?}"))?;
    let confirmed = answer
        .get("bytes")
        .and_then(serde_json::Value::as_u64)
        .with_context(|| format!("the sink's answer has no byte count: {text}"))?;
    if confirmed != size {
        bail!("the sink stored {confirmed} bytes, expected {size}");
    }
    Ok(GoodputRun { wall, confirmed })
}

/// Feeds the file to the request body in [`PLAIN_READ`] blocks.
fn read_into(path: &PathBuf, tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>) -> Result<()> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    loop {
        let mut block = vec![0u8; PLAIN_READ];
        let n = match file.read(&mut block) {
            Ok(n) => n,
            Err(e) => {
                let message = e.to_string();
                let _ = tx.blocking_send(Err(e));
                bail!("cannot read {}: {message}", path.display());
            }
        };
        if n == 0 {
            return Ok(());
        }
        block.truncate(n);
        if tx.blocking_send(Ok(Bytes::from(block))).is_err() {
            // The request ended early; its error is reported by the sender.
            return Ok(());
        }
    }
}

/// `size` pseudo-random (incompressible) bytes.
fn write_file(path: &Path, size: u64) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        out.write_all(&block[..n])
            .with_context(|| format!("cannot write {}", path.display()))?;
        left -= n as u64;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
