//! Engines for tests, soaks and benchmarks, where a real model would make timings meaningless.
//!
//! [`FixedLatency`] behaves like a provider whose every call takes the same time: it sleeps,
//! then answers with text derived from the segment alone, so a retried or repeated call gives
//! the same answer and tests can assert exact transcripts.

use std::time::Duration;

use crate::{BoxFuture, TimedText, TranscribeError, TranscribeRequest, Transcriber, Transcript};

/// A [`Transcriber`] that takes `latency` per call and returns one span covering the segment,
/// with the text `segment <fingerprint>: <length_48k> samples, <bytes> bytes` (see
/// [`FixedLatency::text_for`]). The fingerprint makes consecutive different segments say
/// different things, as speech would, so transcript assembly does not take one for an echo of
/// the other.
#[derive(Debug, Clone)]
pub struct FixedLatency {
    latency: Duration,
}

impl FixedLatency {
    /// An engine whose every call takes `latency` (zero answers at once).
    pub fn new(latency: Duration) -> Self {
        FixedLatency { latency }
    }

    /// The text this engine answers for `audio` of `length_48k` samples; the fingerprint is
    /// the 32-bit FNV-1a hash of the audio bytes in hex.
    pub fn text_for(length_48k: u64, audio: &[u8]) -> String {
        let mut h: u32 = 0x811c_9dc5;
        for b in audio {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
        format!(
            "segment {h:08x}: {length_48k} samples, {} bytes",
            audio.len()
        )
    }
}

impl Transcriber for FixedLatency {
    fn name(&self) -> &str {
        "fixed-latency"
    }

    fn transcribe(
        &self,
        request: TranscribeRequest,
    ) -> BoxFuture<'_, Result<Transcript, TranscribeError>> {
        Box::pin(async move {
            if !self.latency.is_zero() {
                tokio::time::sleep(self.latency).await;
            }
            let end_ms = request.length_48k / 48;
            Ok(Transcript {
                spans: vec![TimedText {
                    start_ms: 0,
                    end_ms,
                    text: Self::text_for(request.length_48k, &request.audio),
                }],
                language: request.language,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_deterministically_after_its_latency() {
        let engine = FixedLatency::new(Duration::from_millis(50));
        let request = TranscribeRequest {
            audio: bytes::Bytes::from_static(b"0123456789"),
            length_48k: 96_000,
            language: Some("en".into()),
            prompt: None,
        };
        let started = std::time::Instant::now();
        let first = engine.transcribe(request.clone()).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(50));
        let second = engine.transcribe(request).await.unwrap();
        assert_eq!(first, second);
        assert_eq!(
            first.spans,
            vec![TimedText {
                start_ms: 0,
                end_ms: 2000,
                // FNV-1a of "0123456789" is 0xf9808ff2.
                text: "segment f9808ff2: 96000 samples, 10 bytes".into(),
            }]
        );
        assert_eq!(first.language.as_deref(), Some("en"));
        assert_eq!(engine.name(), "fixed-latency");
    }
}
