//! Recordings, segments, gaps and state events through the public API.

use std::fs;

use chronote_spool::{
    GapReason, IllegalTransition, RecordingEvent, RecordingSource, RecordingState, SealedInfo,
    SegmentEvent, SegmentState, SegmentStateCounts, SpoolError,
};

mod common;
use common::{FAKE_SHA, fake_sealed, new_recording, open};

#[test]
fn create_recording_validates_and_stores() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = open(dir.path());
    let row = spool
        .create_recording(&new_recording("rec-1", &["mic", "system"]))
        .unwrap();
    assert_eq!(row.state, RecordingState::Active);
    assert_eq!(row.tracks, vec!["mic", "system"]);
    assert_eq!(row.source, RecordingSource::Desktop);

    assert!(matches!(
        spool.create_recording(&new_recording("rec-1", &["mic"])),
        Err(SpoolError::DuplicateRecording { ref id }) if id == "rec-1"
    ));
    for bad_id in ["", "../x", "a.b", "a/b"] {
        assert!(matches!(
            spool.create_recording(&new_recording(bad_id, &["mic"])),
            Err(SpoolError::Invalid {
                what: "recording id",
                ..
            })
        ));
    }
    for tracks in [&["Mic"][..], &["a/b"], &[".."], &[""]] {
        assert!(matches!(
            spool.create_recording(&new_recording("rec-2", tracks)),
            Err(SpoolError::Invalid {
                what: "track name",
                ..
            })
        ));
    }
    assert!(matches!(
        spool.create_recording(&new_recording("rec-2", &["mic", "mic"])),
        Err(SpoolError::Invalid {
            what: "track name",
            ..
        })
    ));
    assert!(matches!(
        spool.create_recording(&new_recording("rec-2", &[])),
        Err(SpoolError::Invalid {
            what: "track list",
            ..
        })
    ));
    let mut bad_time = new_recording("rec-2", &["mic"]);
    bad_time.started_at = "10 o'clock".into();
    assert!(matches!(
        spool.create_recording(&bad_time),
        Err(SpoolError::Invalid {
            what: "started_at",
            ..
        })
    ));
    // Nothing of the rejected ones was stored.
    assert_eq!(spool.recordings().unwrap().len(), 1);
}

#[test]
fn segments_get_consecutive_sequences_and_paths() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut spool = open(root);
    spool
        .create_recording(&new_recording("rec-1", &["mic", "system"]))
        .unwrap();
    let a = spool.open_segment("rec-1", "mic", 0).unwrap();
    let b = spool.open_segment("rec-1", "system", 0).unwrap();
    assert_eq!((a.sequence, b.sequence), (0, 0));
    assert_eq!(
        a.part_path,
        root.join("segments/rec-1/mic/000000.opus.part")
    );
    assert_eq!(a.final_path, root.join("segments/rec-1/mic/000000.opus"));
    assert!(root.join("segments/rec-1/mic").is_dir());

    fs::write(&a.final_path, vec![1u8; 500]).unwrap();
    fs::write(&a.part_path, b"journal").unwrap();
    spool
        .seal_segment(
            a.id,
            &SealedInfo {
                bytes: 500,
                length_48k: 1_440_000,
                sha256: FAKE_SHA.into(),
            },
        )
        .unwrap();
    assert!(!a.part_path.exists(), "journal deleted after seal");
    assert!(a.final_path.exists());
    let c = spool.open_segment("rec-1", "mic", 1_440_000).unwrap();
    assert_eq!(c.sequence, 1);
    assert_eq!(
        c.part_path,
        root.join("segments/rec-1/mic/000001.opus.part")
    );

    let segs = spool.segments("rec-1").unwrap();
    let summary: Vec<_> = segs
        .iter()
        .map(|s| {
            (
                s.track.as_str(),
                s.sequence,
                s.start_48k,
                s.length_48k,
                s.bytes,
                s.state.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("mic", 0, 0, 1_440_000, 500, SegmentState::Sealed),
            ("mic", 1, 1_440_000, 0, 0, SegmentState::Open),
            ("system", 0, 0, 0, 0, SegmentState::Open),
        ]
    );
    assert_eq!(segs[0].path, a.final_path);
    assert_eq!(segs[0].sha256, FAKE_SHA);
    assert!(segs[0].sealed_at.is_some());
    assert_eq!(segs[1].path, c.part_path);
    assert_eq!(segs[1].sha256, "");

    assert!(matches!(
        spool.open_segment("rec-1", "camera", 0),
        Err(SpoolError::UnknownTrack { .. })
    ));
    assert!(matches!(
        spool.open_segment("nope", "mic", 0),
        Err(SpoolError::UnknownRecording { .. })
    ));
    assert!(matches!(
        spool.open_segment("..", "mic", 0),
        Err(SpoolError::Invalid { .. })
    ));
}

