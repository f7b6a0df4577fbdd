//! What the controller tests share: starting a controller next to a harness cluster,
//! reading shardlet records, writing and checking objects.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use shardlet_core::{FragmentId, NodeId, Scheme, ShardletId};
use shardlet_meta::{Blob, MetaClient, ReadConsistency};
use shardlet_model::schema::{decode, ObjectRecord, ShardletRecord};

use crate::harness::cluster::{Cluster, ServiceProcess};
use crate::harness::raw_http::{self, Request};
use crate::harness::{metric_total, pattern_bytes};
use crate::s3_client::S3Client;

/// Generous: 2 shared cores, a dozen processes per cluster, several clusters at once.
pub const REPAIR_DEADLINE: Duration = Duration::from_secs(240);
pub const BUCKET: &str = "controlled";

/// Flags that make a controller act in seconds. Scrub and transitions are off unless a
/// test turns them on, so each test sees only the behaviour it checks.
pub fn fast_flags() -> Vec<String> {
    [
        "--down-grace-seconds",
        "3",
        "--suspect-after-seconds",
        "1",
        "--probe-interval-seconds",
        "0.25",
        "--lease-seconds",
        "3",
        "--repair-interval-seconds",
        "0.5",
        "--scrub-interval-seconds",
        "0",
        "--transition-interval-seconds",
        "0",
    ]
    .iter()
    .map(|flag| flag.to_string())
    .collect()
}

/// Starts `shardlet controller` for `cluster` with the fast flags, `overrides`
/// (`--flag value` pairs) replacing any of them.
pub async fn start_controller(
    cluster: &Cluster,
    name: &str,
    overrides: &[String],
) -> ServiceProcess {
    let mut flags: Vec<(String, String)> = fast_flags()
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect();
    for pair in overrides.chunks(2) {
        flags.retain(|(flag, _)| *flag != pair[0]);
        flags.push((pair[0].clone(), pair[1].clone()));
    }
    let mut arguments = vec![
        "controller".to_string(),
        "--meta".into(),
        cluster.meta.address.to_string(),
        "--topology".into(),
        cluster.topology_path.display().to_string(),
    ];
    arguments.extend(flags.into_iter().flat_map(|(flag, value)| [flag, value]));
    ServiceProcess::start(
        name,
        arguments,
        &cluster.secret,
        &cluster.root.path().join("logs"),
    )
    .await
}

pub fn meta(cluster: &Cluster) -> MetaClient {
    MetaClient::new(
        vec![cluster.meta.address.to_string()],
        &cluster.secret,
        Default::default(),
    )
    .unwrap()
}

