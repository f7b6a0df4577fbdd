//! The snapshot file, format 2: the key-value state as a stream of checksummed blocks,
//! written and read one block at a time so neither side ever holds the state in memory.
//!
//! ```text
//! header  "SHLTSNAP" | format u32 = 2 | revision u64 | CRC32C of the 20 bytes before, u32
//! block   kind u8 | payload length u32 | CRC32C of kind, length and payload, u32 | payload
//!         kind 1 (entries): repeated [key length u16 | key | entry length u32 | entry]
//!         kind 2 (end, the last block): entry count u64 | entries-block count u64
//! ```
//!
//! Integers are big-endian; an entry is the stored bytes of the `kv` family
//! (`VersionedValue::encode`). The reader refuses, naming the block: a wrong magic or
//! format (a format-1 JSON snapshot from an earlier release is named as such), a header or
//! block whose checksum does not match, a block longer than [`BLOCK_BYTES_MAX`], an entry
//! the state machine could not have written (`snapshot::check_entry`: key limits,
//! strictly ascending keys — also across blocks, so blocks cannot be reordered or
//! repeated — versions in `1..=revision`), counts in the end block that disagree with
//! what was read (a dropped block), and any byte after the end block or a file that stops
//! before it. CRC32C catches corruption on disk or in transit, not an adversary: chunks
//! in transit are also covered by the request's signed SHA-256 (`auth.rs`).

use std::io::{Read, Write};

use shardlet_core::Crc32c;

use crate::command::KEY_BYTES_MAX;
use crate::snapshot::{check_entry, SnapshotInvalid};

pub const MAGIC: &[u8; 8] = b"SHLTSNAP";
/// The format this release writes and reads. Format 1 was one JSON document
/// (`snapshot::SnapshotPayload`), kept in RocksDB; it is only converted at start-up
/// (`snapshot_store`), never accepted from another member.
pub const FORMAT_VERSION: u32 = 2;
/// A block is closed once its payload reaches this size: the unit of checksum, of read
/// memory, and (at most [`INSTALL_BLOCKS_PER_BATCH`] of them) of an install's write batch.
pub const BLOCK_BYTES_TARGET: usize = 1024 * 1024;
/// The largest block payload a reader accepts: one entry of the largest key and a value
/// up to 64 MiB (a value is bounded by the request body limit, 16 MiB by default, long
/// before). Bounds the memory a hostile length field can make a reader allocate.
pub const BLOCK_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Blocks written to RocksDB in one batch while installing: ≤ 4 MiB of entries per batch.
pub const INSTALL_BLOCKS_PER_BATCH: usize = 4;

const HEADER_BYTES: usize = 8 + 4 + 8 + 4;
const BLOCK_HEADER_BYTES: usize = 1 + 4 + 4;
const KIND_ENTRIES: u8 = 1;
const KIND_END: u8 = 2;
const END_PAYLOAD_BYTES: usize = 16;

/// Writes a snapshot file to `W` block by block. Entries must come in ascending key
/// order (as a RocksDB iterator yields them); `finish` must be called, or the file has no
/// end block and every reader refuses it.
pub struct SnapshotWriter<W: Write> {
    output: W,
    block: Vec<u8>,
    entries: u64,
    blocks: u64,
    bytes: u64,
}

impl<W: Write> SnapshotWriter<W> {
    pub fn new(mut output: W, revision: u64) -> std::io::Result<Self> {
        let mut header = Vec::with_capacity(HEADER_BYTES);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        header.extend_from_slice(&revision.to_be_bytes());
        let checksum = Crc32c::of(&header);
        header.extend_from_slice(&checksum.to_be_bytes());
        output.write_all(&header)?;
        Ok(Self {
            output,
            block: Vec::with_capacity(BLOCK_BYTES_TARGET + 64 * 1024),
            entries: 0,
            blocks: 0,
            bytes: HEADER_BYTES as u64,
        })
    }

