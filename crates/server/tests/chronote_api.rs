//! Chronote semantics on top of tus: idempotent recordings and segment slots, verification at
//! completion, stop and status.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const OCTET: &str = "application/offset+octet-stream";

async fn post_json(s: &Srv, path: &str, body: &Value) -> (u16, Value) {
    let r = s
        .client
        .post(s.url(path))
        .bearer_auth(&s.token_a)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn status(s: &Srv, id: &str) -> Value {
    let r = s
        .client
        .get(s.url(&format!("/v1/recordings/{id}")))
        .bearer_auth(&s.token_a)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Creation-with-upload of a whole segment file.
async fn upload_segment(
    s: &Srv,
    rec: &str,
    track: &str,
    seq: u64,
    file: &[u8],
    len48: u64,
) -> reqwest::Response {
    s.req(Method::POST, "/files")
        .header("Upload-Length", file.len().to_string())
        .header(
            "Upload-Metadata",
            segment_metadata(rec, track, seq, file, len48),
        )
        .header("Content-Type", OCTET)
        .body(file.to_vec())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn recording_creation_is_idempotent() {
    let s = Srv::start().await;
    let body = recording_body("rec-1", "Standup");
    let (st, first) = post_json(&s, "/v1/recordings", &body).await;
    assert_eq!(st, 201);
    assert_eq!(first["id"], "rec-1");
    assert_eq!(first["state"], "recording");
    assert_eq!(first["source"], "desktop");
    let (st, again) = post_json(&s, "/v1/recordings", &body).await;
    assert_eq!(st, 200);
    assert_eq!(again, first);
    let (st, err) = post_json(&s, "/v1/recordings", &recording_body("rec-1", "Other")).await;
    assert_eq!(st, 409);
    assert!(err["error"].as_str().unwrap().contains("different"));
}

#[tokio::test(flavor = "multi_thread")]
async fn recording_creation_rejects_bad_bodies_with_400() {
    let s = Srv::start().await;
    let mut bodies = vec![
        json!({"id": "a"}),
        json!("not an object"),
        json!({"id": "../x", "title": "t", "source": "desktop", "tracks": ["me"], "started_at": "2026-01-02T03:04:05Z"}),
        json!({"id": "a", "title": "t", "source": "phone", "tracks": ["me"], "started_at": "2026-01-02T03:04:05Z"}),
        json!({"id": "a", "title": "t", "source": "desktop", "tracks": [], "started_at": "2026-01-02T03:04:05Z"}),
        json!({"id": "a", "title": "t", "source": "desktop", "tracks": ["me", "me"], "started_at": "2026-01-02T03:04:05Z"}),
        json!({"id": "a", "title": "t", "source": "desktop", "tracks": ["me"], "started_at": "yesterday"}),
    ];
    bodies.push(json!({"id": "a", "title": "x".repeat(2000), "source": "desktop", "tracks": ["me"], "started_at": "2026-01-02T03:04:05Z"}));
    for body in bodies {
        let (st, _) = post_json(&s, "/v1/recordings", &body).await;
        assert_eq!(st, 400, "{body}");
    }
    let r = s
        .client
        .post(s.url("/v1/recordings"))
        .bearer_auth(&s.token_a)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn completed_segment_is_verified_and_acknowledged() {
    let s = Srv::start().await;
    s.recording("rec").await;
    let (file, len48) = segment("rec", "me", 0, 100);
    let r = upload_segment(&s, "rec", "me", 0, &file, len48).await;
    assert_eq!(r.status(), 201, "{:?}", r.headers());
    let proof = format!("received; sha256={}", sha256_hex(&file));
    assert_eq!(header(&r, "chronote-segment"), proof);
    assert_eq!(header(&r, "upload-offset"), file.len().to_string());
    let loc = location(&r);
    let h = s.head(&loc).await;
    assert_eq!(header(&h, "chronote-segment"), proof);
    assert_eq!(s.blob(&loc), file);
    let st = status(&s, "rec").await;
    assert_eq!(st["tracks"][0]["name"], "me");
    assert_eq!(st["tracks"][0]["received"], 1);
    assert_eq!(st["tracks"][0]["bytes"], file.len());
    // The same done over PATCHes: the 204 of the final one carries the proof.
    let (file, len48) = segment("rec", "me", 1, 60);
    let r = s
        .req(Method::POST, "/files")
        .header("Upload-Length", file.len().to_string())
        .header(
            "Upload-Metadata",
            segment_metadata("rec", "me", 1, &file, len48),
        )
        .send()
        .await
        .unwrap();
    let loc = location(&r);
    let half = file.len() / 2;
    let r = s.patch(&loc, 0, file[..half].to_vec()).await;
    assert_eq!(r.status(), 204);
    assert!(r.headers().get("chronote-segment").is_none());
    let r = s.patch(&loc, half as u64, file[half..].to_vec()).await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        header(&r, "chronote-segment"),
        format!("received; sha256={}", sha256_hex(&file))
    );
    // A retried final PATCH (its response lost) gets the same answer.
    let r = s.patch(&loc, file.len() as u64, Vec::new()).await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        header(&r, "chronote-segment"),
        format!("received; sha256={}", sha256_hex(&file))
    );
    // A received segment cannot be terminated.
    assert_eq!(
        s.req(Method::DELETE, &loc).send().await.unwrap().status(),
        403
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn segment_creation_is_idempotent_on_the_slot() {
    let s = Srv::start().await;
    s.recording("rec").await;
    let (file, len48) = segment("rec", "me", 3, 100);
    let half = file.len() / 2;
    // First attempt sends only half (the connection "broke").
    let r = s
        .req(Method::POST, "/files")
        .header("Upload-Length", file.len().to_string())
        .header(
            "Upload-Metadata",
            segment_metadata("rec", "me", 3, &file, len48),
        )
        .header("Content-Type", OCTET)
        .body(file[..half].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let loc = location(&r);
    // The retry sends the whole file again: same upload, current offset, nothing re-appended.
    let r = upload_segment(&s, "rec", "me", 3, &file, len48).await;
    assert_eq!(r.status(), 201);
    assert_eq!(location(&r), loc);
    assert_eq!(header(&r, "upload-offset"), half.to_string());
    assert_eq!(s.blob(&loc), file[..half]);
    // Finish it; creating again returns the completed upload with its proof.
    assert_eq!(
        s.patch(&loc, half as u64, file[half..].to_vec())
            .await
            .status(),
        204
    );
    let r = upload_segment(&s, "rec", "me", 3, &file, len48).await;
    assert_eq!(r.status(), 201);
    assert_eq!(location(&r), loc);
    assert_eq!(header(&r, "upload-offset"), file.len().to_string());
    assert!(header(&r, "chronote-segment").starts_with("received; sha256="));
    assert_eq!(s.blob(&loc), file);
    assert_eq!(status(&s, "rec").await["tracks"][0]["received"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn segment_slot_with_a_different_sha256_is_409() {
    let s = Srv::start().await;
    s.recording("rec").await;
    let (file, len48) = segment("rec", "me", 0, 50);
    assert_eq!(
        upload_segment(&s, "rec", "me", 0, &file, len48)
            .await
            .status(),
        201
    );
    let (other, len48b) = segment("rec", "me", 7, 50);
    let r = upload_segment(&s, "rec", "me", 0, &other, len48b).await;
    assert_eq!(r.status(), 409);
    let msg: Value = r.json().await.unwrap();
    assert!(
        msg["error"].as_str().unwrap().contains("different sha256"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn segment_for_an_unknown_recording_is_404() {
    let s = Srv::start().await;
    let (file, len48) = segment("nope", "me", 0, 50);
    assert_eq!(
        upload_segment(&s, "nope", "me", 0, &file, len48)
            .await
            .status(),
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn segment_metadata_must_be_complete_and_valid() {
    let s = Srv::start().await;
    s.recording("rec").await;
    for meta in [
        format!("recording_id {}", b64(b"rec")),
        format!(
            "recording_id {},track {},sequence {},start_48k {},length_48k {},sha256 {},codec {}",
            b64(b"rec"),
            b64(b"me"),
            b64(b"x"),
            b64(b"0"),
            b64(b"1"),
            b64(&[b'a'; 64]),
            b64(b"opus")
        ),
        format!(
            "recording_id {},track {},sequence {},start_48k {},length_48k {},sha256 {},codec {}",
            b64(b"rec"),
            b64(b"me"),
            b64(b"0"),
            b64(b"0"),
            b64(b"1"),
            b64(b"abc"),
            b64(b"opus")
        ),
        format!(
            "recording_id {},track {},sequence {},start_48k {},length_48k {},sha256 {},codec {}",
            b64(b"rec"),
            b64(b"m/e"),
            b64(b"0"),
            b64(b"0"),
            b64(b"1"),
            b64(&[b'a'; 64]),
            b64(b"opus")
        ),
        format!(
            "recording_id {},track {},sequence {},start_48k {},length_48k {},sha256 {},codec {}",
            b64(b"rec"),
            b64(b"me"),
            b64(b"0"),
            b64(b"0"),
            b64(b"1"),
            b64(&[b'a'; 64]),
            b64(b"mp3")
        ),
    ] {
        let r = s
            .req(Method::POST, "/files")
            .header("Upload-Length", "10")
            .header("Upload-Metadata", &meta)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{meta}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_with_its_own_sha256_is_422_and_can_be_created_again() {
    let s = Srv::start().await;
    s.recording("rec").await;
    let garbage = bytes(5000, 42);
    let r = upload_segment(&s, "rec", "me", 0, &garbage, 48_000).await;
    assert_eq!(r.status(), 422);
    let msg: Value = r.json().await.unwrap();
    assert!(msg["error"].as_str().unwrap().contains("Ogg Opus"), "{msg}");
    assert!(
        !msg["error"]
            .as_str()
            .unwrap()
            .contains(s.dir.path().to_str().unwrap())
    );
    assert_eq!(status(&s, "rec").await["tracks"][0]["received"], 0);
    // The slot is free again: the real file goes in.
    let (file, len48) = segment("rec", "me", 0, 50);
    assert_eq!(
        upload_segment(&s, "rec", "me", 0, &file, len48)
            .await
            .status(),
        201
    );
    assert_eq!(status(&s, "rec").await["tracks"][0]["received"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_sha256_or_length_is_422() {
    let s = Srv::start().await;
    s.recording("rec").await;
    let (file, len48) = segment("rec", "me", 0, 50);
    let mut meta = segment_metadata("rec", "me", 0, &file, len48);
    meta = meta.replace(&b64(sha256_hex(&file).as_bytes()), &b64(&[b'0'; 64]));
    let r = s
        .req(Method::POST, "/files")
        .header("Upload-Length", file.len().to_string())
        .header("Upload-Metadata", meta)
        .header("Content-Type", OCTET)
        .body(file.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let msg: Value = r.json().await.unwrap();
    assert!(
        msg["error"].as_str().unwrap().contains("sha256 mismatch"),
        "{msg}"
    );
    // Right sha256, wrong length_48k.
    let r = upload_segment(&s, "rec", "me", 0, &file, len48 + 960).await;
    assert_eq!(r.status(), 422);
    let r = upload_segment(&s, "rec", "me", 0, &file, len48).await;
    assert_eq!(r.status(), 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_and_status_compute_missing_sequences() {
    let s = Srv::start().await;
    s.recording("rec").await;
    for seq in [0, 2] {
        let (file, len48) = segment("rec", "me", seq, 30);
        assert_eq!(
            upload_segment(&s, "rec", "me", seq, &file, len48)
                .await
                .status(),
            201
        );
    }
    let st = status(&s, "rec").await;
    assert_eq!(st["state"], "recording");
    assert_eq!(st["tracks"][0]["missing"], json!([1]));
    assert_eq!(
        st["tracks"][1],
        json!({"name": "others", "received": 0, "missing": [], "bytes": 0, "final_sequence": null})
    );

    let stop =
        json!({"final_sequences": {"me": 3, "others": null}, "ended_at": "2026-01-02T04:00:00Z"});
    let (code, st) = post_json(&s, "/v1/recordings/rec/stop", &stop).await;
    assert_eq!(code, 200);
    assert_eq!(st["state"], "stopped");
    assert_eq!(st["ended_at"], "2026-01-02T04:00:00Z");
    assert_eq!(st["tracks"][0]["missing"], json!([1, 3]));
    assert_eq!(st["tracks"][0]["final_sequence"], 3);
    assert_eq!(st["tracks"][0]["received"], 2);
    // Idempotent; a different stop is a conflict.
    assert_eq!(post_json(&s, "/v1/recordings/rec/stop", &stop).await.0, 200);
    let other =
        json!({"final_sequences": {"me": 4, "others": null}, "ended_at": "2026-01-02T04:00:00Z"});
    assert_eq!(
        post_json(&s, "/v1/recordings/rec/stop", &other).await.0,
        409
    );

    for seq in [1, 3] {
        let (file, len48) = segment("rec", "me", seq, 30);
        assert_eq!(
            upload_segment(&s, "rec", "me", seq, &file, len48)
                .await
                .status(),
            201
        );
    }
    let st = status(&s, "rec").await;
    assert_eq!(st["state"], "complete");
    assert_eq!(st["tracks"][0]["missing"], json!([]));
    assert_eq!(st["tracks"][0]["received"], 4);
    // Stop on an unknown recording, bad stop bodies.
    assert_eq!(
        post_json(&s, "/v1/recordings/none/stop", &stop).await.0,
        404
    );
    let bad = json!({"final_sequences": {"me": -1}, "ended_at": "2026-01-02T04:00:00Z"});
    assert_eq!(post_json(&s, "/v1/recordings/rec/stop", &bad).await.0, 400);
}

#[tokio::test]
async fn stop_rejects_an_end_before_the_start_and_finals_below_received_segments() {
    let s = Srv::start().await;
    s.recording("rec").await;
    for seq in [0, 1, 2] {
        let (file, len48) = segment("rec", "me", seq, 30);
        assert_eq!(
            upload_segment(&s, "rec", "me", seq, &file, len48)
                .await
                .status(),
            201
        );
    }
    // started_at is 2026-01-02T03:04:05Z (recording_body).
    let early =
        json!({"final_sequences": {"me": 2, "others": null}, "ended_at": "2026-01-02T03:04:04Z"});
    let (code, body) = post_json(&s, "/v1/recordings/rec/stop", &early).await;
    assert_eq!(code, 400);
    assert_eq!(
        body["error"],
        "ended_at 2026-01-02T03:04:04Z is before the recording's started_at 2026-01-02T03:04:05Z"
    );
    let low =
        json!({"final_sequences": {"me": 1, "others": null}, "ended_at": "2026-01-02T04:00:00Z"});
    let (code, body) = post_json(&s, "/v1/recordings/rec/stop", &low).await;
    assert_eq!(code, 409);
    assert_eq!(
        body["error"],
        "final_sequences: track me already has segment 2 on the server, past the final sequence given (1)"
    );
    let none = json!({"final_sequences": {"me": null, "others": null}, "ended_at": "2026-01-02T04:00:00Z"});
    assert_eq!(post_json(&s, "/v1/recordings/rec/stop", &none).await.0, 409);
    // Nothing of the refused stops was kept: the recording is still recording.
    assert_eq!(status(&s, "rec").await["state"], "recording");
    let ok =
        json!({"final_sequences": {"me": 2, "others": null}, "ended_at": "2026-01-02T03:04:05Z"});
    let (code, st) = post_json(&s, "/v1/recordings/rec/stop", &ok).await;
    assert_eq!(code, 200);
    assert_eq!(st["state"], "complete");
}
