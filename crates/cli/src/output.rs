//! How the CLI prints: JSON lines for programs (`--json`), short lines for people.
//!
//! In JSON mode stdout carries only JSON objects, one per line, each with an `event` field; the
//! last line of `record` is `{"event":"summary",...}`. Human messages go to stderr.

use std::io::Write;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use chronote_capture::DeviceInfo;
use chronote_recorder::{RecorderEvent, RecordingSummary, TIMELINE_RATE};
use chronote_spool::{RecordingSummary as SpoolRecording, RecoveryReport, Spool};
use serde::Serialize;
use serde_json::json;

pub struct Output {
    json: bool,
}

fn ms(units_48k: u64) -> String {
    let total_ms = units_48k / (TIMELINE_RATE / 1000);
    format!(
        "{}:{:02}:{:02}.{:03}",
        total_ms / 3_600_000,
        total_ms / 60_000 % 60,
        total_ms / 1000 % 60,
        total_ms % 1000
    )
}

impl Output {
    pub fn new(json: bool) -> Self {
        Output { json }
    }

    fn line<T: Serialize>(&self, value: &T) {
        if let Ok(text) = serde_json::to_string(value) {
            let mut stdout = std::io::stdout().lock();
            // A closed stdout (e.g. `| head`) must not stop the recording.
            let _ = writeln!(stdout, "{text}");
            let _ = stdout.flush();
        }
    }

    pub fn note(&self, message: &str) {
        eprintln!("chronote: {message}");
    }

    pub fn started(&self, recording_id: &str, spool: &Arc<Mutex<Spool>>) {
        let root = spool
            .lock()
            .map(|s| s.root().display().to_string())
            .unwrap_or_default();
        if self.json {
            self.line(&json!({"event": "started", "recording_id": recording_id, "spool": root}));
        } else {
            eprintln!("chronote: recording {recording_id} into {root} (Ctrl-C to stop)");
        }
    }

    pub fn event(&self, event: &RecorderEvent) {
        if self.json {
            self.line(event);
            return;
        }
        match event {
            RecorderEvent::TrackStarted {
                track,
                source,
                sample_rate,
            } => eprintln!("chronote: track {track}: {source} at {sample_rate} Hz"),
            RecorderEvent::SegmentSealed {
                track,
                sequence,
                start_48k,
                length_48k,
                bytes,
                ..
            } => eprintln!(
                "chronote: track {track}: segment {sequence} sealed ({} at {}, {bytes} bytes)",
                ms(*length_48k),
                ms(*start_48k)
            ),
            RecorderEvent::Gap {
                track,
                start_48k,
                length_48k,
                reason,
            } => eprintln!(
                "chronote: track {track}: gap of {} at {} ({reason})",
                ms(*length_48k),
                ms(*start_48k)
            ),
            RecorderEvent::Warning { track, message } => {
                eprintln!("chronote: warning: track {track}: {message}")
            }
            RecorderEvent::Progress { .. } => {}
            RecorderEvent::TrackEnded {
                track,
                reason,
                error,
            } => match error {
                Some(error) => eprintln!("chronote: track {track} failed: {error}"),
                None => eprintln!("chronote: track {track} ended ({reason:?})"),
            },
        }
    }

    pub fn summary(&self, summary: &RecordingSummary) {
        if self.json {
            let mut value = serde_json::to_value(summary).unwrap_or_default();
            if let Some(map) = value.as_object_mut() {
                map.insert("event".into(), "summary".into());
            }
            self.line(&value);
            return;
        }
        println!(
            "recording {}: {} segments, {}, {} bytes, {} gap(s)",
            summary.recording_id,
            summary.segments,
            ms(summary.duration_48k),
            summary.bytes,
            summary.gaps.len()
        );
    }

    pub fn recovery(&self, report: &RecoveryReport, quiet_if_empty: bool) {
        let nothing = report.interrupted.is_empty()
            && report.repaired.is_empty()
            && report.adopted.is_empty()
            && report.dropped == 0
            && report.removed_files == 0
            && report.errors.is_empty();
        if self.json {
            if !(quiet_if_empty && nothing) {
                let mut value = serde_json::to_value(report).unwrap_or_default();
                if let Some(map) = value.as_object_mut() {
                    map.insert("event".into(), "recovered".into());
                }
                self.line(&value);
            }
            return;
        }
        if nothing {
            if !quiet_if_empty {
                println!("spool is clean: nothing to recover");
            }
            return;
        }
        for id in &report.interrupted {
            println!("recording {id} was interrupted; it now ends at its last sealed sample");
        }
        for seg in &report.repaired {
            println!(
                "repaired segment {} of track {} ({}, {} bytes)",
                seg.sequence,
                seg.track,
                ms(seg.length_48k),
                seg.bytes
            );
        }
        for seg in &report.adopted {
            println!(
                "kept sealed segment {} of track {}",
                seg.sequence, seg.track
            );
        }
        if report.dropped > 0 {
            println!("dropped {} empty segment(s)", report.dropped);
        }
        if report.removed_files > 0 {
            println!("removed {} leftover file(s)", report.removed_files);
        }
        for err in &report.errors {
            println!("could not recover: {err}");
        }
    }

    pub fn devices(&self, devices: &[DeviceInfo]) {
        if self.json {
            let list: Vec<_> = devices
                .iter()
                .map(|d| {
                    json!({
                        "name": d.name,
                        "default": d.is_default,
                        "sample_rate": d.sample_rate,
                        "channels": d.channels,
                        "sample_format": d.sample_format,
                    })
                })
                .collect();
            self.line(&json!({"event": "devices", "devices": list}));
            return;
        }
        if devices.is_empty() {
            println!(
                "no audio input devices found; record a file with `chronote record --input FILE.wav`"
            );
        }
        for d in devices {
            println!(
                "{}{} ({} Hz, {} ch, {})",
                if d.is_default { "* " } else { "  " },
                d.name,
                d.sample_rate,
                d.channels,
                d.sample_format
            );
        }
    }

    pub fn recordings(&self, spool: &Spool, recordings: &[SpoolRecording]) -> Result<()> {
        if self.json {
            let mut list = Vec::new();
            for rec in recordings {
                let mut value = serde_json::to_value(rec)?;
                if let Some(map) = value.as_object_mut() {
                    map.insert(
                        "segments".into(),
                        serde_json::to_value(spool.segments(&rec.id)?)?,
                    );
                    map.insert("gaps".into(), serde_json::to_value(spool.gaps(&rec.id)?)?);
                }
                list.push(value);
            }
            self.line(&json!({"event": "spool", "root": spool.root().display().to_string(), "recordings": list}));
            return Ok(());
        }
        if recordings.is_empty() {
            println!("no recordings in {}", spool.root().display());
        }
        for rec in recordings {
            let segments = spool.segments(&rec.id)?;
            let audio: u64 = segments.iter().map(|s| s.length_48k).sum();
            let bytes: u64 = segments.iter().map(|s| s.bytes).sum();
            println!(
                "{}  {:<11} {}  {} segment(s), {} of audio, {} bytes  {}",
                rec.id,
                rec.state.to_string(),
                rec.started_at,
                segments.len(),
                ms(audio),
                bytes,
                rec.title
            );
        }
        Ok(())
    }
}
