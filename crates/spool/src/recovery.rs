//! Crash recovery: bringing the files and the database back into agreement after the process
//! died, run on every start.
//!
//! Every step is its own transaction and is written so that running it again finds nothing to
//! do; a crash during recovery is therefore recovered by the next run. Recovery never deletes
//! audio the database calls sealed: it deletes only journals whose audio is sealed, temporary
//! files, empty journals, and files of evicted segments. A journal that cannot be repaired is
//! kept as `<name>.corrupt`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::codec::{Codec, CodecError, EncodeCodec};
use crate::error::{DbContext, IoContext, SpoolError};
use crate::layout;
use crate::model::SegmentRow;
use crate::spool::{Spool, remove_file_if_exists, transition_recording};
use crate::state::{RecordingEvent, RecordingState, SegmentState};
use crate::validate;

/// What [`Spool::recover`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    /// Recordings moved from Active/Stopping to Interrupted.
    pub interrupted: Vec<String>,
    /// Open segments whose torn journal was repaired into a sealed file.
    pub repaired: Vec<SegmentRow>,
    /// Open segments whose final file already existed (the crash hit between rename and commit).
    pub adopted: Vec<SegmentRow>,
    /// Open segment rows removed: no files, an empty journal, or an unrepairable one.
    pub dropped: u64,
    /// Files deleted: journals of sealed segments, empty journals, `*.tmp`, evicted finals.
    pub removed_files: u64,
    /// Problems that need a person (unrepairable journals, files that could not be handled).
    pub errors: Vec<String>,
}

impl Spool {
    /// Brings the spool back to a consistent state after a crash; idempotent.
    ///
    /// 1. Open segments: adopt an existing final file that inspects OK; else repair the journal
    ///    (seal it, or drop it if it holds no audio; an unrepairable journal is renamed
    ///    `.corrupt` and its row dropped); else drop the row.
    /// 2. Remove journals of sealed segments, `*.tmp` files and files of evicted segments.
    /// 3. Active/Stopping recordings become Interrupted, each track ending at its last sealed
    ///    sample.
    pub fn recover(&mut self) -> Result<RecoveryReport, SpoolError> {
        self.recover_with(&EncodeCodec)
    }

    pub(crate) fn recover_with(&mut self, codec: &dyn Codec) -> Result<RecoveryReport, SpoolError> {
        let mut report = RecoveryReport::default();
        let open = self.segment_query(
            &format!(
                "SELECT {} FROM segments WHERE state = 'open' ORDER BY id",
                crate::db::SEGMENT_COLUMNS
            ),
            [],
        )?;
        for seg in open {
            if let Err(e) = self.recover_open_segment(codec, &seg, &mut report) {
                // A DB failure here would fail the next step too; report it and move on so the
                // rest of the spool still gets recovered.
                tracing::error!(segment = seg.id, error = %e, "open segment not recovered");
                report
                    .errors
                    .push(format!("segment {} ({}): {e}", seg.id, seg.path.display()));
            }
        }
        self.sweep_files(&mut report)?;
        self.interrupt_recordings(&mut report)?;
        if report != RecoveryReport::default() {
            tracing::info!(
                interrupted = report.interrupted.len(),
                repaired = report.repaired.len(),
                adopted = report.adopted.len(),
                dropped = report.dropped,
                removed_files = report.removed_files,
                errors = report.errors.len(),
                "spool recovered"
            );
        }
        Ok(report)
    }

