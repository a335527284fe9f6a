//! The Ogg page checksum (RFC 3533 §6): CRC-32, polynomial 0x04C11DB7, MSB first (not
//! reflected), initial value 0, no final XOR.

const POLY: u32 = 0x04C1_1DB7;

const TABLE: [u32; 256] = build_table();

const fn build_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut r = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            r = if r & 0x8000_0000 != 0 {
                (r << 1) ^ POLY
            } else {
                r << 1
            };
            bit += 1;
        }
        table[i] = r;
        i += 1;
    }
    table
}

/// Continues a running checksum over `data`.
pub(crate) fn update(crc: u32, data: &[u8]) -> u32 {
    data.iter().fold(crc, |crc, &byte| {
        (crc << 8) ^ TABLE[usize::from((crc >> 24) as u8 ^ byte)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_bitwise_definition() {
        fn slow(data: &[u8]) -> u32 {
            let mut crc = 0u32;
            for &b in data {
                crc ^= u32::from(b) << 24;
                for _ in 0..8 {
                    crc = if crc & 0x8000_0000 != 0 {
                        (crc << 1) ^ POLY
                    } else {
                        crc << 1
                    };
                }
            }
            crc
        }
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        assert_eq!(update(0, &data), slow(&data));
        assert_eq!(update(update(0, &data[..333]), &data[333..]), slow(&data));
    }

    #[test]
    fn known_vector() {
        // CRC-32/MPEG-2 without init/xorout ("CRC-32/POSIX" minus its final steps) of "123456789"
        // is 0x89A1897F for init 0 and no reflection.
        assert_eq!(update(0, b"123456789"), 0x89A1_897F);
    }
}
