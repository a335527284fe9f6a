//! One track's pipeline: capture -> resample -> frames -> segments -> spool.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chronote_capture::{Chunk, GapReason as CaptureGap, Resampler};
use chronote_encode::{EncodeError, RepairOutcome, SegmentTags, SegmentWriter};
use chronote_spool::{GapReason, Room, SealedInfo, Spool, SpoolError};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{debug, info, warn};

use crate::clock::{TIMELINE_RATE, TimelineClock};
use crate::config::RecorderConfig;
use crate::cut::QuietCut;
use crate::error::RecorderError;
use crate::event::{RecorderEvent, TrackEnd};
use crate::source::AudioSource;

/// How long one `Capture::read` may wait before the loop looks at the stop flag again.
const READ_TIMEOUT: Duration = Duration::from_millis(100);
/// Frames between two checks of the spool bound (0.5 s at 20 ms frames).
const ROOM_CHECK_FRAMES: u32 = 25;

/// What a track thread needs from the recording it belongs to.
pub(crate) struct TrackContext {
    pub name: String,
    pub recording_id: String,
    pub started_at: OffsetDateTime,
    pub config: RecorderConfig,
    pub spool: Arc<Mutex<Spool>>,
    pub events: SyncSender<RecorderEvent>,
    pub stop: Arc<AtomicBool>,
}

struct OpenSegment {
    writer: SegmentWriter,
    id: i64,
    sequence: u64,
    start_48k: u64,
    frames: u64,
    final_path: PathBuf,
}

/// A segment whose journal could not be written (disk full). Its `.part` stays on disk and is
/// repaired into a sealed segment once space is back.
struct BrokenSegment {
    id: i64,
    start_48k: u64,
    part_path: PathBuf,
    final_path: PathBuf,
}

struct Paused {
    /// Where the spool_full gap starts; unknown while a broken segment awaits repair.
    gap_start_48k: Option<u64>,
    broken: Option<BrokenSegment>,
    last_try: Instant,
}

pub(crate) struct TrackPipeline {
    ctx: TrackContext,
    capture_rate: u32,
    encoder_rate: u32,
    frame_len: usize,
    frame_48k: u64,
    resampler: Resampler,
    /// Converts capture samples that bypass the encoder (while paused) to the timeline.
    bypass_clock: TimelineClock,
    resampled: Vec<f32>,
    /// Encoder-rate samples not yet framed; they end at `next_48k`.
    pending: Vec<f32>,
    frame: Vec<f32>,
    next_48k: u64,
    limit_48k: Option<u64>,
    segment: Option<OpenSegment>,
    cut: QuietCut,
    paused: Option<Paused>,
    frames_since_check: u32,
    /// Set while the last frames are flushed into a segment being sealed: no bound check (and so
    /// no nested pause) may interrupt that.
    sealing: bool,
    reserve_bytes: u64,
    next_progress_48k: u64,
}

fn units_per_sample(rate: u32) -> u64 {
    TIMELINE_RATE / u64::from(rate)
}

