//! Sealing: exact lengths, page layout, alignment of the decoded audio, writer API contracts.

mod common;

use chronote_encode::page_scan::{ScanEnd, assemble_packets, scan_pages};
use chronote_encode::{EncodeError, EncoderConfig, SegmentWriter, decode, inspect, read_tags};
use common::*;
use sha2::{Digest, Sha256};
use std::fs;

const PRE_SKIP: u64 = 312;

/// 100 frames (2 s) of sweep at 16 kHz, sealed with `keep` samples; checks every number.
fn seal_and_check(keep: u64, expected_packets: u64) {
    let dir = tempfile::tempdir().unwrap();
    let config = EncoderConfig::default();
    let pcm = sweep_at(16_000, 32_000);
    let part = dir.path().join("000001.opus.part");
    let w = write(&part, &config, &pcm, 1);
    assert_eq!(w.frames(), 100);
    assert_eq!(w.pre_skip(), 312);
    let final_path = dir.path().join("000001.opus");
    let sealed = w.seal(&final_path, keep).unwrap();

    assert_eq!(sealed.path, final_path);
    assert_eq!(sealed.length_48k, keep * 3, "keep {keep}");
    assert_eq!(sealed.pre_skip, 312);
    assert_eq!(sealed.packets, expected_packets, "keep {keep}");
    assert_eq!(sealed.pages, 2 + expected_packets.div_ceil(50));
    let bytes = fs::read(&final_path).unwrap();
    assert_eq!(sealed.bytes, bytes.len() as u64);
    let hex: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(sealed.sha256, hex);
    assert!(part.exists(), "seal must leave the journal to the spool");
    assert!(!dir.path().join("000001.opus.tmp").exists());

    let info = inspect(&final_path).unwrap();
    assert_eq!(info.length_48k, keep * 3);
    assert_eq!(info.final_granule, PRE_SKIP + keep * 3);
    assert_eq!(info.pre_skip, 312);
    assert_eq!(info.channels, 1);
    assert_eq!(info.input_rate, 16_000);
    assert_eq!(info.packets, sealed.packets);
    assert_eq!(info.pages, sealed.pages);
    assert_eq!(info.bytes, sealed.bytes);
    assert!(info.eos);

    let audio = decode(&final_path).unwrap();
    assert_eq!(audio.len() as u64, keep * 3);
    // decode() drops exactly the pre-skip: bit-identical to a plain libopus decode of the
    // file's packets minus its first 312 samples.
    let packets: Vec<Vec<u8>> = assemble_packets(&scan_pages(&bytes).pages)
        .into_iter()
        .skip(2)
        .map(|p| p.data)
        .collect();
    assert_eq!(audio, decode_packets(&packets, 312, audio.len()));
    if keep >= 3200 {
        // Alignment: with pre-skip removed, decoded sample j is the input at time j/48000. SILK
        // at 24 kbit/s shifts the phase of a sweep by up to 2 samples at 48 kHz (0.04 ms; see
        // `alignment_is_exact_where_the_codec_keeps_phase` for the exact check), while a
        // pre-skip or granule error would be off by 3 samples per 16 kHz sample at least.
        let reference = sweep_at(48_000, audio.len());
        let skip = 960; // the codec's first 20 ms are a fade-in
        let (lag, corr) = best_lag(&audio[skip..], &reference[skip..], 12);
        assert!(lag.abs() <= 2, "keep {keep}: correlation peak at lag {lag}");
        assert!(corr > 0.95, "keep {keep}: correlation {corr}");
        // The very end is intact too: the padding/extra packet carried the lookahead.
        let tail = audio.len() - 960;
        let corr_tail = ncc(&audio[tail..], &reference[tail..], lag);
        assert!(
            corr_tail > 0.9,
            "keep {keep}: last 20 ms correlate {corr_tail}"
        );
    }
}

