//! A segment far along the timeline (a paused meeting, or a client sending a huge start_48k)
//! costs a bounded number of summary calls: rolling windows skip stretches without speech.
//! Timeline positions beyond the documented maximum are refused at upload creation.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chronote_server::ServerConfig;
use chronote_summarize::ExtractiveSummarizer;
use chronote_transcribe::testing::FixedLatency;
use common::*;
use reqwest::Method;
use serde_json::json;

/// 31 days of 48 kHz audio: `chronote_server::metadata::MAX_TIMELINE_48K`.
const MAX_TIMELINE_48K: u64 = 31 * 24 * 3600 * 48_000;

fn with_engines(c: &mut ServerConfig) {
    c.processing.transcriber = Some(Arc::new(FixedLatency::new(Duration::ZERO)));
    c.processing.summarizer = Some(Arc::new(ExtractiveSummarizer::new()));
    c.processing.poll = Duration::from_millis(50);
}

/// Jobs of `kind` for `recording`, read from the server database without writing to it.
fn jobs_of_kind(data: &Path, recording: &str, kind: &str) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(
        data.join("server.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM jobs WHERE kind = ?1 AND recording_id = ?2",
        [kind, recording],
        |r| r.get(0),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_segment_far_along_the_timeline_costs_one_rolling_summary_not_one_per_empty_window() {
    let srv = Srv::start_with(with_engines).await;
    let (base, client, token) = (srv.base.clone(), srv.client.clone(), srv.token_a.clone());
    // 5 s segments: 240 000 samples at 48 kHz, the length from the defect report.
    let (first, len) = segment("x", "me", 0, 250);
    let (second, _) = segment("x", "me", 1, 250);
    assert_eq!(len, 240_000);
    // 10 hours: 59 empty 10-minute windows between the two segments. The edge: the latest
    // start the server accepts for this length, about 4 460 empty windows.
    for (id, far) in [
        ("ten-hours", 10 * 3600 * 48_000),
        ("edge", MAX_TIMELINE_48K - len),
    ] {
        create_recording(&client, &base, &token, id, &["me"]).await;
        upload_segment(&client, &base, &token, id, "me", 0, 0, &first, len).await;
        upload_segment(&client, &base, &token, id, "me", 1, far, &second, len).await;
        stop_recording(&client, &base, &token, id, json!({ "me": 1 })).await;

        let notes_path = format!("/v1/recordings/{id}/notes");
        let notes = eventually(Duration::from_secs(30), "final notes", || async {
            let (_, n) = get_json(&client, &base, &token, &notes_path).await;
            (n["is_final"] == true).then_some(n)
        })
        .await;
        assert_eq!(notes["outcome"], "ready", "{id}: {notes}");
        assert_eq!(notes["covers_until_ms"], (far + len) / 48, "{id}");
        // One rolling window [0, 10 min) with the first segment's text, then the final notes
        // with the far segment's: no window for the empty stretch between them.
        assert_eq!(notes["version"], 2, "{id}: {notes}");
        assert_eq!(jobs_of_kind(srv.dir.path(), id, "summarize"), 1, "{id}");
        assert_eq!(count_rows(srv.dir.path(), "notes", id), 2, "{id}");

        // Nothing more happens afterwards: no summaries trickle in for the empty windows.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(jobs_of_kind(srv.dir.path(), id, "summarize"), 1, "{id}");
        assert_eq!(count_rows(srv.dir.path(), "notes", id), 2, "{id}");
        let (_, status) = get_json(&client, &base, &token, &format!("/v1/recordings/{id}")).await;
        assert_eq!(status["processing"]["notes_version"], 2, "{id}: {status}");

        let transcript_path = format!("/v1/recordings/{id}/transcript");
        let (_, t) = get_json(&client, &base, &token, &transcript_path).await;
        let starts: Vec<u64> = t["utterances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["start_ms"].as_u64().unwrap())
            .collect();
        assert_eq!(starts, vec![0, far / 48], "{id}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn timeline_positions_beyond_the_maximum_are_a_400_naming_the_field() {
    let srv = Srv::start_with(with_engines).await;
    let (base, client, token) = (srv.base.clone(), srv.client.clone(), srv.token_a.clone());
    create_recording(&client, &base, &token, "huge", &["me"]).await;
    let (file, len) = segment("huge", "me", 0, 250);
    for (start, length, field) in [
        (i64::MAX as u64, len, "start_48k must be below"),
        (u64::MAX, len, "start_48k must be a decimal integer"),
        (MAX_TIMELINE_48K, len, "start_48k must be below"),
        (MAX_TIMELINE_48K - len + 1, len, "start_48k + length_48k"),
        (0, i64::MAX as u64, "length_48k must be at most"),
    ] {
        let r = srv
            .req(Method::POST, "/files")
            .header("Upload-Length", file.len().to_string())
            .header(
                "Upload-Metadata",
                segment_metadata_at("huge", "me", 0, start, &file, length),
            )
            .header("Content-Type", "application/offset+octet-stream")
            .body(file.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "start {start}, length {length}");
        let text = r.text().await.unwrap();
        assert!(
            text.contains(field),
            "start {start}, length {length}: {text}"
        );
    }
    // Nothing was received or queued, and the same segment at a sane start is accepted.
    assert_eq!(count_rows(srv.dir.path(), "segments", "huge"), 0);
    assert_eq!(count_rows(srv.dir.path(), "jobs", "huge"), 0);
    upload_segment(&client, &base, &token, "huge", "me", 0, 0, &file, len).await;
    assert_eq!(count_rows(srv.dir.path(), "segments", "huge"), 1);
}
