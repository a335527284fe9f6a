//! What the kernel says about this process: resident memory and CPU time.

use std::time::Duration;

use anyhow::{Context, Result};

/// Resident set size and its high-water mark, in bytes, from `/proc/self/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub rss: u64,
    pub hwm: u64,
}

pub fn memory() -> Result<Memory> {
    memory_at("/proc/self/status")
}

/// The same for another process (a server the benchmark started).
pub fn memory_of(pid: u32) -> Result<Memory> {
    memory_at(&format!("/proc/{pid}/status"))
}

fn memory_at(path: &str) -> Result<Memory> {
    let status = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {path} (memory figures need Linux procfs)"))?;
    Ok(Memory {
        rss: status_kb(&status, "VmRSS:").with_context(|| format!("{path} has no VmRSS line"))?
            * 1024,
        hwm: status_kb(&status, "VmHWM:").with_context(|| format!("{path} has no VmHWM line"))?
            * 1024,
    })
}

fn status_kb(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|n| n.trim().parse().ok())
}

/// User plus system CPU time of the whole process (every thread) so far.
pub fn cpu_time() -> Result<Duration> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage only writes into the struct we hand it, which lives for the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("getrusage(RUSAGE_SELF) failed");
    }
    // SAFETY: rc == 0 means the kernel filled the struct; zeroed() made every field valid anyway.
    let usage = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    Ok(tv(usage.ru_utime) + tv(usage.ru_stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        let status = "Name:\tbench\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kb(status, "VmRSS:"), Some(10240));
        assert_eq!(status_kb(status, "VmHWM:"), Some(20480));
        assert_eq!(status_kb(status, "VmSwap:"), None);
    }

    #[test]
    fn reads_this_process() {
        let m = memory().unwrap();
        assert!(m.rss > 0 && m.hwm >= m.rss);
        assert!(memory_of(std::process::id()).is_ok());
        assert!(cpu_time().is_ok());
    }
}
