//! How many metadata round trips the small-object paths make, and that the shortcuts
//! taken to save them (the caller's copy of the bucket, the bucket cache, shardlet
//! records inside the commit batch, the object read before the bucket) keep S3's answers
//! right.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use shardlet_core::{ObjectId, RedundancyLevel, SizingPolicy, Topology};

use shardlet_model::memory::InMemoryMetadata;
use shardlet_model::schema::{encode, keys, BucketRecord, ObjectRecord, StoredChecksums};
use shardlet_model::store::{Batch, BatchOutcome, ScanPage, VersionedValue};
use shardlet_model::{MetadataError, MetadataStore, Stored};

use super::{Commit, CommitCondition, CommitError, Uncommitted};
use crate::metrics::Metrics;
use crate::object::catalog::{Catalog, CatalogError};
use crate::object::fragments::InMemoryFragments;
use crate::object::gc::{Collector, CollectorConfig};
use crate::object::storage_class::plan_for;
use crate::object::topology_source::TopologySource;
use crate::object::write_path::{UploadBody, WritePath};

mod bucket;
mod multipart;
mod object;

/// Counts reads and write batches on the way to an in-memory store.
#[derive(Default)]
pub(super) struct Counting {
    pub(super) inner: InMemoryMetadata,
    reads: AtomicUsize,
    batches: AtomicUsize,
}

#[async_trait]
impl MetadataStore for Counting {
    async fn get(&self, key: &[u8]) -> Result<Option<VersionedValue>, MetadataError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key).await
    }
    async fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ScanPage, MetadataError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.scan(prefix, start_after, limit).await
    }
    async fn batch(&self, batch: Batch) -> Result<BatchOutcome, MetadataError> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        self.inner.batch(batch).await
    }
}

/// One gateway's object layer over a (shared) store: its catalog, commits and write path.
pub(super) struct Fixture {
    pub(super) catalog: Catalog,
    pub(super) commit: Arc<Commit>,
    pub(super) write_path: WritePath,
    pub(super) metrics: Arc<Metrics>,
}

pub(super) fn fixture(store: Arc<dyn MetadataStore>) -> Fixture {
    let topology = Topology::from_toml_str(
        include_str!("../../../../examples/topology.toml"),
        "topology.toml",
    )
    .unwrap();
    let topology = Arc::new(TopologySource::new(topology));
    let metrics = Arc::new(Metrics::new());
    let catalog = Catalog::new(store).counting_bucket_cache(metrics.bucket_cache_total.clone());
    let fragments = Arc::new(InMemoryFragments::default());
    let collector = Arc::new(Collector::new(
        catalog.clone(),
        fragments.clone(),
        topology.clone(),
        metrics.clone(),
        CollectorConfig::default(),
        Arc::new(shardlet_model::settings::SettingsCache::default()),
    ));
    let commit = Arc::new(Commit::new(catalog.clone(), collector));
    let write_path = WritePath {
        commit: commit.clone(),
        fragments,
        topology,
        sizing: SizingPolicy::default(),
        metrics: metrics.clone(),
    };
    Fixture {
        catalog,
        commit,
        write_path,
        metrics,
    }
}

pub(super) fn object(key: &str, id: ObjectId, size_bytes: u64) -> ObjectRecord {
    ObjectRecord {
        bucket: "b".into(),
        key: key.into(),
        id,
        size_bytes,
        etag: "\"0\"".into(),
        content_type: "application/octet-stream".into(),
        user_metadata: Default::default(),
        storage_class: None,
        redundancy: RedundancyLevel::Medium,
        created_unix_ms: 0,
        shardlets: Vec::new(),
        checksums: StoredChecksums::default(),
        parts_count: None,
    }
}

pub(super) fn body(
    bytes: &[u8],
) -> UploadBody<futures::stream::BoxStream<'static, Result<Bytes, String>>> {
    let chunk = Bytes::copy_from_slice(bytes);
    UploadBody {
        stream: futures::stream::iter([Ok(chunk)]).boxed(),
        declared_length: Some(bytes.len() as u64),
        max_length: 1 << 20,
    }
}

