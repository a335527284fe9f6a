//! The embedded engine: whisper.cpp through `whisper-rs`, on the segment's own audio.
//!
//! The model is loaded once; each concurrent transcription needs its own whisper.cpp state
//! (tens of MB of buffers), so states are pooled and bounded by
//! [`WhisperConfig::states`]. Inference is CPU-bound and runs on tokio's blocking pool.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once};

use tokio::sync::Semaphore;
use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

use crate::opus_pcm::{self, WHISPER_RATE};
use crate::{BoxFuture, TimedText, TranscribeError, TranscribeRequest, Transcriber, Transcript};

/// How the embedded engine runs.
#[derive(Debug, Clone)]
pub struct WhisperConfig {
    /// A whisper.cpp ggml model file.
    pub model_path: PathBuf,
    /// How many segments may be transcribed at the same time (one whisper.cpp state each).
    pub states: usize,
    /// CPU threads per transcription.
    pub threads: usize,
    /// Language when the request has none; tiny.en only knows English.
    pub default_language: String,
}

impl WhisperConfig {
    /// One state using every core, English by default.
    pub fn new(model_path: PathBuf) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        WhisperConfig {
            model_path,
            states: 1,
            threads: cores,
            default_language: "en".into(),
        }
    }

    /// The model at [`crate::model::default_model_path`].
    pub fn from_default_path() -> Result<Self, TranscribeError> {
        crate::model::default_model_path()
            .map(Self::new)
            .map_err(|e| TranscribeError::Permanent(e.to_string()))
    }
}

/// Sends whisper.cpp's and ggml's log lines to `tracing` instead of stderr.
pub fn route_whisper_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(whisper_rs::install_logging_hooks);
}

/// whisper.cpp behind [`Transcriber`].
pub struct WhisperTranscriber {
    context: WhisperContext,
    config: WhisperConfig,
    permits: Arc<Semaphore>,
    idle: Arc<Mutex<Vec<WhisperState>>>,
}

impl std::fmt::Debug for WhisperTranscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperTranscriber")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl WhisperTranscriber {
    /// Loads the model and creates the first state, so a bad model fails here and not at the
    /// first segment. Blocking (a second or so for tiny.en): call it before serving, or from
    /// `spawn_blocking`.
    pub fn new(config: WhisperConfig) -> Result<Self, TranscribeError> {
        let path = &config.model_path;
        if !path.is_file() {
            return Err(TranscribeError::Permanent(format!(
                "whisper model not found at {}: run `chronote model install` \
                 (or point {} at a ggml model)",
                path.display(),
                crate::model::MODEL_ENV
            )));
        }
        if config.states == 0 || config.threads == 0 {
            return Err(TranscribeError::Permanent(
                "whisper engine needs at least one state and one thread".into(),
            ));
        }
        route_whisper_logs();
        let context = WhisperContext::new_with_params(path, WhisperContextParameters::default())
            .map_err(|e| {
                TranscribeError::Permanent(format!(
                    "whisper.cpp cannot load the model {}: {e} (reinstall it with \
                     `chronote model install`)",
                    path.display()
                ))
            })?;
        let first = context
            .create_state()
            .map_err(|e| TranscribeError::Permanent(format!("whisper.cpp state: {e}")))?;
        tracing::info!(model = %path.display(), states = config.states, threads = config.threads, "whisper model loaded");
        Ok(WhisperTranscriber {
            context,
            permits: Arc::new(Semaphore::new(config.states)),
            idle: Arc::new(Mutex::new(vec![first])),
            config,
        })
    }

    pub fn config(&self) -> &WhisperConfig {
        &self.config
    }

    /// Transcribes 16 kHz mono samples on the calling thread (blocking).
    pub fn transcribe_pcm(
        &self,
        pcm: &[f32],
        language: Option<&str>,
        prompt: Option<&str>,
    ) -> Result<Transcript, TranscribeError> {
        let mut state = self.take_state()?;
        let result = run(&mut state, pcm, &self.job(language, prompt));
        self.put_state(state);
        result
    }

    fn job(&self, language: Option<&str>, prompt: Option<&str>) -> Job {
        Job {
            language: language
                .filter(|l| !l.trim().is_empty())
                .unwrap_or(&self.config.default_language)
                .to_string(),
            prompt: prompt
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string),
            threads: self.config.threads,
        }
    }

    fn take_state(&self) -> Result<WhisperState, TranscribeError> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match pooled {
            Some(s) => Ok(s),
            None => self
                .context
                .create_state()
                .map_err(|e| TranscribeError::Transient(format!("whisper.cpp state: {e}"))),
        }
    }

    fn put_state(&self, state: WhisperState) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(state);
        }
    }
}

struct Job {
    language: String,
    prompt: Option<String>,
    threads: usize,
}

fn run(state: &mut WhisperState, pcm: &[f32], job: &Job) -> Result<Transcript, TranscribeError> {
    let language = Some(job.language.clone());
    if pcm.is_empty() {
        return Ok(Transcript {
            spans: Vec::new(),
            language,
        });
    }
    let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    params.set_n_threads(i32::try_from(job.threads).unwrap_or(1));
    params.set_language(Some(&job.language));
    // Each segment stands alone apart from the explicit prompt; a pooled state must not carry
    // the previous segment (perhaps another meeting's) into this one.
    params.set_no_context(true);
    if let Some(p) = &job.prompt {
        params.set_initial_prompt(p);
    }
    params.set_print_special(false);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_timestamps(false);
    state.full(params, pcm).map_err(|e| {
        TranscribeError::Permanent(format!("whisper.cpp failed on the segment: {e}"))
    })?;
    let audio_ms = pcm.len() as u64 * 1000 / u64::from(WHISPER_RATE);
    let mut spans = Vec::new();
    for segment in state.as_iter() {
        let text = segment
            .to_str_lossy()
            .map_err(|e| TranscribeError::Permanent(format!("whisper.cpp segment text: {e}")))?
            .trim()
            .to_string();
        if text.is_empty() {
            continue;
        }
        // whisper.cpp times segments in centiseconds; keep them inside the audio.
        let start_ms = (segment.start_timestamp().max(0) as u64 * 10).min(audio_ms);
        let end_ms = (segment.end_timestamp().max(0) as u64 * 10).clamp(start_ms, audio_ms);
        spans.push(TimedText {
            start_ms,
            end_ms,
            text,
        });
    }
    Ok(Transcript { spans, language })
}

impl Transcriber for WhisperTranscriber {
    fn name(&self) -> &str {
        "whisper"
    }

    fn transcribe(
        &self,
        request: TranscribeRequest,
    ) -> BoxFuture<'_, Result<Transcript, TranscribeError>> {
        Box::pin(async move {
            let permit = self.permits.clone().acquire_owned().await.map_err(|_| {
                TranscribeError::Transient("whisper engine is shutting down".into())
            })?;
            let job = self.job(request.language.as_deref(), request.prompt.as_deref());
            let state = self.take_state()?;
            let idle = self.idle.clone();
            let audio = request.audio;
            let (state, result) = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let mut state = state;
                let result = opus_pcm::decode_16k_mono(&audio)
                    .map_err(|e| {
                        TranscribeError::Permanent(format!("segment audio cannot be decoded: {e}"))
                    })
                    .and_then(|pcm| run(&mut state, &pcm, &job));
                (state, result)
            })
            .await
            .map_err(|e| TranscribeError::Transient(format!("whisper worker stopped: {e}")))?;
            if let Ok(mut idle) = idle.lock() {
                idle.push(state);
            }
            result
        })
    }
}
