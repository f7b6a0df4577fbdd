//! Unit tests of the fragment store on a real temporary directory.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use std::sync::Arc;

use shardlet_core::{Crc32c, FragmentId, FragmentIndex, Generation, ObjectId, ShardletId};

use super::{CommitOutcome, FragmentStore};
use crate::fragment_file::format::{BLOCK_BYTES, HEADER_BYTES};
use crate::group_commit::SyncTicket;
use crate::metrics::NodeMetrics;
use crate::store_error::StoreError;

fn id(first_byte: u8, index: u8) -> FragmentId {
    let mut object = [0x5a; 16];
    object[0] = first_byte;
    FragmentId::new(
        ShardletId::new(ObjectId(object), 1),
        Generation(0),
        FragmentIndex(index),
    )
}

fn pattern(length: usize, seed: u8) -> Vec<u8> {
    (0..length)
        .map(|index| (index as u64 * 131 + u64::from(seed) * 7 % 251) as u8)
        .collect()
}

struct Fixture {
    directory: tempfile::TempDir,
    metrics: Arc<NodeMetrics>,
    store: FragmentStore,
}

fn open() -> Fixture {
    let directory = tempfile::tempdir().unwrap();
    let metrics = Arc::new(NodeMetrics::new().unwrap());
    let store = FragmentStore::open(directory.path(), Arc::clone(&metrics)).unwrap();
    Fixture {
        directory,
        metrics,
        store,
    }
}

impl Fixture {
    /// Rewrites `id`'s file on disk as `damage` leaves it (bit rot, truncation).
    fn damage_file(&self, id: &FragmentId, damage: impl FnOnce(&mut Vec<u8>)) {
        let path = self.store.fragment_path(id);
        let mut file = fs::read(&path).unwrap();
        damage(&mut file);
        fs::write(&path, file).unwrap();
    }

    /// Nothing of `id` is stored, not even a temporary file.
    fn assert_nothing_stored(&self, id: &FragmentId) {
        assert!(matches!(self.store.head(id), Err(StoreError::NotFound)));
        let temporary = fs::read_dir(self.directory.path().join("tmp")).unwrap();
        assert_eq!(temporary.count(), 0);
    }

    /// `id` reads back as exactly `bytes`, and it is the only fragment stored.
    fn assert_only(&self, id: &FragmentId, bytes: &[u8]) {
        assert_eq!(read_all(&self.store, id).unwrap(), bytes);
        assert_eq!(self.store.fragment_count(), 1);
    }
}

/// Writes `bytes` in uneven pieces, as a network would deliver them.
fn put_with_ticket(
    store: &FragmentStore,
    id: &FragmentId,
    bytes: &[u8],
) -> Result<(CommitOutcome, SyncTicket), StoreError> {
    let mut writer = store.begin_write(id, bytes.len() as u64, false)?;
    for piece in bytes.chunks(7_777) {
        writer.write(piece)?;
    }
    store.finish_write(id, writer, Crc32c::of(bytes))
}

fn put(store: &FragmentStore, id: &FragmentId, bytes: &[u8]) -> Result<CommitOutcome, StoreError> {
    put_with_ticket(store, id, bytes).map(|(outcome, _ticket)| outcome)
}

fn read_all(store: &FragmentStore, id: &FragmentId) -> Result<Vec<u8>, StoreError> {
    let reader = store.open_reader(id)?;
    Ok(store
        .read_range(&reader, 0, reader.header.payload_length)?
        .to_vec())
}

/// `id` reads back as exactly `bytes`, and its header says their length and CRC.
fn assert_stored(store: &FragmentStore, id: &FragmentId, bytes: &[u8]) {
    let length = bytes.len();
    assert_eq!(read_all(store, id).unwrap(), bytes, "length {length}");
    let header = store.head(id).unwrap();
    assert_eq!(header.payload_length, length as u64);
    assert_eq!(header.payload_crc, Crc32c::of(bytes));
}

