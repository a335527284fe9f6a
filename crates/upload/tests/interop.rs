//! Interop: our tus path ([`upload_file`], plain tus without Chronote semantics) uploads to the
//! reference tus server, `@tus/server` 2 with `@tus/file-store` (npm, run by Node), through the
//! fault proxy so it must resume after cuts; the stored file is byte-identical.
//!
//! The npm packages are installed into `$HOME/.cache/chronote/peers/tus-server` on first use;
//! a failed install fails the test (it is never skipped).

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use chronote_upload::{FileUploadOptions, upload_file};
use support::proxy::{FaultPlan, FaultProxy};
use support::sha256_file;

fn peers() -> PathBuf {
    let home = std::env::var_os("HOME").expect("HOME is not set");
    let dir = PathBuf::from(home).join(".cache/chronote/peers/tus-server");
    std::fs::create_dir_all(&dir).expect("create the peers directory");
    if !dir.join("node_modules/@tus/file-store").exists() {
        let out = Command::new("npm")
            .args(["install", "--silent", "--prefix"])
            .arg(&dir)
            .args(["@tus/server@2", "@tus/file-store@2"])
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run npm ({e}): install Node 20 and npm (`make deps`)")
            });
        assert!(
            out.status.success(),
            "npm install @tus/server@2 @tus/file-store@2 failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir
}

/// Starts `@tus/server` on 127.0.0.1:0 storing into `store`; prints `listening on PORT`.
const SERVER_JS: &str = r#"
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

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_tus_server(dir: &Path, store: &Path) -> (Node, u16) {
    let script = dir.join("tus-server.mjs");
    std::fs::write(&script, SERVER_JS).expect("write the server script");
    let mut child = Command::new("node")
        .arg(&script)
        .arg(peers())
        .arg(store)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run node (install Node 20: `make deps`)");
    let stdout = child.stdout.take().expect("node stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the port");
    let port = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("@tus/server did not start: {line:?}"));
    (Node(child), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_tus_client_resumes_against_the_reference_server_through_cuts() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let (_node, port) = start_tus_server(dir.path(), &store);

    // 1 MiB of varied bytes.
    let data: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file = dir.path().join("talk.bin");
    std::fs::write(&file, &data).unwrap();

    let proxy = FaultProxy::start(
        format!("127.0.0.1:{port}").parse().unwrap(),
        0x7e57_1dea,
        FaultPlan {
            probability: 1.0,
            max_bytes_up: 400_000,
            max_bytes_down: 1_500,
            reset_share: 0.3,
            stall_share: 0.1,
            stall: Duration::from_secs(3),
        },
    )
    .await;
    let options = FileUploadOptions {
        chunk_bytes: 128 * 1024,
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(300),
        request_timeout: Duration::from_secs(2),
        max_failures: 50,
        ..FileUploadOptions::default()
    };
    let metadata = vec![
        ("filename".to_string(), "talk.bin".to_string()),
        ("note".to_string(), String::new()),
    ];
    let url = upload_file(
        &format!("{}/files", proxy.url()),
        &file,
        &metadata,
        &options,
    )
    .await
    .expect("upload to @tus/server");
    let stats = &proxy.stats;
    eprintln!(
        "{} connections, {} cuts, {} resets, {} stalls",
        stats.connections.load(Ordering::SeqCst),
        stats.cuts.load(Ordering::SeqCst),
        stats.resets.load(Ordering::SeqCst),
        stats.stalls.load(Ordering::SeqCst)
    );
    assert!(
        stats.faults() >= 3,
        "the upload was interrupted only {} times",
        stats.faults()
    );
    assert!(
        url.as_str().starts_with(&format!("{}/files/", proxy.url())),
        "{url}"
    );
    let id = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .expect("upload id")
        .to_string();
    let stored = store.join(&id);
    assert_eq!(
        std::fs::metadata(&stored).expect("stored file").len(),
        data.len() as u64
    );
    assert_eq!(sha256_file(&stored), sha256_file(&file));
    // Resumed, not restarted: each interruption cost at most the chunk in flight (plus
    // headers). Plain tus creation is not idempotent, so a creation cut before its answer
    // leaves an orphan upload: at most one per fault.
    let faults = stats.faults();
    let sent = stats.bytes_up.load(Ordering::SeqCst);
    assert!(
        sent <= data.len() as u64 + (faults + 1) * (128 * 1024 + 2_048),
        "{sent} bytes sent for {} with {faults} faults",
        data.len()
    );
    let uploads = std::fs::read_dir(&store)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_none())
        .count() as u64;
    assert!(uploads >= 1 && uploads <= faults + 1, "{uploads} uploads");
    // The file store kept our metadata, the empty value included.
    let info = std::fs::read_to_string(store.join(format!("{id}.json"))).expect("info file");
    let info: serde_json::Value = serde_json::from_str(&info).expect("info JSON");
    assert_eq!(info["metadata"]["filename"], "talk.bin");
    assert_eq!(info["size"], data.len() as u64);
}
