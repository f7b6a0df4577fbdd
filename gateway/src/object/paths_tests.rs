//! Unit tests of the write path, read path and GC against in-memory metadata and
//! fragment stores (no servers: the end-to-end tests drive real processes).

#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use shardlet_core::{FragmentId, NodeId, ObjectId, Scheme, ShardletId};
use shardlet_model::schema::{encode, keys, ShardletRecord};

use crate::object::catalog::Catalog;
use crate::object::commit::{CommitCondition, CommitError};
use crate::object::fragments::InMemoryFragments;
use crate::object::test_fixture::*;
use crate::object::write_path::{WriteError, SHARDLETS_IN_FLIGHT_MAX};

#[tokio::test]
async fn replicated_and_erasure_coded_objects_read_back_whole_and_in_ranges() {
    let fixture = with_bucket(Duration::from_secs(3600)).await;
    let bytes = data(300 * KIB + 17);
    for (key, plan) in [("hot", medium()), ("cold", cold())] {
        let object = put(&fixture, key, &bytes, plan).await;
        assert_eq!(object.shardlets.len(), 5, "300 KiB in 64 KiB shardlets");
        assert_eq!(
            read(&fixture, &object, 0..bytes.len() as u64)
                .await
                .unwrap(),
            bytes
        );
        for (start, end) in [
            (0, 1),
            (65_535, 65_537),
            (100_000, 250_000),
            (bytes.len() - 5, bytes.len()),
        ] {
            let got = read(&fixture, &object, start as u64..end as u64)
                .await
                .unwrap();
            assert_eq!(got, &bytes[start..end], "{key} {start}..{end}");
        }
    }
    let record: ShardletRecord = fixture
        .catalog
        .read(&keys::shardlet(shardlet_core::ShardletId::new(
            put(&fixture, "cold2", &bytes, cold()).await.id,
            0,
        )))
        .await
        .unwrap()
        .unwrap()
        .record;
    assert_eq!(record.scheme, Scheme::ErasureCoded { data: 6, parity: 3 });
    assert_eq!(record.fragments.len(), 9);
}

#[tokio::test]
async fn each_replicated_shardlet_marks_the_copy_reads_start_at_and_no_other() {
    let fixture = with_bucket(Duration::from_secs(3600)).await;
    let bytes = data(300 * KIB + 17);
    let object = put(&fixture, "hot", &bytes, medium()).await;
    let marked = fixture.fragments.read_first.lock().unwrap().clone();
    assert_eq!(
        marked.len(),
        object.shardlets.len(),
        "one marked copy per shardlet"
    );
    fixture.fragments.fetched.lock().unwrap().clear();
    assert_eq!(read_all(&fixture, &object).await, bytes);
    let fetched = fixture.fragments.fetched.lock().unwrap().clone();
    assert_eq!(
        fetched.len(),
        object.shardlets.len(),
        "one fetch per shardlet"
    );
    for copy in &fetched {
        assert!(marked.contains(copy), "read {copy:?}, which was not marked");
    }
    // Erasure-coded fragments are cold by policy: none is marked.
    put(&fixture, "cold", &bytes, cold()).await;
    assert_eq!(
        fixture.fragments.read_first.lock().unwrap().len(),
        marked.len()
    );
}