#[test]
fn fragments_of_every_size_round_trip() {
    let fixture = open();
    let block = BLOCK_BYTES as usize;
    for (index, length) in [0, 1, 4096, block - 1, block, block + 1, 3 * block + 3]
        .into_iter()
        .enumerate()
    {
        let id = id(0x10, index as u8);
        let bytes = pattern(length, index as u8);
        assert_eq!(
            put(&fixture.store, &id, &bytes).unwrap(),
            CommitOutcome::Created
        );
        assert_stored(&fixture.store, &id, &bytes);
    }
    assert_eq!(fixture.store.fragment_count(), 7);
}

#[test]
fn ranges_across_block_boundaries_return_exactly_the_requested_bytes() {
    let fixture = open();
    let id = id(0x11, 0);
    let bytes = pattern(3 * BLOCK_BYTES as usize + 100, 3);
    put(&fixture.store, &id, &bytes).unwrap();
    let reader = fixture.store.open_reader(&id).unwrap();
    let block = BLOCK_BYTES;
    for (start, end) in [
        (0, 1),
        (block - 1, block + 1),
        (block, 2 * block),
        (2 * block - 5, 3 * block + 100),
        (3 * block + 99, 3 * block + 100),
        (17, 17),
    ] {
        let read = fixture.store.read_range(&reader, start, end).unwrap();
        assert_eq!(
            &read[..],
            &bytes[start as usize..end as usize],
            "{start}..{end}"
        );
    }
}

#[test]
fn a_flipped_byte_is_detected_counted_and_never_returned() {
    let fixture = open();
    let id = id(0x12, 0);
    let bytes = pattern(2 * BLOCK_BYTES as usize + 10, 4);
    put(&fixture.store, &id, &bytes).unwrap();
    // Flip one byte in the second block.
    fixture.damage_file(&id, |file| {
        file[(HEADER_BYTES + BLOCK_BYTES + 5) as usize] ^= 0x01
    });

    assert!(matches!(
        read_all(&fixture.store, &id),
        Err(StoreError::ChecksumMismatch(_))
    ));
    assert_eq!(fixture.metrics.checksum_failures_total.get(), 1);
    // Blocks that were not touched still read.
    let reader = fixture.store.open_reader(&id).unwrap();
    let first_block = fixture.store.read_range(&reader, 0, BLOCK_BYTES).unwrap();
    assert_eq!(&first_block[..], &bytes[..BLOCK_BYTES as usize]);
    let tail = fixture
        .store
        .read_range(&reader, 2 * BLOCK_BYTES, bytes.len() as u64)
        .unwrap();
    assert_eq!(&tail[..], &bytes[2 * BLOCK_BYTES as usize..]);
    assert!(fixture
        .store
        .read_range(&reader, BLOCK_BYTES + 4, BLOCK_BYTES + 6)
        .is_err());
}

#[test]
fn a_truncated_file_is_detected() {
    let fixture = open();
    let id = id(0x13, 0);
    put(&fixture.store, &id, &pattern(1000, 5)).unwrap();
    fixture.damage_file(&id, |file| {
        file.pop();
    });
    assert!(matches!(
        fixture.store.head(&id),
        Err(StoreError::ChecksumMismatch(_))
    ));
}

#[test]
fn a_body_that_does_not_match_its_claimed_crc_is_not_stored() {
    let fixture = open();
    let id = id(0x14, 0);
    let bytes = pattern(5000, 6);
    let mut writer = fixture
        .store
        .begin_write(&id, bytes.len() as u64, false)
        .unwrap();
    writer.write(&bytes).unwrap();
    let wrong = Crc32c(Crc32c::of(&bytes).0 ^ 1);
    assert!(matches!(
        fixture.store.finish_write(&id, writer, wrong),
        Err(StoreError::CrcMismatch { .. })
    ));
    fixture.assert_nothing_stored(&id);
}

