//! Files that are not (complete) Chronote segments give specific errors, never panics.

mod common;

use chronote_encode::page_scan::scan_pages;
use chronote_encode::{EncodeError, EncoderConfig, decode, inspect, read_tags};
use common::*;
use std::fs;
use std::path::{Path, PathBuf};

/// A sealed 1-second segment in `dir`; returns its path and bytes.
fn sealed(dir: &Path) -> (PathBuf, Vec<u8>) {
    let part = dir.join("good.opus.part");
    let w = write(
        &part,
        &EncoderConfig::default(),
        &sweep_at(16_000, 320 * 100),
        1,
    );
    let path = dir.join("good.opus");
    w.seal(&path, 32_000).unwrap();
    let bytes = fs::read(&path).unwrap();
    (path, bytes)
}

fn put(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p
}

/// inspect, decode and read_tags all fail on `path` with an error `check` accepts.
fn all_fail(path: &Path, check: impl Fn(&EncodeError) -> bool) {
    let errors = [
        ("inspect", inspect(path).map(|_| ()).unwrap_err()),
        ("decode", decode(path).map(|_| ()).unwrap_err()),
        ("read_tags", read_tags(path).map(|_| ()).unwrap_err()),
    ];
    for (what, e) in errors {
        assert!(check(&e), "{what} {}: unexpected {e:?}", path.display());
        assert!(
            e.to_string().contains(&path.display().to_string()),
            "{what}: message does not name the file: {e}"
        );
    }
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = put(dir.path(), "empty.opus", b"");
    all_fail(&p, |e| matches!(e, EncodeError::EmptyFile { .. }));
    assert_eq!(
        inspect(&p).unwrap_err().to_string(),
        format!("segment {}: empty file", p.display())
    );
}

#[test]
fn random_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Prng::new(1);
    let noise: Vec<u8> = (0..10_000).map(|_| (rng.next_u64() >> 3) as u8).collect();
    assert!(!noise.starts_with(b"OggS"));
    let p = put(dir.path(), "noise.opus", &noise);
    all_fail(&p, |e| matches!(e, EncodeError::NotOgg { .. }));
    assert!(
        inspect(&p)
            .unwrap_err()
            .to_string()
            .starts_with("not an Ogg file: ")
    );
}

#[test]
fn wav_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("speech.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&p, spec).unwrap();
    for s in sweep_at(16_000, 16_000) {
        w.write_sample((s * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
    all_fail(
        &p,
        |e| matches!(e, EncodeError::NotOgg { reason, .. } if reason.contains("RIFF/WAV")),
    );
    assert_eq!(
        inspect(&p).unwrap_err().to_string(),
        format!(
            "not an Ogg file: {}: starts with \"RIFF\" (a RIFF/WAV file), not the capture pattern \"OggS\"",
            p.display()
        )
    );
}

#[test]
fn ogg_but_not_opus() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = ogg::PacketWriter::new(Vec::new());
    w.write_packet(
        b"\x01vorbis\x00\x00\x00\x00".to_vec(),
        7,
        ogg::PacketWriteEndInfo::EndPage,
        0,
    )
    .unwrap();
    w.write_packet(vec![0u8; 50], 7, ogg::PacketWriteEndInfo::EndStream, 960)
        .unwrap();
    let p = put(dir.path(), "vorbis.ogg", &w.into_inner());
    all_fail(
        &p,
        |e| matches!(e, EncodeError::NotOpus { reason, .. } if reason == "missing OpusHead"),
    );
    assert_eq!(
        inspect(&p).unwrap_err().to_string(),
        format!("not an Ogg Opus file: {}: missing OpusHead", p.display())
    );
}

#[test]
fn truncated_header() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = sealed(dir.path());
    for cut in [2usize, 4, 20, 27, 28, 40] {
        let p = put(dir.path(), &format!("cut{cut}.opus"), &bytes[..cut]);
        all_fail(&p, |e| matches!(e, EncodeError::Truncated { .. }));
    }
    let p = dir.path().join("cut20.opus");
    assert_eq!(
        inspect(&p).unwrap_err().to_string(),
        format!(
            "segment {}: truncated: file ends inside page 0",
            p.display()
        )
    );
}

#[test]
fn truncated_audio_and_unsealed_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = sealed(dir.path());
    let pages = scan_pages(&bytes).pages;
    // Cut inside the last page.
    let p = put(dir.path(), "torn.opus", &bytes[..bytes.len() - 10]);
    let e = inspect(&p).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "segment {}: truncated: file ends inside page 4",
            p.display()
        )
    );
    assert!(decode(&p).is_err());
    // tags are in the intact header pages
    assert_eq!(read_tags(&p).unwrap(), tags(1));
    // Cut exactly at a page boundary: well-formed pages, but no end of stream.
    let p = put(dir.path(), "noeos.opus", &bytes[..pages[4].offset]);
    let e = inspect(&p).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "segment {}: truncated: no end-of-stream page after page 3",
            p.display()
        )
    );
    // Headers only.
    let p = put(dir.path(), "headers.opus", &bytes[..pages[2].offset]);
    assert!(
        matches!(inspect(&p).unwrap_err(), EncodeError::Corrupt { reason, .. } if reason == "no audio packets")
    );
    // A live journal is not a sealed file.
    let part = dir.path().join("live.opus.part");
    let _w = write(
        &part,
        &EncoderConfig::default(),
        &sweep_at(16_000, 320 * 60),
        1,
    );
    assert!(matches!(
        inspect(&part).unwrap_err(),
        EncodeError::Truncated { .. }
    ));
    assert_eq!(read_tags(&part).unwrap(), tags(1));
}