impl TrackPipeline {
    pub(crate) fn new(ctx: TrackContext, capture_rate: u32) -> Result<Self, RecorderError> {
        let encoder_rate = ctx.config.encoder.sample_rate;
        let frame_len = (encoder_rate * ctx.config.encoder.frame_ms / 1000) as usize;
        let frame_48k = TIMELINE_RATE * u64::from(ctx.config.encoder.frame_ms) / 1000;
        let frames_per_sec = 1000 / u64::from(ctx.config.encoder.frame_ms);
        let target_frames = u64::from(ctx.config.segment_secs) * frames_per_sec;
        let window_frames =
            ctx.config.cut_window.as_millis() as u64 / u64::from(ctx.config.encoder.frame_ms);
        let resampler = Resampler::new(capture_rate, encoder_rate).map_err(|source| {
            RecorderError::Capture {
                track: ctx.name.clone(),
                source,
            }
        })?;
        let limit_48k = ctx
            .config
            .duration
            .map(|d| (d.as_millis() as u64) * (TIMELINE_RATE / 1000));
        // Room for one more second of audio, counted twice as the spool counts open journals.
        let reserve_bytes = 2 * u64::from(ctx.config.encoder.bitrate_bps) / 8 + 16 * 1024;
        Ok(TrackPipeline {
            capture_rate,
            encoder_rate,
            frame_len,
            frame_48k,
            resampler,
            bypass_clock: TimelineClock::new(capture_rate),
            resampled: Vec::with_capacity(8192),
            pending: Vec::with_capacity(8192),
            frame: vec![0.0; frame_len],
            next_48k: 0,
            limit_48k,
            segment: None,
            cut: QuietCut::new(target_frames, window_frames, frame_len),
            paused: None,
            frames_since_check: 0,
            sealing: false,
            reserve_bytes,
            next_progress_48k: TIMELINE_RATE,
            ctx,
        })
    }

    pub(crate) fn run(
        mut self,
        mut capture: Box<dyn AudioSource>,
    ) -> Result<TrackEnd, RecorderError> {
        let mut buf = vec![0.0f32; 4800];
        let end = loop {
            if self.ctx.stop.load(Ordering::Relaxed) {
                break TrackEnd::Stopped;
            }
            if self.limit_reached() {
                break TrackEnd::Duration;
            }
            let chunk = match capture.read(&mut buf, READ_TIMEOUT) {
                Ok(chunk) => chunk,
                Err(source) => {
                    // Whatever was captured so far is sealed before the error is reported.
                    let err = RecorderError::Capture {
                        track: self.ctx.name.clone(),
                        source,
                    };
                    self.finish(false)?;
                    return Err(err);
                }
            };
            match chunk {
                Chunk::Audio(n) => self.on_audio(&buf[..n])?,
                Chunk::Gap {
                    samples,
                    rate,
                    reason,
                } => self.on_gap(samples, rate, reason)?,
                Chunk::RateChanged(rate) => self.on_rate_changed(rate)?,
                Chunk::Idle => self.try_resume()?,
                Chunk::End => break TrackEnd::EndOfInput,
            }
        };
        capture.stop();
        self.finish(end != TrackEnd::Duration)?;
        Ok(end)
    }

    fn limit_reached(&self) -> bool {
        self.limit_48k.is_some_and(|limit| self.next_48k >= limit)
    }

    fn emit(&self, event: RecorderEvent) {
        // A full queue means the reader fell behind, a closed one that nobody listens: either
        // way recording goes on, and the spool still has every segment and gap.
        if let Err(TrySendError::Full(event)) = self.ctx.events.try_send(event) {
            debug!(?event, "event queue full; event dropped");
        }
    }

