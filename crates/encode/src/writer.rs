//! The segment writer: encodes frames, journals them page by page, and seals the segment.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use opus::{Application, Bitrate, Channels, Encoder};

use crate::EncodeError;
use crate::config::{EncoderConfig, GRANULE_RATE};
use crate::fs_util::sync_dir;
use crate::opus_header::{OpusHead, SegmentTags, stream_serial, tags_packet};
use crate::paging::{MAX_LACING, PageEnd, Pager, lacing_len};
use crate::sealed::{SealedSegment, StreamIdentity, write_sealed};

/// Largest packet libopus produces is 1275 bytes per frame, up to 3 frames for 60 ms;
/// 4000 is the buffer size libopus documentation recommends.
const MAX_PACKET: usize = 4000;

/// Writes one segment: a journal (`.part`) while recording, a sealed file at the end.
///
/// Lifecycle: [`create`](Self::create) → any number of [`push_frame`](Self::push_frame) →
/// exactly one of [`seal`](Self::seal) or [`abandon`](Self::abandon). Both consume the writer, so
/// the compiler rejects any other order. Dropping the writer without either leaves the journal
/// on disk, as a crash would, for [`repair`](crate::repair).
pub struct SegmentWriter {
    part_path: PathBuf,
    file: File,
    config: EncoderConfig,
    tags: SegmentTags,
    serial: u32,
    encoder: Encoder,
    head: OpusHead,
    frame_len: usize,
    frame_48k: u64,
    /// Every packet of the segment, in order; the sealed file is rebuilt from these.
    packets: Vec<Vec<u8>>,
    /// Reused encoder output buffer: the hot path allocates only the stored packet.
    out: Box<[u8]>,
    /// Serialised journal pages not yet on disk (normally empty between calls).
    journal: Pager,
    /// First packet not yet put on a journal page.
    journal_next: usize,
    /// Lacing values the packets from `journal_next` on would take on one page.
    pending_lacing: usize,
    journal_page_frames: usize,
    journal_bytes: u64,
    /// When the journal was last fdatasync'ed. A page reaches the page cache (safe from a
    /// SIGKILL) as soon as it is written; the sync that makes it safe from power loss runs at
    /// most every `JOURNAL_SYNC_INTERVAL` of wall time, so a fast file import is not throttled
    /// by thousands of syncs while live capture (a page per 500 ms) still syncs every page.
    last_sync: Option<Instant>,
}

/// See [`SegmentWriter::last_sync`].
const JOURNAL_SYNC_INTERVAL: Duration = Duration::from_millis(250);

impl std::fmt::Debug for SegmentWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentWriter")
            .field("part_path", &self.part_path)
            .field("tags", &self.tags)
            .field("serial", &self.serial)
            .field("frames", &self.packets.len())
            .field("journal_bytes", &self.journal_bytes)
            .finish_non_exhaustive()
    }
}

impl SegmentWriter {
    /// Creates the journal at `part_path` (which must not exist) with both Opus header pages
    /// on disk, and a mono VoIP VBR encoder at `config.bitrate_bps`.
    pub fn create(
        part_path: &Path,
        config: &EncoderConfig,
        tags: &SegmentTags,
    ) -> Result<Self, EncodeError> {
        config.validate()?;
        let mut encoder = Encoder::new(config.sample_rate, Channels::Mono, Application::Voip)
            .map_err(|e| EncodeError::opus("create encoder", e))?;
        // validate() bounds the bitrate to 512000, so the cast is exact.
        encoder
            .set_bitrate(Bitrate::Bits(config.bitrate_bps as i32))
            .map_err(|e| EncodeError::opus("set bitrate", e))?;
        encoder
            .set_vbr(true)
            .map_err(|e| EncodeError::opus("enable VBR", e))?;
        let lookahead = encoder
            .get_lookahead()
            .map_err(|e| EncodeError::opus("get lookahead", e))?;
        let pre_skip = u64::try_from(lookahead)
            .ok()
            .map(|l| l * u64::from(GRANULE_RATE / config.sample_rate))
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| {
                EncodeError::Config(format!("encoder lookahead {lookahead} is out of range"))
            })?;
        let head = OpusHead {
            channels: 1,
            pre_skip,
            input_rate: config.sample_rate,
        };
        let serial = stream_serial(tags);

