//! Runs the pure planners' [`Action`]s against storage nodes and meta-raft.
//!
//! What survives a crash at each step (the plan's order is what makes this safe):
//! - writes (`CopyFragment`, `Reconstruct`, `Reencode`) store fragments under a *new*
//!   generation that no committed record names yet: a crash leaves orphans, which the
//!   scrub deletes after its grace period, or which a re-run of the plan finds already
//!   stored (a storage node's PUT of the same id and bytes is idempotent);
//! - `Verify` reads every new fragment back (the node checks its CRC on read, we check
//!   it against the CRC computed when it was produced) before anything is committed;
//! - `CommitLayout` is one meta-raft batch: the shardlet record and its node → fragment
//!   index entries move together, guarded by the record's version (nobody changed the
//!   layout since we planned) and by the lease's fencing token (we still hold the
//!   lease). Either the old complete layout or the new verified one is committed;
//! - `DeleteFragment` runs only after the commit: a crash leaves stale fragments,
//!   which the scrub finds (older generation than the record) and deletes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use anyhow::{bail, Context};
use bytes::Bytes;
use shardlet_core::{codec, Codec, Crc32c, FragmentId, NodeId, Scheme};
use shardlet_meta::{BatchOutcome, ClientError, MetaClient};
use shardlet_model::schema::{index, FragmentLocation as RecordLocation, ShardletRecord};
use shardlet_model::{Metadata, Stored};
use shardlet_node::ClientError as NodeError;

use super::clock::unix_ms_now;
use super::cluster::Cluster;
use super::lease::Lease;
use super::metrics::Metrics;
use super::records::{self, generation_of, same_layout};
use crate::view::{Action, FragmentLocation, ShardletState, StoredFragment};

/// Commit attempts when only the record's version moved (e.g. the gateways' access
/// counters): each re-reads the record and checks the layout is still the planned one.
const COMMIT_ATTEMPTS_MAX: usize = 8;

/// How a plan ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed (and obsolete fragments deleted as far as possible).
    Committed { bytes_moved: u64 },
    /// The record changed under us (another layout, or deleted): re-plan later.
    Conflict,
}

pub struct Executor {
    pub cluster: Arc<Cluster>,
    pub meta: Arc<MetaClient>,
    pub metadata: Metadata,
    pub lease: Arc<Lease>,
    pub metrics: Arc<Metrics>,
}

/// Fragments this run wrote or read back: their CRC and length, for the commit.
type Written = HashMap<FragmentId, (Crc32c, u64)>;

impl Executor {
    /// Runs `actions`, planned from `start` (whose view is `state`). `lost` nodes are
    /// never read from.
    pub async fn execute(
        &self,
        start: &Stored<ShardletRecord>,
        state: &ShardletState,
        actions: &[Action],
        lost: &BTreeSet<NodeId>,
    ) -> anyhow::Result<Outcome> {
        self.execute_stamped(start, state, actions, lost, None)
            .await
    }

