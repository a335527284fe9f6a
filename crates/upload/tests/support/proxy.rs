//! A fault-injecting TCP proxy: forwards to an upstream server and, per connection and by a
//! seeded RNG, cuts the connection after a random number of bytes in either direction, resets
//! it (RST), or stalls it for a while before cutting.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How often and how the proxy misbehaves.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    /// Chance that a connection gets a fault at all.
    pub probability: f64,
    /// The fault strikes after a uniform 0..=max_bytes_up bytes client -> server, or
    /// 0..=max_bytes_down bytes server -> client (responses are much smaller than requests).
    /// A connection without a fault lives on (keep-alive), so use probability 1.0 to make
    /// every connection die eventually.
    pub max_bytes_up: u64,
    pub max_bytes_down: u64,
    /// Of the faults: share that are resets, share that are stalls (the rest are clean cuts).
    pub reset_share: f64,
    pub stall_share: f64,
    /// How long a stall holds the connection before cutting it.
    pub stall: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Cut,
    Reset,
    Stall,
}

#[derive(Debug, Clone, Copy)]
struct Fault {
    upstream: bool,
    after: u64,
    action: Action,
}

/// Counts of what the proxy did.
#[derive(Debug, Default)]
pub struct ProxyStats {
    pub connections: AtomicU64,
    pub cuts: AtomicU64,
    pub resets: AtomicU64,
    pub stalls: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
}

impl ProxyStats {
    /// Every interrupted connection, whatever the way.
    pub fn faults(&self) -> u64 {
        self.cuts.load(Ordering::SeqCst)
            + self.resets.load(Ordering::SeqCst)
            + self.stalls.load(Ordering::SeqCst)
    }
}

pub struct FaultProxy {
    addr: SocketAddr,
    pub stats: Arc<ProxyStats>,
    enabled: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts on 127.0.0.1:0. The seed is printed so a failing run can be replayed
    /// (`CHRONOTE_FAULT_SEED=<seed>` overrides the one given).
    pub async fn start(upstream: SocketAddr, seed: u64, plan: FaultPlan) -> FaultProxy {
        let seed = std::env::var("CHRONOTE_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(seed);
        eprintln!("fault proxy seed {seed} (replay with CHRONOTE_FAULT_SEED={seed})");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let stats = Arc::new(ProxyStats::default());
        let enabled = Arc::new(AtomicBool::new(true));
        let task = {
            let stats = Arc::clone(&stats);
            let enabled = Arc::clone(&enabled);
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed);
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    stats.connections.fetch_add(1, Ordering::SeqCst);
                    // Drawn for every connection, so the sequence does not depend on `enabled`.
                    let draw = draw_fault(&mut rng, &plan);
                    let fault = if enabled.load(Ordering::SeqCst) {
                        draw
                    } else {
                        None
                    };
                    let stats = Arc::clone(&stats);
                    let stall = plan.stall;
                    tokio::spawn(async move {
                        let _ = relay(client, upstream, fault, stall, &stats).await;
                    });
                }
            })
        };
        FaultProxy {
            addr,
            stats,
            enabled,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Turns faults on or off for new connections.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn draw_fault(rng: &mut StdRng, plan: &FaultPlan) -> Option<Fault> {
    if !rng.random_bool(plan.probability.clamp(0.0, 1.0)) {
        return None;
    }
    let upstream = rng.random_bool(0.5);
    let max = if upstream {
        plan.max_bytes_up
    } else {
        plan.max_bytes_down
    };
    let after = rng.random_range(0..=max);
    let roll: f64 = rng.random();
    let action = if roll < plan.reset_share {
        Action::Reset
    } else if roll < plan.reset_share + plan.stall_share {
        Action::Stall
    } else {
        Action::Cut
    };
    Some(Fault {
        upstream,
        after,
        action,
    })
}

async fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    fault: Option<Fault>,
    stall: Duration,
    stats: &ProxyStats,
) -> std::io::Result<()> {
    let mut server = TcpStream::connect(upstream).await?;
    if matches!(fault, Some(f) if f.action == Action::Reset) {
        // Closing with a zero linger sends RST instead of FIN.
        client.set_zero_linger()?;
        server.set_zero_linger()?;
    }
    // Borrowed halves: dropping them does not shut the socket down, so a reset stays a reset.
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    let mut up_buf = vec![0u8; 16 * 1024];
    let mut down_buf = vec![0u8; 16 * 1024];
    let (mut up, mut down) = (0u64, 0u64);
    loop {
        let (n, upward) = tokio::select! {
            r = cr.read(&mut up_buf) => (r?, true),
            r = sr.read(&mut down_buf) => (r?, false),
        };
        if n == 0 {
            // Either side closed: HTTP/1.1 needs no half-close, so end the whole relay.
            return Ok(());
        }
        let (buf, count, writer): (&[u8], &mut u64, &mut tokio::net::tcp::WriteHalf<'_>) = if upward
        {
            (&up_buf[..n], &mut up, &mut sw)
        } else {
            (&down_buf[..n], &mut down, &mut cw)
        };
        let strike = fault.filter(|f| f.upstream == upward && *count + n as u64 >= f.after);
        let pass = match strike {
            Some(f) => (f.after - *count) as usize,
            None => n,
        };
        writer.write_all(&buf[..pass]).await?;
        *count += pass as u64;
        if upward {
            stats.bytes_up.fetch_add(pass as u64, Ordering::SeqCst);
        } else {
            stats.bytes_down.fetch_add(pass as u64, Ordering::SeqCst);
        }
        if let Some(f) = strike {
            match f.action {
                Action::Cut => stats.cuts.fetch_add(1, Ordering::SeqCst),
                Action::Reset => stats.resets.fetch_add(1, Ordering::SeqCst),
                Action::Stall => {
                    stats.stalls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(stall).await;
                    0
                }
            };
            return Ok(());
        }
    }
}
