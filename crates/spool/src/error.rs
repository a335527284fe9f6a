//! The spool's error type and the conversions that keep "disk full" distinguishable.

use std::io;
use std::path::{Path, PathBuf};

use crate::state::{IllegalTransition, RecordingState};

/// Everything the spool can fail with. Each variant names the file, id or value involved.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path} is in use by another chronote process")]
    InUse { path: PathBuf },

    #[error("cannot create spool directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("spool directory {path} is not writable: {source}")]
    NotWritable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("no home/data directory for the default spool location; pass a spool directory")]
    NoDataDir,

    /// The disk (or quota) is full while writing `path`; callers treat this as "spool full".
    #[error("disk full while writing {path}")]
    DiskFull { path: PathBuf },

    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("spool database {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    /// A stored value the code does not understand (unknown state text, bad id, negative size).
    #[error("spool database {path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },

    #[error(
        "spool database {path} has schema version {found}; this build supports up to {supported}"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    #[error("{what} {subject}: {source}")]
    Transition {
        /// "recording" or "segment".
        what: &'static str,
        /// The recording id or segment id.
        subject: String,
        #[source]
        source: IllegalTransition,
    },

    #[error("no recording {id:?} in the spool")]
    UnknownRecording { id: String },

    #[error("recording {id:?} already exists in the spool")]
    DuplicateRecording { id: String },

    #[error("recording {recording_id:?} has no track {track:?}")]
    UnknownTrack { recording_id: String, track: String },

    #[error("no segment {id} in the spool")]
    UnknownSegment { id: i64 },

    #[error(
        "recording {id:?} is {state}; segments can only be opened while it is active or stopping"
    )]
    RecordingNotActive { id: String, state: RecordingState },

    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: String,
    },

    #[error("sealed file {path} does not match: {detail}")]
    SealMismatch { path: PathBuf, detail: String },
}

/// True for the errno/kind that means "no space left on device".
pub(crate) fn is_storage_full(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::StorageFull || err.raw_os_error() == Some(libc::ENOSPC)
}

/// Maps an I/O error on `path`, turning ENOSPC into [`SpoolError::DiskFull`].
pub(crate) fn io_error(path: &Path, err: io::Error) -> SpoolError {
    if is_storage_full(&err) {
        SpoolError::DiskFull {
            path: path.to_path_buf(),
        }
    } else {
        SpoolError::Io {
            path: path.to_path_buf(),
            source: err,
        }
    }
}

/// Maps a SQLite error on the database at `path`, turning SQLITE_FULL into
/// [`SpoolError::DiskFull`].
pub(crate) fn db_error(path: &Path, err: rusqlite::Error) -> SpoolError {
    if err.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
        SpoolError::DiskFull {
            path: path.to_path_buf(),
        }
    } else {
        SpoolError::Db {
            path: path.to_path_buf(),
            source: err,
        }
    }
}

/// `.io(path)` / `.db(path)` adapters so call sites stay one line.
pub(crate) trait IoContext<T> {
    fn io(self, path: &Path) -> Result<T, SpoolError>;
}

impl<T> IoContext<T> for Result<T, io::Error> {
    fn io(self, path: &Path) -> Result<T, SpoolError> {
        self.map_err(|e| io_error(path, e))
    }
}

pub(crate) trait DbContext<T> {
    fn db(self, path: &Path) -> Result<T, SpoolError>;
}

impl<T> DbContext<T> for Result<T, rusqlite::Error> {
    fn db(self, path: &Path) -> Result<T, SpoolError> {
        self.map_err(|e| db_error(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_becomes_disk_full() {
        let p = Path::new("/spool/x.opus.part");
        let e = io_error(p, io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(matches!(e, SpoolError::DiskFull { ref path } if path == p));
        assert_eq!(e.to_string(), "disk full while writing /spool/x.opus.part");
        let e = io_error(p, io::Error::from(io::ErrorKind::StorageFull));
        assert!(matches!(e, SpoolError::DiskFull { .. }));
        let e = io_error(p, io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(matches!(e, SpoolError::Io { .. }));
    }

    #[test]
    fn sqlite_full_becomes_disk_full() {
        let p = Path::new("/spool/spool.db");
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        assert!(matches!(db_error(p, full), SpoolError::DiskFull { ref path } if path == p));
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(matches!(db_error(p, busy), SpoolError::Db { .. }));
    }
}