#[test]
fn bad_crc_names_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = sealed(dir.path());
    let pages = scan_pages(&bytes).pages;
    for page in [0usize, 1, 3] {
        let mut damaged = bytes.clone();
        damaged[pages[page].offset + pages[page].len() - 1] ^= 0x04;
        let p = put(dir.path(), &format!("crc{page}.opus"), &damaged);
        let e = inspect(&p).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("segment {}: page {page} has a bad CRC", p.display()),
        );
        assert!(decode(&p).is_err());
    }
}

#[test]
fn structural_errors() {
    let dir = tempfile::tempdir().unwrap();
    // OpusHead with a channel count the mapping family forbids.
    let head = |channels: u8| {
        let mut h = b"OpusHead\x01".to_vec();
        h.push(channels);
        h.extend_from_slice(&312u16.to_le_bytes());
        h.extend_from_slice(&16_000u32.to_le_bytes());
        h.extend_from_slice(&[0, 0, 0]);
        h
    };
    let mut w = ogg::PacketWriter::new(Vec::new());
    w.write_packet(head(3), 1, ogg::PacketWriteEndInfo::EndPage, 0)
        .unwrap();
    let p = put(dir.path(), "ch3.opus", &w.into_inner());
    all_fail(
        &p,
        |e| matches!(e, EncodeError::NotOpus { reason, .. } if reason.contains("channel count 3")),
    );

    // Two logical streams multiplexed.
    let (_, bytes) = sealed(dir.path());
    let mut w = ogg::PacketWriter::new(Vec::new());
    w.write_packet(head(1), 2, ogg::PacketWriteEndInfo::EndPage, 0)
        .unwrap();
    let mut two = bytes.clone();
    two.extend_from_slice(&w.into_inner());
    let p = put(dir.path(), "two.opus", &two);
    let e = inspect(&p).unwrap_err();
    assert!(
        matches!(&e, EncodeError::Corrupt { reason, .. } if reason.contains("second logical stream")),
        "{e:?}"
    );

    // Missing file.
    let missing = dir.path().join("missing.opus");
    let e = inspect(&missing).unwrap_err();
    assert!(
        matches!(&e, EncodeError::Io { action: "read", .. }),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with(&format!("segment {}: read:", missing.display()))
    );
}
