//! `chronote server`: run the server, manage tokens.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use chronote_server::{DEFAULT_LISTEN, ServerConfig};
use chronote_summarize::Summarizer;
use chronote_transcribe::Transcriber;
use chronote_transcribe::model;
use chronote_transcribe::whisper::{WhisperConfig, WhisperTranscriber};
use clap::{Args, Subcommand, ValueEnum};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = false)]
pub struct ServerArgs {
    #[command(subcommand)]
    command: Option<ServerCommand>,
    /// Data directory (database and uploads) [default: the platform data dir + /server]
    #[arg(long, value_name = "DIR", global = true)]
    data: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port. The first stdout line is
    /// `listening on ADDR`.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Largest upload accepted (Tus-Max-Size), bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 30)]
    max_size: u64,
    /// Incomplete uploads expire this many seconds after their last PATCH.
    #[arg(long, value_name = "SECONDS", default_value_t = 24 * 3600)]
    expiration_secs: u64,
    /// Base URL for Location headers when behind a reverse proxy (e.g. https://rec.example.org).
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Speech-to-text engine [default: $CHRONOTE_TRANSCRIBER, else `whisper` when its model is
    /// installed, else `none`]. `openai`: any OpenAI-compatible server. `whisper`: whisper.cpp
    /// in this process, with the model from --whisper-model (install it with `chronote model
    /// install`). `fixed` answers after --fixed-latency-ms with text derived from the segment
    /// (tests and soaks). `none`: received segments wait in the queue untranscribed.
    #[arg(long, value_enum)]
    transcriber: Option<TranscriberKind>,
    /// Notes engine [default: $CHRONOTE_SUMMARIZER, else extractive (embedded, no key)].
    #[arg(long, value_enum)]
    summarizer: Option<SummarizerKind>,
    /// OpenAI-compatible server root for --transcriber/--summarizer openai
    /// [default: $CHRONOTE_OPENAI_BASE_URL, else https://api.openai.com].
    #[arg(long, value_name = "URL")]
    openai_base_url: Option<String>,
    /// API key for it [default: $CHRONOTE_OPENAI_API_KEY].
    #[arg(long, value_name = "KEY")]
    openai_api_key: Option<String>,
    /// Transcription model [default: $CHRONOTE_TRANSCRIBE_MODEL, else whisper-1].
    #[arg(long, value_name = "NAME")]
    transcribe_model: Option<String>,
    /// Chat model for --summarizer openai [default: $CHRONOTE_SUMMARIZE_MODEL, else the
    /// summarizer's default].
    #[arg(long, value_name = "NAME")]
    summarize_model: Option<String>,
    /// whisper.cpp ggml model for --transcriber whisper [default: $CHRONOTE_WHISPER_MODEL, else
    /// the platform data dir + /models/ggml-tiny.en.bin, where `chronote model install` puts it].
    #[arg(long, value_name = "PATH")]
    whisper_model: Option<PathBuf>,
    /// Segments --transcriber whisper transcribes at once, one whisper.cpp state (tens of MB)
    /// each; also the default of CHRONOTE_TRANSCRIBE_CONCURRENCY with this engine
    /// [default: $CHRONOTE_WHISPER_STATES, else 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    whisper_states: Option<u32>,
    /// CPU threads per whisper transcription [default: $CHRONOTE_WHISPER_THREADS, else every
    /// core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    whisper_threads: Option<u32>,
    /// Latency of --transcriber fixed, milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    fixed_latency_ms: u64,
    /// Token that GET /metrics requires [default: $CHRONOTE_METRICS_TOKEN; none: /metrics is
    /// open to anyone who can reach the listener].
    #[arg(long, value_name = "TOKEN")]
    metrics_token: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TranscriberKind {
    Openai,
    Whisper,
    Fixed,
    None,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SummarizerKind {
    Extractive,
    Openai,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn flag_or_env(flag: &Option<String>, name: &str) -> Option<String> {
    flag.clone().or_else(|| env(name))
}

type Engine = Arc<dyn Transcriber>;

/// The speech-to-text engine, and for the embedded one its state count (how many segments
/// it transcribes at once).
fn transcriber(args: &ServerArgs) -> Result<(Option<Engine>, Option<usize>)> {
    let kind = match args.transcriber {
        Some(k) => Some(k),
        None => match env("CHRONOTE_TRANSCRIBER") {
            Some(v) => Some(TranscriberKind::from_str(&v, true).map_err(|_| {
                anyhow::anyhow!(
                    "CHRONOTE_TRANSCRIBER={v:?}: expected openai, whisper, fixed or none"
                )
            })?),
            // A server that works with no setup: the embedded engine once its model is there.
            None => match whisper_model_path(args, &env) {
                Ok((path, _)) if path.is_file() => Some(TranscriberKind::Whisper),
                // A model the user named must be there; only the default location may be empty.
                Ok((path, source)) if source != ModelSource::Default => {
                    bail!(
                        "no Whisper model at {} (from {}): point it at a whisper.cpp ggml model, run \
                         `chronote model install` for the default one, or pass --transcriber none",
                        path.display(),
                        match source {
                            ModelSource::Flag => "--whisper-model",
                            _ => model::MODEL_ENV,
                        }
                    )
                }
                _ => None,
            },
        },
    };
    let mut states = None;
    let engine: Option<Engine> = match kind {
        None | Some(TranscriberKind::None) => None,
        Some(TranscriberKind::Openai) => {
            let mut config = chronote_transcribe::openai::OpenAiConfig::default();
            if let Some(url) = flag_or_env(&args.openai_base_url, "CHRONOTE_OPENAI_BASE_URL") {
                config.base_url = url;
            }
            config.api_key = flag_or_env(&args.openai_api_key, "CHRONOTE_OPENAI_API_KEY");
            if let Some(model) = flag_or_env(&args.transcribe_model, "CHRONOTE_TRANSCRIBE_MODEL") {
                config.model = model;
            }
            let engine = chronote_transcribe::openai::OpenAiTranscriber::new(config)
                .context("configure the OpenAI-compatible transcriber")?;
            Some(Arc::new(engine))
        }
        Some(TranscriberKind::Whisper) => {
            let config = whisper_config(args, env)?;
            states = Some(config.states);
            let engine = WhisperTranscriber::new(config)
                .map_err(|e| anyhow::anyhow!("--transcriber whisper: {e}"))?;
            Some(Arc::new(engine))
        }
        Some(TranscriberKind::Fixed) => {
            Some(Arc::new(chronote_transcribe::testing::FixedLatency::new(
                Duration::from_millis(args.fixed_latency_ms),
            )))
        }
    };
    Ok((engine, states))
}

/// The model path for --transcriber whisper and where it came from: --whisper-model, else
/// `$CHRONOTE_WHISPER_MODEL`, else the default install location.
fn whisper_model_path(
    args: &ServerArgs,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<(PathBuf, ModelSource)> {
    if let Some(path) = &args.whisper_model {
        return Ok((path.clone(), ModelSource::Flag));
    }
    if let Some(path) = lookup(model::MODEL_ENV) {
        return Ok((PathBuf::from(path), ModelSource::Env));
    }
    let dir = model::default_models_dir()
        .with_context(|| format!("pass --whisper-model PATH or set {}", model::MODEL_ENV))?;
    Ok((dir.join(model::MODEL_FILE), ModelSource::Default))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ModelSource {
    Flag,
    Env,
    Default,
}

/// What to run so that `path` holds a model.
fn install_hint(path: &std::path::Path, source: ModelSource) -> String {
    match source {
        // `chronote model install` installs at $CHRONOTE_WHISPER_MODEL or the default path.
        ModelSource::Env | ModelSource::Default => "run `chronote model install`".into(),
        ModelSource::Flag => match path.parent() {
            Some(dir)
                if path.file_name() == Some(std::ffi::OsStr::new(model::MODEL_FILE))
                    && !dir.as_os_str().is_empty() =>
            {
                format!("run `chronote model install --dir {}`", dir.display())
            }
            _ => format!(
                "run `{}={} chronote model install`",
                model::MODEL_ENV,
                path.display()
            ),
        },
    }
}

fn count_setting(
    flag: Option<u32>,
    name: &str,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<usize>> {
    if let Some(n) = flag {
        return Ok(Some(n as usize));
    }
    match lookup(name) {
        None => Ok(None),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => bail!("{name}={v:?}: expected a positive integer"),
        },
    }
}

/// Settings of the embedded engine from its flags and `lookup` (the environment), checking
/// that the model file is there before anything loads it.
fn whisper_config(
    args: &ServerArgs,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<WhisperConfig> {
    let (path, source) = whisper_model_path(args, &lookup)?;
    let origin = match source {
        ModelSource::Flag => "from --whisper-model",
        ModelSource::Env => "from $CHRONOTE_WHISPER_MODEL",
        ModelSource::Default => "the default location",
    };
    if !path.exists() {
        bail!(
            "--transcriber whisper: no Whisper model at {} ({origin}); {} to install Whisper \
             tiny.en there, or pass --whisper-model PATH to another whisper.cpp ggml model",
            path.display(),
            install_hint(&path, source),
        );
    }
    if !path.is_file() {
        bail!(
            "--transcriber whisper: {} ({origin}) is not a file; pass --whisper-model PATH to a \
             whisper.cpp ggml model",
            path.display()
        );
    }
    let mut config = WhisperConfig::new(path);
    if let Some(n) = count_setting(args.whisper_states, "CHRONOTE_WHISPER_STATES", &lookup)? {
        config.states = n;
    }
    if let Some(n) = count_setting(args.whisper_threads, "CHRONOTE_WHISPER_THREADS", &lookup)? {
        config.threads = n;
    }
    Ok(config)
}

fn summarizer(args: &ServerArgs) -> Result<Arc<dyn Summarizer>> {
    let kind = match args.summarizer {
        Some(k) => k,
        None => match env("CHRONOTE_SUMMARIZER") {
            Some(v) => SummarizerKind::from_str(&v, true).map_err(|_| {
                anyhow::anyhow!("CHRONOTE_SUMMARIZER={v:?}: expected extractive or openai")
            })?,
            None => SummarizerKind::Extractive,
        },
    };
    Ok(match kind {
        SummarizerKind::Extractive => Arc::new(chronote_summarize::ExtractiveSummarizer::new()),
        SummarizerKind::Openai => {
            let mut config = chronote_summarize::OpenAiChatConfig::default();
            if let Some(url) = flag_or_env(&args.openai_base_url, "CHRONOTE_OPENAI_BASE_URL") {
                config.base_url = url;
            }
            config.api_key = flag_or_env(&args.openai_api_key, "CHRONOTE_OPENAI_API_KEY");
            if let Some(model) = flag_or_env(&args.summarize_model, "CHRONOTE_SUMMARIZE_MODEL") {
                config.model = model;
            }
            Arc::new(
                chronote_summarize::OpenAiChatSummarizer::new(config)
                    .context("configure the OpenAI-compatible summarizer")?,
            )
        }
    })
}

#[derive(Subcommand)]
enum ServerCommand {
    /// Manage bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token for owner NAME and print it (only it) on stdout; it is not shown again.
    Create {
        /// Owner name; tokens with the same name share recordings.
        #[arg(long)]
        name: String,
    },
}

pub fn run(args: ServerArgs) -> Result<()> {
    let data = match args.data.clone() {
        Some(dir) => dir,
        None => chronote_server::default_data_dir()
            .context("cannot find a data directory; pass --data DIR")?,
    };
    match &args.command {
        Some(ServerCommand::Token(TokenCommand::Create { name })) => {
            let token = chronote_server::create_token(&data, name)
                .with_context(|| format!("create a token in {}", data.display()))?;
            println!("{token}");
            Ok(())
        }
        None => {
            let (transcriber, whisper_states) = transcriber(&args)?;
            if transcriber.is_none() {
                tracing::warn!(
                    "no transcriber (--transcriber none, or no Whisper model installed: run \
                     `chronote model install`): received segments wait in the queue untranscribed"
                );
            }
            let summarizer = summarizer(&args)?;
            let mut config = ServerConfig::new(data);
            // A claimed job that waits for a whisper.cpp state only holds a lease: by default
            // claim no more than the engine runs (CHRONOTE_TRANSCRIBE_CONCURRENCY still wins).
            if let Some(states) = whisper_states {
                config.processing.transcribe_limits.concurrency = states;
            }
            config.processing.transcriber = transcriber;
            config.processing.summarizer = Some(summarizer);
            config
                .processing
                .apply_env(|k| std::env::var(k).ok())
                .context("processing settings from the environment")?;
            config.metrics_token = flag_or_env(&args.metrics_token, "CHRONOTE_METRICS_TOKEN");
            config.listen = args.listen;
            config.max_size = args.max_size;
            config.expiration = Duration::from_secs(args.expiration_secs);
            config.public_url = args.public_url;
            let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
            runtime.block_on(serve(config))
        }
    }
}

async fn serve(config: ServerConfig) -> Result<()> {
    let data = config.data_dir.clone();
    let server = chronote_server::bind(config)
        .await
        .with_context(|| format!("start the server on {}", data.display()))?;
    // Tests and scripts read the bound address (port 0) from this line.
    println!("listening on {}", server.local_addr());
    std::io::stdout().flush().context("write to stdout")?;

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("install the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
    }
    server.shutdown().await.context("server shutdown")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        server: ServerArgs,
    }

    fn args(extra: &[&str]) -> ServerArgs {
        Cli::try_parse_from(std::iter::once("server").chain(extra.iter().copied()))
            .unwrap()
            .server
    }

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    /// A scratch directory of this test process, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir()
                .join(format!("chronote-server-cmd-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn whisper_model_comes_from_the_flag_then_the_environment_then_the_default() {
        let scratch = Scratch::new("precedence");
        let flag_model = scratch.0.join("flag.bin");
        let env_model = scratch.0.join("env.bin");
        std::fs::write(&flag_model, b"x").unwrap();
        std::fs::write(&env_model, b"x").unwrap();
        let env_path = env_model.to_str().unwrap();
        let env = [(model::MODEL_ENV, env_path)];

        let a = args(&["--whisper-model", flag_model.to_str().unwrap()]);
        let (path, source) = whisper_model_path(&a, &lookup(&env)).unwrap();
        assert_eq!((path, source), (flag_model.clone(), ModelSource::Flag));
        let c = whisper_config(&a, lookup(&env)).unwrap();
        assert_eq!(c.model_path, flag_model);

        let (path, source) = whisper_model_path(&args(&[]), &lookup(&env)).unwrap();
        assert_eq!((path, source), (env_model, ModelSource::Env));

        let (path, source) = whisper_model_path(&args(&[]), &lookup(&[])).unwrap();
        assert_eq!(source, ModelSource::Default);
        assert_eq!(
            path,
            model::default_models_dir().unwrap().join(model::MODEL_FILE)
        );
    }

    #[test]
    fn a_missing_model_says_to_run_chronote_model_install() {
        let scratch = Scratch::new("missing");
        let missing = scratch.0.join(model::MODEL_FILE);
        let a = args(&["--whisper-model", missing.to_str().unwrap()]);
        let e = whisper_config(&a, lookup(&[])).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "--transcriber whisper: no Whisper model at {} (from --whisper-model); run \
                 `chronote model install --dir {}` to install Whisper tiny.en there, or pass \
                 --whisper-model PATH to another whisper.cpp ggml model",
                missing.display(),
                scratch.0.display()
            )
        );

        let other = scratch.0.join("ggml-base.bin");
        let e = whisper_config(
            &args(&[]),
            lookup(&[(model::MODEL_ENV, other.to_str().unwrap())]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(&format!(
                "no Whisper model at {} (from $CHRONOTE_WHISPER_MODEL); run `chronote model \
                 install` to install Whisper tiny.en there",
                other.display()
            )),
            "{e}"
        );

        let e = whisper_config(
            &args(&["--whisper-model", other.to_str().unwrap()]),
            lookup(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(&format!(
                "run `CHRONOTE_WHISPER_MODEL={} chronote model install`",
                other.display()
            )),
            "{e}"
        );

        // A directory is not a model.
        let e = whisper_config(
            &args(&["--whisper-model", scratch.0.to_str().unwrap()]),
            lookup(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.ends_with("(from --whisper-model) is not a file; pass --whisper-model PATH to a whisper.cpp ggml model"),
            "{e}"
        );
    }

    #[test]
    fn a_model_whisper_cpp_cannot_load_fails_at_start_not_at_the_first_segment() {
        let scratch = Scratch::new("garbage");
        let garbage = scratch.0.join(model::MODEL_FILE);
        std::fs::write(&garbage, vec![7u8; 4096]).unwrap();
        let a = args(&[
            "--transcriber",
            "whisper",
            "--whisper-model",
            garbage.to_str().unwrap(),
        ]);
        let e = transcriber(&a)
            .err()
            .expect("a garbage model is refused")
            .to_string();
        assert!(e.starts_with("--transcriber whisper: "), "{e}");
        assert!(e.contains("cannot load the model"), "{e}");
        assert!(e.contains("chronote model install"), "{e}");
    }

    #[test]
    fn whisper_states_and_threads_come_from_flags_then_the_environment() {
        let scratch = Scratch::new("counts");
        let model_file = scratch.0.join("m.bin");
        std::fs::write(&model_file, b"x").unwrap();
        let m = model_file.to_str().unwrap();
        let c = whisper_config(&args(&["--whisper-model", m]), lookup(&[])).unwrap();
        let defaults = WhisperConfig::new(model_file.clone());
        assert_eq!((c.states, c.threads), (1, defaults.threads));

        let env = [
            ("CHRONOTE_WHISPER_STATES", "3"),
            ("CHRONOTE_WHISPER_THREADS", " 2 "),
        ];
        let c = whisper_config(&args(&["--whisper-model", m]), lookup(&env)).unwrap();
        assert_eq!((c.states, c.threads), (3, 2));
        let a = args(&[
            "--whisper-model",
            m,
            "--whisper-states",
            "2",
            "--whisper-threads",
            "4",
        ]);
        let c = whisper_config(&a, lookup(&env)).unwrap();
        assert_eq!((c.states, c.threads), (2, 4));

        for (name, value) in [
            ("CHRONOTE_WHISPER_STATES", "0"),
            ("CHRONOTE_WHISPER_THREADS", "many"),
        ] {
            let e = whisper_config(&args(&["--whisper-model", m]), lookup(&[(name, value)]))
                .unwrap_err()
                .to_string();
            assert_eq!(e, format!("{name}={value:?}: expected a positive integer"));
        }
        for flag in ["--whisper-states", "--whisper-threads"] {
            assert!(
                Cli::try_parse_from(["server", flag, "0"]).is_err(),
                "{flag} 0"
            );
        }
    }
}
