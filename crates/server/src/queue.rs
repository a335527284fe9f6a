//! The queue as `GET /v1/queue` (JSON, one owner) and `GET /metrics` (gauges, everyone) show
//! it, read from the database at request time.

use serde::Serialize;

use crate::db::Db;
use crate::error::ServerError;
use crate::jobs::{JobKind, JobState};
use crate::metrics::Gauge;
use crate::progress::{self, Progress};

/// Per-meeting series exist for at most this many active meetings (bounded cardinality).
pub const MAX_MEETING_SERIES: usize = 200;
/// A meeting that is not stopped counts as active this long after its last segment.
const ACTIVE_WINDOW_MS: i64 = 15 * 60 * 1000;

#[derive(Debug, Clone, Serialize)]
pub struct MeetingQueue {
    pub recording_id: String,
    #[serde(skip)]
    pub owner_id: i64,
    pub stopped: bool,
    pub received: u64,
    pub transcribed: u64,
    pub dead: u64,
    /// Segments waiting for transcription.
    pub backlog: u64,
    pub lag_seconds: f64,
    pub contiguous_end_ms: u64,
    pub received_end_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobCount {
    pub kind: &'static str,
    pub state: &'static str,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueSnapshot {
    pub jobs: Vec<JobCount>,
    pub oldest_queued_age_seconds: f64,
    pub meetings: Vec<MeetingQueue>,
}

pub fn meeting_status(
    recording_id: &str,
    owner_id: i64,
    stopped: bool,
    p: &Progress,
) -> MeetingQueue {
    MeetingQueue {
        recording_id: recording_id.to_string(),
        owner_id,
        stopped,
        received: p.received,
        transcribed: p.transcribed,
        dead: p.dead,
        backlog: p.pending,
        lag_seconds: p.lag_ms() as f64 / 1000.0,
        contiguous_end_ms: p.contiguous_end_ms,
        received_end_ms: p.received_end_ms,
    }
}

/// The queue of `owner` (or of everyone), every kind × state listed even at zero.
pub fn snapshot(db: &Db, owner: Option<i64>, now_ms: i64) -> Result<QueueSnapshot, ServerError> {
    let counts = db.job_counts(owner)?;
    let mut jobs = Vec::new();
    for kind in [JobKind::Transcribe, JobKind::Summarize, JobKind::Finalize] {
        for state in JobState::ALL {
            let count = counts
                .iter()
                .filter(|(k, s, _)| *k == kind && *s == state)
                .map(|(_, _, n)| *n)
                .sum();
            jobs.push(JobCount {
                kind: kind.as_str(),
                state: state.as_str(),
                count,
            });
        }
    }
    let oldest = db
        .oldest_queued_ms(owner)?
        .map_or(0.0, |t| (now_ms.saturating_sub(t)).max(0) as f64 / 1000.0);
    let mut meetings = Vec::new();
    for (owner_id, id) in
        db.active_meetings(owner, now_ms - ACTIVE_WINDOW_MS, MAX_MEETING_SERIES)?
    {
        let Some(rec) = db.recording(owner_id, &id)? else {
            continue;
        };
        let rows = db.progress(owner_id, &id, false)?;
        let p = progress::compute(&rec, &rows);
        meetings.push(meeting_status(
            &id,
            owner_id,
            rec.final_sequences.is_some(),
            &p,
        ));
    }
    Ok(QueueSnapshot {
        jobs,
        oldest_queued_age_seconds: oldest,
        meetings,
    })
}

/// The scrape-time gauges of a whole-server snapshot.
pub fn gauges(s: &QueueSnapshot) -> Vec<Gauge> {
    let meeting =
        |m: &MeetingQueue| vec![("meeting", format!("{}/{}", m.owner_id, m.recording_id))];
    vec![
        Gauge {
            name: "chronote_jobs",
            help: "Jobs by kind and state.",
            samples: s
                .jobs
                .iter()
                .map(|j| {
                    (
                        vec![("kind", j.kind.to_string()), ("state", j.state.to_string())],
                        j.count as f64,
                    )
                })
                .collect(),
        },
        Gauge {
            name: "chronote_oldest_queued_job_age_seconds",
            help: "Age of the oldest queued job (0 when none is queued).",
            samples: vec![(vec![], s.oldest_queued_age_seconds)],
        },
        Gauge {
            name: "chronote_active_meetings",
            help: "Meetings with processing in progress (each has the per-meeting series below).",
            samples: vec![(vec![], s.meetings.len() as f64)],
        },
        Gauge {
            name: "chronote_meeting_lag_seconds",
            help: "End of received audio minus end of contiguous transcribed audio, per active meeting (owner id/recording id).",
            samples: s
                .meetings
                .iter()
                .map(|m| (meeting(m), m.lag_seconds))
                .collect(),
        },
        Gauge {
            name: "chronote_meeting_backlog_segments",
            help: "Segments waiting for transcription, per active meeting.",
            samples: s
                .meetings
                .iter()
                .map(|m| (meeting(m), m.backlog as f64))
                .collect(),
        },
    ]
}