        let mut headers = Pager::new(serial);
        let head_packet = head.to_packet();
        let tags_packet = tags_packet(tags);
        headers
            .page([(&head_packet[..], 0)].into_iter(), PageEnd::Page)
            .and_then(|()| headers.page([(&tags_packet[..], 0)].into_iter(), PageEnd::Page))
            .map_err(|e| EncodeError::io(part_path, "serialise header pages", e))?;

        let mut file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(part_path)
            .map_err(|e| EncodeError::io(part_path, "create", e))?;
        let durable = file
            .write_all(headers.bytes())
            .map_err(|e| EncodeError::io(part_path, "write header pages", e))
            .and_then(|()| {
                file.sync_data()
                    .map_err(|e| EncodeError::io(part_path, "fdatasync", e))
            })
            .and_then(|()| sync_dir(part_path));
        if let Err(e) = durable {
            // Nothing was recorded yet; leave no half-written journal behind for recovery.
            drop(file);
            let _ = fs::remove_file(part_path);
            return Err(e);
        }
        let journal_bytes = headers.bytes().len() as u64;
        headers.clear();
        tracing::debug!(path = %part_path.display(), pre_skip, serial, "segment journal created");

        Ok(SegmentWriter {
            part_path: part_path.to_path_buf(),
            file,
            config: config.clone(),
            tags: tags.clone(),
            serial,
            encoder,
            head,
            frame_len: config.frame_len(),
            frame_48k: config.frame_48k(),
            packets: Vec::new(),
            out: vec![0u8; MAX_PACKET].into_boxed_slice(),
            // The header pages were pages 0 and 1; the journal's pager continues the sequence.
            journal: headers,
            journal_next: 0,
            pending_lacing: 0,
            journal_page_frames: config.journal_page_frames(),
            journal_bytes,
            last_sync: Some(Instant::now()),
        })
    }

    /// Samples per frame at the encoder rate (320 for 16 kHz / 20 ms).
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// Pre-skip in 48 kHz units: the encoder lookahead (312 at 16 kHz).
    pub fn pre_skip(&self) -> u16 {
        self.head.pre_skip
    }

    /// The settings this writer was created with.
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// The tags written into the segment.
    pub fn tags(&self) -> &SegmentTags {
        &self.tags
    }

    /// The journal file.
    pub fn part_path(&self) -> &Path {
        &self.part_path
    }

    /// Ogg stream serial number, shared by the journal and the sealed file.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Frames pushed so far.
    pub fn frames(&self) -> u64 {
        self.packets.len() as u64
    }

    /// Bytes of the journal on disk (fdatasync'ed).
    pub fn journal_bytes(&self) -> u64 {
        self.journal_bytes
    }

    /// Encodes one frame of exactly [`frame_len`](Self::frame_len) mono samples.
    ///
    /// Every `journal_page_ms` of audio the journal gets a page, written before this returns
    /// and fdatasync'ed unless the last sync is less than 250 ms old. If that write fails the frame is still kept for the sealed file, the error
    /// is returned, and the next page write retries the unwritten bytes.
    pub fn push_frame(&mut self, pcm: &[f32]) -> Result<(), EncodeError> {
        if pcm.len() != self.frame_len {
            return Err(EncodeError::FrameLength {
                expected: self.frame_len,
                got: pcm.len(),
            });
        }
        let n = self
            .encoder
            .encode_float(pcm, &mut self.out)
            .map_err(|e| EncodeError::opus("encode frame", e))?;
        let need = lacing_len(n);
        // A page holds at most 255 lacing values: close it before this packet would not fit,
        // rather than let the packet be split across pages.
        let overflow = self.pending_lacing + need > MAX_LACING;
        if overflow {
            self.close_journal_page()?;
        }
        // The packet is kept before any disk I/O, so a failed journal write loses no audio.
        self.packets.push(self.out[..n].to_vec());
        self.pending_lacing += need;
        let full = self.packets.len() - self.journal_next >= self.journal_page_frames;
        if full {
            self.close_journal_page()?;
        }
        if overflow || full {
            self.write_journal()?;
        }
        Ok(())
    }

    /// Ends the current journal page now and makes it durable, e.g. before a pause.
    pub fn flush_journal(&mut self) -> Result<(), EncodeError> {
        self.close_journal_page()?;
        self.last_sync = None;
        self.write_journal()
    }

    /// Serialises the packets not yet on a journal page into one page (in memory).
    fn close_journal_page(&mut self) -> Result<(), EncodeError> {
        if self.journal_next == self.packets.len() {
            return Ok(());
        }
        let frame_48k = self.frame_48k;
        let start = self.journal_next;
        self.journal
            .page(
                self.packets[start..]
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (&p[..], (start + i + 1) as u64 * frame_48k)),
                PageEnd::Page,
            )
            .map_err(|e| EncodeError::io(&self.part_path, "serialise journal page", e))?;
        self.journal_next = self.packets.len();
        self.pending_lacing = 0;
        Ok(())
    }

    /// Appends the serialised pages to the journal and fdatasyncs it. After a failure the bytes
    /// stay queued, and the next call writes them again, in order.
    fn write_journal(&mut self) -> Result<(), EncodeError> {
        let bytes = self.journal.bytes();
        if bytes.is_empty() {
            return Ok(());
        }
        let sync_due = self
            .last_sync
            .is_none_or(|at| at.elapsed() >= JOURNAL_SYNC_INTERVAL);
        let written = self
            .file
            .write_all(bytes)
            .map_err(|e| EncodeError::io(&self.part_path, "write journal page", e))
            .and_then(|()| {
                if !sync_due {
                    return Ok(());
                }
                self.file
                    .sync_data()
                    .map_err(|e| EncodeError::io(&self.part_path, "fdatasync", e))
            });
        if sync_due && written.is_ok() {
            self.last_sync = Some(Instant::now());
        }
        match written {
            Ok(()) => {
                self.journal_bytes += bytes.len() as u64;
                self.journal.clear();
                Ok(())
            }
            Err(e) => {
                // Cut a partial write back off so the retry appends right after the last
                // durable page; if even that fails, repair stops at the torn page.
                let _ = self.file.set_len(self.journal_bytes);
                tracing::warn!(path = %self.part_path.display(), error = %e, "journal write failed");
                Err(e)
            }
        }
    }

    /// Writes the sealed segment to `final_path`, keeping the first `keep_samples` encoder-rate
    /// samples (`1..=frames*frame_len`).
    ///
    /// The file is rebuilt from the packets in memory: packets past what `keep_samples` needs
    /// are dropped (the caller re-encodes that audio in the next segment), and silent frames are
    /// encoded if the encoder lookahead still has to be flushed out. The final granule trims the
    /// decoded audio to exactly `keep_samples * 48000 / rate` samples. The journal is left in
    /// place: the spool deletes it once its database knows about the sealed file.
    pub fn seal(
        mut self,
        final_path: &Path,
        keep_samples: u64,
    ) -> Result<SealedSegment, EncodeError> {
        let available = self.frames() * self.frame_len as u64;
        if keep_samples == 0 || keep_samples > available {
            return Err(EncodeError::KeepSamples {
                path: self.part_path.clone(),
                keep: keep_samples,
                available,
            });
        }
        let final_granule =
            u64::from(self.head.pre_skip) + keep_samples * self.config.rate_factor();
        let needed = final_granule.div_ceil(self.frame_48k) as usize;
        let pushed = self.packets.len();
        if self.packets.len() < needed {
            let silence = vec![0f32; self.frame_len];
            while self.packets.len() < needed {
                let n = self
                    .encoder
                    .encode_float(&silence, &mut self.out)
                    .map_err(|e| EncodeError::opus("encode padding frame", e))?;
                self.packets.push(self.out[..n].to_vec());
            }
        }
        let packets = &self.packets[..needed];
        let mut granules: Vec<u64> = (1..=needed as u64).map(|i| i * self.frame_48k).collect();
        if let Some(last) = granules.last_mut() {
            *last = final_granule;
        }
        let sealed = write_sealed(
            final_path,
            &StreamIdentity {
                serial: self.serial,
                head: self.head,
                tags: &self.tags,
            },
            packets,
            &granules,
            self.config.sealed_page_frames(),
        )?;
        tracing::info!(
            path = %sealed.path.display(),
            length_48k = sealed.length_48k,
            bytes = sealed.bytes,
            dropped_packets = pushed.saturating_sub(needed),
            padding_packets = needed.saturating_sub(pushed),
            "segment sealed"
        );
        Ok(sealed)
    }

    /// Deletes the journal of a segment that holds no audio worth keeping.
    pub fn abandon(self) -> Result<(), EncodeError> {
        let SegmentWriter {
            part_path, file, ..
        } = self;
        drop(file);
        fs::remove_file(&part_path).map_err(|e| EncodeError::io(&part_path, "remove", e))?;
        sync_dir(&part_path)?;
        tracing::debug!(path = %part_path.display(), "segment abandoned");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page_scan::{ScanEnd, scan_pages};

    fn tags() -> SegmentTags {
        SegmentTags {
            recording_id: "r".into(),
            track: "mic".into(),
            sequence: 1,
            start_48k: 0,
            start_time: "2025-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn writer_can_move_to_an_encoder_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<SegmentWriter>();
    }

    #[test]
    fn failed_journal_write_keeps_audio_and_retries_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("1.opus.part");
        let config = EncoderConfig {
            journal_page_ms: 100,
            ..Default::default()
        };
        let mut w = SegmentWriter::create(&part, &config, &tags()).unwrap();
        let frame: Vec<f32> = (0..320).map(|i| ((i as f32) * 0.05).sin() * 0.3).collect();
        for _ in 0..5 {
            w.push_frame(&frame).unwrap();
        }
        let good = w.journal_bytes();
        // A read-only handle makes every write fail, as a full disk would.
        let writable = std::mem::replace(&mut w.file, File::open(&part).unwrap());
        for i in 0..10 {
            let r = w.push_frame(&frame);
            if i % 5 == 4 {
                let err = r.unwrap_err();
                assert!(
                    matches!(
                        err,
                        EncodeError::Io {
                            action: "write journal page",
                            ..
                        }
                    ),
                    "{err:?}"
                );
            } else {
                r.unwrap();
            }
        }
        assert_eq!(w.frames(), 15);
        assert_eq!(w.journal_bytes(), good);
        assert_eq!(fs::metadata(&part).unwrap().len(), good);

        w.file = writable;
        w.flush_journal().unwrap();
        let bytes = fs::read(&part).unwrap();
        assert_eq!(w.journal_bytes(), bytes.len() as u64);
        let scan = scan_pages(&bytes);
        assert_eq!(scan.end, ScanEnd::Clean);
        assert_eq!(scan.pages.len(), 2 + 3);
        assert_eq!(scan.pages.last().unwrap().granule, 15 * 960);

        let sealed = w.seal(&dir.path().join("1.opus"), 15 * 320).unwrap();
        assert_eq!(sealed.length_48k, 15 * 960);
    }
}
