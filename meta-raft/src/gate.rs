//! The formation gate: while a member decides whether to form a cluster
//! (`crate::formation`), it refuses raft RPC, so no cluster can adopt it half-way.

use std::sync::{PoisonError, RwLock};

/// Closed while this member is being formed: raft RPC is then refused (503) with the
/// reason, which `/ready` reports too.
#[derive(Default)]
pub struct RaftGate {
    closed: RwLock<Option<String>>,
}

impl RaftGate {
    pub fn close(&self, reason: impl Into<String>) {
        *self.closed.write().unwrap_or_else(PoisonError::into_inner) = Some(reason.into());
    }

    pub fn open(&self) {
        *self.closed.write().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Why raft RPC is refused, if it is.
    pub fn closed_reason(&self) -> Option<String> {
        self.closed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
