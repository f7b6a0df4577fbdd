//! The scrub: continuously compares what the nodes store with what metadata says, and
//! reads fragments back to verify their checksums, at a bounded rate.
//!
//! Pass: list every live node's fragments (first, so a fragment committed while we
//! list is never mistaken for stale), read every shardlet record, read back every
//! recorded fragment (the node checks its stored CRC; we check the record's), then
//! [`classify`]: missing and corrupt fragments go to the repair worker, stale ones
//! (older generation than the record) are deleted at once, orphans after the orphan
//! grace (a gateway writes fragments before it commits their record), which derives
//! from the cluster's upload deadline ([`crate::orphan_grace`]). An orphan's age is
//! measured up to the start of the record scan that still found it unreferenced, and
//! no orphan is deleted while the settings copy is stale.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use shardlet_core::{FragmentId, NodeId, NodeState};
use shardlet_model::schema::{keys, IntentRecord, ShardletRecord};
use shardlet_model::{Metadata, MetadataError, Scan, Stored};
use shardlet_node::ClientError as NodeError;
use tokio::sync::{Mutex, Notify};

use super::clock::unix_ms_now;
use super::executor::{is_not_found, Executor};
use super::leader::LeaderPass;
use super::records::state_of;
use super::shared::ServiceShared;
use crate::scrub::{classify, lost_locations, Finding, OrphanLedger};
use crate::view::{Action, ShardletState, StoredFragment};

/// Fragments listed per node per pass.
const LISTED_PER_NODE_MAX: usize = 1_000_000;
/// Shardlet records read per pass.
const RECORDS_PER_PASS_MAX: usize = 1_000_000;
/// Page size of a node listing.
const LIST_PAGE: usize = 5_000;

pub struct ScrubWorker {
    pub shared: Arc<ServiceShared>,
    pub executor: Arc<Executor>,
    /// Read-back rate; 0 disables checksum verification (listings are still compared).
    pub bytes_per_second: u64,
    pub repair_wake: Arc<Notify>,
    ledger: Mutex<OrphanLedger>,
}

#[async_trait]
impl LeaderPass for ScrubWorker {
    const NAME: &'static str = "scrub";

    async fn leader_pass(&self) -> anyhow::Result<()> {
        self.pass().await
    }
}

impl ScrubWorker {
    pub fn new(
        shared: Arc<ServiceShared>,
        executor: Arc<Executor>,
        bytes_per_second: u64,
        repair_wake: Arc<Notify>,
    ) -> Self {
        Self {
            shared,
            executor,
            bytes_per_second,
            repair_wake,
            ledger: Mutex::new(OrphanLedger::default()),
        }
    }

