//! tus 1.0.0 conformance over real HTTP: every status code and header rule, one test each.

mod common;

use common::*;
use reqwest::Method;

const OCTET: &str = "application/offset+octet-stream";

#[tokio::test(flavor = "multi_thread")]
async fn healthz_needs_no_token() {
    let s = Srv::start().await;
    let r = s.client.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_unsupported_tus_resumable_is_412() {
    let s = Srv::start().await;
    let loc = s.create(10).await;
    for version in [None, Some("0.2.2"), Some("1.0")] {
        for (method, path) in [
            (Method::POST, "/files".to_string()),
            (Method::HEAD, loc.clone()),
            (Method::PATCH, loc.clone()),
            (Method::DELETE, loc.clone()),
        ] {
            let mut r = s
                .client
                .request(method.clone(), s.url(&path))
                .bearer_auth(&s.token_a)
                .header("Upload-Length", "5")
                .header("Upload-Offset", "0")
                .header("Content-Type", OCTET);
            if let Some(v) = version {
                r = r.header("Tus-Resumable", v);
            }
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 412, "{method} {version:?}");
            assert_eq!(header(&r, "tus-version"), "1.0.0");
        }
    }
    // Nothing happened to the upload.
    assert_eq!(s.offset(&loc).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn options_advertises_version_extensions_max_size_and_checksums() {
    let s = Srv::start_with(|c| c.max_size = 123_456).await;
    let r = s
        .client
        .request(Method::OPTIONS, s.url("/files"))
        .bearer_auth(&s.token_a)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "tus-version"), "1.0.0");
    assert_eq!(
        header(&r, "tus-extension"),
        "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination"
    );
    assert_eq!(header(&r, "tus-max-size"), "123456");
    assert_eq!(header(&r, "tus-checksum-algorithm"), "sha1,sha256,crc32");
    assert_eq!(header(&r, "tus-resumable"), "1.0.0");
}

#[tokio::test(flavor = "multi_thread")]
async fn creation_answers_201_with_location_offset_and_expiry() {
    let s = Srv::start().await;
    let r = s
        .req(Method::POST, "/files")
        .header("Upload-Length", "100")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let loc = location(&r);
    let id = loc.strip_prefix(&format!("{}/files/", s.base)).unwrap();
    assert_eq!(id.len(), 32);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(header(&r, "upload-offset"), "0");
    assert!(header(&r, "upload-expires").ends_with(" GMT"));
    assert_eq!(header(&r, "tus-resumable"), "1.0.0");
    assert_eq!(std::fs::metadata(s.blob_path(&loc)).unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn creation_without_length_is_400() {
    let s = Srv::start().await;
    for headers in [
        vec![],
        vec![("Upload-Length", "-1")],
        vec![("Upload-Length", "abc")],
        vec![("Upload-Defer-Length", "2")],
        vec![("Upload-Length", "5"), ("Upload-Defer-Length", "1")],
    ] {
        let mut r = s.req(Method::POST, "/files");
        for (k, v) in &headers {
            r = r.header(*k, *v);
        }
        assert_eq!(r.send().await.unwrap().status(), 400, "{headers:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn creation_with_upload_stores_the_body() {
    let s = Srv::start().await;
    let data = bytes(20_000, 1);
    let r = s
        .req(Method::POST, "/files")
        .header("Upload-Length", "30000")
        .header("Content-Type", OCTET)
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "upload-offset"), "20000");
    let loc = location(&r);
    assert_eq!(s.offset(&loc).await, 20_000);
    assert_eq!(s.blob(&loc), data);
    let rest = bytes(10_000, 2);
    let r = s.patch(&loc, 20_000, rest.clone()).await;
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "upload-offset"), "30000");
    assert!(
        r.headers().get("upload-expires").is_none(),
        "complete uploads do not expire"
    );
    assert_eq!(s.blob(&loc), [data, rest].concat());
}

