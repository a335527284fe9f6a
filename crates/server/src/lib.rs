//! The Chronote server: tus 1.0.0 resumable uploads of Ogg Opus segments, the recordings API,
//! bearer-token owners and their isolation.
//!
//! Embed it with [`bind`] (port 0 works; the bound address is in [`RunningServer::local_addr`])
//! or run it with [`serve`]; `chronote server` in the CLI does the latter. Tokens come from
//! [`create_token`]. Storage is a data directory: `server.db` (SQLite, module `db`, the only
//! place with SQL) and `uploads/` (module `blobs`, the only place touching upload files).
//!
//! ```no_run
//! # async fn run() -> Result<(), chronote_server::ServerError> {
//! let token = chronote_server::create_token("/tmp/srv".as_ref(), "alice")?;
//! let server = chronote_server::bind(chronote_server::ServerConfig::new("/tmp/srv")).await?;
//! println!("http://{} token {token}", server.local_addr());
//! server.shutdown().await
//! # }
//! ```
//!
//! The HTTP contract (endpoints, status codes, the one-writer policy) is described in
//! docs/ARCHITECTURE.md, section "Upload and idempotency".

mod api;
mod auth;
mod blobs;
mod checksum;
mod db;
mod error;
mod jobs;
mod limits;
mod locks;
mod metadata;
mod metrics;
mod processing;
mod progress;
mod queue;
mod segment;
mod sink;
mod tus;
mod worker;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::response::IntoResponse;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;

pub use error::ServerError;
pub use limits::ProviderLimits;
pub use processing::ProcessingConfig;

use blobs::Blobs;
use db::Db;
use locks::UploadLocks;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Holds `server.db` and `uploads/`; created if missing.
    pub data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// `Tus-Max-Size`: the largest upload accepted.
    pub max_size: u64,
    /// An incomplete upload expires this long after its last PATCH (or its creation).
    pub expiration: Duration,
    /// A PATCH body that sends nothing for this long is ended; its bytes are kept.
    pub body_idle_timeout: Duration,
    /// Base URL for `Location` headers (e.g. behind a reverse proxy); by default
    /// `http://<Host header>`.
    pub public_url: Option<String>,
    /// Off by default. On, `POST /v1/bench/sink` (bearer token required, like every endpoint)
    /// stores a plain request body in the blob store with an upload's durability and deletes
    /// it again: the plain-HTTP baseline of the goodput benchmark in crates/bench.
    pub bench_sink: bool,
    /// Transcription, rolling summaries and final notes: engines, workers, limits.
    pub processing: ProcessingConfig,
    /// Bearer token that `GET /metrics` requires (a Prometheus `authorization` credential);
    /// owner tokens are not accepted there, since metrics cover every owner. `None` serves
    /// `/metrics` without authentication, for a listener only a scraper can reach.
    pub metrics_token: Option<String>,
}

/// Default `--listen` address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8750";

impl ServerConfig {
    /// Defaults: listen on 127.0.0.1:8750, 1 GiB max size, 24 h expiration, 60 s idle timeout.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8750)),
            max_size: 1 << 30,
            expiration: Duration::from_secs(24 * 3600),
            body_idle_timeout: Duration::from_secs(60),
            public_url: None,
            bench_sink: false,
            processing: ProcessingConfig::default(),
            metrics_token: None,
        }
    }
}

/// The default data directory: `<platform data dir>/chronote/server`.
pub fn default_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "chronote").map(|d| d.data_dir().join("server"))
}

/// Shared by every handler.
#[derive(Clone)]
pub(crate) struct AppState {
    db: Arc<Db>,
    blobs: Blobs,
    locks: Arc<UploadLocks>,
    config: Arc<ServerConfig>,
    metrics: Arc<metrics::Metrics>,
    /// Wakes idle workers: a job was queued or a provider slot was freed.
    wake: Arc<Notify>,
}

impl AppState {
    /// Runs database and blob work on a blocking thread: SQLite commits fsync, and the async
    /// workers must keep serving other connections meanwhile.
    async fn blocking<T, F>(&self, f: F) -> Result<T, ServerError>
    where
        T: Send + 'static,
        F: FnOnce(&Db, &Blobs) -> Result<T, ServerError> + Send + 'static,
    {
        let db = self.db.clone();
        let blobs = self.blobs.clone();
        tokio::task::spawn_blocking(move || f(&db, &blobs))
            .await
            .map_err(|e| ServerError::Worker(e.to_string()))?
    }

    async fn db<T, F>(&self, f: F) -> Result<T, ServerError>
    where
        T: Send + 'static,
        F: FnOnce(&Db) -> Result<T, ServerError> + Send + 'static,
    {
        self.blocking(move |db, _| f(db)).await
    }
}