#[tokio::test]
async fn an_object_is_invisible_until_its_commit() {
    let fixture = with_bucket(Duration::from_secs(3600)).await;
    let id = ObjectId::random();
    let write = write_medium(&fixture, id, 100 * KIB, 4096).await;
    assert!(
        fixture.fragments.count() > 0,
        "fragments are durable before the commit"
    );
    assert!(fixture.catalog.object("b", "k").await.unwrap().is_none());
    let mut object = record("b", "k", id, medium());
    object.size_bytes = write.written().size_bytes;
    fixture
        .commit
        .put_object(write, object, CommitCondition::Always, None)
        .await
        .unwrap();
    let visible = fixture
        .catalog
        .object("b", "k")
        .await
        .unwrap()
        .unwrap()
        .record;
    assert_eq!(visible.size_bytes, 100 * KIB as u64);
    assert!(fixture
        .catalog
        .read::<shardlet_model::schema::IntentRecord>(&keys::intent(id))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn uploads_never_have_more_than_the_in_flight_limit_of_shardlets_being_written() {
    let fixture = with_bucket(Duration::from_secs(3600)).await;
    put(&fixture, "big", &data(2 * 1024 * KIB), medium()).await;
    let copies = 3;
    let peak = fixture.counting.peak.load(Ordering::SeqCst);
    assert!(
        peak <= SHARDLETS_IN_FLIGHT_MAX * copies,
        "peak {peak} concurrent fragment writes"
    );
    assert_eq!(fixture.metrics.shardlets_in_flight.get(), 0);
}

#[tokio::test]
async fn a_down_node_and_a_corrupt_replica_are_read_around_and_counted() {
    let fixture = with_bucket(Duration::from_secs(3600)).await;
    let bytes = data(200 * KIB);
    let object = put(&fixture, "k", &bytes, medium()).await;
    let first: ShardletRecord = shardlet(&fixture, object.shardlets[0].id).await;
    // The replica the reader tries first is corrupt and the next one's node is down: the
    // read must fall back twice and still return the right bytes.
    let start = (first.id.hash_key() % first.fragments.len() as u64) as usize;
    let corrupt = &first.fragments[start];
    let down = &first.fragments[(start + 1) % first.fragments.len()];
    fixture
        .fragments
        .corrupt(corrupt.node, first.fragment_id(corrupt));
    fixture.fragments.set_down(down.node);
    assert_eq!(read_all(&fixture, &object).await, bytes);
    let metrics = &fixture.metrics.degraded_reads_total;
    assert!(
        metrics.with_label_values(&["checksum"]).get() >= 1,
        "the corrupt replica was counted"
    );
    assert!(
        metrics.with_label_values(&["unavailable"]).get() >= 1,
        "the down node was counted"
    );
}

#[tokio::test]
async fn erasure_coded_shardlets_are_rebuilt_from_any_k_fragments() {
    let fixture = with_bucket(Duration::from_secs(3600)).await;
    let bytes = data(64 * KIB);
    let object = put(&fixture, "k", &bytes, cold()).await;
    let record: ShardletRecord = shardlet(&fixture, object.shardlets[0].id).await;
    // Lose three data fragments (RS(6,3) tolerates three losses).
    for location in &record.fragments[..3] {
        fixture
            .fragments
            .corrupt(location.node, record.fragment_id(location));
    }
    assert_eq!(read_all(&fixture, &object).await, bytes);
    assert!(degraded(&fixture, "checksum") >= 3);
}

#[tokio::test]
async fn an_unreadable_shardlet_ends_the_stream_with_an_error_not_a_short_body() {
    let fixture = with_bucket(Duration::from_secs(3600)).await;
    let bytes = data(200 * KIB);
    let object = put(&fixture, "k", &bytes, medium()).await;
    let second: ShardletRecord = shardlet(&fixture, object.shardlets[1].id).await;
    for location in &second.fragments {
        fixture
            .fragments
            .corrupt(location.node, second.fragment_id(location));
    }
    let mut stream = std::pin::pin!(fixture
        .reader
        .stream(&object.shardlets, 0..bytes.len() as u64));
    assert!(
        stream.next().await.unwrap().is_ok(),
        "the first shardlet is fine"
    );
    assert!(
        stream.next().await.unwrap().is_err(),
        "the second one fails loudly"
    );
}

#[tokio::test]
async fn overwriting_collects_the_old_versions_fragments() {
    let fixture = with_bucket(Duration::from_secs(3600)).await;
    let first = put(&fixture, "k", &data(150 * KIB), medium()).await;
    let count_one = fixture.fragments.count();
    let second = put(&fixture, "k", &data(150 * KIB), medium()).await;
    assert_ne!(first.id, second.id);
    // Collection is queued; run it directly (the worker does the same).
    assert!(fixture.collector.collect(first.id).await.unwrap());
    assert_eq!(
        fixture.fragments.count(),
        count_one,
        "only the new version's fragments remain"
    );
    assert!(fixture
        .catalog
        .metadata()
        .store()
        .scan(&keys::shardlets_of_object(first.id), None, 10)
        .await
        .unwrap()
        .entries
        .is_empty());
    let visible = fixture
        .catalog
        .object("b", "k")
        .await
        .unwrap()
        .unwrap()
        .record;
    assert_eq!(visible.id, second.id);
}

#[tokio::test]
async fn a_failed_upload_leaves_no_fragments_behind() {
    let fixture = with_bucket(Duration::from_secs(3600)).await;
    let mut upload = body(&data(300 * KIB), 8192);
    upload.declared_length = Some(400 * KIB as u64);
    let id = ObjectId::random();
    let error = fixture
        .writer
        .write("b", "k", id, medium(), upload, &mut |_: &[u8]| {})
        .await
        .unwrap_err();
    assert!(
        matches!(error, WriteError::IncompleteBody { .. }),
        "{error}"
    );
    // The abandoned intent was queued; collect it as the worker would.
    fixture.collector.collect(id).await.unwrap();
    assert_eq!(fixture.fragments.count(), 0);
    assert!(fixture
        .catalog
        .read::<shardlet_model::schema::IntentRecord>(&keys::intent(id))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn too_large_bodies_are_refused_while_streaming() {
    let fixture = with_bucket(Duration::from_secs(3600)).await;
    let mut upload = body(&data(200 * KIB), 8192);
    upload.declared_length = None;
    upload.max_length = 100 * KIB as u64;
    let error = fixture
        .writer
        .write(
            "b",
            "k",
            ObjectId::random(),
            medium(),
            upload,
            &mut |_: &[u8]| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(error, WriteError::TooLarge { .. }), "{error}");
}

#[tokio::test]
async fn the_sweep_collects_abandoned_uploads_but_not_young_ones() {
    let fixture = with_bucket(Duration::from_secs(3600)).await;
    let id = ObjectId::random();
    let write = write_medium(&fixture, id, 100 * KIB, 4096).await;
    // Deadline zero: every Uploading intent counts as abandoned.
    set_deadline(&fixture, 0);
    assert_eq!(fixture.collector.sweep().await.unwrap().collected, 1);
    assert_eq!(fixture.fragments.count(), 0);
    // The upload, still alive (its own gateway, with a longer deadline, would commit
    // it), now fails its commit instead of publishing deleted data.
    set_deadline(&fixture, 3600);
    let mut object = record("b", "k", id, medium());
    object.size_bytes = write.written().size_bytes;
    let error = fixture
        .commit
        .put_object(write, object, CommitCondition::Always, None)
        .await
        .unwrap_err();
    assert!(matches!(error, CommitError::Abandoned), "{error}");

    let patient = with_bucket(Duration::from_secs(3600)).await;
    // Held, not dropped: a dropped uncommitted write gives itself up.
    let _in_progress = write_medium(&patient, ObjectId::random(), 10 * KIB, 4096).await;
    assert_eq!(patient.collector.sweep().await.unwrap().collected, 0);
    assert!(patient.fragments.count() > 0);
}

#[tokio::test]
async fn conditional_commits_hold_at_commit_time() {
    let fixture = with_bucket(Duration::from_secs(3600)).await;
    put(&fixture, "k", &data(KIB), medium()).await;
    let id = ObjectId::random();
    let write = write_medium(&fixture, id, KIB, 512).await;
    let error = fixture
        .commit
        .put_object(
            write,
            record("b", "k", id, medium()),
            CommitCondition::Absent,
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, CommitError::PreconditionFailed));
}

#[tokio::test]
async fn a_node_that_refuses_writes_is_replaced() {
    let fixture = with_bucket(Duration::from_secs(3600)).await;
    fixture.fragments.set_down(NodeId(1));
    fixture.fragments.set_down(NodeId(5));
    let bytes = data(600 * KIB);
    let object = put(&fixture, "k", &bytes, medium()).await;
    for reference in &object.shardlets {
        let record: ShardletRecord = fixture
            .catalog
            .read(&keys::shardlet(reference.id))
            .await
            .unwrap()
            .unwrap()
            .record;
        assert!(record
            .fragments
            .iter()
            .all(|f| f.node != NodeId(1) && f.node != NodeId(5)));
    }
    assert_eq!(read_all(&fixture, &object).await, bytes);
}

/// What a transition or repair does to a shardlet: every fragment rewritten under the
/// next generation, the record pointing at the new ones, the old ones deleted.
async fn move_to_next_generation(
    catalog: Catalog,
    fragments: Arc<InMemoryFragments>,
    mut record: ShardletRecord,
) {
    for location in &mut record.fragments {
        let old = record_fragment_id(&record.id, location);
        location.generation = shardlet_core::Generation(location.generation.0 + 1);
        let new = record_fragment_id(&record.id, location);
        let mut stored = fragments.stored.lock().unwrap();
        let bytes = stored.remove(&(location.node, old)).unwrap();
        stored.insert((location.node, new), bytes);
    }
    let mut batch = shardlet_model::store::Batch::default();
    batch.put(keys::shardlet(record.id), encode(&record));
    catalog.apply(batch).await.unwrap();
}

fn record_fragment_id(
    shardlet: &ShardletId,
    location: &shardlet_model::schema::FragmentLocation,
) -> FragmentId {
    FragmentId::new(*shardlet, location.generation, location.index)
}

#[tokio::test]
async fn a_read_whose_fragments_moved_under_it_re_reads_the_record_and_succeeds() {
    for plan in [medium(), cold()] {
        let fixture = with_bucket(Duration::from_secs(3600)).await;
        let bytes = data(100 * KIB);
        let object = put(&fixture, "k", &bytes, plan).await;
        let moved = shardlet(&fixture, object.shardlets[0].id).await;
        // The reader has the old record when the move happens: before its first
        // fragment read, after its record read.
        *fixture.counting.before_first_get.lock().await = Some(Box::pin(move_to_next_generation(
            fixture.catalog.clone(),
            fixture.fragments.clone(),
            moved,
        )));
        assert_eq!(
            read(&fixture, &object, 0..bytes.len() as u64)
                .await
                .unwrap(),
            bytes
        );
        assert_eq!(degraded(&fixture, "layout_changed"), 1);
    }
}

#[tokio::test]
async fn fragments_gone_without_a_new_layout_are_still_an_error() {
    let fixture = with_bucket(Duration::from_secs(3600)).await;
    let bytes = data(10 * KIB);
    let object = put(&fixture, "k", &bytes, medium()).await;
    fixture.fragments.stored.lock().unwrap().clear();
    assert!(read(&fixture, &object, 0..bytes.len() as u64)
        .await
        .is_err());
    assert_eq!(degraded(&fixture, "layout_changed"), 0);
}
