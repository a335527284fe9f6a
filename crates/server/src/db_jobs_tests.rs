//! The job machine through the database: every transition as `db` applies it, fencing,
//! idempotent results, the claim order.

use super::*;

struct T {
    _dir: tempfile::TempDir,
    db: Db,
    owner: i64,
}

fn open() -> T {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("server.db")).unwrap();
    let owner = db.add_token("alice", b"h", 0).unwrap();
    T {
        _dir: dir,
        db,
        owner,
    }
}

impl T {
    fn recording(&self, id: &str) {
        let row = RecordingRow {
            id: id.into(),
            title: "t".into(),
            source: "desktop".into(),
            tracks: vec!["me".into()],
            started_at: "2026-01-01T00:00:00Z".into(),
            ended_at: None,
            final_sequences: None,
        };
        self.db.create_recording(self.owner, &row, 0).unwrap();
    }

    /// Records segment `seq` of track `me` as received at `now`.
    fn segment(&self, rec: &str, seq: u64, now: i64) {
        let upload = UploadRow {
            id: format!("{rec}-{seq}"),
            owner_id: self.owner,
            length: Some(10),
            offset: 10,
            metadata: vec![],
            created_ms: now,
            expires_ms: now + 1000,
            state: UploadState::Uploading,
            segment: Some(SegmentSlot {
                recording_id: rec.into(),
                track: "me".into(),
                sequence: seq,
                sha256: "00".into(),
                start_48k: seq * 1_440_000,
                length_48k: 1_440_000,
            }),
        };
        self.db.complete_upload(&upload, 10, now).unwrap();
    }

    fn claim(&self, now: i64, token: &str) -> Option<JobRow> {
        self.claim_kinds(
            now,
            token,
            &[JobKind::Transcribe, JobKind::Summarize, JobKind::Finalize],
            None,
        )
    }

    fn claim_kinds(
        &self,
        now: i64,
        token: &str,
        kinds: &[JobKind],
        cursor: Option<&(i64, String)>,
    ) -> Option<JobRow> {
        self.db
            .claim_next(now, "node-a", token, 1000, kinds, cursor)
            .unwrap()
    }
}

fn applied(c: JobChange) -> JobState {
    match c {
        JobChange::Applied(s) => s,
        JobChange::Fenced => panic!("fenced"),
    }
}

#[test]
fn a_received_segment_has_its_job_in_the_same_commit() {
    let t = open();
    t.recording("r");
    t.segment("r", 0, 5);
    t.segment("r", 0, 6); // a repeated completion adds nothing
    let jobs = t.db.jobs_of(t.owner, "r").unwrap();
    assert_eq!(jobs.len(), 1);
    let j = &jobs[0];
    assert_eq!(
        (j.kind, j.state, j.attempts, j.next_attempt_ms, j.cost_ms),
        (JobKind::Transcribe, JobState::Queued, 0, 5, 30_000)
    );
    assert_eq!((j.track.as_deref(), j.sequence), (Some("me"), Some(0)));
}

#[test]
fn claim_renew_succeed_and_fencing() {
    let t = open();
    t.recording("r");
    t.segment("r", 0, 0);
    let job = t.claim(10, "tok1").unwrap();
    assert_eq!(job.state, JobState::Running);
    assert_eq!(job.lease_expiry_ms, Some(1010));
    assert!(
        t.claim(20, "tok2").is_none(),
        "running and leased: not claimable"
    );
    assert_eq!(
        applied(t.db.renew_lease(job.id, "tok1", 2000).unwrap()),
        JobState::Running
    );
    assert!(matches!(
        t.db.renew_lease(job.id, "other", 3000).unwrap(),
        JobChange::Fenced
    ));
    assert!(
        t.claim(1500, "tok2").is_none(),
        "renewed lease holds past the first expiry"
    );
    assert!(matches!(
        t.db.commit_transcript(job.id, "other", "[]", "e", 30)
            .unwrap(),
        JobChange::Fenced
    ));
    assert_eq!(
        applied(
            t.db.commit_transcript(job.id, "tok1", "[]", "e", 30)
                .unwrap()
        ),
        JobState::Done
    );
    let done = t.db.job(job.id).unwrap().unwrap();
    assert_eq!(
        (done.state, done.attempts, done.lease_token),
        (JobState::Done, 1, None)
    );
    // Done accepts nothing more: commit, renew, fail are all fenced.
    assert!(matches!(
        t.db.commit_transcript(job.id, "tok1", "[]", "e", 40)
            .unwrap(),
        JobChange::Fenced
    ));
    assert!(matches!(
        t.db.renew_lease(job.id, "tok1", 50).unwrap(),
        JobChange::Fenced
    ));
    assert!(matches!(
        t.db.end_attempt(job.id, "tok1", JobEvent::GiveUp, 0, None, 60)
            .unwrap(),
        JobChange::Fenced
    ));
    assert!(t.claim(10_000, "tok3").is_none());
}

