//! Size sanity: a minute of speech-like audio stays near the nominal bitrate.

mod common;

use chronote_encode::{EncoderConfig, decode, inspect};
use common::*;

#[test]
fn sixty_seconds_at_24_kbps_stays_within_five_percent_of_nominal() {
    let dir = tempfile::tempdir().unwrap();
    let config = EncoderConfig::default();
    let pcm = speechlike_at(16_000, 16_000 * 60, 60);
    let part = dir.path().join("minute.opus.part");
    let started = std::time::Instant::now();
    let w = write(&part, &config, &pcm, 1);
    let encode_time = started.elapsed();
    let journal = w.journal_bytes();
    let final_path = dir.path().join("minute.opus");
    let sealed = w.seal(&final_path, 16_000 * 60).unwrap();
    let limit = (60.0 * 24_000.0 / 8.0 * 1.05) as u64;
    assert!(sealed.bytes < limit, "{} bytes >= {limit}", sealed.bytes);
    assert!(journal < limit, "journal {journal} bytes >= {limit}");
    // Not a benchmark, but the encoder must comfortably beat real time even in a debug build.
    assert!(
        encode_time.as_secs() < 30,
        "encoding 60 s took {encode_time:?}"
    );
    let info = inspect(&final_path).unwrap();
    assert_eq!(info.length_48k, 48_000 * 60);
    assert_eq!(info.packets, 3001);
    assert_eq!(info.pages, 2 + 61);
    assert_eq!(decode(&final_path).unwrap().len(), 48_000 * 60);
}
