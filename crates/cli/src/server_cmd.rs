//! `chronote server`: run the server, manage tokens.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use chronote_server::{DEFAULT_LISTEN, ServerConfig};
use clap::{Args, Subcommand};

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
    let data = match args.data {
        Some(dir) => dir,
        None => chronote_server::default_data_dir()
            .context("cannot find a data directory; pass --data DIR")?,
    };
    match args.command {
        Some(ServerCommand::Token(TokenCommand::Create { name })) => {
            let token = chronote_server::create_token(&data, &name)
                .with_context(|| format!("create a token in {}", data.display()))?;
            println!("{token}");
            Ok(())
        }
        None => {
            let mut config = ServerConfig::new(data);
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
