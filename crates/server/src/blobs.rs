//! Every file the server touches for upload bytes: `<data>/uploads/<id>.bin` (the upload so
//! far) and `<id>.pending` (where the checksummed PATCH body being written into the blob starts,
//! and its expected digest: bytes from there on are unverified until that digest matched).
//!
//! A checksummed body is written straight into the blob (no staging copy); the `.pending`
//! record is made durable before its first byte lands, so after a crash [`Blobs::open`] cuts
//! the blob back to where that body started unless the bytes there hash to the digest (a body
//! that arrived whole and intact). Without a checksum, bytes that arrived always count.
//!
//! Ids reaching this module were checked to be 32 lowercase hex digits (see `tus::parse_id`),
//! so a path is never built from client text. An S3-compatible backend would replace this
//! module: append becomes multipart parts, `sync` becomes completing a part.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::checksum::{Expected, Hasher};
use crate::error::ServerError;

/// Size of a `.pending` record: overwritten in place, so storing it changes no file size and
/// its fdatasync writes one block.
const PENDING_RECORD: usize = 128;
/// While a body streams in, writeback of what is already in the blob is started after every
/// this many bytes, so the fdatasync before the answer has little left to write.
const EARLY_SYNC_BYTES: u64 = 4 << 20;
/// Body pieces queued between the request and the writer thread.
const WRITER_QUEUE: usize = 64;

/// The blob directory.
#[derive(Debug, Clone)]
pub struct Blobs {
    dir: PathBuf,
}

/// An open blob being appended to while a request body streams in (the benchmark sink).
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
    /// Opens `<data_dir>/uploads`, creating it. Drops staging files of older versions (never
    /// verified, never part of an upload) and settles every `.pending` record a crash left:
    /// the blob keeps the bytes after the record's start only if they hash to its digest,
    /// otherwise it is cut back to the start, so unverified bytes are never counted by the
    /// startup reconciliation that follows.
    pub fn open(data_dir: &Path) -> Result<Blobs, ServerError> {
        let dir = data_dir.join("uploads");
        fs::create_dir_all(&dir).map_err(|e| ServerError::io(&dir, "create directory", e))?;
        let blobs = Blobs { dir };
        let entries =
            fs::read_dir(&blobs.dir).map_err(|e| ServerError::io(&blobs.dir, "list", e))?;
        let mut settled = false;
        for entry in entries {
            let entry = entry.map_err(|e| ServerError::io(&blobs.dir, "list", e))?;
            let path = entry.path();
            let ext = path.extension().and_then(|e| e.to_str());
            if ext == Some("chunk") {
                tracing::info!(path = %path.display(), "removing unverified chunk left by a crash");
                fs::remove_file(&path).map_err(|e| ServerError::io(&path, "remove", e))?;
            } else if ext == Some("pending")
                && let Some(id) = path.file_stem().and_then(|s| s.to_str())
            {
                blobs.settle_pending(id)?;
                settled = true;
            }
        }
        if settled {
            // A resurrected record could later cut bytes written after it was settled.
            sync_dir(&blobs.dir)?;
        }
        Ok(blobs)
    }

    /// See [`Blobs::open`]: applies and removes the `.pending` record of `id`.
    fn settle_pending(&self, id: &str) -> Result<(), ServerError> {
        let marker = self.pending_path(id);
        let record = fs::read(&marker).map_err(|e| ServerError::io(&marker, "read", e))?;
        let parsed = std::str::from_utf8(&record).ok().and_then(|text| {
            let (start, header) = text.trim().split_once(' ')?;
            Some((start.parse::<u64>().ok()?, Expected::parse(header).ok()?))
        });
        let path = self.path(id);
        match (parsed, self.len(id)?) {
            (Some((start, expected)), Some(len)) if len > start => {
                let mut file = File::open(&path).map_err(|e| ServerError::io(&path, "open", e))?;
                file.seek(SeekFrom::Start(start))
                    .map_err(|e| ServerError::io(&path, "seek", e))?;
                let mut hasher = expected.hasher();
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let n = file
                        .read(&mut buf)
                        .map_err(|e| ServerError::io(&path, "read", e))?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                }
                drop(file);
                if expected.matches(hasher) {
                    tracing::info!(upload = %id, start, len, "checksummed body found whole and intact after a crash");
                } else {
                    tracing::info!(upload = %id, start, len, "cutting unverified bytes a crash left in the blob");
                    self.truncate(id, start)?;
                }
            }
            (None, Some(_)) => {
                tracing::warn!(upload = %id, "unreadable .pending record ignored");
            }
            _ => {}
        }
        fs::remove_file(&marker).map_err(|e| ServerError::io(&marker, "remove", e))
    }

    /// Where the bytes of upload `id` live (also handed to the Ogg Opus inspector).
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.bin"))
    }

    fn chunk_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.chunk"))
    }

    fn pending_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.pending"))
    }

    /// Durably records that the bytes of `id` from `start` on are an unverified body expected
    /// to hash to `checksum` (the `Upload-Checksum` value). Must return before any of those
    /// bytes is written into the blob.
    pub fn begin_unverified(
        &self,
        id: &str,
        start: u64,
        checksum: &str,
    ) -> Result<(), ServerError> {
        let path = self.pending_path(id);
        let mut record = format!("{start} {}", checksum.trim()).into_bytes();
        if record.len() >= PENDING_RECORD {
            // Expected::parse bounds the header to an algorithm name and a short digest.
            return Err(ServerError::Corrupt(format!(
                "upload {id}: Upload-Checksum too long for the .pending record"
            )));
        }
        record.resize(PENDING_RECORD - 1, b' ');
        record.push(b'\n');
        let (file, created) = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => (file, true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => (
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| ServerError::io(&path, "open", e))?,
                false,
            ),
            Err(e) => return Err(ServerError::io(&path, "create", e)),
        };
        file.write_all_at(&record, 0)
            .map_err(|e| ServerError::io(&path, "write", e))?;
        file.sync_data()
            .map_err(|e| ServerError::io(&path, "fdatasync", e))?;
        if created {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Durably forgets the `.pending` record of `id`, if any: before bytes without a checksum
    /// are written past it (they count as they arrive, a record must not cut them).
    pub fn clear_unverified(&self, id: &str) -> Result<(), ServerError> {
        let path = self.pending_path(id);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ServerError::io(&path, "remove", e)),
        }
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

    /// Starts writing a request body into the blob of `id` at `start` (the blob's length) on
    /// a blocking thread, feeding `hasher` with every byte written.
    pub fn body_writer(&self, id: &str, start: u64, hasher: Option<Hasher>) -> BodyWriter {
        let path = self.path(id);
        let (tx, rx) = tokio::sync::mpsc::channel(WRITER_QUEUE);
        let task = tokio::task::spawn_blocking(move || write_body(&path, start, hasher, rx));
        BodyWriter { tx, task }
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

    /// Deletes the blob, its `.pending` record and any staging file of an older version; a
    /// missing file is not an error.
    pub fn delete(&self, id: &str) -> Result<(), ServerError> {
        for path in [self.chunk_path(id), self.pending_path(id), self.path(id)] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ServerError::io(&path, "remove", e)),
            }
        }
        Ok(())
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

