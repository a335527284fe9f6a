//! A strict, copy-free Ogg page scanner for journals that may be torn or damaged.
//!
//! Unlike a player's reader it never resynchronises: it accepts pages only while each one
//! starts right where the previous ended, is complete, has a valid CRC, belongs to the same
//! logical stream and carries the next sequence number. The first page that breaks any of those
//! rules ends the scan, and [`ScanEnd`] says why. That prefix is exactly what a crash-safe
//! journal guarantees to be intact.

use crate::crc;

/// The four bytes that start every Ogg page.
pub const CAPTURE_PATTERN: &[u8; 4] = b"OggS";

/// Bytes of the fixed page header, before the lacing values.
pub const PAGE_HEADER_LEN: usize = 27;

const FLAG_CONTINUED: u8 = 0x01;
const FLAG_BOS: u8 = 0x02;
const FLAG_EOS: u8 = 0x04;

/// Granule position meaning "no packet completes on this page".
pub const NO_GRANULE: u64 = u64::MAX;

/// One intact page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedPage<'a> {
    /// Byte offset of the capture pattern in the scanned buffer.
    pub offset: usize,
    /// Index of the page in the scan (0 = first page of the buffer).
    pub index: usize,
    /// The first lacing segment continues a packet from the previous page.
    pub continued: bool,
    /// Beginning-of-stream flag.
    pub bos: bool,
    /// End-of-stream flag.
    pub eos: bool,
    /// Granule position ([`NO_GRANULE`] if no packet completes here).
    pub granule: u64,
    /// Logical stream serial number.
    pub serial: u32,
    /// Page sequence number.
    pub sequence: u32,
    /// Lacing values.
    pub lacing: &'a [u8],
    /// Page body (all segments).
    pub body: &'a [u8],
}

impl ScannedPage<'_> {
    /// Total bytes of the page including its header.
    pub fn len(&self) -> usize {
        PAGE_HEADER_LEN + self.lacing.len() + self.body.len()
    }

    /// Always false: a page has at least its header. Present because `len` is.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Number of packets that end on this page.
    pub fn packets_ending(&self) -> usize {
        self.lacing.iter().filter(|&&l| l < 255).count()
    }

    /// The last packet on this page continues on the next page.
    pub fn ends_continued(&self) -> bool {
        self.lacing.last().is_some_and(|&l| l == 255)
    }
}

/// Why a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEnd {
    /// Every byte belonged to an intact page.
    Clean,
    /// The bytes from `offset` are the start of a page that does not fit in the buffer: a torn
    /// write (or a damaged length field).
    Truncated {
        /// Where the incomplete page starts.
        offset: usize,
    },
    /// The bytes at `offset` are not an Ogg page (no capture pattern): garbage.
    NoCapture {
        /// Where the garbage starts.
        offset: usize,
    },
    /// A page header with a stream structure version other than 0.
    BadVersion {
        /// Where the page starts.
        offset: usize,
        /// The version byte found.
        version: u8,
    },
    /// A complete page whose CRC does not match.
    BadCrc {
        /// Where the page starts.
        offset: usize,
        /// Its index in the scan.
        index: usize,
    },
    /// A page of a different logical stream.
    SerialChanged {
        /// Where the page starts.
        offset: usize,
        /// Its index in the scan.
        index: usize,
    },
    /// A page whose sequence number is not the previous one plus one.
    SequenceGap {
        /// Where the page starts.
        offset: usize,
        /// Its index in the scan.
        index: usize,
        /// The sequence number that was due.
        expected: u32,
        /// The sequence number found.
        found: u32,
    },
}

impl ScanEnd {
    /// True for [`ScanEnd::Clean`] and [`ScanEnd::Truncated`]: the data stops, but nothing that
    /// is there is damaged.
    pub fn is_clean_or_torn(&self) -> bool {
        matches!(self, ScanEnd::Clean | ScanEnd::Truncated { .. })
    }
}

