//! Helpers for the uploader's tests: an in-process Chronote server, spools full of real Ogg
//! Opus segments, a look into the server's data directory, and the fault proxy.
#![allow(dead_code)] // each test binary uses a different part of these helpers

pub mod proxy;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chronote_encode::{EncoderConfig, SegmentTags, SegmentWriter};
use chronote_server::{RunningServer, ServerConfig};
use chronote_spool::{
    NewRecording, RecordingEvent, SealedInfo, SegmentRow, Source, Spool, SpoolConfig,
};
use chronote_upload::UploaderConfig;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

pub struct TestServer {
    pub server: RunningServer,
    pub dir: TempDir,
    pub token: String,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("server dir");
        let token = chronote_server::create_token(dir.path(), "alice").expect("token");
        let mut config = ServerConfig::new(dir.path());
        config.listen = "127.0.0.1:0".parse().expect("addr");
        let server = chronote_server::bind(config).await.expect("bind server");
        TestServer { server, dir, token }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.local_addr())
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }

    pub fn data(&self) -> &Path {
        self.dir.path()
    }
}

/// Joins an uploader thread without blocking the runtime that serves the in-process server.
pub async fn join(
    thread: chronote_upload::UploaderThread,
) -> Result<chronote_upload::UploadReport, chronote_upload::UploadError> {
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .expect("join task")
}

/// Fast retries for tests: small backoff, short timeouts, quick polling.
pub fn fast_config(server: &str, token: &str) -> UploaderConfig {
    let mut c = UploaderConfig::new(server, token);
    c.min_backoff = Duration::from_millis(20);
    c.max_backoff = Duration::from_millis(300);
    c.max_retry_after = Duration::from_secs(5);
    c.request_timeout = Duration::from_secs(3);
    c.connect_timeout = Duration::from_secs(2);
    c.poll_interval = Duration::from_millis(50);
    c
}

pub fn open_spool(root: &Path) -> Arc<Mutex<Spool>> {
    let config = SpoolConfig {
        max_bytes: 1 << 30,
        min_free_bytes: 0,
    };
    let mut spool = Spool::open(root, config).expect("open spool");
    spool.recover().expect("recover");
    Arc::new(Mutex::new(spool))
}

/// Creates a recording with `per_track` real segments of `secs` seconds on each track. With
/// `stop`, the recording ends Stopped (as after `chronote record`); else it stays Active.
pub fn add_recording(
    spool: &Arc<Mutex<Spool>>,
    id: &str,
    tracks: &[&str],
    per_track: usize,
    secs: f32,
    stop: bool,
) {
    {
        let mut s = spool.lock().unwrap();
        s.create_recording(&NewRecording {
            id: id.into(),
            title: format!("test {id}"),
            source: Source::Desktop,
            started_at: "2025-03-01T10:00:00Z".into(),
            tracks: tracks.iter().map(|t| t.to_string()).collect(),
        })
        .expect("create recording");
    }
    for (ti, track) in tracks.iter().enumerate() {
        let mut start = 0u64;
        for i in 0..per_track {
            let length = seal_segment(spool, id, track, start, secs, (ti * 1000 + i) as u64);
            start += length;
        }
    }
    if stop {
        stop_recording(spool, id);
    }
}

pub fn stop_recording(spool: &Arc<Mutex<Spool>>, id: &str) {
    let mut s = spool.lock().unwrap();
    s.apply_recording_event(id, RecordingEvent::Stop).unwrap();
    s.apply_recording_event(id, RecordingEvent::Finalized)
        .unwrap();
}

