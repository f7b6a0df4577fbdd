//! Writing one fragment: streamed into a temporary file ([`FragmentWriter`]), or encoded
//! whole in memory for the small-fragment store ([`encode_fragment`]). Both check the
//! length and CRC32C the sender claimed before anything counts as stored.
//!
//! Durability of a file write, step by step (the store does the rename and the directory
//! fsync that follow):
//! 1. [`FragmentWriter::create`] makes the file in `tmp/` — a crash leaves it there, and
//!    start-up empties `tmp/`; nothing was acknowledged;
//! 2. payload and block table are written, the header last (its place stays zero until
//!    then), so a file whose header checks out was completely written;
//! 3. [`FragmentWriter::finish`] fdatasyncs — after it the content is on disk, still in
//!    `tmp/` until the caller renames it into place.
//!
//! Blocking I/O: callers run these on blocking threads.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use shardlet_core::{Crc32c, Crc32cHasher};

use super::format::{self, FragmentHeader, BLOCK_BYTES, HEADER_BYTES};
use super::staging::{PooledBuffer, StagingPool, DIRECT_IO_ALIGN, STAGING_BYTES_MAX};
use crate::store_error::StoreError;

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

/// Files at least this long are written with `O_DIRECT` unless the writer asks to keep
/// them cached: the bytes go from one reused, aligned buffer straight to the device
/// instead of being copied into freshly allocated page-cache pages (on this machine class
/// that copy ran at ~0.4–1.6 GB/s and was the largest CPU cost of a large PUT; `O_DIRECT`
/// writes 3 GB/s at ~0 CPU). Smaller files are cheaper buffered (one write, then the same
/// fdatasync): measured in `docs/storage-node.md`.
pub const DIRECT_IO_MIN_FILE_BYTES: u64 = 512 * 1024;

/// Streams one fragment into a temporary file, computing the per-block and the whole
/// CRC32C as bytes arrive. Bytes are gathered in one staging buffer (at most
/// `STAGING_BYTES_MAX`) and written in aligned pieces, so memory stays bounded whatever
/// the fragment size.
pub struct FragmentWriter {
    file: File,
    temp: TempPath,
    direct: bool,
    expected_length: u64,
    written: u64,
    whole: Crc32cHasher,
    block_crc: u32,
    block_filled: u64,
    block_crcs: Vec<u32>,
    staging: PooledBuffer,
    /// Bytes of `staging` in use; they belong at file offset `flushed`.
    staged: usize,
    /// File bytes already written (a multiple of the staging size).
    flushed: u64,
    /// The file's first aligned block as written, header still zero: the header goes in
    /// last and `O_DIRECT` cannot write 32 bytes on their own.
    first_block: Option<Vec<u8>>,
}

impl FragmentWriter {
    /// Creates `path` (which must not exist) for a fragment of `expected_length` bytes.
    /// `keep_cached`: the copy will be read soon (the replica reads start at), so it goes
    /// through the page cache whatever its size.
    ///
    /// Crash: the file is in `tmp/`, which start-up empties; nothing was acknowledged.
    pub fn create(
        path: PathBuf,
        expected_length: u64,
        keep_cached: bool,
        pool: &Arc<StagingPool>,
    ) -> io::Result<Self> {
        let file_length = FragmentHeader {
            payload_length: expected_length,
            payload_crc: Crc32c(0),
        }
        .file_length();
        let want_direct = !keep_cached && file_length >= DIRECT_IO_MIN_FILE_BYTES;
        let (file, direct) = create_file(&path, want_direct)?;
        let temp = TempPath { path: Some(path) };
        let staging_bytes = (file_length as usize)
            .next_multiple_of(DIRECT_IO_ALIGN)
            .min(STAGING_BYTES_MAX);
        Ok(Self {
            file,
            temp,
            direct,
            expected_length,
            written: 0,
            whole: Crc32cHasher::new(),
            block_crc: 0,
            block_filled: 0,
            block_crcs: Vec::with_capacity(format::block_count(expected_length) as usize),
            staging: pool.take(staging_bytes),
            // The header's place, zero until `finish`: a file with a valid header is a
            // complete file.
            staged: HEADER_BYTES as usize,
            flushed: 0,
            first_block: None,
        })
    }

