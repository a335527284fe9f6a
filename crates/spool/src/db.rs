//! The SQLite side: connection settings, schema migrations and row decoding.
//!
//! WAL with `synchronous=FULL` so that a committed transaction survives power loss (the spool's
//! promise is "what the DB says is sealed is on disk"). The schema version lives in
//! `PRAGMA user_version`; migrations are applied in order, each in its own transaction.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, Row};

use crate::error::{DbContext, SpoolError};
use crate::layout;
use crate::model::SegmentRow;
use crate::state::SegmentState;
use crate::validate;

/// Migrations, index i takes the schema from version i to i+1.
const MIGRATIONS: &[&str] = &[
    // v1
    "
    CREATE TABLE recordings (
        id              TEXT PRIMARY KEY NOT NULL,
        title           TEXT NOT NULL,
        source          TEXT NOT NULL,
        state           TEXT NOT NULL,
        started_at      TEXT NOT NULL,
        started_unix_ms INTEGER NOT NULL,
        created_unix_ms INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE tracks (
        recording_id TEXT NOT NULL REFERENCES recordings(id),
        name         TEXT NOT NULL,
        position     INTEGER NOT NULL,
        end_48k      INTEGER,
        PRIMARY KEY (recording_id, name)
    ) STRICT;

    CREATE TABLE segments (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        recording_id   TEXT NOT NULL,
        track          TEXT NOT NULL,
        sequence       INTEGER NOT NULL,
        start_48k      INTEGER NOT NULL,
        length_48k     INTEGER,
        bytes          INTEGER,
        sha256         TEXT,
        state          TEXT NOT NULL,
        upload_url     TEXT,
        upload_offset  INTEGER,
        opened_unix_ms INTEGER NOT NULL,
        sealed_unix_ms INTEGER,
        UNIQUE (recording_id, track, sequence),
        FOREIGN KEY (recording_id, track) REFERENCES tracks(recording_id, name)
    ) STRICT;
    CREATE INDEX segments_by_state ON segments(state, sealed_unix_ms, id);

    CREATE TABLE gaps (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        recording_id     TEXT NOT NULL,
        track            TEXT NOT NULL,
        start_48k        INTEGER NOT NULL,
        length_48k       INTEGER NOT NULL,
        reason           TEXT NOT NULL,
        recorded_unix_ms INTEGER NOT NULL,
        FOREIGN KEY (recording_id, track) REFERENCES tracks(recording_id, name)
    ) STRICT;
    ",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Opens (creating if needed) the database and brings its schema up to date.
pub fn open(path: &Path) -> Result<Connection, SpoolError> {
    let mut conn = Connection::open(path).db(path)?;
    conn.busy_timeout(Duration::from_secs(5)).db(path)?;
    // Small pages keep the database, and the WAL frames each commit appends, small: the whole
    // spool (database included) has to fit a byte budget. Only takes effect on a new file.
    conn.pragma_update(None, "page_size", 1024).db(path)?;
    // One process owns the spool (spool.lock), so SQLite may hold its lock for the whole
    // connection; in exclusive mode the WAL index lives in memory, no -shm file.
    let locking: String = conn
        .query_row("PRAGMA locking_mode = EXCLUSIVE", [], |r| r.get(0))
        .db(path)?;
    debug_assert_eq!(locking, "exclusive");
    // journal_mode answers with the mode in force; anything but WAL means the file system
    // refused it, and the durability argument above would not hold.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .db(path)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SpoolError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("cannot switch to WAL journal mode (got {mode})"),
        });
    }
    conn.pragma_update(None, "synchronous", "FULL").db(path)?;
    // Checkpoint after every commit and cut the WAL back when it restarts, so it holds about
    // one transaction instead of growing to megabytes inside the byte budget.
    conn.pragma_update(None, "wal_autocheckpoint", 1).db(path)?;
    conn.pragma_update(None, "journal_size_limit", 0).db(path)?;
    conn.pragma_update(None, "foreign_keys", "ON").db(path)?;
    migrate(&mut conn, path)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), SpoolError> {
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .db(path)?;
    if found > SCHEMA_VERSION {
        return Err(SpoolError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < 0 {
        return Err(SpoolError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("negative schema version {found}"),
        });
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction().db(path)?;
        tx.execute_batch(sql).db(path)?;
        tx.pragma_update(None, "user_version", from as i64 + 1)
            .db(path)?;
        tx.commit().db(path)?;
        tracing::info!(db = %path.display(), version = from + 1, "spool schema migrated");
    }
    Ok(())
}

/// Columns selected for [`RawSegment::from_row`], in order.
pub const SEGMENT_COLUMNS: &str = "id, recording_id, track, sequence, start_48k, length_48k, \
     bytes, sha256, state, upload_url, upload_offset, sealed_unix_ms";

/// A segment row exactly as stored, before validation.
pub struct RawSegment {
    id: i64,
    recording_id: String,
    track: String,
    sequence: i64,
    start_48k: i64,
    length_48k: Option<i64>,
    bytes: Option<i64>,
    sha256: Option<String>,
    state: String,
    upload_url: Option<String>,
    upload_offset: Option<i64>,
    sealed_unix_ms: Option<i64>,
}

impl RawSegment {
    pub fn from_row(r: &Row<'_>) -> rusqlite::Result<RawSegment> {
        Ok(RawSegment {
            id: r.get(0)?,
            recording_id: r.get(1)?,
            track: r.get(2)?,
            sequence: r.get(3)?,
            start_48k: r.get(4)?,
            length_48k: r.get(5)?,
            bytes: r.get(6)?,
            sha256: r.get(7)?,
            state: r.get(8)?,
            upload_url: r.get(9)?,
            upload_offset: r.get(10)?,
            sealed_unix_ms: r.get(11)?,
        })
    }

    /// Validates the stored values; anything off is [`SpoolError::Corrupt`] naming the segment.
    pub fn into_row(self, root: &Path, db: &Path) -> Result<SegmentRow, SpoolError> {
        let id = self.id;
        let corrupt = |detail: String| SpoolError::Corrupt {
            path: db.to_path_buf(),
            detail: format!("segment {id}: {detail}"),
        };
        let state = SegmentState::from_columns(&self.state, self.upload_url, self.upload_offset)
            .map_err(|e| corrupt(e.0))?;
        let unsigned = |v: i64, what: &str| {
            u64::try_from(v).map_err(|_| corrupt(format!("negative {what} {v}")))
        };
        let sequence = unsigned(self.sequence, "sequence")?;
        let start_48k = unsigned(self.start_48k, "start_48k")?;
        let length_48k = self
            .length_48k
            .map(|v| unsigned(v, "length_48k"))
            .transpose()?;
        let bytes = self.bytes.map(|v| unsigned(v, "bytes")).transpose()?;
        let (length_48k, bytes, sha256) = match (length_48k, bytes, self.sha256) {
            (Some(l), Some(b), Some(h)) => (l, b, h),
            (None, None, None) if !state.is_sealed_or_later() => (0, 0, String::new()),
            _ => {
                return Err(corrupt(format!(
                    "state {} with inconsistent length/bytes/sha256 columns",
                    state.as_str()
                )));
            }
        };
        let path: PathBuf = if state.is_sealed_or_later() {
            layout::final_path(root, &self.recording_id, &self.track, sequence)
        } else {
            layout::part_path(root, &self.recording_id, &self.track, sequence)
        }
        .map_err(|e| corrupt(e.to_string()))?;
        Ok(SegmentRow {
            id,
            recording_id: self.recording_id,
            track: self.track,
            sequence,
            start_48k,
            length_48k,
            bytes,
            sha256,
            state,
            path,
            sealed_at: self.sealed_unix_ms.map(validate::millis_rfc3339),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_fresh_db_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = open(&path).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
        drop(conn);
        // Reopening applies nothing and keeps the version.
        let conn = open(&path).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }

    #[test]
    fn refuses_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        match open(&path) {
            Err(SpoolError::SchemaTooNew {
                found, supported, ..
            }) => {
                assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }
}
