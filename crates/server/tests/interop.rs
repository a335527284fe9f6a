//! Interop with real third-party tus clients, installed from their registries into
//! `$HOME/.cache/chronote/peers` on first use: tuspy (PyPI) and tus-js-client (npm). Each
//! uploads to our server, dies mid-upload, resumes in a new process from its stored URL, and
//! the stored blob is byte-identical.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn peers_dir() -> PathBuf {
    let home = std::env::var_os("HOME").expect("HOME is not set");
    let dir = PathBuf::from(home).join(".cache/chronote/peers");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(cmd: &mut Command, what: &str) -> String {
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
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// tuspy 1.1.0 under `<peers>/tuspy`, installed with pip if missing.
fn tuspy() -> PathBuf {
    let dir = peers_dir().join("tuspy");
    if !dir.join("tusclient").exists() {
        run(
            Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "--target"])
                .arg(&dir)
                .arg("tuspy==1.1.0"),
            "pip install tuspy==1.1.0 (needs python3 and pip: apt-get install python3-pip)",
        );
    }
    dir
}

/// tus-js-client 4 under `<peers>/tus-js-client`, installed with npm if missing.
fn tus_js_client() -> PathBuf {
    let dir = peers_dir().join("tus-js-client");
    if !dir.join("node_modules/tus-js-client").exists() {
        run(
            Command::new("npm")
                .args(["install", "--silent", "--prefix"])
                .arg(&dir)
                .arg("tus-js-client@4"),
            "npm install tus-js-client@4 (needs node and npm: apt-get install nodejs npm)",
        );
    }
    dir
}

const TUSPY_SCRIPT: &str = r#"
import os, sys
from tusclient import client
from tusclient.storage import filestorage
url, token, path, store, die_after = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
c = client.TusClient(url, headers={"Authorization": "Bearer " + token})
up = c.uploader(path, chunk_size=64 * 1024, store_url=True,
                url_storage=filestorage.FileStorage(store), upload_checksum=True,
                metadata={"filename": "talk.bin", "note": ""})
print("start", up.offset, flush=True)
chunks = 0
while up.offset < up.get_file_size():
    up.upload_chunk()
    chunks += 1
    if die_after and chunks == die_after:
        print("dying at", up.offset, flush=True)
        os._exit(3)
print("done", up.url, flush=True)
"#;

fn stored_blob(data: &Path, url: &str) -> Vec<u8> {
    std::fs::read(blob_path(data, url.trim())).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn tuspy_is_interrupted_resumes_and_uploads_byte_identical() {
    let peers = tuspy();
    let s = Srv::start().await;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("talk.bin");
    let data = bytes(1_000_000, 77);
    std::fs::write(&file, &data).unwrap();
    let script = work.path().join("up.py");
    std::fs::write(&script, TUSPY_SCRIPT).unwrap();
    let store = work.path().join("urls.json");
    let python = |die_after: &str| {
        let mut c = Command::new("python3");
        c.env("PYTHONPATH", &peers)
            .arg(&script)
            .arg(format!("{}/files", s.base))
            .arg(&s.token_a)
            .arg(&file)
            .arg(&store)
            .arg(die_after);
        c
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut first = python("5");
    std::thread::spawn(move || {
        let _ = tx.send(first.output());
    });
    let out = rx.await.unwrap().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("dying at 327680"), "{stdout}");

    let mut second = python("0");
    let stdout = tokio::task::spawn_blocking(move || run(&mut second, "tuspy resume"))
        .await
        .unwrap();
    assert!(
        stdout.starts_with("start 327680"),
        "resumed from the server's offset: {stdout}"
    );
    let url = stdout
        .lines()
        .last()
        .unwrap()
        .strip_prefix("done ")
        .unwrap();
    assert_eq!(
        sha256_hex(&stored_blob(s.dir.path(), url)),
        sha256_hex(&data)
    );
    let h = s.head(url.trim()).await;
    assert_eq!(header(&h, "upload-offset"), "1000000");
    assert!(header(&h, "upload-metadata").contains("note"));
}

const TUS_JS_SCRIPT: &str = r#"
const fs = require('fs');
const tus = require('tus-js-client');
const [url, token, path, store, abortAt] = process.argv.slice(2);
const file = fs.createReadStream(path);
const size = fs.statSync(path).size;
const upload = new tus.Upload(file, {
  endpoint: url,
  headers: { Authorization: 'Bearer ' + token },
  chunkSize: 64 * 1024,
  uploadSize: size,
  retryDelays: [0, 200, 500],
  metadata: { filename: 'talk.bin', empty: '' },
  urlStorage: new tus.FileUrlStorage(store),
  fingerprint: async () => 'talk-' + size,
  removeFingerprintOnSuccess: false,
  onProgress: (sent) => {
    if (Number(abortAt) > 0 && sent >= Number(abortAt)) {
      console.log('dying at ' + sent);
      process.exit(3);
    }
  },
  onError: (e) => { console.error('error ' + e); process.exit(1); },
  onSuccess: () => { console.log('done ' + upload.url); },
});
upload.findPreviousUploads().then((previous) => {
  if (previous.length > 0) {
    console.log('resuming ' + previous[0].uploadUrl);
    upload.resumeFromPreviousUpload(previous[0]);
  } else {
    console.log('fresh');
  }
  upload.start();
});
"#;

#[tokio::test(flavor = "multi_thread")]
async fn tus_js_client_is_killed_resumes_and_uploads_byte_identical() {
    let peers = tus_js_client();
    let s = Srv::start().await;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("talk.bin");
    let data = bytes(1_500_000, 78);
    std::fs::write(&file, &data).unwrap();
    let script = work.path().join("up.js");
    std::fs::write(&script, TUS_JS_SCRIPT).unwrap();
    let store = work.path().join("urls.json");
    let node = |abort_at: &str| {
        let mut c = Command::new("node");
        c.env("NODE_PATH", peers.join("node_modules"))
            .arg(&script)
            .arg(format!("{}/files", s.base))
            .arg(&s.token_a)
            .arg(&file)
            .arg(&store)
            .arg(abort_at);
        c
    };
    let mut first = node("600000");
    let out = tokio::task::spawn_blocking(move || first.output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut second = node("0");
    let stdout = tokio::task::spawn_blocking(move || run(&mut second, "tus-js-client resume"))
        .await
        .unwrap();
    assert!(stdout.starts_with("resuming "), "{stdout}");
    let url = stdout
        .lines()
        .last()
        .unwrap()
        .strip_prefix("done ")
        .unwrap()
        .to_string();
    assert_eq!(
        sha256_hex(&stored_blob(s.dir.path(), &url)),
        sha256_hex(&data)
    );
    let h = s.head(&url).await;
    assert_eq!(header(&h, "upload-offset"), "1500000");
}