#[test]
fn short_and_long_bodies_are_refused() {
    let fixture = open();
    let id = id(0x15, 0);
    let mut writer = fixture.store.begin_write(&id, 10, false).unwrap();
    writer.write(&[1; 9]).unwrap();
    assert!(matches!(
        fixture.store.finish_write(&id, writer, Crc32c::of(&[1; 9])),
        Err(StoreError::LengthMismatch { .. })
    ));
    let mut writer = fixture.store.begin_write(&id, 10, false).unwrap();
    assert!(matches!(
        writer.write(&[1; 11]),
        Err(StoreError::LengthMismatch { .. })
    ));
    drop(writer);
    fixture.assert_nothing_stored(&id);
}

#[test]
fn an_identical_retry_is_idempotent_and_different_bytes_conflict() {
    let fixture = open();
    let id = id(0x16, 0);
    let bytes = pattern(70_000, 7);
    assert_eq!(
        put(&fixture.store, &id, &bytes).unwrap(),
        CommitOutcome::Created
    );
    assert_eq!(
        put(&fixture.store, &id, &bytes).unwrap(),
        CommitOutcome::AlreadyStored
    );
    assert!(matches!(
        put(&fixture.store, &id, &pattern(70_000, 8)),
        Err(StoreError::FragmentExists)
    ));
    fixture.assert_only(&id, &bytes);
}

#[test]
fn a_rotten_copy_is_replaced_by_a_new_upload() {
    let fixture = open();
    let id = id(0x17, 0);
    let bytes = pattern(10_000, 9);
    put(&fixture.store, &id, &bytes).unwrap();
    fixture.damage_file(&id, |file| file[HEADER_BYTES as usize] ^= 0xff);
    assert_eq!(
        put(&fixture.store, &id, &bytes).unwrap(),
        CommitOutcome::Created
    );
    fixture.assert_only(&id, &bytes);
}

type Put = fn(&FragmentStore, &FragmentId, &[u8]) -> Result<CommitOutcome, StoreError>;

#[test]
fn delete_is_idempotent_and_updates_the_counts_in_either_store() {
    let fixture = open();
    // A file, then a value in the small-fragment store.
    for (index, put) in [put as Put, put_small].into_iter().enumerate() {
        let id = id(0x18, index as u8);
        put(&fixture.store, &id, &pattern(123, 1)).unwrap();
        assert_eq!(fixture.store.fragment_bytes(), 123);
        assert!(fixture.store.delete(&id).unwrap().0);
        assert!(!fixture.store.delete(&id).unwrap().0);
        assert!(matches!(fixture.store.head(&id), Err(StoreError::NotFound)));
        assert_eq!(
            (
                fixture.store.fragment_count(),
                fixture.store.fragment_bytes()
            ),
            (0, 0)
        );
    }
}

#[test]
fn listing_pages_through_every_id_once_in_order() {
    let fixture = open();
    let mut ids: Vec<FragmentId> = Vec::new();
    for first_byte in [0x00, 0x01, 0x7f, 0xfe, 0xff] {
        for index in 0..3 {
            let id = id(first_byte, index);
            put(&fixture.store, &id, &pattern(index as usize * 10, index)).unwrap();
            ids.push(id);
        }
    }
    // A stray file that is not a fragment id is ignored.
    fs::write(
        fixture.directory.path().join("fragments/7f/not-a-fragment"),
        b"x",
    )
    .unwrap();
    ids.sort();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let (page, more) = fixture.store.list(after.as_ref(), 4).unwrap();
        assert!(page.len() <= 4);
        seen.extend(page.iter().map(|fragment| fragment.id));
        if !more {
            break;
        }
        after = page.last().map(|fragment| fragment.id);
    }
    assert_eq!(seen, ids);
    let (all, more) = fixture.store.list(None, 100).unwrap();
    assert!(!more);
    assert_eq!(all[1].length, 10);
    assert_eq!(all[1].crc32c, Crc32c::of(&pattern(10, 1)));
}

