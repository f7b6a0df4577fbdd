//! Writing and reading one fragment file (format in [`crate::format`]). Blocking I/O:
//! callers run these on blocking threads.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

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

/// Files at least this long are written with `O_DIRECT` unless the writer asks to keep
/// them cached: the bytes go from one reused, aligned buffer straight to the device
/// instead of being copied into freshly allocated page-cache pages (on this machine class
/// that copy ran at ~0.4–1.6 GB/s and was the largest CPU cost of a large PUT; `O_DIRECT`
/// writes 3 GB/s at ~0 CPU). Smaller files are cheaper buffered (one write, then the same
/// fdatasync): measured in `docs/storage-node.md`.
pub const DIRECT_IO_MIN_FILE_BYTES: u64 = 512 * 1024;
/// Alignment of `O_DIRECT` buffers, file offsets and lengths: the page size, a multiple
/// of every logical block size in use.
const DIRECT_IO_ALIGN: usize = 4096;
/// The most one write buffers before it goes to disk.
const STAGING_BYTES_MAX: usize = 1024 * 1024;

/// A zeroed byte buffer whose usable region starts at a `DIRECT_IO_ALIGN` boundary, built
/// from an over-allocated `Vec` (no `unsafe`). The `Vec` never grows, so the region stays
/// where it is.
struct AlignedBuffer {
    storage: Vec<u8>,
    start: usize,
    capacity: usize,
}

impl AlignedBuffer {
    fn new(capacity: usize) -> Self {
        let storage = vec![0u8; capacity + DIRECT_IO_ALIGN];
        let start = storage.as_ptr().align_offset(DIRECT_IO_ALIGN);
        Self {
            storage,
            start,
            capacity,
        }
    }

    fn region(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.capacity]
    }
}

/// Full-size staging buffers kept for reuse: a fresh megabyte costs a page fault per 4 KiB
/// on first touch (and on a VM, a fault in the host too), which measured as much as the
/// write itself. Keeps at most `kept_max` buffers, so a burst of writes does not pin its
/// peak memory for good.
pub struct StagingPool {
    free: Mutex<Vec<AlignedBuffer>>,
    kept_max: usize,
}

impl StagingPool {
    pub fn new(kept_max: usize) -> Arc<Self> {
        Arc::new(Self {
            free: Mutex::new(Vec::new()),
            kept_max,
        })
    }

    fn take(self: &Arc<Self>, capacity: usize) -> PooledBuffer {
        let reused = if capacity == STAGING_BYTES_MAX {
            self.lock().pop()
        } else {
            None
        };
        PooledBuffer {
            buffer: Some(reused.unwrap_or_else(|| AlignedBuffer::new(capacity))),
            pool: Arc::clone(self),
        }
    }

    /// Buffers waiting for reuse.
    pub fn kept(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<AlignedBuffer>> {
        // A list of buffers is valid after any panic.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A staging buffer that goes back to its pool (if full-size and the pool has room) when
/// the write that used it ends, however it ends.
struct PooledBuffer {
    buffer: Option<AlignedBuffer>,
    pool: Arc<StagingPool>,
}

impl PooledBuffer {
    fn capacity(&self) -> usize {
        self.buffer.as_ref().map_or(0, |buffer| buffer.capacity)
    }

    fn region(&mut self) -> &mut [u8] {
        match self.buffer.as_mut() {
            Some(buffer) => buffer.region(),
            None => &mut [],
        }
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            if buffer.capacity == STAGING_BYTES_MAX {
                let mut free = self.pool.lock();
                if free.len() < self.pool.kept_max {
                    free.push(buffer);
                }
            }
        }
    }
}

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
fn create_file(path: &Path, direct: bool) -> io::Result<(File, bool)> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn histogram() -> prometheus::Histogram {
        prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("t", "t")).unwrap()
    }

    fn pool() -> Arc<StagingPool> {
        StagingPool::new(4)
    }

    fn payload(length: usize) -> Vec<u8> {
        (0..length)
            .map(|index| (index as u64).wrapping_mul(2_654_435_761) as u8 ^ (index >> 12) as u8)
            .collect()
    }

    /// Writes `data` in pieces of `piece` bytes and returns the finished file's path.
    fn write_in_pieces(directory: &Path, data: &[u8], piece: usize) -> (PathBuf, bool) {
        let path = directory.join(format!("f-{}-{piece}", data.len()));
        let mut writer =
            FragmentWriter::create(path.clone(), data.len() as u64, false, &pool()).unwrap();
        let direct = writer.is_direct();
        for chunk in data.chunks(piece.max(1)) {
            writer.write(chunk).unwrap();
        }
        let mut staged = writer.finish(Crc32c::of(data), &histogram()).unwrap();
        staged.temp.disarm();
        (path, direct)
    }

