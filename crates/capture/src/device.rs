//! cpal devices: listing, opening by name or default, and the audio callback.
//!
//! Opening is split in two steps behind the [`InputBackend`] trait: `prepare` picks the device and
//! its default input configuration (so the ring can be sized for its rate), `start` builds and
//! plays the stream with a [`RingWriter`] moved into the callback. The device supervisor only
//! talks to the trait, which lets tests inject faults without hardware.

use std::sync::atomic::Ordering;
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{ErrorKind, SampleFormat, SizedSample, StreamConfig};

use crate::convert::AudioSample;
use crate::error::CaptureError;
use crate::ring::RingWriter;

/// How long cpal may take to bring a stream up.
const BUILD_TIMEOUT: Duration = Duration::from_secs(5);

/// One input device as the host reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Human-readable name; pass it as `Source::Device { name }` to open this device.
    pub name: String,
    /// The backend's identifier (for ALSA the PCM name such as `default` or `hw:CARD=0,DEV=0`);
    /// also accepted as a name when opening.
    pub id: String,
    /// Whether this is the host's default input device.
    pub is_default: bool,
    /// Default input sample rate in Hz.
    pub sample_rate: u32,
    /// Default input channel count.
    pub channels: u16,
    /// Default input sample format as cpal names it (`i16`, `f32`, ...).
    pub sample_format: String,
}

/// A started stream; dropping it stops capture and drops the callback (closing its segment).
pub(crate) type LiveStream = Box<dyn Send>;

/// A device chosen and configured, not yet streaming.
pub(crate) trait PreparedInput: Send {
    /// Sample rate the stream will deliver.
    fn rate(&self) -> u32;
    /// Device name for messages.
    fn device_name(&self) -> &str;
    /// Builds and starts the stream, moving `writer` into its data callback.
    fn start(self: Box<Self>, writer: RingWriter) -> Result<LiveStream, CaptureError>;
}

/// Where input streams come from: cpal in production, a fault-injecting fake in tests.
pub(crate) trait InputBackend: Send + 'static {
    /// Picks the named device, or the default input device when `name` is `None`.
    fn prepare(&mut self, name: Option<&str>) -> Result<Box<dyn PreparedInput>, CaptureError>;
}

/// The production backend: cpal's default host.
pub(crate) struct CpalBackend;

struct CpalPrepared {
    device: cpal::Device,
    name: String,
    config: StreamConfig,
    format: SampleFormat,
}

fn device_name(device: &cpal::Device) -> String {
    match device.description() {
        Ok(d) => d.name().to_owned(),
        Err(_) => device
            .id()
            .map(|id| id.id().to_owned())
            .unwrap_or_else(|_| "<unnamed device>".to_owned()),
    }
}

fn device_id(device: &cpal::Device) -> Option<String> {
    device.id().ok().map(|id| id.id().to_owned())
}

fn is_pcm(format: SampleFormat) -> bool {
    matches!(
        format,
        SampleFormat::I8
            | SampleFormat::I16
            | SampleFormat::I24
            | SampleFormat::I32
            | SampleFormat::I64
            | SampleFormat::U8
            | SampleFormat::U16
            | SampleFormat::U24
            | SampleFormat::U32
            | SampleFormat::U64
            | SampleFormat::F32
            | SampleFormat::F64
    )
}

fn open_error(device: &str, source: cpal::Error) -> CaptureError {
    if source.kind() == ErrorKind::DeviceBusy {
        CaptureError::DeviceBusy {
            device: device.to_owned(),
            source,
        }
    } else {
        CaptureError::Device {
            device: device.to_owned(),
            source,
        }
    }
}

impl InputBackend for CpalBackend {
    fn prepare(&mut self, name: Option<&str>) -> Result<Box<dyn PreparedInput>, CaptureError> {
        let host = cpal::default_host();
        let device = match name {
            None => host
                .default_input_device()
                .ok_or_else(|| CaptureError::NoDevice {
                    detail: format!("the {} audio host has no default input", host.id()),
                })?,
            Some(wanted) => find_named(&host, wanted)?,
        };
        let dev_name = device_name(&device);
        let supported = device
            .default_input_config()
            .map_err(|e| match (name, e.kind()) {
                // The default device existing but not answering is how "no sound card" looks on
                // ALSA; say so, with the hint, instead of a backend message.
                (None, k) if k != ErrorKind::DeviceBusy && k != ErrorKind::PermissionDenied => {
                    CaptureError::NoDevice {
                        detail: format!("default input {dev_name:?}: {e}"),
                    }
                }
                _ => open_error(&dev_name, e),
            })?;
        let format = supported.sample_format();
        if !is_pcm(format) {
            return Err(CaptureError::UnsupportedDeviceFormat {
                device: dev_name,
                format: format.to_string(),
            });
        }
        Ok(Box::new(CpalPrepared {
            device,
            name: dev_name,
            config: supported.config(),
            format,
        }))
    }
}

fn find_named(host: &cpal::Host, wanted: &str) -> Result<cpal::Device, CaptureError> {
    let devices = host.input_devices().map_err(CaptureError::Host)?;
    let mut available = Vec::new();
    for device in devices {
        let name = device_name(&device);
        if name == wanted || device_id(&device).as_deref() == Some(wanted) {
            return Ok(device);
        }
        available.push(name);
    }
    Err(CaptureError::DeviceNotFound {
        name: wanted.to_owned(),
        available,
    })
}

impl PreparedInput for CpalPrepared {
    fn rate(&self) -> u32 {
        self.config.sample_rate
    }