    pub async fn pass(&self) -> anyhow::Result<()> {
        let view = self.shared.cluster_view().await?;
        let mut listings: BTreeMap<NodeId, BTreeSet<FragmentId>> = BTreeMap::new();
        for (node, state) in &view.states {
            if matches!(state, NodeState::Down | NodeState::Decommissioned) {
                continue;
            }
            match self.list(*node).await {
                Ok(listing) => {
                    listings.insert(*node, listing);
                }
                Err(error) => tracing::warn!(%node, %error, "cannot list; not judged this pass"),
            }
        }
        // An orphan's age counts to the start of the scan that found it unreferenced:
        // a record committed after this instant is not in the scan.
        let scanned_at_ms = unix_ms_now();
        let scan = self
            .shared
            .shardlet_records(RECORDS_PER_PASS_MAX, "scrub")
            .await?;
        let entries = &scan.records;
        let states: Vec<ShardletState> = entries
            .iter()
            .map(|(_, versioned)| state_of(&versioned.record))
            .collect();
        let corrupt = self
            .verify_checksums(entries, &listings, &view.states)
            .await;
        let findings = classify(&states, &listings, &corrupt);
        // A "missing" fragment may have been written after its node was listed:
        // confirm with a HEAD before repairing.
        let mut confirmed = Vec::with_capacity(findings.len());
        for finding in findings {
            if let Finding::Missing(shardlet, location) = &finding {
                let stored = StoredFragment {
                    node: location.node,
                    fragment: FragmentId::new(*shardlet, location.generation, location.index),
                };
                if let Ok(client) = self.shared.cluster.client(stored.node) {
                    if client.head(&stored.fragment).await.is_ok() {
                        continue;
                    }
                }
            }
            confirmed.push(finding);
        }
        for finding in &confirmed {
            self.shared
                .metrics
                .scrub_findings_total
                .with_label_values(&[finding_label(finding)])
                .inc();
        }
        let lost = lost_locations(&confirmed);
        if !lost.is_empty() {
            tracing::warn!(
                count = lost.len(),
                "scrub found missing or corrupt fragments"
            );
            self.shared.add_scrub_lost(lost);
            self.repair_wake.notify_one();
        }
        let deletions = match self.shared.orphan_grace() {
            Some(grace) => {
                let mut ledger = self.ledger.lock().await;
                let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
                deletions(&mut ledger, &scan, &confirmed, scanned_at_ms, grace_ms)
            }
            None => {
                tracing::warn!(
                    "scrub: the cluster settings were not read recently; no deletions this pass"
                );
                None
            }
        };
        if deletions.is_none() {
            self.shared.metrics.scrub_deletions_withheld_total.inc();
        }
        for action in deletions.unwrap_or_default() {
            if !self.shared.lease.is_active() {
                break;
            }
            if let Action::DeleteFragment { target } = action {
                // The scan may be minutes old: what it judged obsolete is checked again,
                // against the metadata as it is now, right before the delete.
                match still_obsolete(&self.shared.metadata, &target).await {
                    Ok(true) => {
                        tracing::info!(fragment = %target.fragment, node = %target.node, "scrub deletes an obsolete fragment");
                        self.executor.delete(&target).await;
                    }
                    Ok(false) => {
                        tracing::info!(fragment = %target.fragment, node = %target.node, "scrub keeps a fragment metadata now references");
                        self.shared.metrics.scrub_deletions_withheld_total.inc();
                    }
                    Err(error) => {
                        self.shared.metrics.scrub_deletions_withheld_total.inc();
                        return Err(anyhow::Error::new(error).context(format!(
                            "scrub stops deleting: cannot confirm {} on node {} is obsolete",
                            target.fragment, target.node
                        )));
                    }
                }
            }
        }
        self.shared.metrics.scrub_passes_total.inc();
        Ok(())
    }

    async fn list(&self, node: NodeId) -> anyhow::Result<BTreeSet<FragmentId>> {
        let client = self.shared.cluster.client(node)?;
        let mut listing = BTreeSet::new();
        let mut after: Option<FragmentId> = None;
        loop {
            let page = client.list(after.as_ref(), Some(LIST_PAGE)).await?;
            listing.extend(page.fragments.iter().map(|fragment| fragment.id));
            match page.next_after {
                Some(next) if listing.len() < LISTED_PER_NODE_MAX => after = Some(next),
                _ => return Ok(listing),
            }
        }
    }

