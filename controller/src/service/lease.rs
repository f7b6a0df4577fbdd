//! The controller lease: exactly one controller acts at a time.
//!
//! `l/controller` holds a [`LeaseRecord`] `{holder, expires_unix_ms, term}`. A
//! controller takes it when it is absent, expired, or already its own, with a
//! compare-and-set on the key's version, and renews it every third of its duration.
//! When the holder changes, the same batch writes the fencing token
//! `l/controller-term` ([`LeaseFence`]), and every layout commit of this controller is
//! conditioned on that token: a controller that lost the lease while paused can never
//! commit over its successor's work.
//!
//! A controller stops acting *before* its lease expires: [`Lease::is_active`] is true
//! only until `duration - safety margin` after the local monotonic instant at which the
//! winning request was *sent*, so a slow response never stretches the lease. Wall
//! clocks are only compared between controllers (`expires_unix_ms`), which assumes
//! their skew is well below the lease duration.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use shardlet_meta::{Batch, BatchOutcome, Condition, MetaClient, Operation, ReadConsistency};
use shardlet_model::schema::{decode, encode, keys, LeaseFence, LeaseRecord};

use super::clock::unix_ms_now;
use super::metrics::Metrics;
use super::worker::{Pace, Pass, Stop, Worker};

#[derive(Clone, Debug)]
struct Held {
    valid_until: Instant,
    fence: LeaseFence,
}

/// Whether this process holds the lease, shared by every worker.
pub struct Lease {
    holder: String,
    duration: Duration,
    held: Mutex<Option<Held>>,
}

impl Lease {
    pub fn new(holder: String, duration: Duration) -> Self {
        Self {
            holder,
            duration,
            held: Mutex::new(None),
        }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// True while this controller may act.
    pub fn is_active(&self) -> bool {
        self.fence().is_some()
    }

    /// The fencing condition for a commit, or `None` when not active.
    pub fn fence(&self) -> Option<LeaseFence> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.as_ref()
            .filter(|held| Instant::now() < held.valid_until)
            .map(|held| held.fence.clone())
    }

    pub fn fence_condition(&self) -> Option<Condition> {
        self.fence().map(|fence| Condition::ValueEquals {
            key: keys::CONTROLLER_LEASE_FENCE.into(),
            value: Some(encode(&fence).into()),
        })
    }

    fn set(&self, held: Option<Held>) {
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = held;
    }

    /// Stop acting until the lease is taken again.
    pub fn drop_lease(&self) {
        self.set(None);
    }

    /// One attempt to take or renew the lease. Returns whether it is held afterwards.
    pub async fn try_acquire(&self, meta: &MetaClient, metrics: &Metrics) -> bool {
        let sent_at = Instant::now();
        let result = self.attempt(meta).await;
        match result {
            Ok(Some(fence)) => {
                let was_active = self.is_active();
                // Stop a fifth of the duration early: lease expiry is judged by the
                // next holder's wall clock, ours may run slow.
                let margin = self.duration / 5;
                self.set(Some(Held {
                    valid_until: sent_at + self.duration - margin,
                    fence: fence.clone(),
                }));
                if !was_active {
                    metrics.lease_acquisitions_total.inc();
                    tracing::info!(holder = %self.holder, term = fence.term, "controller lease taken");
                }
                metrics.lease_active.set(1);
                metrics.lease_term.set(fence.term as i64);
                true
            }
            Ok(None) => {
                if self.is_active() {
                    tracing::warn!(holder = %self.holder, "controller lease lost");
                }
                self.drop_lease();
                metrics.lease_active.set(0);
                false
            }
            Err(error) => {
                // Keep acting only while the previous renewal is still valid.
                tracing::warn!(%error, "controller lease renewal failed");
                let active = self.is_active();
                metrics.lease_active.set(i64::from(active));
                active
            }
        }
    }

    /// `Ok(Some(fence))`: held now; `Ok(None)`: someone else holds it.
    async fn attempt(&self, meta: &MetaClient) -> anyhow::Result<Option<LeaseFence>> {
        let now = unix_ms_now();
        let current = meta
            .get(keys::CONTROLLER_LEASE, ReadConsistency::Linearizable)
            .await?;
        let (version, record) = match &current {
            Some(entry) => (
                entry.version,
                Some(decode::<LeaseRecord>(entry.value.as_slice())?),
            ),
            None => (0, None),
        };
        let (term, new_holder) = match &record {
            Some(lease) if lease.holder == self.holder && lease.expires_unix_ms > now => {
                (lease.term, false)
            }
            Some(lease) if lease.expires_unix_ms > now => return Ok(None),
            Some(lease) => (lease.term + 1, true),
            None => (1, true),
        };
        let next = LeaseRecord {
            holder: self.holder.clone(),
            expires_unix_ms: now + self.duration.as_millis() as u64,
            term,
        };
        let fence = LeaseFence {
            holder: self.holder.clone(),
            term,
        };
        let mut batch =
            Batch::of_put(keys::CONTROLLER_LEASE, encode(&next)).when(Condition::VersionEquals {
                key: keys::CONTROLLER_LEASE.into(),
                version,
            });
        if new_holder {
            // Same batch: the fence moves exactly when the lease changes hands.
            batch.operations.push(Operation::Put {
                key: keys::CONTROLLER_LEASE_FENCE.into(),
                value: encode(&fence).into(),
            });
        }
        match meta.batch(batch).await? {
            BatchOutcome::Applied { .. } => Ok(Some(fence)),
            BatchOutcome::ConditionFailed { .. } => Ok(None),
        }
    }
}

/// Takes and renews the lease every third of its duration; on shutdown gives it up by
/// letting it expire (a successor waits at most one lease duration).
pub struct LeaseWorker {
    pub lease: Arc<Lease>,
    pub meta: Arc<MetaClient>,
    pub metrics: Arc<Metrics>,
}

#[async_trait]
impl Worker for LeaseWorker {
    fn name(&self) -> &'static str {
        "lease"
    }

    fn pace(&self) -> Pace {
        Pace::Every(self.lease.duration / 3)
    }

    async fn step(&self, _: &Stop) -> anyhow::Result<Pass> {
        // Failures are the lease's own business (it keeps acting only while the last
        // renewal is valid): never a failed pass.
        Ok(if self.lease.try_acquire(&self.meta, &self.metrics).await {
            Pass::Worked
        } else {
            Pass::Standby
        })
    }

    async fn stopped(&self) {
        self.lease.drop_lease();
        self.metrics.lease_active.set(0);
    }
}