    /// [`Executor::execute`], and the commit records `layout_version` on the record
    /// when given: a rebalance placed the shardlet under that version (not necessarily
    /// the newest this process knows by the time it commits).
    pub async fn execute_stamped(
        &self,
        start: &Stored<ShardletRecord>,
        state: &ShardletState,
        actions: &[Action],
        lost: &BTreeSet<NodeId>,
        layout_version: Option<u64>,
    ) -> anyhow::Result<Outcome> {
        let record = &start.record;
        let mut written = Written::new();
        let mut committed = false;
        let mut bytes_moved = 0;
        for action in actions {
            if !self.lease.is_active() {
                bail!("lease lost; stopping before {}", action_name(action));
            }
            match action {
                Action::CopyFragment { source, target, .. } => {
                    let expected = recorded_checksum(record, source);
                    let bytes = self.read(source, expected).await?;
                    self.write(target, bytes, &mut written).await?;
                }
                Action::Reconstruct {
                    scheme,
                    sources,
                    outputs,
                    ..
                } => {
                    self.reconstruct(record, *scheme, sources, outputs, lost, &mut written)
                        .await?;
                }
                Action::Reencode {
                    from,
                    to,
                    sources,
                    outputs,
                    ..
                } => {
                    self.reencode(record, *from, *to, sources, outputs, &mut written)
                        .await?;
                }
                Action::Verify { fragments, .. } => {
                    for fragment in fragments {
                        let bytes = self.read(fragment, None).await?;
                        let crc = Crc32c::of(&bytes);
                        match written.get(&fragment.fragment) {
                            Some((expected, _)) if *expected != crc => bail!(
                                "verify: {} on node {} reads back as {crc}, written as {expected}",
                                fragment.fragment,
                                fragment.node
                            ),
                            Some(_) => {}
                            None => {
                                written.insert(fragment.fragment, (crc, bytes.len() as u64));
                            }
                        }
                    }
                }
                Action::CommitLayout {
                    expected_generation,
                    scheme,
                    new_locations,
                    ..
                } => {
                    if generation_of(record) != *expected_generation {
                        return Ok(Outcome::Conflict);
                    }
                    if !self
                        .commit(
                            start,
                            state,
                            *scheme,
                            new_locations,
                            &written,
                            layout_version,
                        )
                        .await?
                    {
                        self.metrics.commit_conflicts_total.inc();
                        return Ok(Outcome::Conflict);
                    }
                    committed = true;
                }
                Action::DeleteFragment { target } => {
                    if !committed {
                        bail!("plan deletes {} before committing", target.fragment);
                    }
                    self.delete(target).await;
                }
            }
            bytes_moved += action.bytes_moved(record.size_bytes);
        }
        if !committed {
            bail!("plan ended without a commit");
        }
        Ok(Outcome::Committed { bytes_moved })
    }

    /// Reads a whole fragment; the node verifies its stored CRC on the way out, and we
    /// check the bytes against `expected` (the record's) when given.
    pub async fn read(
        &self,
        fragment: &StoredFragment,
        expected: Option<Crc32c>,
    ) -> anyhow::Result<Bytes> {
        let client = self.cluster.client(fragment.node)?;
        let bytes = client
            .get(&fragment.fragment)
            .await
            .with_context(|| format!("read {} from node {}", fragment.fragment, fragment.node))?
            .bytes()
            .await
            .with_context(|| format!("read {} from node {}", fragment.fragment, fragment.node))?;
        if let Some(expected) = expected {
            let actual = Crc32c::of(&bytes);
            if actual != expected {
                bail!(
                    "{} on node {}: checksum {actual}, recorded {expected}",
                    fragment.fragment,
                    fragment.node
                );
            }
        }
        Ok(bytes)
    }

    async fn write(
        &self,
        target: &StoredFragment,
        bytes: Bytes,
        written: &mut Written,
    ) -> anyhow::Result<()> {
        let crc = Crc32c::of(&bytes);
        let length = bytes.len() as u64;
        self.cluster
            .client(target.node)?
            .put(&target.fragment, bytes)
            .await
            .with_context(|| format!("write {} to node {}", target.fragment, target.node))?;
        written.insert(target.fragment, (crc, length));
        Ok(())
    }

    /// Deletes a fragment no committed record refers to. Failures are logged only: the
    /// scrub finds the leftover as stale and deletes it later.
    pub async fn delete(&self, target: &StoredFragment) {
        let client = match self.cluster.client(target.node) {
            Ok(client) => client,
            Err(error) => {
                tracing::warn!(node = %target.node, %error, "cannot delete");
                return;
            }
        };
        match client.delete(&target.fragment).await {
            Ok(()) => self.metrics.fragments_deleted_total.inc(),
            // Already gone (an earlier attempt, or the node lost it): the goal holds.
            Err(NodeError::NotFound) => {}
            Err(error) => {
                tracing::warn!(fragment = %target.fragment, node = %target.node, %error, "delete failed; the scrub will retry");
            }
        }
    }

