//! The Chronote uploader: drains sealed segments from the spool to a Chronote server over
//! tus 1.0, resumably and without duplicates.
//!
//! An [`Uploader`] shares the recorder's `Arc<Mutex<Spool>>`. It creates each recording on the
//! server (`POST /v1/recordings`, idempotent on the spool's recording id), uploads every
//! segment oldest first per track (one creation-with-upload request when it can; after any
//! failure `HEAD` and continue from the server's offset), records the upload URL and confirmed
//! offset in the spool so a crash resumes exactly, and marks a segment Acknowledged only when
//! the server's `Chronote-Segment: received; sha256=<hex>` receipt matches the local hash (the
//! spool may then evict it). Once a Stopped recording has every segment acknowledged it sends
//! `POST /v1/recordings/{id}/stop` and moves the recording to Uploaded.
//!
//! ```no_run
//! # use std::sync::{Arc, Mutex};
//! # async fn demo(spool: Arc<Mutex<chronote_spool::Spool>>) -> Result<(), chronote_upload::UploadError> {
//! use chronote_upload::{Uploader, UploaderConfig};
//! let mut uploader = Uploader::new(spool, UploaderConfig::new("https://chronote.example", "cht_..."))?;
//! let progress = uploader.progress(); // watch channel of UploadProgress for a UI
//! let report = uploader.drain().await?; // everything, then stop the recordings
//! assert!(report.is_complete());
//! # drop(progress); Ok(()) }
//! ```
//!
//! While recording, [`Uploader::spawn`] runs [`Uploader::run_until_stopped`] on its own
//! thread; [`UploaderHandle::finish`] tells it the recording ended. [`upload_file`] is the
//! plain tus path (any tus server, no Chronote semantics).

mod api;
mod config;
mod error;
mod file;
mod progress;
mod retry;
mod transfer;
mod tus;
mod uploader;

pub use api::{CreateRecording, RecordingStatus, RecordingsApi, StopRecording, TrackStatus};
pub use config::{Scope, UploaderConfig};
pub use error::UploadError;
pub use file::{FileUploadOptions, upload_file};
pub use progress::{UploadEvent, UploadProgress};
pub use retry::{Backoff, parse_retry_after};
pub use tus::{Capabilities, RECEIPT_HEADER, TUS_VERSION, parse_receipt};
pub use uploader::{UploadReport, Uploader, UploaderHandle, UploaderThread, segment_metadata};
