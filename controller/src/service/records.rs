//! Between meta-raft's records and the pure core's view: shardlet records to
//! [`ShardletState`]s, and bounded, paged scans.

use shardlet_core::{Generation, RedundancyLevel, Scheme};
use shardlet_meta::command::VersionedValue;
use shardlet_meta::{Blob, MetaClient, ReadConsistency};
use shardlet_model::schema::{decode, Record, ShardletRecord};

use crate::view::{FragmentLocation, ShardletState};

/// Keys per scan request (meta-raft's maximum is 10,000).
pub const SCAN_PAGE_KEYS: usize = 1_000;

/// A record and the version it was read at (the compare-and-set key of its commit).
#[derive(Clone, Debug)]
pub struct Versioned<R> {
    pub record: R,
    pub version: u64,
}

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

pub async fn get<R: Record>(
    meta: &MetaClient,
    key: Vec<u8>,
) -> anyhow::Result<Option<Versioned<R>>> {
    match meta.get(key, ReadConsistency::Linearizable).await? {
        Some(entry) => Ok(Some(Versioned {
            record: decode::<R>(entry.value.as_slice())?,
            version: entry.version,
        })),
        None => Ok(None),
    }
}

/// Every key and value under `prefix`, at most `keys_max` of them (the rest waits for
/// the next pass), page by page.
async fn scan_entries(
    meta: &MetaClient,
    prefix: Blob,
    keys_max: usize,
) -> anyhow::Result<Vec<(Blob, VersionedValue)>> {
    let mut out = Vec::new();
    let mut start_after: Option<Blob> = None;
    loop {
        let limit = SCAN_PAGE_KEYS
            .min(keys_max.saturating_sub(out.len()))
            .max(1);
        let page = meta
            .scan(
                prefix.clone(),
                start_after.take(),
                limit,
                ReadConsistency::Linearizable,
            )
            .await?;
        out.extend(page.entries);
        match page.next_start_after {
            Some(next) if out.len() < keys_max => start_after = Some(next),
            _ => return Ok(out),
        }
    }
}

/// Every record under `prefix`, at most `keys_max` keys. Records that do not decode are
/// logged and skipped: one bad record must not stop repair of all the others.
pub async fn scan<R: Record>(
    meta: &MetaClient,
    prefix: &str,
    keys_max: usize,
) -> anyhow::Result<Vec<(Vec<u8>, Versioned<R>)>> {
    let entries = scan_entries(meta, prefix.into(), keys_max).await?;
    Ok(entries
        .into_iter()
        .filter_map(|(key, entry)| match decode::<R>(entry.value.as_slice()) {
            Ok(record) => Some((
                key.0,
                Versioned {
                    record,
                    version: entry.version,
                },
            )),
            Err(error) => {
                tracing::error!(key = %String::from_utf8_lossy(key.as_slice()), %error, "undecodable record skipped");
                None
            }
        })
        .collect())
}

/// Keys only (the node → fragment index has empty values), at most `keys_max`.
pub async fn scan_keys(
    meta: &MetaClient,
    prefix: Vec<u8>,
    keys_max: usize,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let entries = scan_entries(meta, prefix.into(), keys_max).await?;
    Ok(entries.into_iter().map(|(key, _)| key.0).collect())
}
