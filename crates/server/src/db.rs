//! Every SQL statement of the server: owners and tokens, recordings, uploads, segments.
//!
//! One SQLite connection in WAL mode with `synchronous=FULL`, so a commit that returned is on
//! stable storage: the final 204 of an upload is only sent after "segment received" committed.
//! The connection sits behind a std mutex held for one short statement or transaction; callers
//! run these methods on a blocking thread (see `AppState::db`). A Postgres backend would
//! implement the same methods.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::ServerError;
use crate::jobs::{JobEvent, JobKind, JobState, transition};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS owners (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    hash       BLOB PRIMARY KEY,
    owner_id   INTEGER NOT NULL REFERENCES owners(id),
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS recordings (
    owner_id        INTEGER NOT NULL REFERENCES owners(id),
    id              TEXT NOT NULL,
    title           TEXT NOT NULL,
    source          TEXT NOT NULL,
    tracks          TEXT NOT NULL,
    started_at      TEXT NOT NULL,
    ended_at        TEXT,
    final_sequences TEXT,
    created_ms      INTEGER NOT NULL,
    PRIMARY KEY (owner_id, id)
);
CREATE TABLE IF NOT EXISTS uploads (
    id           TEXT PRIMARY KEY,
    owner_id     INTEGER NOT NULL REFERENCES owners(id),
    length       INTEGER,
    offset       INTEGER NOT NULL,
    metadata     TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('uploading', 'complete', 'expired')),
    recording_id TEXT,
    track        TEXT,
    sequence     INTEGER,
    sha256       TEXT,
    start_48k    INTEGER,
    length_48k   INTEGER
);
-- One live upload per segment slot: what makes segment creation idempotent.
CREATE UNIQUE INDEX IF NOT EXISTS uploads_slot
    ON uploads (owner_id, recording_id, track, sequence)
    WHERE recording_id IS NOT NULL AND state != 'expired';
CREATE INDEX IF NOT EXISTS uploads_expiry ON uploads (state, expires_ms);
CREATE TABLE IF NOT EXISTS segments (
    owner_id     INTEGER NOT NULL,
    recording_id TEXT NOT NULL,
    track        TEXT NOT NULL,
    sequence     INTEGER NOT NULL,
    sha256       TEXT NOT NULL,
    bytes        INTEGER NOT NULL,
    start_48k    INTEGER NOT NULL,
    length_48k   INTEGER NOT NULL,
    upload_id    TEXT NOT NULL,
    received_ms  INTEGER NOT NULL,
    UNIQUE (owner_id, recording_id, track, sequence)
);
-- Processing (issue 4). A job row is the durable unit of work; see jobs.rs for its states.
CREATE TABLE IF NOT EXISTS jobs (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('transcribe', 'summarize', 'finalize')),
    owner_id        INTEGER NOT NULL,
    recording_id    TEXT NOT NULL,
    track           TEXT,
    sequence        INTEGER,
    window_start_ms INTEGER,
    window_end_ms   INTEGER,
    cost_ms         INTEGER NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'dead')),
    attempts        INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_token     TEXT,
    lease_expiry_ms INTEGER,
    created_ms      INTEGER NOT NULL,
    finished_ms     INTEGER,
    error           TEXT
);
-- One transcription job per segment, ever.
CREATE UNIQUE INDEX IF NOT EXISTS jobs_segment
    ON jobs (owner_id, recording_id, track, sequence) WHERE kind = 'transcribe';
CREATE INDEX IF NOT EXISTS jobs_by_recording ON jobs (owner_id, recording_id, state);
CREATE INDEX IF NOT EXISTS jobs_open ON jobs (state, next_attempt_ms)
    WHERE state IN ('queued', 'running', 'failed');
-- One result per segment: a retried or taken-over job replaces, never adds.
CREATE TABLE IF NOT EXISTS transcripts (
    owner_id     INTEGER NOT NULL,
    recording_id TEXT NOT NULL,
    track        TEXT NOT NULL,
    sequence     INTEGER NOT NULL,
    spans        TEXT NOT NULL,
    engine       TEXT NOT NULL,
    job_id       INTEGER NOT NULL,
    created_ms   INTEGER NOT NULL,
    UNIQUE (owner_id, recording_id, track, sequence)
);
CREATE TABLE IF NOT EXISTS notes (
    owner_id            INTEGER NOT NULL,
    recording_id        TEXT NOT NULL,
    version             INTEGER NOT NULL,
    is_final            INTEGER NOT NULL,
    outcome             TEXT,
    summarized_until_ms INTEGER NOT NULL,
    notes               TEXT NOT NULL,
    engine              TEXT NOT NULL,
    created_ms          INTEGER NOT NULL,
    UNIQUE (owner_id, recording_id, version)
);
CREATE TABLE IF NOT EXISTS stops (
    owner_id         INTEGER NOT NULL,
    recording_id     TEXT NOT NULL,
    stopped_ms       INTEGER NOT NULL,
    notes_latency_ms INTEGER,
    PRIMARY KEY (owner_id, recording_id)
);
-- Segments received before jobs existed get theirs now.
INSERT INTO jobs (kind, owner_id, recording_id, track, sequence, cost_ms, state, attempts,
                  next_attempt_ms, created_ms)
    SELECT 'transcribe', s.owner_id, s.recording_id, s.track, s.sequence, s.length_48k / 48,
           'queued', 0, s.received_ms, s.received_ms
    FROM segments s
    WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.kind = 'transcribe'
        AND j.owner_id = s.owner_id AND j.recording_id = s.recording_id
        AND j.track = s.track AND j.sequence = s.sequence);
";

/// The state column of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadState {
    /// Accepting PATCHes.
    Uploading,
    /// Offset reached the length and (for a segment) the segment was recorded as received.
    Complete,
    /// Not completed in time; its blob is gone and requests get 410.
    Expired,
}

impl UploadState {
    fn as_str(self) -> &'static str {
        match self {
            UploadState::Uploading => "uploading",
            UploadState::Complete => "complete",
            UploadState::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Result<Self, ServerError> {
        match s {
            "uploading" => Ok(UploadState::Uploading),
            "complete" => Ok(UploadState::Complete),
            "expired" => Ok(UploadState::Expired),
            other => Err(ServerError::Corrupt(format!(
                "unknown upload state {other:?}"
            ))),
        }
    }
}

/// Which recording slot a segment upload fills, from its Upload-Metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSlot {
    pub recording_id: String,
    pub track: String,
    pub sequence: u64,
    /// Lowercase hex of the whole file.
    pub sha256: String,
    pub start_48k: u64,
    pub length_48k: u64,
}