    /// Appends one entry (key, stored entry bytes).
    pub fn push(&mut self, key: &[u8], entry: &[u8]) -> std::io::Result<()> {
        let key_length = u16::try_from(key.len())
            .ok()
            .filter(|length| usize::from(*length) <= KEY_BYTES_MAX);
        let entry_length = u32::try_from(entry.len()).ok();
        let (Some(key_length), Some(entry_length)) = (key_length, entry_length) else {
            return Err(std::io::Error::other(format!(
                "entry of a {}-byte key and {} bytes does not fit a snapshot block",
                key.len(),
                entry.len()
            )));
        };
        let size = 2 + key.len() + 4 + entry.len();
        if size > BLOCK_BYTES_MAX {
            return Err(std::io::Error::other(format!(
                "entry of {size} bytes is above BLOCK_BYTES_MAX ({BLOCK_BYTES_MAX})"
            )));
        }
        if !self.block.is_empty() && self.block.len() + size > BLOCK_BYTES_MAX {
            self.flush_block()?;
        }
        self.block.extend_from_slice(&key_length.to_be_bytes());
        self.block.extend_from_slice(key);
        self.block.extend_from_slice(&entry_length.to_be_bytes());
        self.block.extend_from_slice(entry);
        self.entries += 1;
        if self.block.len() >= BLOCK_BYTES_TARGET {
            self.flush_block()?;
        }
        Ok(())
    }

    fn flush_block(&mut self) -> std::io::Result<()> {
        let payload = std::mem::take(&mut self.block);
        self.write_block(KIND_ENTRIES, &payload)?;
        self.blocks += 1;
        self.block = payload;
        self.block.clear();
        Ok(())
    }

    fn write_block(&mut self, kind: u8, payload: &[u8]) -> std::io::Result<()> {
        let length = u32::try_from(payload.len()).map_err(std::io::Error::other)?;
        let checksum = block_checksum(kind, length, payload);
        self.output.write_all(&[kind])?;
        self.output.write_all(&length.to_be_bytes())?;
        self.output.write_all(&checksum.to_be_bytes())?;
        self.output.write_all(payload)?;
        self.bytes += (BLOCK_HEADER_BYTES + payload.len()) as u64;
        Ok(())
    }

    /// Writes the last entries block and the end block; returns the output, the entry
    /// count and the file's length in bytes. The caller makes it durable.
    pub fn finish(mut self) -> std::io::Result<(W, u64, u64)> {
        if !self.block.is_empty() {
            self.flush_block()?;
        }
        let mut end = Vec::with_capacity(END_PAYLOAD_BYTES);
        end.extend_from_slice(&self.entries.to_be_bytes());
        end.extend_from_slice(&self.blocks.to_be_bytes());
        self.write_block(KIND_END, &end)?;
        self.output.flush()?;
        Ok((self.output, self.entries, self.bytes))
    }
}

fn block_checksum(kind: u8, length: u32, payload: &[u8]) -> Crc32c {
    Crc32c::of(&[kind])
        .append(&length.to_be_bytes())
        .append(payload)
}

/// Reads and checks a snapshot file block by block (module comment: what it refuses).
pub struct SnapshotReader<R: Read> {
    input: R,
    revision: u64,
    last_key: Option<Vec<u8>>,
    entries: u64,
    blocks: u64,
    finished: bool,
}

/// The entries of one block: (key, stored entry bytes), keys ascending.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

fn read_error(error: std::io::Error) -> SnapshotInvalid {
    if error.kind() == std::io::ErrorKind::UnexpectedEof {
        SnapshotInvalid::Truncated("the file stops before its end block".into())
    } else {
        SnapshotInvalid::Read(error.to_string())
    }
}

impl<R: Read> SnapshotReader<R> {
    /// Reads and checks the header.
    pub fn open(mut input: R) -> Result<Self, SnapshotInvalid> {
        let mut header = [0u8; HEADER_BYTES];
        input.read_exact(&mut header).map_err(read_error)?;
        if header[0] == b'{' {
            return Err(SnapshotInvalid::FormatVersion(1));
        }
        if &header[..8] != MAGIC {
            return Err(SnapshotInvalid::Malformed(
                "no SHLTSNAP magic: not a snapshot file".into(),
            ));
        }
        let format = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
        let mut revision = [0u8; 8];
        revision.copy_from_slice(&header[12..20]);
        let stored = u32::from_be_bytes([header[20], header[21], header[22], header[23]]);
        if Crc32c::of(&header[..20]).0 != stored {
            return Err(SnapshotInvalid::Malformed(
                "header checksum does not match".into(),
            ));
        }
        if format != FORMAT_VERSION {
            return Err(SnapshotInvalid::FormatVersion(format));
        }
        Ok(Self {
            input,
            revision: u64::from_be_bytes(revision),
            last_key: None,
            entries: 0,
            blocks: 0,
            finished: false,
        })
    }

