//! Independent checks with opus-tools (`opusinfo`, `opusdec`): our files must satisfy a decoder
//! we did not write.

mod common;

use chronote_encode::{EncoderConfig, RepairOutcome, inspect, repair};
use common::*;
use std::path::Path;
use std::process::Command;

fn tool(name: &str, args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run `{name}` ({e}): install it with `apt-get install opus-tools`")
    })
}

/// opusinfo accepts the file without warnings or errors.
fn opusinfo_clean(path: &Path) {
    let out = tool("opusinfo", &[path.as_os_str()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "opusinfo {}: {}\n{text}",
        path.display(),
        out.status
    );
    let upper = text.to_uppercase();
    assert!(
        !upper.contains("WARNING") && !upper.contains("ERROR"),
        "opusinfo {}:\n{text}",
        path.display()
    );
    assert!(text.contains("Pre-skip: 312"), "{text}");
}

/// opusdec's WAV has exactly `length_48k` samples at 48 kHz mono; returns them.
fn opusdec_samples(path: &Path) -> Vec<i16> {
    let wav = path.with_extension("wav");
    let out = tool(
        "opusdec",
        &[
            "--quiet".as_ref(),
            "--rate".as_ref(),
            "48000".as_ref(),
            path.as_os_str(),
            wav.as_os_str(),
        ],
    );
    assert!(
        out.status.success(),
        "opusdec {}: {}\n{}",
        path.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reader = hound::WavReader::open(&wav).unwrap();
    let spec = reader.spec();
    assert_eq!(spec.sample_rate, 48_000);
    assert_eq!(spec.channels, 1);
    reader.samples::<i16>().map(Result::unwrap).collect()
}

#[test]
fn opus_tools_accept_sealed_files_and_decode_the_exact_length() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(u32, u64); 6] = [
        (16_000, 32_000),
        (16_000, 31_896),
        (16_000, 19_213),
        (16_000, 1),
        (8_000, 15_999),
        (48_000, 95_001),
    ];
    for (i, (rate, keep)) in cases.into_iter().enumerate() {
        let config = EncoderConfig {
            sample_rate: rate,
            ..Default::default()
        };
        let n = config.frame_len() * 100;
        let part = dir.path().join(format!("{i}.opus.part"));
        let w = write(&part, &config, &sweep_at(rate, n), i as u64);
        let final_path = dir.path().join(format!("{i}.opus"));
        let sealed = w.seal(&final_path, keep).unwrap();
        opusinfo_clean(&final_path);
        let pcm = opusdec_samples(&final_path);
        assert_eq!(pcm.len() as u64, sealed.length_48k, "case {i}");
        assert_eq!(
            pcm.len() as u64,
            keep * u64::from(48_000 / rate),
            "case {i}"
        );
        if keep > 10_000 {
            // opusdec and our decoder agree on where the audio starts.
            let ours = chronote_encode::decode(&final_path).unwrap();
            let theirs: Vec<f32> = pcm.iter().map(|&s| f32::from(s) / 32768.0).collect();
            let c = ncc(&ours, &theirs, 0);
            assert!(c > 0.99, "case {i}: correlation with opusdec {c}");
        }
    }
}

#[test]
fn opus_tools_accept_repaired_files() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("r.opus.part");
    let w = write(
        &part,
        &EncoderConfig::default(),
        &speechlike_at(16_000, 320 * 77, 1),
        1,
    );
    drop(w);
    let mut bytes = std::fs::read(&part).unwrap();
    bytes.truncate(bytes.len() - 5); // torn last page
    std::fs::write(&part, &bytes).unwrap();
    let final_path = dir.path().join("r.opus");
    let RepairOutcome::Sealed { segment, .. } = repair(&part, &final_path).unwrap() else {
        panic!("expected audio");
    };
    // 77 frames made 3 journal pages (75 frames); tearing the third leaves 50 frames.
    assert_eq!(segment.length_48k, 50 * 960 - 312);
    assert_eq!(inspect(&final_path).unwrap().length_48k, segment.length_48k);
    opusinfo_clean(&final_path);
    assert_eq!(
        opusdec_samples(&final_path).len() as u64,
        segment.length_48k
    );
}
