//! The two servers of the ingest benchmark, each in its own process so that its resident memory
//! is its own: `chronote-server` (this binary re-executed with the hidden `server-child`
//! subcommand) and `@tus/server` 2 with `@tus/file-store` under Node, installed with npm into
//! `$HOME/.cache/chronote/peers/tus-server` exactly as crates/upload/tests/interop.rs does.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};
use chronote_server::ServerConfig;

/// The hidden subcommand that runs `chronote-server`.
pub const SERVER_CHILD_COMMAND: &str = "server-child";

/// Starts `@tus/server` on 127.0.0.1:0 storing into `store`; prints `listening on PORT`. The
/// same script as the interop test.
const TUS_SERVER_JS: &str = r#"
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
const [peers, store] = process.argv.slice(2);
const mod = (p) => import(pathToFileURL(path.join(peers, 'node_modules', p)).href);
const { Server } = await mod('@tus/server/dist/index.js');
const { FileStore } = await mod('@tus/file-store/dist/index.js');
const tus = new Server({ path: '/files', datastore: new FileStore({ directory: store }) });
const host = http.createServer((req, res) => tus.handle(req, res));
host.listen(0, '127.0.0.1', () => console.log('listening on ' + host.address().port));
"#;

/// A server process; killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
}

impl ServerProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ends the process (closing its stdin first lets `server-child` shut down cleanly).
    pub fn stop(mut self) {
        self.end();
    }

    fn end(&mut self) {
        drop(self.child.stdin.take());
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.end();
    }
}

/// Reads `listening on PORT` from the child's first stdout line.
fn await_port(mut child: Child, what: &str) -> Result<ServerProcess> {
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        bail!("{what}: no stdout pipe");
    };
    let mut line = String::new();
    let read = BufReader::new(stdout).read_line(&mut line);
    let port = read
        .ok()
        .and_then(|_| line.trim().strip_prefix("listening on "))
        .and_then(|p| p.parse::<u16>().ok());
    match port {
        Some(port) => Ok(ServerProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(anyhow!("{what} did not start (first line: {line:?})"))
        }
    }
}

/// Starts `chronote-server` on 127.0.0.1:0 over `data` in a child process.
pub fn start_chronote(data: &Path) -> Result<ServerProcess> {
    let exe = std::env::current_exe().context("cannot find this benchmark's executable")?;
    let child = Command::new(&exe)
        .arg(SERVER_CHILD_COMMAND)
        .arg("--data")
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot run {} {SERVER_CHILD_COMMAND}", exe.display()))?;
    await_port(child, "chronote-server")
}

/// The `server-child` subcommand: default `ServerConfig` over `data`, 127.0.0.1:0, until stdin
/// closes.
pub fn server_child_main(data: &Path) -> Result<()> {
    let mut config = ServerConfig::new(data);
    config.listen = ([127, 0, 0, 1], 0).into();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async move {
        let server = chronote_server::bind(config)
            .await
            .context("cannot start chronote-server")?;
        println!("listening on {}", server.local_addr().port());
        // The parent closes stdin (or dies) to stop us.
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await
        .context("the stdin watcher panicked")?;
        server.shutdown().await.context("chronote-server failed")
    })
}

/// The npm install of `@tus/server@2` and `@tus/file-store@2` (made on first use).
pub fn tus_peers() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let dir = PathBuf::from(home).join(".cache/chronote/peers/tus-server");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if !dir.join("node_modules/@tus/file-store").exists() {
        eprintln!("ingest: installing @tus/server@2 and @tus/file-store@2 with npm");
        let out = Command::new("npm")
            .args(["install", "--silent", "--prefix"])
            .arg(&dir)
            .args(["@tus/server@2", "@tus/file-store@2"])
            .output()
            .context("cannot run npm: install Node 20 and npm (`make deps`)")?;
        if !out.status.success() {
            bail!(
                "npm install @tus/server@2 @tus/file-store@2 failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(dir)
}

/// Version of an installed npm package, from its package.json.
pub fn npm_version(peers: &Path, package: &str) -> String {
    let path = peers
        .join("node_modules")
        .join(package)
        .join("package.json");
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("version").and_then(|v| v.as_str()).map(String::from))
        .unwrap_or_else(|| "unknown".into())
}

pub fn node_version() -> String {
    Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Starts `@tus/server` on 127.0.0.1:0 storing into `store`; `dir` holds the script.
pub fn start_tus_node(peers: &Path, dir: &Path, store: &Path) -> Result<ServerProcess> {
    let script = dir.join("tus-server.mjs");
    std::fs::write(&script, TUS_SERVER_JS)
        .with_context(|| format!("cannot write {}", script.display()))?;
    let child = Command::new("node")
        .arg(&script)
        .arg(peers)
        .arg(store)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot run node: install Node 20 (`make deps`)")?;
    await_port(child, "@tus/server")
}