#[test]
fn seal_checks_the_file_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = open(dir.path());
    spool
        .create_recording(&new_recording("r", &["mic"]))
        .unwrap();
    let seg = spool.open_segment("r", "mic", 0).unwrap();
    let info = SealedInfo {
        bytes: 10,
        length_48k: 960,
        sha256: FAKE_SHA.into(),
    };
    assert!(matches!(
        spool.seal_segment(seg.id, &info),
        Err(SpoolError::SealMismatch { ref path, .. }) if *path == seg.final_path
    ));
    fs::write(&seg.final_path, [0u8; 9]).unwrap();
    assert!(matches!(
        spool.seal_segment(seg.id, &info),
        Err(SpoolError::SealMismatch { .. })
    ));
    fs::write(&seg.final_path, [0u8; 10]).unwrap();
    let bad_sha = SealedInfo {
        sha256: "XYZ".into(),
        ..info.clone()
    };
    assert!(matches!(
        spool.seal_segment(seg.id, &bad_sha),
        Err(SpoolError::Invalid { what: "sha256", .. })
    ));
    assert_eq!(spool.segments("r").unwrap()[0].state, SegmentState::Open);
    spool.seal_segment(seg.id, &info).unwrap();
    match spool.seal_segment(seg.id, &info) {
        Err(SpoolError::Transition {
            what: "segment",
            source: IllegalTransition::Segment { from, event },
            ..
        }) => {
            assert_eq!(from, SegmentState::Sealed);
            assert_eq!(event, SegmentEvent::Seal);
        }
        other => panic!("expected illegal transition, got {other:?}"),
    }
    assert!(matches!(
        spool.seal_segment(9999, &info),
        Err(SpoolError::UnknownSegment { id: 9999 })
    ));
}

#[test]
fn abandon_removes_open_row_and_journal_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = open(dir.path());
    spool
        .create_recording(&new_recording("r", &["mic"]))
        .unwrap();
    let sealed = fake_sealed(&mut spool, "r", "mic", 0, 960, 100);
    let seg = spool.open_segment("r", "mic", 960).unwrap();
    fs::write(&seg.part_path, b"header only").unwrap();
    spool.abandon_segment(seg.id).unwrap();
    assert!(!seg.part_path.exists());
    assert_eq!(spool.segments("r").unwrap().len(), 1);
    // The sequence is free again.
    assert_eq!(spool.open_segment("r", "mic", 960).unwrap().sequence, 1);
    // Sealed audio cannot be abandoned.
    assert!(matches!(
        spool.abandon_segment(sealed.id),
        Err(SpoolError::Invalid {
            what: "segment to abandon",
            ..
        })
    ));
    assert!(sealed.final_path.exists());
}

