//! Crash recovery: journals torn at any byte, with garbage appended or bytes flipped.

mod common;

use chronote_encode::page_scan::{ScanEnd, assemble_packets, scan_pages};
use chronote_encode::{EncodeError, EncoderConfig, RepairOutcome, decode, inspect, repair};
use common::*;
use std::fs;
use std::path::Path;

const PRE_SKIP: u64 = 312;

/// A journal of `frames` frames; returns its bytes and its audio packets.
fn journal(dir: &Path, config: &EncoderConfig, frames: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let part = dir.join("source.opus.part");
    let w = write(&part, config, &speechlike_at(16_000, 320 * frames, 11), 4);
    drop(w); // as if killed: no seal, journal stays
    let bytes = fs::read(&part).unwrap();
    fs::remove_file(&part).unwrap();
    let scan = scan_pages(&bytes);
    assert_eq!(scan.end, ScanEnd::Clean);
    let packets = assemble_packets(&scan.pages)
        .into_iter()
        .skip(2)
        .map(|p| p.data)
        .collect();
    (bytes, packets)
}

/// Granule of the last intact audio page of `bytes`, if any.
fn last_audio_granule(bytes: &[u8]) -> Option<u64> {
    let scan = scan_pages(bytes);
    if scan.pages.len() > 2 {
        scan.pages.last().map(|p| p.granule)
    } else {
        None
    }
}

/// Repairs `damaged` and checks the outcome against the original packets.
fn repair_and_check(
    dir: &Path,
    damaged: &[u8],
    expected_granule: Option<u64>,
    original: &[Vec<u8>],
    what: &str,
) {
    let part = dir.join("000004.opus.part");
    let final_path = dir.join("000004.opus");
    fs::write(&part, damaged).unwrap();
    let outcome = repair(&part, &final_path).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(!part.exists(), "{what}: part must be removed");
    match (outcome, expected_granule) {
        (RepairOutcome::Empty, None) => assert!(!final_path.exists(), "{what}"),
        (RepairOutcome::Sealed { segment, tags: t }, Some(granule)) => {
            assert_eq!(t, tags(4), "{what}");
            let length = granule - PRE_SKIP;
            let packets = granule / 960;
            assert_eq!(segment.length_48k, length, "{what}");
            assert_eq!(segment.packets, packets, "{what}");
            let info = inspect(&final_path).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(info.length_48k, length, "{what}");
            assert_eq!(info.final_granule, granule, "{what}");
            assert_eq!(info.packets, packets, "{what}");
            assert_eq!(info.bytes, segment.bytes, "{what}");
            assert!(info.eos, "{what}");
            let audio = decode(&final_path).unwrap();
            let expected = decode_packets(
                &original[..packets as usize],
                PRE_SKIP as usize,
                length as usize,
            );
            assert!(audio == expected, "{what}: decoded audio differs");
            fs::remove_file(&final_path).unwrap();
        }
        (outcome, expected) => panic!("{what}: got {outcome:?}, expected granule {expected:?}"),
    }
}

#[test]
fn truncation_at_every_byte_of_the_last_two_pages_and_a_sample_before() {
    let dir = tempfile::tempdir().unwrap();
    let config = EncoderConfig {
        journal_page_ms: 100, // 5 frames per page keeps the byte-by-byte sweep quick
        ..Default::default()
    };
    let (bytes, packets) = journal(dir.path(), &config, 60);
    let pages = scan_pages(&bytes).pages;
    assert_eq!(pages.len(), 2 + 12);
    let last_two = pages[pages.len() - 2].offset;
    let mut cuts: Vec<usize> = (last_two..=bytes.len()).collect();
    // Every byte of the header pages and the first audio page, then every 37th byte.
    cuts.extend(0..pages[3].offset);
    cuts.extend((pages[3].offset..last_two).step_by(37));
    // Page boundaries themselves.
    cuts.extend(pages.iter().map(|p| p.offset));
    for cut in cuts {
        let damaged = &bytes[..cut];
        repair_and_check(
            dir.path(),
            damaged,
            last_audio_granule(damaged),
            &packets,
            &format!("cut at {cut}"),
        );
    }
}

#[test]
fn truncation_with_default_500_ms_pages() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, packets) = journal(dir.path(), &EncoderConfig::default(), 140);
    let pages = scan_pages(&bytes).pages;
    assert_eq!(pages.len(), 2 + 5); // 125 frames journaled, 15 were still in memory
    let last = pages.last().unwrap();
    for cut in (pages[2].offset..=bytes.len()).step_by(53).chain([
        bytes.len(),
        last.offset,
        last.offset + 1,
    ]) {
        let damaged = &bytes[..cut];
        repair_and_check(
            dir.path(),
            damaged,
            last_audio_granule(damaged),
            &packets,
            &format!("cut at {cut}"),
        );
    }
    // The untouched journal: all 125 journaled frames.
    repair_and_check(
        dir.path(),
        &bytes,
        Some(125 * 960),
        &packets,
        "whole journal",
    );
}

#[test]
fn garbage_after_the_last_page_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let config = EncoderConfig {
        journal_page_ms: 100,
        ..Default::default()
    };
    let (bytes, packets) = journal(dir.path(), &config, 30);
    let mut rng = Prng::new(99);
    for (i, len) in [1usize, 3, 27, 500, 5000].into_iter().enumerate() {
        let mut damaged = bytes.clone();
        damaged.extend((0..len).map(|_| rng.next_u64() as u8));
        repair_and_check(
            dir.path(),
            &damaged,
            Some(30 * 960),
            &packets,
            &format!("garbage {i}"),
        );
    }
    // Zeros, as a filesystem may leave after a power loss, and a torn copy of a real page.
    let mut zeros = bytes.clone();
    zeros.extend([0u8; 4096]);
    repair_and_check(dir.path(), &zeros, Some(30 * 960), &packets, "zeros");
    let pages = scan_pages(&bytes).pages;
    let mut torn = bytes.clone();
    let p = &pages[3];
    torn.extend_from_slice(&bytes[p.offset..p.offset + p.len() - 1]);
    repair_and_check(
        dir.path(),
        &torn,
        Some(30 * 960),
        &packets,
        "torn duplicate",
    );
}

