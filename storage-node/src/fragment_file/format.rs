//! The fragment file format, version 1.
//!
//! ```text
//! offset 0                 header, HEADER_BYTES (32), big-endian:
//!                            magic "SHFRAG" (6) | format version u16 | payload length u64
//!                            | block size u32 | payload CRC32C u32 | reserved u32 (0)
//!                            | header CRC32C u32 (over the 28 bytes before it)
//! offset 32                payload, `payload length` bytes
//! offset 32 + length       block table: one CRC32C (u32, big-endian) per BLOCK_BYTES block
//!                            of payload, the last block possibly short; none for 0 bytes
//! ```
//!
//! The header is written last (after payload and table), so a file whose header checks
//! out was completely written; the per-block table lets a range read verify only the
//! blocks it serves. The whole-payload CRC is what the API reports as `x-shardlet-crc32c`.

use shardlet_core::Crc32c;

pub const MAGIC: [u8; 6] = *b"SHFRAG";
pub const FORMAT_VERSION: u16 = 1;
/// Verification granularity: a read checks whole blocks, so this bounds the bytes read
/// beyond a range and the memory one block check needs.
pub const BLOCK_BYTES: u64 = 64 * 1024;
pub const HEADER_BYTES: u64 = 32;
/// Longest payload a header may claim. Far above any real fragment (a node refuses
/// more than its `max_fragment_bytes`, 16 MiB by default), and low enough that the file
/// length a header implies, and every offset into the file, fits in a u64: without it a
/// header with a valid checksum and a length near 2^64 overflowed `file_length` (found
/// by the `fragment_file` fuzz target), and a wrapped length could pass the size check
/// and size the block table from the claim.
pub const PAYLOAD_BYTES_MAX: u64 = 1 << 50;
const BLOCK_CRC_BYTES: u64 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentHeader {
    pub payload_length: u64,
    pub payload_crc: Crc32c,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("bad magic: not a shardlet fragment file")]
    BadMagic,
    #[error("unsupported fragment format version {0}")]
    UnsupportedVersion(u16),
    #[error("unsupported block size {0}")]
    UnsupportedBlockSize(u32),
    #[error("payload length {0} is above the format's limit of {PAYLOAD_BYTES_MAX} bytes")]
    PayloadTooLong(u64),
    #[error("header checksum mismatch")]
    HeaderChecksum,
    #[error("file is {actual} bytes, the header implies {expected}")]
    WrongFileLength { expected: u64, actual: u64 },
}

impl FragmentHeader {
    pub fn encode(&self) -> [u8; HEADER_BYTES as usize] {
        let mut out = [0u8; HEADER_BYTES as usize];
        out[0..6].copy_from_slice(&MAGIC);
        out[6..8].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
        out[8..16].copy_from_slice(&self.payload_length.to_be_bytes());
        out[16..20].copy_from_slice(&(BLOCK_BYTES as u32).to_be_bytes());
        out[20..24].copy_from_slice(&self.payload_crc.to_be_bytes());
        // 24..28 reserved, zero.
        let header_crc = Crc32c::of(&out[..28]).0;
        out[28..32].copy_from_slice(&header_crc.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8; HEADER_BYTES as usize]) -> Result<Self, FormatError> {
        let u32_at = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        if bytes[0..6] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        if Crc32c::of(&bytes[..28]).0 != u32_at(28) {
            return Err(FormatError::HeaderChecksum);
        }
        let version = u16::from_be_bytes([bytes[6], bytes[7]]);
        if version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion(version));
        }
        let block_size = u32_at(16);
        if u64::from(block_size) != BLOCK_BYTES {
            return Err(FormatError::UnsupportedBlockSize(block_size));
        }
        let mut length = [0u8; 8];
        length.copy_from_slice(&bytes[8..16]);
        let payload_length = u64::from_be_bytes(length);
        if payload_length > PAYLOAD_BYTES_MAX {
            return Err(FormatError::PayloadTooLong(payload_length));
        }
        Ok(Self {
            payload_length,
            payload_crc: Crc32c(u32_at(20)),
        })
    }

    pub fn block_count(&self) -> u64 {
        block_count(self.payload_length)
    }

    /// The exact size of a complete file with this header; anything else is torn or
    /// tampered with. Cannot overflow for a decoded header (`PAYLOAD_BYTES_MAX`).
    pub fn file_length(&self) -> u64 {
        HEADER_BYTES + self.payload_length + self.block_count() * BLOCK_CRC_BYTES
    }

    pub fn table_offset(&self) -> u64 {
        HEADER_BYTES + self.payload_length
    }

    pub fn check_file_length(&self, actual: u64) -> Result<(), FormatError> {
        let expected = self.file_length();
        if actual == expected {
            Ok(())
        } else {
            Err(FormatError::WrongFileLength { expected, actual })
        }
    }
}

pub fn block_count(payload_length: u64) -> u64 {
    payload_length.div_ceil(BLOCK_BYTES)
}

pub fn encode_block_table(block_crcs: &[u32]) -> Vec<u8> {
    block_crcs
        .iter()
        .flat_map(|crc| crc.to_be_bytes())
        .collect()
}

pub fn decode_block_table(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(BLOCK_CRC_BYTES as usize)
        .map(|chunk| u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn header_round_trips_and_any_flipped_bit_is_caught() {
        let header = FragmentHeader {
            payload_length: 1_048_579,
            payload_crc: Crc32c(0xdead_beef),
        };
        let bytes = header.encode();
        assert_eq!(FragmentHeader::decode(&bytes), Ok(header));
        for bit in 0..(HEADER_BYTES as usize * 8) {
            let mut flipped = bytes;
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(FragmentHeader::decode(&flipped).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn a_header_claiming_more_than_the_limit_is_refused_not_an_overflow() {
        for payload_length in [PAYLOAD_BYTES_MAX + 1, u64::MAX] {
            let mut bytes = [0u8; HEADER_BYTES as usize];
            bytes[0..6].copy_from_slice(&MAGIC);
            bytes[6..8].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
            bytes[8..16].copy_from_slice(&payload_length.to_be_bytes());
            bytes[16..20].copy_from_slice(&(BLOCK_BYTES as u32).to_be_bytes());
            let header_crc = Crc32c::of(&bytes[..28]).0;
            bytes[28..32].copy_from_slice(&header_crc.to_be_bytes());
            assert_eq!(
                FragmentHeader::decode(&bytes),
                Err(FormatError::PayloadTooLong(payload_length))
            );
        }
        let largest = FragmentHeader {
            payload_length: PAYLOAD_BYTES_MAX,
            payload_crc: Crc32c(0),
        };
        assert_eq!(FragmentHeader::decode(&largest.encode()), Ok(largest));
        assert!(largest.file_length() > PAYLOAD_BYTES_MAX);
    }

    #[test]
    fn file_length_counts_one_table_entry_per_started_block() {
        let length = |payload_length| {
            FragmentHeader {
                payload_length,
                payload_crc: Crc32c(0),
            }
            .file_length()
        };
        assert_eq!(length(0), 32);
        assert_eq!(length(1), 32 + 1 + 4);
        assert_eq!(length(BLOCK_BYTES), 32 + BLOCK_BYTES + 4);
        assert_eq!(length(BLOCK_BYTES + 1), 32 + BLOCK_BYTES + 1 + 8);
    }
}