    fn device_name(&self) -> &str {
        &self.name
    }

    fn start(self: Box<Self>, writer: RingWriter) -> Result<LiveStream, CaptureError> {
        let CpalPrepared {
            device,
            name,
            config,
            format,
        } = *self;
        let stream = match format {
            SampleFormat::I8 => build::<i8>(&device, config, writer),
            SampleFormat::I16 => build::<i16>(&device, config, writer),
            SampleFormat::I24 => build::<cpal::I24>(&device, config, writer),
            SampleFormat::I32 => build::<i32>(&device, config, writer),
            SampleFormat::I64 => build::<i64>(&device, config, writer),
            SampleFormat::U8 => build::<u8>(&device, config, writer),
            SampleFormat::U16 => build::<u16>(&device, config, writer),
            SampleFormat::U24 => build::<cpal::U24>(&device, config, writer),
            SampleFormat::U32 => build::<u32>(&device, config, writer),
            SampleFormat::U64 => build::<u64>(&device, config, writer),
            SampleFormat::F32 => build::<f32>(&device, config, writer),
            SampleFormat::F64 => build::<f64>(&device, config, writer),
            other => {
                return Err(CaptureError::UnsupportedDeviceFormat {
                    device: name,
                    format: other.to_string(),
                });
            }
        }
        .map_err(|e| open_error(&name, e))?;
        stream.play().map_err(|e| open_error(&name, e))?;
        tracing::info!(
            device = %name,
            rate = config.sample_rate,
            channels = config.channels,
            format = %format,
            "audio input stream started"
        );
        Ok(Box::new(stream))
    }
}

fn build<T: SizedSample + AudioSample>(
    device: &cpal::Device,
    config: StreamConfig,
    mut writer: RingWriter,
) -> Result<cpal::Stream, cpal::Error> {
    let channels = usize::from(config.channels);
    let shared = writer.shared().clone();
    let stats = writer.stats().clone();
    let on_error = move |err: cpal::Error| match err.kind() {
        // The device keeps running; audio was lost inside the driver, where it cannot be measured.
        ErrorKind::Xrun => {
            stats.xruns.fetch_add(1, Ordering::Relaxed);
        }
        ErrorKind::DeviceNotAvailable
        | ErrorKind::StreamInvalidated
        | ErrorKind::HostUnavailable => {
            shared.mark_lost();
            tracing::warn!(error = %err, "audio input stream lost");
        }
        _ => tracing::warn!(error = %err, "audio input stream error"),
    };
    device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], _: &cpal::InputCallbackInfo| writer.push_or_drop(data, channels),
        on_error,
        Some(BUILD_TIMEOUT),
    )
}

/// Lists the input devices of cpal's default host with their default input configuration.
///
/// Devices that cannot report a configuration (unplugged, busy, or plugin PCMs with nothing behind
/// them) are left out. With no sound card at all the list is simply empty.
pub fn list_input_devices() -> Result<Vec<DeviceInfo>, CaptureError> {
    let host = cpal::default_host();
    let default_id = host.default_input_device().and_then(|d| device_id(&d));
    let mut out = Vec::new();
    for device in host.input_devices().map_err(CaptureError::Host)? {
        let name = device_name(&device);
        let id = device_id(&device).unwrap_or_else(|| name.clone());
        match device.default_input_config() {
            Ok(cfg) => out.push(DeviceInfo {
                is_default: default_id.as_deref() == Some(id.as_str()),
                name,
                id,
                sample_rate: cfg.sample_rate(),
                channels: cfg.channels(),
                sample_format: cfg.sample_format().to_string(),
            }),
            Err(e) => tracing::debug!(device = %name, error = %e, "skipping input device"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm_formats_are_accepted_and_dsd_is_not() {
        for f in [
            SampleFormat::I8,
            SampleFormat::I16,
            SampleFormat::I24,
            SampleFormat::I32,
            SampleFormat::I64,
            SampleFormat::U8,
            SampleFormat::U16,
            SampleFormat::U24,
            SampleFormat::U32,
            SampleFormat::U64,
            SampleFormat::F32,
            SampleFormat::F64,
        ] {
            assert!(is_pcm(f), "{f}");
        }
        for f in [
            SampleFormat::DsdU8,
            SampleFormat::DsdU16,
            SampleFormat::DsdU32,
        ] {
            assert!(!is_pcm(f), "{f}");
        }
    }

    #[test]
    fn unsupported_format_message() {
        let e = CaptureError::UnsupportedDeviceFormat {
            device: "dac".into(),
            format: SampleFormat::DsdU8.to_string(),
        };
        assert_eq!(
            e.to_string(),
            "audio input device \"dac\" delivers sample format dsdu8, which is not supported \
             (only integer and float PCM formats are)"
        );
    }

    #[test]
    fn busy_is_told_apart() {
        let e = open_error("mic", cpal::Error::new(ErrorKind::DeviceBusy));
        assert!(matches!(e, CaptureError::DeviceBusy { .. }));
        let e = open_error(
            "mic",
            cpal::Error::with_message(ErrorKind::BackendError, "x"),
        );
        assert_eq!(e.to_string(), "cannot open audio input device \"mic\": x");
    }

    #[test]
    fn listing_does_not_panic_without_a_sound_card() {
        // This machine class has no sound card: the call must return (usually an empty list).
        let listed = list_input_devices();
        if let Ok(devices) = listed {
            for d in devices {
                assert!(d.sample_rate > 0);
                assert!(d.channels > 0);
            }
        }
    }
}
