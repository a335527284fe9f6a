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
    /// Speech-to-text engine [default: $CHRONOTE_TRANSCRIBER; none: segments queue up
    /// untranscribed]. `fixed` answers after --fixed-latency-ms with text derived from the
    /// segment (tests and soaks).
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

fn transcriber(args: &ServerArgs) -> Result<Option<Arc<dyn Transcriber>>> {
    let kind = match args.transcriber {
        Some(k) => Some(k),
        None => match env("CHRONOTE_TRANSCRIBER") {
            Some(v) => Some(
                TranscriberKind::from_str(&v, true)
                    .map_err(|_| anyhow::anyhow!("CHRONOTE_TRANSCRIBER={v:?}: expected openai, whisper or fixed"))?,
            ),
            None => None,
        },
    };
    Ok(match kind {
        None => None,
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
            bail!("--transcriber whisper: the embedded whisper.cpp engine is not part of this build yet; use --transcriber openai")
        }
        Some(TranscriberKind::Fixed) => Some(Arc::new(
            chronote_transcribe::testing::FixedLatency::new(Duration::from_millis(
                args.fixed_latency_ms,
            )),
        )),
    })
}

fn summarizer(args: &ServerArgs) -> Result<Arc<dyn Summarizer>> {
    let kind = match args.summarizer {
        Some(k) => k,
        None => match env("CHRONOTE_SUMMARIZER") {
            Some(v) => SummarizerKind::from_str(&v, true)
                .map_err(|_| anyhow::anyhow!("CHRONOTE_SUMMARIZER={v:?}: expected extractive or openai"))?,
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
            let token = chronote_server::create_token(&data, &name)
                .with_context(|| format!("create a token in {}", data.display()))?;
            println!("{token}");
            Ok(())
        }
        None => {
            let transcriber = transcriber(&args)?;
            if transcriber.is_none() {
                tracing::warn!("no --transcriber: received segments wait in the queue untranscribed");
            }
            let summarizer = summarizer(&args)?;
            let mut config = ServerConfig::new(data);
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
