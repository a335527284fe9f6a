//! Durable file operations: what survives a power loss is decided here.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::EncodeError;

/// The directory holding `path` ("." for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Makes a directory entry change (create, rename, unlink) durable.
pub(crate) fn sync_dir(path: &Path) -> Result<(), EncodeError> {
    let dir = parent_dir(path);
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| EncodeError::io(&dir, "fsync directory", e))
}

/// `<final>.tmp` next to the final file.
pub(crate) fn tmp_path(final_path: &Path) -> PathBuf {
    let mut name = final_path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    final_path.with_file_name(name)
}

/// Writes `bytes` to `final_path` so that after a crash the path holds either nothing (or its
/// old content) or all of `bytes`: temp file, fsync, rename, fsync directory.
pub(crate) fn write_atomically(final_path: &Path, bytes: &[u8]) -> Result<(), EncodeError> {
    let tmp = tmp_path(final_path);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| EncodeError::io(&tmp, "create", e))?;
        f.write_all(bytes)
            .map_err(|e| EncodeError::io(&tmp, "write", e))?;
        f.sync_all()
            .map_err(|e| EncodeError::io(&tmp, "fsync", e))?;
        fs::rename(&tmp, final_path).map_err(|e| EncodeError::io(final_path, "rename", e))
    })();
    if result.is_err() {
        // Best effort: a leftover .tmp is also swept by spool recovery.
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(final_path)
}

pub(crate) fn read_all(path: &Path) -> Result<Vec<u8>, EncodeError> {
    fs::read(path).map_err(|e| EncodeError::io(path, "read", e))
}
