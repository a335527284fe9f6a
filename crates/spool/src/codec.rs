//! The two things recovery needs from the segment format, behind a seam so recovery's
//! bookkeeping can also be tested with failures the real format rarely produces.

use std::error::Error;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use chronote_encode::RepairOutcome;
use sha2::{Digest, Sha256};

use crate::error::is_storage_full;
use crate::model::SealedInfo;

/// Why the format layer could not repair or inspect a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CodecError {
    /// Out of disk space: the input is probably fine, try again later.
    DiskFull(String),
    /// The file is damaged or unreadable.
    Failed(String),
}

impl CodecError {
    pub(crate) fn from_error(err: &(dyn Error + 'static)) -> CodecError {
        let mut current: Option<&(dyn Error + 'static)> = Some(err);
        while let Some(e) = current {
            if let Some(io) = e.downcast_ref::<io::Error>()
                && is_storage_full(io)
            {
                return CodecError::DiskFull(err.to_string());
            }
            current = e.source();
        }
        CodecError::Failed(err.to_string())
    }

    fn with_context(self, what: &str) -> CodecError {
        match self {
            CodecError::DiskFull(m) => CodecError::DiskFull(format!("{what}: {m}")),
            CodecError::Failed(m) => CodecError::Failed(format!("{what}: {m}")),
        }
    }

    pub(crate) fn message(&self) -> &str {
        match self {
            CodecError::DiskFull(m) | CodecError::Failed(m) => m,
        }
    }
}

pub(crate) trait Codec {
    /// Rebuilds a sealed file at `final_path` from a (possibly torn) journal.
    /// `Ok(None)`: the journal holds no audio.
    fn repair(&self, part: &Path, final_path: &Path) -> Result<Option<SealedInfo>, CodecError>;
    /// Checks a sealed file and measures it.
    fn inspect(&self, path: &Path) -> Result<SealedInfo, CodecError>;
}

/// The real format: `chronote_encode`.
pub(crate) struct EncodeCodec;

impl Codec for EncodeCodec {
    fn repair(&self, part: &Path, final_path: &Path) -> Result<Option<SealedInfo>, CodecError> {
        match chronote_encode::repair(part, final_path) {
            Ok(RepairOutcome::Sealed { segment, .. }) => Ok(Some(SealedInfo {
                bytes: segment.bytes,
                length_48k: segment.length_48k,
                sha256: segment.sha256,
            })),
            Ok(RepairOutcome::Empty) => Ok(None),
            Err(e) => Err(CodecError::from_error(&e)),
        }
    }

    fn inspect(&self, path: &Path) -> Result<SealedInfo, CodecError> {
        let info = chronote_encode::inspect(path).map_err(|e| CodecError::from_error(&e))?;
        let sha256 = sha256_file(path).map_err(|e| {
            CodecError::from_error(&e).with_context(&format!("hashing {}", path.display()))
        })?;
        Ok(SealedInfo {
            bytes: info.bytes,
            length_48k: info.length_48k,
            sha256,
        })
    }
}

/// SHA-256 of a file as lowercase hex, read in chunks (segments can be megabytes).
fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
