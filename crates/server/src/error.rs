//! Errors: [`ServerError`] for the library's own failures and [`ApiError`], the one way a
//! handler answers with a non-success status.
//!
//! The split is what keeps "no client input produces a 500" checkable: client mistakes are built
//! as [`ApiError`]s with a 4xx status at the point they are detected; only a [`ServerError`]
//! (our database or our disk failing) becomes a 500 or, for a full disk, a 503.

use std::io;
use std::path::PathBuf;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A failure of the server itself: the database, the blob store, binding the socket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// SQLite refused an operation.
    #[error("database {path}: {action}: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// A file operation in the data directory failed.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done, e.g. "append" or "fsync".
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The listening socket could not be bound or served.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Stored data does not have the shape this version writes (a bug or a manual edit).
    #[error("corrupt server state: {0}")]
    Corrupt(String),
    /// A blocking worker task panicked or was cancelled.
    #[error("worker task failed: {0}")]
    Worker(String),
    /// An argument to a library function was invalid (e.g. an empty token name).
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl ServerError {
    pub(crate) fn io(path: impl Into<PathBuf>, action: &'static str, source: io::Error) -> Self {
        ServerError::Io {
            path: path.into(),
            action,
            source,
        }
    }

    /// A full disk is a condition the client can wait out, unlike any other failure of ours.
    fn is_disk_full(&self) -> bool {
        match self {
            ServerError::Io { source, .. } => source.raw_os_error() == Some(28),
            ServerError::Db { source, .. } => matches!(
                source,
                rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::DiskFull
            ),
            _ => false,
        }
    }
}

/// A response with an error status and a JSON body `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    /// Extra headers, e.g. `WWW-Authenticate` or `Retry-After`.
    pub(crate) headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found")
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    pub(crate) fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl From<ServerError> for ApiError {
    fn from(e: ServerError) -> Self {
        if e.is_disk_full() {
            tracing::error!(error = %e, "disk full");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server storage is full, retry later",
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("30"))
        } else {
            tracing::error!(error = %e, "internal error");
            // The detail stays in the log: it names server paths the client has no business seeing.
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}
