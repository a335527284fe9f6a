//! Ogg Opus segment files for Chronote (RFC 7845): crash-safe journaled writing, sealing,
//! inspection, decoding and repair.
//!
//! A recording is cut into segments. Each segment is written by a [`SegmentWriter`]:
//!
//! 1. [`SegmentWriter::create`] makes the journal `NNNNNN.opus.part` with the OpusHead and
//!    OpusTags pages on disk.
//! 2. [`SegmentWriter::push_frame`] encodes one frame (mono, VoIP, VBR) and, every
//!    `journal_page_ms` of audio, appends a page to the journal and fdatasyncs it, so a crash or
//!    power loss loses at most that much.
//! 3. [`SegmentWriter::seal`] rebuilds the final file from the packets in memory, trimmed to
//!    exactly the samples to keep, and renames it into place atomically; or
//!    [`SegmentWriter::abandon`] deletes a journal with nothing worth keeping.
//!
//! After a crash, [`repair`] turns a journal into a sealed file holding every intact page.
//! [`inspect`] validates a sealed file, [`decode`] returns its audio at 48 kHz with exactly
//! [`SegmentInfo::length_48k`] samples, and [`read_tags`] gives back its [`SegmentTags`].
//!
//! All timeline values are in 48 kHz samples (`_48k`), the Opus granule unit: at the default
//! 16 kHz encoder rate one input sample is 3 units, and the pre-skip (encoder lookahead) is 312.
//!
//! ```no_run
//! use chronote_encode::{EncoderConfig, SegmentTags, SegmentWriter, decode};
//! use std::path::Path;
//!
//! let tags = SegmentTags {
//!     recording_id: "rec".into(),
//!     track: "mic".into(),
//!     sequence: 1,
//!     start_48k: 0,
//!     start_time: "2025-01-01T00:00:00Z".into(),
//! };
//! let mut w = SegmentWriter::create(Path::new("000001.opus.part"), &EncoderConfig::default(), &tags)?;
//! let frame = vec![0.0f32; w.frame_len()];
//! for _ in 0..50 {
//!     w.push_frame(&frame)?;
//! }
//! let sealed = w.seal(Path::new("000001.opus"), 50 * 320)?;
//! assert_eq!(sealed.length_48k, 48_000);
//! assert_eq!(decode(&sealed.path)?.len(), 48_000);
//! # Ok::<(), chronote_encode::EncodeError>(())
//! ```

mod config;
mod crc;
mod error;
mod fs_util;
mod opus_header;
pub mod page_scan;
mod paging;
mod reader;
mod repair;
mod sealed;
mod writer;

pub use config::EncoderConfig;
pub use error::EncodeError;
pub use opus_header::SegmentTags;
pub use reader::{SegmentInfo, decode, inspect, read_tags};
pub use repair::{RepairOutcome, repair};
pub use sealed::SealedSegment;
pub use writer::SegmentWriter;