    /// The revision counter the snapshot carries.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Entries read so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// The next block's entries, checked; `None` after the end block (and the end of the
    /// file) was read.
    pub fn next_block(&mut self) -> Result<Option<Entries>, SnapshotInvalid> {
        if self.finished {
            return Ok(None);
        }
        let block = self.blocks;
        let invalid = |reason: String| SnapshotInvalid::Block { block, reason };
        let mut header = [0u8; BLOCK_HEADER_BYTES];
        self.input.read_exact(&mut header).map_err(read_error)?;
        let kind = header[0];
        let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let stored = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
        let length_bytes = usize::try_from(length).unwrap_or(usize::MAX);
        if length_bytes > BLOCK_BYTES_MAX {
            return Err(invalid(format!(
                "{length} bytes is above BLOCK_BYTES_MAX ({BLOCK_BYTES_MAX})"
            )));
        }
        let mut payload = vec![0u8; length_bytes];
        self.input.read_exact(&mut payload).map_err(read_error)?;
        if block_checksum(kind, length, &payload).0 != stored {
            return Err(invalid("checksum does not match: corrupted".into()));
        }
        match kind {
            KIND_ENTRIES => {
                let entries = self.parse_entries(&payload).map_err(invalid)?;
                self.blocks += 1;
                Ok(Some(entries))
            }
            KIND_END => {
                self.check_end(&payload).map_err(invalid)?;
                let mut rest = [0u8; 1];
                match self.input.read(&mut rest) {
                    Ok(0) => {}
                    Ok(_) => {
                        return Err(SnapshotInvalid::Malformed(
                            "bytes after the end block".into(),
                        ))
                    }
                    Err(error) => return Err(SnapshotInvalid::Read(error.to_string())),
                }
                self.finished = true;
                Ok(None)
            }
            other => Err(invalid(format!("unknown block kind {other}"))),
        }
    }

    fn parse_entries(&mut self, mut payload: &[u8]) -> Result<Entries, String> {
        if payload.is_empty() {
            return Err("an entries block without entries".into());
        }
        let mut entries = Vec::new();
        while !payload.is_empty() {
            let (key, rest) = take_field(payload, 2)?;
            let (entry, rest) = take_field(rest, 4)?;
            check_entry(self.last_key.as_deref(), key, entry, self.revision)
                .map_err(|reason| format!("entry {}: {reason}", self.entries))?;
            self.last_key = Some(key.to_vec());
            entries.push((key.to_vec(), entry.to_vec()));
            self.entries += 1;
            payload = rest;
        }
        Ok(entries)
    }

    fn check_end(&self, payload: &[u8]) -> Result<(), String> {
        let Ok(counts) = <[u8; END_PAYLOAD_BYTES]>::try_from(payload) else {
            return Err(format!(
                "end block of {} bytes, not {END_PAYLOAD_BYTES}",
                payload.len()
            ));
        };
        let (entries, blocks) = counts.split_at(8);
        let entries = u64::from_be_bytes(entries.try_into().map_err(|_| "entry count")?);
        let blocks = u64::from_be_bytes(blocks.try_into().map_err(|_| "block count")?);
        if (entries, blocks) != (self.entries, self.blocks) {
            return Err(format!(
                "end block counts {entries} entries in {blocks} blocks; read {} in {}",
                self.entries, self.blocks
            ));
        }
        Ok(())
    }
}

/// Splits a field prefixed by its big-endian length of `width` bytes (2 or 4) off `bytes`.
fn take_field(bytes: &[u8], width: usize) -> Result<(&[u8], &[u8]), String> {
    if bytes.len() < width {
        return Err("an entry cut in the middle of a length".into());
    }
    let (length, rest) = bytes.split_at(width);
    let length = length
        .iter()
        .fold(0usize, |length, byte| (length << 8) | usize::from(*byte));
    if rest.len() < length {
        return Err("an entry longer than its block".into());
    }
    Ok(rest.split_at(length))
}