    fn recover_open_segment(
        &mut self,
        codec: &dyn Codec,
        seg: &SegmentRow,
        report: &mut RecoveryReport,
    ) -> Result<(), SpoolError> {
        let part = seg.path.clone();
        let final_path =
            layout::final_path(&self.root, &seg.recording_id, &seg.track, seg.sequence)?;
        if exists(&final_path)? {
            match codec.inspect(&final_path) {
                Ok(info) => {
                    let row = self.commit_seal(seg.id, &info)?;
                    if remove_file_if_exists(&part)? {
                        report.removed_files += 1;
                    }
                    tracing::info!(segment = seg.id, path = %final_path.display(), "adopted sealed file");
                    report.adopted.push(row);
                    return Ok(());
                }
                Err(e) => {
                    // Not a complete sealed file (the rename is atomic, so this is damage, not
                    // a crash artefact). Keep it for a person and rebuild from the journal.
                    let kept = keep_as_corrupt(&final_path)?;
                    report.errors.push(format!(
                        "segment {}: final file {} does not inspect ({}); kept as {}",
                        seg.id,
                        final_path.display(),
                        e.message(),
                        kept.display()
                    ));
                }
            }
        }
        if !exists(&part)? {
            self.delete_segment_row(seg.id)?;
            report.dropped += 1;
            tracing::info!(segment = seg.id, "dropped open segment without files");
            return Ok(());
        }
        match codec.repair(&part, &final_path) {
            Ok(Some(info)) => {
                let row = self.commit_seal(seg.id, &info)?;
                // The journal existed (checked above); repair may already have deleted it.
                remove_file_if_exists(&part)?;
                report.removed_files += 1;
                tracing::info!(
                    segment = seg.id,
                    length_48k = info.length_48k,
                    "repaired torn journal"
                );
                report.repaired.push(row);
            }
            Ok(None) => {
                // Journal first, then row: a crash in between leaves a row the next run drops.
                remove_file_if_exists(&part)?;
                report.removed_files += 1;
                self.delete_segment_row(seg.id)?;
                report.dropped += 1;
                tracing::info!(segment = seg.id, "dropped empty journal");
            }
            Err(CodecError::DiskFull(msg)) => {
                // The journal is probably fine; keep the row open so the next run retries.
                report.errors.push(format!(
                    "segment {}: cannot repair {} now, disk full ({msg}); will retry",
                    seg.id,
                    part.display()
                ));
            }
            Err(CodecError::Failed(msg)) => {
                let kept = keep_as_corrupt(&part)?;
                self.delete_segment_row(seg.id)?;
                report.dropped += 1;
                tracing::error!(segment = seg.id, kept = %kept.display(), "unrepairable journal: {msg}");
                report.errors.push(format!(
                    "segment {}: journal {} cannot be repaired ({msg}); kept as {}",
                    seg.id,
                    part.display(),
                    kept.display()
                ));
            }
        }
        Ok(())
    }

    fn delete_segment_row(&mut self, id: i64) -> Result<(), SpoolError> {
        let dbp = &self.db_path;
        let tx = self.conn.transaction().db(dbp)?;
        // Only ever an open row: sealed rows describe audio and are never dropped.
        tx.execute(
            "DELETE FROM segments WHERE id = ?1 AND state = 'open'",
            [id],
        )
        .db(dbp)?;
        tx.commit().db(dbp)
    }

    /// Walks `segments/<recording>/<track>/` deleting files that are garbage by the DB's word.
    fn sweep_files(&mut self, report: &mut RecoveryReport) -> Result<(), SpoolError> {
        let top = layout::segments_dir(&self.root);
        for rec_dir in list_dir(&top)? {
            let Some(recording_id) = dir_name_if(&rec_dir, |n| validate::recording_id(n).is_ok())
            else {
                continue;
            };
            for track_dir in list_dir(&rec_dir)? {
                let Some(track) = dir_name_if(&track_dir, |n| validate::track_name(n).is_ok())
                else {
                    continue;
                };
                for file in list_dir(&track_dir)? {
                    self.sweep_file(&recording_id, &track, &file, report)?;
                }
            }
        }
        Ok(())
    }