/// A gateway over a counting in-memory store that holds bucket `name`.
/// Writes `bytes` under `b/key` (medium redundancy) without committing.
pub(super) async fn write(gateway: &Fixture, key: &str, bytes: &[u8]) -> Uncommitted {
    let plan = plan_for(None, RedundancyLevel::Medium).unwrap();
    gateway
        .write_path
        .write(
            "b",
            key,
            ObjectId::random(),
            plan,
            body(bytes),
            &mut |_: &[u8]| {},
        )
        .await
        .unwrap()
}

pub(super) async fn writer_with_bucket(name: &str) -> (Arc<Counting>, Fixture) {
    let store = Arc::new(Counting::default());
    let writer = fixture(store.clone());
    writer
        .commit
        .buckets()
        .create_bucket(name, "alice", RedundancyLevel::Medium)
        .await
        .unwrap();
    (store, writer)
}

/// Another gateway over the same store.
fn other_gateway(store: &Arc<Counting>) -> Fixture {
    fixture(store.clone())
}

#[tokio::test]
async fn a_small_put_commits_in_two_metadata_writes_and_its_records_are_complete() {
    let (store, writer) = writer_with_bucket("b").await;
    let bucket = writer.catalog.existing_bucket("b").await.unwrap();
    let (reads_before, batches_before) = (
        store.reads.load(Ordering::SeqCst),
        store.batches.load(Ordering::SeqCst),
    );

    let plan = plan_for(None, RedundancyLevel::Medium).unwrap();
    let id = ObjectId::random();
    let bytes = vec![7u8; 4096];
    let write = writer
        .write_path
        .write("b", "small", id, plan, body(&bytes), &mut |_: &[u8]| {})
        .await
        .unwrap();
    let shardlet = write.written().shardlets[0].clone();
    let committed = writer
        .commit
        .put_object(
            write,
            object("small", id, 4096),
            CommitCondition::Always,
            Some(bucket),
        )
        .await
        .unwrap();

    // The intent, then ONE batch with the object, its shardlet records and index entries.
    assert_eq!(store.batches.load(Ordering::SeqCst) - batches_before, 2);
    // Only the current version of the key is read (the bucket came from the caller).
    assert_eq!(store.reads.load(Ordering::SeqCst) - reads_before, 1);
    assert!(store
        .inner
        .get(&keys::shardlet(shardlet.id))
        .await
        .unwrap()
        .is_some());
    for location in &shardlet.fragments {
        let index = keys::node_fragment(location.node, shardlet.fragment_id(location));
        assert!(
            store.inner.get(&index).await.unwrap().is_some(),
            "index entry missing"
        );
    }
    assert!(store.inner.get(&keys::intent(id)).await.unwrap().is_none());
    assert_eq!(committed.shardlets.len(), 1);
}

#[tokio::test]
async fn a_stale_copy_of_the_bucket_is_re_read_not_reported_as_missing() {
    let (_, writer) = writer_with_bucket("b").await;
    let stale = writer.catalog.existing_bucket("b").await.unwrap();
    // The bucket record changes after the PUT read it (same bucket, new version).
    let mut batch = Batch::default();
    batch.put(keys::bucket("b"), encode(&stale.record));
    writer.catalog.apply(batch).await.unwrap();

    let plan = plan_for(None, RedundancyLevel::Medium).unwrap();
    let id = ObjectId::random();
    let write = writer
        .write_path
        .write("b", "k", id, plan, body(b"hello"), &mut |_: &[u8]| {})
        .await
        .unwrap();
    writer
        .commit
        .put_object(
            write,
            object("k", id, 5),
            CommitCondition::Always,
            Some(stale),
        )
        .await
        .unwrap();
    assert!(writer.catalog.object("b", "k").await.unwrap().is_some());
}