/// Reads and checks a whole snapshot without keeping it: the entry count, or why it is
/// refused. Used on a received snapshot before it is handed to raft.
pub fn verify<R: Read>(input: R) -> Result<u64, SnapshotInvalid> {
    let mut reader = SnapshotReader::open(input)?;
    while reader.next_block()?.is_some() {}
    Ok(reader.entries())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::command::VersionedValue;

    fn stored(version: u64, bytes: usize) -> Vec<u8> {
        VersionedValue {
            version,
            value: crate::blob::Blob(vec![b'v'; bytes]),
        }
        .encode()
    }

    /// A snapshot of `count` entries of ~300 bytes, keys `k/{index:08}`.
    fn file(count: u64) -> Vec<u8> {
        let mut writer = SnapshotWriter::new(Vec::new(), count).unwrap();
        for index in 0..count {
            let key = format!("k/{index:08}");
            writer
                .push(key.as_bytes(), &stored(index + 1, 300))
                .unwrap();
        }
        let (bytes, entries, length) = writer.finish().unwrap();
        assert_eq!(entries, count);
        assert_eq!(length, bytes.len() as u64);
        bytes
    }

    #[test]
    fn a_snapshot_reads_back_block_by_block_as_written() {
        let bytes = file(10_000);
        let mut reader = SnapshotReader::open(bytes.as_slice()).unwrap();
        assert_eq!(reader.revision(), 10_000);
        let mut blocks = 0;
        let mut index = 0u64;
        while let Some(entries) = reader.next_block().unwrap() {
            blocks += 1;
            for (key, entry) in entries {
                assert_eq!(key, format!("k/{index:08}").into_bytes());
                assert_eq!(entry, stored(index + 1, 300));
                index += 1;
            }
        }
        assert_eq!(index, 10_000);
        assert!(blocks > 1, "3 MB of entries fill several 1 MiB blocks");
        assert_eq!(verify(file(0).as_slice()).unwrap(), 0);
    }

    #[test]
    fn a_corrupted_byte_anywhere_is_refused() {
        let bytes = file(5_000);
        // Every 997th byte: header, block headers, keys, values, the end block.
        for position in (0..bytes.len()).step_by(997) {
            let mut corrupted = bytes.clone();
            corrupted[position] ^= 0x40;
            assert!(
                verify(corrupted.as_slice()).is_err(),
                "a flipped byte at {position} of {} was accepted",
                bytes.len()
            );
        }
    }

    #[test]
    fn a_truncated_or_extended_snapshot_is_refused() {
        let bytes = file(5_000);
        for length in [0, 10, HEADER_BYTES, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                verify(&bytes[..length]).is_err(),
                "cut at {length} was accepted"
            );
        }
        let mut extended = bytes.clone();
        extended.push(0);
        assert!(matches!(
            verify(extended.as_slice()),
            Err(SnapshotInvalid::Malformed(_))
        ));
    }

    #[test]
    fn a_dropped_block_is_refused_by_the_end_counts() {
        let bytes = file(10_000);
        // Remove the second entries block: keys stay ascending, only the counts notice.
        let first = HEADER_BYTES;
        let length =
            |at: usize| u32::from_be_bytes(bytes[at + 1..at + 5].try_into().unwrap()) as usize;
        let second = first + BLOCK_HEADER_BYTES + length(first);
        let third = second + BLOCK_HEADER_BYTES + length(second);
        let mut dropped = bytes[..second].to_vec();
        dropped.extend_from_slice(&bytes[third..]);
        let error = verify(dropped.as_slice()).unwrap_err().to_string();
        assert!(error.contains("end block counts"), "{error}");
    }

    #[test]
    fn a_json_snapshot_of_the_previous_format_is_named() {
        let legacy = serde_json::to_vec(&crate::snapshot::SnapshotPayload::new(0, vec![])).unwrap();
        let error = verify(legacy.as_slice()).unwrap_err();
        assert_eq!(error, SnapshotInvalid::FormatVersion(1));
    }

    #[test]
    fn entries_the_state_machine_could_not_have_written_are_refused() {
        let mut writer = SnapshotWriter::new(Vec::new(), 3).unwrap();
        writer.push(b"b", &stored(1, 3)).unwrap();
        writer.push(b"a", &stored(2, 3)).unwrap();
        let (bytes, _, _) = writer.finish().unwrap();
        assert!(matches!(
            verify(bytes.as_slice()),
            Err(SnapshotInvalid::Block { .. })
        ));
        let mut writer = SnapshotWriter::new(Vec::new(), 3).unwrap();
        writer.push(b"a", &stored(4, 3)).unwrap();
        let (bytes, _, _) = writer.finish().unwrap();
        assert!(
            verify(bytes.as_slice()).is_err(),
            "version above the revision"
        );
    }
}
