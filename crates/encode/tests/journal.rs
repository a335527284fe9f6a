//! The journal on disk while recording: every completed page is there, durable, and nothing
//! else.

mod common;

use chronote_encode::page_scan::{ScanEnd, assemble_packets, scan_pages};
use chronote_encode::{EncoderConfig, SegmentWriter};
use common::*;
use std::fs;

#[test]
fn every_completed_page_is_on_disk_after_push_frame_returns() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("000001.opus.part");
    let config = EncoderConfig::default(); // 25 frames (500 ms) per journal page
    let mut w = SegmentWriter::create(&part, &config, &tags(1)).unwrap();
    let header_len = fs::metadata(&part).unwrap().len();
    assert_eq!(w.journal_bytes(), header_len);
    let header_scan_len = scan_pages(&fs::read(&part).unwrap()).pages.len();
    assert_eq!(header_scan_len, 2);

    let pcm = speechlike_at(16_000, 320 * 110, 5);
    for (i, frame) in pcm.chunks(320).enumerate() {
        w.push_frame(frame).unwrap();
        let frames = i as u64 + 1;
        assert_eq!(w.frames(), frames);
        let bytes = fs::read(&part).unwrap();
        assert_eq!(w.journal_bytes(), bytes.len() as u64, "frame {frames}");
        let scan = scan_pages(&bytes);
        assert_eq!(scan.end, ScanEnd::Clean, "frame {frames}");
        let audio_pages = frames / 25;
        assert_eq!(scan.pages.len() as u64, 2 + audio_pages, "frame {frames}");
        let last = scan.pages.last().unwrap();
        assert!(!last.eos);
        assert_eq!(last.granule, audio_pages * 25 * 960, "frame {frames}");
        assert_eq!(
            assemble_packets(&scan.pages).len() as u64,
            2 + audio_pages * 25
        );
    }

    // 110 frames: 4 pages on disk, 10 frames in memory. A pause flushes them now.
    w.flush_journal().unwrap();
    let bytes = fs::read(&part).unwrap();
    assert_eq!(w.journal_bytes(), bytes.len() as u64);
    let scan = scan_pages(&bytes);
    assert_eq!(scan.end, ScanEnd::Clean);
    assert_eq!(scan.pages.len(), 2 + 5);
    assert_eq!(scan.pages.last().unwrap().granule, 110 * 960);
    let counts: Vec<usize> = scan.pages[2..].iter().map(|p| p.packets_ending()).collect();
    assert_eq!(counts, [25, 25, 25, 25, 10]);
    let sequences: Vec<u32> = scan.pages.iter().map(|p| p.sequence).collect();
    assert_eq!(sequences, [0, 1, 2, 3, 4, 5, 6]);

    // Flushing with nothing new writes nothing.
    w.flush_journal().unwrap();
    assert_eq!(fs::metadata(&part).unwrap().len(), bytes.len() as u64);

    // After the flush, the next page again holds 25 frames.
    for frame in pcm[..320 * 25].chunks(320) {
        w.push_frame(frame).unwrap();
    }
    let scan_bytes = fs::read(&part).unwrap();
    let scan = scan_pages(&scan_bytes);
    assert_eq!(scan.pages.len(), 2 + 6);
    assert_eq!(scan.pages.last().unwrap().granule, 135 * 960);
    assert_eq!(scan.pages.last().unwrap().packets_ending(), 25);
}

#[test]
fn journal_page_size_follows_the_config() {
    let dir = tempfile::tempdir().unwrap();
    for (journal_page_ms, frames_per_page) in [(100u32, 5u64), (20, 1), (30, 1), (1000, 50)] {
        let config = EncoderConfig {
            journal_page_ms,
            ..Default::default()
        };
        let part = dir.path().join(format!("{journal_page_ms}.opus.part"));
        let w = write(&part, &config, &sweep_at(16_000, 320 * 100), 1);
        let bytes = fs::read(&part).unwrap();
        let scan = scan_pages(&bytes);
        assert_eq!(scan.end, ScanEnd::Clean);
        assert_eq!(scan.pages.len() as u64, 2 + 100 / frames_per_page);
        for p in &scan.pages[2..] {
            assert_eq!(p.packets_ending() as u64, frames_per_page);
        }
        assert_eq!(w.journal_bytes(), bytes.len() as u64);
    }
}

#[test]
fn journal_pages_never_split_packets_even_at_high_bitrate() {
    // 48 kHz at 512 kbit/s makes packets of ~1275 bytes (6 lacing values each): 50 frames
    // would need 300 lacing values, more than one page can hold, so pages end early instead of
    // splitting a packet.
    let dir = tempfile::tempdir().unwrap();
    let config = EncoderConfig {
        sample_rate: 48_000,
        bitrate_bps: 512_000,
        journal_page_ms: 1000,
        ..Default::default()
    };
    let part = dir.path().join("hi.opus.part");
    let mut rng = Prng::new(3);
    let noise: Vec<f32> = (0..960 * 120).map(|_| 0.5 * rng.next_f32()).collect();
    let w = write(&part, &config, &noise, 1);
    let bytes = fs::read(&part).unwrap();
    let scan = scan_pages(&bytes);
    assert_eq!(scan.end, ScanEnd::Clean);
    let mut frames = 0u64;
    for p in &scan.pages {
        assert!(!p.continued && !p.ends_continued());
        assert!(p.lacing.len() <= 255);
        if p.index >= 2 {
            frames += p.packets_ending() as u64;
            assert_eq!(p.granule, frames * 960);
        }
    }
    // Packets of ~1276 bytes take 6 lacing values: 42 per page (252), the 43rd starts a page.
    let counts: Vec<usize> = scan.pages[2..].iter().map(|p| p.packets_ending()).collect();
    assert_eq!(counts, [42, 42]);
    assert_eq!(frames, 84);
    let final_path = dir.path().join("hi.opus");
    let sealed = w.seal(&final_path, 960 * 120).unwrap();
    let info = chronote_encode::inspect(&final_path).unwrap();
    assert_eq!(info.length_48k, 960 * 120);
    assert_eq!(info.pages, sealed.pages);
}
