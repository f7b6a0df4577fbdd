//! What the object layer's unit tests share: one gateway's write path, read path,
//! commits and collector over in-memory metadata and fragment stores (no servers: the
//! end-to-end tests drive real processes), and helpers to write and read objects.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use shardlet_core::{
    FragmentId, NodeId, ObjectId, RedundancyLevel, ShardletId, SizingPolicy, Topology,
};

use shardlet_model::memory::InMemoryMetadata;
use shardlet_model::schema::{
    keys, ClusterSettings, ObjectRecord, ShardletRecord, StoredChecksums,
};
use shardlet_model::settings::SettingsCache;

use crate::metrics::Metrics;
use crate::object::catalog::Catalog;
use crate::object::commit::{Commit, CommitCondition, Uncommitted};
use crate::object::fragments::{FragmentBody, FragmentError, FragmentStore, InMemoryFragments};
use crate::object::gc::{Collector, CollectorConfig};
use crate::object::heat::HeatReporter;
use crate::object::read_path::ReadPath;
use crate::object::storage_class::{plan_for, StoragePlan};
use crate::object::topology_source::TopologySource;
use crate::object::write_path::{UploadBody, WritePath};

pub(super) const KIB: usize = 1024;

/// Counts concurrent puts, to check the in-flight bound; runs `before_first_get` (a
/// concurrent change a test stages) before the first fragment read it serves.
pub(super) struct Counting {
    pub(super) inner: Arc<InMemoryFragments>,
    pub(super) now: AtomicUsize,
    pub(super) peak: AtomicUsize,
    pub(super) before_first_get:
        tokio::sync::Mutex<Option<futures::future::BoxFuture<'static, ()>>>,
}

#[async_trait]
impl FragmentStore for Counting {
    async fn put(
        &self,
        node: NodeId,
        id: FragmentId,
        body: FragmentBody,
    ) -> Result<(), FragmentError> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::task::yield_now().await;
        let result = self.inner.put(node, id, body).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        result
    }
    async fn get(
        &self,
        node: NodeId,
        id: FragmentId,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Bytes, FragmentError> {
        let staged = self.before_first_get.lock().await.take();
        if let Some(change) = staged {
            change.await;
        }
        self.inner.get(node, id, range).await
    }
    async fn delete(&self, node: NodeId, id: FragmentId) -> Result<(), FragmentError> {
        self.inner.delete(node, id).await
    }
    async fn list_of_object(
        &self,
        node: NodeId,
        object: ObjectId,
        limit: usize,
    ) -> Result<Vec<FragmentId>, FragmentError> {
        self.inner.list_of_object(node, object, limit).await
    }
}

pub(super) struct Fixture {
    pub(super) catalog: Catalog,
    pub(super) commit: Arc<Commit>,
    pub(super) fragments: Arc<InMemoryFragments>,
    pub(super) counting: Arc<Counting>,
    pub(super) writer: WritePath,
    pub(super) reader: ReadPath,
    pub(super) collector: Arc<Collector>,
    pub(super) metrics: Arc<Metrics>,
}

/// One gateway over fresh stores, enforcing an upload deadline of `upload_deadline`
/// (any value, zero included: the bounds are an operator's, not a test's).
pub(super) fn fixture(upload_deadline: Duration) -> Fixture {
    let topology = Topology::from_toml_str(
        include_str!("../../../examples/topology.toml"),
        "topology.toml",
    )
    .unwrap();
    let topology = Arc::new(TopologySource::new(topology));
    let catalog = Catalog::new(Arc::new(InMemoryMetadata::default()));
    let fragments = Arc::new(InMemoryFragments::default());
    let counting = Arc::new(Counting {
        inner: fragments.clone(),
        now: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        before_first_get: tokio::sync::Mutex::new(None),
    });
    let metrics = Arc::new(Metrics::new());
    let collector = Arc::new(Collector::new(
        catalog.clone(),
        counting.clone(),
        topology.clone(),
        metrics.clone(),
        CollectorConfig {
            sweep_interval: Duration::from_secs(3600),
        },
        Arc::new(SettingsCache::new(ClusterSettings {
            upload_deadline_seconds: upload_deadline.as_secs(),
        })),
    ));
    let (heat, _receiver) = HeatReporter::new(metrics.clone());
    // Small shardlets (64 KiB) so tests exercise many of them with little data.
    let sizing = SizingPolicy::new(64 * 1024, 64 * 1024, 8).unwrap();
    let commit = Arc::new(Commit::new(catalog.clone(), collector.clone()));
    let writer = WritePath {
        commit: commit.clone(),
        fragments: counting.clone(),
        topology,
        sizing,
        metrics: metrics.clone(),
    };
    let reader = ReadPath {
        catalog: catalog.clone(),
        fragments: counting.clone(),
        metrics: metrics.clone(),
        heat,
    };
    Fixture {
        catalog,
        commit,
        fragments,
        counting,
        writer,
        reader,
        collector,
        metrics,
    }
}