pub(crate) fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn open_db(data_dir: &Path) -> Result<Db, ServerError> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| ServerError::io(data_dir, "create data directory", e))?;
    Db::open(&data_dir.join("server.db"))
}

/// Creates a token for owner `name` (the owner is created on first use) and returns it. It is
/// shown only now: the database keeps its sha256.
pub fn create_token(data_dir: &Path, name: &str) -> Result<String, ServerError> {
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(ServerError::Invalid(
            "owner name must be 1-64 characters without control characters".into(),
        ));
    }
    let db = open_db(data_dir)?;
    let token = auth::generate();
    db.add_token(name, &auth::hash(&token), now_ms())?;
    Ok(token)
}

/// A server running in this process.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServerError>>,
    sweeper: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
    stop_workers: watch::Sender<bool>,
}

impl RunningServer {
    /// The address actually bound (the real port when the config asked for 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish, and returns.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let _ = self.shutdown.send(());
        self.sweeper.abort();
        stop_workers(self.stop_workers, self.workers).await;
        self.task
            .await
            .map_err(|e| ServerError::Worker(e.to_string()))?
    }

    /// Runs until the server fails (it does not stop by itself otherwise).
    pub async fn wait(mut self) -> Result<(), ServerError> {
        let result = (&mut self.task)
            .await
            .map_err(|e| ServerError::Worker(e.to_string()))?;
        self.sweeper.abort();
        stop_workers(self.stop_workers, self.workers).await;
        result
    }
}

/// Asks workers to stop and aborts the ones still inside a job after a grace period: their
/// leases are requeued by the next start of this node (or expire for another node).
async fn stop_workers(stop: watch::Sender<bool>, workers: Vec<JoinHandle<()>>) {
    let _ = stop.send(true);
    let grace = tokio::time::Instant::now() + Duration::from_millis(200);
    for mut w in workers {
        if tokio::time::timeout_at(grace, &mut w).await.is_err() {
            w.abort();
            let _ = w.await;
        }
    }
}

/// Opens the data directory, reconciles uploads a crash interrupted, binds and starts serving.
pub async fn bind(config: ServerConfig) -> Result<RunningServer, ServerError> {
    let data_dir = config.data_dir.clone();
    let (db, blobs) = tokio::task::spawn_blocking(move || {
        let db = open_db(&data_dir)?;
        let blobs = Blobs::open(&data_dir)?;
        Ok::<_, ServerError>((db, blobs))
    })
    .await
    .map_err(|e| ServerError::Worker(e.to_string()))??;
    let state = AppState {
        db: Arc::new(db),
        blobs,
        locks: Arc::new(UploadLocks::default()),
        config: Arc::new(config.clone()),
        metrics: Arc::new(metrics::Metrics::default()),
        wake: Arc::new(Notify::new()),
    };
    segment::reconcile(&state).await?;
    let node = config.processing.node.clone();
    let reset = state.db(move |db| db.reset_node_leases(&node)).await?;
    if reset > 0 {
        tracing::info!(jobs = reset, node = %config.processing.node, "requeued jobs this node held before it stopped");
    }

    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Listen {
                addr: config.listen.to_string(),
                source,
            })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServerError::Listen {
            addr: config.listen.to_string(),
            source,
        })?;
    let app = router(state.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
            .map_err(|source| ServerError::Listen {
                addr: addr.to_string(),
                source,
            })
    });
    let sweeper = tokio::spawn(segment::sweep_expired(state.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let workers = worker::start(state, stop_rx);
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "chronote server listening");
    Ok(RunningServer {
        addr,
        shutdown: tx,
        task,
        sweeper,
        workers,
        stop_workers: stop_tx,
    })
}

/// Binds and serves until the server fails.
pub async fn serve(config: ServerConfig) -> Result<(), ServerError> {
    bind(config).await?.wait().await
}

/// Requests whose headers add up to more than this get 431. hyper answers 431 itself far
/// above this (around 400 KiB); this bound is what we promise.
const MAX_HEADERS_BYTES: usize = 64 * 1024;

async fn limit_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let total: usize = request
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if total > MAX_HEADERS_BYTES {
        return error::ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request headers too large",
        )
        .into_response();
    }
    next.run(request).await
}

fn router(state: AppState) -> Router {
    let mut app = Router::new()
        .route(
            "/healthz",
            axum::routing::get(|| async { (StatusCode::OK, "ok") }),
        )
        .merge(api::routes())
        .merge(tus::routes());
    if state.config.bench_sink {
        app = app.merge(sink::routes());
    }
    app.fallback(|| async { error::ApiError::not_found() })
        .layer(axum::middleware::from_fn(limit_headers))
        .with_state(state)
}

/// `Content-Type` of JSON responses.
pub(crate) const JSON: HeaderValue = HeaderValue::from_static("application/json");