fn reads(store: &Counting) -> usize {
    store.reads.load(Ordering::SeqCst)
}

fn bucket_cache(writer: &Fixture, result: &str) -> u64 {
    writer
        .metrics
        .bucket_cache_total
        .with_label_values(&[result])
        .get()
}

/// The bucket as `existing_bucket_recent` answers it, and the metadata reads it cost.
async fn recent_bucket(
    store: &Counting,
    catalog: &Catalog,
    name: &str,
) -> (Result<Stored<BucketRecord>, CatalogError>, usize) {
    let before = reads(store);
    let found = catalog.existing_bucket_recent(name).await;
    (found, reads(store) - before)
}

/// Writes `key` into bucket "b" and commits it with `bucket` as the caller's copy.
async fn put_with(
    writer: &Fixture,
    key: &str,
    bucket: Stored<BucketRecord>,
) -> Result<ObjectRecord, CommitError> {
    let plan = plan_for(None, bucket.record.default_redundancy).unwrap();
    let id = ObjectId::random();
    let write = writer
        .write_path
        .write("b", key, id, plan, body(b"hello"), &mut |_: &[u8]| {})
        .await
        .unwrap();
    writer
        .commit
        .put_object(
            write,
            object(key, id, 5),
            CommitCondition::Always,
            Some(bucket),
        )
        .await
}

#[tokio::test]
async fn a_bucket_looked_up_again_within_the_ttl_costs_no_metadata_read() {
    let (store, writer) = writer_with_bucket("b").await;
    let (first, first_reads) = recent_bucket(&store, &writer.catalog, "b").await;
    let (second, second_reads) = recent_bucket(&store, &writer.catalog, "b").await;
    assert_eq!(first_reads, 1);
    assert_eq!(second_reads, 0);
    assert_eq!(first.unwrap().version, second.unwrap().version);
    assert_eq!(
        (bucket_cache(&writer, "miss"), bucket_cache(&writer, "hit")),
        (1, 1)
    );
}

#[tokio::test]
async fn a_put_with_a_cached_bucket_another_gateway_deleted_is_no_such_bucket_and_invisible() {
    let (store, writer) = writer_with_bucket("b").await;
    let cached = writer.catalog.existing_bucket_recent("b").await.unwrap();
    let other_gateway = other_gateway(&store);
    other_gateway
        .commit
        .buckets()
        .delete_bucket("b")
        .await
        .unwrap();
    // Within the TTL this gateway still serves its stale copy...
    let (stale, stale_reads) = recent_bucket(&store, &writer.catalog, "b").await;
    let stale = stale.unwrap();
    assert_eq!((stale.version, stale_reads), (cached.version, 0));

    // ...but the commit is conditioned on its version, so the PUT cannot land.
    let refused = put_with(&writer, "k", stale).await;
    assert!(
        matches!(
            refused,
            Err(CommitError::Catalog(CatalogError::NoSuchBucket(_)))
        ),
        "{refused:?}"
    );
    assert!(store
        .inner
        .get(&keys::object("b", "k"))
        .await
        .unwrap()
        .is_none());
    // The commit's fresh re-read dropped the stale copy.
    let (after, after_reads) = recent_bucket(&store, &writer.catalog, "b").await;
    assert!(matches!(after, Err(CatalogError::NoSuchBucket(_))));
    assert_eq!(after_reads, 1);
}

#[tokio::test]
async fn a_put_with_a_cached_bucket_another_gateway_changed_commits_and_refreshes_the_cache() {
    let (store, writer) = writer_with_bucket("b").await;
    let stale = writer.catalog.existing_bucket_recent("b").await.unwrap();
    let other_gateway = other_gateway(&store);
    other_gateway
        .commit
        .buckets()
        .set_bucket_redundancy("b", RedundancyLevel::High)
        .await
        .unwrap();

    put_with(&writer, "k", stale.clone()).await.unwrap();
    assert!(writer.catalog.object("b", "k").await.unwrap().is_some());
    // The commit re-read the bucket fresh after its condition failed: the cache now
    // holds the new version, served without a read.
    let (cached, cached_reads) = recent_bucket(&store, &writer.catalog, "b").await;
    let cached = cached.unwrap();
    assert!(cached.version > stale.version);
    assert_eq!(cached.record.default_redundancy, RedundancyLevel::High);
    assert_eq!(cached_reads, 0);
}

