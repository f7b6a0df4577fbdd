//! Writing and reading one fragment file (format in [`crate::format`]). Blocking I/O:
//! callers run these on blocking threads.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use shardlet_core::{Crc32c, Crc32cHasher};

use crate::format::{self, FragmentHeader, BLOCK_BYTES, HEADER_BYTES};
use crate::store::StoreError;

/// A file in `tmp/` that is deleted when this guard drops, unless it was renamed away.
/// Whatever happens to a write (error, client gone, task cancelled), its temporary file
/// does not outlive it; a crash leaves it for the start-up sweep of `tmp/`.
#[derive(Debug)]
pub struct TempPath {
    path: Option<PathBuf>,
}

impl TempPath {
    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// The file was renamed into place: nothing to delete any more.
    pub fn disarm(&mut self) {
        self.path = None;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            if let Err(error) = std::fs::remove_file(&path) {
                if error.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), %error, "cannot remove temporary file");
                }
            }
        }
    }
}

/// Streams one fragment into a temporary file, computing the per-block and the whole
/// CRC32C as bytes arrive, so nothing is buffered beyond what the caller hands in.
pub struct FragmentWriter {
    file: File,
    temp: TempPath,
    expected_length: u64,
    written: u64,
    whole: Crc32cHasher,
    block_crc: u32,
    block_filled: u64,
    block_crcs: Vec<u32>,
}

impl FragmentWriter {
    /// Creates `path` (which must not exist) with room for the header.
    ///
    /// Crash: the file is in `tmp/`, which start-up empties; nothing was acknowledged.
    pub fn create(path: PathBuf, expected_length: u64) -> io::Result<Self> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        let temp = TempPath { path: Some(path) };
        // The real header goes in last, once payload and table are written: a file with
        // a valid header is a complete file.
        file.write_all(&[0u8; HEADER_BYTES as usize])?;
        Ok(Self {
            file,
            temp,
            expected_length,
            written: 0,
            whole: Crc32cHasher::new(),
            block_crc: 0,
            block_filled: 0,
            block_crcs: Vec::with_capacity(format::block_count(expected_length) as usize),
        })
    }

    /// Appends payload bytes. More bytes than announced is an error (the sender lied
    /// about Content-Length, or is broken).
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<(), StoreError> {
        let length = bytes.len() as u64;
        if self.written + length > self.expected_length {
            return Err(StoreError::LengthMismatch {
                expected: self.expected_length,
                actual: self.written + length,
            });
        }
        self.file.write_all(bytes).map_err(StoreError::write)?;
        self.whole.update(bytes);
        self.written += length;
        while !bytes.is_empty() {
            let room = (BLOCK_BYTES - self.block_filled) as usize;
            let (in_block, rest) = bytes.split_at(room.min(bytes.len()));
            self.block_crc = Crc32c(self.block_crc).append(in_block).0;
            self.block_filled += in_block.len() as u64;
            if self.block_filled == BLOCK_BYTES {
                self.block_crcs.push(self.block_crc);
                self.block_crc = 0;
                self.block_filled = 0;
            }
            bytes = rest;
        }
        Ok(())
    }

    /// Checks length and CRC against what the sender claimed, writes table and header,
    /// and fdatasyncs. Returns the path of the complete, durable temporary file.
    ///
    /// Crash before the fdatasync returns: the file may be torn, but it is in `tmp/`.
    /// After: its content is on disk; it is still in `tmp/` until the caller renames it.
    pub fn finish(
        mut self,
        claimed_crc: Crc32c,
        fsync_seconds: &prometheus::Histogram,
    ) -> Result<StagedFragment, StoreError> {
        if self.written != self.expected_length {
            return Err(StoreError::LengthMismatch {
                expected: self.expected_length,
                actual: self.written,
            });
        }
        let actual = self.whole.finish();
        if actual != claimed_crc {
            return Err(StoreError::CrcMismatch {
                claimed: claimed_crc,
                actual,
            });
        }
        if self.block_filled > 0 {
            self.block_crcs.push(self.block_crc);
        }
        let header = FragmentHeader {
            payload_length: self.written,
            payload_crc: actual,
        };
        self.file
            .write_all(&format::encode_block_table(&self.block_crcs))
            .map_err(StoreError::write)?;
        self.file
            .write_all_at(&header.encode(), 0)
            .map_err(StoreError::write)?;
        let started = std::time::Instant::now();
        self.file.sync_data().map_err(StoreError::fsync)?;
        fsync_seconds.observe(started.elapsed().as_secs_f64());
        Ok(StagedFragment {
            temp: self.temp,
            header,
        })
    }
}

/// A complete fragment, fdatasync'd, in `tmp/`, waiting to be renamed into place.
#[derive(Debug)]
pub struct StagedFragment {
    pub temp: TempPath,
    pub header: FragmentHeader,
}

/// An open fragment file whose header and block table have been checked.
pub struct FragmentReader {
    file: File,
    pub header: FragmentHeader,
    block_crcs: Vec<u32>,
}

impl FragmentReader {
    /// Opens and checks header, file length and block table. `NotFound` if absent.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let (file, header) = open_header(path)?;
        let mut table = vec![0u8; (header.block_count() * 4) as usize];
        file.read_exact_at(&mut table, header.table_offset())
            .map_err(StoreError::read)?;
        Ok(Self {
            file,
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
        self.file
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
    let header = FragmentHeader::decode(&bytes)
        .map_err(|error| StoreError::ChecksumMismatch(error.to_string()))?;
    header
        .check_file_length(length)
        .map_err(|error| StoreError::ChecksumMismatch(error.to_string()))?;
    Ok((file, header))
}