#[tokio::test(flavor = "multi_thread")]
async fn defer_length_then_patch_with_upload_length() {
    let s = Srv::start().await;
    let r = s
        .req(Method::POST, "/files")
        .header("Upload-Defer-Length", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let loc = location(&r);
    let h = s.head(&loc).await;
    assert_eq!(header(&h, "upload-defer-length"), "1");
    assert!(h.headers().get("upload-length").is_none());
    let r = s.patch(&loc, 0, bytes(100, 3)).await;
    assert_eq!(r.status(), 204);
    let r = s
        .req(Method::PATCH, &loc)
        .header("Upload-Offset", "100")
        .header("Upload-Length", "150")
        .header("Content-Type", OCTET)
        .body(bytes(50, 4))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "upload-offset"), "150");
    let h = s.head(&loc).await;
    assert_eq!(header(&h, "upload-length"), "150");
    assert_eq!(header(&h, "upload-offset"), "150");
    // The length cannot change afterwards.
    let r = s
        .req(Method::PATCH, &loc)
        .header("Upload-Offset", "150")
        .header("Upload-Length", "160")
        .header("Content-Type", OCTET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn offset_mismatch_is_409_and_leaves_the_upload_untouched() {
    let s = Srv::start().await;
    let loc = s.create(100).await;
    assert_eq!(s.patch(&loc, 0, bytes(40, 5)).await.status(), 204);
    for wrong in [0, 39, 41, 100] {
        let r = s.patch(&loc, wrong, bytes(10, 6)).await;
        assert_eq!(r.status(), 409, "offset {wrong}");
    }
    assert_eq!(s.offset(&loc).await, 40);
    assert_eq!(s.blob(&loc), bytes(40, 5));
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_content_type_is_415() {
    let s = Srv::start().await;
    let loc = s.create(100).await;
    for ct in [None, Some("application/octet-stream"), Some("text/plain")] {
        let mut r = s.req(Method::PATCH, &loc).header("Upload-Offset", "0");
        if let Some(ct) = ct {
            r = r.header("Content-Type", ct);
        }
        let r = r.body(bytes(10, 7)).send().await.unwrap();
        assert_eq!(r.status(), 415, "{ct:?}");
    }
    assert_eq!(s.offset(&loc).await, 0);
    // Creation-with-upload with a body of the wrong type.
    let r = s
        .req(Method::POST, "/files")
        .header("Upload-Length", "10")
        .header("Content-Type", "text/plain")
        .body(bytes(10, 7))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
}

#[tokio::test(flavor = "multi_thread")]
async fn over_max_size_is_413() {
    let s = Srv::start_with(|c| c.max_size = 1000).await;
    let r = s
        .req(Method::POST, "/files")
        .header("Upload-Length", "1001")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = s
        .req(Method::POST, "/files")
        .header("Upload-Length", "1000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Deferred length: the body and a late Upload-Length are both bounded by Tus-Max-Size.
    let r = s
        .req(Method::POST, "/files")
        .header("Upload-Defer-Length", "1")
        .send()
        .await
        .unwrap();
    let loc = location(&r);
    assert_eq!(s.patch(&loc, 0, bytes(1001, 8)).await.status(), 413);
    let r = s
        .req(Method::PATCH, &loc)
        .header("Upload-Offset", "0")
        .header("Upload-Length", "5000")
        .header("Content-Type", OCTET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(s.offset(&loc).await, 0);
    assert_eq!(s.blob(&loc).len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_past_upload_length_is_413_and_stores_nothing() {
    let s = Srv::start().await;
    let loc = s.create(100).await;
    assert_eq!(s.patch(&loc, 0, bytes(60, 9)).await.status(), 204);
    // Content-Length says it in advance.
    assert_eq!(s.patch(&loc, 60, bytes(41, 10)).await.status(), 413);
    assert_eq!(s.offset(&loc).await, 60);
    assert_eq!(s.blob(&loc), bytes(60, 9));
    // A chunked body only shows it while streaming: still nothing of it is kept.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(bytes(30, 11)), Ok(bytes(30, 12))];
    let r = s
        .req(Method::PATCH, &loc)
        .header("Upload-Offset", "60")
        .header("Content-Type", OCTET)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(s.offset(&loc).await, 60);
    assert_eq!(s.blob(&loc), bytes(60, 9));
    // Creation-with-upload with a body longer than Upload-Length.
    let r = s
        .req(Method::POST, "/files")
        .header("Upload-Length", "10")
        .header("Content-Type", OCTET)
        .body(bytes(11, 13))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

async fn checksum_case(s: &Srv, algo: &str, digest: fn(&[u8]) -> Vec<u8>) {
    let loc = s.create(200).await;
    let chunk = bytes(100, 14);
    let mut wrong = chunk.clone();
    wrong[50] ^= 1;
    let bad = s
        .req(Method::PATCH, &loc)
        .header("Upload-Offset", "0")
        .header("Content-Type", OCTET)
        .header(
            "Upload-Checksum",
            format!("{algo} {}", b64(&digest(&wrong))),
        )
        .body(chunk.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 460, "{algo}");
    assert_eq!(s.offset(&loc).await, 0, "{algo}: chunk discarded");
    assert_eq!(s.blob(&loc).len(), 0);
    let good = s
        .req(Method::PATCH, &loc)
        .header("Upload-Offset", "0")
        .header("Content-Type", OCTET)
        .header(
            "Upload-Checksum",
            format!("{algo} {}", b64(&digest(&chunk))),
        )
        .body(chunk.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), 204, "{algo}");
    assert_eq!(header(&good, "upload-offset"), "100");
    assert_eq!(s.blob(&loc), chunk);
}

fn sha1(b: &[u8]) -> Vec<u8> {
    use sha1::Digest;
    sha1::Sha1::digest(b).to_vec()
}

fn sha256(b: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(b).to_vec()
}

/// Bitwise CRC-32 (IEEE), independent of the server's table-driven one.
fn crc32(b: &[u8]) -> Vec<u8> {
    let mut c = !0u32;
    for &x in b {
        c ^= u32::from(x);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    (!c).to_be_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn checksum_sha1_mismatch_is_460_and_match_is_stored() {
    checksum_case(&Srv::start().await, "sha1", sha1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn checksum_sha256_mismatch_is_460_and_match_is_stored() {
    checksum_case(&Srv::start().await, "sha256", sha256).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn checksum_crc32_mismatch_is_460_and_match_is_stored() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926u32.to_be_bytes());
    checksum_case(&Srv::start().await, "crc32", crc32).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unsupported_checksum_algorithm_is_400() {
    let s = Srv::start().await;
    let loc = s.create(10).await;
    for value in [
        "md5 XrY7u+Ae7tCTyyK7j1rNww==",
        "sha1",
        "sha1 not-base64!",
        "sha256 AAAA",
    ] {
        let r = s
            .req(Method::PATCH, &loc)
            .header("Upload-Offset", "0")
            .header("Content-Type", OCTET)
            .header("Upload-Checksum", value)
            .body(bytes(10, 15))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{value}");
    }
    assert_eq!(s.offset(&loc).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn terminated_upload_is_404() {
    let s = Srv::start().await;
    let loc = s.create(100).await;
    assert_eq!(s.patch(&loc, 0, bytes(10, 16)).await.status(), 204);
    let r = s.req(Method::DELETE, &loc).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "tus-resumable"), "1.0.0");
    assert_eq!(s.head(&loc).await.status(), 404);
    assert_eq!(s.patch(&loc, 10, bytes(10, 17)).await.status(), 404);
    assert_eq!(
        s.req(Method::DELETE, &loc).send().await.unwrap().status(),
        404
    );
    assert!(!s.blob_path(&loc).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_upload_is_410() {
    let s = Srv::start_with(|c| c.expiration = std::time::Duration::from_millis(600)).await;
    let loc = s.create(100).await;
    let done = s.create(5).await;
    assert_eq!(s.patch(&done, 0, bytes(5, 18)).await.status(), 204);
    assert_eq!(s.patch(&loc, 0, bytes(10, 18)).await.status(), 204);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(s.head(&loc).await.status(), 410);
    assert_eq!(s.patch(&loc, 10, bytes(10, 19)).await.status(), 410);
    assert!(
        !s.blob_path(&loc).exists(),
        "the bytes of an expired upload are freed"
    );
    // A completed upload never expires.
    assert_eq!(s.head(&done).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn head_reports_offset_length_and_no_store() {
    let s = Srv::start().await;
    let loc = s.create(100).await;
    assert_eq!(s.patch(&loc, 0, bytes(42, 20)).await.status(), 204);
    let r = s.head(&loc).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "upload-offset"), "42");
    assert_eq!(header(&r, "upload-length"), "100");
    assert_eq!(header(&r, "cache-control"), "no-store");
    assert!(header(&r, "upload-expires").ends_with(" GMT"));
    assert_eq!(header(&r, "tus-resumable"), "1.0.0");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_or_malformed_upload_ids_are_404() {
    let s = Srv::start().await;
    for path in [
        "/files/0123456789abcdef0123456789abcdef",
        "/files/..%2F..%2Fserver.db",
        "/files/ABCDEF0123456789ABCDEF0123456789",
        "/files/x",
    ] {
        assert_eq!(s.head(path).await.status(), 404, "{path}");
        assert_eq!(s.patch(path, 0, vec![1]).await.status(), 404, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_without_or_with_bad_offset_is_400() {
    let s = Srv::start().await;
    let loc = s.create(10).await;
    for offset in [
        None,
        Some("-1"),
        Some("1e3"),
        Some(" "),
        Some("99999999999999999999"),
    ] {
        let mut r = s.req(Method::PATCH, &loc).header("Content-Type", OCTET);
        if let Some(o) = offset {
            r = r.header("Upload-Offset", o);
        }
        assert_eq!(
            r.body(vec![1]).send().await.unwrap().status(),
            400,
            "{offset:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_empty_values_are_kept_and_echoed() {
    let s = Srv::start().await;
    let meta = format!(
        "filename {},empty,blank ,type {}",
        b64(b"a b.txt"),
        b64(b"text/plain")
    );
    let r = s
        .req(Method::POST, "/files")
        .header("Upload-Length", "1")
        .header("Upload-Metadata", meta)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let h = s.head(&location(&r)).await;
    assert_eq!(
        header(&h, "upload-metadata"),
        format!(
            "filename {},empty,blank,type {}",
            b64(b"a b.txt"),
            b64(b"text/plain")
        )
    );
}

async fn create_with_metadata(s: &Srv, meta: &str) -> u16 {
    s.req(Method::POST, "/files")
        .header("Upload-Length", "1")
        .header("Upload-Metadata", meta)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_duplicate_key_is_400() {
    let s = Srv::start().await;
    assert_eq!(create_with_metadata(&s, "a YQ==,b Yg==,a Yw==").await, 400);
    assert_eq!(create_with_metadata(&s, "a,a").await, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_bad_base64_or_key_is_400() {
    let s = Srv::start().await;
    for meta in [
        "a !!!!",
        "a YQ=x",
        ",a YQ==",
        "a YQ== Yg==",
        "a YQ==,,b Yg==",
    ] {
        assert_eq!(create_with_metadata(&s, meta).await, 400, "{meta:?}");
    }
    // A key with a byte outside ASCII.
    let r = s
        .req(Method::POST, "/files")
        .header("Upload-Length", "1")
        .header(
            "Upload-Metadata",
            reqwest::header::HeaderValue::from_bytes(b"k\xff YQ==").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_headers_are_431() {
    let s = Srv::start().await;
    let big = format!("name {}", b64(&vec![b'x'; 12_000]));
    assert_eq!(create_with_metadata(&s, &big).await, 431);
    // Any header set over 64 KiB.
    let r = s
        .req(Method::POST, "/files")
        .header("Upload-Length", "1")
        .header("X-Padding", "p".repeat(70_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    // Far past hyper's buffer: answered with 431 too, not dropped.
    let request = format!(
        "POST /files HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nX-Padding: {}\r\n\r\n",
        "p".repeat(1_000_000)
    );
    let response = tokio::task::spawn_blocking({
        let addr = s.addr;
        move || raw(addr, request.as_bytes())
    })
    .await
    .unwrap();
    assert_eq!(raw_status(&response), 431, "{response}");
    assert_eq!(
        s.client
            .get(s.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
