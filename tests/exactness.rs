//! A 10-minute input comes out as segments that tile its timeline exactly, whose lengths (by
//! granule position) sum to the input length within one 20 ms frame, and that an independent
//! decoder (opus-tools) accepts with exactly the advertised number of samples.

use std::path::Path;

use chronote_e2e::{
    chronote, lengthen, opusdec_samples, opusinfo_ok, speech_wav, spool_list, summary, u,
};

const FRAME_48K: u64 = 960;

fn record_file(input: &Path, spool: &Path, segment_secs: u32) -> serde_json::Value {
    let out = chronote()
        .args(["record", "--json", "--min-free-bytes", "0"])
        .args(["--segment-secs", &segment_secs.to_string()])
        .arg("--input")
        .arg(input)
        .arg("--spool")
        .arg(spool)
        .output()
        .expect("run chronote record");
    assert!(
        out.status.success(),
        "record failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    summary(&out)
}

#[test]
fn ten_minutes_at_44k1_tile_exactly_and_decode_independently() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 44.1 kHz input exercises the resampler; espeak speech gives real pauses to cut at.
    let clip = speech_wav(
        dir.path(),
        "clip",
        "Good morning everyone. Let us review the roadmap. Action item: the design team will send the budget by Friday.",
        "en-us",
        44_100,
    );
    let input = dir.path().join("ten-minutes.wav");
    lengthen(&clip, &input, 600);
    let frames = u64::from(hound::WavReader::open(&input).expect("input").duration());
    assert_eq!(frames, 600 * 44_100, "sox produced exactly ten minutes");
    let input_48k = frames * 48_000 / 44_100;

    let spool = dir.path().join("spool");
    let summary = record_file(&input, &spool, 30);
    let recordings = spool_list(&spool);
    assert_eq!(recordings.len(), 1);
    let rec = &recordings[0];
    assert_eq!(rec["state"], "stopped");
    assert_eq!(rec["id"], summary["recording_id"]);
    let segments = rec["segments"].as_array().expect("segments");
    assert!(rec["gaps"].as_array().expect("gaps").is_empty(), "no gaps");

    let mut start = 0;
    for (i, seg) in segments.iter().enumerate() {
        assert_eq!(u(&seg["sequence"]), i as u64);
        assert_eq!(
            u(&seg["start_48k"]),
            start,
            "segment {i} starts where {} ended",
            i.max(1) - 1
        );
        let length = u(&seg["length_48k"]);
        let last = i + 1 == segments.len();
        if !last {
            // Cut at the quietest frame of the last 2 s before the 30 s target.
            assert!(
                (28 * 48_000..=30 * 48_000).contains(&length),
                "segment {i} is {length} samples long"
            );
            assert_eq!(length % FRAME_48K, 0, "inner segments end on a frame");
        }
        let path = Path::new(seg["path"].as_str().expect("path"));
        let info = chronote_encode::inspect(path).expect("inspect");
        assert_eq!(info.length_48k, length, "granule says what the spool says");
        assert_eq!(info.input_rate, 16_000);
        assert_eq!(info.channels, 1);
        opusinfo_ok(path);
        assert_eq!(
            opusdec_samples(path, dir.path()),
            length,
            "opusdec decodes segment {i} to exactly its length"
        );
        start += length;
    }
    let total = start;
    assert!(
        total.abs_diff(input_48k) <= FRAME_48K,
        "segments hold {total} samples, the input {input_48k}"
    );
    assert_eq!(u(&summary["duration_48k"]), total);
    assert_eq!(u(&summary["segments"]), segments.len() as u64);
    assert!(
        (20..=22).contains(&segments.len()),
        "600 s in segments of 28-30 s, got {}",
        segments.len()
    );
}

#[test]
fn every_segment_length_setting_tiles_the_timeline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = speech_wav(
        dir.path(),
        "clip",
        "One two three four five six seven.",
        "en-gb",
        22_050,
    );
    let input = dir.path().join("input.wav");
    lengthen(&clip, &input, 47);
    let frames = u64::from(hound::WavReader::open(&input).expect("input").duration());
    let input_48k = frames * 48_000 / 22_050;
    for secs in [5, 7, 46, 600] {
        let spool = dir.path().join(format!("spool-{secs}"));
        let summary = record_file(&input, &spool, secs);
        let recordings = spool_list(&spool);
        let segments = recordings[0]["segments"]
            .as_array()
            .expect("segments")
            .clone();
        let mut start = 0;
        for seg in &segments {
            assert_eq!(u(&seg["start_48k"]), start);
            assert!(u(&seg["length_48k"]) <= u64::from(secs) * 48_000);
            start += u(&seg["length_48k"]);
        }
        assert!(
            start.abs_diff(input_48k) <= FRAME_48K,
            "{secs} s: {start} vs {input_48k}"
        );
        assert_eq!(u(&summary["duration_48k"]), start);
    }
}