/// One tus upload.
#[derive(Debug, Clone)]
pub struct UploadRow {
    pub id: String,
    pub owner_id: i64,
    /// `None` while the length is deferred.
    pub length: Option<u64>,
    pub offset: u64,
    /// (key, base64 value) in the order the client sent them.
    pub metadata: Vec<(String, String)>,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub state: UploadState,
    pub segment: Option<SegmentSlot>,
}

/// One recording as created by its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRow {
    pub id: String,
    pub title: String,
    pub source: String,
    pub tracks: Vec<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// Set by the stop call.
    pub final_sequences: Option<BTreeMap<String, Option<u64>>>,
}

/// A received segment, as the status call needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRow {
    pub track: String,
    pub sequence: u64,
    pub bytes: u64,
}

/// What [`Db::create_upload`] did.
#[derive(Debug)]
pub enum Created {
    /// A new row was inserted.
    New,
    /// The segment slot already has a live upload: this one.
    Existing(UploadRow),
}

/// The server database.
#[derive(Debug)]
pub struct Db {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// Stored u64 values are bounded by the handlers (lengths by max_size, sequences by a cap), so
/// they always fit in SQLite's i64; this conversion guards against a corrupted file.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_i64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Db {
    /// Opens (creating if needed) the database at `path` and brings the schema up to date.
    pub fn open(path: &Path) -> Result<Db, ServerError> {
        let err = |action, source| ServerError::Db {
            path: path.to_path_buf(),
            action,
            source,
        };
        let conn = Connection::open(path).map_err(|e| err("open", e))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| err("enable WAL", e))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| err("set synchronous=FULL", e))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| err("enable foreign keys", e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| err("set busy timeout", e))?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| err("create schema", e))?;
        Ok(Db {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-applied change behind: every
        // multi-statement change is a transaction that rolls back when dropped.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self, action: &'static str) -> impl FnOnce(rusqlite::Error) -> ServerError + '_ {
        move |source| ServerError::Db {
            path: self.path.clone(),
            action,
            source,
        }
    }

    /// Adds a token for owner `name` (creating the owner on first use) and returns its id.
    pub fn add_token(&self, name: &str, hash: &[u8], now_ms: i64) -> Result<i64, ServerError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err("begin"))?;
        tx.execute(
            "INSERT INTO owners (name, created_ms) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
            params![name, now_ms],
        )
        .map_err(self.err("insert owner"))?;
        let owner: i64 = tx
            .query_row("SELECT id FROM owners WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .map_err(self.err("select owner"))?;
        tx.execute(
            "INSERT INTO tokens (hash, owner_id, created_ms) VALUES (?1, ?2, ?3)",
            params![hash, owner, now_ms],
        )
        .map_err(self.err("insert token"))?;
        tx.commit().map_err(self.err("commit token"))?;
        Ok(owner)
    }

    /// The owner of the token whose sha256 is `hash`.
    pub fn owner_for_token(&self, hash: &[u8]) -> Result<Option<i64>, ServerError> {
        self.conn()
            .query_row("SELECT owner_id FROM tokens WHERE hash = ?1", [hash], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.err("look up token"))
    }

    /// Inserts the recording unless `(owner, id)` exists; returns the stored row and whether it
    /// was created now.
    pub fn create_recording(
        &self,
        owner: i64,
        rec: &RecordingRow,
        now_ms: i64,
    ) -> Result<(RecordingRow, bool), ServerError> {
        let tracks = serde_json::to_string(&rec.tracks)
            .map_err(|e| ServerError::Corrupt(format!("encode tracks: {e}")))?;
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err("begin"))?;
        let inserted = tx
            .execute(
                "INSERT INTO recordings (owner_id, id, title, source, tracks, started_at, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                params![owner, rec.id, rec.title, rec.source, tracks, rec.started_at, now_ms],
            )
            .map_err(self.err("insert recording"))?;
        let row = Self::recording_in(&tx, owner, &rec.id)
            .map_err(self.err("select recording"))?
            .ok_or_else(|| ServerError::Corrupt("recording vanished after insert".into()))??;
        tx.commit().map_err(self.err("commit recording"))?;
        Ok((row, inserted == 1))
    }

    fn recording_in(
        conn: &Connection,
        owner: i64,
        id: &str,
    ) -> rusqlite::Result<Option<Result<RecordingRow, ServerError>>> {
        conn.query_row(
            "SELECT id, title, source, tracks, started_at, ended_at, final_sequences
             FROM recordings WHERE owner_id = ?1 AND id = ?2",
            params![owner, id],
            |r| {
                let tracks: String = r.get(3)?;
                let finals: Option<String> = r.get(6)?;
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    tracks,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    finals,
                ))
            },
        )
        .optional()
        .map(|o| {
            o.map(
                |(id, title, source, tracks, started_at, ended_at, finals)| {
                    let tracks = serde_json::from_str(&tracks)
                        .map_err(|e| ServerError::Corrupt(format!("recording {id} tracks: {e}")))?;
                    let final_sequences = finals
                        .map(|f| serde_json::from_str(&f))
                        .transpose()
                        .map_err(|e| ServerError::Corrupt(format!("recording {id} finals: {e}")))?;
                    Ok(RecordingRow {
                        id,
                        title,
                        source,
                        tracks,
                        started_at,
                        ended_at,
                        final_sequences,
                    })
                },
            )
        })
    }

    /// The recording `(owner, id)`, if it exists.
    pub fn recording(&self, owner: i64, id: &str) -> Result<Option<RecordingRow>, ServerError> {
        let conn = self.conn();
        Self::recording_in(&conn, owner, id)
            .map_err(self.err("select recording"))?
            .transpose()
    }

    /// Records the stop call. Returns `false` if the recording does not exist.
    pub fn stop_recording(
        &self,
        owner: i64,
        id: &str,
        finals: &BTreeMap<String, Option<u64>>,
        ended_at: &str,
        now_ms: i64,
    ) -> Result<bool, ServerError> {
        let finals = serde_json::to_string(finals)
            .map_err(|e| ServerError::Corrupt(format!("encode final sequences: {e}")))?;
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err("begin"))?;
        let n = tx
            .execute(
                "UPDATE recordings SET final_sequences = ?3, ended_at = ?4
                 WHERE owner_id = ?1 AND id = ?2",
                params![owner, id, finals, ended_at],
            )
            .map_err(self.err("stop recording"))?;
        if n == 1 {
            // The stop and its finalization job commit together, so a crash cannot leave a
            // stopped recording that never gets final notes.
            tx.execute(
                "INSERT INTO stops (owner_id, recording_id, stopped_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
                params![owner, id, now_ms],
            )
            .map_err(self.err("insert stop"))?;
            Self::insert_finalize(&tx, owner, id, now_ms).map_err(self.err("insert finalize"))?;
        }
        tx.commit().map_err(self.err("commit stop"))?;
        Ok(n == 1)
    }

    /// Received segments of a recording, ordered by track and sequence.
    pub fn segments(&self, owner: i64, recording: &str) -> Result<Vec<SegmentRow>, ServerError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT track, sequence, bytes FROM segments
                 WHERE owner_id = ?1 AND recording_id = ?2 ORDER BY track, sequence",
            )
            .map_err(self.err("prepare segments"))?;
        let rows = stmt
            .query_map(params![owner, recording], |r| {
                Ok(SegmentRow {
                    track: r.get(0)?,
                    sequence: from_i64(r.get(1)?),
                    bytes: from_i64(r.get(2)?),
                })
            })
            .map_err(self.err("select segments"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.err("read segments"))
    }

    fn upload_from_row(r: &Row<'_>) -> rusqlite::Result<(UploadRow, String, String)> {
        let recording_id: Option<String> = r.get(8)?;
        let segment = match recording_id {
            Some(recording_id) => Some(SegmentSlot {
                recording_id,
                track: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
                sequence: from_i64(r.get::<_, Option<i64>>(10)?.unwrap_or(0)),
                sha256: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
                start_48k: from_i64(r.get::<_, Option<i64>>(12)?.unwrap_or(0)),
                length_48k: from_i64(r.get::<_, Option<i64>>(13)?.unwrap_or(0)),
            }),
            None => None,
        };
        Ok((
            UploadRow {
                id: r.get(0)?,
                owner_id: r.get(1)?,
                length: r.get::<_, Option<i64>>(2)?.map(from_i64),
                offset: from_i64(r.get(3)?),
                metadata: Vec::new(),
                created_ms: r.get(5)?,
                expires_ms: r.get(6)?,
                state: UploadState::Uploading,
                segment,
            },
            r.get(4)?,
            r.get(7)?,
        ))
    }

    fn finish_upload_row(
        (mut row, metadata, state): (UploadRow, String, String),
    ) -> Result<UploadRow, ServerError> {
        row.metadata = serde_json::from_str(&metadata)
            .map_err(|e| ServerError::Corrupt(format!("upload {} metadata: {e}", row.id)))?;
        row.state = UploadState::parse(&state)?;
        Ok(row)
    }

    const UPLOAD_COLUMNS: &'static str = "id, owner_id, length, offset, metadata, created_ms, \
        expires_ms, state, recording_id, track, sequence, sha256, start_48k, length_48k";

    /// The upload `id` if it belongs to `owner`.
    pub fn upload(&self, owner: i64, id: &str) -> Result<Option<UploadRow>, ServerError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {} FROM uploads WHERE id = ?1 AND owner_id = ?2",
            Self::UPLOAD_COLUMNS
        );
        conn.query_row(&sql, params![id, owner], Self::upload_from_row)
            .optional()
            .map_err(self.err("select upload"))?
            .map(Self::finish_upload_row)
            .transpose()
    }

    /// Every upload still accepting bytes (for the startup reconciliation).
    pub fn uploads_in_progress(&self) -> Result<Vec<UploadRow>, ServerError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {} FROM uploads WHERE state = 'uploading'",
            Self::UPLOAD_COLUMNS
        );
        let mut stmt = conn.prepare(&sql).map_err(self.err("prepare uploads"))?;
        let rows = stmt
            .query_map([], Self::upload_from_row)
            .map_err(self.err("select uploads"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err("read uploads"))?;
        rows.into_iter().map(Self::finish_upload_row).collect()
    }

    /// Inserts `row`, or for a segment whose slot already has a live upload returns that one
    /// (the caller compares sha256). The check and insert share one transaction.
    pub fn create_upload(&self, row: &UploadRow) -> Result<Created, ServerError> {
        let metadata = serde_json::to_string(&row.metadata)
            .map_err(|e| ServerError::Corrupt(format!("encode metadata: {e}")))?;
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err("begin"))?;
        if let Some(slot) = &row.segment {
            let sql = format!(
                "SELECT {} FROM uploads WHERE owner_id = ?1 AND recording_id = ?2 AND track = ?3
                 AND sequence = ?4 AND state != 'expired'",
                Self::UPLOAD_COLUMNS
            );
            let existing = tx
                .query_row(
                    &sql,
                    params![
                        row.owner_id,
                        slot.recording_id,
                        slot.track,
                        to_i64(slot.sequence)
                    ],
                    Self::upload_from_row,
                )
                .optional()
                .map_err(self.err("select slot"))?;
            if let Some(existing) = existing {
                return Ok(Created::Existing(Self::finish_upload_row(existing)?));
            }
        }
        let seg = row.segment.as_ref();
        tx.execute(
            "INSERT INTO uploads (id, owner_id, length, offset, metadata, created_ms, expires_ms,
                state, recording_id, track, sequence, sha256, start_48k, length_48k)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                row.id,
                row.owner_id,
                row.length.map(to_i64),
                to_i64(row.offset),
                metadata,
                row.created_ms,
                row.expires_ms,
                row.state.as_str(),
                seg.map(|s| &s.recording_id),
                seg.map(|s| &s.track),
                seg.map(|s| to_i64(s.sequence)),
                seg.map(|s| &s.sha256),
                seg.map(|s| to_i64(s.start_48k)),
                seg.map(|s| to_i64(s.length_48k)),
            ],
        )
        .map_err(self.err("insert upload"))?;
        tx.commit().map_err(self.err("commit upload"))?;
        Ok(Created::New)
    }

    /// Stores a new offset (and the sliding expiry) after bytes were appended.
    pub fn set_offset(&self, id: &str, offset: u64, expires_ms: i64) -> Result<(), ServerError> {
        self.conn()
            .execute(
                "UPDATE uploads SET offset = ?2, expires_ms = ?3 WHERE id = ?1 AND state = 'uploading'",
                params![id, to_i64(offset), expires_ms],
            )
            .map_err(self.err("update offset"))?;
        Ok(())
    }

    /// Fixes a deferred length.
    pub fn set_length(&self, id: &str, length: u64) -> Result<(), ServerError> {
        self.conn()
            .execute(
                "UPDATE uploads SET length = ?2 WHERE id = ?1 AND length IS NULL",
                params![id, to_i64(length)],
            )
            .map_err(self.err("update length"))?;
        Ok(())
    }

    /// Marks the upload complete and, for a segment, records it received, in one transaction.
    pub fn complete_upload(
        &self,
        upload: &UploadRow,
        bytes: u64,
        now_ms: i64,
    ) -> Result<(), ServerError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err("begin"))?;
        tx.execute(
            "UPDATE uploads SET state = 'complete', offset = ?2 WHERE id = ?1",
            params![upload.id, to_i64(bytes)],
        )
        .map_err(self.err("complete upload"))?;
        if let Some(s) = &upload.segment {
            // The slot index allows one live upload per slot, so a conflict here can only be
            // the same segment recorded by an earlier attempt; keeping the first row is right.
            tx.execute(
                "INSERT INTO segments (owner_id, recording_id, track, sequence, sha256, bytes,
                    start_48k, length_48k, upload_id, received_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
                params![
                    upload.owner_id,
                    s.recording_id,
                    s.track,
                    to_i64(s.sequence),
                    s.sha256,
                    to_i64(bytes),
                    to_i64(s.start_48k),
                    to_i64(s.length_48k),
                    upload.id,
                    now_ms
                ],
            )
            .map_err(self.err("insert segment"))?;
            // In the same transaction: no received segment can lack its transcription job.
            tx.execute(
                "INSERT INTO jobs (kind, owner_id, recording_id, track, sequence, cost_ms, state,
                    attempts, next_attempt_ms, created_ms)
                 VALUES ('transcribe', ?1, ?2, ?3, ?4, ?5, 'queued', 0, ?6, ?6)
                 ON CONFLICT DO NOTHING",
                params![
                    upload.owner_id,
                    s.recording_id,
                    s.track,
                    to_i64(s.sequence),
                    to_i64(s.length_48k / 48),
                    now_ms
                ],
            )
            .map_err(self.err("insert transcription job"))?;
        }
        tx.commit().map_err(self.err("commit completion"))?;
        Ok(())
    }

    /// Removes an upload row (termination, or a segment that failed verification).
    pub fn delete_upload(&self, id: &str) -> Result<(), ServerError> {
        self.conn()
            .execute("DELETE FROM uploads WHERE id = ?1", [id])
            .map_err(self.err("delete upload"))?;
        Ok(())
    }

    /// Ids of incomplete uploads past their expiry (the sweeper then expires each under its lock).
    pub fn expiry_candidates(&self, now_ms: i64) -> Result<Vec<String>, ServerError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT id FROM uploads WHERE state = 'uploading' AND expires_ms <= ?1")
            .map_err(self.err("prepare expiry"))?;
        let ids = stmt
            .query_map([now_ms], |r| r.get::<_, String>(0))
            .map_err(self.err("select expired"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err("read expired"))?;
        Ok(ids)
    }

    /// Marks the upload expired if it is still incomplete and due; true if it changed.
    pub fn mark_expired(&self, id: &str, now_ms: i64) -> Result<bool, ServerError> {
        let n = self
            .conn()
            .execute(
                "UPDATE uploads SET state = 'expired'
                 WHERE id = ?1 AND state = 'uploading' AND expires_ms <= ?2",
                params![id, now_ms],
            )
            .map_err(self.err("expire upload"))?;
        Ok(n == 1)
    }
}