#[test]
fn recording_events_apply_and_illegal_ones_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = open(dir.path());
    spool
        .create_recording(&new_recording("r", &["mic"]))
        .unwrap();
    let before = spool.recording("r").unwrap().unwrap();
    match spool.apply_recording_event("r", RecordingEvent::Completed) {
        Err(SpoolError::Transition {
            what: "recording",
            subject,
            source: IllegalTransition::Recording { from, event },
        }) => {
            assert_eq!(subject, "r");
            assert_eq!(from, RecordingState::Active);
            assert_eq!(event, RecordingEvent::Completed);
        }
        other => panic!("expected illegal transition, got {other:?}"),
    }
    assert_eq!(spool.recording("r").unwrap().unwrap(), before);

    let path = [
        (RecordingEvent::Stop, RecordingState::Stopping),
        (RecordingEvent::Finalized, RecordingState::Stopped),
        (RecordingEvent::AllUploaded, RecordingState::Uploaded),
        (RecordingEvent::Completed, RecordingState::Complete),
    ];
    for (event, want) in path {
        assert_eq!(spool.apply_recording_event("r", event).unwrap(), want);
        assert_eq!(spool.recording("r").unwrap().unwrap().state, want);
    }
    for event in RecordingEvent::ALL {
        assert!(spool.apply_recording_event("r", event).is_err());
    }
    assert_eq!(
        spool.recording("r").unwrap().unwrap().state,
        RecordingState::Complete
    );
    assert!(matches!(
        spool.apply_recording_event("missing", RecordingEvent::Stop),
        Err(SpoolError::UnknownRecording { .. })
    ));
}

#[test]
fn open_segment_requires_an_active_or_stopping_recording() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = open(dir.path());
    spool
        .create_recording(&new_recording("r", &["mic"]))
        .unwrap();
    spool
        .apply_recording_event("r", RecordingEvent::Stop)
        .unwrap();
    spool.open_segment("r", "mic", 0).unwrap();
    spool
        .apply_recording_event("r", RecordingEvent::Finalized)
        .unwrap();
    assert!(matches!(
        spool.open_segment("r", "mic", 0),
        Err(SpoolError::RecordingNotActive {
            state: RecordingState::Stopped,
            ..
        })
    ));
}

#[test]
fn segment_events_walk_the_upload_path_and_illegal_ones_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = open(dir.path());
    spool
        .create_recording(&new_recording("r", &["mic"]))
        .unwrap();
    let seg = fake_sealed(&mut spool, "r", "mic", 0, 960, 300);
    let row = |spool: &chronote_spool::Spool| spool.segment(seg.id).unwrap().unwrap();

    // Illegal from Sealed: everything except BeginUpload (Seal is refused separately).
    let before = row(&spool);
    for event in [
        SegmentEvent::Progress { offset: 5 },
        SegmentEvent::UploadLost,
        SegmentEvent::FinishUpload,
        SegmentEvent::Acknowledge,
        SegmentEvent::Evict,
    ] {
        match spool.apply_segment_event(seg.id, event.clone()) {
            Err(SpoolError::Transition {
                source: IllegalTransition::Segment { from, event: got },
                ..
            }) => {
                assert_eq!(from, SegmentState::Sealed);
                assert_eq!(got, event);
            }
            other => panic!("{event}: expected illegal transition, got {other:?}"),
        }
        assert_eq!(row(&spool), before);
    }
    assert!(matches!(
        spool.apply_segment_event(seg.id, SegmentEvent::Seal),
        Err(SpoolError::Invalid {
            what: "segment event",
            ..
        })
    ));
    assert_eq!(row(&spool), before);

    let url = "https://up.example/files/abc".to_string();
    let uploading = |offset| SegmentState::Uploading {
        url: url.clone(),
        offset,
    };
    assert_eq!(
        spool
            .apply_segment_event(seg.id, SegmentEvent::BeginUpload { url: url.clone() })
            .unwrap(),
        uploading(0)
    );
    assert_eq!(spool.pending_upload(10).unwrap()[0].state, uploading(0));
    assert_eq!(
        spool
            .apply_segment_event(seg.id, SegmentEvent::Progress { offset: 128 })
            .unwrap(),
        uploading(128)
    );
    assert_eq!(row(&spool).state, uploading(128));
    // Server forgot it: back to Sealed, URL gone, then a fresh upload.
    assert_eq!(
        spool
            .apply_segment_event(seg.id, SegmentEvent::UploadLost)
            .unwrap(),
        SegmentState::Sealed
    );
    assert_eq!(row(&spool).state, SegmentState::Sealed);
    spool
        .apply_segment_event(seg.id, SegmentEvent::BeginUpload { url: url.clone() })
        .unwrap();
    let before = row(&spool);
    assert!(
        spool
            .apply_segment_event(
                seg.id,
                SegmentEvent::BeginUpload {
                    url: "other".into()
                }
            )
            .is_err()
    );
    assert!(
        spool
            .apply_segment_event(seg.id, SegmentEvent::Evict)
            .is_err()
    );
    assert_eq!(row(&spool), before);
    for (event, want) in [
        (SegmentEvent::FinishUpload, SegmentState::Uploaded),
        (SegmentEvent::Acknowledge, SegmentState::Acknowledged),
    ] {
        assert_eq!(spool.apply_segment_event(seg.id, event).unwrap(), want);
        assert_eq!(row(&spool).state, want);
    }
    assert!(seg.final_path.exists());
    assert_eq!(
        spool
            .apply_segment_event(seg.id, SegmentEvent::Evict)
            .unwrap(),
        SegmentState::Evicted
    );
    assert!(!seg.final_path.exists(), "evict deletes the file");
    assert!(
        spool
            .apply_segment_event(seg.id, SegmentEvent::Evict)
            .is_err()
    );
    assert!(matches!(
        spool.apply_segment_event(424242, SegmentEvent::Evict),
        Err(SpoolError::UnknownSegment { id: 424242 })
    ));
}

