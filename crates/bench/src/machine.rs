//! The machine and build a report was measured on. Every field degrades to "unknown" rather
//! than failing: a missing /etc/os-release must not cost a benchmark run.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub logical_cpus: usize,
    pub memory_bytes: Option<u64>,
    pub os: String,
    pub kernel: String,
    pub rustc: String,
    pub libopus: String,
    pub profile: String,
    pub load_average: String,
    pub date_utc: String,
    pub commit: String,
}

impl Machine {
    /// Reads everything now; `repo` is where `git rev-parse` runs.
    pub fn detect(repo: &Path) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        Machine {
            cpu: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".into()),
            logical_cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_bytes: mem_total(&meminfo),
            os: pretty_name(&os_release).unwrap_or_else(|| "unknown".into()),
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            rustc: command_line("rustc", &["--version"], None),
            libopus: opus::version().to_string(),
            profile: if cfg!(debug_assertions) {
                "debug (figures are not representative; use --release)".into()
            } else {
                "release".into()
            },
            load_average: read_trimmed("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
            date_utc: OffsetDateTime::now_utc()
                .format(format_description!(
                    "[year]-[month]-[day] [hour]:[minute] UTC"
                ))
                .unwrap_or_else(|_| "unknown".into()),
            commit: git_commit(repo),
        }
    }
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == "model name")
        .map(|(_, v)| v.trim().to_string())
}

fn mem_total(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

fn pretty_name(os_release: &str) -> Option<String> {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').to_string())
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn command_line(program: &str, args: &[&str], dir: Option<&Path>) -> String {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    match cmd.output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _ => "unknown".into(),
    }
}

/// Short commit hash, marked when the working tree has uncommitted changes.
fn git_commit(repo: &Path) -> String {
    let commit = command_line("git", &["rev-parse", "--short", "HEAD"], Some(repo));
    if commit == "unknown" {
        return commit;
    }
    let status = command_line(
        "git",
        &["status", "--porcelain", "--untracked-files=no"],
        Some(repo),
    );
    if status.is_empty() {
        commit
    } else {
        format!("{commit} (with uncommitted changes)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_and_os_release() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: X\nmodel name\t: Example CPU @ 2.00GHz\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("Example CPU @ 2.00GHz"));
        assert_eq!(mem_total("MemTotal:       2048 kB\n"), Some(2048 * 1024));
        let os = "NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            pretty_name(os).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }
}