/// A processing job, as workers and status calls see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub id: i64,
    pub kind: JobKind,
    pub owner_id: i64,
    pub recording_id: String,
    /// Transcription jobs: the segment.
    pub track: Option<String>,
    pub sequence: Option<u64>,
    /// Summary jobs: `[start, end)` in recording milliseconds.
    pub window: Option<(u64, u64)>,
    /// Audio milliseconds the job sends to its provider (the audio-seconds bucket's cost).
    pub cost_ms: u64,
    pub state: JobState,
    pub attempts: u32,
    pub next_attempt_ms: i64,
    pub lease_owner: Option<String>,
    pub lease_token: Option<String>,
    pub lease_expiry_ms: Option<i64>,
    pub created_ms: i64,
    pub error: Option<String>,
}

/// A received segment with its transcription state, for progress and assembly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentProgress {
    pub track: String,
    pub sequence: u64,
    pub start_48k: u64,
    pub length_48k: u64,
    /// `None` only for a segment whose job row is missing (never, by construction).
    pub job: Option<JobState>,
    /// The stored result (JSON spans) once transcribed.
    pub spans: Option<String>,
}

/// Where a transcription job finds its audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSource {
    pub upload_id: String,
    pub start_48k: u64,
    pub length_48k: u64,
}