    /// Reads back every recorded fragment on a live node that lists it, paced to
    /// `bytes_per_second`. A read the node refuses for a checksum failure, or bytes
    /// that do not match the record, make the fragment corrupt.
    async fn verify_checksums(
        &self,
        entries: &[(Vec<u8>, Stored<ShardletRecord>)],
        listings: &BTreeMap<NodeId, BTreeSet<FragmentId>>,
        states: &BTreeMap<NodeId, NodeState>,
    ) -> BTreeSet<StoredFragment> {
        let mut corrupt = BTreeSet::new();
        if self.bytes_per_second == 0 {
            return corrupt;
        }
        let started = Instant::now();
        let mut bytes_read: u64 = 0;
        for (_, versioned) in entries {
            let record = &versioned.record;
            for location in &record.fragments {
                if !self.shared.lease.is_active() {
                    return corrupt;
                }
                let stored = StoredFragment {
                    node: location.node,
                    fragment: record.fragment_id(location),
                };
                let listed = listings
                    .get(&stored.node)
                    .is_some_and(|listing| listing.contains(&stored.fragment));
                let live = !matches!(
                    states.get(&stored.node),
                    Some(NodeState::Down | NodeState::Decommissioned) | None
                );
                if !listed || !live {
                    continue;
                }
                match self.executor.read(&stored, Some(location.checksum)).await {
                    Ok(bytes) => {
                        bytes_read += bytes.len() as u64;
                        self.shared.metrics.scrub_fragments_verified_total.inc();
                        self.shared
                            .metrics
                            .scrub_verified_bytes_total
                            .inc_by(bytes.len() as u64);
                    }
                    Err(error) if is_corruption(&error) => {
                        tracing::warn!(fragment = %stored.fragment, node = %stored.node, %error, "scrub: corrupt fragment");
                        corrupt.insert(stored);
                    }
                    Err(error) if is_not_found(&error) => {}
                    Err(error) => {
                        tracing::debug!(%error, "scrub read failed; not judged");
                    }
                }
                // Pace: never ahead of the configured rate.
                let due = Duration::from_secs_f64(bytes_read as f64 / self.bytes_per_second as f64);
                let elapsed = started.elapsed();
                if due > elapsed {
                    tokio::time::sleep(due - elapsed).await;
                }
            }
        }
        corrupt
    }
}

/// The deletions a pass may make, or `None` when its record scan was incomplete: a
/// fragment whose record was beyond the scan's limit, or whose record did not decode,
/// looks exactly like an orphan, and deleting it would lose data. Such a pass deletes
/// nothing (stale fragments included: they wait one complete pass) and leaves the
/// ledger as it was, so no orphan ages on the strength of a partial view.
fn deletions(
    ledger: &mut OrphanLedger,
    scan: &Scan<ShardletRecord>,
    findings: &[Finding],
    now_ms: u64,
    orphan_grace_ms: u64,
) -> Option<Vec<Action>> {
    if !scan.is_complete() {
        tracing::warn!(
            undecodable = scan.undecodable.len(),
            truncated = scan.truncated,
            "scrub: incomplete record scan; no deletions this pass"
        );
        return None;
    }
    Some(ledger.deletions(findings, now_ms, orphan_grace_ms))
}

/// A checksum failure reported by the node (an error status, or a response the node
/// aborted mid-stream, which the client sees as a broken body), or our own comparison
/// with the record. A node that is unreachable or refuses us judges nothing.
/// Whether `target` is still unreferenced, by point reads of the metadata as it is now:
/// neither its shardlet's record places it (on that node, at that generation), nor does
/// an intent of its object exist (an upload still writing, or garbage the collector
/// owns). A record or intent this build cannot decode (a newer format) is an error: the
/// caller stops deleting rather than guess.
async fn still_obsolete(
    metadata: &Metadata,
    target: &StoredFragment,
) -> Result<bool, MetadataError> {
    let shardlet = target.fragment.shardlet;
    if metadata
        .read::<IntentRecord>(&keys::intent(shardlet.object))
        .await?
        .is_some()
    {
        return Ok(false);
    }
    let Some(stored) = metadata
        .read::<ShardletRecord>(&keys::shardlet(shardlet))
        .await?
    else {
        return Ok(true);
    };
    let record = &stored.record;
    Ok(!record.fragments.iter().any(|location| {
        location.node == target.node && record.fragment_id(location) == target.fragment
    }))
}

fn is_corruption(error: &anyhow::Error) -> bool {
    let node_error = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<NodeError>());
    match node_error {
        Some(NodeError::NotFound | NodeError::Unavailable(_) | NodeError::Unauthorized(_)) => false,
        Some(_) => true,
        None => error.to_string().contains("recorded"),
    }
}