    /// Appends payload bytes. More bytes than announced is an error (the sender lied
    /// about Content-Length, or is broken).
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let length = bytes.len() as u64;
        if self.written + length > self.expected_length {
            return Err(StoreError::LengthMismatch {
                expected: self.expected_length,
                actual: self.written + length,
            });
        }
        self.whole.update(bytes);
        self.written += length;
        let mut rest = bytes;
        while !rest.is_empty() {
            let room = (BLOCK_BYTES - self.block_filled) as usize;
            let (in_block, after) = rest.split_at(room.min(rest.len()));
            self.block_crc = Crc32c(self.block_crc).append(in_block).0;
            self.block_filled += in_block.len() as u64;
            if self.block_filled == BLOCK_BYTES {
                self.block_crcs.push(self.block_crc);
                self.block_crc = 0;
                self.block_filled = 0;
            }
            rest = after;
        }
        self.stage(bytes).map_err(StoreError::write)
    }

    /// Copies `bytes` into the staging buffer, writing it out each time it fills.
    fn stage(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let capacity = self.staging.capacity();
            let take = (capacity - self.staged).min(bytes.len());
            self.staging.region()[self.staged..self.staged + take].copy_from_slice(&bytes[..take]);
            self.staged += take;
            bytes = &bytes[take..];
            if self.staged == capacity {
                self.flush_staging(capacity)?;
            }
        }
        Ok(())
    }

    /// Writes the first `length` bytes of the staging buffer (aligned, or padded with
    /// zeros to alignment, for the last piece) at `flushed` and empties the buffer.
    fn flush_staging(&mut self, length: usize) -> io::Result<()> {
        let offset = self.flushed;
        let region = self.staging.region();
        if offset == 0 {
            self.first_block = Some(region[..DIRECT_IO_ALIGN.min(length)].to_vec());
        }
        self.file.write_all_at(&region[..length], offset)?;
        self.flushed += length as u64;
        self.staged = 0;
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
        self.stage(&format::encode_block_table(&self.block_crcs))
            .map_err(StoreError::write)?;
        let encoded_header = header.encode();
        if self.flushed == 0 {
            // Everything is still in the buffer: put the header in before the one write.
            self.staging.region()[..HEADER_BYTES as usize].copy_from_slice(&encoded_header);
        }
        if self.staged > 0 {
            let length = if self.direct {
                // Zero padding up to alignment; `set_len` below cuts it off again.
                let padded = self.staged.next_multiple_of(DIRECT_IO_ALIGN);
                let staged = self.staged;
                self.staging.region()[staged..padded].fill(0);
                padded
            } else {
                self.staged
            };
            self.flush_staging(length).map_err(StoreError::write)?;
        }
        if let Some(mut first_block) = self.first_block.take() {
            if first_block[..HEADER_BYTES as usize] != encoded_header {
                first_block[..HEADER_BYTES as usize].copy_from_slice(&encoded_header);
                let length = first_block.len();
                let region = self.staging.region();
                region[..length].copy_from_slice(&first_block);
                self.file
                    .write_all_at(&region[..length], 0)
                    .map_err(StoreError::write)?;
            }
        }
        let file_length = header.file_length();
        if self.flushed != file_length {
            self.file.set_len(file_length).map_err(StoreError::write)?;
        }
        let started = std::time::Instant::now();
        self.file.sync_data().map_err(StoreError::fsync)?;
        fsync_seconds.observe(started.elapsed().as_secs_f64());
        Ok(StagedFragment {
            temp: self.temp,
            header,
        })
    }

    /// Whether this write bypasses the page cache (for tests).
    pub fn is_direct(&self) -> bool {
        self.direct
    }
}

/// Creates a new file, with `O_DIRECT` when asked and the file system allows it (tmpfs
/// before Linux 6.6 and some others refuse it with `EINVAL`: then buffered, which is
/// equally correct, only slower for large files).
pub(super) fn create_file(path: &Path, direct: bool) -> io::Result<(File, bool)> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    if direct {
        let mut direct_options = options.clone();
        direct_options.custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32);
        match direct_options.open(path) {
            Ok(file) => return Ok((file, true)),
            Err(error) if error.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                // Some file systems create the file before refusing the flag: the name is
                // this writer's own (random), so remove it before creating it again.
                let _ = std::fs::remove_file(path);
                tracing::debug!(path = %path.display(), "O_DIRECT refused here; writing buffered");
            }
            Err(error) => return Err(error),
        }
    }
    Ok((options.open(path)?, false))
}

