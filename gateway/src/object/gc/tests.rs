//! The sweep's cursor and the parking of intents that keep failing, on in-memory stores.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use shardlet_core::{
    FragmentId, FragmentIndex, Generation, NodeId, ObjectId, ShardletId, Topology,
};
use shardlet_model::memory::InMemoryMetadata;
use shardlet_model::schema::{encode, keys, ClusterSettings, IntentRecord, IntentState};
use shardlet_model::settings::SettingsCache;
use shardlet_model::store::Batch;

use super::parked::PARK_BACKOFF_INITIAL;
use super::*;
use crate::object::fragments::{FragmentBody, InMemoryFragments};

/// A clock the test moves by hand: a fixed origin plus [`OFFSET_MS`].
static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
static OFFSET_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn fake_now() -> Instant {
    *ORIGIN.get_or_init(Instant::now)
        + Duration::from_millis(OFFSET_MS.load(std::sync::atomic::Ordering::SeqCst))
}

fn advance(by: Duration) {
    OFFSET_MS.fetch_add(by.as_millis() as u64, std::sync::atomic::Ordering::SeqCst);
}

/// Fragments in memory, except that listing the fragments of `failing` (what collecting
/// an abandoned upload does on every node) fails as an unreachable node would.
#[derive(Default)]
struct Flaky {
    inner: InMemoryFragments,
    failing: Mutex<Option<ObjectId>>,
}

