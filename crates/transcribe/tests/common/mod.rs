//! Shared helpers: real Ogg Opus segments from chronote-encode, espeak-ng speech, the
//! installed model.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use chronote_encode::{EncoderConfig, SegmentTags, SegmentWriter};

/// A sealed segment's bytes and its length in 48 kHz units.
pub struct Segment {
    pub bytes: Vec<u8>,
    pub length_48k: u64,
}

/// Encodes 16 kHz mono samples into a sealed Ogg Opus segment with exactly that many samples.
pub fn encode_16k(pcm: &[f32], dir: &Path) -> Segment {
    let config = EncoderConfig::default();
    assert_eq!(config.sample_rate, 16_000);
    let tags = SegmentTags {
        recording_id: "0193a5c2-7d1e-7000-8000-0000000000aa".into(),
        track: "mic".into(),
        sequence: 0,
        start_48k: 0,
        start_time: "2026-01-02T03:04:05.000Z".into(),
    };
    let part = dir.join(format!("seg-{}.part", pcm.len()));
    let sealed_path = dir.join(format!("seg-{}.opus", pcm.len()));
    let mut w = SegmentWriter::create(&part, &config, &tags).unwrap();
    let frame = w.frame_len();
    for chunk in pcm.chunks(frame) {
        let mut f = chunk.to_vec();
        f.resize(frame, 0.0);
        w.push_frame(&f).unwrap();
    }
    let sealed = w.seal(&sealed_path, pcm.len() as u64).unwrap();
    Segment {
        bytes: std::fs::read(&sealed.path).unwrap(),
        length_48k: sealed.length_48k,
    }
}

/// espeak-ng speech for `text`, resampled to 16 kHz mono with sox.
pub fn speech_16k(text: &str, voice: &str, dir: &Path) -> Vec<f32> {
    let raw = dir.join("speech.wav");
    let wav = dir.join("speech16k.wav");
    let status = Command::new("espeak-ng")
        .args(["-v", voice, "-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .expect("espeak-ng must be installed (make deps installs it)");
    assert!(status.success(), "espeak-ng failed");
    let status = Command::new("sox")
        .arg(&raw)
        .args(["-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer"])
        .arg(&wav)
        .status()
        .expect("sox must be installed (make deps installs it)");
    assert!(status.success(), "sox failed");
    let mut reader = hound::WavReader::open(&wav).unwrap();
    assert_eq!(reader.spec().sample_rate, 16_000);
    reader
        .samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect()
}

/// The installed model; a missing one fails the test with how to get it.
pub fn model_path() -> PathBuf {
    let path = chronote_transcribe::model::default_model_path().unwrap();
    assert!(
        path.is_file(),
        "the Whisper model is not installed at {}: `make test` installs it (or run \
         `chronote model install`, or set CHRONOTE_WHISPER_MODEL)",
        path.display()
    );
    path
}

/// Lower-case words with punctuation stripped.
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// The spoken sentences and the key words each transcript must contain.
///
/// Chosen because tiny.en hears them from espeak-ng alike with greedy and beam search, in
/// whisper.cpp and in faster-whisper; "the quick brown fox" comes out as "the quick roundfark"
/// under greedy decoding, so it would test the voice, not the engine.
pub const SPEECH: &str = "Good morning everyone. We decided to hire two new engineers. \
    The meeting will end at noon.";
pub const KEY_WORDS: &[&str] = &[
    "morning",
    "everyone",
    "decided",
    "hire",
    "engineers",
    "meeting",
    "noon",
];

/// Asserts every key word occurs in `text`.
pub fn assert_key_words(text: &str) {
    let got = words(text);
    let missing: Vec<&&str> = KEY_WORDS
        .iter()
        .filter(|k| !got.iter().any(|w| w == **k))
        .collect();
    assert!(
        missing.is_empty(),
        "missing {missing:?} in transcript {text:?}"
    );
}