#[test]
fn gaps_track_ends_and_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = open(dir.path());
    let mut older = new_recording("older", &["mic"]);
    older.started_at = "2025-03-01T09:00:00+02:00".into(); // 07:00Z
    let mut newer = new_recording("newer", &["mic", "system"]);
    newer.started_at = "2025-03-01T08:00:00Z".into();
    newer.source = RecordingSource::Discord;
    spool.create_recording(&older).unwrap();
    spool.create_recording(&newer).unwrap();

    fake_sealed(&mut spool, "newer", "mic", 0, 1000, 111);
    let second = fake_sealed(&mut spool, "newer", "mic", 1500, 2000, 222);
    spool.open_segment("newer", "mic", 3500).unwrap();
    fake_sealed(&mut spool, "newer", "system", 0, 4000, 444);
    spool
        .apply_segment_event(second.id, SegmentEvent::BeginUpload { url: "u".into() })
        .unwrap();
    spool
        .record_gap("newer", "mic", 1000, 500, GapReason::DeviceLost)
        .unwrap();
    spool
        .record_gap("newer", "system", 4000, 96_000, GapReason::SpoolFull)
        .unwrap();
    assert!(matches!(
        spool.record_gap("newer", "mic", 0, 0, GapReason::Overflow),
        Err(SpoolError::Invalid {
            what: "gap length",
            ..
        })
    ));
    assert!(matches!(
        spool.record_gap("newer", "camera", 0, 1, GapReason::Overflow),
        Err(SpoolError::UnknownTrack { .. })
    ));
    spool.set_track_end("newer", "mic", 3500).unwrap();
    assert!(matches!(
        spool.set_track_end("newer", "camera", 1),
        Err(SpoolError::UnknownTrack { .. })
    ));

    let gaps = spool.gaps("newer").unwrap();
    let g: Vec<_> = gaps
        .iter()
        .map(|g| (g.track.as_str(), g.start_48k, g.length_48k, g.reason))
        .collect();
    assert_eq!(
        g,
        vec![
            ("mic", 1000, 500, GapReason::DeviceLost),
            ("system", 4000, 96_000, GapReason::SpoolFull)
        ]
    );
    assert_eq!(GapReason::SpoolFull.to_string(), "spool_full");

    let all = spool.recordings().unwrap();
    assert_eq!(
        all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec!["newer", "older"]
    );
    let newer = &all[0];
    assert_eq!(newer.source, RecordingSource::Discord);
    assert_eq!(newer.gaps, 2);
    assert_eq!(newer.tracks.len(), 2);
    let mic = &newer.tracks[0];
    assert_eq!(mic.name, "mic");
    assert_eq!(mic.end_48k, Some(3500));
    assert_eq!(mic.segments, 3);
    assert_eq!(mic.duration_48k, 3000);
    assert_eq!(mic.bytes, 333);
    assert_eq!(
        mic.states,
        SegmentStateCounts {
            open: 1,
            sealed: 1,
            uploading: 1,
            ..Default::default()
        }
    );
    let system = &newer.tracks[1];
    assert_eq!(
        (
            system.end_48k,
            system.segments,
            system.duration_48k,
            system.bytes
        ),
        (None, 1, 4000, 444)
    );
    assert_eq!(all[1].tracks[0].segments, 0);
    assert!(spool.recording("missing").unwrap().is_none());
    assert!(matches!(
        spool.segments("missing"),
        Err(SpoolError::UnknownRecording { .. })
    ));

    // Oldest first, sealed/uploading only.
    let pending: Vec<_> = spool
        .pending_upload(10)
        .unwrap()
        .iter()
        .map(|s| (s.track.clone(), s.sequence))
        .collect();
    assert_eq!(
        pending,
        vec![
            ("mic".to_string(), 0),
            ("mic".to_string(), 1),
            ("system".to_string(), 0)
        ]
    );
    assert_eq!(spool.pending_upload(1).unwrap().len(), 1);

    // JSON shape the CLI prints.
    let json = format!("{:?}", newer);
    assert!(json.contains("Discord"));
}