    /// Rebuilds `outputs` from `data` intact fragments: the planned `sources` first,
    /// then any other recorded fragment on a live node (a source may turn out corrupt
    /// or unreachable only now).
    async fn reconstruct(
        &self,
        record: &ShardletRecord,
        scheme: Scheme,
        sources: &[StoredFragment],
        outputs: &[StoredFragment],
        lost: &BTreeSet<NodeId>,
        written: &mut Written,
    ) -> anyhow::Result<()> {
        let wanted: Vec<usize> = outputs
            .iter()
            .map(|output| usize::from(output.fragment.index.0))
            .collect();
        let mut slots = self.gather(record, scheme, sources, &wanted, lost).await?;
        let rebuilt = codec::rebuild(scheme, &mut slots, record.size_bytes as usize, &wanted)?;
        for fragment in rebuilt {
            let Some(output) = outputs
                .iter()
                .find(|output| output.fragment.index == fragment.index)
            else {
                continue;
            };
            self.write(output, Bytes::from(fragment.bytes), written)
                .await?;
        }
        Ok(())
    }

    /// Reads `scheme.required_fragments()` intact fragments into their slots.
    async fn gather(
        &self,
        record: &ShardletRecord,
        scheme: Scheme,
        preferred: &[StoredFragment],
        excluded_indexes: &[usize],
        lost: &BTreeSet<NodeId>,
    ) -> anyhow::Result<Vec<Option<Vec<u8>>>> {
        let required = scheme.required_fragments();
        let mut candidates: Vec<StoredFragment> = preferred.to_vec();
        for location in &record.fragments {
            let stored = StoredFragment {
                node: location.node,
                fragment: record.fragment_id(location),
            };
            if !lost.contains(&location.node)
                && !excluded_indexes.contains(&usize::from(location.index.0))
                && !candidates.contains(&stored)
            {
                candidates.push(stored);
            }
        }
        let mut slots: Vec<Option<Vec<u8>>> = vec![None; scheme.width()];
        let mut intact = 0;
        let mut position = 0;
        // Read `required - intact` at a time, in parallel; a failure pulls in the
        // next candidate.
        while intact < required && position < candidates.len() {
            let take = (required - intact).min(candidates.len() - position);
            let batch: Vec<StoredFragment> = candidates[position..position + take]
                .iter()
                .filter(|candidate| {
                    slots
                        .get(usize::from(candidate.fragment.index.0))
                        .is_some_and(Option::is_none)
                })
                .copied()
                .collect();
            position += take;
            let reads = futures::future::join_all(
                batch
                    .iter()
                    .map(|candidate| self.read(candidate, recorded_checksum(record, candidate))),
            )
            .await;
            for (candidate, result) in batch.iter().zip(reads) {
                match result {
                    Ok(bytes) => {
                        let slot = usize::from(candidate.fragment.index.0);
                        if slot < slots.len() && slots[slot].is_none() {
                            slots[slot] = Some(bytes.to_vec());
                            intact += 1;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "source fragment unusable; trying another");
                    }
                }
            }
        }
        if intact < required {
            bail!(
                "shardlet {}: only {intact} of the {required} fragments needed could be read",
                record.id
            );
        }
        Ok(slots)
    }

    /// Decodes the shardlet from its current scheme and encodes it as `to`.
    async fn reencode(
        &self,
        record: &ShardletRecord,
        from: Scheme,
        to: Scheme,
        sources: &[StoredFragment],
        outputs: &[StoredFragment],
        written: &mut Written,
    ) -> anyhow::Result<()> {
        let mut slots = self
            .gather(record, from, sources, &[], &BTreeSet::new())
            .await?;
        let bytes = codec::decode(from, &mut slots, record.size_bytes as usize)?;
        let actual = Crc32c::of(&bytes);
        if actual != record.checksum {
            bail!(
                "shardlet {} decodes to checksum {actual}, recorded {}",
                record.id,
                record.checksum
            );
        }
        let encoded = codec::encode(to, &bytes)?;
        for output in outputs {
            let index = usize::from(output.fragment.index.0);
            let Some(fragment) = encoded.get(index) else {
                bail!("{to} has no fragment {index}");
            };
            self.write(output, Bytes::from(fragment.bytes.clone()), written)
                .await?;
        }
        Ok(())
    }

