//! 200 segments through a proxy that cuts, resets and stalls connections: every one arrives
//! byte-identical, exactly once.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chronote_spool::SegmentState;
use chronote_upload::Uploader;
use support::proxy::{FaultPlan, FaultProxy};
use support::*;

const REC: &str = "0195a000-0000-7000-8000-0000000000fa";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_segments_survive_fifty_cuts_without_duplicates() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = open_spool(dir.path());
    add_recording(&spool, REC, &["me", "others"], 100, 1.0, true);
    let local = segments(&spool, REC);
    assert_eq!(local.len(), 200);
    let total: u64 = local.iter().map(|s| s.bytes).sum();

    let proxy = FaultProxy::start(
        server.addr(),
        0x5eed_c0de,
        FaultPlan {
            probability: 1.0,
            max_bytes_up: 8_000,
            max_bytes_down: 1_500,
            reset_share: 0.3,
            stall_share: 0.04,
            stall: Duration::from_secs(3),
        },
    )
    .await;
    let mut config = fast_config(&proxy.url(), &server.token);
    // Smaller than a segment, so both creation-with-upload and PATCH resumes are cut.
    config.chunk_bytes = 2_048;
    config.request_timeout = Duration::from_millis(1_500);
    let started = Instant::now();
    let mut uploader = Uploader::new(spool.clone(), config).unwrap();
    let progress = uploader.progress();
    let report = tokio::time::timeout(Duration::from_secs(240), uploader.drain())
        .await
        .expect("drain within 4 minutes")
        .expect("drain");
    let stats = &proxy.stats;
    eprintln!(
        "{} connections, {} cuts, {} resets, {} stalls, {} bytes up, in {:?}",
        stats.connections.load(Ordering::SeqCst),
        stats.cuts.load(Ordering::SeqCst),
        stats.resets.load(Ordering::SeqCst),
        stats.stalls.load(Ordering::SeqCst),
        stats.bytes_up.load(Ordering::SeqCst),
        started.elapsed()
    );
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.acknowledged, 200);
    assert_eq!(report.stopped, vec![REC.to_string()]);
    assert!(stats.faults() >= 50, "only {} faults", stats.faults());
    assert!(stats.cuts.load(Ordering::SeqCst) >= 20);
    assert!(stats.resets.load(Ordering::SeqCst) >= 10);
    // The server confirmed each byte exactly once (a lower offset is never counted twice).
    assert!(progress.borrow().bytes_sent >= total);
    for s in segments(&spool, REC) {
        assert_eq!(s.state, SegmentState::Acknowledged, "{s:?}");
    }
    // Byte-identical and exactly one upload per segment on the server.
    assert_server_matches(server.data(), &spool, &[REC]);
}
