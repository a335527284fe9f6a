//! Crash recovery on real Ogg Opus journals and sealed files written by `chronote_encode`.

use std::fs::{self, OpenOptions};
use std::path::Path;

use chronote_encode::{EncoderConfig, SegmentTags, SegmentWriter};
use chronote_spool::{RecordingState, RecoveryReport, SealedInfo, SegmentState, Spool};

mod common;
use common::{new_recording, open};

const REC: &str = "0b9d2c1e-7d3f-4c1a-9a55-1f2e3d4c5b6a";

fn writer(part: &Path, track: &str, sequence: u64, start_48k: u64) -> SegmentWriter {
    let tags = SegmentTags {
        recording_id: REC.into(),
        track: track.into(),
        sequence,
        start_48k,
        start_time: "2025-03-01T10:00:00Z".into(),
    };
    SegmentWriter::create(part, &EncoderConfig::default(), &tags).unwrap()
}

/// Pushes `frames` 20 ms frames of a 440 Hz tone.
fn push_tone(w: &mut SegmentWriter, frames: usize) {
    let n = w.frame_len();
    for f in 0..frames {
        let frame: Vec<f32> = (0..n)
            .map(|i| {
                let t = (f * n + i) as f32 / 16_000.0;
                0.3 * (t * 440.0 * std::f32::consts::TAU).sin()
            })
            .collect();
        w.push_frame(&frame).unwrap();
    }
}

