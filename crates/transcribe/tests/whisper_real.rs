//! The embedded engine with the real tiny.en model (installed by `make test` through
//! `chronote model install`): espeak-ng speech encoded by chronote-encode comes back with its
//! key words, timings inside the segment, concurrent states, and clear errors.

mod common;

use std::path::PathBuf;

use chronote_transcribe::whisper::{WhisperConfig, WhisperTranscriber};
use chronote_transcribe::{TranscribeError, TranscribeRequest, Transcriber};

fn request(seg: &common::Segment) -> TranscribeRequest {
    TranscribeRequest {
        audio: seg.bytes.clone().into(),
        length_48k: seg.length_48k,
        language: Some("en".into()),
        prompt: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn espeak_speech_gives_the_key_words_with_timings_inside_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    let pcm = common::speech_16k(common::SPEECH, "en-us", dir.path());
    let seg = common::encode_16k(&pcm, dir.path());
    let engine = WhisperTranscriber::new(WhisperConfig::new(common::model_path())).unwrap();
    assert_eq!(engine.name(), "whisper");

    let transcript = engine.transcribe(request(&seg)).await.unwrap();
    common::assert_key_words(&transcript.text());
    assert_eq!(transcript.language.as_deref(), Some("en"));
    let audio_ms = pcm.len() as u64 * 1000 / 16_000;
    assert!(!transcript.spans.is_empty());
    let mut last_end = 0;
    for span in &transcript.spans {
        assert!(span.start_ms <= span.end_ms, "{span:?}");
        assert!(span.end_ms <= audio_ms, "{span:?} beyond {audio_ms} ms");
        assert!(span.start_ms >= last_end.min(span.start_ms), "{span:?}");
        last_end = span.end_ms;
    }
    // The speech fills the segment, so the last span ends in its final second.
    assert!(
        last_end + 1500 >= audio_ms,
        "last span ends at {last_end} of {audio_ms} ms"
    );

    // A prompt and no language hint change nothing about the words.
    let mut with_prompt = request(&seg);
    with_prompt.language = None;
    with_prompt.prompt = Some("Meeting notes.".into());
    let again = engine.transcribe(with_prompt).await.unwrap();
    common::assert_key_words(&again.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_states_transcribe_two_segments_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = common::speech_16k(common::SPEECH, "en-us", dir.path());
    let seg_a = common::encode_16k(&a, dir.path());
    let b = common::speech_16k(
        "Hello world. This is a test of the recording system.",
        "en-us",
        dir.path(),
    );
    let seg_b = common::encode_16k(&b, dir.path());
    let mut config = WhisperConfig::new(common::model_path());
    config.states = 2;
    config.threads = 1;
    let engine = WhisperTranscriber::new(config).unwrap();
    let (ra, rb) = tokio::join!(
        engine.transcribe(request(&seg_a)),
        engine.transcribe(request(&seg_b))
    );
    common::assert_key_words(&ra.unwrap().text());
    let words = common::words(&rb.unwrap().text());
    for k in ["hello", "world", "recording", "system"] {
        assert!(words.iter().any(|w| w == k), "{k} missing in {words:?}");
    }
}

#[tokio::test]
async fn silence_gives_no_key_words_and_empty_audio_no_spans() {
    let dir = tempfile::tempdir().unwrap();
    let engine = WhisperTranscriber::new(WhisperConfig::new(common::model_path())).unwrap();
    let silence = common::encode_16k(&vec![0.0; 16_000 * 5], dir.path());
    let t = engine.transcribe(request(&silence)).await.unwrap();
    let words = common::words(&t.text());
    assert!(
        !words
            .iter()
            .any(|w| common::KEY_WORDS.contains(&w.as_str())),
        "{words:?}"
    );
    let empty = engine.transcribe_pcm(&[], None, None).unwrap();
    assert!(empty.spans.is_empty());
}

#[tokio::test]
async fn undecodable_audio_is_a_permanent_error() {
    let engine = WhisperTranscriber::new(WhisperConfig::new(common::model_path())).unwrap();
    let err = engine
        .transcribe(TranscribeRequest {
            audio: bytes::Bytes::from_static(b"this is not an ogg opus segment"),
            length_48k: 48_000,
            language: None,
            prompt: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, TranscribeError::Permanent(_)), "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("cannot be decoded"), "{err}");
}

#[test]
fn a_missing_model_names_the_path_and_the_install_command() {
    let path = PathBuf::from("/nonexistent/chronote/ggml-none.bin");
    let err = WhisperTranscriber::new(WhisperConfig::new(path)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/chronote/ggml-none.bin"), "{msg}");
    assert!(msg.contains("chronote model install"), "{msg}");
}

#[test]
fn a_file_that_is_not_a_model_is_refused_at_construction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bogus.bin");
    std::fs::write(&path, b"ggml? no, just some bytes that are not a model").unwrap();
    let err = WhisperTranscriber::new(WhisperConfig::new(path)).unwrap_err();
    assert!(err.to_string().contains("cannot load the model"), "{err}");
}
