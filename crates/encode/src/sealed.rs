//! Building a sealed segment file from packets: the one code path shared by
//! [`SegmentWriter::seal`](crate::SegmentWriter::seal) and [`repair`](crate::repair).

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use crate::EncodeError;
use crate::fs_util::write_atomically;
use crate::opus_header::{OpusHead, SegmentTags, tags_packet};
use crate::paging::{PageEnd, Pager, page_breaks};

/// A finished, durable segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSegment {
    /// Where the file now is.
    pub path: PathBuf,
    /// File size in bytes.
    pub bytes: u64,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    /// Playable length after pre-skip and end trimming, in 48 kHz units.
    pub length_48k: u64,
    /// Pre-skip in 48 kHz units.
    pub pre_skip: u16,
    /// Audio packets (header packets not counted).
    pub packets: u64,
    /// Pages including the two header pages.
    pub pages: u64,
}

/// Everything about the stream except its audio packets.
pub(crate) struct StreamIdentity<'a> {
    pub serial: u32,
    pub head: OpusHead,
    pub tags: &'a SegmentTags,
}

/// Writes a complete Ogg Opus file: OpusHead and OpusTags alone on their pages, then the audio
/// in pages of at most `page_packets` packets, the last page flagged end-of-stream.
///
/// `granules[i]` is the granule position after packet `i`; the last one is the final granule,
/// which may be less than the audio carried (end trimming, RFC 7845 §4.4).
pub(crate) fn write_sealed<P: AsRef<[u8]>>(
    final_path: &Path,
    identity: &StreamIdentity<'_>,
    packets: &[P],
    granules: &[u64],
    page_packets: usize,
) -> Result<SealedSegment, EncodeError> {
    let (Some(&final_granule), true) = (granules.last(), granules.len() == packets.len()) else {
        // Callers check this; reaching here would be a bug, reported rather than panicking.
        return Err(EncodeError::corrupt(
            final_path,
            "internal: sealed file needs at least one audio packet and one granule per packet",
        ));
    };
    let bytes = build(identity, packets, granules, page_packets)
        .map_err(|e| EncodeError::io(final_path, "serialise pages", e))?;
    write_atomically(final_path, &bytes.0)?;
    let sha256 = Sha256::digest(&bytes.0)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let pre_skip = identity.head.pre_skip;
    tracing::debug!(
        path = %final_path.display(),
        bytes = bytes.0.len(),
        packets = packets.len(),
        final_granule,
        "sealed segment written"
    );
    Ok(SealedSegment {
        path: final_path.to_path_buf(),
        bytes: bytes.0.len() as u64,
        sha256,
        length_48k: final_granule.saturating_sub(u64::from(pre_skip)),
        pre_skip,
        packets: packets.len() as u64,
        pages: bytes.1,
    })
}

fn build<P: AsRef<[u8]>>(
    identity: &StreamIdentity<'_>,
    packets: &[P],
    granules: &[u64],
    page_packets: usize,
) -> std::io::Result<(Vec<u8>, u64)> {
    let mut pager = Pager::new(identity.serial);
    let head = identity.head.to_packet();
    let tags = tags_packet(identity.tags);
    pager.page([(&head[..], 0)].into_iter(), PageEnd::Page)?;
    pager.page([(&tags[..], 0)].into_iter(), PageEnd::Page)?;
    let breaks = page_breaks(packets.iter().map(|p| p.as_ref().len()), page_packets);
    let mut start = 0;
    for (k, &end) in breaks.iter().enumerate() {
        let kind = if k + 1 == breaks.len() {
            PageEnd::Stream
        } else {
            PageEnd::Page
        };
        pager.page(
            (start..end).map(|i| (packets[i].as_ref(), granules[i])),
            kind,
        )?;
        start = end;
    }
    let pages = pager.pages();
    Ok((pager.into_bytes(), pages))
}