impl std::fmt::Display for ScanEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanEnd::Clean => write!(f, "ends cleanly"),
            ScanEnd::Truncated { offset } => {
                write!(f, "ends inside an incomplete page at byte {offset}")
            }
            ScanEnd::NoCapture { offset } => write!(f, "has no Ogg page at byte {offset}"),
            ScanEnd::BadVersion { offset, version } => write!(
                f,
                "page at byte {offset} has unknown stream structure version {version}"
            ),
            ScanEnd::BadCrc { offset, index } => {
                write!(f, "page {index} (byte {offset}) has a bad CRC")
            }
            ScanEnd::SerialChanged { offset, index } => write!(
                f,
                "page {index} (byte {offset}) belongs to another logical stream"
            ),
            ScanEnd::SequenceGap {
                offset,
                index,
                expected,
                found,
            } => write!(
                f,
                "page {index} (byte {offset}) has sequence number {found}, expected {expected}"
            ),
        }
    }
}

/// The intact prefix of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageScan<'a> {
    /// The pages, in order.
    pub pages: Vec<ScannedPage<'a>>,
    /// Bytes covered by `pages` (the offset where the scan stopped).
    pub valid_len: usize,
    /// Why the scan stopped.
    pub end: ScanEnd,
}

/// Scans `bytes` from offset 0 and returns its longest intact prefix of pages.
pub fn scan_pages(bytes: &[u8]) -> PageScan<'_> {
    let mut pages: Vec<ScannedPage<'_>> = Vec::new();
    let mut offset = 0;
    let end = loop {
        if offset == bytes.len() {
            break ScanEnd::Clean;
        }
        let page = match parse_page(bytes, offset, pages.len()) {
            Ok(page) => page,
            Err(end) => break end,
        };
        if let Some(first) = pages.first()
            && page.serial != first.serial
        {
            break ScanEnd::SerialChanged {
                offset,
                index: pages.len(),
            };
        }
        if let Some(prev) = pages.last() {
            let expected = prev.sequence.wrapping_add(1);
            if page.sequence != expected {
                break ScanEnd::SequenceGap {
                    offset,
                    index: pages.len(),
                    expected,
                    found: page.sequence,
                };
            }
        }
        offset += page.len();
        pages.push(page);
    };
    PageScan {
        pages,
        valid_len: offset,
        end,
    }
}

/// Parses the page at `offset` on its own (no stream continuity checks).
pub(crate) fn parse_page(
    bytes: &[u8],
    offset: usize,
    index: usize,
) -> Result<ScannedPage<'_>, ScanEnd> {
    let rest = &bytes[offset..];
    let capture_len = rest.len().min(CAPTURE_PATTERN.len());
    if rest[..capture_len] != CAPTURE_PATTERN[..capture_len] {
        return Err(ScanEnd::NoCapture { offset });
    }
    if rest.len() < PAGE_HEADER_LEN {
        return Err(ScanEnd::Truncated { offset });
    }
    let version = rest[4];
    if version != 0 {
        return Err(ScanEnd::BadVersion { offset, version });
    }
    let flags = rest[5];
    let granule = u64::from_le_bytes(array(&rest[6..14]));
    let serial = u32::from_le_bytes(array(&rest[14..18]));
    let sequence = u32::from_le_bytes(array(&rest[18..22]));
    let stored_crc = u32::from_le_bytes(array(&rest[22..26]));
    let segments = usize::from(rest[26]);
    let lacing_end = PAGE_HEADER_LEN + segments;
    if rest.len() < lacing_end {
        return Err(ScanEnd::Truncated { offset });
    }
    let lacing = &rest[PAGE_HEADER_LEN..lacing_end];
    let body_len: usize = lacing.iter().map(|&l| usize::from(l)).sum();
    let page_end = lacing_end + body_len;
    if rest.len() < page_end {
        return Err(ScanEnd::Truncated { offset });
    }
    let body = &rest[lacing_end..page_end];

    let mut crc = crc::update(0, &rest[..22]);
    crc = crc::update(crc, &[0; 4]);
    crc = crc::update(crc, &rest[26..page_end]);
    if crc != stored_crc {
        return Err(ScanEnd::BadCrc { offset, index });
    }
    Ok(ScannedPage {
        offset,
        index,
        continued: flags & FLAG_CONTINUED != 0,
        bos: flags & FLAG_BOS != 0,
        eos: flags & FLAG_EOS != 0,
        granule,
        serial,
        sequence,
        lacing,
        body,
    })
}

