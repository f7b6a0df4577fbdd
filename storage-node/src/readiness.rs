//! `GET /ready`: whether the node can take writes now (`/health` stays liveness and the
//! disk report).
//!
//! Not ready when the write fence is tripped (an fsync failed: every write is refused
//! until a restart, `crate::write_fence`), or when a probe write to the data directory
//! fails: a small file written and fsynced, at most once per [`PROBE_CACHED_FOR`] —
//! `/ready` is unauthenticated, and a stranger polling it must not turn into a stream of
//! fsyncs. The probe file is overwritten in place each time; it is not a fragment and
//! nothing reads it. A failed probe does not trip the fence: no acknowledged write
//! depended on it, and the next probe may succeed (a full disk that was cleaned up).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shardlet_net::Readiness;

use crate::write_fence::WriteFence;

/// How long one probe's outcome answers `/ready`.
pub const PROBE_CACHED_FOR: Duration = Duration::from_secs(3);
/// The probe file, directly under the data directory.
pub const PROBE_FILE: &str = "ready-probe";

pub struct NodeReadiness {
    probe_path: PathBuf,
    last_probe: tokio::sync::Mutex<Option<(Instant, Readiness)>>,
}

impl NodeReadiness {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            probe_path: data_dir.join(PROBE_FILE),
            last_probe: tokio::sync::Mutex::new(None),
        }
    }

    /// Ready, or why not.
    pub async fn check(&self, fence: &WriteFence) -> Readiness {
        if let Some(refusal) = fence.refusal() {
            return Readiness::not_ready(format!(
                "writes are refused until the node restarts: {}",
                refusal.reason
            ));
        }
        // One probe at a time; callers arriving meanwhile get its outcome.
        let mut last = self.last_probe.lock().await;
        if let Some((at, readiness)) = last.as_ref() {
            if at.elapsed() < PROBE_CACHED_FOR {
                return readiness.clone();
            }
        }
        let path = self.probe_path.clone();
        let readiness = match tokio::task::spawn_blocking(move || probe(&path)).await {
            Ok(Ok(())) => Readiness::Ready,
            Ok(Err(error)) => Readiness::not_ready(format!(
                "the data directory does not take a synced write ({}): {error}",
                self.probe_path.display()
            )),
            Err(error) => Readiness::not_ready(format!("the probe write did not run: {error}")),
        };
        *last = Some((Instant::now(), readiness.clone()));
        readiness
    }
}

/// Writes a few bytes and fsyncs them.
fn probe(path: &Path) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(b"shardlet ready probe\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use super::*;
    use crate::metrics::NodeMetrics;

    #[tokio::test]
    async fn ready_while_the_directory_takes_writes_not_once_the_fence_trips() {
        let directory = tempfile::tempdir().unwrap();
        let fence = WriteFence::new(Arc::new(NodeMetrics::new().unwrap()));
        let readiness = NodeReadiness::new(directory.path());
        assert_eq!(readiness.check(&fence).await, Readiness::Ready);
        assert!(directory.path().join(PROBE_FILE).exists());
        fence.trip("test fsync", &std::io::Error::other("injected"));
        let Readiness::NotReady(reason) = readiness.check(&fence).await else {
            panic!("ready after the fence tripped");
        };
        assert!(reason.contains("injected"), "{reason}");
    }

    #[tokio::test]
    async fn a_directory_that_is_gone_is_not_ready() {
        let directory = tempfile::tempdir().unwrap();
        let fence = WriteFence::new(Arc::new(NodeMetrics::new().unwrap()));
        let readiness = NodeReadiness::new(&directory.path().join("missing"));
        assert!(!readiness.check(&fence).await.is_ready());
    }
}
