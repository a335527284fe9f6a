//! Keeping the spool inside its byte budget and above the free-disk floor.
//!
//! Usage counts what the spool will need on disk, not just what is there now: each open journal
//! counts twice because sealing writes a second copy (the final file) before the journal is
//! deleted.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{DbContext, SpoolError, io_error};
use crate::layout;
use crate::model::Room;
use crate::spool::Spool;
use crate::state::SegmentEvent;

impl Spool {
    /// Recorded sizes of sealed, not evicted files + 2 x on-disk size of each open journal +
    /// the database, WAL and shared-memory files.
    pub fn usage_bytes(&self) -> Result<u64, SpoolError> {
        let dbp = &self.db_path;
        let sealed: i64 = self
            .conn
            .query_row(
                "SELECT COALESCE(SUM(bytes), 0) FROM segments
                 WHERE state IN ('sealed', 'uploading', 'uploaded', 'acknowledged')",
                [],
                |r| r.get(0),
            )
            .db(dbp)?;
        let mut total = u64::try_from(sealed).map_err(|_| SpoolError::Corrupt {
            path: dbp.clone(),
            detail: format!("negative total segment size {sealed}"),
        })?;
        let open = self.segment_query(
            &format!(
                "SELECT {} FROM segments WHERE state = 'open'",
                crate::db::SEGMENT_COLUMNS
            ),
            [],
        )?;
        for seg in open {
            total += 2 * file_len(&seg.path)?;
        }
        for f in layout::db_files(&self.root) {
            total += file_len(&f)?;
        }
        Ok(total)
    }

    /// Space available to this user on the spool's file system (`f_bavail * f_frsize`).
    pub fn free_disk_bytes(&self) -> Result<u64, SpoolError> {
        free_disk_bytes(&self.root)
    }

    /// Makes room for `needed` more bytes by evicting Acknowledged segments, oldest sealed first,
    /// until `usage + needed <= max_bytes` and `free - needed >= min_free_bytes`. Nothing that is
    /// not Acknowledged is ever deleted; when only such segments remain the answer is
    /// [`Room::Full`].
    pub fn ensure_room(&mut self, needed: u64) -> Result<Room, SpoolError> {
        loop {
            let usage = self.usage_bytes()?;
            let free = self.free_disk_bytes()?;
            let fits_budget = usage.saturating_add(needed) <= self.config.max_bytes;
            let keeps_floor =
                free.saturating_sub(needed) >= self.config.min_free_bytes && free >= needed;
            if fits_budget && keeps_floor {
                return Ok(Room::Available);
            }
            let oldest = self.oldest_acknowledged()?;
            let Some(id) = oldest else {
                tracing::info!(
                    usage,
                    needed,
                    max_bytes = self.config.max_bytes,
                    free,
                    min_free = self.config.min_free_bytes,
                    "spool full"
                );
                return Ok(Room::Full {
                    usage,
                    max_bytes: self.config.max_bytes,
                    free,
                    min_free: self.config.min_free_bytes,
                });
            };
            self.apply_segment_event(id, SegmentEvent::Evict)?;
            tracing::info!(
                segment = id,
                usage,
                needed,
                "evicted acknowledged segment to make room"
            );
        }
    }

    fn oldest_acknowledged(&self) -> Result<Option<i64>, SpoolError> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row(
                "SELECT id FROM segments WHERE state = 'acknowledged'
                 ORDER BY sealed_unix_ms, id LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .db(&self.db_path)
    }
}

/// Size of a file, 0 if it does not exist.
fn file_len(path: &Path) -> Result<u64, SpoolError> {
    match fs::metadata(path) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io_error(path, e)),
    }
}

fn free_disk_bytes(root: &Path) -> Result<u64, SpoolError> {
    let c_path = CString::new(root.as_os_str().as_bytes()).map_err(|_| SpoolError::Invalid {
        what: "spool path",
        value: root.display().to_string(),
        reason: "contains a NUL byte".to_string(),
    })?;
    // SAFETY: statvfs only writes into the zeroed struct we own and reads the NUL-terminated
    // path, which outlives the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(io_error(root, io::Error::last_os_error()));
    }
    #[allow(clippy::unnecessary_cast)] // the field widths differ between platforms
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}
