//! Feeding known audio to cpal as the default ALSA capture device, for end-to-end tests on
//! machines without a sound card.
//!
//! ALSA's `file` plugin can play a file *into* a capture stream: a PCM of `type file` whose
//! `infile` is headerless PCM and whose slave is the `null` PCM. Making it `pcm.!default` lets
//! cpal open `Source::Device { name: None }` and receive the file's samples:
//!
//! ```text
//! pcm.!default {
//!     type file
//!     slave.pcm "null"
//!     file "/dev/null"
//!     infile "/path/to/feed.raw"
//!     format "raw"
//! }
//! ```
//!
//! The infile is read in whatever format the application negotiates, and the `null` slave accepts
//! every format, so cpal 0.18 picks its preferred default: **stereo, f32, 48 kHz**
//! ([`FEED_CHANNELS`], [`FEED_RATE`]). The infile must therefore be interleaved little-endian f32
//! stereo at 48 kHz; [`write_feed`] writes it from mono samples (duplicating the channel, which the
//! capture's downmix undoes exactly) together with the configuration.
//!
//! Do **not** put a `plug` between the application and the `file` PCM (for example to serve an
//! s16 mono file to an f32 stereo client): ALSA's conversion plugins map the file PCM with
//! `mmap_begin` for everything available but commit only what the client reads, and the `file`
//! plugin reads its infile at `mmap_begin`, so the unread rest of each period is skipped. With
//! cpal that loses a third of the audio; `arecord` (non-mmap) loses some too.
//!
//! Point ALSA at the system configuration *followed by* this file, in the environment of the
//! process that opens the device and before it first touches ALSA:
//! `ALSA_CONFIG_PATH=/usr/share/alsa/alsa.conf:/tmp/x/chronote-feed.conf` (see
//! [`AlsaFeed::alsa_config_path`]). For a child process (the CLI) use `Command::env`; inside a
//! test, use a test binary of its own and set it before any cpal call.
//!
//! Speech: `espeak-ng -v en-us -w speech.wav "text"`, then
//! `sox speech.wav -r 48000 -c 1 -b 16 -e signed-integer -t raw speech.raw` gives s16le mono samples
//! (or let sox write the feed directly: `... -r 48000 -c 2 -b 32 -e floating-point -t raw feed.raw`).
//!
//! Caveats: the `null` slave has no clock, so capture runs much faster than real time, and after
//! the end of the infile the plugin delivers silence. Stop by sample count, and read without
//! dropping (a `ring_ms` larger than the fed audio). If PulseAudio or PipeWire runs, it may own
//! the default device.

use std::io;
use std::path::{Path, PathBuf};

/// Rate cpal negotiates on the fed device (its preferred default on a PCM that accepts any rate).
pub const FEED_RATE: u32 = 48_000;
/// Channels cpal negotiates on the fed device (it prefers stereo).
pub const FEED_CHANNELS: u16 = 2;

/// Places where distributions install ALSA's top-level configuration.
const SYSTEM_CONF_CANDIDATES: [&str; 3] = [
    "/usr/share/alsa/alsa.conf",
    "/usr/local/share/alsa/alsa.conf",
    "/etc/alsa/alsa.conf",
];

/// The system `alsa.conf`, which must come first in `ALSA_CONFIG_PATH` (it defines the `null`
/// and `file` plugins the feed uses).
pub fn system_alsa_conf() -> Option<PathBuf> {
    SYSTEM_CONF_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// ALSA configuration text that makes the default capture device read `infile` (headerless
/// f32le stereo at 48 kHz, see the module docs).
pub fn config_text(infile: &Path) -> String {
    format!(
        "pcm.!default {{\n    type file\n    slave.pcm \"null\"\n    file \"/dev/null\"\n    \
         infile \"{}\"\n    format \"raw\"\n}}\n",
        infile.display()
    )
}

/// Mono samples as the raw infile bytes: interleaved little-endian f32, each sample on both
/// channels.
pub fn feed_bytes(mono: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(mono.len() * 4 * usize::from(FEED_CHANNELS));
    for s in mono {
        for _ in 0..FEED_CHANNELS {
            out.extend_from_slice(&s.to_le_bytes());
        }
    }
    out
}

/// A written feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlsaFeed {
    /// The raw infile.
    pub infile: PathBuf,
    /// The configuration file.
    pub config_file: PathBuf,
    /// Value for the `ALSA_CONFIG_PATH` environment variable: system `alsa.conf`, then ours.
    pub alsa_config_path: String,
}

/// Writes `dir/chronote-feed.raw` (the mono 48 kHz samples, as the device will deliver them) and
/// `dir/chronote-feed.conf`, and returns the `ALSA_CONFIG_PATH` value to use.
pub fn write_feed(dir: &Path, mono_48k: &[f32]) -> io::Result<AlsaFeed> {
    let system = system_alsa_conf().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no system alsa.conf found (looked in {}); install libasound2",
                SYSTEM_CONF_CANDIDATES.join(", ")
            ),
        )
    })?;
    let infile = dir.join("chronote-feed.raw");
    std::fs::write(&infile, feed_bytes(mono_48k))?;
    let config_file = dir.join("chronote-feed.conf");
    std::fs::write(&config_file, config_text(&infile))?;
    Ok(AlsaFeed {
        alsa_config_path: format!("{}:{}", system.display(), config_file.display()),
        infile,
        config_file,
    })
}

/// Convenience for s16 sources (such as sox's `-b 16 -e signed-integer` output): the exact f32
/// values a device delivering these samples yields.
pub fn s16_to_f32(samples: &[i16]) -> Vec<f32> {
    samples.iter().map(|s| f32::from(*s) / 32768.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_text_is_exact() {
        assert_eq!(
            config_text(Path::new("/tmp/a.raw")),
            "pcm.!default {\n    type file\n    slave.pcm \"null\"\n    file \"/dev/null\"\n    \
             infile \"/tmp/a.raw\"\n    format \"raw\"\n}\n"
        );
    }

    #[test]
    fn feed_bytes_duplicate_channels() {
        let bytes = feed_bytes(&[0.5, -1.0]);
        let mut want = Vec::new();
        for v in [0.5f32, 0.5, -1.0, -1.0] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(bytes, want);
    }

    #[test]
    fn s16_conversion_is_exact() {
        assert_eq!(s16_to_f32(&[-32768, 16384, 0]), vec![-1.0, 0.5, 0.0]);
    }

    #[test]
    fn write_feed_puts_system_conf_first() {
        let dir = tempfile::tempdir().unwrap();
        match write_feed(dir.path(), &[0.25, 0.5]) {
            Ok(feed) => {
                let system = system_alsa_conf().unwrap();
                assert_eq!(
                    feed.alsa_config_path,
                    format!("{}:{}", system.display(), feed.config_file.display())
                );
                assert_eq!(
                    std::fs::read_to_string(&feed.config_file).unwrap(),
                    config_text(&feed.infile)
                );
                assert_eq!(std::fs::read(&feed.infile).unwrap().len(), 16);
            }
            Err(e) => {
                assert!(system_alsa_conf().is_none());
                assert_eq!(e.kind(), io::ErrorKind::NotFound);
            }
        }
    }
}