#[test]
fn torn_writes_in_tmp_are_removed_at_start_up_and_counts_survive() {
    let fixture = open();
    let kept = id(0x20, 0);
    put(&fixture.store, &kept, &pattern(500, 2)).unwrap();
    // A write in progress when the process died: no header, in tmp/.
    let torn = fixture
        .directory
        .path()
        .join("tmp")
        .join(format!("{}.deadbeef", id(0x21, 0)));
    fs::write(&torn, vec![0u8; 4000]).unwrap();
    let Fixture {
        directory, store, ..
    } = fixture;
    drop(store);

    let metrics = Arc::new(NodeMetrics::new().unwrap());
    let store = FragmentStore::open(directory.path(), metrics).unwrap();
    assert!(!torn.exists());
    assert_eq!((store.fragment_count(), store.fragment_bytes()), (1, 500));
    assert!(matches!(
        store.head(&id(0x21, 0)),
        Err(StoreError::NotFound)
    ));
    assert_eq!(read_all(&store, &kept).unwrap(), pattern(500, 2));
}

#[test]
fn a_second_store_on_the_same_directory_is_refused() {
    let fixture = open();
    let metrics = Arc::new(NodeMetrics::new().unwrap());
    let second = FragmentStore::open(fixture.directory.path(), metrics);
    assert!(second.is_err_and(|error| error.to_string().contains("in use by another process")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_are_acknowledged_after_their_directory_fsync() {
    let fixture = open();
    let store = Arc::new(fixture.store);
    let writers: Vec<_> = (0..32u8)
        .map(|index| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let id = id(index % 4, index);
                let bytes = pattern(4096, index);
                let (outcome, ticket) = tokio::task::spawn_blocking({
                    let store = Arc::clone(&store);
                    move || put_with_ticket(&store, &id, &bytes)
                })
                .await
                .unwrap()
                .unwrap();
                ticket.wait().await.unwrap();
                outcome
            })
        })
        .collect();
    for writer in writers {
        assert_eq!(writer.await.unwrap(), CommitOutcome::Created);
    }
    let batches = fixture.metrics.group_commit_batch_size.get_sample_count();
    assert!(
        (1..=32).contains(&batches),
        "{batches} directory fsyncs for 32 writes"
    );
    assert_eq!(
        fixture.metrics.group_commit_batch_size.get_sample_sum() as u64,
        32,
        "every write was acknowledged by exactly one directory fsync"
    );
}

// --- small fragments (the RocksDB store) -------------------------------------------------

use super::SMALL_FRAGMENT_BYTES_MAX;

/// Stores `bytes` as the server does for a small body: whole, in uneven chunks.
fn put_small(
    store: &FragmentStore,
    id: &FragmentId,
    bytes: &[u8],
) -> Result<CommitOutcome, StoreError> {
    let chunks: Vec<bytes::Bytes> = bytes
        .chunks(1_111)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    store
        .put_small(id, bytes.len() as u64, &chunks, Crc32c::of(bytes))
        .map(|(outcome, _ticket)| outcome)
}

fn files_under_fragments(fixture: &Fixture) -> usize {
    fs::read_dir(fixture.directory.path().join("fragments"))
        .unwrap()
        .map(|directory| fs::read_dir(directory.unwrap().path()).unwrap().count())
        .sum()
}

#[test]
fn small_fragments_round_trip_without_a_file_each() {
    let fixture = open();
    let most = SMALL_FRAGMENT_BYTES_MAX as usize;
    for (index, length) in [0, 1, 4096, most - 1, most].into_iter().enumerate() {
        let id = id(0x30, index as u8);
        let bytes = pattern(length, index as u8);
        assert_eq!(
            put_small(&fixture.store, &id, &bytes).unwrap(),
            CommitOutcome::Created
        );
        assert_stored(&fixture.store, &id, &bytes);
        let reader = fixture.store.open_reader(&id).unwrap();
        if length > 3 {
            let range = fixture
                .store
                .read_range(&reader, 1, length as u64 - 1)
                .unwrap();
            assert_eq!(&range[..], &bytes[1..length - 1]);
        }
    }
    assert_eq!(files_under_fragments(&fixture), 0);
    assert_eq!(fixture.store.fragment_count(), 5);
    assert_eq!(
        fixture.store.fragment_bytes(),
        (1 + 4096 + 2 * most - 1) as u64
    );
}

