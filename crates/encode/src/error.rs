//! The one error type of this crate.

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong while writing, reading or repairing a segment.
///
/// Each variant names the file involved (where there is one) and what was wrong with it, so the
/// message alone is enough to act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The [`EncoderConfig`](crate::EncoderConfig) has a value the encoder cannot use.
    #[error("invalid encoder config: {0}")]
    Config(String),

    /// A file-system operation failed.
    #[error("segment {path}: {action}: {source}")]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// What was being done, e.g. "create" or "fdatasync".
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// libopus refused an operation.
    #[error("opus {action}: {source}")]
    Opus {
        /// What was being done, e.g. "create encoder".
        action: &'static str,
        /// The libopus error.
        #[source]
        source: opus::Error,
    },

    /// [`SegmentWriter::push_frame`](crate::SegmentWriter::push_frame) got the wrong number of
    /// samples.
    #[error("frame has {got} samples, expected exactly {expected}")]
    FrameLength {
        /// Samples per frame at the encoder rate.
        expected: usize,
        /// Samples passed.
        got: usize,
    },

    /// [`SegmentWriter::seal`](crate::SegmentWriter::seal) was asked to keep no samples or more
    /// samples than were pushed.
    #[error("segment {path}: keep_samples {keep} is outside 1..={available}")]
    KeepSamples {
        /// The journal of the segment being sealed.
        path: PathBuf,
        /// The requested number of encoder-rate samples.
        keep: u64,
        /// Encoder-rate samples pushed so far.
        available: u64,
    },

    /// The file has no bytes at all.
    #[error("segment {path}: empty file")]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },

    /// The file does not start with an Ogg page.
    #[error("not an Ogg file: {path}: {reason}")]
    NotOgg {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },

    /// The file is Ogg but its first stream is not a usable Opus stream.
    #[error("not an Ogg Opus file: {path}: {reason}")]
    NotOpus {
        /// The file.
        path: PathBuf,
        /// What was wrong, e.g. "missing OpusHead".
        reason: String,
    },

    /// The file ends in the middle of a page or before the stream is complete.
    #[error("segment {path}: truncated: {reason}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Where it ends.
        reason: String,
    },

    /// The file is damaged or breaks a rule of RFC 3533 / RFC 7845.
    #[error("segment {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, e.g. "page 7 has a bad CRC".
        reason: String,
    },

    /// The OpusTags header lacks a Chronote comment or has one that does not parse.
    #[error("segment {path}: bad Chronote tags: {reason}")]
    Tags {
        /// The file.
        path: PathBuf,
        /// Which comment is missing or wrong.
        reason: String,
    },

    /// libopus could not decode an audio packet.
    #[error("segment {path}: audio packet {index} does not decode: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// Zero-based index among the audio packets.
        index: u64,
        /// The libopus error.
        #[source]
        source: opus::Error,
    },
}

impl EncodeError {
    pub(crate) fn io(path: &Path, action: &'static str, source: io::Error) -> Self {
        EncodeError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    pub(crate) fn opus(action: &'static str, source: opus::Error) -> Self {
        EncodeError::Opus { action, source }
    }

    pub(crate) fn corrupt(path: &Path, reason: impl Into<String>) -> Self {
        EncodeError::Corrupt {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn not_opus(path: &Path, reason: impl Into<String>) -> Self {
        EncodeError::NotOpus {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn tags(path: &Path, reason: impl Into<String>) -> Self {
        EncodeError::Tags {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}
