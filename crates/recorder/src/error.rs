use thiserror::Error;

#[derive(Debug, Error)]
pub enum RecorderError {
    #[error("invalid recorder setting: {0}")]
    Config(String),
    #[error("track {track}: {source}")]
    Capture {
        track: String,
        #[source]
        source: chronote_capture::CaptureError,
    },
    #[error("track {track}: {source}")]
    Encode {
        track: String,
        #[source]
        source: chronote_encode::EncodeError,
    },
    #[error(transparent)]
    Spool(#[from] chronote_spool::SpoolError),
    #[error("track {track}: recorder thread ended unexpectedly")]
    ThreadPanicked { track: String },
    #[error("the spool lock was poisoned by a failed track thread")]
    SpoolPoisoned,
}
