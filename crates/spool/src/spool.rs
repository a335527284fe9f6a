//! The [`Spool`] handle: opening/locking, recordings, segments, gaps and queries.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::db::{self, RawSegment, SEGMENT_COLUMNS};
use crate::error::{DbContext, IoContext, SpoolError, io_error};
use crate::layout;
use crate::model::{
    GapReason, GapRow, NewRecording, OpenSegment, RecordingRow, RecordingSource, RecordingSummary,
    SealedInfo, SegmentRow, SegmentStateCounts, TrackSummary,
};
use crate::state::{RecordingEvent, RecordingState, SegmentEvent, SegmentState};
use crate::validate::{self, to_i64};

/// Limits on how much the spool may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Upper bound on [`Spool::usage_bytes`]. Default 2 GiB.
    pub max_bytes: u64,
    /// Free space to leave on the file system. Default 512 MiB.
    pub min_free_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            max_bytes: 2 << 30,
            min_free_bytes: 512 << 20,
        }
    }
}

/// An open, exclusively locked spool directory.
///
/// `Send`, so per-track encoder threads can share it behind `Arc<Mutex<Spool>>`.
pub struct Spool {
    pub(crate) root: PathBuf,
    pub(crate) config: SpoolConfig,
    pub(crate) db_path: PathBuf,
    // Declared before the lock so the database closes before the lock is released.
    pub(crate) conn: Connection,
    _lock: File,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("root", &self.root)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Spool {
    /// `<platform data dir>/chronote/spool` (e.g. `~/.local/share/chronote/spool`).
    pub fn default_dir() -> Result<PathBuf, SpoolError> {
        let dirs =
            directories::ProjectDirs::from("", "", "chronote").ok_or(SpoolError::NoDataDir)?;
        Ok(dirs.data_dir().join("spool"))
    }

    /// Opens (creating if needed) the spool at `root` and takes its exclusive lock.
    ///
    /// Fails with [`SpoolError::InUse`] while another handle, in this or another process, holds
    /// it. Call [`Spool::recover`] next.
    pub fn open(root: &Path, config: SpoolConfig) -> Result<Spool, SpoolError> {
        for dir in [root.to_path_buf(), layout::segments_dir(root)] {
            fs::create_dir_all(&dir).map_err(|source| {
                if crate::error::is_storage_full(&source) {
                    SpoolError::DiskFull { path: dir.clone() }
                } else {
                    SpoolError::CreateDir {
                        path: dir.clone(),
                        source,
                    }
                }
            })?;
        }
        let lock_path = layout::lock_path(root);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|source| match source.kind() {
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                    SpoolError::NotWritable {
                        path: root.to_path_buf(),
                        source,
                    }
                }
                _ => io_error(&lock_path, source),
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(SpoolError::InUse {
                    path: root.to_path_buf(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_error(&lock_path, e)),
        }
        let db_path = layout::db_path(root);
        let conn = db::open(&db_path)?;
        tracing::debug!(root = %root.display(), "spool opened");
        Ok(Spool {
            root: root.to_path_buf(),
            config,
            db_path,
            conn,
            _lock: lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> &SpoolConfig {
        &self.config
    }

    /// Changes the limits; they apply from the next [`Spool::ensure_room`].
    pub fn set_config(&mut self, config: SpoolConfig) {
        self.config = config;
    }

    /// Creates a recording in state Active with its tracks.
    pub fn create_recording(&mut self, new: &NewRecording) -> Result<RecordingRow, SpoolError> {
        validate::recording_id(&new.id)?;
        if new.tracks.is_empty() {
            return Err(SpoolError::Invalid {
                what: "track list",
                value: String::new(),
                reason: format!("recording {} needs at least one track", new.id),
            });
        }
        for (i, t) in new.tracks.iter().enumerate() {
            validate::track_name(t)?;
            if new.tracks[..i].contains(t) {
                return Err(SpoolError::Invalid {
                    what: "track name",
                    value: t.clone(),
                    reason: format!("listed twice for recording {}", new.id),
                });
            }
        }
        let started_ms = validate::rfc3339_millis(&new.started_at)?;
        let dbp = &self.db_path;
        let tx = self.conn.transaction().db(dbp)?;
        let exists = tx
            .query_row("SELECT 1 FROM recordings WHERE id = ?1", [&new.id], |_| {
                Ok(())
            })
            .optional()
            .db(dbp)?
            .is_some();
        if exists {
            return Err(SpoolError::DuplicateRecording { id: new.id.clone() });
        }
        tx.execute(
            "INSERT INTO recordings (id, title, source, state, started_at, started_unix_ms, created_unix_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                new.id,
                new.title,
                new.source.as_str(),
                RecordingState::Active.as_str(),
                new.started_at,
                started_ms,
                validate::now_millis()
            ],
        )
        .db(dbp)?;
        for (pos, t) in new.tracks.iter().enumerate() {
            tx.execute(
                "INSERT INTO tracks (recording_id, name, position) VALUES (?1, ?2, ?3)",
                params![new.id, t, pos as i64],
            )
            .db(dbp)?;
        }
        tx.commit().db(dbp)?;
        tracing::info!(recording = %new.id, tracks = ?new.tracks, "recording created");
        Ok(RecordingRow {
            id: new.id.clone(),
            title: new.title.clone(),
            source: new.source,
            state: RecordingState::Active,
            started_at: new.started_at.clone(),
            tracks: new.tracks.clone(),
        })
    }

    /// Adds the next segment (sequence 0, 1, ...) of a track in state Open and creates its
    /// directory. The recording must be Active or Stopping.
    pub fn open_segment(
        &mut self,
        recording_id: &str,
        track: &str,
        start_48k: u64,
    ) -> Result<OpenSegment, SpoolError> {
        let dir = layout::track_dir(&self.root, recording_id, track)?;
        let start = to_i64(start_48k, "start_48k")?;
        fs::create_dir_all(&dir).io(&dir)?;
        let dbp = &self.db_path;
        let tx = self.conn.transaction().db(dbp)?;
        let state = recording_state(&tx, dbp, recording_id)?;
        if !matches!(state, RecordingState::Active | RecordingState::Stopping) {
            return Err(SpoolError::RecordingNotActive {
                id: recording_id.to_string(),
                state,
            });
        }
        require_track(&tx, dbp, recording_id, track)?;
        let next: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(sequence) + 1, 0) FROM segments WHERE recording_id = ?1 AND track = ?2",
                params![recording_id, track],
                |r| r.get(0),
            )
            .db(dbp)?;
        tx.execute(
            "INSERT INTO segments (recording_id, track, sequence, start_48k, state, opened_unix_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                recording_id,
                track,
                next,
                start,
                SegmentState::Open.as_str(),
                validate::now_millis()
            ],
        )
        .db(dbp)?;
        let id = tx.last_insert_rowid();
        tx.commit().db(dbp)?;
        // MAX(sequence) + 1 of non-negative values is non-negative.
        let sequence = next as u64;
        let seg = OpenSegment {
            id,
            sequence,
            part_path: layout::part_path(&self.root, recording_id, track, sequence)?,
            final_path: layout::final_path(&self.root, recording_id, track, sequence)?,
        };
        tracing::debug!(
            segment = id,
            recording = recording_id,
            track,
            sequence,
            start_48k,
            "segment opened"
        );
        Ok(seg)
    }

    /// Records the sealed file of an Open segment (Open -> Sealed, one transaction), then deletes
    /// its `.part` journal. The final file must already be on disk with `sealed.bytes` bytes.
    pub fn seal_segment(&mut self, id: i64, sealed: &SealedInfo) -> Result<(), SpoolError> {
        let row = self.commit_seal(id, sealed)?;
        tracing::debug!(
            segment = id,
            bytes = sealed.bytes,
            length_48k = sealed.length_48k,
            "segment sealed"
        );
        // The DB now says sealed; a part left behind by a failure here is removed by recovery.
        remove_file_logged(&layout::part_path(
            &self.root,
            &row.recording_id,
            &row.track,
            row.sequence,
        )?);
        Ok(())
    }

    /// The Open -> Sealed transaction shared by sealing and recovery; returns the sealed row.
    pub(crate) fn commit_seal(
        &mut self,
        id: i64,
        sealed: &SealedInfo,
    ) -> Result<SegmentRow, SpoolError> {
        validate::sha256_hex(&sealed.sha256)?;
        let bytes = to_i64(sealed.bytes, "bytes")?;
        let length = to_i64(sealed.length_48k, "length_48k")?;
        let dbp = &self.db_path;
        let tx = self.conn.transaction().db(dbp)?;
        let row = load_segment(&tx, &self.root, dbp, id)?;
        let next = row
            .state
            .clone()
            .transition(SegmentEvent::Seal)
            .map_err(|source| SpoolError::Transition {
                what: "segment",
                subject: id.to_string(),
                source,
            })?;
        let final_path =
            layout::final_path(&self.root, &row.recording_id, &row.track, row.sequence)?;
        check_final_file(&final_path, sealed.bytes)?;
        tx.execute(
            "UPDATE segments SET state = ?2, length_48k = ?3, bytes = ?4, sha256 = ?5, sealed_unix_ms = ?6
             WHERE id = ?1",
            params![id, next.as_str(), length, bytes, sealed.sha256, validate::now_millis()],
        )
        .db(dbp)?;
        let sealed_row = load_segment(&tx, &self.root, dbp, id)?;
        tx.commit().db(dbp)?;
        Ok(sealed_row)
    }

    /// Removes an Open segment that received no audio: its journal first, then its row (so a
    /// crash in between leaves a row recovery drops, never an orphan file).
    pub fn abandon_segment(&mut self, id: i64) -> Result<(), SpoolError> {
        let dbp = &self.db_path;
        let tx = self.conn.transaction().db(dbp)?;
        let row = load_segment(&tx, &self.root, dbp, id)?;
        if row.state != SegmentState::Open {
            return Err(SpoolError::Invalid {
                what: "segment to abandon",
                value: id.to_string(),
                reason: format!("it is {}; only open segments can be abandoned", row.state),
            });
        }
        remove_file_if_exists(&row.path)?;
        tx.execute("DELETE FROM segments WHERE id = ?1", [id])
            .db(dbp)?;
        tx.commit().db(dbp)?;
        tracing::debug!(segment = id, "open segment abandoned");
        Ok(())
    }

    /// Records a hole in a track's timeline. `length_48k` must be positive.
    pub fn record_gap(
        &mut self,
        recording_id: &str,
        track: &str,
        start_48k: u64,
        length_48k: u64,
        reason: GapReason,
    ) -> Result<(), SpoolError> {
        validate::recording_id(recording_id)?;
        validate::track_name(track)?;
        if length_48k == 0 {
            return Err(SpoolError::Invalid {
                what: "gap length",
                value: "0".to_string(),
                reason: format!("gap at {start_48k} in {recording_id}/{track} has no length"),
            });
        }
        let start = to_i64(start_48k, "start_48k")?;
        let length = to_i64(length_48k, "length_48k")?;
        let dbp = &self.db_path;
        let tx = self.conn.transaction().db(dbp)?;
        recording_state(&tx, dbp, recording_id)?;
        require_track(&tx, dbp, recording_id, track)?;
        tx.execute(
            "INSERT INTO gaps (recording_id, track, start_48k, length_48k, reason, recorded_unix_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![recording_id, track, start, length, reason.as_str(), validate::now_millis()],
        )
        .db(dbp)?;
        tx.commit().db(dbp)?;
        tracing::info!(
            recording = recording_id,
            track,
            start_48k,
            length_48k,
            reason = reason.as_str(),
            "gap recorded"
        );
        Ok(())
    }

    /// Moves a recording through its state machine; an illegal move changes nothing.
    pub fn apply_recording_event(
        &mut self,
        id: &str,
        event: RecordingEvent,
    ) -> Result<RecordingState, SpoolError> {
        let dbp = &self.db_path;
        let tx = self.conn.transaction().db(dbp)?;
        let next = transition_recording(&tx, dbp, id, event)?;
        tx.commit().db(dbp)?;
        tracing::info!(recording = id, %event, state = %next, "recording state changed");
        Ok(next)
    }

    /// Moves a segment through its state machine; an illegal move changes nothing. `Seal` is
    /// refused here because it needs the file's size/length/hash: use [`Spool::seal_segment`].
    /// `Evict` deletes the final file after the commit.
    pub fn apply_segment_event(
        &mut self,
        id: i64,
        event: SegmentEvent,
    ) -> Result<SegmentState, SpoolError> {
        if event == SegmentEvent::Seal {
            return Err(SpoolError::Invalid {
                what: "segment event",
                value: "seal".to_string(),
                reason: format!("segment {id} must be sealed with seal_segment"),
            });
        }
        let dbp = &self.db_path;
        let tx = self.conn.transaction().db(dbp)?;
        let row = load_segment(&tx, &self.root, dbp, id)?;
        let event_text = event.to_string();
        let next =
            row.state
                .clone()
                .transition(event)
                .map_err(|source| SpoolError::Transition {
                    what: "segment",
                    subject: id.to_string(),
                    source,
                })?;
        let (url, offset) = next.upload_columns();
        let offset = offset.map(|o| to_i64(o, "upload offset")).transpose()?;
        tx.execute(
            "UPDATE segments SET state = ?2, upload_url = ?3, upload_offset = ?4 WHERE id = ?1",
            params![id, next.as_str(), url, offset],
        )
        .db(dbp)?;
        tx.commit().db(dbp)?;
        tracing::debug!(segment = id, event = %event_text, state = %next, "segment state changed");
        if next == SegmentState::Evicted {
            remove_file_logged(&row.path);
        }
        Ok(next)
    }

    /// Sets where a track's timeline ends (48 kHz samples).
    pub fn set_track_end(
        &mut self,
        recording_id: &str,
        track: &str,
        end_48k: u64,
    ) -> Result<(), SpoolError> {
        let end = to_i64(end_48k, "end_48k")?;
        let dbp = &self.db_path;
        let tx = self.conn.transaction().db(dbp)?;
        recording_state(&tx, dbp, recording_id)?;
        let n = tx
            .execute(
                "UPDATE tracks SET end_48k = ?3 WHERE recording_id = ?1 AND name = ?2",
                params![recording_id, track, end],
            )
            .db(dbp)?;
        if n == 0 {
            return Err(SpoolError::UnknownTrack {
                recording_id: recording_id.to_string(),
                track: track.to_string(),
            });
        }
        tx.commit().db(dbp)
    }

    /// All recordings, newest first (by `started_at`).
    pub fn recordings(&self) -> Result<Vec<RecordingSummary>, SpoolError> {
        let dbp = &self.db_path;
        let ids: Vec<String> = {
            let mut st = self
                .conn
                .prepare("SELECT id FROM recordings ORDER BY started_unix_ms DESC, created_unix_ms DESC, id DESC")
                .db(dbp)?;
            st.query_map([], |r| r.get(0))
                .db(dbp)?
                .collect::<Result<_, _>>()
                .db(dbp)?
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(s) = self.recording(&id)? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// One recording with per-track totals, or None if unknown.
    pub fn recording(&self, id: &str) -> Result<Option<RecordingSummary>, SpoolError> {
        let dbp = &self.db_path;
        let row = self
            .conn
            .query_row(
                "SELECT title, source, state, started_at FROM recordings WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()
            .db(dbp)?;
        let Some((title, source, state, started_at)) = row else {
            return Ok(None);
        };
        let source = RecordingSource::parse(&source).ok_or_else(|| SpoolError::Corrupt {
            path: dbp.clone(),
            detail: format!("recording {id}: unknown source {source:?}"),
        })?;
        let state = parse_recording_state(dbp, id, &state)?;
        let mut tracks = Vec::new();
        for (name, end) in self.track_rows(id)? {
            tracks.push(self.track_summary(id, name, end)?);
        }
        let gaps: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM gaps WHERE recording_id = ?1",
                [id],
                |r| r.get(0),
            )
            .db(dbp)?;
        Ok(Some(RecordingSummary {
            id: id.to_string(),
            title,
            source,
            state,
            started_at,
            tracks,
            gaps: gaps as u64,
        }))
    }

    fn track_rows(&self, recording_id: &str) -> Result<Vec<(String, Option<i64>)>, SpoolError> {
        let dbp = &self.db_path;
        let mut st = self
            .conn
            .prepare("SELECT name, end_48k FROM tracks WHERE recording_id = ?1 ORDER BY position")
            .db(dbp)?;
        st.query_map([recording_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .db(dbp)?
            .collect::<Result<_, _>>()
            .db(dbp)
    }

    fn track_summary(
        &self,
        recording_id: &str,
        name: String,
        end: Option<i64>,
    ) -> Result<TrackSummary, SpoolError> {
        let dbp = &self.db_path;
        let corrupt = |detail: String| SpoolError::Corrupt {
            path: dbp.clone(),
            detail: format!("recording {recording_id} track {name}: {detail}"),
        };
        let end_48k = end
            .map(|e| u64::try_from(e).map_err(|_| corrupt(format!("negative end {e}"))))
            .transpose()?;
        let mut st = self
            .conn
            .prepare(
                "SELECT state, COUNT(*), COALESCE(SUM(length_48k), 0), COALESCE(SUM(bytes), 0)
                 FROM segments WHERE recording_id = ?1 AND track = ?2 GROUP BY state",
            )
            .db(dbp)?;
        let groups: Vec<(String, i64, i64, i64)> = st
            .query_map(params![recording_id, name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .db(dbp)?
            .collect::<Result<_, _>>()
            .db(dbp)?;
        let mut summary = TrackSummary {
            name: name.clone(),
            end_48k,
            segments: 0,
            duration_48k: 0,
            bytes: 0,
            states: SegmentStateCounts::default(),
        };
        for (state, count, length, bytes) in groups {
            let (count, length, bytes) = match (
                u64::try_from(count),
                u64::try_from(length),
                u64::try_from(bytes),
            ) {
                (Ok(c), Ok(l), Ok(b)) => (c, l, b),
                _ => return Err(corrupt("negative segment length or size".to_string())),
            };
            let slot = match state.as_str() {
                "open" => &mut summary.states.open,
                "sealed" => &mut summary.states.sealed,
                "uploading" => &mut summary.states.uploading,
                "uploaded" => &mut summary.states.uploaded,
                "acknowledged" => &mut summary.states.acknowledged,
                "evicted" => &mut summary.states.evicted,
                other => return Err(corrupt(format!("unknown segment state {other:?}"))),
            };
            *slot += count;
            summary.segments += count;
            summary.duration_48k += length;
            summary.bytes += bytes;
        }
        Ok(summary)
    }

    /// One segment, or None if unknown.
    pub fn segment(&self, id: i64) -> Result<Option<SegmentRow>, SpoolError> {
        let dbp = &self.db_path;
        let raw = self
            .conn
            .query_row(
                &format!("SELECT {SEGMENT_COLUMNS} FROM segments WHERE id = ?1"),
                [id],
                RawSegment::from_row,
            )
            .optional()
            .db(dbp)?;
        raw.map(|r| r.into_row(&self.root, dbp)).transpose()
    }

    /// A recording's segments ordered by track name, then sequence.
    pub fn segments(&self, recording_id: &str) -> Result<Vec<SegmentRow>, SpoolError> {
        self.require_recording(recording_id)?;
        self.segment_query(
            &format!(
                "SELECT {SEGMENT_COLUMNS} FROM segments WHERE recording_id = ?1 ORDER BY track, sequence"
            ),
            [recording_id],
        )
    }

    /// A recording's gaps ordered by track name, then start.
    pub fn gaps(&self, recording_id: &str) -> Result<Vec<GapRow>, SpoolError> {
        self.require_recording(recording_id)?;
        let dbp = &self.db_path;
        let mut st = self
            .conn
            .prepare(
                "SELECT id, track, start_48k, length_48k, reason, recorded_unix_ms FROM gaps
                 WHERE recording_id = ?1 ORDER BY track, start_48k, id",
            )
            .db(dbp)?;
        let raw: Vec<(i64, String, i64, i64, String, i64)> = st
            .query_map([recording_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .db(dbp)?
            .collect::<Result<_, _>>()
            .db(dbp)?;
        raw.into_iter()
            .map(|(id, track, start, length, reason, at)| {
                let corrupt = |detail: String| SpoolError::Corrupt {
                    path: dbp.clone(),
                    detail: format!("gap {id}: {detail}"),
                };
                Ok(GapRow {
                    id,
                    recording_id: recording_id.to_string(),
                    track,
                    start_48k: u64::try_from(start)
                        .map_err(|_| corrupt(format!("negative start {start}")))?,
                    length_48k: u64::try_from(length)
                        .map_err(|_| corrupt(format!("negative length {length}")))?,
                    reason: GapReason::parse(&reason)
                        .ok_or_else(|| corrupt(format!("unknown reason {reason:?}")))?,
                    recorded_at: validate::millis_rfc3339(at),
                })
            })
            .collect()
    }

    /// Sealed or Uploading segments in the order they should go up: oldest first, which keeps
    /// each track's sequence order (ids grow with sequence).
    pub fn pending_upload(&self, limit: usize) -> Result<Vec<SegmentRow>, SpoolError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.segment_query(
            &format!(
                "SELECT {SEGMENT_COLUMNS} FROM segments WHERE state IN ('sealed', 'uploading')
                 ORDER BY id LIMIT ?1"
            ),
            [limit],
        )
    }

    pub(crate) fn segment_query<P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
    ) -> Result<Vec<SegmentRow>, SpoolError> {
        let dbp = &self.db_path;
        let mut st = self.conn.prepare(sql).db(dbp)?;
        let raw: Vec<RawSegment> = st
            .query_map(params, RawSegment::from_row)
            .db(dbp)?
            .collect::<Result<_, _>>()
            .db(dbp)?;
        raw.into_iter()
            .map(|r| r.into_row(&self.root, dbp))
            .collect()
    }

    fn require_recording(&self, id: &str) -> Result<(), SpoolError> {
        let found = self
            .conn
            .query_row("SELECT 1 FROM recordings WHERE id = ?1", [id], |_| Ok(()))
            .optional()
            .db(&self.db_path)?;
        found.ok_or_else(|| SpoolError::UnknownRecording { id: id.to_string() })
    }
}

fn parse_recording_state(dbp: &Path, id: &str, text: &str) -> Result<RecordingState, SpoolError> {
    RecordingState::parse(text).map_err(|e| SpoolError::Corrupt {
        path: dbp.to_path_buf(),
        detail: format!("recording {id}: {e}"),
    })
}

/// The stored state of a recording, or UnknownRecording.
pub(crate) fn recording_state(
    tx: &Transaction<'_>,
    dbp: &Path,
    id: &str,
) -> Result<RecordingState, SpoolError> {
    let text: Option<String> = tx
        .query_row("SELECT state FROM recordings WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()
        .db(dbp)?;
    let text = text.ok_or_else(|| SpoolError::UnknownRecording { id: id.to_string() })?;
    parse_recording_state(dbp, id, &text)
}

/// Applies a recording event inside `tx` (the caller commits).
pub(crate) fn transition_recording(
    tx: &Transaction<'_>,
    dbp: &Path,
    id: &str,
    event: RecordingEvent,
) -> Result<RecordingState, SpoolError> {
    let state = recording_state(tx, dbp, id)?;
    let next = state
        .transition(event)
        .map_err(|source| SpoolError::Transition {
            what: "recording",
            subject: id.to_string(),
            source,
        })?;
    tx.execute(
        "UPDATE recordings SET state = ?2 WHERE id = ?1",
        params![id, next.as_str()],
    )
    .db(dbp)?;
    Ok(next)
}

pub(crate) fn require_track(
    tx: &Transaction<'_>,
    dbp: &Path,
    recording_id: &str,
    track: &str,
) -> Result<(), SpoolError> {
    let found = tx
        .query_row(
            "SELECT 1 FROM tracks WHERE recording_id = ?1 AND name = ?2",
            params![recording_id, track],
            |_| Ok(()),
        )
        .optional()
        .db(dbp)?;
    found.ok_or_else(|| SpoolError::UnknownTrack {
        recording_id: recording_id.to_string(),
        track: track.to_string(),
    })
}

pub(crate) fn load_segment(
    tx: &Transaction<'_>,
    root: &Path,
    dbp: &Path,
    id: i64,
) -> Result<SegmentRow, SpoolError> {
    let raw = tx
        .query_row(
            &format!("SELECT {SEGMENT_COLUMNS} FROM segments WHERE id = ?1"),
            [id],
            RawSegment::from_row,
        )
        .optional()
        .db(dbp)?
        .ok_or(SpoolError::UnknownSegment { id })?;
    raw.into_row(root, dbp)
}

/// The final file must exist with exactly the size being recorded.
fn check_final_file(path: &Path, bytes: u64) -> Result<(), SpoolError> {
    match fs::metadata(path) {
        Ok(m) if m.len() == bytes => Ok(()),
        Ok(m) => Err(SpoolError::SealMismatch {
            path: path.to_path_buf(),
            detail: format!("file has {} bytes, seal says {bytes}", m.len()),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(SpoolError::SealMismatch {
            path: path.to_path_buf(),
            detail: "file does not exist".to_string(),
        }),
        Err(e) => Err(io_error(path, e)),
    }
}

/// Deletes a file; a missing file is fine. Returns whether something was deleted.
pub(crate) fn remove_file_if_exists(path: &Path) -> Result<bool, SpoolError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error(path, e)),
    }
}

/// Deletes a file after a commit already made it garbage; failure only leaves work for recovery.
pub(crate) fn remove_file_logged(path: &Path) {
    if let Err(e) = remove_file_if_exists(path) {
        tracing::warn!(error = %e, "could not delete file; spool recovery will retry");
    }
}