#[test]
fn recovery_repairs_adopts_drops_and_cleans_real_segments() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut spool = open(root);
    spool
        .create_recording(&new_recording(REC, &["mic", "sys", "aux", "hdr", "bad"]))
        .unwrap();

    // mic 0: sealed normally (3 s), then its journal reappears (crash after commit, before the
    // unlink reached the disk).
    let m0 = spool.open_segment(REC, "mic", 0).unwrap();
    let mut w = writer(&m0.part_path, "mic", 0, 0);
    push_tone(&mut w, 150);
    let sealed = w.seal(&m0.final_path, 150 * 320).unwrap();
    assert_eq!(sealed.length_48k, 144_000);
    spool
        .seal_segment(
            m0.id,
            &SealedInfo {
                bytes: sealed.bytes,
                length_48k: sealed.length_48k,
                sha256: sealed.sha256.clone(),
            },
        )
        .unwrap();
    fs::write(&m0.part_path, b"stale journal").unwrap();
    let tmp = m0.final_path.with_extension("opus.tmp");
    fs::write(&tmp, b"half-written seal").unwrap();

    // mic 1: 100 frames journaled in pages of 25 frames, then torn inside the 4th page.
    let m1 = spool.open_segment(REC, "mic", 144_000).unwrap();
    let mut w = writer(&m1.part_path, "mic", 1, 144_000);
    let pre_skip = u64::from(w.pre_skip());
    push_tone(&mut w, 75);
    let three_pages = w.journal_bytes();
    push_tone(&mut w, 25);
    let four_pages = w.journal_bytes();
    assert!(four_pages > three_pages);
    drop(w); // the process dies
    OpenOptions::new()
        .write(true)
        .open(&m1.part_path)
        .unwrap()
        .set_len((three_pages + four_pages) / 2)
        .unwrap();

    // sys 0: the final file was renamed into place but the DB commit never happened.
    let s0 = spool.open_segment(REC, "sys", 0).unwrap();
    let mut w = writer(&s0.part_path, "sys", 0, 0);
    push_tone(&mut w, 60);
    let s0_sealed = w.seal(&s0.final_path, 60 * 320 - 7).unwrap();

    // aux 0: opened in the DB, crashed before the journal was created.
    let a0 = spool.open_segment(REC, "aux", 0).unwrap();

    // hdr 0: journal with headers only (no audio page yet).
    let h0 = spool.open_segment(REC, "hdr", 0).unwrap();
    drop(writer(&h0.part_path, "hdr", 0, 0));
    assert!(h0.part_path.exists());

    // bad 0: a journal that is not Ogg at all.
    let b0 = spool.open_segment(REC, "bad", 0).unwrap();
    fs::write(&b0.part_path, b"this is not an ogg stream").unwrap();

    let report = spool.recover().unwrap();

    assert_eq!(report.interrupted, vec![REC.to_string()]);
    // Repaired: three intact pages = 75 packets, ending at granule 75 * 960.
    assert_eq!(report.repaired.len(), 1);
    let r = &report.repaired[0];
    let want_len = 75 * 960 - pre_skip;
    assert_eq!(want_len, 71_688);
    assert_eq!((r.id, r.sequence, r.start_48k), (m1.id, 1, 144_000));
    assert_eq!(r.length_48k, want_len);
    assert_eq!(r.state, SegmentState::Sealed);
    assert_eq!(r.path, m1.final_path);
    assert_eq!(r.bytes, fs::metadata(&m1.final_path).unwrap().len());
    let info = chronote_encode::inspect(&m1.final_path).unwrap();
    assert_eq!(info.length_48k, want_len);
    assert_eq!(
        chronote_encode::decode(&m1.final_path).unwrap().len() as u64,
        want_len
    );

    // Adopted with the sealed file's own numbers.
    assert_eq!(report.adopted.len(), 1);
    let a = &report.adopted[0];
    assert_eq!(a.id, s0.id);
    assert_eq!(a.length_48k, (60 * 320 - 7) * 3);
    assert_eq!(a.bytes, s0_sealed.bytes);
    assert_eq!(a.sha256, s0_sealed.sha256);

    assert_eq!(
        report.dropped, 3,
        "aux (no files), hdr (empty), bad (corrupt)"
    );
    // mic1 journal, sys0 journal, hdr journal, mic0 stale journal, .tmp.
    assert_eq!(report.removed_files, 5);
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    let corrupt = root.join(format!("segments/{REC}/bad/000000.opus.part.corrupt"));
    assert!(
        report.errors[0].contains(&corrupt.display().to_string()),
        "{}",
        report.errors[0]
    );
    assert_eq!(fs::read(&corrupt).unwrap(), b"this is not an ogg stream");

    for gone in [
        &m0.part_path,
        &m1.part_path,
        &s0.part_path,
        &h0.part_path,
        &b0.part_path,
        &tmp,
        &a0.part_path,
    ] {
        assert!(!gone.exists(), "{} should be gone", gone.display());
    }
    for kept in [&m0.final_path, &m1.final_path, &s0.final_path] {
        chronote_encode::inspect(kept).unwrap();
    }

    let rows: Vec<_> = spool
        .segments(REC)
        .unwrap()
        .into_iter()
        .map(|s| (s.track, s.sequence, s.start_48k, s.length_48k, s.state))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("mic".to_string(), 0, 0, 144_000, SegmentState::Sealed),
            (
                "mic".to_string(),
                1,
                144_000,
                want_len,
                SegmentState::Sealed
            ),
            (
                "sys".to_string(),
                0,
                0,
                (60 * 320 - 7) * 3,
                SegmentState::Sealed
            ),
        ]
    );
    let summary = spool.recording(REC).unwrap().unwrap();
    assert_eq!(summary.state, RecordingState::Interrupted);
    let ends: Vec<_> = summary
        .tracks
        .iter()
        .map(|t| (t.name.as_str(), t.end_48k))
        .collect();
    assert_eq!(
        ends,
        vec![
            ("mic", Some(144_000 + want_len)),
            ("sys", Some((60 * 320 - 7) * 3)),
            ("aux", Some(0)),
            ("hdr", Some(0)),
            ("bad", Some(0)),
        ]
    );

    // Idempotent: a second run finds nothing and changes nothing.
    let before = (spool.segments(REC).unwrap(), spool.recordings().unwrap());
    assert_eq!(spool.recover().unwrap(), RecoveryReport::default());
    assert_eq!(
        (spool.segments(REC).unwrap(), spool.recordings().unwrap()),
        before
    );
    assert!(corrupt.exists());

    // And again after a restart.
    drop(spool);
    let mut spool: Spool = open(root);
    assert_eq!(spool.recover().unwrap(), RecoveryReport::default());
}

#[test]
fn recovery_on_an_empty_spool_reports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = open(dir.path());
    assert_eq!(spool.recover().unwrap(), RecoveryReport::default());
}

#[test]
fn interrupted_recording_can_resume_and_continue_its_tracks() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = open(dir.path());
    spool
        .create_recording(&new_recording(REC, &["mic"]))
        .unwrap();
    let m0 = spool.open_segment(REC, "mic", 0).unwrap();
    let mut w = writer(&m0.part_path, "mic", 0, 0);
    push_tone(&mut w, 50);
    drop(w);
    let report = spool.recover().unwrap();
    assert_eq!(report.repaired.len(), 1);
    let end = report.repaired[0].length_48k;
    assert_eq!(end, 50 * 960 - 312);
    assert_eq!(
        spool
            .apply_recording_event(REC, chronote_spool::RecordingEvent::Resume)
            .unwrap(),
        RecordingState::Active
    );
    let next = spool.open_segment(REC, "mic", end + 48_000).unwrap();
    assert_eq!(next.sequence, 1);
    spool
        .record_gap(REC, "mic", end, 48_000, chronote_spool::GapReason::Crash)
        .unwrap();
    assert_eq!(spool.gaps(REC).unwrap()[0].length_48k, 48_000);
}