/// `GET path` on the controller; retried (bounded) so a response slowed by a loaded
/// machine is not mistaken for an empty one.
pub async fn controller_get(controller: &ServiceProcess, path: &str) -> String {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match raw_http::send(controller.address, &Request::new("GET", path)).await {
            Ok(response) if response.status == 200 => {
                return String::from_utf8_lossy(&response.body).into_owned()
            }
            Ok(response) if tokio::time::Instant::now() >= give_up => {
                panic!("controller {path}: status {}", response.status)
            }
            Err(error) if tokio::time::Instant::now() >= give_up => {
                panic!("controller {path}: {error}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

pub async fn controller_metric(controller: &ServiceProcess, name: &str) -> f64 {
    metric_total(&controller_get(controller, "/metrics").await, name).unwrap_or(0.0)
}

/// Every record under `prefix`, decoded.
async fn scan<R: shardlet_model::schema::Record>(meta: &MetaClient, prefix: &str) -> Vec<R> {
    let mut out = Vec::new();
    let mut after: Option<Blob> = None;
    loop {
        let page = meta
            .scan(prefix, after, 1_000, ReadConsistency::Linearizable)
            .await
            .unwrap();
        out.extend(
            page.entries
                .iter()
                .map(|(_, entry)| decode::<R>(entry.value.as_slice()).unwrap()),
        );
        match page.next_start_after {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

pub async fn shardlets(meta: &MetaClient) -> Vec<ShardletRecord> {
    scan(meta, "s/").await
}

/// Shardlet ids of each object, by key.
pub async fn shardlets_by_key(meta: &MetaClient) -> BTreeMap<String, Vec<ShardletId>> {
    scan::<ObjectRecord>(meta, &format!("o/{BUCKET}/"))
        .await
        .into_iter()
        .map(|object| (object.key, object.shardlets.iter().map(|s| s.id).collect()))
        .collect()
}

/// Full redundancy without `dead`: every fragment index present once, on distinct
/// nodes, none of them dead. Returns what is wrong, if anything.
pub fn redundancy_problems(records: &[ShardletRecord], dead: &[NodeId]) -> Vec<String> {
    let mut problems = Vec::new();
    for record in records {
        let nodes: BTreeSet<NodeId> = record.fragments.iter().map(|f| f.node).collect();
        let indexes: BTreeSet<u8> = record.fragments.iter().map(|f| f.index.0).collect();
        let width = record.scheme.width();
        if record.fragments.len() != width || nodes.len() != width || indexes.len() != width {
            problems.push(format!(
                "{}: {} fragments on {} nodes for {}",
                record.id,
                record.fragments.len(),
                nodes.len(),
                record.scheme
            ));
        }
        if let Some(node) = record.fragments.iter().find(|f| dead.contains(&f.node)) {
            problems.push(format!(
                "{}: fragment {} still on dead node {}",
                record.id, node.index.0, node.node
            ));
        }
    }
    problems
}

/// An object the test wrote: its key and bytes.
pub struct Written {
    pub key: String,
    pub bytes: Vec<u8>,
}

/// Writes `count` objects named `prefix/N` of 1–`size_max` bytes with `storage_class`,
/// eight at a time.
pub async fn write_objects(
    s3: &S3Client,
    prefix: &str,
    count: usize,
    size_max: usize,
    storage_class: Option<&str>,
) -> Vec<Written> {
    let objects: Vec<Written> = (0..count)
        .map(|n| {
            let seed = (n as u64 + 1) * 7919 + prefix.len() as u64;
            let size = 1 + (seed as usize * 104_729) % size_max;
            Written {
                key: format!("{prefix}/{n:04}"),
                bytes: pattern_bytes(size, seed),
            }
        })
        .collect();
    let results: Vec<_> = futures::stream::iter(objects.iter())
        .map(|object| s3.put_object(BUCKET, &object.key, object.bytes.clone(), storage_class))
        .buffer_unordered(8)
        .collect()
        .await;
    for result in results {
        result.unwrap();
    }
    objects
}

/// Keys whose bytes do not read back identical.
pub async fn unreadable(s3: &S3Client, objects: &[Written]) -> Vec<String> {
    let results: Vec<(String, bool)> = futures::stream::iter(objects.iter())
        .map(|object| async move {
            let ok = matches!(s3.get_object(BUCKET, &object.key, None).await, Ok(bytes) if bytes == object.bytes);
            (object.key.clone(), ok)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(key, _)| key)
        .collect()
}

/// Fragments each running node holds (files and small-fragment store alike, through its
/// listing), by node id, with their payload lengths.
pub async fn fragments_stored(cluster: &Cluster) -> BTreeMap<NodeId, Vec<(FragmentId, u64)>> {
    let mut out = BTreeMap::new();
    for node in &cluster.nodes {
        let fragments = node
            .stored_fragments()
            .await
            .into_iter()
            .filter_map(|(id, length)| Some((id.parse().ok()?, length)))
            .collect();
        out.insert(NodeId(node.options.node_id), fragments);
    }
    out
}

/// The node (position in `cluster.nodes`) holding the most fragments.
pub async fn busiest_node(cluster: &Cluster) -> usize {
    let stored = fragments_stored(cluster).await;
    (0..cluster.nodes.len())
        .max_by_key(|position| {
            stored
                .get(&NodeId(cluster.nodes[*position].options.node_id))
                .map_or(0, Vec::len)
        })
        .unwrap()
}

pub fn is_replicated(scheme: Scheme) -> bool {
    matches!(scheme, Scheme::Replicated { .. })
}