#[test]
fn a_small_body_that_does_not_match_its_length_or_crc_is_not_stored() {
    let fixture = open();
    let id = id(0x31, 0);
    let bytes = pattern(3000, 1);
    let chunks = [bytes::Bytes::copy_from_slice(&bytes)];
    let wrong_crc = Crc32c(Crc32c::of(&bytes).0 ^ 1);
    assert!(matches!(
        fixture.store.put_small(&id, 3000, &chunks, wrong_crc),
        Err(StoreError::CrcMismatch { .. })
    ));
    assert!(matches!(
        fixture
            .store
            .put_small(&id, 3001, &chunks, Crc32c::of(&bytes)),
        Err(StoreError::LengthMismatch {
            expected: 3001,
            actual: 3000
        })
    ));
    assert!(matches!(
        fixture
            .store
            .put_small(&id, 2999, &chunks, Crc32c::of(&bytes)),
        Err(StoreError::LengthMismatch {
            expected: 2999,
            actual: 3000
        })
    ));
    assert!(matches!(fixture.store.head(&id), Err(StoreError::NotFound)));
    assert_eq!(fixture.store.fragment_count(), 0);
}

#[test]
fn a_small_retry_is_idempotent_and_different_bytes_conflict_in_either_store() {
    let fixture = open();
    let small = id(0x32, 0);
    let bytes = pattern(2048, 2);
    put_small(&fixture.store, &small, &bytes).unwrap();
    assert_eq!(
        put_small(&fixture.store, &small, &bytes).unwrap(),
        CommitOutcome::AlreadyStored
    );
    assert!(matches!(
        put_small(&fixture.store, &small, &pattern(2048, 3)),
        Err(StoreError::FragmentExists)
    ));
    // The same id stored as a file (written by the file path) is seen too.
    let filed = id(0x32, 1);
    put(&fixture.store, &filed, &bytes).unwrap();
    assert_eq!(
        put_small(&fixture.store, &filed, &bytes).unwrap(),
        CommitOutcome::AlreadyStored
    );
    assert!(matches!(
        put_small(&fixture.store, &filed, &pattern(2048, 4)),
        Err(StoreError::FragmentExists)
    ));
    assert_eq!(fixture.store.fragment_count(), 2);
}

#[test]
fn a_damaged_small_fragment_is_detected_counted_and_replaced_by_a_new_upload() {
    let fixture = open();
    let id = id(0x33, 0);
    let bytes = pattern(5000, 5);
    put_small(&fixture.store, &id, &bytes).unwrap();
    let mut value = fixture
        .store
        .small_store()
        .get(&id)
        .unwrap()
        .unwrap()
        .to_vec();
    value[HEADER_BYTES as usize + 100] ^= 0x01;
    fixture.store.small_store().put(&id, &value).unwrap();
    let failures_before = fixture.metrics.checksum_failures_total.get();
    let reader = fixture.store.open_reader(&id).unwrap();
    assert!(matches!(
        fixture.store.read_range(&reader, 0, 5000),
        Err(StoreError::ChecksumMismatch(_))
    ));
    assert!(fixture.metrics.checksum_failures_total.get() > failures_before);
    // A value cut short fails before any payload byte is read.
    fixture
        .store
        .small_store()
        .put(&id, &value[..value.len() - 1])
        .unwrap();
    assert!(matches!(
        fixture.store.head(&id),
        Err(StoreError::ChecksumMismatch(_))
    ));
    assert_eq!(
        put_small(&fixture.store, &id, &bytes).unwrap(),
        CommitOutcome::Created
    );
    fixture.assert_only(&id, &bytes);
}