/// Encodes `secs` of a varying tone plus noise (so every segment differs) and seals it.
/// Returns its length in 48 kHz units.
pub fn seal_segment(
    spool: &Arc<Mutex<Spool>>,
    id: &str,
    track: &str,
    start_48k: u64,
    secs: f32,
    salt: u64,
) -> u64 {
    let seg = spool
        .lock()
        .unwrap()
        .open_segment(id, track, start_48k)
        .expect("open segment");
    let config = EncoderConfig::default();
    let tags = SegmentTags {
        recording_id: id.into(),
        track: track.into(),
        sequence: seg.sequence,
        start_48k,
        start_time: "2025-03-01T10:00:00Z".into(),
    };
    let mut w = SegmentWriter::create(&seg.part_path, &config, &tags).expect("writer");
    let frame_len = w.frame_len();
    let frames = ((secs * config.sample_rate as f32) as usize).div_ceil(frame_len);
    let freq = 200.0 + (salt % 37) as f32 * 20.0;
    let mut noise = salt.wrapping_mul(6364136223846793005).wrapping_add(1);
    for f in 0..frames {
        let frame: Vec<f32> = (0..frame_len)
            .map(|i| {
                let t = (f * frame_len + i) as f32 / config.sample_rate as f32;
                noise = noise
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let n = ((noise >> 33) as f32 / (1u64 << 31) as f32) - 0.5;
                0.3 * (std::f32::consts::TAU * freq * t).sin() + 0.05 * n
            })
            .collect();
        w.push_frame(&frame).expect("push frame");
    }
    let keep = (frames * frame_len) as u64;
    let sealed = w.seal(&seg.final_path, keep).expect("seal");
    spool
        .lock()
        .unwrap()
        .seal_segment(
            seg.id,
            &SealedInfo {
                bytes: sealed.bytes,
                length_48k: sealed.length_48k,
                sha256: sealed.sha256.clone(),
            },
        )
        .expect("seal in spool");
    sealed.length_48k
}

pub fn segments(spool: &Arc<Mutex<Spool>>, id: &str) -> Vec<SegmentRow> {
    spool.lock().unwrap().segments(id).unwrap()
}

pub fn sha256_file(path: &Path) -> String {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    hex(&Sha256::digest(&data))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One row of the server's `segments` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSegment {
    pub recording_id: String,
    pub track: String,
    pub sequence: u64,
    pub sha256: String,
    pub bytes: u64,
    pub upload_id: String,
}

/// Reads the server's database directly: every received segment, and the number of uploads
/// ever created (a duplicate upload would show up there even if `segments` is unique).
pub fn server_rows(data: &Path) -> (Vec<ServerSegment>, u64) {
    let conn = rusqlite::Connection::open_with_flags(
        data.join("server.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open server db");
    let mut st = conn
        .prepare(
            "SELECT recording_id, track, sequence, sha256, bytes, upload_id FROM segments
             ORDER BY recording_id, track, sequence",
        )
        .unwrap();
    let rows = st
        .query_map([], |r| {
            Ok(ServerSegment {
                recording_id: r.get(0)?,
                track: r.get(1)?,
                sequence: r.get::<_, i64>(2)? as u64,
                sha256: r.get(3)?,
                bytes: r.get::<_, i64>(4)? as u64,
                upload_id: r.get(5)?,
            })
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let uploads: i64 = conn
        .query_row("SELECT COUNT(*) FROM uploads", [], |r| r.get(0))
        .unwrap();
    (rows, uploads as u64)
}

/// The stored blob of an upload.
pub fn blob_path(data: &Path, upload_id: &str) -> PathBuf {
    data.join("uploads").join(format!("{upload_id}.bin"))
}

/// Asserts the server holds exactly the spool's segments of `id`, byte-identical (sha256 of the
/// stored blob), with one upload per segment and nothing else.
pub fn assert_server_matches(data: &Path, spool: &Arc<Mutex<Spool>>, ids: &[&str]) {
    let (rows, uploads) = server_rows(data);
    let mut local: Vec<SegmentRow> = ids.iter().flat_map(|id| segments(spool, id)).collect();
    local.sort_by(|a, b| {
        (&a.recording_id, &a.track, a.sequence).cmp(&(&b.recording_id, &b.track, b.sequence))
    });
    assert_eq!(rows.len(), local.len(), "segments on the server");
    assert_eq!(uploads, local.len() as u64, "uploads created on the server");
    for (row, seg) in rows.iter().zip(&local) {
        assert_eq!(
            (&row.recording_id, &row.track, row.sequence),
            (&seg.recording_id, &seg.track, seg.sequence)
        );
        assert_eq!(row.sha256, seg.sha256, "{row:?}");
        assert_eq!(row.bytes, seg.bytes, "{row:?}");
        assert_eq!(
            sha256_file(&blob_path(data, &row.upload_id)),
            seg.sha256,
            "{row:?}"
        );
    }
}
