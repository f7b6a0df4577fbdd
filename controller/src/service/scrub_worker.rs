//! The scrub: continuously compares what the nodes store with what metadata says, and
//! reads fragments back to verify their checksums, at a bounded rate.
//!
//! Pass: list every live node's fragments (first, so a fragment committed while we
//! list is never mistaken for stale), read every shardlet record, read back every
//! recorded fragment (the node checks its stored CRC; we check the record's), then
//! [`classify`]: missing and corrupt fragments go to the repair worker, stale ones
//! (older generation than the record) are deleted at once, orphans after
//! `orphan_grace` (a gateway writes fragments before it commits their record).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardlet_core::{FragmentId, NodeId, NodeState};
use shardlet_model::schema::{keys, ShardletRecord};
use shardlet_node::ClientError as NodeError;
use tokio::sync::{Mutex, Notify};

use super::executor::{is_not_found, Executor};
use super::records::{self, state_of};
use super::ServiceShared;
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
    /// Pause between passes.
    pub interval: Duration,
    /// Read-back rate; 0 disables checksum verification (listings are still compared).
    pub bytes_per_second: u64,
    pub orphan_grace: Duration,
    pub repair_wake: Arc<Notify>,
    ledger: Mutex<OrphanLedger>,
}

impl ScrubWorker {
    pub fn new(
        shared: Arc<ServiceShared>,
        executor: Arc<Executor>,
        interval: Duration,
        bytes_per_second: u64,
        orphan_grace: Duration,
        repair_wake: Arc<Notify>,
    ) -> Self {
        Self {
            shared,
            executor,
            interval,
            bytes_per_second,
            orphan_grace,
            repair_wake,
            ledger: Mutex::new(OrphanLedger::default()),
        }
    }

    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            if self.shared.lease.is_active() {
                if let Err(error) = self.pass().await {
                    tracing::warn!(%error, "scrub pass failed");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    pub async fn pass(&self) -> anyhow::Result<()> {
        let meta = &self.shared.meta;
        let cluster = &self.shared.cluster;
        let view = cluster.view(&cluster.node_records(meta).await?);
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
        let entries =
            records::scan::<ShardletRecord>(meta, keys::SHARDLET_PREFIX, RECORDS_PER_PASS_MAX)
                .await?;
        let states: Vec<ShardletState> = entries
            .iter()
            .map(|(_, versioned)| state_of(&versioned.record))
            .collect();
        let corrupt = self
            .verify_checksums(&entries, &listings, &view.states)
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
                if let Ok(client) = cluster.client(stored.node) {
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
        let deletions = self.ledger.lock().await.deletions(
            &confirmed,
            super::unix_ms_now(),
            self.orphan_grace.as_millis() as u64,
        );
        for action in deletions {
            if !self.shared.lease.is_active() {
                break;
            }
            if let Action::DeleteFragment { target } = action {
                tracing::info!(fragment = %target.fragment, node = %target.node, "scrub deletes an obsolete fragment");
                self.executor.delete(&target).await;
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
        entries: &[(Vec<u8>, records::Versioned<ShardletRecord>)],
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
                            .scrub_bytes_verified_total
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

/// A checksum failure reported by the node (an error status, or a response the node
/// aborted mid-stream, which the client sees as a broken body), or our own comparison
/// with the record. A node that is unreachable or refuses us judges nothing.
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
