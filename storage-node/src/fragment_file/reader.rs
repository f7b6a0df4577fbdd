//! Reading one fragment, from its file or (a small fragment) from its stored value: the
//! header, the length it implies and the block table are checked on open, and every
//! block a read touches is checked before a byte of it is returned. Blocking I/O: callers
//! run these on blocking threads.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;
use shardlet_core::{Crc32c, Crc32cHasher};

use super::format::{self, FragmentHeader, BLOCK_BYTES, HEADER_BYTES};
use crate::store_error::StoreError;

/// Where a fragment's bytes are: its own file, or (a small fragment) in memory, read
/// from the small-fragment store. Both hold the same format.
enum Source {
    File(File),
    Memory(Bytes),
}

impl Source {
    fn read_exact_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<()> {
        match self {
            Self::File(file) => file.read_exact_at(buffer, offset),
            Self::Memory(bytes) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                let range = start..start.saturating_add(buffer.len());
                let piece = bytes
                    .get(range)
                    .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
                buffer.copy_from_slice(piece);
                Ok(())
            }
        }
    }
}

/// An open fragment whose header and block table have been checked.
pub struct FragmentReader {
    source: Source,
    pub header: FragmentHeader,
    block_crcs: Vec<u32>,
}

impl FragmentReader {
    /// Opens and checks header, file length and block table. `NotFound` if absent.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let (file, header) = open_header(path)?;
        Self::with_table(Source::File(file), header)
    }

    /// A fragment held in memory in the file format (a small fragment's stored value),
    /// checked like a file: header, length, block table.
    pub fn from_encoded(encoded: Bytes) -> Result<Self, StoreError> {
        let header = decode_header(&encoded)?;
        Self::with_table(Source::Memory(encoded), header)
    }

    fn with_table(source: Source, header: FragmentHeader) -> Result<Self, StoreError> {
        let mut table = vec![0u8; (header.block_count() * 4) as usize];
        source
            .read_exact_at(&mut table, header.table_offset())
            .map_err(StoreError::read)?;
        Ok(Self {
            source,
            header,
            block_crcs: format::decode_block_table(&table),
        })
    }

    /// Reads `start..end` (payload offsets, `end` exclusive, within the payload), reading
    /// and verifying every block the range touches; no unverified byte is returned.
    pub fn read_range(&self, start: u64, end: u64) -> Result<Bytes, StoreError> {
        if start >= end {
            return Ok(Bytes::new());
        }
        let first_block = start / BLOCK_BYTES;
        let last_block = (end - 1) / BLOCK_BYTES;
        let covered_start = first_block * BLOCK_BYTES;
        let covered_end = ((last_block + 1) * BLOCK_BYTES).min(self.header.payload_length);
        let mut buffer = vec![0u8; (covered_end - covered_start) as usize];
        self.source
            .read_exact_at(&mut buffer, HEADER_BYTES + covered_start)
            .map_err(StoreError::read)?;
        for (index, block) in buffer.chunks(BLOCK_BYTES as usize).enumerate() {
            let block_number = first_block + index as u64;
            let stored = self.block_crcs.get(block_number as usize).copied();
            if stored != Some(Crc32c::of(block).0) {
                return Err(StoreError::ChecksumMismatch(format!(
                    "block {block_number} does not match its checksum"
                )));
            }
        }
        let whole = Bytes::from(buffer);
        Ok(whole.slice((start - covered_start) as usize..(end - covered_start) as usize))
    }

    /// Reads and verifies the whole payload block by block, and the whole-payload CRC,
    /// without keeping more than one block in memory.
    pub fn verify_all(&self) -> Result<(), StoreError> {
        let mut hasher = Crc32cHasher::new();
        let mut offset = 0;
        while offset < self.header.payload_length {
            let end = (offset + BLOCK_BYTES).min(self.header.payload_length);
            hasher.update(&self.read_range(offset, end)?);
            offset = end;
        }
        if hasher.finish() != self.header.payload_crc {
            return Err(StoreError::ChecksumMismatch(
                "payload does not match its whole-fragment checksum".into(),
            ));
        }
        Ok(())
    }
}

/// Opens a fragment and checks its header and size, without reading the payload.
pub fn open_header(path: &Path) -> Result<(File, FragmentHeader), StoreError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(StoreError::NotFound),
        Err(error) => return Err(StoreError::read(error)),
    };
    let mut bytes = [0u8; HEADER_BYTES as usize];
    let length = file.metadata().map_err(StoreError::read)?.len();
    if length < HEADER_BYTES {
        return Err(StoreError::ChecksumMismatch(format!(
            "file is {length} bytes, shorter than a header"
        )));
    }
    file.read_exact_at(&mut bytes, 0)
        .map_err(StoreError::read)?;
    let header = checked_header(&bytes, length)?;
    Ok((file, header))
}