#[test]
fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = open(dir.path());
        spool
            .create_recording(&new_recording("r", &["mic"]))
            .unwrap();
        fake_sealed(&mut spool, "r", "mic", 0, 960, 50);
    }
    let spool = open(dir.path());
    let segs = spool.segments("r").unwrap();
    assert_eq!(segs.len(), 1);
    assert_eq!((segs[0].bytes, segs[0].length_48k), (50, 960));
}

#[test]
fn unknown_state_text_in_the_database_is_corruption_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    {
        let mut spool = open(root);
        spool
            .create_recording(&new_recording("r", &["mic"]))
            .unwrap();
        fake_sealed(&mut spool, "r", "mic", 0, 960, 10);
    }
    let edit = |sql: &str| {
        let conn = rusqlite::Connection::open(root.join("spool.db")).unwrap();
        conn.execute(sql, []).unwrap();
    };
    edit("UPDATE segments SET state = 'bogus'");
    {
        let mut spool = open(root);
        match spool.segments("r") {
            Err(e @ SpoolError::Corrupt { .. }) => {
                assert!(
                    e.to_string().contains("unknown segment state \"bogus\""),
                    "{e}"
                );
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(spool.usage_bytes().is_ok());
        assert!(matches!(
            spool.recording("r"),
            Err(SpoolError::Corrupt { .. })
        ));
        assert!(matches!(
            spool.apply_segment_event(1, SegmentEvent::Acknowledge),
            Err(SpoolError::Corrupt { .. })
        ));
    }
    edit("UPDATE segments SET state = 'uploading'"); // without url/offset
    {
        let spool = open(root);
        assert!(matches!(
            spool.segments("r"),
            Err(SpoolError::Corrupt { .. })
        ));
    }
    edit("UPDATE segments SET state = 'sealed'");
    edit("UPDATE recordings SET state = 'paused'");
    {
        let mut spool = open(root);
        assert!(matches!(
            spool.recording("r"),
            Err(SpoolError::Corrupt { .. })
        ));
        assert!(matches!(
            spool.apply_recording_event("r", RecordingEvent::Stop),
            Err(SpoolError::Corrupt { .. })
        ));
        assert_eq!(spool.segments("r").unwrap()[0].state, SegmentState::Sealed);
    }
}