#[tokio::test]
async fn this_gateways_set_redundancy_invalidates_its_cached_bucket() {
    let (store, writer) = writer_with_bucket("b").await;
    writer.catalog.existing_bucket_recent("b").await.unwrap();
    writer
        .commit
        .buckets()
        .set_bucket_redundancy("b", RedundancyLevel::High)
        .await
        .unwrap();
    let (bucket, bucket_reads) = recent_bucket(&store, &writer.catalog, "b").await;
    assert_eq!(
        bucket.unwrap().record.default_redundancy,
        RedundancyLevel::High
    );
    assert_eq!(bucket_reads, 1);
}

#[tokio::test]
async fn this_gateways_delete_bucket_invalidates_its_cached_bucket() {
    let (store, writer) = writer_with_bucket("b").await;
    writer.catalog.existing_bucket_recent("b").await.unwrap();
    writer.commit.buckets().delete_bucket("b").await.unwrap();
    let (bucket, bucket_reads) = recent_bucket(&store, &writer.catalog, "b").await;
    assert!(matches!(bucket, Err(CatalogError::NoSuchBucket(_))));
    assert_eq!(bucket_reads, 1);
}

#[tokio::test]
async fn this_gateways_create_bucket_invalidates_its_cached_bucket() {
    let (store, writer) = writer_with_bucket("b").await;
    writer.catalog.existing_bucket_recent("b").await.unwrap();
    // Deleted elsewhere, then created again here under another owner.
    other_gateway(&store)
        .commit
        .buckets()
        .delete_bucket("b")
        .await
        .unwrap();
    writer
        .commit
        .buckets()
        .create_bucket("b", "bob", RedundancyLevel::Low)
        .await
        .unwrap();
    let (bucket, bucket_reads) = recent_bucket(&store, &writer.catalog, "b").await;
    assert_eq!(bucket.unwrap().record.owner, "bob");
    assert_eq!(bucket_reads, 1);
}

#[tokio::test]
async fn an_absent_bucket_or_one_being_deleted_is_never_served_from_the_cache() {
    let (store, writer) = writer_with_bucket("b").await;
    for _ in 0..2 {
        let (missing, missing_reads) = recent_bucket(&store, &writer.catalog, "missing").await;
        assert!(matches!(missing, Err(CatalogError::NoSuchBucket(_))));
        assert_eq!(missing_reads, 1);
    }

    // Cached live, then marked deleting by another gateway (a DeleteBucket in progress
    // or crashed after its first step).
    writer.catalog.existing_bucket_recent("b").await.unwrap();
    let other_gateway = other_gateway(&store);
    let live = other_gateway.catalog.existing_bucket("b").await.unwrap();
    let mut marked = live.record.clone();
    marked.deleting = true;
    let mut batch = Batch::default();
    batch
        .require_version(keys::bucket("b"), live.version)
        .put(keys::bucket("b"), encode(&marked));
    other_gateway.catalog.apply(batch).await.unwrap();
    // A fresh read here (a commit's re-read, a HEAD) sees the mark...
    assert!(matches!(
        writer.catalog.existing_bucket("b").await,
        Err(CatalogError::NoSuchBucket(_))
    ));
    // ...and from then on every lookup reads the store.
    for _ in 0..2 {
        let (deleting, deleting_reads) = recent_bucket(&store, &writer.catalog, "b").await;
        assert!(matches!(deleting, Err(CatalogError::NoSuchBucket(_))));
        assert_eq!(deleting_reads, 1);
    }
}