/// One stored version of a recording's notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotesRow {
    pub version: u64,
    pub is_final: bool,
    /// Final notes: `ready`, `empty`, `partial` or `failed`.
    pub outcome: Option<String>,
    pub summarized_until_ms: u64,
    /// JSON of `chronote_summarize::Notes`.
    pub notes: String,
    pub engine: String,
    pub created_ms: i64,
}

/// When a recording was stopped and how long its first final notes took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopRow {
    pub stopped_ms: i64,
    pub notes_latency_ms: Option<i64>,
}

/// A runnable job: queued or failed and due, or running with an expired lease. `?1` is now.
const RUNNABLE: &str = "((state IN ('queued', 'failed') AND next_attempt_ms <= ?1)
    OR (state = 'running' AND lease_expiry_ms <= ?1))";

const JOB_COLUMNS: &str = "id, kind, owner_id, recording_id, track, sequence, window_start_ms, \
    window_end_ms, cost_ms, state, attempts, next_attempt_ms, lease_owner, lease_token, \
    lease_expiry_ms, created_ms, error";

fn kinds_sql(kinds: &[JobKind]) -> String {
    let names: Vec<String> = kinds.iter().map(|k| format!("'{}'", k.as_str())).collect();
    format!("kind IN ({})", names.join(", "))
}