/// A complete fragment, fdatasync'd, in `tmp/`, waiting to be renamed into place.
#[derive(Debug)]
pub struct StagedFragment {
    pub temp: TempPath,
    pub header: FragmentHeader,
}

/// A whole fragment in the file format, in memory, from its payload `chunks`: checks the
/// length against `expected_length` and the CRC against what the sender claimed, exactly
/// as [`FragmentWriter::finish`] does for a file.
pub fn encode_fragment(
    chunks: &[Bytes],
    expected_length: u64,
    claimed_crc: Crc32c,
) -> Result<(FragmentHeader, Vec<u8>), StoreError> {
    let actual_length: u64 = chunks.iter().map(|chunk| chunk.len() as u64).sum();
    if actual_length != expected_length {
        return Err(StoreError::LengthMismatch {
            expected: expected_length,
            actual: actual_length,
        });
    }
    let header_placeholder = FragmentHeader {
        payload_length: actual_length,
        payload_crc: Crc32c(0),
    };
    let mut encoded = Vec::with_capacity(header_placeholder.file_length() as usize);
    encoded.extend_from_slice(&[0u8; HEADER_BYTES as usize]);
    for chunk in chunks {
        encoded.extend_from_slice(chunk);
    }
    let payload = &encoded[HEADER_BYTES as usize..];
    let block_crcs: Vec<u32> = payload
        .chunks(BLOCK_BYTES as usize)
        .map(|block| Crc32c::of(block).0)
        .collect();
    // The whole-payload CRC from the block CRCs would need a CRC combine; one more pass
    // over a small payload is cheaper than the code.
    let actual = Crc32c::of(payload);
    if actual != claimed_crc {
        return Err(StoreError::CrcMismatch {
            claimed: claimed_crc,
            actual,
        });
    }
    let header = FragmentHeader {
        payload_length: actual_length,
        payload_crc: actual,
    };
    encoded.extend_from_slice(&format::encode_block_table(&block_crcs));
    encoded[..HEADER_BYTES as usize].copy_from_slice(&header.encode());
    Ok((header, encoded))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn histogram() -> prometheus::Histogram {
        prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("t", "t")).unwrap()
    }

    #[test]
    fn a_fragment_encoded_in_memory_is_byte_for_byte_the_file_a_writer_makes() {
        let directory = tempfile::tempdir().unwrap();
        let pool = StagingPool::new(1);
        for length in [
            0usize,
            1,
            4000,
            BLOCK_BYTES as usize,
            BLOCK_BYTES as usize + 3,
        ] {
            let payload: Vec<u8> = (0..length).map(|index| (index * 7) as u8).collect();
            let chunks: Vec<Bytes> = payload.chunks(1500).map(Bytes::copy_from_slice).collect();
            let (header, in_memory) =
                encode_fragment(&chunks, length as u64, Crc32c::of(&payload)).unwrap();
            let path = directory.path().join(format!("f{length}"));
            let mut writer =
                FragmentWriter::create(path.clone(), length as u64, true, &pool).unwrap();
            writer.write(&payload).unwrap();
            let mut staged = writer.finish(Crc32c::of(&payload), &histogram()).unwrap();
            staged.temp.disarm();
            assert_eq!(staged.header, header);
            assert_eq!(std::fs::read(&path).unwrap(), in_memory, "{length}");
        }
    }

    #[test]
    fn encoding_in_memory_checks_length_and_crc_like_a_file_write() {
        let chunks = [Bytes::from_static(b"abc"), Bytes::from_static(b"de")];
        let crc = Crc32c::of(b"abcde");
        assert!(matches!(
            encode_fragment(&chunks, 6, crc),
            Err(StoreError::LengthMismatch {
                expected: 6,
                actual: 5
            })
        ));
        assert!(matches!(
            encode_fragment(&chunks, 5, Crc32c(crc.0 ^ 1)),
            Err(StoreError::CrcMismatch { .. })
        ));
        let (header, encoded) = encode_fragment(&chunks, 5, crc).unwrap();
        assert_eq!(header.payload_crc, crc);
        assert_eq!(encoded.len() as u64, header.file_length());
    }

    #[test]
    fn a_dropped_write_removes_its_temporary_file() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("abandoned");
        let mut writer =
            FragmentWriter::create(path.clone(), 10, false, &StagingPool::new(1)).unwrap();
        writer.write(b"12345").unwrap();
        assert!(path.exists());
        drop(writer);
        assert!(!path.exists());
    }
}
