//! The uploader against the real Chronote server, in process, over loopback HTTP.

mod support;

use std::time::Duration;

use chronote_spool::{RecordingState, SegmentEvent, SegmentState};
use chronote_upload::{
    FileUploadOptions, RecordingsApi, Scope, UploadError, UploadEvent, Uploader, segment_metadata,
    upload_file,
};
use support::*;

const REC: &str = "0195a000-0000-7000-8000-000000000001";

fn api(server: &TestServer) -> RecordingsApi {
    let base = reqwest::Url::parse(&format!("{}/", server.url())).unwrap();
    RecordingsApi::new(
        reqwest::Client::new(),
        base,
        server.token.clone(),
        Duration::from_secs(5),
    )
}

async fn assert_complete_on_server(server: &TestServer, id: &str, tracks: &[(&str, u64)]) {
    let status = api(server).status(id).await.expect("status");
    assert_eq!(status.id, id);
    assert!(
        status.state == "stopped" || status.state == "complete",
        "state {}",
        status.state
    );
    assert_eq!(status.tracks.len(), tracks.len());
    for (t, (name, n)) in status.tracks.iter().zip(tracks) {
        assert_eq!(t.name, *name);
        assert_eq!(t.received, *n, "{t:?}");
        assert_eq!(t.missing, Vec::<u64>::new(), "{t:?}");
        assert_eq!(t.final_sequence, Some(n - 1), "{t:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_uploads_every_segment_then_stops_the_recording() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = open_spool(dir.path());
    add_recording(&spool, REC, &["me", "others"], 3, 2.0, true);

    let mut uploader =
        Uploader::new(spool.clone(), fast_config(&server.url(), &server.token)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    uploader.set_events(tx);
    let progress = uploader.progress();
    let report = uploader.drain().await.expect("drain");

    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.acknowledged, 6);
    assert_eq!(report.stopped, vec![REC.to_string()]);
    assert_eq!(report.server_recordings, vec![REC.to_string()]);
    let local = segments(&spool, REC);
    let total: u64 = local.iter().map(|s| s.bytes).sum();
    for s in &local {
        assert_eq!(s.state, SegmentState::Acknowledged, "{s:?}");
    }
    let p = progress.borrow().clone();
    assert_eq!(p.acknowledged, 6);
    assert_eq!(p.bytes_sent, total);
    assert_eq!(p.bytes_left, 0);
    assert_eq!(p.segments_pending, 0);
    assert!(!p.offline);
    assert_eq!(
        spool.lock().unwrap().recording(REC).unwrap().unwrap().state,
        RecordingState::Uploaded
    );
    let events: Vec<UploadEvent> = rx.try_iter().collect();
    assert_eq!(events.len(), 8, "{events:?}");
    assert_eq!(
        events[0],
        UploadEvent::RecordingCreated {
            recording_id: REC.into()
        }
    );
    assert_eq!(
        events[7],
        UploadEvent::RecordingStopped {
            recording_id: REC.into()
        }
    );
    assert_server_matches(server.data(), &spool, &[REC]);
    assert_complete_on_server(&server, REC, &[("me", 3), ("others", 3)]).await;

    // A second run finds nothing to do and creates nothing.
    let mut again =
        Uploader::new(spool.clone(), fast_config(&server.url(), &server.token)).unwrap();
    let report = again.drain().await.expect("second drain");
    assert_eq!(report.acknowledged, 0);
    assert!(report.stopped.is_empty());
    assert!(report.is_complete());
    assert_server_matches(server.data(), &spool, &[REC]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_chunks_resume_exactly_after_an_abort() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = open_spool(dir.path());
    add_recording(&spool, REC, &["me"], 2, 3.0, true);

    // 700-byte chunks: the first segment needs a creation plus several PATCHes.
    let mut config = fast_config(&server.url(), &server.token);
    config.chunk_bytes = 700;
    let uploader = Uploader::new(spool.clone(), config.clone()).unwrap();
    let mut progress = uploader.progress();
    let thread = uploader.spawn_drain().unwrap();
    progress
        .wait_for(|p| p.bytes_sent >= 2_000)
        .await
        .expect("progress");
    thread.handle.abort();
    assert!(matches!(join(thread).await, Err(UploadError::Aborted)));
    let first = &segments(&spool, REC)[0];
    let SegmentState::Uploading { url, offset } = first.state.clone() else {
        panic!("first segment should be mid-upload: {first:?}");
    };
    assert!(offset >= 1_400 && offset < first.bytes, "offset {offset}");
    assert!(
        url.starts_with(&format!("{}/files/", server.url())),
        "{url}"
    );

    let mut resumed = Uploader::new(spool.clone(), config).unwrap();
    let progress = resumed.progress();
    let report = resumed.drain().await.expect("resume");
    assert!(report.is_complete(), "{report:?}");
    let rows = segments(&spool, REC);
    let total: u64 = rows.iter().map(|s| s.bytes).sum();
    // Only the bytes the server did not confirm were sent again.
    assert_eq!(progress.borrow().bytes_sent, total - offset);
    assert_server_matches(server.data(), &spool, &[REC]);
    assert_complete_on_server(&server, REC, &[("me", 2)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_recordings_are_finished_by_drain() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = open_spool(dir.path());
        add_recording(&spool, REC, &["me"], 2, 1.0, false);
        // The process "dies" with the recording Active.
    }
    let spool = open_spool(dir.path()); // recovery: Active -> Interrupted
    assert_eq!(
        spool.lock().unwrap().recording(REC).unwrap().unwrap().state,
        RecordingState::Interrupted
    );
    // While recording (run_until_stopped) an interrupted recording is uploaded but not stopped.
    let mut live = fast_config(&server.url(), &server.token);
    live.scope = Scope::All;
    let uploader = Uploader::new(spool.clone(), live).unwrap();
    let thread = uploader.spawn().unwrap();
    thread.handle.finish();
    let report = join(thread).await.expect("run");
    assert_eq!(report.acknowledged, 2);
    assert!(report.stopped.is_empty());
    assert_eq!(report.unfinished_recordings, vec![REC.to_string()]);

    let mut uploader =
        Uploader::new(spool.clone(), fast_config(&server.url(), &server.token)).unwrap();
    let report = uploader.drain().await.expect("drain");
    assert_eq!(report.acknowledged, 0);
    assert_eq!(report.stopped, vec![REC.to_string()]);
    assert!(report.is_complete(), "{report:?}");
    assert_complete_on_server(&server, REC, &[("me", 2)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_while_recording_and_stops_after_finish() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = open_spool(dir.path());
    add_recording(&spool, REC, &["me"], 1, 1.0, false);
    let mut config = fast_config(&server.url(), &server.token);
    config.scope = Scope::Recording(REC.into());
    let uploader = Uploader::new(spool.clone(), config).unwrap();
    let mut progress = uploader.progress();
    let thread = uploader.spawn().unwrap();
    progress.wait_for(|p| p.acknowledged == 1).await.unwrap();
    // More segments arrive while recording; each is picked up.
    let mut start: u64 = segments(&spool, REC).iter().map(|s| s.length_48k).sum();
    for i in 0..3 {
        start += seal_segment(&spool, REC, "me", start, 1.0, 100 + i);
        thread.handle.nudge();
        progress
            .wait_for(|p| p.acknowledged == 2 + i)
            .await
            .unwrap();
    }
    // Not stopped while the recording is still active.
    assert_eq!(api(&server).status(REC).await.unwrap().state, "recording");
    stop_recording(&spool, REC);
    thread.handle.finish();
    let report = join(thread).await.expect("run");
    assert_eq!(report.acknowledged, 4);
    assert_eq!(report.stopped, vec![REC.to_string()]);
    assert!(report.is_complete());
    assert_complete_on_server(&server, REC, &[("me", 4)]).await;
    assert_server_matches(server.data(), &spool, &[REC]);
}

/// A crash between FinishUpload and Acknowledge leaves a segment Uploaded with no URL: the
/// uploader finds the upload again through idempotent creation and takes the receipt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploaded_but_unacknowledged_segment_is_confirmed_without_resending() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = open_spool(dir.path());
    add_recording(&spool, REC, &["me"], 1, 2.0, true);
    let seg = segments(&spool, REC).remove(0);
    // Put the recording and the segment on the server by other means.
    let mut first =
        Uploader::new(spool.clone(), fast_config(&server.url(), &server.token)).unwrap();
    let body = chronote_upload::CreateRecording {
        id: REC.into(),
        title: format!("test {REC}"),
        source: "desktop".into(),
        tracks: vec!["me".into()],
        started_at: "2025-03-01T10:00:00Z".into(),
    };
    api(&server).create(&body).await.expect("create recording");
    let url = upload_file(
        &format!("{}/files/", server.url()),
        &seg.path,
        &segment_metadata(&seg),
        &FileUploadOptions {
            token: Some(server.token.clone()),
            ..FileUploadOptions::default()
        },
    )
    .await
    .expect("upload by hand");
    {
        let mut s = spool.lock().unwrap();
        s.apply_segment_event(
            seg.id,
            SegmentEvent::BeginUpload {
                url: url.to_string(),
            },
        )
        .unwrap();
        s.apply_segment_event(seg.id, SegmentEvent::FinishUpload)
            .unwrap();
    }
    let progress = first.progress();
    let report = first.drain().await.expect("drain");
    assert_eq!(report.acknowledged, 1);
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(progress.borrow().bytes_sent, 0);
    assert_eq!(segments(&spool, REC)[0].state, SegmentState::Acknowledged);
    assert_server_matches(server.data(), &spool, &[REC]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_url_on_another_server_is_not_followed() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = open_spool(dir.path());
    add_recording(&spool, REC, &["me"], 1, 1.0, true);
    let seg = segments(&spool, REC).remove(0);
    spool
        .lock()
        .unwrap()
        .apply_segment_event(
            seg.id,
            SegmentEvent::BeginUpload {
                url: "http://127.0.0.1:9/files/00000000000000000000000000000000".into(),
            },
        )
        .unwrap();
    let mut uploader =
        Uploader::new(spool.clone(), fast_config(&server.url(), &server.token)).unwrap();
    let report = uploader.drain().await.expect("drain");
    assert!(report.is_complete(), "{report:?}");
    assert_server_matches(server.data(), &spool, &[REC]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_ends_the_run_at_once() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = open_spool(dir.path());
    add_recording(&spool, REC, &["me"], 1, 1.0, true);
    let mut uploader =
        Uploader::new(spool.clone(), fast_config(&server.url(), "cht_wrong")).unwrap();
    let err = uploader.drain().await.expect_err("must fail");
    assert_eq!(err.status(), Some(401), "{err}");
    assert_eq!(segments(&spool, REC)[0].state, SegmentState::Sealed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_reported_offline() {
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let spool = open_spool(dir.path());
    add_recording(&spool, REC, &["me"], 1, 1.0, true);
    let uploader = Uploader::new(spool.clone(), fast_config(&url, "t")).unwrap();
    let mut progress = uploader.progress();
    let thread = uploader.spawn_drain().unwrap();
    progress.wait_for(|p| p.offline).await.unwrap();
    let p = progress.borrow().clone();
    assert!(
        p.last_error.as_deref().unwrap_or("").contains("OPTIONS"),
        "{p:?}"
    );
    thread.handle.abort();
    assert!(matches!(join(thread).await, Err(UploadError::Aborted)));
    assert_eq!(segments(&spool, REC)[0].state, SegmentState::Sealed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_segment_in_the_same_slot_is_a_reported_conflict() {
    let server = TestServer::start().await;
    // Another spool uploads its own sequence 0 under the same recording id first.
    let other_dir = tempfile::tempdir().unwrap();
    let other = open_spool(other_dir.path());
    add_recording(&other, REC, &["me"], 1, 1.0, false);
    let mut first =
        Uploader::new(other.clone(), fast_config(&server.url(), &server.token)).unwrap();
    first.drain().await.expect("first spool");

    let dir = tempfile::tempdir().unwrap();
    let spool = open_spool(dir.path());
    add_recording(&spool, REC, &["me"], 1, 1.5, true);
    // Same id and same recording body (title/start/tracks), but different audio.
    let mut uploader =
        Uploader::new(spool.clone(), fast_config(&server.url(), &server.token)).unwrap();
    let report = uploader.drain().await.expect("drain returns a report");
    assert!(!report.is_complete());
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert!(report.failures[0].contains("409"), "{report:?}");
    assert_eq!(report.pending_segments, 1);
    assert_eq!(segments(&spool, REC)[0].state, SegmentState::Sealed);
}
