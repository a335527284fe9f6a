//! Where things live under the spool root.
//!
//! `<root>/spool.db` (+ `-wal`, `-shm`), `<root>/spool.lock`,
//! `<root>/segments/<recording_id>/<track>/<seq:06>.opus[.part]`.
//! Segment paths are only ever built from validated ids, so they stay under the root.

use std::path::{Path, PathBuf};

use crate::error::SpoolError;
use crate::validate;

pub const DB_FILE: &str = "spool.db";
pub const LOCK_FILE: &str = "spool.lock";
pub const SEGMENTS_DIR: &str = "segments";

pub fn db_path(root: &Path) -> PathBuf {
    root.join(DB_FILE)
}

/// The database and its WAL/shared-memory companions (all count toward usage).
pub fn db_files(root: &Path) -> [PathBuf; 3] {
    [
        root.join(DB_FILE),
        root.join(format!("{DB_FILE}-wal")),
        root.join(format!("{DB_FILE}-shm")),
    ]
}

pub fn lock_path(root: &Path) -> PathBuf {
    root.join(LOCK_FILE)
}

pub fn segments_dir(root: &Path) -> PathBuf {
    root.join(SEGMENTS_DIR)
}

/// `<root>/segments/<recording_id>/<track>`, after validating both names.
pub fn track_dir(root: &Path, recording_id: &str, track: &str) -> Result<PathBuf, SpoolError> {
    validate::recording_id(recording_id)?;
    validate::track_name(track)?;
    Ok(segments_dir(root).join(recording_id).join(track))
}

/// The sealed file of a segment.
pub fn final_path(
    root: &Path,
    recording_id: &str,
    track: &str,
    sequence: u64,
) -> Result<PathBuf, SpoolError> {
    Ok(track_dir(root, recording_id, track)?.join(format!("{sequence:06}.opus")))
}

/// The journal a segment is written to while open.
pub fn part_path(
    root: &Path,
    recording_id: &str,
    track: &str,
    sequence: u64,
) -> Result<PathBuf, SpoolError> {
    Ok(track_dir(root, recording_id, track)?.join(format!("{sequence:06}.opus.part")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_paths() {
        let root = Path::new("/s");
        assert_eq!(
            final_path(root, "rec-1", "mic", 7).unwrap(),
            PathBuf::from("/s/segments/rec-1/mic/000007.opus")
        );
        assert_eq!(
            part_path(root, "rec-1", "mic", 1_234_567).unwrap(),
            PathBuf::from("/s/segments/rec-1/mic/1234567.opus.part")
        );
        assert!(final_path(root, "..", "mic", 0).is_err());
        assert!(final_path(root, "rec", "../x", 0).is_err());
    }
}
