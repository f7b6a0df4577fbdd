//! Reading the metadata a cluster keeps about its data (shardlet and object records)
//! and checking it: what repair, scrub and transition tests assert on.

use std::collections::BTreeSet;

use shardlet_core::NodeId;
use shardlet_meta::{Blob, MetaClient, ReadConsistency};
use shardlet_model::schema::{decode, Record, ShardletRecord};

/// Records read per scan request.
const SCAN_PAGE_RECORDS: usize = 1_000;

/// Every record under `prefix`, decoded (linearizable reads, all pages).
pub async fn scan<R: Record>(meta: &MetaClient, prefix: &str) -> Vec<R> {
    let mut records = Vec::new();
    let mut after: Option<Blob> = None;
    loop {
        let page = meta
            .scan(
                prefix,
                after,
                SCAN_PAGE_RECORDS,
                ReadConsistency::Linearizable,
            )
            .await
            .unwrap_or_else(|error| panic!("scan of {prefix:?}: {error}"));
        records.extend(page.entries.iter().map(|(key, entry)| {
            decode::<R>(entry.value.as_slice())
                .unwrap_or_else(|error| panic!("record {key:?} does not decode: {error}"))
        }));
        match page.next_start_after {
            Some(next) => after = Some(next),
            None => return records,
        }
    }
}

/// Every shardlet record of the cluster.
pub async fn shardlets(meta: &MetaClient) -> Vec<ShardletRecord> {
    scan(meta, "s/").await
}

/// How many shardlets have a fragment on `node`.
pub async fn shardlets_on(meta: &MetaClient, node: NodeId) -> usize {
    shardlets(meta)
        .await
        .iter()
        .filter(|record| record.fragments.iter().any(|f| f.node == node))
        .count()
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