pub(super) fn data(length: usize) -> Vec<u8> {
    (0..length).map(|i| (i * 31 % 251) as u8).collect()
}

pub(super) fn body(
    bytes: &[u8],
    chunk: usize,
) -> UploadBody<futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>>> {
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    UploadBody {
        stream: futures::stream::iter(chunks).boxed(),
        declared_length: Some(bytes.len() as u64),
        max_length: 1 << 30,
    }
}

pub(super) fn record(bucket: &str, key: &str, id: ObjectId, plan: StoragePlan) -> ObjectRecord {
    ObjectRecord {
        bucket: bucket.into(),
        key: key.into(),
        id,
        size_bytes: 0,
        etag: String::new(),
        content_type: "application/octet-stream".into(),
        user_metadata: Default::default(),
        storage_class: None,
        redundancy: plan.level,
        created_unix_ms: 0,
        shardlets: Vec::new(),
        checksums: StoredChecksums::default(),
        parts_count: None,
    }
}

pub(super) async fn put(
    fixture: &Fixture,
    key: &str,
    bytes: &[u8],
    plan: StoragePlan,
) -> ObjectRecord {
    let id = ObjectId::random();
    let write = fixture
        .writer
        .write("b", key, id, plan, body(bytes, 10_000), &mut |_: &[u8]| {})
        .await
        .unwrap();
    let mut object = record("b", key, id, plan);
    object.size_bytes = write.written().size_bytes;
    fixture
        .commit
        .put_object(write, object, CommitCondition::Always, None)
        .await
        .unwrap()
}

pub(super) async fn read(
    fixture: &Fixture,
    object: &ObjectRecord,
    range: std::ops::Range<u64>,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut stream = std::pin::pin!(fixture.reader.stream(&object.shardlets, range));
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.map_err(|error| error.to_string())?);
    }
    Ok(out)
}

/// Writes `length` bytes (in chunks of `chunk`) as object `id` under `b/k`, medium
/// redundancy, without committing.
pub(super) async fn write_medium(
    fixture: &Fixture,
    id: ObjectId,
    length: usize,
    chunk: usize,
) -> Uncommitted {
    fixture
        .writer
        .write(
            "b",
            "k",
            id,
            medium(),
            body(&data(length), chunk),
            &mut |_: &[u8]| {},
        )
        .await
        .unwrap()
}

/// Degraded reads counted for `reason`.
pub(super) fn degraded(fixture: &Fixture, reason: &str) -> u64 {
    fixture
        .metrics
        .degraded_reads_total
        .with_label_values(&[reason])
        .get()
}

/// The shardlet record of `id` (must exist).
pub(super) async fn shardlet(fixture: &Fixture, id: ShardletId) -> ShardletRecord {
    fixture
        .catalog
        .read(&keys::shardlet(id))
        .await
        .unwrap()
        .unwrap()
        .record
}

/// The whole object, read back (must succeed).
pub(super) async fn read_all(fixture: &Fixture, object: &ObjectRecord) -> Vec<u8> {
    read(fixture, object, 0..object.size_bytes).await.unwrap()
}

pub(super) fn medium() -> StoragePlan {
    plan_for(None, RedundancyLevel::Medium).unwrap()
}

pub(super) fn cold() -> StoragePlan {
    plan_for(Some("STANDARD_IA"), RedundancyLevel::Medium).unwrap()
}

pub(super) async fn with_bucket(upload_deadline: Duration) -> Fixture {
    let fixture = fixture(upload_deadline);
    fixture
        .commit
        .buckets()
        .create_bucket("b", "alice", RedundancyLevel::Medium)
        .await
        .unwrap();
    fixture
}

/// Changes the upload deadline the fixture's gateway enforces (as a settings refresh
/// would).
pub(super) fn set_deadline(fixture: &Fixture, seconds: u64) {
    fixture.collector.settings().set(ClusterSettings {
        upload_deadline_seconds: seconds,
    });
}
