//! How far a recording's processing has got: the contiguous transcript end, lag, and what is
//! missing. Pure logic over the rows `db::Db::progress` returns.

use std::collections::BTreeMap;

use chronote_assemble::{AssembleConfig, SegmentText, Utterance, assemble};
use chronote_transcribe::TimedText;

use crate::db::{RecordingRow, SegmentProgress};
use crate::jobs::JobState;

/// A recording's processing state at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    /// Segments received.
    pub received: u64,
    /// Segments with a stored transcript.
    pub transcribed: u64,
    /// Segments whose transcription was given up on.
    pub dead: u64,
    /// Segments whose transcription is not finished yet.
    pub pending: u64,
    /// Sequence numbers absent below the final (or highest received) sequence, all tracks.
    pub missing: u64,
    /// End of received audio on the recording timeline (ms).
    pub received_end_ms: u64,
    /// The contiguous transcript end (docs/ARCHITECTURE.md, "Transcript assembly"), capped at
    /// `received_end_ms`.
    pub contiguous_end_ms: u64,
    /// The recording is stopped and every segment up to the final sequences was received.
    pub all_received: bool,
}

impl Progress {
    /// End of received audio minus the contiguous transcript end, in milliseconds.
    pub fn lag_ms(&self) -> u64 {
        self.received_end_ms.saturating_sub(self.contiguous_end_ms)
    }

    /// Everything received is transcribed or given up on, and nothing is missing.
    pub fn settled(&self) -> bool {
        self.all_received && self.pending == 0
    }

    /// Segments that will not contribute text: missing or dead (or, after a deadline, pending).
    pub fn untranscribed(&self) -> u64 {
        self.missing + self.dead + self.pending
    }
}

fn end_ms(s: &SegmentProgress) -> u64 {
    (s.start_48k.saturating_add(s.length_48k)) / 48
}

fn finished(s: &SegmentProgress) -> bool {
    s.job.is_some_and(JobState::is_finished)
}

/// Computes the progress of `rec` from its segments (any order).
pub fn compute(rec: &RecordingRow, segments: &[SegmentProgress]) -> Progress {
    let mut by_track: BTreeMap<&str, Vec<&SegmentProgress>> = BTreeMap::new();
    for t in &rec.tracks {
        by_track.entry(t.as_str()).or_default();
    }
    if let Some(finals) = &rec.final_sequences {
        for t in finals.keys() {
            by_track.entry(t.as_str()).or_default();
        }
    }
    for s in segments {
        by_track.entry(s.track.as_str()).or_default().push(s);
    }
    let stopped = rec.final_sequences.is_some();
    let mut p = Progress {
        all_received: stopped,
        ..Progress::default()
    };
    // None = this track does not limit the contiguous end.
    let mut contiguous: Option<u64> = None;
    for (track, segs) in &mut by_track {
        segs.sort_by_key(|s| s.sequence);
        let final_seq = rec
            .final_sequences
            .as_ref()
            .and_then(|f| f.get(*track).copied().flatten());
        let top = final_seq.max(segs.last().map(|s| s.sequence));
        let present: std::collections::BTreeSet<u64> = segs.iter().map(|s| s.sequence).collect();
        let missing = top.map_or(0, |top| {
            (0..=top).filter(|q| !present.contains(q)).count() as u64
        });
        p.missing += missing;
        if missing > 0 || final_seq.is_some_and(|f| segs.last().is_none_or(|s| s.sequence < f)) {
            p.all_received = false;
        }
        for s in segs.iter() {
            p.received += 1;
            p.received_end_ms = p.received_end_ms.max(end_ms(s));
            match s.job {
                Some(JobState::Done) => p.transcribed += 1,
                Some(JobState::Dead) => p.dead += 1,
                _ => p.pending += 1,
            }
        }
        // Walk from sequence 0 while segments are present and finished.
        let mut t = 0u64;
        let mut expect = 0u64;
        let mut blocked = false;
        for s in segs.iter() {
            if s.sequence != expect {
                blocked = true;
                break;
            }
            if !finished(s) {
                t = s.start_48k / 48;
                blocked = true;
                break;
            }
            t = end_ms(s);
            expect += 1;
        }
        let complete = stopped && !blocked && final_seq.is_none_or(|f| expect > f);
        if !complete {
            contiguous = Some(contiguous.map_or(t, |c| c.min(t)));
        }
    }
    p.contiguous_end_ms = contiguous
        .unwrap_or(p.received_end_ms)
        .min(p.received_end_ms);
    p
}