#[test]
fn expired_lease_is_taken_over_and_the_stale_worker_cannot_commit() {
    let t = open();
    t.recording("r");
    t.segment("r", 0, 0);
    let first = t.claim(0, "old").unwrap();
    assert!(t.claim(999, "new").is_none());
    let second = t.claim(1000, "new").unwrap();
    assert_eq!(second.id, first.id);
    assert_eq!(second.state, JobState::Running);
    assert!(matches!(
        t.db.commit_transcript(first.id, "old", "[1]", "e", 1001)
            .unwrap(),
        JobChange::Fenced
    ));
    applied(
        t.db.commit_transcript(first.id, "new", "[]", "e", 1002)
            .unwrap(),
    );
    assert_eq!(
        t.db.transcript_spans(t.owner, "r", "me", 0)
            .unwrap()
            .as_deref(),
        Some("[]")
    );
    assert_eq!(t.db.transcript_count(t.owner, "r").unwrap(), 1);
}

#[test]
fn failures_back_off_then_die_after_max_attempts() {
    let t = open();
    t.recording("r");
    t.segment("r", 0, 0);
    let max = 3;
    for attempt in 1..=max {
        let now = i64::from(attempt) * 100;
        let job = t
            .claim(now, "tok")
            .unwrap_or_else(|| panic!("attempt {attempt} claimable"));
        let state = applied(
            t.db.end_attempt(
                job.id,
                "tok",
                JobEvent::Fail {
                    attempts: attempt,
                    max_attempts: max,
                },
                now + 50,
                Some("boom"),
                now,
            )
            .unwrap(),
        );
        let row = t.db.job(job.id).unwrap().unwrap();
        assert_eq!(row.attempts, attempt);
        assert_eq!(row.error.as_deref(), Some("boom"));
        if attempt < max {
            assert_eq!(state, JobState::Failed);
            assert!(
                t.claim(now + 49, "tok").is_none(),
                "not before next_attempt_ms"
            );
        } else {
            assert_eq!(state, JobState::Dead);
            assert!(
                t.claim(1_000_000, "tok").is_none(),
                "dead jobs never run again"
            );
        }
    }
}

#[test]
fn give_up_and_requeue() {
    let t = open();
    t.recording("r");
    t.segment("r", 0, 0);
    t.segment("r", 1, 0);
    let a = t.claim(0, "a").unwrap();
    // Requeue (429): no attempt used, due again at the given time.
    assert_eq!(
        applied(
            t.db.end_attempt(a.id, "a", JobEvent::Requeue, 500, None, 0)
                .unwrap()
        ),
        JobState::Queued
    );
    let row = t.db.job(a.id).unwrap().unwrap();
    assert_eq!(
        (row.attempts, row.next_attempt_ms, row.lease_token),
        (0, 500, None)
    );
    let b = t.claim(10, "b").unwrap();
    assert_eq!(b.sequence, Some(1), "the requeued job waits for its time");
    assert_eq!(
        applied(
            t.db.end_attempt(b.id, "b", JobEvent::GiveUp, 0, Some("bad audio"), 10)
                .unwrap()
        ),
        JobState::Dead
    );
    assert_eq!(t.claim(600, "c").unwrap().id, a.id);
}

#[test]
fn node_restart_requeues_its_own_leases_only() {
    let t = open();
    t.recording("r");
    t.segment("r", 0, 0);
    t.segment("r", 1, 0);
    let mine = t.claim(0, "a").unwrap();
    let theirs =
        t.db.claim_next(0, "node-b", "b", 1000, &[JobKind::Transcribe], None)
            .unwrap()
            .unwrap();
    assert_eq!(t.db.reset_node_leases("node-a").unwrap(), 1);
    assert_eq!(t.db.job(mine.id).unwrap().unwrap().state, JobState::Queued);
    assert_eq!(
        t.db.job(theirs.id).unwrap().unwrap().state,
        JobState::Running
    );
    assert!(matches!(
        t.db.commit_transcript(mine.id, "a", "[]", "e", 1).unwrap(),
        JobChange::Fenced
    ));
}

