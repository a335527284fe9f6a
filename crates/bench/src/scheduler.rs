//! Scheduler throughput and overhead: a queue of transcription jobs drained by an in-process
//! `chronote-server` whose engine answers at once (`FixedLatency` of zero), so the time is the
//! scheduler's and the database's alone. Default workers (8) against 1 worker, and against
//! the bare SQLite commits a job needs at the least, runs interleaved.
//!
//! The queue is built once: a server without an engine receives every segment (its jobs wait),
//! stops, and each run starts a server with the engine on a copy of that data directory.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::ingest::{self, Segment};
use crate::procfs;
use crate::server4::{self, Counted};

/// The server's default worker count.
pub const DEFAULT_WORKERS: usize = 8;
/// Uploads in flight while building the queue.
const UPLOAD_CONCURRENCY: usize = 16;
/// The drain counts as finished when the queue says so; it is read this often once the engine
/// has seen every job.
const DONE_POLL: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerPlan {
    pub meetings: usize,
    pub segments_per_meeting: usize,
    /// Interleaved rounds of (default workers, 1 worker, bare SQLite).
    pub runs: usize,
}

impl SchedulerPlan {
    pub fn jobs(&self) -> u64 {
        (self.meetings * self.segments_per_meeting) as u64
    }
}

/// One drain of the whole queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrainRun {
    pub workers: usize,
    pub jobs: u64,
    /// From just before `bind` (workers start inside it) to the queue reporting every job done.
    pub wall: Duration,
    /// `bind` alone (open the database, reconcile uploads, listen).
    pub bind: Duration,
    /// CPU time of the whole process (server, runtime, the poll) during the drain.
    pub cpu: Duration,
    /// Summed time inside the engine over every call.
    pub engine: Duration,
    pub engine_calls: u64,
}

impl DrainRun {
    pub fn jobs_per_sec(&self) -> f64 {
        per_sec(self.jobs, self.wall)
    }
}

/// The bare-SQLite bound: the two durable commits of a job, one after the other.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SqliteRun {
    pub jobs: u64,
    pub wall: Duration,
}

impl SqliteRun {
    pub fn jobs_per_sec(&self) -> f64 {
        per_sec(self.jobs, self.wall)
    }
}