#[test]
fn flipped_bytes_end_the_audio_at_the_page_before() {
    let dir = tempfile::tempdir().unwrap();
    let config = EncoderConfig {
        journal_page_ms: 100,
        ..Default::default()
    };
    let (bytes, packets) = journal(dir.path(), &config, 40);
    let pages = scan_pages(&bytes).pages;
    let mut positions: Vec<usize> = Vec::new();
    // Every byte of the header (27 + lacing) of two audio pages, and a spread over all bodies.
    for p in [&pages[2], &pages[pages.len() - 1]] {
        positions.extend(p.offset..p.offset + 27 + p.lacing.len());
    }
    positions.extend((pages[2].offset..bytes.len()).step_by(29));
    for pos in positions {
        let page = pages.iter().rposition(|p| p.offset <= pos).unwrap();
        let expected = if page <= 2 {
            None
        } else {
            Some(pages[page - 1].granule)
        };
        for mask in [0x01u8, 0x80, 0xff] {
            let mut damaged = bytes.clone();
            damaged[pos] ^= mask;
            repair_and_check(
                dir.path(),
                &damaged,
                expected,
                &packets,
                &format!("flip {mask:#x} at {pos} (page {page})"),
            );
        }
    }
}

#[test]
fn damaged_headers_are_an_error_and_the_part_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let config = EncoderConfig::default();
    let (bytes, _) = journal(dir.path(), &config, 60);
    let pages = scan_pages(&bytes).pages;
    let part = dir.path().join("000009.opus.part");
    let final_path = dir.path().join("000009.opus");

    let cases: Vec<(usize, &str)> = vec![
        (0, "does not start with an Ogg page"), // capture pattern of page 0
        (pages[0].offset + 30, "missing OpusHead"), // inside the OpusHead packet: bad CRC
        (pages[1].offset + 40, "missing OpusTags"), // inside OpusTags: bad CRC
    ];
    for (pos, needle) in cases {
        let mut damaged = bytes.clone();
        damaged[pos] ^= 0x20;
        fs::write(&part, &damaged).unwrap();
        let err = repair(&part, &final_path).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&part.display().to_string()), "{msg}");
        assert!(msg.contains(needle), "flip at {pos}: {msg}");
        assert!(part.exists());
        assert!(!final_path.exists());
    }

    // Not Ogg at all.
    fs::write(&part, b"RIFF\x24\x00\x00\x00WAVEfmt ").unwrap();
    let err = repair(&part, &final_path).unwrap_err();
    assert!(matches!(err, EncodeError::NotOgg { .. }), "{err:?}");
    assert!(part.exists());

    // Valid Ogg, but the stream is not Opus.
    let mut w = ogg::PacketWriter::new(Vec::new());
    w.write_packet(
        b"\x01vorbis-ish header".to_vec(),
        1,
        ogg::PacketWriteEndInfo::EndPage,
        0,
    )
    .unwrap();
    fs::write(&part, w.into_inner()).unwrap();
    let err = repair(&part, &final_path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("not an Ogg Opus file: {}: missing OpusHead", part.display())
    );
}

#[test]
fn empty_and_header_only_journals_are_empty() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, _) = journal(dir.path(), &EncoderConfig::default(), 10);
    // 10 frames never reached a page: only the headers are on disk.
    assert_eq!(scan_pages(&bytes).pages.len(), 2);
    let part = dir.path().join("e.opus.part");
    let final_path = dir.path().join("e.opus");
    for damaged in [
        &bytes[..],
        &bytes[..0],
        &bytes[..10],
        &bytes[..bytes.len() - 1],
    ] {
        fs::write(&part, damaged).unwrap();
        assert_eq!(repair(&part, &final_path).unwrap(), RepairOutcome::Empty);
        assert!(!part.exists());
        assert!(!final_path.exists());
    }
    let missing = repair(&part, &final_path).unwrap_err();
    assert!(
        matches!(missing, EncodeError::Io { action: "read", .. }),
        "{missing:?}"
    );
}

#[test]
fn repair_matches_what_seal_would_have_written() {
    // The same frames sealed normally and repaired from the full journal give the same file
    // whenever the seal keeps what the journal holds and needs no padding.
    let dir = tempfile::tempdir().unwrap();
    let config = EncoderConfig::default();
    let pcm = speechlike_at(16_000, 320 * 100, 2);
    let part_a = dir.path().join("a.opus.part");
    let w = write(&part_a, &config, &pcm, 4);
    // 100 frames → 4 journal pages; granule 96000 = 312 + 31896*3.
    let sealed = w.seal(&dir.path().join("a.opus"), 31_896).unwrap();
    let repaired = match repair(&part_a, &dir.path().join("b.opus")).unwrap() {
        RepairOutcome::Sealed { segment, .. } => segment,
        other => panic!("{other:?}"),
    };
    assert_eq!(repaired.length_48k, sealed.length_48k);
    assert_eq!(repaired.packets, sealed.packets);
    assert_eq!(repaired.sha256, sealed.sha256);
    assert_eq!(
        fs::read(dir.path().join("a.opus")).unwrap(),
        fs::read(dir.path().join("b.opus")).unwrap()
    );
}