#[test]
fn claim_order_finalize_first_round_robin_oldest_first() {
    let t = open();
    t.recording("a");
    t.recording("b");
    for seq in 0..3 {
        t.segment("a", seq, seq as i64);
    }
    t.segment("b", 0, 10);
    t.segment("b", 1, 11);
    let kinds = [JobKind::Transcribe, JobKind::Summarize, JobKind::Finalize];
    let mut cursor: Option<(i64, String)> = None;
    let mut order = Vec::new();
    for i in 0..5 {
        let j = t
            .claim_kinds(100, &format!("t{i}"), &kinds, cursor.as_ref())
            .unwrap();
        cursor = Some((j.owner_id, j.recording_id.clone()));
        order.push(format!("{}{}", j.recording_id, j.sequence.unwrap()));
        if i == 1 {
            // A stop queues finalization: it goes before everything else.
            t.db.stop_recording(t.owner, "b", &BTreeMap::new(), "2026-01-01T00:01:00Z", 100)
                .unwrap();
            let f = t.claim_kinds(100, "fin", &kinds, cursor.as_ref()).unwrap();
            assert_eq!((f.kind, f.recording_id.as_str()), (JobKind::Finalize, "b"));
        }
    }
    assert_eq!(order, ["a0", "b0", "a1", "b1", "a2"]);
    assert!(t.claim_kinds(100, "x", &kinds, cursor.as_ref()).is_none());
}

#[test]
fn claims_only_the_kinds_asked_for() {
    let t = open();
    t.recording("a");
    t.segment("a", 0, 0);
    t.db.stop_recording(t.owner, "a", &BTreeMap::new(), "2026-01-01T00:01:00Z", 5)
        .unwrap();
    let f = t
        .claim_kinds(10, "s", &[JobKind::Summarize, JobKind::Finalize], None)
        .unwrap();
    assert_eq!(f.kind, JobKind::Finalize);
    let j = t
        .claim_kinds(10, "t", &[JobKind::Transcribe], None)
        .unwrap();
    assert_eq!(j.kind, JobKind::Transcribe);
    assert!(t.claim_kinds(10, "n", &[], None).is_none());
}

#[test]
fn notes_are_versioned_and_the_first_final_records_latency() {
    let t = open();
    t.recording("a");
    assert!(t.db.enqueue_summary(t.owner, "a", 0, 600_000, 0).unwrap());
    assert!(
        !t.db
            .enqueue_summary(t.owner, "a", 600_000, 1_200_000, 0)
            .unwrap(),
        "one at a time"
    );
    let s = t.claim(1, "s").unwrap();
    assert_eq!((s.kind, s.window), (JobKind::Summarize, Some((0, 600_000))));
    assert_eq!(
        t.db.commit_notes(s.id, "s", false, None, 600_000, "{}", "x", 2)
            .unwrap(),
        Some((1, None))
    );
    assert!(
        !t.db.enqueue_summary(t.owner, "a", 0, 600_000, 3).unwrap(),
        "a window is summarized once"
    );
    t.db.stop_recording(t.owner, "a", &BTreeMap::new(), "2026-01-01T00:01:00Z", 1000)
        .unwrap();
    let f = t.claim(1000, "f").unwrap();
    assert_eq!(
        t.db.commit_notes(f.id, "stale", true, Some("ready"), 0, "{}", "x", 1250)
            .unwrap(),
        None
    );
    assert_eq!(
        t.db.commit_notes(f.id, "f", true, Some("ready"), 600_000, "{}", "x", 1250)
            .unwrap(),
        Some((2, Some(250)))
    );
    let latest = t.db.latest_notes(t.owner, "a", false).unwrap().unwrap();
    assert_eq!(
        (latest.version, latest.is_final, latest.outcome.as_deref()),
        (2, true, Some("ready"))
    );
    let rolling = t.db.latest_notes(t.owner, "a", true).unwrap().unwrap();
    assert_eq!(rolling.version, 1);
    // A later final version keeps the first latency.
    t.db.ensure_finalize(t.owner, "a", 2000).unwrap();
    let again = t.claim(2000, "g").unwrap();
    assert_eq!(
        t.db.commit_notes(again.id, "g", true, Some("ready"), 600_000, "{}", "x", 9000)
            .unwrap(),
        Some((3, None))
    );
    assert_eq!(
        t.db.stop_of(t.owner, "a")
            .unwrap()
            .unwrap()
            .notes_latency_ms,
        Some(250)
    );
}