fn per_sec(n: u64, wall: Duration) -> f64 {
    let secs = wall.as_secs_f64();
    if secs > 0.0 {
        n as f64 / secs
    } else {
        f64::NAN
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SchedulerResult {
    pub meetings: usize,
    pub segments_per_meeting: usize,
    pub segment_bytes: u64,
    pub segment_48k: u64,
    /// Building the queue: every segment uploaded to a server without an engine.
    pub upload_wall: Duration,
    pub default_workers: Vec<DrainRun>,
    pub one_worker: Vec<DrainRun>,
    pub sqlite: Vec<SqliteRun>,
}

pub fn bench(plan: SchedulerPlan) -> Result<SchedulerResult> {
    if plan.jobs() == 0 || plan.runs == 0 {
        bail!("the scheduler benchmark needs at least one job and one run");
    }
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let segment = ingest::make_segment(dir.path())?;
    let template = dir.path().join("template");
    let token = chronote_server::create_token(&template, "bench")
        .context("cannot create a token for the benchmark server")?;
    let runtime = server4::runtime()?;
    let upload_wall = runtime.block_on(build_queue(&template, &token, plan, &segment))?;
    eprintln!(
        "scheduler: {} jobs queued ({} meetings x {} segments) in {:.2} s",
        plan.jobs(),
        plan.meetings,
        plan.segments_per_meeting,
        upload_wall.as_secs_f64()
    );
    let mut result = SchedulerResult {
        meetings: plan.meetings,
        segments_per_meeting: plan.segments_per_meeting,
        segment_bytes: segment.bytes.len() as u64,
        segment_48k: segment.length_48k,
        upload_wall,
        default_workers: Vec::new(),
        one_worker: Vec::new(),
        sqlite: Vec::new(),
    };
    for i in 1..=plan.runs {
        for workers in [DEFAULT_WORKERS, 1] {
            let data = dir.path().join(format!("run-{i}-{workers}"));
            server4::clone_data(&template, &data)?;
            settle();
            let run = runtime.block_on(drain(&data, &token, workers, plan.jobs()))?;
            eprintln!(
                "scheduler run {i}/{}: {workers} worker(s) drained {} jobs in {:.2} s, {:.0} jobs/s",
                plan.runs,
                run.jobs,
                run.wall.as_secs_f64(),
                run.jobs_per_sec()
            );
            std::fs::remove_dir_all(&data)
                .with_context(|| format!("cannot remove {}", data.display()))?;
            if workers == 1 {
                result.one_worker.push(run);
            } else {
                result.default_workers.push(run);
            }
        }
        let db = dir.path().join(format!("sqlite-{i}"));
        settle();
        let run = sqlite_bound(&db, plan.jobs())?;
        eprintln!(
            "scheduler run {i}/{}: bare SQLite {} jobs in {:.2} s, {:.0} jobs/s",
            plan.runs,
            run.jobs,
            run.wall.as_secs_f64(),
            run.jobs_per_sec()
        );
        std::fs::remove_dir_all(&db).with_context(|| format!("cannot remove {}", db.display()))?;
        result.sqlite.push(run);
    }
    Ok(result)
}

/// Flushes what the previous run left dirty so it is not written back during the next one.
fn settle() {
    // SAFETY: sync() takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

fn config(data: &Path) -> chronote_server::ServerConfig {
    let mut config = chronote_server::ServerConfig::new(data);
    config.listen = ([127, 0, 0, 1], 0).into();
    config
}

/// Every segment into a server without an engine: each becomes a queued transcription job.
async fn build_queue(
    data: &Path,
    token: &str,
    plan: SchedulerPlan,
    segment: &Segment,
) -> Result<Duration> {
    let server = chronote_server::bind(config(data))
        .await
        .context("cannot start the in-process chronote-server")?;
    let base = format!("http://{}", server.local_addr());
    let http = server4::http()?;
    for m in 0..plan.meetings {
        server4::create_recording(&http, &base, token, &server4::recording_id(m)).await?;
    }
    let started = Instant::now();
    // Round by round, as meetings would send them.
    let results = futures_util::stream::iter(0..plan.jobs())
        .map(|k| {
            let (http, base, token) = (http.clone(), base.clone(), token.to_string());
            let segment = segment.clone();
            let meetings = plan.meetings as u64;
            async move {
                let id = server4::recording_id((k % meetings) as usize);
                server4::upload(&http, &base, &token, &id, k / meetings, &segment).await
            }
        })
        .buffer_unordered(UPLOAD_CONCURRENCY)
        .collect::<Vec<Result<()>>>()
        .await;
    let wall = started.elapsed();
    results.into_iter().collect::<Result<Vec<()>>>()?;
    let q = server4::queue(&http, &base, token).await?;
    let queued = q.jobs("transcribe", "queued");
    server
        .shutdown()
        .await
        .context("the benchmark server failed")?;
    if queued != plan.jobs() {
        bail!(
            "{queued} transcription jobs queued after {} uploads",
            plan.jobs()
        );
    }
    Ok(wall)
}

async fn drain(data: &Path, token: &str, workers: usize, jobs: u64) -> Result<DrainRun> {
    let engine = Counted::new(Duration::ZERO);
    let mut config = config(data);
    let p = &mut config.processing;
    p.transcriber = Some(engine.clone() as Arc<dyn chronote_transcribe::Transcriber>);
    p.workers = workers;
    p.transcribe_limits.concurrency = workers;
    // The defaults (500 requests and 30,000 audio seconds per minute) would be the bottleneck.
    p.transcribe_limits.requests_per_minute = f64::INFINITY;
    p.transcribe_limits.audio_seconds_per_minute = f64::INFINITY;
    let http = server4::http()?;
    let cpu0 = procfs::cpu_time()?;
    let started = Instant::now();
    let server = chronote_server::bind(config)
        .await
        .context("cannot start the in-process chronote-server")?;
    let bind = started.elapsed();
    let base = format!("http://{}", server.local_addr());
    let limit = Duration::from_secs(600);
    while engine.calls() < jobs {
        if started.elapsed() > limit {
            bail!(
                "the engine saw {} of {jobs} jobs in {limit:?}",
                engine.calls()
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    loop {
        let q = server4::queue(&http, &base, token).await?;
        if q.jobs("transcribe", "done") >= jobs {
            break;
        }
        if started.elapsed() > limit {
            bail!(
                "{} of {jobs} jobs done in {limit:?}",
                q.jobs("transcribe", "done")
            );
        }
        tokio::time::sleep(DONE_POLL).await;
    }
    let wall = started.elapsed();
    let cpu = procfs::cpu_time()?.saturating_sub(cpu0);
    server
        .shutdown()
        .await
        .context("the benchmark server failed")?;
    Ok(DrainRun {
        workers,
        jobs,
        wall,
        bind,
        cpu,
        engine: engine.engine_time(),
        engine_calls: engine.calls(),
    })
}

/// The least durable work a job needs in the server's database settings (WAL,
/// `synchronous=FULL`): a claim commit (state and lease) and a result commit (transcript row
/// and state), one job after the other on one connection.
pub fn sqlite_bound(dir: &Path, jobs: u64) -> Result<SqliteRun> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("bound.db");
    let mut conn = rusqlite::Connection::open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .context("journal_mode=WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")
        .context("synchronous=FULL")?;
    conn.execute_batch(
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY, recording_id TEXT NOT NULL,
            state TEXT NOT NULL, lease_token TEXT, lease_expiry_ms INTEGER, finished_ms INTEGER);
         CREATE TABLE transcripts (recording_id TEXT NOT NULL, sequence INTEGER NOT NULL,
            spans TEXT NOT NULL, job_id INTEGER NOT NULL, PRIMARY KEY (recording_id, sequence));",
    )
    .context("cannot create the bound's tables")?;
    {
        let tx = conn.transaction().context("begin")?;
        for id in 0..2 * jobs {
            tx.execute(
                "INSERT INTO jobs (id, recording_id, state) VALUES (?1, ?2, 'queued')",
                rusqlite::params![id as i64, server4::recording_id((id % 10) as usize)],
            )
            .context("insert job")?;
        }
        tx.commit().context("commit jobs")?;
    }
    // The first `jobs` jobs are a warm-up, untimed: the WAL file grows to its working size
    // there, as the server's has by the time it has queued the same jobs.
    run_bound(&mut conn, 0..jobs)?;
    let started = Instant::now();
    run_bound(&mut conn, jobs..2 * jobs)?;
    Ok(SqliteRun {
        jobs,
        wall: started.elapsed(),
    })
}

fn run_bound(conn: &mut rusqlite::Connection, ids: std::ops::Range<u64>) -> Result<()> {
    let spans = "[{\"start_ms\":0,\"end_ms\":30000,\"text\":\"segment 0123abcd: 1440000 samples, 90000 bytes\"}]";
    for id in ids {
        let id = id as i64;
        let tx = conn.transaction().context("begin claim")?;
        tx.execute(
            "UPDATE jobs SET state = 'running', lease_token = ?2, lease_expiry_ms = ?3
             WHERE id = ?1",
            rusqlite::params![id, format!("{id:032x}"), id + 60_000],
        )
        .context("claim")?;
        tx.commit().context("commit claim")?;
        let tx = conn.transaction().context("begin result")?;
        tx.execute(
            "INSERT INTO transcripts (recording_id, sequence, spans, job_id)
             SELECT recording_id, id, ?2, id FROM jobs WHERE id = ?1",
            rusqlite::params![id, spans],
        )
        .context("store transcript")?;
        tx.execute(
            "UPDATE jobs SET state = 'done', finished_ms = ?2, lease_token = NULL,
                lease_expiry_ms = NULL WHERE id = ?1",
            rusqlite::params![id, id],
        )
        .context("finish job")?;
        tx.commit().context("commit result")?;
    }
    Ok(())
}
