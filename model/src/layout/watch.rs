//! One process's copy of the layout, refreshed by its own loop (gateways and
//! controllers poll `g/layout` every `--layout-poll-seconds`, 2 s by default: one
//! linearizable point read).
//!
//! It only ever moves forward: a read that returns an older version than the one
//! installed (a lagging member answering, a restored backup) is ignored and reported,
//! never installed, so a process never places under a layout older than one it already
//! used. It also keeps the version before the current one, for whoever needs to compare
//! the two (the rebalance: [`LayoutWatch::history`]).

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use super::operations;
use super::record::LayoutRecord;
use super::topology::Liveness;
use crate::access::Metadata;
use crate::schema::{keys, NodeRecord};
use crate::store::MetadataError;

/// How often gateways and controllers re-read the layout by default, and the bounds of
/// their `--layout-poll-seconds`.
pub const LAYOUT_POLL_INTERVAL_DEFAULT: Duration = Duration::from_secs(2);
pub const LAYOUT_POLL_INTERVAL_MIN: Duration = Duration::from_millis(100);
pub const LAYOUT_POLL_INTERVAL_MAX: Duration = Duration::from_secs(60);
/// Node records read per liveness refresh; more nodes than this are not supported
/// (the layout holds at most 4096).
pub const LIVENESS_RECORDS_MAX: usize = 10_000;

/// What a refresh found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A newer version, now installed.
    Newer { from: u64, to: u64 },
    /// The version installed already.
    Same(u64),
    /// An older version than the one installed: ignored.
    Older { read: u64, installed: u64 },
}

/// The current layout and the one it replaced.
#[derive(Clone, Debug, Default)]
pub struct LayoutHistory {
    pub current: Option<Arc<LayoutRecord>>,
    /// The version before `current` as this process saw it (`None` at start-up: a
    /// process that starts sees one version). Versions in between may have been
    /// skipped if several were applied within one poll interval.
    pub previous: Option<Arc<LayoutRecord>>,
}

#[derive(Debug, Default)]
pub struct LayoutWatch {
    state: RwLock<LayoutHistory>,
}

impl LayoutWatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the layout and installs it if it is newer than the one held.
    pub async fn refresh(&self, metadata: &Metadata) -> Result<Seen, MetadataError> {
        let stored = operations::read(metadata).await?;
        Ok(self.install(stored.record))
    }

    /// Installs `layout` if it is newer than the one held (or none is); never goes back.
    pub fn install(&self, layout: LayoutRecord) -> Seen {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let installed = state.current.as_ref().map(|current| current.version);
        match installed {
            Some(installed) if layout.version < installed => Seen::Older {
                read: layout.version,
                installed,
            },
            Some(installed) if layout.version == installed => Seen::Same(installed),
            _ => {
                let from = installed.unwrap_or(0);
                let to = layout.version;
                state.previous = state.current.take();
                state.current = Some(Arc::new(layout));
                Seen::Newer { from, to }
            }
        }
    }

    /// The layout installed (`None` before the first successful read).
    pub fn current(&self) -> Option<Arc<LayoutRecord>> {
        self.lock_read().current.clone()
    }

    /// The version installed (0 before the first read, or while no layout exists).
    pub fn version(&self) -> u64 {
        self.lock_read()
            .current
            .as_ref()
            .map_or(0, |current| current.version)
    }

    /// The current layout and the previous one, as this process saw them (the
    /// controller's rebalance works from records' `layout_version` instead, so it needs
    /// no history across restarts).
    pub fn history(&self) -> LayoutHistory {
        self.lock_read().clone()
    }

    fn lock_read(&self) -> std::sync::RwLockReadGuard<'_, LayoutHistory> {
        // Plain data, valid after any panic of a writer.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Every node's liveness as the controller recorded it (`n/{id}` node records). A
/// record that does not decode counts as no record (up) and is logged.
pub async fn read_liveness(metadata: &Metadata) -> Result<Liveness, MetadataError> {
    let scan = metadata
        .scan::<NodeRecord>(keys::NODE_PREFIX.as_bytes(), LIVENESS_RECORDS_MAX)
        .await?;
    for (key, error) in &scan.undecodable {
        tracing::warn!(key = %crate::access::key_text(key), %error, "node record unreadable; its node counts as up");
    }
    Ok(scan
        .records
        .into_iter()
        .map(|(_, stored)| (stored.record.id, stored.record.state))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(version: u64) -> LayoutRecord {
        LayoutRecord {
            version,
            ..LayoutRecord::default()
        }
    }

    #[test]
    fn a_watch_installs_newer_versions_only_and_keeps_the_previous_one() {
        let watch = LayoutWatch::new();
        assert_eq!(watch.version(), 0);
        assert_eq!(watch.install(layout(3)), Seen::Newer { from: 0, to: 3 });
        assert_eq!(watch.install(layout(3)), Seen::Same(3));
        assert_eq!(
            watch.install(layout(2)),
            Seen::Older {
                read: 2,
                installed: 3
            }
        );
        assert_eq!(watch.version(), 3);
        assert_eq!(watch.install(layout(5)), Seen::Newer { from: 3, to: 5 });
        let history = watch.history();
        assert_eq!(history.current.map(|layout| layout.version), Some(5));
        assert_eq!(history.previous.map(|layout| layout.version), Some(3));
    }
}
