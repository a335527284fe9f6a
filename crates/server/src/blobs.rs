//! Every file the server touches for upload bytes: `<data>/uploads/<id>.bin` (the upload so
//! far) and `<id>.chunk` (a PATCH body held back until its checksum is verified).
//!
//! Ids reaching this module were checked to be 32 lowercase hex digits (see `tus::parse_id`),
//! so a path is never built from client text. An S3-compatible backend would replace this
//! module: append becomes multipart parts, `sync` becomes completing a part.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::ServerError;

/// The blob directory.
#[derive(Debug, Clone)]
pub struct Blobs {
    dir: PathBuf,
}

/// An open blob or staging file being appended to while a request body streams in.
#[derive(Debug)]
pub struct Appender {
    file: tokio::fs::File,
    path: PathBuf,
}

impl Appender {
    /// Appends `data`. Once this returns the bytes are in the OS (safe from a crash of this
    /// process, not yet from power loss).
    pub async fn write(&mut self, data: &[u8]) -> Result<(), ServerError> {
        self.file
            .write_all(data)
            .await
            .map_err(|e| ServerError::io(&self.path, "append", e))?;
        // tokio's File hands writes to a worker thread; flushing waits for it, so the bytes
        // really left our process before the caller counts them.
        self.file
            .flush()
            .await
            .map_err(|e| ServerError::io(&self.path, "flush", e))
    }

    /// Flushes and, with `durable`, fdatasyncs.
    pub async fn finish(mut self, durable: bool) -> Result<(), ServerError> {
        self.file
            .flush()
            .await
            .map_err(|e| ServerError::io(&self.path, "flush", e))?;
        if durable {
            self.file
                .sync_data()
                .await
                .map_err(|e| ServerError::io(&self.path, "fdatasync", e))?;
        }
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<(), ServerError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ServerError::io(dir, "fsync directory", e))
}

impl Blobs {
    /// Opens `<data_dir>/uploads`, creating it, and drops staging files a crash left behind
    /// (their checksum was never verified, so they were never part of any upload).
    pub fn open(data_dir: &Path) -> Result<Blobs, ServerError> {
        let dir = data_dir.join("uploads");
        fs::create_dir_all(&dir).map_err(|e| ServerError::io(&dir, "create directory", e))?;
        let entries = fs::read_dir(&dir).map_err(|e| ServerError::io(&dir, "list", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| ServerError::io(&dir, "list", e))?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "chunk") {
                tracing::info!(path = %path.display(), "removing unverified chunk left by a crash");
                fs::remove_file(&path).map_err(|e| ServerError::io(&path, "remove", e))?;
            }
        }
        Ok(Blobs { dir })
    }

    /// Where the bytes of upload `id` live (also handed to the Ogg Opus inspector).
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.bin"))
    }

    fn chunk_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.chunk"))
    }

    /// Creates the empty blob of a new upload, durably (the database row follows).
    pub fn create(&self, id: &str) -> Result<(), ServerError> {
        let path = self.path(id);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| ServerError::io(&path, "create", e))?;
        file.sync_all()
            .map_err(|e| ServerError::io(&path, "fsync", e))?;
        sync_dir(&self.dir)
    }

    /// The blob's length, or `None` if it does not exist.
    pub fn len(&self, id: &str) -> Result<Option<u64>, ServerError> {
        let path = self.path(id);
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ServerError::io(&path, "stat", e)),
        }
    }

    /// Opens the blob for appending; it is created if a crash lost it before any byte landed.
    pub async fn appender(&self, id: &str) -> Result<Appender, ServerError> {
        let path = self.path(id);
        let file = tokio::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .await
            .map_err(|e| ServerError::io(&path, "open for append", e))?;
        Ok(Appender { file, path })
    }

    /// A fresh staging file for a checksummed PATCH body.
    pub async fn staging(&self, id: &str) -> Result<Appender, ServerError> {
        let path = self.chunk_path(id);
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await
            .map_err(|e| ServerError::io(&path, "create staging file", e))?;
        Ok(Appender { file, path })
    }

    /// Appends the verified staging file to the blob, fdatasyncs it and removes the staging
    /// file. Returns the number of bytes moved.
    pub fn commit_staged(&self, id: &str) -> Result<u64, ServerError> {
        let chunk = self.chunk_path(id);
        let path = self.path(id);
        let mut src = File::open(&chunk).map_err(|e| ServerError::io(&chunk, "open", e))?;
        let mut dst = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| ServerError::io(&path, "open for append", e))?;
        let n = io::copy(&mut src, &mut dst).map_err(|e| ServerError::io(&path, "append", e))?;
        dst.sync_data()
            .map_err(|e| ServerError::io(&path, "fdatasync", e))?;
        drop(src);
        fs::remove_file(&chunk).map_err(|e| ServerError::io(&chunk, "remove", e))?;
        Ok(n)
    }

    /// Removes a staging file whose bytes are not wanted (mismatch, interrupted body).
    pub fn discard_staged(&self, id: &str) -> Result<(), ServerError> {
        let chunk = self.chunk_path(id);
        match fs::remove_file(&chunk) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ServerError::io(&chunk, "remove", e)),
        }
    }

    /// Cuts the blob back to `len` bytes (a body that turned out to pass Upload-Length).
    pub fn truncate(&self, id: &str, len: u64) -> Result<(), ServerError> {
        let path = self.path(id);
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| ServerError::io(&path, "open for truncate", e))?;
        file.set_len(len)
            .and_then(|()| file.sync_all())
            .map_err(|e| ServerError::io(&path, "truncate", e))
    }

    /// Makes the blob and its directory entry durable.
    pub fn sync(&self, id: &str) -> Result<(), ServerError> {
        let path = self.path(id);
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| ServerError::io(&path, "fsync", e))?;
        sync_dir(&self.dir)
    }

    /// Deletes the blob and any staging file; a missing file is not an error.
    pub fn delete(&self, id: &str) -> Result<(), ServerError> {
        self.discard_staged(id)?;
        let path = self.path(id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ServerError::io(&path, "remove", e)),
        }
    }

    /// The whole blob (a segment for a transcription engine; segments are a few hundred kB).
    pub fn read(&self, id: &str) -> Result<Vec<u8>, ServerError> {
        let path = self.path(id);
        fs::read(&path).map_err(|e| ServerError::io(&path, "read", e))
    }

    /// Lowercase hex sha256 of the blob.
    pub fn sha256(&self, id: &str) -> Result<String, ServerError> {
        let path = self.path(id);
        let mut file = File::open(&path).map_err(|e| ServerError::io(&path, "open", e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| ServerError::io(&path, "read", e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(crate::checksum::hex(&hasher.finalize()))
    }
}