    fn spool(&self) -> Result<MutexGuard<'_, Spool>, RecorderError> {
        self.ctx
            .spool
            .lock()
            .map_err(|_| RecorderError::SpoolPoisoned)
    }

    fn encode_err(&self, source: EncodeError) -> RecorderError {
        RecorderError::Encode {
            track: self.ctx.name.clone(),
            source,
        }
    }

    fn on_audio(&mut self, samples: &[f32]) -> Result<(), RecorderError> {
        if self.paused.is_some() {
            let units = self.bypass_clock.advance(samples.len() as u64);
            self.advance_bypassed(units);
            return self.try_resume();
        }
        self.resampled.clear();
        self.resampler.process(samples, &mut self.resampled);
        self.take_resampled();
        self.drain_frames()?;
        self.report_progress();
        Ok(())
    }

    /// Moves freshly resampled audio into `pending`, cut short at the duration limit.
    fn take_resampled(&mut self) {
        let per = units_per_sample(self.encoder_rate);
        let mut take = self.resampled.len();
        if let Some(limit) = self.limit_48k {
            let room = limit.saturating_sub(self.next_48k) / per;
            take = take.min(room as usize);
        }
        self.pending.extend_from_slice(&self.resampled[..take]);
        self.next_48k += take as u64 * per;
        self.resampled.clear();
    }

    fn advance_bypassed(&mut self, units: u64) {
        let units = match self.limit_48k {
            Some(limit) => units.min(limit.saturating_sub(self.next_48k)),
            None => units,
        };
        self.next_48k += units;
        self.report_progress();
    }

    fn report_progress(&mut self) {
        while self.next_48k >= self.next_progress_48k {
            self.next_progress_48k += TIMELINE_RATE;
            self.emit(RecorderEvent::Progress {
                track: self.ctx.name.clone(),
                captured_ms: self.next_48k / (TIMELINE_RATE / 1000),
            });
        }
    }

    fn pending_start_48k(&self) -> u64 {
        self.next_48k - self.pending.len() as u64 * units_per_sample(self.encoder_rate)
    }

    /// Encodes every whole frame in `pending`. The spool bound is checked between frames, never
    /// in the middle of one, so a pause can seal the segment at a frame boundary.
    fn drain_frames(&mut self) -> Result<(), RecorderError> {
        let mut offset = 0;
        while self.paused.is_none() && self.pending.len() - offset >= self.frame_len {
            let start =
                self.pending_start_48k() + (offset / self.frame_len) as u64 * self.frame_48k;
            self.frame
                .copy_from_slice(&self.pending[offset..offset + self.frame_len]);
            offset += self.frame_len;
            let frame = std::mem::take(&mut self.frame);
            let result = self.push_frame(&frame, start);
            self.frame = frame;
            result?;
            if self.frames_since_check >= ROOM_CHECK_FRAMES && !self.sealing {
                self.frames_since_check = 0;
                self.pending.drain(..offset);
                offset = 0;
                self.check_room()?;
            }
        }
        if self.paused.is_some() {
            // The frames still pending when capture paused belong to the spool_full gap.
            self.pending.clear();
        } else {
            self.pending.drain(..offset);
        }
        Ok(())
    }

    fn open_segment(&mut self, start_48k: u64) -> Result<(), RecorderError> {
        let open = self
            .spool()?
            .open_segment(&self.ctx.recording_id, &self.ctx.name, start_48k)?;
        let start_time = self.ctx.started_at
            + time::Duration::milliseconds((start_48k / (TIMELINE_RATE / 1000)) as i64);
        let tags = SegmentTags {
            recording_id: self.ctx.recording_id.clone(),
            track: self.ctx.name.clone(),
            sequence: open.sequence,
            start_48k,
            start_time: start_time.format(&Rfc3339).unwrap_or_default(),
        };
        let writer = match SegmentWriter::create(&open.part_path, &self.ctx.config.encoder, &tags) {
            Ok(writer) => writer,
            Err(err) => {
                // Leave no Open row without a journal behind.
                let _ = self.spool()?.abandon_segment(open.id);
                return Err(self.encode_err(err));
            }
        };
        debug!(track = %self.ctx.name, sequence = open.sequence, start_48k, "segment opened");
        self.segment = Some(OpenSegment {
            writer,
            id: open.id,
            sequence: open.sequence,
            start_48k,
            frames: 0,
            final_path: open.final_path,
        });
        self.cut.reset();
        Ok(())
    }

    /// Encodes one full frame that starts at `start_48k` on the timeline.
    fn push_frame(&mut self, frame: &[f32], start_48k: u64) -> Result<(), RecorderError> {
        if self.segment.is_none() {
            self.open_segment(start_48k)?;
        }
        let Some(seg) = self.segment.as_mut() else {
            return Ok(());
        };
        if let Err(err) = seg.writer.push_frame(frame) {
            return self.on_write_error(err);
        }
        seg.frames += 1;
        let index = seg.frames - 1;
        if let Some(keep) = self.cut.observe(index, frame) {
            self.cut_segment(keep)?;
        }
        self.frames_since_check += 1;
        Ok(())
    }

    /// Seals the segment after `keep_frames` frames and starts the next one with the rest of the
    /// cut window.
    fn cut_segment(&mut self, keep_frames: u64) -> Result<(), RecorderError> {
        let carry = self.cut.carry(keep_frames).to_vec();
        let Some(seg) = self.segment.take() else {
            return Ok(());
        };
        let next_start = seg.start_48k + keep_frames * self.frame_48k;
        self.seal(seg, keep_frames * self.frame_len as u64)?;
        if carry.is_empty() {
            return Ok(());
        }
        self.open_segment(next_start)?;
        for (i, frame) in carry.chunks_exact(self.frame_len).enumerate() {
            let Some(seg) = self.segment.as_mut() else {
                break;
            };
            if let Err(err) = seg.writer.push_frame(frame) {
                return self.on_write_error(err);
            }
            seg.frames += 1;
            // The carried frames lie before the next window, so this never cuts again.
            let _ = self.cut.observe(i as u64, frame);
        }
        Ok(())
    }

    fn seal(&mut self, seg: OpenSegment, keep_samples: u64) -> Result<(), RecorderError> {
        if keep_samples == 0 {
            seg.writer.abandon().map_err(|e| self.encode_err(e))?;
            self.spool()?.abandon_segment(seg.id)?;
            return Ok(());
        }
        let part_path = seg.writer.part_path().to_path_buf();
        let sealed = match seg.writer.seal(&seg.final_path, keep_samples) {
            Ok(sealed) => sealed,
            Err(err) if is_disk_full(&err) => {
                // The journal is intact up to its last page; repair it when space frees.
                self.enter_pause(
                    None,
                    Some(BrokenSegment {
                        id: seg.id,
                        start_48k: seg.start_48k,
                        part_path,
                        final_path: seg.final_path,
                    }),
                    &format!("disk full while sealing segment {}: {err}", seg.sequence),
                );
                return Ok(());
            }
            Err(err) => return Err(self.encode_err(err)),
        };
        self.spool()?.seal_segment(
            seg.id,
            &SealedInfo {
                bytes: sealed.bytes,
                length_48k: sealed.length_48k,
                sha256: sealed.sha256.clone(),
            },
        )?;
        info!(track = %self.ctx.name, sequence = seg.sequence, start_48k = seg.start_48k,
            length_48k = sealed.length_48k, bytes = sealed.bytes, "segment sealed");
        self.emit(RecorderEvent::SegmentSealed {
            track: self.ctx.name.clone(),
            sequence: seg.sequence,
            start_48k: seg.start_48k,
            length_48k: sealed.length_48k,
            bytes: sealed.bytes,
            path: sealed.path.display().to_string(),
        });
        Ok(())
    }

    /// Brings every captured sample into the current segment and seals it exactly at the last
    /// real sample. `flush_resampler` is false when a duration limit already cut the input.
    fn seal_at_last_sample(&mut self, flush_resampler: bool) -> Result<(), RecorderError> {
        self.sealing = true;
        let result = self.seal_at_last_sample_inner(flush_resampler);
        self.sealing = false;
        result
    }

    fn seal_at_last_sample_inner(&mut self, flush_resampler: bool) -> Result<(), RecorderError> {
        if flush_resampler && self.paused.is_none() {
            self.resampled.clear();
            self.resampler.finish(&mut self.resampled);
            self.take_resampled();
            self.drain_frames()?;
        }
        self.reset_resampler(self.capture_rate)?;
        if self.paused.is_some() {
            self.pending.clear();
            return Ok(());
        }
        let partial = self.pending.len();
        if partial > 0 {
            let start = self.pending_start_48k();
            if self.segment.is_none() {
                self.open_segment(start)?;
            }
            self.frame[..partial].copy_from_slice(&self.pending);
            self.frame[partial..].fill(0.0);
            self.pending.clear();
            if let Some(seg) = self.segment.as_mut() {
                if let Err(err) = seg.writer.push_frame(&self.frame) {
                    return self.on_write_error(err);
                }
                seg.frames += 1;
            }
        }
        if let Some(seg) = self.segment.take() {
            let full_frames = if partial > 0 {
                seg.frames - 1
            } else {
                seg.frames
            };
            let keep = full_frames * self.frame_len as u64 + partial as u64;
            self.seal(seg, keep)?;
        }
        Ok(())
    }

    fn reset_resampler(&mut self, rate: u32) -> Result<(), RecorderError> {
        self.resampler =
            Resampler::new(rate, self.encoder_rate).map_err(|source| RecorderError::Capture {
                track: self.ctx.name.clone(),
                source,
            })?;
        self.capture_rate = rate;
        self.bypass_clock = TimelineClock::new(rate);
        Ok(())
    }

    fn on_gap(&mut self, samples: u64, rate: u32, reason: CaptureGap) -> Result<(), RecorderError> {
        let length = TimelineClock::new(rate).advance(samples);
        if self.paused.is_some() {
            // Already inside a spool_full gap: it simply grows.
            self.advance_bypassed(length);
            return Ok(());
        }
        self.seal_at_last_sample(true)?;
        let start = self.next_48k;
        self.advance_bypassed(length);
        let length = self.next_48k - start;
        let reason = match reason {
            CaptureGap::Overflow => GapReason::Overflow,
            CaptureGap::DeviceLost => GapReason::DeviceLost,
        };
        self.record_gap(start, length, reason)
    }

    fn record_gap(
        &mut self,
        start_48k: u64,
        length_48k: u64,
        reason: GapReason,
    ) -> Result<(), RecorderError> {
        if length_48k == 0 {
            return Ok(());
        }
        info!(track = %self.ctx.name, start_48k, length_48k, ?reason, "gap recorded");
        self.spool()?.record_gap(
            &self.ctx.recording_id,
            &self.ctx.name,
            start_48k,
            length_48k,
            reason,
        )?;
        self.emit(RecorderEvent::Gap {
            track: self.ctx.name.clone(),
            start_48k,
            length_48k,
            reason: reason.as_str().to_string(),
        });
        Ok(())
    }

    fn on_rate_changed(&mut self, rate: u32) -> Result<(), RecorderError> {
        if self.paused.is_none() {
            self.resampled.clear();
            self.resampler.finish(&mut self.resampled);
            self.take_resampled();
            self.drain_frames()?;
        }
        info!(track = %self.ctx.name, rate, "capture rate changed");
        self.reset_resampler(rate)
    }

    fn check_room(&mut self) -> Result<(), RecorderError> {
        let room = self.spool()?.ensure_room(self.reserve_bytes)?;
        if let Room::Full {
            usage,
            max_bytes,
            free,
            min_free,
        } = room
        {
            let message = format!(
                "spool full (using {usage} of {max_bytes} bytes, {free} bytes free on disk, \
                 floor {min_free}): capture paused; the missing audio is recorded as a gap \
                 and capture resumes when space frees"
            );
            // Seal what we have first: the open journal is already counted twice, so sealing
            // never pushes the spool past its bound.
            self.seal_at_last_sample(true)?;
            // A seal that hit ENOSPC has paused already, keeping its journal for repair.
            if self.paused.is_none() {
                let start = self.next_48k;
                self.enter_pause(Some(start), None, &message);
            }
        }
        Ok(())
    }

    fn enter_pause(&mut self, gap_start: Option<u64>, broken: Option<BrokenSegment>, msg: &str) {
        // Reported to the user through the Warning event; the log keeps it for later reading.
        info!(track = %self.ctx.name, "{msg}");
        self.emit(RecorderEvent::Warning {
            track: self.ctx.name.clone(),
            message: msg.to_string(),
        });
        self.pending.clear();
        self.paused = Some(Paused {
            gap_start_48k: gap_start,
            broken,
            last_try: Instant::now(),
        });
    }

    fn try_resume(&mut self) -> Result<(), RecorderError> {
        let Some(paused) = self.paused.as_ref() else {
            return Ok(());
        };
        if paused.last_try.elapsed() < self.ctx.config.spool_retry {
            return Ok(());
        }
        let room = self.spool()?.ensure_room(self.reserve_bytes * 4);
        let available = matches!(room, Ok(Room::Available));
        let Some(mut paused) = self.paused.take() else {
            return Ok(());
        };
        if !available {
            paused.last_try = Instant::now();
            self.paused = Some(paused);
            return Ok(());
        }
        let mut gap_start = paused.gap_start_48k.unwrap_or(self.next_48k);
        if let Some(broken) = paused.broken.take() {
            gap_start = self.repair_broken(broken)?;
        }
        let length = self.next_48k.saturating_sub(gap_start);
        self.record_gap(gap_start, length, GapReason::SpoolFull)?;
        self.reset_resampler(self.capture_rate)?;
        self.emit(RecorderEvent::Warning {
            track: self.ctx.name.clone(),
            message: "spool has room again: capture resumed".to_string(),
        });
        Ok(())
    }

    /// Seals a segment whose journal was cut short by a full disk; returns where its audio ends.
    fn repair_broken(&mut self, broken: BrokenSegment) -> Result<u64, RecorderError> {
        match chronote_encode::repair(&broken.part_path, &broken.final_path) {
            Ok(RepairOutcome::Sealed { segment, .. }) => {
                self.spool()?.seal_segment(
                    broken.id,
                    &SealedInfo {
                        bytes: segment.bytes,
                        length_48k: segment.length_48k,
                        sha256: segment.sha256.clone(),
                    },
                )?;
                Ok(broken.start_48k + segment.length_48k)
            }
            Ok(RepairOutcome::Empty) => {
                self.spool()?.abandon_segment(broken.id)?;
                Ok(broken.start_48k)
            }
            Err(err) => Err(self.encode_err(err)),
        }
    }

    fn on_write_error(&mut self, err: EncodeError) -> Result<(), RecorderError> {
        if !is_disk_full(&err) {
            return Err(self.encode_err(err));
        }
        let Some(seg) = self.segment.take() else {
            return Err(self.encode_err(err));
        };
        let part_path = seg.writer.part_path().to_path_buf();
        // Dropping the writer closes the journal without deleting it.
        drop(seg.writer);
        self.enter_pause(
            None,
            Some(BrokenSegment {
                id: seg.id,
                start_48k: seg.start_48k,
                part_path,
                final_path: seg.final_path,
            }),
            &format!("disk full while writing segment {}: {err}", seg.sequence),
        );
        Ok(())
    }

    fn finish(&mut self, flush_resampler: bool) -> Result<(), RecorderError> {
        self.seal_at_last_sample(flush_resampler)?;
        if let Some(mut paused) = self.paused.take() {
            let mut gap_start = paused.gap_start_48k.unwrap_or(self.next_48k);
            if let Some(broken) = paused.broken.take() {
                match self.repair_broken(broken) {
                    Ok(end) => gap_start = end,
                    // Left for `chronote spool recover`, which repairs it like after a crash.
                    Err(err) => warn!(track = %self.ctx.name, "segment left for recovery: {err}"),
                }
            }
            let length = self.next_48k.saturating_sub(gap_start);
            self.record_gap(gap_start, length, GapReason::SpoolFull)?;
        }
        self.spool()?
            .set_track_end(&self.ctx.recording_id, &self.ctx.name, self.next_48k)?;
        Ok(())
    }
}

/// True when an error comes from a full disk (ENOSPC), anywhere in its source chain.
pub(crate) fn is_disk_full(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && (io.kind() == std::io::ErrorKind::StorageFull || io.raw_os_error() == Some(28))
        {
            return true;
        }
        if let Some(SpoolError::DiskFull { .. }) = e.downcast_ref::<SpoolError>() {
            return true;
        }
        current = e.source();
    }
    false
}
