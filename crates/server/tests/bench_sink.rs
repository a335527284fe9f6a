//! The goodput benchmark's plain-POST baseline: off by default, authenticated, stores the
//! whole body and leaves nothing behind.

mod common;

use common::*;

#[tokio::test]
async fn bench_sink_is_opt_in_authenticated_and_leaves_no_file() {
    let off = Srv::start().await;
    let r = off
        .client
        .post(off.url("/v1/bench/sink"))
        .bearer_auth(&off.token_a)
        .body(vec![1u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let s = Srv::start_with(|c| {
        c.bench_sink = true;
        c.max_size = 2 << 20;
    })
    .await;
    let sink = s.url("/v1/bench/sink");
    let r = s
        .client
        .post(&sink)
        .body(vec![1u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let body = bytes(3 << 19, 7);
    let r = s
        .client
        .post(&sink)
        .bearer_auth(&s.token_b)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: serde_json::Value = r.json().await.unwrap();
    assert_eq!(answer, serde_json::json!({ "bytes": 3 << 19 }));

    let r = s
        .client
        .post(&sink)
        .bearer_auth(&s.token_a)
        .body(vec![0u8; (2 << 20) + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    let left: Vec<_> = std::fs::read_dir(s.dir.path().join("uploads"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
