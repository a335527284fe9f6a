//! Turning packets into Ogg pages with the `ogg` crate's `PacketWriter`.
//!
//! We decide where every page ends ourselves, so that a page never holds more than the 255
//! lacing values the format allows. Otherwise `PacketWriter` would end the page on its own and
//! could split a packet across pages, which the journal and the page counts must not see.

use ogg::{PacketWriteEndInfo, PacketWriter};
use std::io;

/// Lacing values a page can hold.
pub(crate) const MAX_LACING: usize = 255;

/// Lacing values a packet of `len` bytes takes.
pub(crate) fn lacing_len(len: usize) -> usize {
    len / 255 + 1
}

/// How a page ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageEnd {
    /// An ordinary page.
    Page,
    /// The last page of the stream (EOS flag).
    Stream,
}

/// Serialises whole pages of one logical stream into an in-memory buffer.
pub(crate) struct Pager {
    writer: PacketWriter<'static, Vec<u8>>,
    serial: u32,
    pages: u64,
}

impl Pager {
    pub fn new(serial: u32) -> Self {
        Pager {
            writer: PacketWriter::new(Vec::new()),
            serial,
            pages: 0,
        }
    }

    /// Appends one page holding `packets`, each with the granule position after it.
    ///
    /// The caller keeps the total lacing within [`MAX_LACING`].
    pub fn page<'p>(
        &mut self,
        packets: impl ExactSizeIterator<Item = (&'p [u8], u64)>,
        end: PageEnd,
    ) -> io::Result<()> {
        let count = packets.len();
        for (i, (data, granule)) in packets.enumerate() {
            let info = match (i + 1 == count, end) {
                (false, _) => PacketWriteEndInfo::NormalPacket,
                (true, PageEnd::Page) => PacketWriteEndInfo::EndPage,
                (true, PageEnd::Stream) => PacketWriteEndInfo::EndStream,
            };
            // PacketWriter keeps packets until the page ends, so it needs owned data here.
            self.writer
                .write_packet(data.to_vec(), self.serial, info, granule)?;
        }
        if count > 0 {
            self.pages += 1;
        }
        Ok(())
    }

    /// Serialised pages not yet taken.
    pub fn bytes(&self) -> &[u8] {
        self.writer.inner()
    }

    /// Forgets the serialised bytes (after they reached the disk).
    pub fn clear(&mut self) {
        self.writer.inner_mut().clear();
    }

    pub fn pages(&self) -> u64 {
        self.pages
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.writer.into_inner()
    }
}

/// Splits packet indices `0..lens.len()` into pages of at most `max_packets` packets and
/// [`MAX_LACING`] lacing values. Returns the exclusive end index of each page.
pub(crate) fn page_breaks(lens: impl Iterator<Item = usize>, max_packets: usize) -> Vec<usize> {
    let mut breaks = Vec::new();
    let mut in_page = 0;
    let mut lacing = 0;
    let mut index = 0;
    for len in lens {
        let need = lacing_len(len);
        if in_page > 0 && (in_page == max_packets || lacing + need > MAX_LACING) {
            breaks.push(index);
            in_page = 0;
            lacing = 0;
        }
        in_page += 1;
        lacing += need;
        index += 1;
    }
    if in_page > 0 {
        breaks.push(index);
    }
    breaks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lacing() {
        assert_eq!(lacing_len(0), 1);
        assert_eq!(lacing_len(254), 1);
        assert_eq!(lacing_len(255), 2);
        assert_eq!(lacing_len(1275), 6);
    }

    #[test]
    fn breaks_by_count_and_by_lacing() {
        assert_eq!(page_breaks([60; 7].into_iter(), 3), vec![3, 6, 7]);
        assert_eq!(page_breaks(std::iter::empty(), 3), Vec::<usize>::new());
        // 1275-byte packets take 6 lacing values: 42 fit (252), the 43rd would not.
        assert_eq!(page_breaks([1275; 50].into_iter(), 50), vec![42, 50]);
        // 255 single-lacing packets fill a page exactly.
        assert_eq!(page_breaks([10; 256].into_iter(), 1000), vec![255, 256]);
    }

    #[test]
    fn pages_have_the_requested_shape() {
        let mut pager = Pager::new(5);
        let a = [1u8; 10];
        let b = [2u8; 300];
        pager
            .page([(&a[..], 0)].into_iter(), PageEnd::Page)
            .unwrap();
        pager
            .page([(&a[..], 960), (&b[..], 1920)].into_iter(), PageEnd::Stream)
            .unwrap();
        assert_eq!(pager.pages(), 2);
        let bytes = pager.into_bytes();
        let scan = crate::page_scan::scan_pages(&bytes);
        assert_eq!(scan.end, crate::page_scan::ScanEnd::Clean);
        assert_eq!(scan.pages.len(), 2);
        assert!(scan.pages[0].bos);
        assert!(scan.pages[1].eos);
        assert_eq!(scan.pages[1].granule, 1920);
        assert_eq!(scan.pages[1].lacing, &[10, 255, 45]);
        assert_eq!(
            scan.pages.iter().map(|p| p.serial).collect::<Vec<_>>(),
            [5, 5]
        );
    }
}
