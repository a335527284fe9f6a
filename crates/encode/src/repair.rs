//! Turning the journal of a crashed writer into a sealed segment.

use std::fs;
use std::path::Path;

use crate::EncodeError;
use crate::config::{EncoderConfig, GRANULE_RATE};
use crate::fs_util::{read_all, sync_dir};
use crate::opus_header::{OpusHead, OpusTags, SegmentTags};
use crate::page_scan::{AssembledPacket, ScanEnd, assemble_packets, intact_page_after, scan_pages};
use crate::sealed::{SealedSegment, StreamIdentity, write_sealed};

/// What [`repair`] did with a journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepairOutcome {
    /// The intact audio was sealed into the final file and the journal removed.
    Sealed {
        /// The sealed file.
        segment: SealedSegment,
        /// The tags read from the journal.
        tags: SegmentTags,
    },
    /// The journal held no complete audio page (or was torn inside its headers): it was removed.
    Empty,
}

/// Seals the intact prefix of a journal left by a crash, then deletes the journal.
///
/// Keeps every page up to the first one that is incomplete, fails its CRC, or breaks the
/// stream (garbage, another serial, a sequence gap); the audio of those pages is rebuilt into a
/// sealed file exactly as [`SegmentWriter::seal`](crate::SegmentWriter::seal) would, ending at the
/// granule of the last kept page. A journal cut short inside its header pages (a crash while
/// it was being created) holds no audio and yields [`RepairOutcome::Empty`]; damaged headers
/// with intact pages after them are an error, and the journal is left alone.
pub fn repair(part_path: &Path, final_path: &Path) -> Result<RepairOutcome, EncodeError> {
    let bytes = read_all(part_path)?;
    match salvage(part_path, &bytes)? {
        Some(salvaged) => {
            let identity = StreamIdentity {
                serial: salvaged.serial,
                head: salvaged.head,
                tags: &salvaged.tags,
            };
            let segment = write_sealed(
                final_path,
                &identity,
                &salvaged.packets,
                &salvaged.granules,
                salvaged.page_packets,
            )?;
            remove_part(part_path)?;
            tracing::info!(
                part = %part_path.display(),
                path = %final_path.display(),
                length_48k = segment.length_48k,
                "journal repaired"
            );
            Ok(RepairOutcome::Sealed {
                segment,
                tags: salvaged.tags,
            })
        }
        None => {
            remove_part(part_path)?;
            tracing::info!(part = %part_path.display(), "journal held no audio; removed");
            Ok(RepairOutcome::Empty)
        }
    }
}

fn remove_part(part_path: &Path) -> Result<(), EncodeError> {
    fs::remove_file(part_path).map_err(|e| EncodeError::io(part_path, "remove", e))?;
    sync_dir(part_path)
}

struct Salvaged {
    serial: u32,
    head: OpusHead,
    tags: SegmentTags,
    packets: Vec<Vec<u8>>,
    granules: Vec<u64>,
    page_packets: usize,
}

/// Finds the audio a journal can still give; `None` when there is none.
fn salvage(path: &Path, bytes: &[u8]) -> Result<Option<Salvaged>, EncodeError> {
    let scan = scan_pages(bytes);
    if !matches!(scan.end, ScanEnd::Clean) {
        tracing::warn!(part = %path.display(), "journal {}; keeping the {} pages before", scan.end, scan.pages.len());
    }
    // A stop inside the headers is a crash during create only if nothing intact follows.
    let torn_in_headers = scan.end.is_clean_or_torn() && !intact_page_after(bytes, scan.valid_len);
    let packets = assemble_packets(&scan.pages);

    let Some(first) = scan.pages.first() else {
        if bytes.is_empty() || torn_in_headers {
            return Ok(None);
        }
        if scan.end == (ScanEnd::NoCapture { offset: 0 }) {
            return Err(EncodeError::NotOgg {
                path: path.to_path_buf(),
                reason: "does not start with an Ogg page".into(),
            });
        }
        return Err(EncodeError::not_opus(
            path,
            format!("missing OpusHead: journal {}", scan.end),
        ));
    };
    let head_packet = match packets.first() {
        Some(p) if p.page_index == 0 => p,
        _ => return Err(EncodeError::not_opus(path, "missing OpusHead")),
    };
    let head = OpusHead::parse(&head_packet.data).map_err(|r| EncodeError::not_opus(path, r))?;
    if !first.bos || first.packets_ending() != 1 || first.ends_continued() {
        return Err(EncodeError::not_opus(
            path,
            "OpusHead is not alone on the first page",
        ));
    }

    let Some(tags_packet) = packets.get(1) else {
        if torn_in_headers {
            return Ok(None);
        }
        return Err(EncodeError::not_opus(
            path,
            format!("missing OpusTags: journal {}", scan.end),
        ));
    };
    let tags_page = &scan.pages[tags_packet.page_index];
    if tags_page.packets_ending() != 1 || tags_page.ends_continued() {
        return Err(EncodeError::corrupt(
            path,
            format!("OpusTags shares page {} with audio", tags_page.index),
        ));
    }
    let tags = OpusTags::parse(&tags_packet.data)
        .map_err(|r| EncodeError::not_opus(path, r))?
        .segment_tags(path)?;

    let mut audio: Vec<AssembledPacket> = packets.into_iter().skip(2).collect();
    let mut durations = Vec::with_capacity(audio.len());
    for (i, p) in audio.iter().enumerate() {
        match opus::packet::get_nb_samples(&p.data, GRANULE_RATE) {
            Ok(n) if n > 0 => durations.push(n as u64),
            _ => {
                tracing::warn!(part = %path.display(), packet = i, "audio packet does not parse; dropping it and the rest");
                break;
            }
        }
    }
    let all_parsed = durations.len() == audio.len();
    audio.truncate(durations.len());
    let Some(last) = audio.last() else {
        return Ok(None);
    };

    let carried: u64 = durations.iter().sum();
    // The last kept page's granule counts the packets completed on it; it can only be off from
    // what the packets carry if the journal was not written by us.
    let page_granule = scan.pages[last.page_index].granule;
    let mut final_granule = if all_parsed {
        page_granule.min(carried)
    } else {
        carried
    };
    if final_granule <= u64::from(head.pre_skip) {
        return Ok(None);
    }
    // Drop packets wholly past the final granule.
    let mut total = carried;
    while let Some(&d) = durations.last() {
        if total - d >= final_granule {
            total -= d;
            durations.pop();
            audio.pop();
        } else {
            break;
        }
    }
    final_granule = final_granule.min(total);

    let mut granules: Vec<u64> = durations
        .iter()
        .scan(0u64, |acc, d| {
            *acc += d;
            Some(*acc)
        })
        .collect();
    if let Some(g) = granules.last_mut() {
        *g = final_granule;
    }
    // Same page duration as a normal seal with the default config.
    let page_48k =
        u64::from(EncoderConfig::default().sealed_page_ms) * u64::from(GRANULE_RATE / 1000);
    let packet_48k = durations.first().copied().unwrap_or(1).max(1);
    let page_packets = (page_48k / packet_48k).max(1) as usize;
    Ok(Some(Salvaged {
        serial: first.serial,
        head,
        tags,
        packets: audio.into_iter().map(|p| p.data).collect(),
        granules,
        page_packets,
    }))
}