/// The assembled transcript of the transcribed segments among `rows`; speakers are the track
/// labels.
pub fn utterances(rows: &[SegmentProgress]) -> Vec<Utterance> {
    let segments: Vec<SegmentText> = rows
        .iter()
        .filter_map(|s| {
            let spans: Vec<TimedText> = serde_json::from_str(s.spans.as_deref()?).ok()?;
            Some(SegmentText {
                track: s.track.clone(),
                speaker: s.track.clone(),
                seq: s.sequence,
                start_48k: s.start_48k,
                length_48k: s.length_48k,
                spans,
            })
        })
        .collect();
    assemble(&segments, &AssembleConfig::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(finals: Option<&[(&str, Option<u64>)]>) -> RecordingRow {
        RecordingRow {
            id: "r".into(),
            title: String::new(),
            source: "desktop".into(),
            tracks: vec!["me".into(), "others".into()],
            started_at: String::new(),
            ended_at: None,
            final_sequences: finals.map(|f| {
                f.iter()
                    .map(|(t, s)| (t.to_string(), *s))
                    .collect::<BTreeMap<_, _>>()
            }),
        }
    }

    /// 30 s segments back to back.
    fn seg(track: &str, seq: u64, job: JobState) -> SegmentProgress {
        SegmentProgress {
            track: track.into(),
            sequence: seq,
            start_48k: seq * 1_440_000,
            length_48k: 1_440_000,
            job: Some(job),
            spans: None,
        }
    }

    #[test]
    fn contiguous_end_is_the_slowest_track() {
        use JobState::*;
        let segs = vec![
            seg("me", 0, Done),
            seg("me", 1, Done),
            seg("me", 2, Running),
            seg("others", 0, Done),
            seg("others", 1, Dead),
            seg("others", 2, Done),
            seg("others", 3, Queued),
        ];
        let p = compute(&rec(None), &segs);
        assert_eq!(p.contiguous_end_ms, 60_000);
        assert_eq!(p.received_end_ms, 120_000);
        assert_eq!(p.lag_ms(), 60_000);
        assert_eq!((p.received, p.transcribed, p.dead, p.pending), (7, 4, 1, 2));
        assert_eq!(p.missing, 0);
        assert!(!p.all_received);
    }

    #[test]
    fn a_missing_segment_stops_the_contiguous_end_at_the_previous_one() {
        use JobState::*;
        let segs = vec![
            seg("me", 0, Done),
            seg("me", 2, Done),
            seg("others", 0, Done),
            seg("others", 1, Done),
            seg("others", 2, Done),
        ];
        let p = compute(&rec(None), &segs);
        assert_eq!(p.contiguous_end_ms, 30_000);
        assert_eq!(p.missing, 1);
    }

    #[test]
    fn a_silent_track_holds_back_a_live_recording_but_not_a_stopped_one() {
        use JobState::*;
        let segs = vec![seg("me", 0, Done), seg("me", 1, Done)];
        let live = compute(&rec(None), &segs);
        assert_eq!(live.contiguous_end_ms, 0);
        let stopped = compute(&rec(Some(&[("me", Some(1)), ("others", None)])), &segs);
        assert_eq!(stopped.contiguous_end_ms, 60_000);
        assert!(stopped.all_received);
        assert!(stopped.settled());
        assert_eq!(stopped.untranscribed(), 0);
    }

    #[test]
    fn stopped_with_segments_still_to_come() {
        use JobState::*;
        let segs = vec![seg("me", 0, Done), seg("me", 1, Done)];
        let p = compute(&rec(Some(&[("me", Some(3)), ("others", None)])), &segs);
        assert!(!p.all_received);
        assert_eq!(p.missing, 2);
        assert_eq!(p.contiguous_end_ms, 60_000);
        assert!(!p.settled());
        assert_eq!(p.untranscribed(), 2);
    }

    #[test]
    fn nothing_received() {
        let p = compute(&rec(None), &[]);
        assert_eq!(p, Progress::default());
    }
}