#[test]
fn full_keep_pads_one_packet_for_the_lookahead() {
    // 312 + 32000*3 = 96312 → 101 packets: one frame of encoded silence.
    seal_and_check(32_000, 101);
}

#[test]
fn keep_ending_exactly_on_a_packet_boundary_needs_no_padding() {
    // 312 + 31896*3 = 96000 = 100 * 960.
    seal_and_check(31_896, 100);
}

#[test]
fn partial_last_frame_is_trimmed_by_the_final_granule() {
    // 312 + 31800*3 = 95712 → 100 packets, last one trimmed by 288.
    seal_and_check(31_800, 100);
    // 312 + 31923*3 = 96081 → 101 packets (padding), trimmed by 879.
    seal_and_check(31_923, 101);
}

#[test]
fn early_cut_drops_the_extra_packets() {
    // 312 + 19213*3 = 57951 → 61 of the 100 packets.
    seal_and_check(19_213, 61);
    // One frame: 312 + 960 → 2 packets.
    seal_and_check(320, 2);
}

#[test]
fn a_single_sample_can_be_kept() {
    seal_and_check(1, 1);
}

#[test]
fn alignment_is_exact_where_the_codec_keeps_phase() {
    // At 48 kHz and 96 kbit/s libopus codes in CELT mode, whose phase response is flat: the
    // correlation peak must sit at lag 0 (±1), so pre-skip and granules are right to the sample.
    let dir = tempfile::tempdir().unwrap();
    let config = EncoderConfig {
        sample_rate: 48_000,
        bitrate_bps: 96_000,
        ..Default::default()
    };
    let n = 960 * 100;
    let final_path = dir.path().join("celt.opus");
    for keep in [n as u64, n as u64 - 4321] {
        let w = write(
            &dir.path().join(format!("{keep}.opus.part")),
            &config,
            &sweep_at(48_000, n),
            1,
        );
        let sealed = w.seal(&final_path, keep).unwrap();
        assert_eq!(sealed.length_48k, keep);
        let audio = decode(&final_path).unwrap();
        assert_eq!(audio.len() as u64, keep);
        let reference = sweep_at(48_000, audio.len());
        let (lag, corr) = best_lag(&audio[960..], &reference[960..], 12);
        assert!(lag.abs() <= 1, "keep {keep}: correlation peak at lag {lag}");
        assert!(corr > 0.99, "keep {keep}: correlation {corr}");
    }
}

