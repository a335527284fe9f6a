//! Every (state, event) pair of both machines applied through the database: legal moves store
//! exactly the state machine's answer, illegal ones fail with the typed error and leave the row
//! as it was.

use std::fs;

use chronote_spool::{
    IllegalTransition, RecordingEvent, RecordingState, SealedInfo, SegmentEvent, SegmentState,
    Spool, SpoolError,
};

mod common;
use common::{FAKE_SHA, new_recording, open};

/// Events that lead from Active to each recording state.
fn recording_path(to: RecordingState) -> Vec<RecordingEvent> {
    use RecordingEvent as E;
    match to {
        RecordingState::Active => vec![],
        RecordingState::Stopping => vec![E::Stop],
        RecordingState::Stopped => vec![E::Stop, E::Finalized],
        RecordingState::Interrupted => vec![E::CrashDetected],
        RecordingState::Uploaded => vec![E::Stop, E::Finalized, E::AllUploaded],
        RecordingState::Complete => vec![E::Stop, E::Finalized, E::AllUploaded, E::Completed],
    }
}

#[test]
fn every_recording_pair_through_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = open(dir.path());
    let mut n = 0;
    for from in RecordingState::ALL {
        for event in RecordingEvent::ALL {
            n += 1;
            let id = format!("rec-{n}");
            spool
                .create_recording(&new_recording(&id, &["mic"]))
                .unwrap();
            for step in recording_path(from) {
                spool.apply_recording_event(&id, step).unwrap();
            }
            let before = spool.recording(&id).unwrap().unwrap();
            assert_eq!(before.state, from);
            match (
                from.transition(event),
                spool.apply_recording_event(&id, event),
            ) {
                (Ok(want), Ok(got)) => {
                    assert_eq!(got, want, "{from} + {event}");
                    assert_eq!(spool.recording(&id).unwrap().unwrap().state, want);
                }
                (
                    Err(want),
                    Err(SpoolError::Transition {
                        what,
                        subject,
                        source,
                    }),
                ) => {
                    assert_eq!((what, subject.as_str()), ("recording", id.as_str()));
                    assert_eq!(source, want);
                    assert_eq!(
                        spool.recording(&id).unwrap().unwrap(),
                        before,
                        "{from} + {event}"
                    );
                }
                (want, got) => panic!("{from} + {event}: machine says {want:?}, db says {got:?}"),
            }
        }
    }
    assert_eq!(n, 42);
}

fn segment_states() -> Vec<SegmentState> {
    vec![
        SegmentState::Open,
        SegmentState::Sealed,
        SegmentState::Uploading {
            url: "https://h/files/1".into(),
            offset: 0,
        },
        SegmentState::Uploaded,
        SegmentState::Acknowledged,
        SegmentState::Evicted,
    ]
}

fn segment_events() -> Vec<SegmentEvent> {
    vec![
        SegmentEvent::Seal,
        SegmentEvent::BeginUpload {
            url: "https://h/files/2".into(),
        },
        SegmentEvent::Progress { offset: 77 },
        SegmentEvent::UploadLost,
        SegmentEvent::FinishUpload,
        SegmentEvent::Acknowledge,
        SegmentEvent::Evict,
    ]
}

/// A new segment of recording `r`, brought into `to` through legal moves.
fn segment_in(spool: &mut Spool, to: &SegmentState) -> (i64, std::path::PathBuf) {
    let seg = spool.open_segment("r", "mic", 0).unwrap();
    if *to == SegmentState::Open {
        fs::write(&seg.part_path, b"journal").unwrap();
        return (seg.id, seg.final_path);
    }
    fs::write(&seg.final_path, [7u8; 64]).unwrap();
    spool
        .seal_segment(
            seg.id,
            &SealedInfo {
                bytes: 64,
                length_48k: 960,
                sha256: FAKE_SHA.into(),
            },
        )
        .unwrap();
    let steps: &[SegmentEvent] = match to {
        SegmentState::Sealed => &[],
        SegmentState::Uploading { .. } => &[SegmentEvent::BeginUpload { url: String::new() }][..],
        SegmentState::Uploaded => &[
            SegmentEvent::BeginUpload { url: String::new() },
            SegmentEvent::FinishUpload,
        ],
        SegmentState::Acknowledged => &[
            SegmentEvent::BeginUpload { url: String::new() },
            SegmentEvent::FinishUpload,
            SegmentEvent::Acknowledge,
        ],
        SegmentState::Evicted => &[
            SegmentEvent::BeginUpload { url: String::new() },
            SegmentEvent::FinishUpload,
            SegmentEvent::Acknowledge,
            SegmentEvent::Evict,
        ],
        SegmentState::Open => unreachable!(),
    };
    for step in steps {
        let step = match step {
            SegmentEvent::BeginUpload { .. } => SegmentEvent::BeginUpload {
                url: "https://h/files/1".into(),
            },
            other => other.clone(),
        };
        spool.apply_segment_event(seg.id, step).unwrap();
    }
    (seg.id, seg.final_path)
}

#[test]
fn every_segment_pair_through_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = open(dir.path());
    spool
        .create_recording(&new_recording("r", &["mic"]))
        .unwrap();
    let mut n = 0;
    for from in segment_states() {
        for event in segment_events() {
            n += 1;
            let (id, final_path) = segment_in(&mut spool, &from);
            let before = spool.segment(id).unwrap().unwrap();
            assert_eq!(before.state, from);
            let want = from.clone().transition(event.clone());
            let got = if event == SegmentEvent::Seal {
                // Sealing needs the file's numbers, so it has its own entry point.
                if from == SegmentState::Open {
                    fs::write(&final_path, [7u8; 64]).unwrap();
                }
                spool
                    .seal_segment(
                        id,
                        &SealedInfo {
                            bytes: 64,
                            length_48k: 960,
                            sha256: FAKE_SHA.into(),
                        },
                    )
                    .map(|()| spool.segment(id).unwrap().unwrap().state)
            } else {
                spool.apply_segment_event(id, event.clone())
            };
            match (want, got) {
                (Ok(want), Ok(got)) => {
                    assert_eq!(got, want, "{from} + {event}");
                    assert_eq!(spool.segment(id).unwrap().unwrap().state, want);
                }
                (
                    Err(want),
                    Err(SpoolError::Transition {
                        what,
                        subject,
                        source,
                    }),
                ) => {
                    assert_eq!((what, subject), ("segment", id.to_string()));
                    assert_eq!(source, want);
                    assert!(matches!(source, IllegalTransition::Segment { .. }));
                    assert_eq!(
                        spool.segment(id).unwrap().unwrap(),
                        before,
                        "{from} + {event}"
                    );
                    // An illegal move never touches the file either.
                    let file_expected = from != SegmentState::Evicted && from != SegmentState::Open;
                    assert_eq!(final_path.exists(), file_expected, "{from} + {event}");
                }
                (want, got) => panic!("{from} + {event}: machine says {want:?}, db says {got:?}"),
            }
        }
    }
    assert_eq!(n, 42);
}