fn corrupt_column(column: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Text,
        format!("unknown job {what}").into(),
    )
}

fn job_from_row(r: &Row<'_>) -> rusqlite::Result<JobRow> {
    let kind: String = r.get(1)?;
    let state: String = r.get(9)?;
    let start: Option<i64> = r.get(6)?;
    let end: Option<i64> = r.get(7)?;
    Ok(JobRow {
        id: r.get(0)?,
        kind: JobKind::parse(&kind).ok_or_else(|| corrupt_column(1, "kind"))?,
        owner_id: r.get(2)?,
        recording_id: r.get(3)?,
        track: r.get(4)?,
        sequence: r.get::<_, Option<i64>>(5)?.map(from_i64),
        window: start.zip(end).map(|(s, e)| (from_i64(s), from_i64(e))),
        cost_ms: from_i64(r.get(8)?),
        state: JobState::parse(&state).ok_or_else(|| corrupt_column(9, "state"))?,
        attempts: u32::try_from(r.get::<_, i64>(10)?).unwrap_or(u32::MAX),
        next_attempt_ms: r.get(11)?,
        lease_owner: r.get(12)?,
        lease_token: r.get(13)?,
        lease_expiry_ms: r.get(14)?,
        created_ms: r.get(15)?,
        error: r.get(16)?,
    })
}

/// Why a job change was refused.
#[derive(Debug)]
pub enum JobChange {
    /// The change was written.
    Applied(JobState),
    /// The caller no longer holds the lease (taken over after expiry, or finished): fenced.
    Fenced,
}

impl Db {
    fn job_in(conn: &Connection, id: i64) -> rusqlite::Result<Option<JobRow>> {
        conn.query_row(
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
            [id],
            job_from_row,
        )
        .optional()
    }

    /// The job `id`.
    #[cfg(test)]
    pub fn job(&self, id: i64) -> Result<Option<JobRow>, ServerError> {
        Self::job_in(&self.conn(), id).map_err(self.err("select job"))
    }