#[test]
fn every_rate_and_frame_duration_gives_exact_lengths() {
    let dir = tempfile::tempdir().unwrap();
    for rate in [8_000u32, 12_000, 16_000, 24_000, 48_000] {
        for frame_ms in [10u32, 20, 40, 60] {
            let config = EncoderConfig {
                sample_rate: rate,
                frame_ms,
                ..Default::default()
            };
            let frame_len = config.frame_len();
            let frames = 1200 / frame_ms as usize; // 1.2 s
            let pcm = sweep_at(rate, frame_len * frames);
            let r = u64::from(48_000 / rate);
            let available = (frame_len * frames) as u64;
            for keep in [available, available - 1, available / 2 + 7, 1] {
                let name = format!("{rate}-{frame_ms}-{keep}");
                let part = dir.path().join(format!("{name}.opus.part"));
                let w = write(&part, &config, &pcm, 3);
                assert_eq!(w.frame_len(), frame_len);
                let pre_skip = u64::from(w.pre_skip());
                assert_eq!(pre_skip % r, 0, "{name}");
                let final_path = dir.path().join(format!("{name}.opus"));
                let sealed = w.seal(&final_path, keep).unwrap();
                let frame_48k = u64::from(48 * frame_ms);
                assert_eq!(sealed.length_48k, keep * r, "{name}");
                assert_eq!(
                    sealed.packets,
                    (pre_skip + keep * r).div_ceil(frame_48k),
                    "{name}"
                );
                let info = inspect(&final_path).unwrap();
                assert_eq!(info.input_rate, rate, "{name}");
                assert_eq!(info.pre_skip as u64, pre_skip, "{name}");
                assert_eq!(info.length_48k, keep * r, "{name}");
                assert_eq!(
                    decode(&final_path).unwrap().len() as u64,
                    keep * r,
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn sealed_pages_follow_rfc_7845() {
    let dir = tempfile::tempdir().unwrap();
    let config = EncoderConfig::default();
    let part = dir.path().join("7.opus.part");
    let w = write(&part, &config, &speechlike_at(16_000, 320 * 130, 9), 7);
    let serial = w.serial();
    let final_path = dir.path().join("7.opus");
    let keep = 320 * 120 + 100;
    let sealed = w.seal(&final_path, keep).unwrap();
    let bytes = fs::read(&final_path).unwrap();
    let scan = scan_pages(&bytes);
    assert_eq!(scan.end, ScanEnd::Clean);
    let pages = &scan.pages;
    // 312 + 38500*3 = 115812 → 121 packets (120.6) → pages of 50, 50, 21.
    assert_eq!(sealed.packets, 121);
    assert_eq!(pages.len(), 5);
    assert_eq!(pages.len() as u64, sealed.pages);
    for (i, p) in pages.iter().enumerate() {
        assert_eq!(p.serial, serial);
        assert_eq!(p.sequence, i as u32);
        assert_eq!(p.bos, i == 0);
        assert_eq!(p.eos, i == 4);
        assert!(!p.continued && !p.ends_continued());
    }
    assert_eq!(&pages[0].body[..8], b"OpusHead");
    assert_eq!(pages[0].lacing, &[19]);
    assert_eq!(pages[0].granule, 0);
    assert_eq!(&pages[1].body[..8], b"OpusTags");
    assert_eq!(pages[1].packets_ending(), 1);
    assert_eq!(pages[1].granule, 0);
    let counts: Vec<usize> = pages[2..].iter().map(|p| p.packets_ending()).collect();
    assert_eq!(counts, [50, 50, 21]);
    let granules: Vec<u64> = pages[2..].iter().map(|p| p.granule).collect();
    assert_eq!(granules, [50 * 960, 100 * 960, PRE_SKIP + keep * 3]);

    // The journal has the same serial and the same leading packets.
    let journal = fs::read(&part).unwrap();
    let jscan = scan_pages(&journal);
    assert!(jscan.pages.iter().all(|p| p.serial == serial));
    let jpackets = assemble_packets(&jscan.pages);
    let spackets = assemble_packets(pages);
    assert_eq!(jpackets.len(), 2 + 125); // 5 journal pages of 25 frames; 5 frames still in memory
    for i in 2..spackets.len() {
        assert_eq!(spackets[i].data, jpackets[i].data, "packet {i}");
    }
}

#[test]
fn speech_like_audio_survives_with_high_correlation() {
    let dir = tempfile::tempdir().unwrap();
    let pcm = voiced_at(16_000, 320 * 150);
    let part = dir.path().join("v.opus.part");
    let w = write(&part, &EncoderConfig::default(), &pcm, 1);
    let final_path = dir.path().join("v.opus");
    w.seal(&final_path, 320 * 150).unwrap();
    let audio = decode(&final_path).unwrap();
    let reference = voiced_at(48_000, audio.len());
    // SILK at 24 kbit/s keeps harmonic magnitudes better than their phases, so allow a few
    // samples of apparent lag here; the sweep tests pin the alignment itself.
    let (lag, corr) = best_lag(&audio[960..], &reference[960..], 8);
    assert!(lag.abs() <= 4, "lag {lag}");
    assert!(corr > 0.9, "correlation {corr}");
}

#[test]
fn seal_rejects_keep_outside_the_pushed_audio() {
    let dir = tempfile::tempdir().unwrap();
    let config = EncoderConfig::default();
    for (keep, frames) in [(0u64, 10usize), (3201, 10), (1, 0)] {
        let part = dir.path().join(format!("{keep}-{frames}.opus.part"));
        let w = write(&part, &config, &sweep_at(16_000, 320 * frames), 1);
        let final_path = dir.path().join(format!("{keep}-{frames}.opus"));
        let err = w.seal(&final_path, keep).unwrap_err();
        let available = 320 * frames as u64;
        assert!(
            matches!(err, EncodeError::KeepSamples { keep: k, available: a, .. } if k == keep && a == available),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "segment {}: keep_samples {keep} is outside 1..={available}",
                part.display()
            )
        );
        assert!(!final_path.exists());
        assert!(part.exists());
    }
}

#[test]
fn push_frame_rejects_wrong_lengths_and_keeps_going() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("f.opus.part");
    let mut w = SegmentWriter::create(&part, &EncoderConfig::default(), &tags(1)).unwrap();
    assert_eq!(w.frame_len(), 320);
    for bad in [0usize, 319, 321, 640] {
        let err = w.push_frame(&vec![0.0; bad]).unwrap_err();
        assert!(
            matches!(err, EncodeError::FrameLength { expected: 320, got } if got == bad),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("frame has {bad} samples, expected exactly 320")
        );
    }
    assert_eq!(w.frames(), 0);
    w.push_frame(&[0.1; 320]).unwrap();
    assert_eq!(w.frames(), 1);
}

#[test]
fn create_refuses_an_existing_part_and_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("x.opus.part");
    fs::write(&part, b"previous").unwrap();
    let err = SegmentWriter::create(&part, &EncoderConfig::default(), &tags(1)).unwrap_err();
    match &err {
        EncodeError::Io {
            path,
            action,
            source,
        } => {
            assert_eq!(path, &part);
            assert_eq!(*action, "create");
            assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with(&format!("segment {}: create:", part.display()))
    );
    assert_eq!(fs::read(&part).unwrap(), b"previous");

    let bad = EncoderConfig {
        sample_rate: 44_100,
        ..Default::default()
    };
    let other = dir.path().join("y.opus.part");
    let err = SegmentWriter::create(&other, &bad, &tags(1)).unwrap_err();
    assert!(matches!(err, EncodeError::Config(_)), "{err:?}");
    assert!(!other.exists());
}

#[test]
fn abandon_removes_the_part() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("a.opus.part");
    let w = write(
        &part,
        &EncoderConfig::default(),
        &sweep_at(16_000, 320 * 30),
        1,
    );
    assert!(part.exists());
    w.abandon().unwrap();
    assert!(!part.exists());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn tags_round_trip_through_journal_and_sealed_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = tags(42);
    t.track = "system audio = loopback".into();
    t.recording_id = "rec/ü".into();
    let part = dir.path().join("t.opus.part");
    let mut w = SegmentWriter::create(&part, &EncoderConfig::default(), &t).unwrap();
    assert_eq!(w.tags(), &t);
    assert_eq!(read_tags(&part).unwrap(), t);
    for frame in sweep_at(16_000, 320 * 10).chunks(320) {
        w.push_frame(frame).unwrap();
    }
    let final_path = dir.path().join("t.opus");
    w.seal(&final_path, 3200).unwrap();
    assert_eq!(read_tags(&final_path).unwrap(), t);
    let info = inspect(&final_path).unwrap();
    assert!(
        info.vendor.starts_with("chronote-encode 0.1.0; libopus 1."),
        "{}",
        info.vendor
    );
    let expected: Vec<(String, String)> = [
        ("CHRONOTE_RECORDING_ID", "rec/ü"),
        ("CHRONOTE_TRACK", "system audio = loopback"),
        ("CHRONOTE_SEQUENCE", "42"),
        ("CHRONOTE_START_SAMPLE", "60480000"),
        ("CHRONOTE_START_TIME", "2025-03-04T05:06:07.089Z"),
        ("ENCODER", "chronote"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(info.tags, expected);
}