    #[test]
    fn every_length_reads_back_exactly_with_and_without_direct_io() {
        let directory = tempfile::tempdir().unwrap();
        let staging = STAGING_BYTES_MAX;
        // Where the file system refuses O_DIRECT (older tmpfs), every write is buffered.
        let probe = directory.path().join("probe");
        let direct_io_works = create_file(&probe, true).unwrap().1;
        std::fs::remove_file(&probe).unwrap();
        let lengths = [
            0,
            1,
            4064,
            4065,
            65_536,
            DIRECT_IO_MIN_FILE_BYTES as usize - 40,
            DIRECT_IO_MIN_FILE_BYTES as usize,
            staging - 32 - 64,
            staging - 32,
            staging,
            staging + 4096,
            3 * staging + 7,
        ];
        for length in lengths {
            let data = payload(length);
            for piece in [1000, 65_536, 1 << 20] {
                let (path, direct) = write_in_pieces(directory.path(), &data, piece);
                let file_length = FragmentHeader {
                    payload_length: length as u64,
                    payload_crc: Crc32c(0),
                }
                .file_length();
                let expect_direct = file_length >= DIRECT_IO_MIN_FILE_BYTES && direct_io_works;
                assert_eq!(direct, expect_direct, "{length}");
                assert_eq!(std::fs::metadata(&path).unwrap().len(), file_length);
                let reader = FragmentReader::open(&path).unwrap();
                assert_eq!(reader.header.payload_length, length as u64);
                assert_eq!(reader.header.payload_crc, Crc32c::of(&data));
                reader.verify_all().unwrap();
                assert_eq!(reader.read_range(0, length as u64).unwrap(), data);
                if length > 10 {
                    let (start, end) = (length as u64 / 3, length as u64 - 5);
                    assert_eq!(
                        reader.read_range(start, end).unwrap(),
                        data[start as usize..end as usize]
                    );
                }
                std::fs::remove_file(&path).unwrap();
            }
        }
    }

    #[test]
    fn a_copy_to_keep_cached_is_written_through_the_page_cache_whatever_its_size() {
        let directory = tempfile::tempdir().unwrap();
        let data = payload(2 * STAGING_BYTES_MAX + 5);
        let path = directory.path().join("cached");
        let mut writer =
            FragmentWriter::create(path.clone(), data.len() as u64, true, &pool()).unwrap();
        assert!(!writer.is_direct());
        writer.write(&data).unwrap();
        let mut staged = writer.finish(Crc32c::of(&data), &histogram()).unwrap();
        staged.temp.disarm();
        let reader = FragmentReader::open(&path).unwrap();
        reader.verify_all().unwrap();
        assert_eq!(reader.read_range(0, data.len() as u64).unwrap(), data);
    }

    #[test]
    fn a_reused_staging_buffer_leaks_nothing_of_the_previous_write() {
        let directory = tempfile::tempdir().unwrap();
        let pool = StagingPool::new(1);
        let first = vec![0xaa; 3 * STAGING_BYTES_MAX + 100];
        let second: Vec<u8> = payload(STAGING_BYTES_MAX + STAGING_BYTES_MAX / 2 + 1);
        for (name, data) in [("first", &first), ("second", &second)] {
            let path = directory.path().join(name);
            let mut writer =
                FragmentWriter::create(path.clone(), data.len() as u64, false, &pool).unwrap();
            writer.write(data).unwrap();
            let mut staged = writer.finish(Crc32c::of(data), &histogram()).unwrap();
            staged.temp.disarm();
            // The writer's buffer went back to the pool, and is the one used next.
            assert_eq!(pool.kept(), 1);
            let reader = FragmentReader::open(&path).unwrap();
            reader.verify_all().unwrap();
            assert_eq!(&reader.read_range(0, data.len() as u64).unwrap(), data);
        }
        // A small write takes a buffer of its own size and keeps none.
        let small = payload(1000);
        let path = directory.path().join("small");
        let writer = FragmentWriter::create(path, small.len() as u64, false, &pool).unwrap();
        assert_eq!(pool.kept(), 1);
        drop(writer);
        assert_eq!(pool.kept(), 1);
    }

    #[test]
    fn a_wrong_crc_or_length_fails_the_write_and_leaves_no_file() {
        let directory = tempfile::tempdir().unwrap();
        let data = payload(2 << 20);
        let path = directory.path().join("bad-crc");
        let mut writer =
            FragmentWriter::create(path.clone(), data.len() as u64, false, &pool()).unwrap();
        writer.write(&data).unwrap();
        let error = writer.finish(Crc32c(1), &histogram()).unwrap_err();
        assert!(matches!(error, StoreError::CrcMismatch { .. }), "{error}");
        assert!(!path.exists());

        let path = directory.path().join("short");
        let mut writer =
            FragmentWriter::create(path.clone(), data.len() as u64, false, &pool()).unwrap();
        writer.write(&data[..data.len() - 1]).unwrap();
        let error = writer.finish(Crc32c::of(&data), &histogram()).unwrap_err();
        assert!(
            matches!(error, StoreError::LengthMismatch { .. }),
            "{error}"
        );
        assert!(!path.exists());

        let path = directory.path().join("long");
        let mut writer = FragmentWriter::create(path.clone(), 10, false, &pool()).unwrap();
        let error = writer.write(&data[..11]).unwrap_err();
        assert!(
            matches!(error, StoreError::LengthMismatch { .. }),
            "{error}"
        );
        drop(writer);
        assert!(!path.exists());
    }
}
