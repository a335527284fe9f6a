//! Helpers shared by the spool's integration tests.
#![allow(dead_code)]

use std::fs;
use std::path::Path;

use chronote_spool::{NewRecording, OpenSegment, RecordingSource, SealedInfo, Spool, SpoolConfig};

pub const FAKE_SHA: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

pub fn open(root: &Path) -> Spool {
    Spool::open(root, SpoolConfig::default()).expect("open spool")
}

pub fn new_recording(id: &str, tracks: &[&str]) -> NewRecording {
    NewRecording {
        id: id.to_string(),
        title: format!("title of {id}"),
        source: RecordingSource::Desktop,
        started_at: "2025-03-01T10:00:00Z".to_string(),
        tracks: tracks.iter().map(|t| t.to_string()).collect(),
    }
}

/// Opens a segment, writes `bytes` bytes to its final path and seals it.
pub fn fake_sealed(
    spool: &mut Spool,
    rec: &str,
    track: &str,
    start_48k: u64,
    length_48k: u64,
    bytes: u64,
) -> OpenSegment {
    let seg = spool
        .open_segment(rec, track, start_48k)
        .expect("open segment");
    fs::write(&seg.part_path, b"journal").unwrap();
    fs::write(&seg.final_path, vec![0x4f_u8; bytes as usize]).unwrap();
    spool
        .seal_segment(
            seg.id,
            &SealedInfo {
                bytes,
                length_48k,
                sha256: FAKE_SHA.to_string(),
            },
        )
        .expect("seal");
    seg
}

/// Sum of the database file sizes, as `usage_bytes` counts them.
pub fn db_bytes(root: &Path) -> u64 {
    ["spool.db", "spool.db-wal", "spool.db-shm"]
        .iter()
        .map(|f| fs::metadata(root.join(f)).map(|m| m.len()).unwrap_or(0))
        .sum()
}
