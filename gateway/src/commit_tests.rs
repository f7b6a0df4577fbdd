//! How many metadata round trips the small-object paths make, and that the shortcuts
//! taken to save them (the caller's copy of the bucket, shardlet records inside the
//! commit batch, the object read before the bucket) keep S3's answers right.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use shardlet_core::{ObjectId, RedundancyLevel, SizingPolicy, Topology};

use crate::catalog::Catalog;
use crate::fragments::InMemoryFragments;
use crate::gc::{Collector, CollectorConfig};
use crate::metadata::{
    Batch, BatchOutcome, InMemoryMetadata, MetadataError, MetadataStore, ScanPage, Versioned,
};
use crate::metrics::Metrics;
use crate::storage_class::plan_for;
use crate::topology_source::TopologySource;
use crate::write_path::{CommitCondition, UploadBody, WritePath};
use shardlet_meta::schema::{encode, keys, ObjectRecord, StoredChecksums};

/// Counts reads and write batches on the way to an in-memory store.
#[derive(Default)]
struct Counting {
    inner: InMemoryMetadata,
    reads: AtomicUsize,
    batches: AtomicUsize,
}

#[async_trait]
impl MetadataStore for Counting {
    async fn get(&self, key: &[u8]) -> Result<Option<Versioned>, MetadataError> {
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

fn writer(store: Arc<Counting>) -> WritePath {
    let topology = Topology::from_toml_str(
        include_str!("../../examples/topology.toml"),
        "topology.toml",
    )
    .unwrap();
    let topology = Arc::new(TopologySource::new(topology));
    let catalog = Catalog::new(store);
    let fragments = Arc::new(InMemoryFragments::default());
    let metrics = Arc::new(Metrics::new());
    let collector = Arc::new(Collector::new(
        catalog.clone(),
        fragments.clone(),
        topology.clone(),
        metrics.clone(),
        CollectorConfig::default(),
    ));
    WritePath {
        catalog,
        fragments,
        topology,
        sizing: SizingPolicy::default(),
        metrics,
        collector,
    }
}

fn object(key: &str, id: ObjectId, size_bytes: u64) -> ObjectRecord {
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

fn body(bytes: &[u8]) -> UploadBody<futures::stream::BoxStream<'static, Result<Bytes, String>>> {
    let chunk = Bytes::copy_from_slice(bytes);
    UploadBody {
        stream: futures::stream::iter([Ok(chunk)]).boxed(),
        declared_length: Some(bytes.len() as u64),
        max_length: 1 << 20,
    }
}

/// A write path over a counting in-memory store that holds bucket `name`.
async fn writer_with_bucket(name: &str) -> (Arc<Counting>, WritePath) {
    let store = Arc::new(Counting::default());
    let writer = writer(store.clone());
    writer
        .catalog
        .create_bucket(name, "alice", RedundancyLevel::Medium)
        .await
        .unwrap();
    (store, writer)
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
    let written = writer
        .write("b", "small", id, plan, body(&bytes), &mut |_: &[u8]| {})
        .await
        .unwrap();
    let committed = writer
        .commit_object_in(
            &written,
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
    let shardlet = &written.shardlets[0];
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
    let written = writer
        .write("b", "k", id, plan, body(b"hello"), &mut |_: &[u8]| {})
        .await
        .unwrap();
    writer
        .commit_object_in(
            &written,
            object("k", id, 5),
            CommitCondition::Always,
            Some(stale),
        )
        .await
        .unwrap();
    assert!(writer.catalog.object("b", "k").await.unwrap().is_some());
}