    /// The compare-and-set commit. `Ok(false)`: the layout changed meanwhile.
    async fn commit(
        &self,
        start: &Stored<ShardletRecord>,
        state: &ShardletState,
        scheme: Scheme,
        new_locations: &[FragmentLocation],
        written: &Written,
        stamp: Option<u64>,
    ) -> anyhow::Result<bool> {
        let Some(fence) = self.lease.fence_condition() else {
            bail!("lease lost before the commit");
        };
        let mut current = start.clone();
        let layout_version = self.cluster.members().version();
        for _ in 0..COMMIT_ATTEMPTS_MAX {
            if !same_layout(&current.record, state) {
                return Ok(false);
            }
            let next = next_record(
                &current.record,
                state,
                scheme,
                new_locations,
                written,
                layout_version,
            )?;
            let next = match stamp {
                Some(version) => ShardletRecord {
                    layout_version: version,
                    ..next
                },
                None => next,
            };
            let mut batch = index::write_shardlet(Some(&current.record), &next, current.version);
            batch.conditions.push(fence.clone());
            match self.meta.batch(batch).await {
                Ok(BatchOutcome::Applied { .. }) => return Ok(true),
                Ok(BatchOutcome::ConditionFailed {
                    condition_index, ..
                }) if condition_index > 0 => bail!("lease fence moved: another controller acts"),
                Ok(BatchOutcome::ConditionFailed { .. }) => {}
                Err(ClientError::Ambiguous(reason)) => {
                    tracing::warn!(%reason, "commit outcome unknown; re-reading");
                }
                Err(error) => return Err(error.into()),
            }
            match records::shardlet(&self.metadata, state.id).await? {
                Some(latest) if latest.record.fragments == next.fragments => return Ok(true),
                Some(latest) => current = latest,
                None => return Ok(false),
            }
        }
        Ok(false)
    }
}

/// The record after a commit. A scheme change placed every fragment anew under the
/// current layout version, so the record says that version; a repair replaced some
/// fragments and keeps the version the placement was chosen under.
fn next_record(
    current: &ShardletRecord,
    state: &ShardletState,
    scheme: Scheme,
    new_locations: &[FragmentLocation],
    written: &Written,
    layout_version: u64,
) -> anyhow::Result<ShardletRecord> {
    let mut next = current.clone();
    next.fragments = Vec::with_capacity(new_locations.len());
    for location in new_locations {
        let id = FragmentId::new(current.id, location.generation, location.index);
        let recorded = match written.get(&id) {
            Some((checksum, size_bytes)) => RecordLocation {
                index: location.index,
                node: location.node,
                generation: location.generation,
                checksum: *checksum,
                size_bytes: *size_bytes,
            },
            None => match current.fragments.iter().find(|old| {
                old.node == location.node
                    && old.index == location.index
                    && old.generation == location.generation
            }) {
                Some(old) => old.clone(),
                None => bail!("commit names {id} on node {}, which this plan neither wrote nor found recorded", location.node),
            },
        };
        next.fragments.push(recorded);
    }
    if scheme != current.scheme {
        next.layout_changed_unix_ms = unix_ms_now();
        next.layout_version = layout_version;
    }
    next.scheme = scheme;
    next.codec = match scheme {
        Scheme::Replicated { .. } => Codec::None,
        Scheme::ErasureCoded { .. } => Codec::ReedSolomonGf8,
    };
    next.level = Some(state.level);
    Ok(next)
}

/// The CRC the record holds for a stored fragment, if the record names it.
fn recorded_checksum(record: &ShardletRecord, stored: &StoredFragment) -> Option<Crc32c> {
    record
        .fragments
        .iter()
        .find(|location| {
            location.node == stored.node && record.fragment_id(location) == stored.fragment
        })
        .map(|location| location.checksum)
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::CopyFragment { .. } => "a copy",
        Action::Reconstruct { .. } => "a reconstruction",
        Action::Reencode { .. } => "a re-encode",
        Action::Verify { .. } => "a verify",
        Action::CommitLayout { .. } => "a commit",
        Action::DeleteFragment { .. } => "a delete",
    }
}

/// Whether a storage node error means the fragment is not there.
pub fn is_not_found(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| matches!(cause.downcast_ref::<NodeError>(), Some(NodeError::NotFound)))
}