#[async_trait]
impl FragmentStore for Flaky {
    async fn put(
        &self,
        node: NodeId,
        id: FragmentId,
        body: FragmentBody,
    ) -> Result<(), FragmentError> {
        self.inner.put(node, id, body).await
    }
    async fn get(
        &self,
        node: NodeId,
        id: FragmentId,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Bytes, FragmentError> {
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
        if *self.failing.lock().unwrap() == Some(object) {
            return Err(FragmentError::Unavailable(format!(
                "node {node} unreachable"
            )));
        }
        self.inner.list_of_object(node, object, limit).await
    }
}

struct Setup {
    collector: Collector,
    catalog: Catalog,
    fragments: Arc<Flaky>,
    metrics: Arc<Metrics>,
    topology: Arc<TopologySource>,
}

fn setup() -> Setup {
    let topology = Topology::from_toml_str(
        include_str!("../../../../examples/topology.toml"),
        "topology.toml",
    )
    .unwrap();
    let topology = Arc::new(TopologySource::new(topology));
    let catalog = Catalog::new(Arc::new(InMemoryMetadata::default()));
    let fragments = Arc::new(Flaky::default());
    let metrics = Arc::new(Metrics::new());
    let collector = Collector::new(
        catalog.clone(),
        fragments.clone(),
        topology.clone(),
        metrics.clone(),
        CollectorConfig::default(),
        Arc::new(SettingsCache::new(ClusterSettings {
            upload_deadline_seconds: 3600,
        })),
    );
    Setup {
        collector,
        catalog,
        fragments,
        metrics,
        topology,
    }
}

/// An object id that sorts at `position` among the intents (the first byte leads).
fn id(first: u8, rest: u16) -> ObjectId {
    let mut bytes = [0u8; 16];
    bytes[0] = first;
    bytes[1..3].copy_from_slice(&rest.to_be_bytes());
    ObjectId(bytes)
}

/// An `Uploading` intent created `age` ago, and one unrecorded fragment of it on the
/// first node (what an upload writes before its records).
async fn uploading(setup: &Setup, object: ObjectId, age: Duration) {
    let intent = IntentRecord {
        object_id: object,
        state: IntentState::Uploading,
        bucket: "b".into(),
        key: "k".into(),
        created_unix_ms: unix_ms_now().saturating_sub(age.as_millis() as u64),
        object_ids: Vec::new(),
        records_complete: false,
    };
    let mut batch = Batch::default();
    batch.put(keys::intent(object), encode(&intent));
    setup.catalog.metadata().apply(batch).await.unwrap();
    let node = setup.topology.snapshot().topology.nodes()[0].id;
    let fragment = FragmentId::new(ShardletId::new(object, 0), Generation(0), FragmentIndex(0));
    let body = FragmentBody {
        bytes: Bytes::from_static(b"data"),
        checksum: shardlet_core::Crc32c::of(b"data"),
        read_first: false,
    };
    setup.fragments.put(node, fragment, body).await.unwrap();
}

async fn intent_exists(setup: &Setup, object: ObjectId) -> bool {
    setup
        .catalog
        .read::<IntentRecord>(&keys::intent(object))
        .await
        .unwrap()
        .is_some()
}

const YOUNG: Duration = Duration::from_secs(1);
const ABANDONED: Duration = Duration::from_secs(7200);

#[tokio::test]
async fn a_sweep_with_more_intents_than_a_page_reaches_the_old_one() {
    let setup = setup();
    // 300 young uploads sort before the one abandoned two hours ago.
    for rest in 0..300 {
        uploading(&setup, id(0x00, rest), YOUNG).await;
    }
    let old = id(0xff, 0);
    uploading(&setup, old, ABANDONED).await;

    let first = setup.collector.sweep().await.unwrap();
    assert_eq!(first.looked_at, INTENTS_PER_SWEEP_MAX);
    assert_eq!(first.collected, 0);
    assert!(!first.wrapped, "more intents follow the first page");
    assert!(intent_exists(&setup, old).await);

    let second = setup.collector.sweep().await.unwrap();
    assert_eq!(second.looked_at, 301 - INTENTS_PER_SWEEP_MAX);
    assert_eq!(
        second.collected, 1,
        "the second sweep goes on where the first stopped"
    );
    assert!(second.wrapped);
    assert!(!intent_exists(&setup, old).await);
    assert!(
        setup.fragments.inner.count() == 300,
        "only the old upload's fragment went"
    );

    let third = setup.collector.sweep().await.unwrap();
    assert_eq!(
        third.looked_at, INTENTS_PER_SWEEP_MAX,
        "after the last page the sweep starts over"
    );
    assert_eq!(
        setup
            .metrics
            .gc_sweeps_total
            .with_label_values(&["wrapped"])
            .get(),
        1
    );
}

#[tokio::test]
async fn a_failing_intent_is_parked_and_the_sweep_goes_on() {
    let mut setup = setup();
    // The only test on the fake clock: nothing else moves it.
    setup.collector = setup.collector.with_clock(fake_now);
    let stuck = id(0x10, 0);
    let fine = id(0x20, 0);
    uploading(&setup, stuck, ABANDONED).await;
    uploading(&setup, fine, ABANDONED).await;
    *setup.fragments.failing.lock().unwrap() = Some(stuck);

    let first = setup.collector.sweep().await.unwrap();
    assert_eq!((first.failed, first.collected), (1, 1), "{first:?}");
    assert!(intent_exists(&setup, stuck).await);
    assert!(
        !intent_exists(&setup, fine).await,
        "the failure did not stop the sweep"
    );
    assert_eq!(setup.metrics.gc_failures_total.get(), 1);
    assert_eq!(setup.metrics.gc_parked_intents.get(), 1);

    // Within its backoff the parked intent is not tried again (no second failure).
    let second = setup.collector.sweep().await.unwrap();
    assert_eq!((second.parked, second.failed), (1, 0), "{second:?}");
    assert_eq!(setup.metrics.gc_failures_total.get(), 1);

    // Still failing after the backoff: tried again, parked for twice as long.
    advance(PARK_BACKOFF_INITIAL);
    let third = setup.collector.sweep().await.unwrap();
    assert_eq!(third.failed, 1, "{third:?}");
    advance(PARK_BACKOFF_INITIAL);
    assert_eq!(setup.collector.sweep().await.unwrap().parked, 1);

    // The node is back: the next attempt after the backoff collects it and unparks it.
    *setup.fragments.failing.lock().unwrap() = None;
    advance(PARK_BACKOFF_INITIAL);
    let recovered = setup.collector.sweep().await.unwrap();
    assert_eq!(recovered.collected, 1, "{recovered:?}");
    assert!(!intent_exists(&setup, stuck).await);
    assert_eq!(setup.metrics.gc_parked_intents.get(), 0);
    assert_eq!(setup.fragments.inner.count(), 0);
}

#[tokio::test]
async fn an_intent_this_build_cannot_read_is_passed_over() {
    let setup = setup();
    let mut batch = Batch::default();
    batch.put(keys::intent(id(0x01, 0)), vec![9, b'{', b'}']);
    setup.catalog.metadata().apply(batch).await.unwrap();
    let old = id(0x02, 0);
    uploading(&setup, old, ABANDONED).await;
    let report = setup.collector.sweep().await.unwrap();
    assert_eq!((report.undecodable, report.collected), (1, 1), "{report:?}");
    assert!(!intent_exists(&setup, old).await);
}
