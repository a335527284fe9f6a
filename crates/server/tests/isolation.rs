//! Owner A / owner B / no token / a bad token against every endpoint: nobody reaches another
//! owner's data.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

const OCTET: &str = "application/offset+octet-stream";

#[tokio::test(flavor = "multi_thread")]
async fn nobody_reaches_another_owners_data() {
    let s = Srv::start().await;
    s.recording("rec").await;
    let (file, len48) = segment("rec", "me", 0, 50);
    let r = s
        .req(Method::POST, "/files")
        .header("Upload-Length", file.len().to_string())
        .header(
            "Upload-Metadata",
            segment_metadata("rec", "me", 0, &file, len48),
        )
        .header("Content-Type", OCTET)
        .body(file[..100].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let loc = location(&r);
    let plain = s.create(10).await;

    let bad = "cht_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string();
    let callers: [(&str, Option<String>, u16); 3] = [
        ("owner B", Some(s.token_b.clone()), 404),
        ("no token", None, 401),
        ("bad token", Some(bad), 401),
    ];
    let stop = json!({"final_sequences": {"me": 0}, "ended_at": "2026-01-02T04:00:00Z"});
    for (who, token, denied) in &callers {
        let token = token.as_deref();
        let mut results = Vec::new();
        let r = s
            .req_as(token, Method::GET, "/v1/recordings/rec")
            .send()
            .await
            .unwrap();
        results.push(("GET recording", r.status().as_u16(), *denied));
        let r = s
            .req_as(token, Method::POST, "/v1/recordings/rec/stop")
            .json(&stop)
            .send()
            .await
            .unwrap();
        results.push(("stop", r.status().as_u16(), *denied));
        // Segment creation into A's recording.
        let r = s
            .req_as(token, Method::POST, "/files")
            .header("Upload-Length", file.len().to_string())
            .header(
                "Upload-Metadata",
                segment_metadata("rec", "me", 0, &file, len48),
            )
            .header("Content-Type", OCTET)
            .body(file.clone())
            .send()
            .await
            .unwrap();
        results.push(("POST /files segment", r.status().as_u16(), *denied));
        for target in [&loc, &plain] {
            let r = s.req_as(token, Method::HEAD, target).send().await.unwrap();
            results.push(("HEAD", r.status().as_u16(), *denied));
            let r = s
                .req_as(token, Method::PATCH, target)
                .header("Upload-Offset", "100")
                .header("Content-Type", OCTET)
                .body(file[100..200].to_vec())
                .send()
                .await
                .unwrap();
            results.push(("PATCH", r.status().as_u16(), *denied));
            let r = s
                .req_as(token, Method::DELETE, target)
                .send()
                .await
                .unwrap();
            results.push(("DELETE", r.status().as_u16(), *denied));
        }
        // Endpoints that touch no one's data: B may use them for itself, others get 401.
        let own = if *denied == 404 { 204 } else { 401 };
        let r = s
            .req_as(token, Method::OPTIONS, "/files")
            .send()
            .await
            .unwrap();
        results.push(("OPTIONS", r.status().as_u16(), own));
        let own = if *denied == 404 { 201 } else { 401 };
        let r = s
            .req_as(token, Method::POST, "/v1/recordings")
            .json(&recording_body("rec", "B's own recording with the same id"))
            .send()
            .await
            .unwrap();
        results.push(("create recording", r.status().as_u16(), own));
        for (what, got, want) in results {
            assert_eq!(got, want, "{who}: {what}");
        }
    }
    // A's data is untouched and A still works.
    assert_eq!(s.offset(&loc).await, 100);
    assert_eq!(s.blob(&loc), file[..100]);
    assert_eq!(s.offset(&plain).await, 0);
    let r = s
        .client
        .get(s.url("/v1/recordings/rec"))
        .bearer_auth(&s.token_a)
        .send()
        .await
        .unwrap();
    let st: serde_json::Value = r.json().await.unwrap();
    assert_eq!(st["title"], "Standup");
    assert_eq!(st["state"], "recording");
    let r = s.patch(&loc, 100, file[100..].to_vec()).await;
    assert_eq!(r.status(), 204);
    assert!(header(&r, "chronote-segment").starts_with("received"));
    // B's recording with the same id is B's alone.
    let r = s
        .client
        .get(s.url("/v1/recordings/rec"))
        .bearer_auth(&s.token_b)
        .send()
        .await
        .unwrap();
    let st: serde_json::Value = r.json().await.unwrap();
    assert_eq!(st["title"], "B's own recording with the same id");
    assert_eq!(st["tracks"][0]["received"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn unauthorized_answers_carry_a_bearer_challenge() {
    let s = Srv::start().await;
    for auth in [
        None,
        Some("Basic dXNlcjpwYXNz"),
        Some("Bearer"),
        Some("Bearer nope"),
    ] {
        let mut r = s.client.get(s.url("/v1/recordings/x"));
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        assert!(header(&r, "www-authenticate").starts_with("Bearer"));
    }
}