/// The header of a fragment held in memory, checked, with the length it implies.
pub fn decode_header(encoded: &[u8]) -> Result<FragmentHeader, StoreError> {
    let bytes: &[u8; HEADER_BYTES as usize] = encoded
        .get(..HEADER_BYTES as usize)
        .and_then(|head| head.try_into().ok())
        .ok_or_else(|| {
            StoreError::ChecksumMismatch(format!(
                "stored value is {} bytes, shorter than a header",
                encoded.len()
            ))
        })?;
    checked_header(bytes, encoded.len() as u64)
}

/// Decodes a header and checks it against the length of the whole stored fragment: a
/// failure means damaged data (`ChecksumMismatch`), in a file or a stored value alike.
fn checked_header(
    bytes: &[u8; HEADER_BYTES as usize],
    stored_length: u64,
) -> Result<FragmentHeader, StoreError> {
    let header = FragmentHeader::decode(bytes)
        .map_err(|error| StoreError::ChecksumMismatch(error.to_string()))?;
    header
        .check_file_length(stored_length)
        .map_err(|error| StoreError::ChecksumMismatch(error.to_string()))?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::fragment_file::writer::encode_fragment;

    /// A small fragment as the small-fragment store holds it.
    fn encoded(payload: &[u8]) -> Vec<u8> {
        let chunks = [Bytes::copy_from_slice(payload)];
        encode_fragment(&chunks, payload.len() as u64, Crc32c::of(payload))
            .unwrap()
            .1
    }

    fn is_damage(result: Result<FragmentHeader, StoreError>) -> bool {
        matches!(result, Err(StoreError::ChecksumMismatch(_)))
    }

    #[test]
    fn a_value_shorter_than_a_header_is_damage_not_a_panic() {
        for length in [0, 1, HEADER_BYTES as usize - 1] {
            assert!(is_damage(decode_header(&vec![0u8; length])), "{length}");
        }
    }

    #[test]
    fn a_value_whose_length_disagrees_with_its_header_is_damage() {
        let good = encoded(b"twelve bytes");
        assert_eq!(decode_header(&good).unwrap().payload_length, 12);
        assert!(
            is_damage(decode_header(&good[..good.len() - 1])),
            "cut short"
        );
        let mut longer = good.clone();
        longer.push(0);
        assert!(is_damage(decode_header(&longer)), "one byte too many");
        assert!(FragmentReader::from_encoded(Bytes::from(longer)).is_err());
    }

    #[test]
    fn a_value_of_zeros_or_with_a_flipped_header_bit_is_damage() {
        let good = encoded(&[7u8; 100]);
        assert!(is_damage(decode_header(&vec![0u8; good.len()])));
        let mut flipped = good;
        flipped[10] ^= 0x01;
        assert!(is_damage(decode_header(&flipped)));
    }

    #[test]
    fn a_rotten_payload_byte_is_caught_by_its_block_and_by_the_whole_check() {
        let payload: Vec<u8> = (0..(2 * BLOCK_BYTES + 10))
            .map(|index| index as u8)
            .collect();
        let mut value = encoded(&payload);
        let rotten = HEADER_BYTES as usize + BLOCK_BYTES as usize + 5;
        value[rotten] ^= 0x80;
        // Header and table are intact: the fragment opens.
        let reader = FragmentReader::from_encoded(Bytes::from(value)).unwrap();
        // A range in an intact block still reads; one touching the rotten block does not.
        assert_eq!(reader.read_range(0, 100).unwrap(), payload[..100]);
        let error = reader.read_range(BLOCK_BYTES, BLOCK_BYTES + 1).unwrap_err();
        assert!(
            matches!(&error, StoreError::ChecksumMismatch(reason) if reason.contains("block 1")),
            "{error}"
        );
        assert!(matches!(
            reader.verify_all(),
            Err(StoreError::ChecksumMismatch(_))
        ));
    }

    #[test]
    fn a_missing_file_is_not_found_and_a_truncated_one_is_damage() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("fragment");
        assert!(matches!(open_header(&path), Err(StoreError::NotFound)));
        std::fs::write(&path, [0u8; 5]).unwrap();
        assert!(matches!(
            open_header(&path),
            Err(StoreError::ChecksumMismatch(_))
        ));
        let value = encoded(b"some payload");
        std::fs::write(&path, &value[..value.len() - 2]).unwrap();
        assert!(matches!(
            FragmentReader::open(&path),
            Err(StoreError::ChecksumMismatch(_))
        ));
    }
}