    fn sweep_file(
        &mut self,
        recording_id: &str,
        track: &str,
        file: &Path,
        report: &mut RecoveryReport,
    ) -> Result<(), SpoolError> {
        let Some(name) = file.file_name().and_then(|n| n.to_str()) else {
            return Ok(());
        };
        if name.ends_with(".tmp") {
            if remove_file_if_exists(file)? {
                tracing::info!(path = %file.display(), "removed temporary file");
                report.removed_files += 1;
            }
            return Ok(());
        }
        let (seq_text, is_part) = if let Some(stem) = name.strip_suffix(".opus.part") {
            (stem, true)
        } else if let Some(stem) = name.strip_suffix(".opus") {
            (stem, false)
        } else {
            return Ok(());
        };
        let Ok(sequence) = seq_text.parse::<u64>() else {
            return Ok(());
        };
        let Some(state) = self.segment_state_at(recording_id, track, sequence)? else {
            // No row: nothing says this audio is garbage, so it stays.
            tracing::warn!(path = %file.display(), "file without a spool row left in place");
            return Ok(());
        };
        let garbage = if is_part {
            // The sealed file supersedes the journal.
            state.is_sealed_or_later()
        } else {
            state == SegmentState::Evicted
        };
        if garbage && remove_file_if_exists(file)? {
            tracing::info!(path = %file.display(), state = state.as_str(), "removed leftover file");
            report.removed_files += 1;
        }
        Ok(())
    }

    fn segment_state_at(
        &self,
        recording_id: &str,
        track: &str,
        sequence: u64,
    ) -> Result<Option<SegmentState>, SpoolError> {
        let dbp = &self.db_path;
        let Ok(seq) = i64::try_from(sequence) else {
            return Ok(None);
        };
        let row: Option<(String, Option<String>, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT state, upload_url, upload_offset FROM segments
                 WHERE recording_id = ?1 AND track = ?2 AND sequence = ?3",
                params![recording_id, track, seq],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .db(dbp)?;
        row.map(|(s, u, o)| {
            SegmentState::from_columns(&s, u, o).map_err(|e| SpoolError::Corrupt {
                path: dbp.clone(),
                detail: format!("segment {recording_id}/{track}/{sequence}: {e}"),
            })
        })
        .transpose()
    }

    /// Active/Stopping -> Interrupted, with each track's end set to its last sealed sample, in
    /// one transaction per recording.
    fn interrupt_recordings(&mut self, report: &mut RecoveryReport) -> Result<(), SpoolError> {
        let dbp = &self.db_path;
        let ids: Vec<String> = {
            let mut st = self
                .conn
                .prepare("SELECT id FROM recordings WHERE state IN (?1, ?2) ORDER BY started_unix_ms, id")
                .db(dbp)?;
            st.query_map(
                params![
                    RecordingState::Active.as_str(),
                    RecordingState::Stopping.as_str()
                ],
                |r| r.get(0),
            )
            .db(dbp)?
            .collect::<Result<_, _>>()
            .db(dbp)?
        };
        for id in ids {
            let tx = self.conn.transaction().db(dbp)?;
            transition_recording(&tx, dbp, &id, RecordingEvent::CrashDetected)?;
            tx.execute(
                "UPDATE tracks SET end_48k = (
                     SELECT COALESCE(MAX(s.start_48k + s.length_48k), 0) FROM segments s
                     WHERE s.recording_id = tracks.recording_id AND s.track = tracks.name
                       AND s.state != 'open')
                 WHERE recording_id = ?1",
                [&id],
            )
            .db(dbp)?;
            tx.commit().db(dbp)?;
            tracing::warn!(recording = %id, "recording was interrupted by a crash");
            report.interrupted.push(id);
        }
        Ok(())
    }
}

fn exists(path: &Path) -> Result<bool, SpoolError> {
    path.try_exists().io(path)
}

/// Entries of a directory, sorted; a missing directory is empty.
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, SpoolError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory =>
        {
            return Ok(Vec::new());
        }
        Err(e) => return Err(crate::error::io_error(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        out.push(entry.io(dir)?.path());
    }
    out.sort();
    Ok(out)
}

fn dir_name_if(path: &Path, ok: impl Fn(&str) -> bool) -> Option<String> {
    if !path.is_dir() {
        return None;
    }
    let name = path.file_name()?.to_str()?;
    ok(name).then(|| name.to_string())
}

