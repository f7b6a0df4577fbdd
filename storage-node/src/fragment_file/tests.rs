//! Whole fragment files: written in every shape of piece, read back, verified; staging
//! buffers reused without leaking; bad writes leave nothing behind.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use shardlet_core::Crc32c;

use super::format::FragmentHeader;
use super::reader::FragmentReader;
use super::staging::{StagingPool, STAGING_BYTES_MAX};
use super::writer::{create_file, FragmentWriter, DIRECT_IO_MIN_FILE_BYTES};
use crate::store_error::StoreError;

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
