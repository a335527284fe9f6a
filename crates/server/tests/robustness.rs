//! Cut bodies, stalled writers, concurrent writers and garbage: bytes that arrived are kept,
//! acknowledged bytes are never lost, nothing deadlocks, nothing answers 500.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;

fn patch_head(
    addr: std::net::SocketAddr,
    loc: &str,
    token: &str,
    offset: u64,
    length: usize,
) -> Vec<u8> {
    let path = loc
        .split_once("/files/")
        .map(|(_, id)| format!("/files/{id}"))
        .unwrap();
    format!(
        "PATCH {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Tus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: {length}\r\n\r\n"
    )
    .into_bytes()
}

async fn wait_offset(s: &Srv, loc: &str, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = s.offset(loc).await;
        if got == want || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn interrupted_patch_keeps_the_bytes_that_arrived() {
    let s = Srv::start().await;
    let data = bytes(100_000, 1);
    let loc = s.create(data.len() as u64).await;
    let (addr, token, l, d) = (s.addr, s.token_a.clone(), loc.clone(), data.clone());
    tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(&patch_head(addr, &l, &token, 0, d.len()))
            .unwrap();
        c.write_all(&d[..37_000]).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        // Close with half the body unsent.
    })
    .await
    .unwrap();
    assert_eq!(wait_offset(&s, &loc, 37_000).await, 37_000);
    assert_eq!(s.blob(&loc), data[..37_000]);
    let r = s.patch(&loc, 37_000, data[37_000..].to_vec()).await;
    assert_eq!(r.status(), 204);
    assert_eq!(s.blob(&loc), data);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_request_interrupts_a_stalled_writer_which_keeps_its_bytes() {
    let s = Srv::start().await;
    let data = bytes(50_000, 2);
    let loc = s.create(data.len() as u64).await;
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(&patch_head(s.addr, &loc, &s.token_a, 0, data.len()))
        .unwrap();
    c.write_all(&data[..12_345]).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The stale writer still holds the upload; HEAD interrupts it and sees its bytes.
    let started = Instant::now();
    let offset = s.offset(&loc).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "HEAD waited {:?}",
        started.elapsed()
    );
    assert_eq!(offset, 12_345);
    // The interrupted PATCH was answered 409.
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 512];
    let n = c.read(&mut buf).unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert_eq!(raw_status(&answer), 409, "{answer}");
    drop(c);
    let r = s.patch(&loc, 12_345, data[12_345..].to_vec()).await;
    assert_eq!(r.status(), 204);
    assert_eq!(s.blob(&loc), data);
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_body_times_out_and_keeps_its_bytes() {
    let s = Srv::start_with(|c| c.body_idle_timeout = Duration::from_millis(300)).await;
    let data = bytes(10_000, 3);
    let loc = s.create(data.len() as u64).await;
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(&patch_head(s.addr, &loc, &s.token_a, 0, data.len()))
        .unwrap();
    c.write_all(&data[..4_000]).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 512];
    let n = c.read(&mut buf).unwrap();
    assert_eq!(raw_status(&String::from_utf8_lossy(&buf[..n])), 408);
    assert_eq!(s.offset(&loc).await, 4_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_never_lose_acknowledged_bytes_or_deadlock() {
    let s = std::sync::Arc::new(Srv::start().await);
    let data = std::sync::Arc::new(bytes(400_000, 4));
    let loc = s.create(data.len() as u64).await;
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..6u64 {
        let (s, data, loc, acked) = (s.clone(), data.clone(), loc.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(w);
            let mut statuses = Vec::new();
            loop {
                let before = acked.load(std::sync::atomic::Ordering::SeqCst);
                let r = s.head(&loc).await;
                statuses.push(r.status().as_u16());
                let offset: u64 = header(&r, "upload-offset").parse().unwrap();
                // Never below anything acknowledged before this HEAD was answered.
                assert!(
                    offset >= before,
                    "HEAD {offset} below acknowledged {before}"
                );
                if offset == data.len() as u64 {
                    return statuses;
                }
                let end = (offset as usize + rng.random_range(1_000..60_000)).min(data.len());
                let r = s
                    .patch(&loc, offset, data[offset as usize..end].to_vec())
                    .await;
                statuses.push(r.status().as_u16());
                if r.status() == 204 {
                    let new: u64 = header(&r, "upload-offset").parse().unwrap();
                    acked.fetch_max(new, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }));
    }
    let all = tokio::time::timeout(
        Duration::from_secs(60),
        futures_util::future::join_all(tasks),
    )
    .await
    .expect("writers deadlocked");
    for statuses in all {
        let statuses = statuses.unwrap();
        assert!(
            statuses.iter().all(|s| [200, 204, 409].contains(s)),
            "unexpected statuses {statuses:?}"
        );
    }
    assert_eq!(s.blob(&loc), *data);
}

fn garbage_request(
    rng: &mut StdRng,
    addr: std::net::SocketAddr,
    token: &str,
    loc: &str,
) -> Vec<u8> {
    let kind = rng.random_range(0..4);
    if kind == 0 {
        let n = rng.random_range(1..300);
        return (0..n).map(|_| rng.random()).collect();
    }
    let methods = [
        "GET", "POST", "HEAD", "PATCH", "DELETE", "OPTIONS", "PUT", "BREW", "P\u{0}ST",
    ];
    let id = loc.rsplit('/').next().unwrap();
    let paths = [
        "/files".to_string(),
        format!("/files/{id}"),
        "/files/../../etc/passwd".into(),
        "/files/%00".into(),
        "/v1/recordings".into(),
        "/v1/recordings/rec".into(),
        "/v1/recordings/rec/stop".into(),
        "/v1/recordings/%ff%fe".into(),
        "/healthz".into(),
        "/".into(),
        "*".into(),
    ];
    let values = [
        "",
        "0",
        "-1",
        "1",
        "18446744073709551616",
        "abc",
        "1.0.0",
        "0.2.2",
        "sha1 AAAA",
        "md5 x",
        "sha256 ====",
        "crc32 AAAAAA==",
        "application/offset+octet-stream",
        "text/plain",
        "a YQ==,a",
        "a ???",
        ",,,",
        "k\u{1}v",
        "Bearer x",
        "\u{7f}",
        "1e9",
        " 5 ",
        "chunked",
        "gzip",
    ];
    let names = [
        "Upload-Offset",
        "Upload-Length",
        "Upload-Defer-Length",
        "Upload-Metadata",
        "Upload-Checksum",
        "Content-Type",
        "Tus-Resumable",
        "Content-Length",
        "Transfer-Encoding",
        "Authorization",
        "X-HTTP-Method-Override",
        "Expect",
    ];
    let mut req = format!(
        "{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n",
        methods[rng.random_range(0..methods.len())],
        paths[rng.random_range(0..paths.len())]
    );
    if rng.random_bool(0.8) {
        req.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if rng.random_bool(0.8) {
        req.push_str("Tus-Resumable: 1.0.0\r\n");
    }
    for _ in 0..rng.random_range(0..6) {
        req.push_str(&format!(
            "{}: {}\r\n",
            names[rng.random_range(0..names.len())],
            values[rng.random_range(0..values.len())]
        ));
    }
    req.push_str("\r\n");
    let mut out = req.into_bytes();
    let body_len = rng.random_range(0..200);
    out.extend((0..body_len).map(|_| rng.random::<u8>()));
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_requests_never_get_a_500_and_the_server_keeps_answering() {
    let s = Srv::start_with(|c| c.body_idle_timeout = Duration::from_millis(500)).await;
    s.recording("rec").await;
    let loc = s.create(1000).await;
    let (addr, token) = (s.addr, s.token_a.clone());
    let statuses = tokio::task::spawn_blocking(move || {
        let mut rng = StdRng::seed_from_u64(0xC0FFEE);
        let mut statuses = Vec::new();
        for _ in 0..400 {
            let req = garbage_request(&mut rng, addr, &token, &loc);
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = c.write_all(&req);
            let _ = c.shutdown(Shutdown::Write);
            let mut out = Vec::new();
            let _ = c.read_to_end(&mut out);
            let text = String::from_utf8_lossy(&out).into_owned();
            statuses.push((
                raw_status(&text),
                String::from_utf8_lossy(&req[..req.len().min(200)]).into_owned(),
            ));
        }
        statuses
    })
    .await
    .unwrap();
    for (status, req) in &statuses {
        assert!(*status < 500, "{status} for {req:?}");
    }
    assert!(statuses.iter().filter(|(s, _)| *s >= 400).count() > 100);
    assert_eq!(
        s.client
            .get(s.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let loc = s.create(3).await;
    assert_eq!(s.patch(&loc, 0, vec![1, 2, 3]).await.status(), 204);
    assert_eq!(
        s.req(Method::HEAD, &loc).send().await.unwrap().status(),
        200
    );
}
