//! Between meta-raft's records and the pure core's view: shardlet records to
//! [`ShardletState`]s, and the workers' reads, all through the model crate's one typed
//! access layer ([`Metadata`]).
//!
//! A scan here never drops what it cannot decode without a trace: [`shardlets`] logs
//! every undecodable key and counts it for the worker that scanned, and hands the
//! caller the whole [`Scan`], so a caller that decides from absence (the scrub's
//! orphan deletions) can refuse an incomplete one ([`Scan::is_complete`]).

use shardlet_core::{Generation, RedundancyLevel, Scheme, ShardletId};
use shardlet_model::access::key_text;
use shardlet_model::schema::{keys, NodeRecord, ShardletRecord};
use shardlet_model::{Metadata, MetadataError, Scan, Stored};

use super::metrics::Metrics;
use crate::view::{FragmentLocation, ShardletState};

/// The level of a shardlet: recorded by the gateway; for records older than that
/// field, inferred from the scheme the gateway starts each level with.
pub fn level_of(record: &ShardletRecord) -> RedundancyLevel {
    record.level.unwrap_or(match record.scheme {
        Scheme::Replicated { copies } if copies <= 2 => RedundancyLevel::Low,
        Scheme::ErasureCoded { data: 4, .. } => RedundancyLevel::Low,
        Scheme::ErasureCoded { data, .. } if data >= 8 => RedundancyLevel::High,
        _ => RedundancyLevel::Medium,
    })
}

/// The record's generation: the newest of its fragments'. A commit writes new
/// fragments under the next one, so it grows with every layout change.
pub fn generation_of(record: &ShardletRecord) -> Generation {
    record
        .fragments
        .iter()
        .map(|location| location.generation)
        .max()
        .unwrap_or(Generation(0))
}

pub fn state_of(record: &ShardletRecord) -> ShardletState {
    ShardletState {
        id: record.id,
        level: level_of(record),
        size_bytes: record.size_bytes,
        scheme: record.scheme,
        generation: generation_of(record),
        fragments: record
            .fragments
            .iter()
            .map(|location| FragmentLocation {
                index: location.index,
                node: location.node,
                generation: location.generation,
            })
            .collect(),
        layout_changed_at_ms: record.layout_changed_unix_ms,
    }
}

/// Whether the record's layout is still exactly the one `state` describes.
pub fn same_layout(record: &ShardletRecord, state: &ShardletState) -> bool {
    record.scheme == state.scheme
        && record.fragments.len() == state.fragments.len()
        && record
            .fragments
            .iter()
            .zip(&state.fragments)
            .all(|(a, b)| a.index == b.index && a.node == b.node && a.generation == b.generation)
}

/// The shardlet's record now, or `None` when it does not exist. A record that does not
/// decode is an error naming its key ([`MetadataError::Corrupt`]).
pub async fn shardlet(
    metadata: &Metadata,
    id: ShardletId,
) -> Result<Option<Stored<ShardletRecord>>, MetadataError> {
    metadata.read(&keys::shardlet(id)).await
}

/// Every shardlet record, at most `keys_max` keys (the rest waits for the next pass).
/// Undecodable keys are logged and counted under `worker` in
/// `undecodable_records_total`, and stay in the result.
pub async fn shardlets(
    metadata: &Metadata,
    keys_max: usize,
    worker: &str,
    metrics: &Metrics,
) -> Result<Scan<ShardletRecord>, MetadataError> {
    let scan = metadata
        .scan::<ShardletRecord>(keys::SHARDLET_PREFIX.as_bytes(), keys_max)
        .await?;
    report_undecodable(&scan, worker, metrics);
    Ok(scan)
}

/// Every node record (at most `keys_max`). An undecodable one is logged and counted
/// under `nodes`; its node counts as having no record (Up) until it is rewritten.
pub async fn nodes(
    metadata: &Metadata,
    keys_max: usize,
) -> Result<Scan<NodeRecord>, MetadataError> {
    let scan = metadata
        .scan::<NodeRecord>(keys::NODE_PREFIX.as_bytes(), keys_max)
        .await?;
    for (key, error) in &scan.undecodable {
        tracing::error!(key = %key_text(key), %error, "undecodable node record");
    }
    Ok(scan)
}

/// Logs and counts a scan's undecodable records.
pub fn report_undecodable<R>(scan: &Scan<R>, worker: &str, metrics: &Metrics) {
    for (key, error) in &scan.undecodable {
        tracing::error!(key = %key_text(key), %error, worker, "undecodable shardlet record");
    }
    metrics
        .undecodable_records_total
        .with_label_values(&[worker])
        .inc_by(scan.undecodable.len() as u64);
}

/// Keys only (the node → fragment index has empty values), at most `keys_max`.
pub async fn index_keys(
    metadata: &Metadata,
    prefix: &[u8],
    keys_max: usize,
) -> Result<Vec<Vec<u8>>, MetadataError> {
    Ok(metadata.scan_keys(prefix, keys_max).await?.0)
}