/// Renames `path` to `<name>.corrupt` (or `<name>.corrupt.N` if taken) and returns the new path.
fn keep_as_corrupt(path: &Path) -> Result<PathBuf, SpoolError> {
    let mut base = path.as_os_str().to_owned();
    base.push(".corrupt");
    let mut target = PathBuf::from(&base);
    let mut n = 1;
    while target.try_exists().io(&target)? {
        let mut numbered = base.clone();
        numbered.push(format!(".{n}"));
        target = PathBuf::from(numbered);
        n += 1;
    }
    fs::rename(path, &target).io(path)?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NewRecording, RecordingSource, SealedInfo};
    use crate::spool::SpoolConfig;
    use crate::state::SegmentEvent;

    const SHA: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    /// Behaviour keyed on file contents: journals "EMPTY", "CORRUPT", "FULL", anything else is
    /// repaired into a final file of the same bytes with length = 960 per byte; finals starting
    /// with "GOOD" inspect OK.
    struct FakeCodec;

    impl Codec for FakeCodec {
        fn repair(&self, part: &Path, final_path: &Path) -> Result<Option<SealedInfo>, CodecError> {
            let data = fs::read(part).map_err(|e| CodecError::Failed(e.to_string()))?;
            match &data[..] {
                b"EMPTY" => Ok(None),
                b"CORRUPT" => Err(CodecError::Failed("no Ogg page found".into())),
                b"FULL" => Err(CodecError::DiskFull("No space left on device".into())),
                _ => {
                    fs::write(final_path, &data).map_err(|e| CodecError::Failed(e.to_string()))?;
                    Ok(Some(SealedInfo {
                        bytes: data.len() as u64,
                        length_48k: 960 * data.len() as u64,
                        sha256: SHA.into(),
                    }))
                }
            }
        }

        fn inspect(&self, path: &Path) -> Result<SealedInfo, CodecError> {
            let data = fs::read(path).map_err(|e| CodecError::Failed(e.to_string()))?;
            if data.starts_with(b"GOOD") {
                Ok(SealedInfo {
                    bytes: data.len() as u64,
                    length_48k: 480 * data.len() as u64,
                    sha256: SHA.into(),
                })
            } else {
                Err(CodecError::Failed("not an Ogg Opus file".into()))
            }
        }
    }

    fn setup(tracks: &[&str]) -> (tempfile::TempDir, Spool) {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
        spool
            .create_recording(&NewRecording {
                id: "rec".into(),
                title: "t".into(),
                source: RecordingSource::Import,
                started_at: "2025-01-01T00:00:00Z".into(),
                tracks: tracks.iter().map(|t| t.to_string()).collect(),
            })
            .unwrap();
        (dir, spool)
    }

    fn seal(spool: &mut Spool, track: &str, start: u64, len: u64) -> crate::OpenSegment {
        let seg = spool.open_segment("rec", track, start).unwrap();
        fs::write(&seg.final_path, b"GOOD sealed").unwrap();
        spool
            .seal_segment(
                seg.id,
                &SealedInfo {
                    bytes: 11,
                    length_48k: len,
                    sha256: SHA.into(),
                },
            )
            .unwrap();
        seg
    }

    #[test]
    fn recovers_every_kind_of_leftover_and_is_idempotent() {
        let (_dir, mut spool) = setup(&["a", "b", "c", "d", "e"]);
        let root = spool.root().to_path_buf();
        // a: sealed seg 0 with a leftover journal; seg 1 open whose final file already exists.
        let a0 = seal(&mut spool, "a", 0, 1000);
        fs::write(&a0.part_path, b"stale journal").unwrap();
        let a1 = spool.open_segment("rec", "a", 1000).unwrap();
        fs::write(&a1.part_path, b"journal").unwrap();
        fs::write(&a1.final_path, b"GOOD final").unwrap();
        let tmp = root.join("segments/rec/a/000001.opus.tmp");
        fs::write(&tmp, b"half a seal").unwrap();
        // b: torn journal.
        let b0 = spool.open_segment("rec", "b", 500).unwrap();
        fs::write(&b0.part_path, b"abcd").unwrap();
        // c: open, no files at all.
        spool.open_segment("rec", "c", 0).unwrap();
        // d: empty journal.
        let d0 = spool.open_segment("rec", "d", 0).unwrap();
        fs::write(&d0.part_path, b"EMPTY").unwrap();
        // e: sealed, acknowledged and evicted, but the file deletion never happened; then an
        // unrepairable journal; plus a file no row knows about.
        let e0 = seal(&mut spool, "e", 0, 2000);
        for ev in [
            SegmentEvent::BeginUpload { url: "u".into() },
            SegmentEvent::FinishUpload,
            SegmentEvent::Acknowledge,
            SegmentEvent::Evict,
        ] {
            spool.apply_segment_event(e0.id, ev).unwrap();
        }
        fs::write(&e0.final_path, b"GOOD evicted").unwrap();
        let e1 = spool.open_segment("rec", "e", 2000).unwrap();
        fs::write(&e1.part_path, b"CORRUPT").unwrap();
        let stray = root.join("segments/rec/e/000009.opus");
        fs::write(&stray, b"GOOD stray").unwrap();

        let report = spool.recover_with(&FakeCodec).unwrap();
        assert_eq!(report.interrupted, vec!["rec".to_string()]);
        assert_eq!(report.adopted.len(), 1);
        let adopted = &report.adopted[0];
        assert_eq!(
            (adopted.id, adopted.state.clone()),
            (a1.id, SegmentState::Sealed)
        );
        assert_eq!((adopted.length_48k, adopted.bytes), (480 * 10, 10));
        assert_eq!(adopted.path, a1.final_path);
        assert_eq!(report.repaired.len(), 1);
        let repaired = &report.repaired[0];
        assert_eq!(repaired.id, b0.id);
        assert_eq!(
            (repaired.start_48k, repaired.length_48k, repaired.bytes),
            (500, 3840, 4)
        );
        assert_eq!(report.dropped, 3, "no files, empty, corrupt");
        // a1 journal, b0 journal, d0 empty journal, .tmp, a0 stale journal, e0 evicted final.
        assert_eq!(report.removed_files, 6);
        assert_eq!(report.errors.len(), 1);
        let kept = root.join("segments/rec/e/000001.opus.part.corrupt");
        assert!(
            report.errors[0].contains("cannot be repaired (no Ogg page found)"),
            "{}",
            report.errors[0]
        );
        assert!(report.errors[0].contains(&kept.display().to_string()));
        assert_eq!(fs::read(&kept).unwrap(), b"CORRUPT");

        for gone in [
            &a0.part_path,
            &a1.part_path,
            &b0.part_path,
            &d0.part_path,
            &tmp,
            &e0.final_path,
            &e1.part_path,
        ] {
            assert!(!gone.exists(), "{} should be gone", gone.display());
        }
        for kept in [&a0.final_path, &a1.final_path, &b0.final_path, &stray] {
            assert!(kept.exists(), "{} should be kept", kept.display());
        }

        let states: Vec<_> = spool
            .segments("rec")
            .unwrap()
            .into_iter()
            .map(|s| (s.track, s.sequence, s.state))
            .collect();
        assert_eq!(
            states,
            vec![
                ("a".to_string(), 0, SegmentState::Sealed),
                ("a".to_string(), 1, SegmentState::Sealed),
                ("b".to_string(), 0, SegmentState::Sealed),
                ("e".to_string(), 0, SegmentState::Evicted),
            ]
        );
        let summary = spool.recording("rec").unwrap().unwrap();
        assert_eq!(summary.state, RecordingState::Interrupted);
        let ends: Vec<_> = summary
            .tracks
            .iter()
            .map(|t| (t.name.as_str(), t.end_48k))
            .collect();
        assert_eq!(
            ends,
            vec![
                ("a", Some(1000 + 4800)),
                ("b", Some(500 + 3840)),
                ("c", Some(0)),
                ("d", Some(0)),
                ("e", Some(2000)),
            ]
        );

        let before = (
            spool.segments("rec").unwrap(),
            spool.recording("rec").unwrap(),
        );
        let again = spool.recover_with(&FakeCodec).unwrap();
        assert_eq!(again, RecoveryReport::default());
        assert_eq!(
            (
                spool.segments("rec").unwrap(),
                spool.recording("rec").unwrap()
            ),
            before
        );
        assert!(kept.exists() && stray.exists());
    }

    #[test]
    fn stopping_recording_is_interrupted_and_finished_ones_are_left_alone() {
        let (_dir, mut spool) = setup(&["a"]);
        spool
            .apply_recording_event("rec", RecordingEvent::Stop)
            .unwrap();
        let report = spool.recover_with(&FakeCodec).unwrap();
        assert_eq!(report.interrupted, vec!["rec".to_string()]);
        spool
            .apply_recording_event("rec", RecordingEvent::Finish)
            .unwrap();
        assert_eq!(
            spool.recover_with(&FakeCodec).unwrap(),
            RecoveryReport::default()
        );
        assert_eq!(
            spool.recording("rec").unwrap().unwrap().state,
            RecordingState::Stopped
        );
    }

    #[test]
    fn disk_full_during_repair_keeps_the_journal_and_row_for_next_time() {
        let (_dir, mut spool) = setup(&["a"]);
        let seg = spool.open_segment("rec", "a", 0).unwrap();
        fs::write(&seg.part_path, b"FULL").unwrap();
        let report = spool.recover_with(&FakeCodec).unwrap();
        assert_eq!(report.dropped, 0);
        assert_eq!(report.errors.len(), 1);
        assert!(
            report.errors[0].contains("disk full"),
            "{}",
            report.errors[0]
        );
        assert_eq!(fs::read(&seg.part_path).unwrap(), b"FULL");
        assert_eq!(
            spool.segment(seg.id).unwrap().unwrap().state,
            SegmentState::Open
        );
        // Space is back: the next run repairs it.
        fs::write(&seg.part_path, b"xyz").unwrap();
        let report = spool.recover_with(&FakeCodec).unwrap();
        assert_eq!(report.repaired.len(), 1);
        assert_eq!(report.repaired[0].length_48k, 2880);
        assert!(
            report.interrupted.is_empty(),
            "already interrupted by the first run"
        );
    }

    #[test]
    fn damaged_final_file_is_kept_and_the_journal_repaired() {
        let (_dir, mut spool) = setup(&["a"]);
        let seg = spool.open_segment("rec", "a", 0).unwrap();
        fs::write(&seg.part_path, b"12345").unwrap();
        fs::write(&seg.final_path, b"garbage").unwrap();
        let kept = PathBuf::from(format!("{}.corrupt", seg.final_path.display()));
        fs::write(&kept, b"an older corrupt copy").unwrap();
        let report = spool.recover_with(&FakeCodec).unwrap();
        assert_eq!(report.repaired.len(), 1);
        assert_eq!(report.repaired[0].bytes, 5);
        assert_eq!(report.errors.len(), 1);
        let numbered = PathBuf::from(format!("{}.corrupt.1", seg.final_path.display()));
        assert_eq!(fs::read(&numbered).unwrap(), b"garbage");
        assert_eq!(fs::read(&kept).unwrap(), b"an older corrupt copy");
        assert_eq!(fs::read(&seg.final_path).unwrap(), b"12345");
    }

    #[test]
    fn codec_error_classification_walks_the_source_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("writing segment")]
        struct Wrapper(#[source] io::Error);
        let full = Wrapper(io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(matches!(
            CodecError::from_error(&full),
            CodecError::DiskFull(_)
        ));
        let other = Wrapper(io::Error::from(io::ErrorKind::InvalidData));
        assert_eq!(
            CodecError::from_error(&other),
            CodecError::Failed("writing segment".into())
        );
    }
}