#[test]
fn listing_merges_small_and_file_fragments_in_id_order() {
    let fixture = open();
    let mut ids: Vec<FragmentId> = Vec::new();
    for first_byte in [0x00, 0x40, 0x41, 0x80, 0xff] {
        for index in 0..4u8 {
            let id = id(first_byte, index);
            let bytes = pattern(usize::from(index) * 100 + 1, index);
            // Alternate the two stores within most prefixes; the last one (0xff) holds
            // small ones only, so a page can fill up with small fragments when no file
            // follows and more must still be reported.
            if index % 2 == 0 || first_byte == 0xff {
                put_small(&fixture.store, &id, &bytes).unwrap();
            } else {
                put(&fixture.store, &id, &bytes).unwrap();
            }
            ids.push(id);
        }
    }
    ids.sort();
    for page_size in [1, 2, 3, 4, 5, 100] {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let (page, more) = fixture.store.list(after.as_ref(), page_size).unwrap();
            seen.extend(page.iter().map(|fragment| fragment.id));
            if !more {
                break;
            }
            after = page.last().map(|fragment| fragment.id);
        }
        assert_eq!(seen, ids, "page size {page_size}");
    }
    let (all, _) = fixture.store.list(None, 100).unwrap();
    for fragment in &all {
        let index = fragment.id.index.0;
        let bytes = pattern(usize::from(index) * 100 + 1, index);
        assert_eq!(fragment.length, bytes.len() as u64);
        assert_eq!(fragment.crc32c, Crc32c::of(&bytes));
    }
}

#[test]
fn small_fragments_and_their_counts_survive_reopening() {
    let fixture = open();
    let kept = id(0x35, 0);
    let gone = id(0x35, 1);
    put_small(&fixture.store, &kept, &pattern(700, 7)).unwrap();
    put_small(&fixture.store, &gone, &pattern(800, 8)).unwrap();
    assert!(fixture.store.delete(&gone).unwrap().0);
    let Fixture {
        directory, store, ..
    } = fixture;
    drop(store);

    let store =
        FragmentStore::open(directory.path(), Arc::new(NodeMetrics::new().unwrap())).unwrap();
    assert_eq!((store.fragment_count(), store.fragment_bytes()), (1, 700));
    assert_eq!(read_all(&store, &kept).unwrap(), pattern(700, 7));
    assert!(matches!(store.head(&gone), Err(StoreError::NotFound)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_small_writes_are_all_stored() {
    let fixture = open();
    let store = Arc::new(fixture.store);
    let writers: Vec<_> = (0..64u8)
        .map(|index| {
            let store = Arc::clone(&store);
            tokio::task::spawn_blocking(move || {
                put_small(&store, &id(index % 8, index), &pattern(4096, index))
            })
        })
        .collect();
    for writer in writers {
        assert_eq!(writer.await.unwrap().unwrap(), CommitOutcome::Created);
    }
    for index in 0..64u8 {
        assert_eq!(
            read_all(&store, &id(index % 8, index)).unwrap(),
            pattern(4096, index)
        );
    }
    assert_eq!(store.fragment_count(), 64);
}

#[test]
fn the_data_directory_is_the_nodes_alone_even_if_it_was_created_open() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let fresh = parent.path().join("fresh");
    drop(FragmentStore::open(&fresh, Arc::new(NodeMetrics::new().unwrap())).unwrap());
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&fresh), 0o700);
    // A directory an older build (or an operator) left world-readable is tightened.
    let open_dir = parent.path().join("open");
    std::fs::create_dir(&open_dir).unwrap();
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    drop(FragmentStore::open(&open_dir, Arc::new(NodeMetrics::new().unwrap())).unwrap());
    assert_eq!(mode(&open_dir), 0o700);
}
