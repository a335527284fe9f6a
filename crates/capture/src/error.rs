//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong while listing, opening or reading an audio source.
///
/// Messages name the device or file and say what was wrong, so a CLI can print them as they are.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The host has no usable input device at all.
    #[error(
        "no audio input device available ({detail}); use --input FILE.wav to record from a file"
    )]
    NoDevice {
        /// What the audio backend said, for diagnosis.
        detail: String,
    },

    /// A device was asked for by a name that no input device has.
    #[error("no input device named {name:?}; available: {}", list_or_none(.available))]
    DeviceNotFound {
        /// The name that was asked for.
        name: String,
        /// Names of the input devices that do exist.
        available: Vec<String>,
    },

    /// The device exists but another application holds it.
    #[error("audio input device {device:?} is busy (in use by another application?): {source}")]
    DeviceBusy {
        /// Device name.
        device: String,
        /// What cpal said.
        source: cpal::Error,
    },

    /// The device could not be queried or its stream could not be built or started.
    #[error("cannot open audio input device {device:?}: {source}")]
    Device {
        /// Device name.
        device: String,
        /// What cpal said.
        source: cpal::Error,
    },

    /// The device only offers a sample format this crate cannot turn into PCM (for example DSD).
    #[error(
        "audio input device {device:?} delivers sample format {format}, which is not supported \
         (only integer and float PCM formats are)"
    )]
    UnsupportedDeviceFormat {
        /// Device name.
        device: String,
        /// cpal's name for the format.
        format: String,
    },

    /// The audio host could not enumerate devices.
    #[error("cannot list audio input devices: {0}")]
    Host(cpal::Error),

    /// The file could not be opened at all (missing, permissions, a directory...).
    #[error("cannot open audio file {}: {source}", .path.display())]
    FileOpen {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },

    /// The file is not a WAV file hound can parse.
    #[error("{} is not a readable WAV file: {source}", .path.display())]
    NotWav {
        /// The file.
        path: PathBuf,
        /// What hound said.
        source: hound::Error,
    },

    /// The file is a WAV file, but its sample encoding is not supported.
    #[error("{}: unsupported WAV format: {detail}", .path.display())]
    UnsupportedWav {
        /// The file.
        path: PathBuf,
        /// Which encoding it has.
        detail: String,
    },

    /// The WAV header announces zero samples.
    #[error("{} contains no audio", .path.display())]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },

    /// Reading stopped in the middle of the data (truncated or corrupt file). Everything before
    /// `frames` was delivered.
    #[error("{} is truncated or unreadable after {frames} frames: {source}", .path.display())]
    FileRead {
        /// The file.
        path: PathBuf,
        /// Frames delivered before the failure.
        frames: u64,
        /// What hound said.
        source: hound::Error,
    },

    /// A resampler between these rates cannot be built.
    #[error("cannot resample {in_rate} Hz -> {out_rate} Hz: {detail}")]
    Resampler {
        /// Input rate.
        in_rate: u32,
        /// Output rate.
        out_rate: u32,
        /// Why.
        detail: String,
    },

    /// The [`CaptureConfig`](crate::CaptureConfig) has a value that cannot work.
    #[error("invalid capture configuration: {0}")]
    InvalidConfig(String),

    /// A capture thread could not be spawned.
    #[error("cannot start the {what} thread: {source}")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// The operating system's reason.
        source: std::io::Error,
    },

    /// The device supervisor thread is gone although the capture was not stopped.
    #[error("the audio device supervisor stopped unexpectedly")]
    SupervisorGone,
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_not_found_lists_names() {
        let e = CaptureError::DeviceNotFound {
            name: "X".into(),
            available: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            e.to_string(),
            "no input device named \"X\"; available: a, b"
        );
        let e = CaptureError::DeviceNotFound {
            name: "X".into(),
            available: vec![],
        };
        assert_eq!(
            e.to_string(),
            "no input device named \"X\"; available: (none)"
        );
    }

    #[test]
    fn no_device_has_hint() {
        let e = CaptureError::NoDevice {
            detail: "nothing".into(),
        };
        assert_eq!(
            e.to_string(),
            "no audio input device available (nothing); use --input FILE.wav to record from a file"
        );
    }

    #[test]
    fn empty_file_names_file() {
        let e = CaptureError::EmptyFile {
            path: PathBuf::from("/tmp/a.wav"),
        };
        assert_eq!(e.to_string(), "/tmp/a.wav contains no audio");
    }
}
