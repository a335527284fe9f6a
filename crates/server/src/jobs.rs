//! The job state machine: one enum, one transition function.
//!
//! Every job of the processing pipeline (transcribe a segment, summarize a window, finalize a
//! recording) is a row in the `jobs` table; `db` reads its state, asks [`transition`] for the
//! next one and writes it back in the same transaction, so an illegal move is an error and
//! never a silent no-op. The table is in docs/ARCHITECTURE.md, "Durable jobs".

use std::fmt;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobState {
    /// Waiting to be claimed once `next_attempt_ms` has passed.
    Queued,
    /// Claimed by a worker holding the lease (owner, token, expiry).
    Running,
    /// Its result is committed.
    Done,
    /// The last attempt failed; it becomes queued again at `next_attempt_ms`.
    Failed,
    /// Given up on: out of attempts, or failed in a way no retry can fix.
    Dead,
}

/// What happens to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEvent {
    /// A worker takes a queued job (fresh lease token and expiry).
    Claim,
    /// The lease holder extends its lease.
    Renew,
    /// The lease holder committed the result.
    Succeed,
    /// The attempt failed in a retryable way; `attempts` counts it, and at `max_attempts` the
    /// job is dead.
    Fail { attempts: u32, max_attempts: u32 },
    /// The attempt failed in a way no retry can fix.
    GiveUp,
    /// The job goes back to the queue without using an attempt: the provider said 429, or a
    /// finalization is still waiting for segments.
    Requeue,
    /// The lease expired without the holder finishing (crashed or stuck worker).
    LeaseExpired,
    /// A failed job's `next_attempt_ms` was reached.
    Retry,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        Some(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            "dead" => JobState::Dead,
            _ => return None,
        })
    }

    /// Every state, in the order metrics list them.
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Done,
        JobState::Failed,
        JobState::Dead,
    ];

    /// Done and dead jobs never change again.
    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Done | JobState::Dead)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event that the job's state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal job transition: {event:?} in state {from}")]
pub struct IllegalTransition {
    pub from: JobState,
    pub event: JobEvent,
}

/// The one transition function of the job state machine.
pub fn transition(from: JobState, event: JobEvent) -> Result<JobState, IllegalTransition> {
    use JobEvent as E;
    use JobState as S;
    let to = match (from, event) {
        (S::Queued, E::Claim) => S::Running,
        (S::Running, E::Renew) => S::Running,
        (S::Running, E::Succeed) => S::Done,
        (
            S::Running,
            E::Fail {
                attempts,
                max_attempts,
            },
        ) => {
            if attempts >= max_attempts {
                S::Dead
            } else {
                S::Failed
            }
        }
        (S::Running, E::GiveUp) => S::Dead,
        (S::Running, E::Requeue) => S::Queued,
        (S::Running, E::LeaseExpired) => S::Queued,
        (S::Failed, E::Retry) => S::Queued,
        _ => return Err(IllegalTransition { from, event }),
    };
    Ok(to)
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobKind {
    Transcribe,
    Summarize,
    Finalize,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Transcribe => "transcribe",
            JobKind::Summarize => "summarize",
            JobKind::Finalize => "finalize",
        }
    }

    pub fn parse(s: &str) -> Option<JobKind> {
        Some(match s {
            "transcribe" => JobKind::Transcribe,
            "summarize" => JobKind::Summarize,
            "finalize" => JobKind::Finalize,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> Vec<JobEvent> {
        vec![
            JobEvent::Claim,
            JobEvent::Renew,
            JobEvent::Succeed,
            JobEvent::Fail {
                attempts: 1,
                max_attempts: 3,
            },
            JobEvent::Fail {
                attempts: 3,
                max_attempts: 3,
            },
            JobEvent::GiveUp,
            JobEvent::Requeue,
            JobEvent::LeaseExpired,
            JobEvent::Retry,
        ]
    }

    /// The whole table: every (state, event) pair, legal ones with their target.
    #[test]
    fn every_transition_legal_and_illegal() {
        use JobState as S;
        let legal = |from: S, event: JobEvent| -> Option<S> {
            Some(match (from, event) {
                (S::Queued, JobEvent::Claim) => S::Running,
                (S::Running, JobEvent::Renew) => S::Running,
                (S::Running, JobEvent::Succeed) => S::Done,
                (S::Running, JobEvent::Fail { attempts: 1, .. }) => S::Failed,
                (S::Running, JobEvent::Fail { attempts: 3, .. }) => S::Dead,
                (S::Running, JobEvent::GiveUp) => S::Dead,
                (S::Running, JobEvent::Requeue) => S::Queued,
                (S::Running, JobEvent::LeaseExpired) => S::Queued,
                (S::Failed, JobEvent::Retry) => S::Queued,
                _ => return None,
            })
        };
        let mut legal_count = 0;
        for from in JobState::ALL {
            for event in events() {
                match (transition(from, event), legal(from, event)) {
                    (Ok(to), Some(expected)) => {
                        assert_eq!(to, expected, "{from} {event:?}");
                        legal_count += 1;
                    }
                    (Err(e), None) => assert_eq!(e, IllegalTransition { from, event }),
                    (got, expected) => panic!("{from} {event:?}: got {got:?}, want {expected:?}"),
                }
            }
        }
        assert_eq!(legal_count, 9);
    }

    #[test]
    fn finished_states_accept_nothing() {
        for from in [JobState::Done, JobState::Dead] {
            assert!(from.is_finished());
            for event in events() {
                assert!(transition(from, event).is_err(), "{from} {event:?}");
            }
        }
        for from in [JobState::Queued, JobState::Running, JobState::Failed] {
            assert!(!from.is_finished());
        }
    }

    #[test]
    fn attempts_beyond_the_limit_are_dead_too() {
        let fail = |attempts| JobEvent::Fail {
            attempts,
            max_attempts: 5,
        };
        assert_eq!(transition(JobState::Running, fail(4)), Ok(JobState::Failed));
        assert_eq!(transition(JobState::Running, fail(5)), Ok(JobState::Dead));
        assert_eq!(transition(JobState::Running, fail(9)), Ok(JobState::Dead));
    }

    #[test]
    fn names_round_trip() {
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
        for k in [JobKind::Transcribe, JobKind::Summarize, JobKind::Finalize] {
            assert_eq!(JobKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(JobState::parse("paused"), None);
        assert_eq!(JobKind::parse("x"), None);
    }
}
