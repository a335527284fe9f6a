//! Feeding a raw PCM file to cpal as the default ALSA capture device, for end-to-end tests on
//! machines without a sound card.
//!
//! ALSA's `file` plugin can play a file *into* a capture stream: a PCM of `type file` whose
//! `infile` is the raw audio and whose slave is the `null` PCM. Making `pcm.!default` a `plug`
//! over it lets cpal open `Source::Device { name: None }` and receive the file's samples. This
//! module writes such a configuration:
//!
//! ```text
//! pcm.chronote_feed {
//!     type file
//!     slave.pcm "null"
//!     file "/dev/null"
//!     infile "/path/to/speech.raw"
//!     format "raw"
//! }
//! pcm.!default {
//!     type plug
//!     slave {
//!         pcm "chronote_feed"
//!         format S16_LE
//!         rate 48000
//!         channels 1
//!     }
//! }
//! ```
//!
//! Then point ALSA at the system configuration *followed by* this file, in the environment of the
//! process that opens the device, before it first touches ALSA:
//! `ALSA_CONFIG_PATH=/usr/share/alsa/alsa.conf:/tmp/x/chronote-feed.conf` (see
//! [`AlsaFeed::alsa_config_path`]). For a child process (the CLI), set it with
//! `Command::env`; inside a test binary, set it before any cpal call, in a test binary of its own.
//!
//! Make the raw file with `espeak-ng -v en-us -w speech.wav "text"` and
//! `sox speech.wav -r 48000 -c 1 -b 16 -e signed-integer -t raw speech.raw`.
//!
//! Caveats: the `null` slave has no clock, so capture runs faster than real time; after the end
//! of the file the plugin delivers silence. Stop by sample count, and read without dropping (a
//! large `ring_ms` and a reader that keeps up). If PulseAudio or PipeWire is running it may take
//! over the default device. cpal prefers stereo, so the plug duplicates the mono channel and the
//! capture downmixes it back, which is exact.

use std::io;
use std::path::{Path, PathBuf};

/// Name of the file-backed PCM defined by [`config_text`].
pub const FEED_PCM: &str = "chronote_feed";

/// Places where distributions install ALSA's top-level configuration.
const SYSTEM_CONF_CANDIDATES: [&str; 3] = [
    "/usr/share/alsa/alsa.conf",
    "/usr/local/share/alsa/alsa.conf",
    "/etc/alsa/alsa.conf",
];

/// The system `alsa.conf`, which must come first in `ALSA_CONFIG_PATH` (it defines the `null`,
/// `file` and `plug` plugins the feed uses).
pub fn system_alsa_conf() -> Option<PathBuf> {
    SYSTEM_CONF_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// ALSA configuration text that makes the default capture device read `raw` (headerless
/// interleaved PCM in ALSA `format`, e.g. `S16_LE`, at `rate` Hz with `channels` channels).
pub fn config_text(raw: &Path, format: &str, rate: u32, channels: u16) -> String {
    format!(
        "pcm.{FEED_PCM} {{\n    type file\n    slave.pcm \"null\"\n    file \"/dev/null\"\n    \
         infile \"{infile}\"\n    format \"raw\"\n}}\n\
         pcm.!default {{\n    type plug\n    slave {{\n        pcm \"{FEED_PCM}\"\n        \
         format {format}\n        rate {rate}\n        channels {channels}\n    }}\n}}\n",
        infile = raw.display(),
    )
}

/// A written feed configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlsaFeed {
    /// The configuration file that was written.
    pub config_file: PathBuf,
    /// Value for the `ALSA_CONFIG_PATH` environment variable: system `alsa.conf`, then ours.
    pub alsa_config_path: String,
}

/// Writes `dir/chronote-feed.conf` for a raw file and returns the `ALSA_CONFIG_PATH` value to use.
pub fn write_config(
    dir: &Path,
    raw: &Path,
    format: &str,
    rate: u32,
    channels: u16,
) -> io::Result<AlsaFeed> {
    let system = system_alsa_conf().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no system alsa.conf found (looked in {}); install libasound2",
                SYSTEM_CONF_CANDIDATES.join(", ")
            ),
        )
    })?;
    let config_file = dir.join("chronote-feed.conf");
    std::fs::write(&config_file, config_text(raw, format, rate, channels))?;
    Ok(AlsaFeed {
        alsa_config_path: format!("{}:{}", system.display(), config_file.display()),
        config_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_text_is_exact() {
        let text = config_text(Path::new("/tmp/a.raw"), "S16_LE", 48000, 1);
        assert_eq!(
            text,
            "pcm.chronote_feed {\n    type file\n    slave.pcm \"null\"\n    file \"/dev/null\"\n    \
             infile \"/tmp/a.raw\"\n    format \"raw\"\n}\n\
             pcm.!default {\n    type plug\n    slave {\n        pcm \"chronote_feed\"\n        \
             format S16_LE\n        rate 48000\n        channels 1\n    }\n}\n"
        );
    }

    #[test]
    fn write_config_puts_system_conf_first() {
        let dir = tempfile::tempdir().unwrap();
        match write_config(dir.path(), Path::new("/tmp/a.raw"), "S16_LE", 16000, 1) {
            Ok(feed) => {
                let system = system_alsa_conf().unwrap();
                assert_eq!(
                    feed.alsa_config_path,
                    format!("{}:{}", system.display(), feed.config_file.display())
                );
                assert_eq!(
                    std::fs::read_to_string(&feed.config_file).unwrap(),
                    config_text(Path::new("/tmp/a.raw"), "S16_LE", 16000, 1)
                );
            }
            Err(e) => {
                assert!(system_alsa_conf().is_none());
                assert_eq!(e.kind(), io::ErrorKind::NotFound);
            }
        }
    }
}
