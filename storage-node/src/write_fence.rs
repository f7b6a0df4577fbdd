//! The write fence: after any failed fsync the node stops acknowledging writes until it
//! restarts ("fsyncgate").
//!
//! Why an fsync error is fatal and not retried: when Linux fails to write dirty pages
//! back, it reports the error to one `fsync` and then marks the pages clean. A second
//! `fsync` of the same file succeeds although the data never reached the disk, and a
//! read still returns the bytes from the page cache. So after one failure nothing the
//! node says about durability can be trusted: a retried PUT would find the cached file,
//! verify it against the cache, and answer "already stored" for bytes the disk does not
//! hold (PostgreSQL learnt this in 2018 and now panics on an fsync error; we refuse
//! writes and keep serving reads).
//!
//! What trips it, each with its own reason: the `fdatasync` of a fragment file, the
//! group-committed `fsync` of a fragment directory, a synced write or delete of the
//! small-fragment store (RocksDB's log sync; RocksDB itself stops writing then too).
//! Once tripped (sticky for the process's life):
//! - PUT and DELETE answer 503 `writes_refused` with the reason, before reading a body;
//! - a write in flight that had not been acknowledged yet is not acknowledged;
//! - `/health` reports `writes_refused`, the gauge `shardlet_node_writes_refused` is 1,
//!   and the failure is logged once, at error level;
//! - GET, HEAD and listings go on where the disk allows: acknowledged fragments stay
//!   readable, and the controller drains the node through them.
//!
//! A restart clears the fence: the operator restarts a node once its disk is checked (a
//! node that still cannot write fails again on its first write).

use std::sync::{Arc, OnceLock};

use crate::metrics::NodeMetrics;
use crate::store_error::StoreError;

/// Why the node refuses writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What failed and how, e.g. `directory fsync of fragments/3a failed: …`.
    pub reason: String,
    pub since_unix_ms: u64,
}

pub struct WriteFence {
    tripped: OnceLock<Refusal>,
    metrics: Arc<NodeMetrics>,
}

impl WriteFence {
    pub fn new(metrics: Arc<NodeMetrics>) -> Arc<Self> {
        metrics.writes_refused.set(0);
        Arc::new(Self {
            tripped: OnceLock::new(),
            metrics,
        })
    }

    /// Stops writes for good because `what` failed with `error`. Only the first failure
    /// is kept, logged and shown; later ones are counted (`fsync_failures_total`) by
    /// their callers.
    pub fn trip(&self, what: &str, error: &std::io::Error) {
        let refusal = Refusal {
            reason: format!("{what} failed: {error}"),
            since_unix_ms: unix_ms_now(),
        };
        if self.tripped.set(refusal.clone()).is_ok() {
            self.metrics.writes_refused.set(1);
            tracing::error!(
                reason = %refusal.reason,
                "FSYNC FAILED: this node no longer acknowledges writes (PUT and DELETE answer \
                 503 until it restarts); reads go on. Check the disk, then restart the node."
            );
        }
    }

    /// Why writes are refused, if they are.
    pub fn refusal(&self) -> Option<&Refusal> {
        self.tripped.get()
    }

    /// Ok while writes are accepted.
    pub fn check(&self) -> Result<(), StoreError> {
        match self.tripped.get() {
            None => Ok(()),
            Some(refusal) => Err(StoreError::WritesRefused(refusal.reason.clone())),
        }
    }
}

fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_first_failure_is_kept_and_writes_stay_refused() {
        let metrics = Arc::new(NodeMetrics::new().unwrap());
        let fence = WriteFence::new(metrics.clone());
        assert!(fence.check().is_ok());
        assert_eq!(metrics.writes_refused.get(), 0);
        fence.trip(
            "directory fsync of fragments/3a",
            &std::io::Error::from_raw_os_error(5),
        );
        fence.trip(
            "fdatasync of a fragment file",
            &std::io::Error::from_raw_os_error(28),
        );
        let refusal = fence.refusal().unwrap();
        assert!(
            refusal
                .reason
                .starts_with("directory fsync of fragments/3a failed: "),
            "{}",
            refusal.reason
        );
        assert!(
            matches!(fence.check(), Err(StoreError::WritesRefused(reason)) if reason == refusal.reason)
        );
        assert_eq!(metrics.writes_refused.get(), 1);
    }
}
