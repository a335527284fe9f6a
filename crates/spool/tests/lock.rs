//! Opening: exclusive lock (same process and a second process), unusable directories.

use std::process::Command;

use chronote_spool::{Spool, SpoolConfig, SpoolError};

mod common;

const CHILD_ENV: &str = "CHRONOTE_SPOOL_TEST_CHILD_DIR";
const CHILD_OPENED: i32 = 10;
const CHILD_IN_USE: i32 = 11;
const CHILD_OTHER: i32 = 12;

/// Not a real test on its own: when the parent test re-runs this binary with `CHILD_ENV` set,
/// it tries to open that spool and reports the outcome as its exit code.
#[test]
fn child_try_open() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let code = match Spool::open(dir.as_ref(), SpoolConfig::default()) {
        Ok(_) => CHILD_OPENED,
        Err(SpoolError::InUse { .. }) => CHILD_IN_USE,
        Err(e) => {
            eprintln!("child: {e}");
            CHILD_OTHER
        }
    };
    std::process::exit(code);
}

fn run_child(dir: &std::path::Path) -> i32 {
    let exe = std::env::current_exe().unwrap();
    let status = Command::new(exe)
        .args([
            "--exact",
            "child_try_open",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .status()
        .unwrap();
    status.code().expect("child exited by signal")
}

#[test]
fn second_open_in_same_process_is_in_use_until_drop() {
    let dir = tempfile::tempdir().unwrap();
    let first = common::open(dir.path());
    match Spool::open(dir.path(), SpoolConfig::default()) {
        Err(e @ SpoolError::InUse { .. }) => {
            assert_eq!(
                e.to_string(),
                format!(
                    "spool {} is in use by another chronote process",
                    dir.path().display()
                )
            );
        }
        other => panic!("expected InUse, got {other:?}"),
    }
    drop(first);
    let again = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    assert_eq!(again.root(), dir.path());
}

#[test]
fn second_process_is_refused_while_open_and_admitted_after_drop() {
    let dir = tempfile::tempdir().unwrap();
    let spool = common::open(dir.path());
    assert_eq!(run_child(dir.path()), CHILD_IN_USE);
    drop(spool);
    assert_eq!(run_child(dir.path()), CHILD_OPENED);
    // The child's lock died with it.
    common::open(dir.path());
}

#[test]
fn uncreatable_directory_is_a_clear_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a directory").unwrap();
    let root = file.join("sub");
    match Spool::open(&root, SpoolConfig::default()) {
        Err(e @ SpoolError::CreateDir { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!(
                    "cannot create spool directory {}: ",
                    root.display()
                )),
                "{msg}"
            );
        }
        other => panic!("expected CreateDir, got {other:?}"),
    }
}

#[test]
fn open_creates_layout_and_keeps_config() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("a/b/spool");
    let config = SpoolConfig {
        max_bytes: 1000,
        min_free_bytes: 7,
    };
    let spool = Spool::open(&root, config.clone()).unwrap();
    assert!(root.join("segments").is_dir());
    assert!(root.join("spool.lock").is_file());
    assert!(root.join("spool.db").is_file());
    assert_eq!(spool.config(), &config);
    assert_eq!(
        SpoolConfig::default(),
        SpoolConfig {
            max_bytes: 2 * 1024 * 1024 * 1024,
            min_free_bytes: 512 * 1024 * 1024
        }
    );
}

#[test]
fn default_dir_ends_in_chronote_spool() {
    let dir = Spool::default_dir().unwrap();
    assert!(dir.ends_with("chronote/spool"), "{}", dir.display());
}

#[test]
fn spool_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Spool>();
}