/// True if any intact page (valid CRC) starts somewhere after `from`. Tells a damaged page that
/// merely looks torn (its length field was hit) from a real torn write at the end of a file.
pub(crate) fn intact_page_after(bytes: &[u8], from: usize) -> bool {
    let mut start = from + 1;
    while start + CAPTURE_PATTERN.len() <= bytes.len() {
        match bytes[start..]
            .windows(CAPTURE_PATTERN.len())
            .position(|w| w == CAPTURE_PATTERN)
        {
            Some(pos) => {
                if parse_page(bytes, start + pos, 0).is_ok() {
                    return true;
                }
                start += pos + 1;
            }
            None => return false,
        }
    }
    false
}

/// A packet put back together from the lacing of one or more pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssembledPacket {
    /// The packet bytes.
    pub data: Vec<u8>,
    /// Index of the page on which the packet ends.
    pub page_index: usize,
}

/// Joins the lacing segments of `pages` into packets.
///
/// A packet continued from before the first page, or whose continuation page is missing, is
/// dropped; so is a packet still open after the last page (the write that would have finished it
/// never happened).
pub fn assemble_packets(pages: &[ScannedPage<'_>]) -> Vec<AssembledPacket> {
    let mut packets = Vec::new();
    // Bytes of a packet that the previous page left open; None also while skipping an orphan.
    let mut open: Option<Vec<u8>> = None;
    for page in pages {
        let mut current = if page.continued {
            open.take()
        } else {
            // The previous page's open packet was never finished: lacing says so.
            open = None;
            Some(Vec::new())
        };
        let mut pos = 0;
        for &lace in page.lacing {
            let seg = &page.body[pos..pos + usize::from(lace)];
            pos += usize::from(lace);
            if let Some(buf) = current.as_mut() {
                buf.extend_from_slice(seg);
            }
            if lace < 255 {
                if let Some(data) = current.take() {
                    packets.push(AssembledPacket {
                        data,
                        page_index: page.index,
                    });
                }
                current = Some(Vec::new());
            }
        }
        if page.ends_continued() {
            open = current;
        }
    }
    packets
}

fn array<const N: usize>(slice: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(slice);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ogg::{PacketWriteEndInfo, PacketWriter};

    fn stream(packets: &[(Vec<u8>, PacketWriteEndInfo)]) -> Vec<u8> {
        let mut w = PacketWriter::new(Vec::new());
        for (i, (p, end)) in packets.iter().enumerate() {
            w.write_packet(p.clone(), 0x1234_5678, *end, i as u64 * 10)
                .unwrap();
        }
        w.into_inner()
    }

    fn sample() -> (Vec<u8>, Vec<Vec<u8>>) {
        use PacketWriteEndInfo::*;
        let data: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 40 + usize::from(i)]).collect();
        let ends = [
            EndPage,
            NormalPacket,
            EndPage,
            NormalPacket,
            NormalPacket,
            EndStream,
        ];
        let packets: Vec<_> = data.iter().cloned().zip(ends).collect();
        (stream(&packets), data)
    }

    #[test]
    fn reads_pages_written_by_the_ogg_crate() {
        let (bytes, data) = sample();
        let scan = scan_pages(&bytes);
        assert_eq!(scan.end, ScanEnd::Clean);
        assert_eq!(scan.valid_len, bytes.len());
        assert_eq!(scan.pages.len(), 3);
        assert!(scan.pages[0].bos && !scan.pages[0].eos);
        assert!(scan.pages[2].eos && !scan.pages[2].bos);
        assert_eq!(
            scan.pages.iter().map(|p| p.sequence).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(
            scan.pages.iter().map(|p| p.granule).collect::<Vec<_>>(),
            [0, 20, 50]
        );
        assert_eq!(scan.pages[1].packets_ending(), 2);
        let packets = assemble_packets(&scan.pages);
        assert_eq!(
            packets.iter().map(|p| p.data.clone()).collect::<Vec<_>>(),
            data
        );
        assert_eq!(
            packets.iter().map(|p| p.page_index).collect::<Vec<_>>(),
            [0, 1, 1, 2, 2, 2]
        );
    }

    #[test]
    fn every_truncation_keeps_the_complete_pages() {
        let (bytes, _) = sample();
        let full = scan_pages(&bytes);
        let ends: Vec<usize> = full.pages.iter().map(|p| p.offset + p.len()).collect();
        for cut in 0..bytes.len() {
            let scan = scan_pages(&bytes[..cut]);
            let complete = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(scan.pages.len(), complete, "cut {cut}");
            let valid = if complete == 0 { 0 } else { ends[complete - 1] };
            assert_eq!(scan.valid_len, valid, "cut {cut}");
            if valid == cut {
                assert_eq!(scan.end, ScanEnd::Clean);
            } else {
                assert_eq!(scan.end, ScanEnd::Truncated { offset: valid });
            }
        }
    }

    #[test]
    fn garbage_and_flips_stop_the_scan() {
        let (bytes, _) = sample();
        let second = scan_pages(&bytes).pages[1].offset;

        let mut garbage = bytes.clone();
        garbage.extend_from_slice(b"this is not a page");
        let scan = scan_pages(&garbage);
        assert_eq!(scan.pages.len(), 3);
        assert_eq!(
            scan.end,
            ScanEnd::NoCapture {
                offset: bytes.len()
            }
        );

        let mut flipped = bytes.clone();
        flipped[second + 40] ^= 0x10;
        let scan = scan_pages(&flipped);
        assert_eq!(scan.pages.len(), 1);
        assert_eq!(
            scan.end,
            ScanEnd::BadCrc {
                offset: second,
                index: 1
            }
        );
        assert!(intact_page_after(&flipped, second));

        let mut version = bytes.clone();
        version[second + 4] = 1;
        assert_eq!(
            scan_pages(&version).end,
            ScanEnd::BadVersion {
                offset: second,
                version: 1
            }
        );
        assert_eq!(scan_pages(b"RIFF").end, ScanEnd::NoCapture { offset: 0 });
        assert_eq!(scan_pages(b"Og").end, ScanEnd::Truncated { offset: 0 });
    }

    #[test]
    fn stream_continuity_is_enforced() {
        let (bytes, _) = sample();
        let pages = scan_pages(&bytes).pages;
        let p0 = &bytes[..pages[0].len()];
        let p2 = &bytes[pages[2].offset..];
        let gap = [p0, p2].concat();
        assert_eq!(
            scan_pages(&gap).end,
            ScanEnd::SequenceGap {
                offset: p0.len(),
                index: 1,
                expected: 1,
                found: 2
            }
        );
        let mut w = PacketWriter::new(Vec::new());
        w.write_packet(vec![1u8; 3], 99, PacketWriteEndInfo::EndPage, 0)
            .unwrap();
        let other = [p0, &w.into_inner()].concat();
        assert_eq!(
            scan_pages(&other).end,
            ScanEnd::SerialChanged {
                offset: p0.len(),
                index: 1
            }
        );
    }

    #[test]
    fn packets_spanning_pages_are_joined_and_open_ones_dropped() {
        use PacketWriteEndInfo::*;
        // 70000 bytes need 275 lacing values: the ogg crate splits the packet over two pages.
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let bytes = stream(&[
            (vec![7; 19], EndPage),
            (big.clone(), NormalPacket),
            (vec![9; 30], EndPage),
        ]);
        let scan = scan_pages(&bytes);
        assert_eq!(scan.end, ScanEnd::Clean);
        assert_eq!(scan.pages.len(), 3);
        assert!(scan.pages[1].ends_continued());
        assert!(scan.pages[2].continued);
        let packets = assemble_packets(&scan.pages);
        assert_eq!(packets.len(), 3);
        assert_eq!(packets[1].data, big);
        assert_eq!(packets[1].page_index, 2);

        // Without its last page the big packet is incomplete and must not appear.
        let packets = assemble_packets(&scan.pages[..2]);
        assert_eq!(packets.len(), 1);
        assert_eq!(packets[0].data, vec![7; 19]);

        // Without its first part, the continuation is an orphan and is skipped.
        let tail = [scan.pages[2].clone()];
        let packets = assemble_packets(&tail);
        assert_eq!(packets.len(), 1);
        assert_eq!(packets[0].data, vec![9; 30]);
    }
}