    /// Every job of a recording, oldest first.
    pub fn jobs_of(&self, owner: i64, recording: &str) -> Result<Vec<JobRow>, ServerError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE owner_id = ?1 AND recording_id = ?2
                 ORDER BY created_ms, id"
            ))
            .map_err(self.err("prepare jobs"))?;
        stmt.query_map(params![owner, recording], job_from_row)
            .map_err(self.err("select jobs"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err("read jobs"))
    }

    fn insert_finalize(tx: &Connection, owner: i64, id: &str, now_ms: i64) -> rusqlite::Result<()> {
        let queued: Option<i64> = tx
            .query_row(
                "SELECT id FROM jobs WHERE kind = 'finalize' AND owner_id = ?1
                 AND recording_id = ?2 AND state = 'queued'",
                params![owner, id],
                |r| r.get(0),
            )
            .optional()?;
        match queued {
            Some(job) => {
                tx.execute(
                    "UPDATE jobs SET next_attempt_ms = MIN(next_attempt_ms, ?2) WHERE id = ?1",
                    params![job, now_ms],
                )?;
            }
            None => {
                tx.execute(
                    "INSERT INTO jobs (kind, owner_id, recording_id, cost_ms, state, attempts,
                        next_attempt_ms, created_ms)
                     VALUES ('finalize', ?1, ?2, 0, 'queued', 0, ?3, ?3)",
                    params![owner, id, now_ms],
                )?;
            }
        }
        Ok(())
    }

    /// Makes sure a finalization job is queued for the recording and due now (a late segment
    /// after final notes, or a change a waiting finalization should look at).
    pub fn ensure_finalize(&self, owner: i64, id: &str, now_ms: i64) -> Result<(), ServerError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err("begin"))?;
        Self::insert_finalize(&tx, owner, id, now_ms).map_err(self.err("insert finalize"))?;
        tx.commit().map_err(self.err("commit finalize"))
    }

    /// Claims the next job under the fairness rules (docs/ARCHITECTURE.md, "Scheduler"):
    /// finalization first; otherwise the first meeting after `cursor` (owner, recording) in key
    /// order that has a runnable job, wrapping around; within it the oldest job. Only jobs of
    /// `kinds` are considered. The claim (with its transitions from failed or expired) commits
    /// in one transaction.
    pub fn claim_next(
        &self,
        now_ms: i64,
        node: &str,
        token: &str,
        lease_ms: i64,
        kinds: &[JobKind],
        cursor: Option<&(i64, String)>,
    ) -> Result<Option<JobRow>, ServerError> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err("begin"))?;
        let mut picked: Option<i64> = None;
        if kinds.contains(&JobKind::Finalize) {
            picked = tx
                .query_row(
                    &format!(
                        "SELECT id FROM jobs WHERE kind = 'finalize' AND {RUNNABLE}
                         ORDER BY next_attempt_ms, id LIMIT 1"
                    ),
                    [now_ms],
                    |r| r.get(0),
                )
                .optional()
                .map_err(self.err("select finalize job"))?;
        }
        let others: Vec<JobKind> = kinds
            .iter()
            .copied()
            .filter(|k| *k != JobKind::Finalize)
            .collect();
        if picked.is_none() && !others.is_empty() {
            let kinds = kinds_sql(&others);
            let after = match cursor {
                Some((owner, rec)) => tx
                    .query_row(
                        &format!(
                            "SELECT owner_id, recording_id FROM jobs WHERE {RUNNABLE} AND {kinds}
                             AND (owner_id, recording_id) > (?2, ?3)
                             ORDER BY owner_id, recording_id LIMIT 1"
                        ),
                        params![now_ms, owner, rec],
                        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
                    )
                    .optional()
                    .map_err(self.err("select next meeting"))?,
                None => None,
            };
            let meeting = match after {
                Some(m) => Some(m),
                None => tx
                    .query_row(
                        &format!(
                            "SELECT owner_id, recording_id FROM jobs WHERE {RUNNABLE} AND {kinds}
                             ORDER BY owner_id, recording_id LIMIT 1"
                        ),
                        [now_ms],
                        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
                    )
                    .optional()
                    .map_err(self.err("select first meeting"))?,
            };
            if let Some((owner, rec)) = meeting {
                picked = tx
                    .query_row(
                        &format!(
                            "SELECT id FROM jobs WHERE owner_id = ?2 AND recording_id = ?3
                             AND {RUNNABLE} AND {kinds} ORDER BY created_ms, id LIMIT 1"
                        ),
                        params![now_ms, owner, rec],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(self.err("select oldest job"))?;
            }
        }
        let Some(id) = picked else {
            return Ok(None);
        };
        let mut job = Self::job_in(&tx, id)
            .map_err(self.err("select job"))?
            .ok_or_else(|| ServerError::Corrupt(format!("job {id} vanished")))?;
        let mut state = job.state;
        match state {
            JobState::Failed => state = transition(state, JobEvent::Retry).map_err(illegal)?,
            JobState::Running => {
                tracing::warn!(job = id, lease_owner = ?job.lease_owner, "lease expired, taking the job over");
                state = transition(state, JobEvent::LeaseExpired).map_err(illegal)?;
            }
            _ => {}
        }
        state = transition(state, JobEvent::Claim).map_err(illegal)?;
        let expiry = now_ms.saturating_add(lease_ms);
        tx.execute(
            "UPDATE jobs SET state = ?2, lease_owner = ?3, lease_token = ?4, lease_expiry_ms = ?5
             WHERE id = ?1",
            params![id, state.as_str(), node, token, expiry],
        )
        .map_err(self.err("claim job"))?;
        tx.commit().map_err(self.err("commit claim"))?;
        job.state = state;
        job.lease_owner = Some(node.to_string());
        job.lease_token = Some(token.to_string());
        job.lease_expiry_ms = Some(expiry);
        Ok(Some(job))
    }

    /// Loads job `id` in `tx` if `token` is its current lease, else `None` (fenced).
    fn leased(tx: &Connection, id: i64, token: &str) -> Result<Option<JobRow>, rusqlite::Error> {
        Ok(Self::job_in(tx, id)?
            .filter(|j| j.state == JobState::Running && j.lease_token.as_deref() == Some(token)))
    }

    /// Extends the lease of a running job, if `token` still holds it.
    pub fn renew_lease(
        &self,
        id: i64,
        token: &str,
        expiry_ms: i64,
    ) -> Result<JobChange, ServerError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err("begin"))?;
        let Some(job) = Self::leased(&tx, id, token).map_err(self.err("select job"))? else {
            return Ok(JobChange::Fenced);
        };
        let state = transition(job.state, JobEvent::Renew).map_err(illegal)?;
        tx.execute(
            "UPDATE jobs SET lease_expiry_ms = ?2 WHERE id = ?1",
            params![id, expiry_ms],
        )
        .map_err(self.err("renew lease"))?;
        tx.commit().map_err(self.err("commit renew"))?;
        Ok(JobChange::Applied(state))
    }

    /// Ends an attempt without a result: `Fail`, `GiveUp` or `Requeue` (fenced by `token`).
    /// `next_attempt_ms` is when a failed or requeued job may run again.
    pub fn end_attempt(
        &self,
        id: i64,
        token: &str,
        event: JobEvent,
        next_attempt_ms: i64,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<JobChange, ServerError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err("begin"))?;
        let Some(job) = Self::leased(&tx, id, token).map_err(self.err("select job"))? else {
            return Ok(JobChange::Fenced);
        };
        let state = transition(job.state, event).map_err(illegal)?;
        let attempts = match event {
            JobEvent::Fail { attempts, .. } => attempts,
            JobEvent::GiveUp => job.attempts.saturating_add(1),
            _ => job.attempts,
        };
        let finished = state.is_finished().then_some(now_ms);
        tx.execute(
            "UPDATE jobs SET state = ?2, attempts = ?3, next_attempt_ms = ?4,
                error = COALESCE(?5, error), finished_ms = ?6,
                lease_owner = NULL, lease_token = NULL, lease_expiry_ms = NULL
             WHERE id = ?1",
            params![
                id,
                state.as_str(),
                attempts,
                next_attempt_ms,
                error,
                finished
            ],
        )
        .map_err(self.err("end attempt"))?;
        tx.commit().map_err(self.err("commit attempt"))?;
        Ok(JobChange::Applied(state))
    }

    fn succeed_in(tx: &Connection, job: &JobRow, now_ms: i64) -> Result<(), ServerError> {
        let state = transition(job.state, JobEvent::Succeed).map_err(illegal)?;
        tx.execute(
            "UPDATE jobs SET state = ?2, finished_ms = ?3, attempts = attempts + 1,
                lease_owner = NULL, lease_token = NULL, lease_expiry_ms = NULL
             WHERE id = ?1",
            params![job.id, state.as_str(), now_ms],
        )
        .map(|_| ())
        .map_err(|e| ServerError::Corrupt(format!("mark job {} done: {e}", job.id)))
    }

    /// Stores a transcription result and marks its job done, in one transaction, only if
    /// `token` still holds the lease. The result replaces any earlier one for the segment.
    pub fn commit_transcript(
        &self,
        id: i64,
        token: &str,
        spans_json: &str,
        engine: &str,
        now_ms: i64,
    ) -> Result<JobChange, ServerError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err("begin"))?;
        let Some(job) = Self::leased(&tx, id, token).map_err(self.err("select job"))? else {
            return Ok(JobChange::Fenced);
        };
        let (Some(track), Some(seq)) = (&job.track, job.sequence) else {
            return Err(ServerError::Corrupt(format!(
                "transcription job {id} has no segment"
            )));
        };
        tx.execute(
            "INSERT INTO transcripts (owner_id, recording_id, track, sequence, spans, engine,
                job_id, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (owner_id, recording_id, track, sequence) DO UPDATE SET
                spans = excluded.spans, engine = excluded.engine, job_id = excluded.job_id,
                created_ms = excluded.created_ms",
            params![
                job.owner_id,
                job.recording_id,
                track,
                to_i64(seq),
                spans_json,
                engine,
                id,
                now_ms
            ],
        )
        .map_err(self.err("store transcript"))?;
        Self::succeed_in(&tx, &job, now_ms)?;
        tx.commit().map_err(self.err("commit transcript"))?;
        Ok(JobChange::Applied(JobState::Done))
    }

    /// Stores the next version of a recording's notes and marks the job done (fenced). For
    /// the first final notes, also records the stop-to-notes latency, which is returned.
    #[allow(clippy::too_many_arguments)]
    pub fn commit_notes(
        &self,
        id: i64,
        token: &str,
        is_final: bool,
        outcome: Option<&str>,
        summarized_until_ms: u64,
        notes_json: &str,
        engine: &str,
        now_ms: i64,
    ) -> Result<Option<(u64, Option<i64>)>, ServerError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err("begin"))?;
        let Some(job) = Self::leased(&tx, id, token).map_err(self.err("select job"))? else {
            return Ok(None);
        };
        let version: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM notes
                 WHERE owner_id = ?1 AND recording_id = ?2",
                params![job.owner_id, job.recording_id],
                |r| r.get(0),
            )
            .map_err(self.err("next notes version"))?;
        tx.execute(
            "INSERT INTO notes (owner_id, recording_id, version, is_final, outcome,
                summarized_until_ms, notes, engine, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                job.owner_id,
                job.recording_id,
                version,
                is_final,
                outcome,
                to_i64(summarized_until_ms),
                notes_json,
                engine,
                now_ms
            ],
        )
        .map_err(self.err("store notes"))?;
        let mut latency = None;
        if is_final {
            let n = tx
                .execute(
                    "UPDATE stops SET notes_latency_ms = MAX(0, ?3 - stopped_ms)
                     WHERE owner_id = ?1 AND recording_id = ?2 AND notes_latency_ms IS NULL",
                    params![job.owner_id, job.recording_id, now_ms],
                )
                .map_err(self.err("record latency"))?;
            if n == 1 {
                latency = tx
                    .query_row(
                        "SELECT notes_latency_ms FROM stops WHERE owner_id = ?1
                         AND recording_id = ?2",
                        params![job.owner_id, job.recording_id],
                        |r| r.get(0),
                    )
                    .map_err(self.err("read latency"))?;
            }
        }
        Self::succeed_in(&tx, &job, now_ms)?;
        tx.commit().map_err(self.err("commit notes"))?;
        Ok(Some((from_i64(version), latency)))
    }

    /// Startup: jobs this node was running when it died go back to the queue now instead of
    /// waiting for their leases to expire (no worker of this node can still hold them).
    pub fn reset_node_leases(&self, node: &str) -> Result<usize, ServerError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err("begin"))?;
        let ids: Vec<i64> = {
            let mut stmt = tx
                .prepare("SELECT id FROM jobs WHERE state = 'running' AND lease_owner = ?1")
                .map_err(self.err("prepare stale leases"))?;
            stmt.query_map([node], |r| r.get(0))
                .map_err(self.err("select stale leases"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(self.err("read stale leases"))?
        };
        for id in &ids {
            let state = transition(JobState::Running, JobEvent::LeaseExpired).map_err(illegal)?;
            tx.execute(
                "UPDATE jobs SET state = ?2, lease_owner = NULL, lease_token = NULL,
                    lease_expiry_ms = NULL WHERE id = ?1",
                params![id, state.as_str()],
            )
            .map_err(self.err("reset lease"))?;
        }
        tx.commit().map_err(self.err("commit lease reset"))?;
        Ok(ids.len())
    }

    /// Where the audio of segment `(owner, recording, track, sequence)` is.
    pub fn segment_source(
        &self,
        owner: i64,
        recording: &str,
        track: &str,
        sequence: u64,
    ) -> Result<Option<SegmentSource>, ServerError> {
        self.conn()
            .query_row(
                "SELECT upload_id, start_48k, length_48k FROM segments WHERE owner_id = ?1
                 AND recording_id = ?2 AND track = ?3 AND sequence = ?4",
                params![owner, recording, track, to_i64(sequence)],
                |r| {
                    Ok(SegmentSource {
                        upload_id: r.get(0)?,
                        start_48k: from_i64(r.get(1)?),
                        length_48k: from_i64(r.get(2)?),
                    })
                },
            )
            .optional()
            .map_err(self.err("select segment source"))
    }

    /// The stored result (JSON spans) of one segment.
    pub fn transcript_spans(
        &self,
        owner: i64,
        recording: &str,
        track: &str,
        sequence: u64,
    ) -> Result<Option<String>, ServerError> {
        self.conn()
            .query_row(
                "SELECT spans FROM transcripts WHERE owner_id = ?1 AND recording_id = ?2
                 AND track = ?3 AND sequence = ?4",
                params![owner, recording, track, to_i64(sequence)],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err("select transcript"))
    }

    /// Number of stored transcript rows of a recording.
    #[cfg(test)]
    pub fn transcript_count(&self, owner: i64, recording: &str) -> Result<u64, ServerError> {
        self.conn()
            .query_row(
                "SELECT COUNT(*) FROM transcripts WHERE owner_id = ?1 AND recording_id = ?2",
                params![owner, recording],
                |r| r.get::<_, i64>(0),
            )
            .map(from_i64)
            .map_err(self.err("count transcripts"))
    }

    /// Every received segment of a recording with its job state and result, by track and
    /// sequence.
    pub fn progress(
        &self,
        owner: i64,
        recording: &str,
        with_spans: bool,
    ) -> Result<Vec<SegmentProgress>, ServerError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT s.track, s.sequence, s.start_48k, s.length_48k, j.state,
                    CASE WHEN ?3 THEN t.spans END
                 FROM segments s
                 LEFT JOIN jobs j ON j.kind = 'transcribe' AND j.owner_id = s.owner_id
                    AND j.recording_id = s.recording_id AND j.track = s.track
                    AND j.sequence = s.sequence
                 LEFT JOIN transcripts t ON t.owner_id = s.owner_id
                    AND t.recording_id = s.recording_id AND t.track = s.track
                    AND t.sequence = s.sequence
                 WHERE s.owner_id = ?1 AND s.recording_id = ?2
                 ORDER BY s.track, s.sequence",
            )
            .map_err(self.err("prepare progress"))?;
        stmt.query_map(params![owner, recording, with_spans], |r| {
            let state: Option<String> = r.get(4)?;
            Ok(SegmentProgress {
                track: r.get(0)?,
                sequence: from_i64(r.get(1)?),
                start_48k: from_i64(r.get(2)?),
                length_48k: from_i64(r.get(3)?),
                job: match state {
                    Some(s) => Some(JobState::parse(&s).ok_or_else(|| corrupt_column(4, "state"))?),
                    None => None,
                },
                spans: r.get(5)?,
            })
        })
        .map_err(self.err("select progress"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(self.err("read progress"))
    }

    /// The latest notes of a recording; with `rolling_only`, the latest rolling (non-final) ones.
    pub fn latest_notes(
        &self,
        owner: i64,
        recording: &str,
        rolling_only: bool,
    ) -> Result<Option<NotesRow>, ServerError> {
        self.conn()
            .query_row(
                "SELECT version, is_final, outcome, summarized_until_ms, notes, engine, created_ms
                 FROM notes WHERE owner_id = ?1 AND recording_id = ?2
                 AND (NOT ?3 OR is_final = 0) ORDER BY version DESC LIMIT 1",
                params![owner, recording, rolling_only],
                |r| {
                    Ok(NotesRow {
                        version: from_i64(r.get(0)?),
                        is_final: r.get(1)?,
                        outcome: r.get(2)?,
                        summarized_until_ms: from_i64(r.get(3)?),
                        notes: r.get(4)?,
                        engine: r.get(5)?,
                        created_ms: r.get(6)?,
                    })
                },
            )
            .optional()
            .map_err(self.err("select notes"))
    }

    /// Queues the summary of window `[start, end)` unless a summary job of this recording is
    /// unfinished or this window was already queued. True if it was queued now.
    pub fn enqueue_summary(
        &self,
        owner: i64,
        recording: &str,
        start_ms: u64,
        end_ms: u64,
        now_ms: i64,
    ) -> Result<bool, ServerError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err("begin"))?;
        let blocking: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM jobs WHERE kind = 'summarize' AND owner_id = ?1
                 AND recording_id = ?2
                 AND (state IN ('queued', 'running', 'failed') OR window_start_ms = ?3)",
                params![owner, recording, to_i64(start_ms)],
                |r| r.get(0),
            )
            .map_err(self.err("check summary jobs"))?;
        if blocking > 0 {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO jobs (kind, owner_id, recording_id, window_start_ms, window_end_ms,
                cost_ms, state, attempts, next_attempt_ms, created_ms)
             VALUES ('summarize', ?1, ?2, ?3, ?4, ?5, 'queued', 0, ?6, ?6)",
            params![
                owner,
                recording,
                to_i64(start_ms),
                to_i64(end_ms),
                to_i64(end_ms.saturating_sub(start_ms)),
                now_ms
            ],
        )
        .map_err(self.err("insert summary job"))?;
        tx.commit().map_err(self.err("commit summary job"))?;
        Ok(true)
    }

    /// Makes a waiting finalization of the recording due now (a segment or job finished).
    pub fn wake_finalize(
        &self,
        owner: i64,
        recording: &str,
        now_ms: i64,
    ) -> Result<(), ServerError> {
        self.conn()
            .execute(
                "UPDATE jobs SET next_attempt_ms = ?3 WHERE kind = 'finalize' AND state = 'queued'
                 AND owner_id = ?1 AND recording_id = ?2 AND next_attempt_ms > ?3",
                params![owner, recording, now_ms],
            )
            .map_err(self.err("wake finalize"))?;
        Ok(())
    }

    /// The stop of a recording, if it was stopped.
    pub fn stop_of(&self, owner: i64, recording: &str) -> Result<Option<StopRow>, ServerError> {
        self.conn()
            .query_row(
                "SELECT stopped_ms, notes_latency_ms FROM stops WHERE owner_id = ?1
                 AND recording_id = ?2",
                params![owner, recording],
                |r| {
                    Ok(StopRow {
                        stopped_ms: r.get(0)?,
                        notes_latency_ms: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(self.err("select stop"))
    }

    /// Job counts by kind and state, of one owner or of everyone.
    pub fn job_counts(
        &self,
        owner: Option<i64>,
    ) -> Result<Vec<(JobKind, JobState, u64)>, ServerError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT kind, state, COUNT(*) FROM jobs WHERE (?1 IS NULL OR owner_id = ?1)
                 GROUP BY kind, state",
            )
            .map_err(self.err("prepare job counts"))?;
        stmt.query_map([owner], |r| {
            let kind: String = r.get(0)?;
            let state: String = r.get(1)?;
            Ok((
                JobKind::parse(&kind).ok_or_else(|| corrupt_column(0, "kind"))?,
                JobState::parse(&state).ok_or_else(|| corrupt_column(1, "state"))?,
                from_i64(r.get(2)?),
            ))
        })
        .map_err(self.err("select job counts"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(self.err("read job counts"))
    }

    /// Creation time of the oldest queued job, of one owner or of everyone.
    pub fn oldest_queued_ms(&self, owner: Option<i64>) -> Result<Option<i64>, ServerError> {
        self.conn()
            .query_row(
                "SELECT MIN(created_ms) FROM jobs WHERE state = 'queued'
                 AND (?1 IS NULL OR owner_id = ?1)",
                [owner],
                |r| r.get(0),
            )
            .map_err(self.err("select oldest queued"))
    }

    /// Meetings whose processing is live: unfinished jobs, or not stopped and a segment
    /// received since `recent_ms`. At most `limit`, which bounds per-meeting metric series.
    pub fn active_meetings(
        &self,
        owner: Option<i64>,
        recent_ms: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, ServerError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT owner_id, recording_id FROM jobs
                    WHERE state IN ('queued', 'running', 'failed') AND (?1 IS NULL OR owner_id = ?1)
                 UNION
                 SELECT s.owner_id, s.recording_id FROM segments s
                    WHERE s.received_ms >= ?2 AND (?1 IS NULL OR s.owner_id = ?1)
                    AND NOT EXISTS (SELECT 1 FROM stops st WHERE st.owner_id = s.owner_id
                        AND st.recording_id = s.recording_id)
                 ORDER BY 1, 2 LIMIT ?3",
            )
            .map_err(self.err("prepare active meetings"))?;
        stmt.query_map(params![owner, recent_ms, to_i64(limit as u64)], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(self.err("select active meetings"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(self.err("read active meetings"))
    }
}

fn illegal(e: crate::jobs::IllegalTransition) -> ServerError {
    ServerError::Corrupt(e.to_string())
}

#[cfg(test)]
#[path = "db_jobs_tests.rs"]
mod jobs_tests;