fn finding_label(finding: &Finding) -> &'static str {
    match finding {
        Finding::Missing(..) => "missing",
        Finding::Corrupt(..) => "corrupt",
        Finding::Stale(_) => "stale",
        Finding::Orphan(_) => "orphan",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use shardlet_core::{
        Codec, Crc32c, FragmentIndex, Generation, ObjectId, RedundancyLevel, Scheme, ShardletId,
    };
    use shardlet_model::memory::InMemoryMetadata;
    use shardlet_model::schema::{encode, keys, AccessCounters, FragmentLocation};
    use shardlet_model::store::Batch;
    use shardlet_model::Metadata;

    use super::super::metrics::Metrics;
    use super::super::records;
    use super::*;
    use crate::scrub::classify;
    use crate::view::StoredFragment;

    fn record(object: u8) -> ShardletRecord {
        ShardletRecord {
            id: ShardletId::new(ObjectId([object; 16]), 0),
            size_bytes: 100,
            checksum: Crc32c(1),
            scheme: Scheme::Replicated { copies: 1 },
            codec: Codec::None,
            fragments: vec![FragmentLocation {
                index: FragmentIndex(0),
                node: NodeId(1),
                generation: Generation(1),
                checksum: Crc32c(1),
                size_bytes: 100,
            }],
            access: AccessCounters::default(),
            level: Some(RedundancyLevel::Low),
            layout_changed_unix_ms: 0,
            layout_version: 0,
        }
    }

    /// Three shardlets on node 1; the record of the third is written by "a newer build"
    /// (format version 9) when `corrupt_third`.
    async fn metadata_with_three(corrupt_third: bool) -> Metadata {
        let metadata = Metadata::new(Arc::new(InMemoryMetadata::default()));
        for object in 1..=3u8 {
            let record = record(object);
            let value = if corrupt_third && object == 3 {
                vec![9, b'{', b'}']
            } else {
                encode(&record)
            };
            let mut batch = Batch::default();
            batch.put(keys::shardlet(record.id), value);
            metadata.apply(batch).await.unwrap();
        }
        metadata
    }

    /// What node 1 stores: the three recorded fragments.
    fn listing() -> BTreeMap<NodeId, BTreeSet<FragmentId>> {
        let stored = (1..=3u8)
            .map(|object| {
                let record = record(object);
                record.fragment_id(&record.fragments[0])
            })
            .collect();
        BTreeMap::from([(NodeId(1), stored)])
    }

    /// One scrub pass's decision from a scan: what it finds, and what it deletes with
    /// an orphan grace of 0 (every orphan is due at once).
    async fn decide(
        metadata: &Metadata,
        keys_max: usize,
        metrics: &Metrics,
    ) -> (Vec<Finding>, Option<Vec<Action>>) {
        let scan = records::shardlets(metadata, keys_max, "scrub", metrics)
            .await
            .unwrap();
        let states: Vec<ShardletState> = scan
            .records
            .iter()
            .map(|(_, stored)| state_of(&stored.record))
            .collect();
        let findings = classify(&states, &listing(), &BTreeSet::new());
        let mut ledger = OrphanLedger::default();
        let deletions = deletions(&mut ledger, &scan, &findings, 1, 0);
        (findings, deletions)
    }

    fn orphans(findings: &[Finding]) -> Vec<StoredFragment> {
        findings
            .iter()
            .filter_map(|finding| match finding {
                Finding::Orphan(target) => Some(*target),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_record_that_does_not_decode_never_makes_its_fragment_an_orphan_to_delete() {
        let metadata = metadata_with_three(true).await;
        let metrics = Metrics::new().unwrap();
        let (findings, deletions) = decide(&metadata, 100, &metrics).await;
        assert_eq!(
            orphans(&findings).len(),
            1,
            "without its record the fragment looks orphaned"
        );
        assert_eq!(deletions, None, "so the pass must not delete anything");
        assert_eq!(
            metrics
                .undecodable_records_total
                .with_label_values(&["scrub"])
                .get(),
            1,
            "and the undecodable record is counted"
        );
    }

    #[tokio::test]
    async fn a_scan_cut_at_its_limit_deletes_nothing() {
        let metadata = metadata_with_three(false).await;
        let metrics = Metrics::new().unwrap();
        let (findings, deletions) = decide(&metadata, 2, &metrics).await;
        assert_eq!(orphans(&findings).len(), 1, "the third record was not read");
        assert_eq!(deletions, None);
    }

    #[tokio::test]
    async fn a_complete_scan_deletes_real_orphans_after_their_grace() {
        let metadata = metadata_with_three(false).await;
        let mut batch = Batch::default();
        batch.delete(keys::shardlet(record(2).id));
        metadata.apply(batch).await.unwrap();
        let metrics = Metrics::new().unwrap();
        let (findings, deletions) = decide(&metadata, 100, &metrics).await;
        let orphaned = orphans(&findings);
        assert_eq!(orphaned.len(), 1);
        assert_eq!(
            deletions,
            Some(vec![Action::DeleteFragment {
                target: orphaned[0]
            }])
        );
    }

    fn fragment_of(record: &ShardletRecord) -> StoredFragment {
        StoredFragment {
            node: record.fragments[0].node,
            fragment: record.fragment_id(&record.fragments[0]),
        }
    }

    async fn put(metadata: &Metadata, key: Vec<u8>, value: Vec<u8>) {
        let mut batch = Batch::default();
        batch.put(key, value);
        metadata.apply(batch).await.unwrap();
    }

    #[tokio::test]
    async fn a_deletion_is_confirmed_against_the_metadata_as_it_is_now() {
        let metadata = Metadata::new(Arc::new(InMemoryMetadata::default()));
        let recorded = record(1);
        let target = fragment_of(&recorded);
        // No record, no intent: obsolete.
        assert!(still_obsolete(&metadata, &target).await.unwrap());

        // The record committed after the scan places it: kept.
        put(&metadata, keys::shardlet(recorded.id), encode(&recorded)).await;
        assert!(!still_obsolete(&metadata, &target).await.unwrap());

        // The same fragment id on another node than the record says: that copy is not
        // referenced.
        let elsewhere = StoredFragment {
            node: NodeId(2),
            ..target
        };
        assert!(still_obsolete(&metadata, &elsewhere).await.unwrap());

        // A newer generation recorded: the old one is obsolete.
        let mut moved = recorded.clone();
        moved.fragments[0].generation = Generation(2);
        put(&metadata, keys::shardlet(recorded.id), encode(&moved)).await;
        assert!(still_obsolete(&metadata, &target).await.unwrap());
    }

    #[tokio::test]
    async fn an_upload_in_flight_keeps_its_unrecorded_fragments() {
        let metadata = Metadata::new(Arc::new(InMemoryMetadata::default()));
        let target = fragment_of(&record(4));
        let intent = IntentRecord {
            object_id: target.fragment.shardlet.object,
            state: shardlet_model::schema::IntentState::Uploading,
            bucket: "b".into(),
            key: "k".into(),
            created_unix_ms: 1,
            object_ids: Vec::new(),
            records_complete: false,
        };
        put(&metadata, keys::intent(intent.object_id), encode(&intent)).await;
        assert!(!still_obsolete(&metadata, &target).await.unwrap());
    }

    #[tokio::test]
    async fn a_record_of_a_newer_format_stops_the_deletion_with_an_error() {
        let metadata = Metadata::new(Arc::new(InMemoryMetadata::default()));
        let recorded = record(5);
        put(&metadata, keys::shardlet(recorded.id), vec![9, b'{', b'}']).await;
        let error = still_obsolete(&metadata, &fragment_of(&recorded))
            .await
            .unwrap_err();
        assert!(matches!(error, MetadataError::Corrupt(_)), "{error}");
    }
}