/// What the request side sends the writer thread.
enum Piece {
    Data(Bytes),
    /// The body is over; fdatasync before answering if the bytes may be kept.
    End {
        durable: bool,
    },
}

/// A request body on its way into a blob (see [`Blobs::body_writer`]).
pub struct BodyWriter {
    tx: tokio::sync::mpsc::Sender<Piece>,
    task: tokio::task::JoinHandle<Result<Written, ServerError>>,
}

/// What a [`BodyWriter`] wrote.
pub struct Written {
    /// Bytes in the blob after `start` (all of them in the OS; durable if asked).
    pub bytes: u64,
    pub hasher: Option<Hasher>,
}

impl BodyWriter {
    /// Queues `data`; an error means the writer failed (the error comes from [`Self::finish`]).
    pub async fn write(&mut self, data: Bytes) -> Result<(), ()> {
        self.tx.send(Piece::Data(data)).await.map_err(|_| ())
    }

    /// Waits until every queued byte is in the blob and, with `durable`, fdatasynced.
    pub async fn finish(self, durable: bool) -> Result<Written, ServerError> {
        // A writer that failed has hung up; its error is in the task's result.
        let _ = self.tx.send(Piece::End { durable }).await;
        drop(self.tx);
        self.task
            .await
            .map_err(|e| ServerError::Worker(e.to_string()))?
    }
}

/// The writer thread: pwrite at the running offset, hash, and start writeback of the blob every
/// [`EARLY_SYNC_BYTES`] on a helper thread (its fdatasync overlaps the rest of the body, so the
/// final one, the only one the answer waits for, has at most a few MiB left to write).
fn write_body(
    path: &Path,
    start: u64,
    mut hasher: Option<Hasher>,
    mut rx: tokio::sync::mpsc::Receiver<Piece>,
) -> Result<Written, ServerError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| ServerError::io(path, "open for writing", e))?;
    file.seek(SeekFrom::Start(start))
        .map_err(|e| ServerError::io(path, "seek", e))?;
    let mut written = 0u64;
    let mut unsynced = 0u64;
    let mut early: Option<std::thread::JoinHandle<io::Result<()>>> = None;
    let join_early = |early: &mut Option<std::thread::JoinHandle<io::Result<()>>>| {
        match early.take().map(std::thread::JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            // The error of an fdatasync is reported once per open file: it must not be lost.
            Some(Ok(Err(e))) => Err(ServerError::io(path, "fdatasync", e)),
            Some(Err(_)) => Err(ServerError::Worker("early fdatasync panicked".to_string())),
        }
    };
    let durable = loop {
        match rx.blocking_recv() {
            Some(Piece::Data(data)) => {
                if let Err(e) = file.write_all(&data) {
                    join_early(&mut early)?;
                    return Err(ServerError::io(path, "write", e));
                }
                if let Some(h) = hasher.as_mut() {
                    h.update(&data);
                }
                written += data.len() as u64;
                unsynced += data.len() as u64;
                if unsynced >= EARLY_SYNC_BYTES
                    && early
                        .as_ref()
                        .is_none_or(std::thread::JoinHandle::is_finished)
                {
                    join_early(&mut early)?;
                    let clone = file
                        .try_clone()
                        .map_err(|e| ServerError::io(path, "dup", e))?;
                    early = Some(std::thread::spawn(move || clone.sync_data()));
                    unsynced = 0;
                }
            }
            Some(Piece::End { durable }) => break durable,
            // The request side is gone without an end: nothing will be kept.
            None => break false,
        }
    };
    join_early(&mut early)?;
    if durable {
        file.sync_data()
            .map_err(|e| ServerError::io(path, "fdatasync", e))?;
    }
    Ok(Written {
        bytes: written,
        hasher,
    })
}
