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
    ) -> Result<bool, ServerError> {
        let finals = serde_json::to_string(finals)
            .map_err(|e| ServerError::Corrupt(format!("encode final sequences: {e}")))?;
        let n = self
            .conn()
            .execute(
                "UPDATE recordings SET final_sequences = ?3, ended_at = ?4
                 WHERE owner_id = ?1 AND id = ?2",
                params![owner, id, finals, ended_at],
            )
            .map_err(self.err("stop recording"))?;
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
