//! Metrics of building, sending, receiving and installing snapshots, registered in the
//! member's registry (`shardlet_meta_` prefix).

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

pub struct SnapshotMetrics {
    /// Size of the current snapshot file.
    pub snapshot_bytes: IntGauge,
    /// Entries in the current snapshot.
    pub snapshot_entries: IntGauge,
    pub last_build_seconds: Gauge,
    pub last_install_seconds: Gauge,
    /// RocksDB write batches of installs (each ≤ `INSTALL_BLOCKS_PER_BATCH` blocks).
    pub install_batches_total: IntCounter,
    pub chunks_received_total: IntCounter,
    /// Received snapshots or chunks refused, by reason.
    pub refused_total: IntCounterVec,
}

impl SnapshotMetrics {
    pub fn register(registry: &Registry) -> anyhow::Result<Self> {
        let metrics = Self {
            snapshot_bytes: IntGauge::new("snapshot_bytes", "size of the current snapshot file")?,
            snapshot_entries: IntGauge::new(
                "snapshot_entries",
                "key-value entries in the current snapshot",
            )?,
            last_build_seconds: Gauge::new(
                "snapshot_last_build_seconds",
                "time the last snapshot build took, streaming the state to its file",
            )?,
            last_install_seconds: Gauge::new(
                "snapshot_last_install_seconds",
                "time the last install of a received snapshot took",
            )?,
            install_batches_total: IntCounter::new(
                "snapshot_install_batches_total",
                "bounded RocksDB write batches written while installing received snapshots",
            )?,
            chunks_received_total: IntCounter::new(
                "snapshot_chunks_received_total",
                "snapshot chunks received from a leader",
            )?,
            refused_total: IntCounterVec::new(
                Opts::new(
                    "snapshots_refused_total",
                    "received snapshots or chunks refused, by reason (corrupt, too_large, out_of_order)",
                ),
                &["reason"],
            )?,
        };
        registry.register(Box::new(metrics.snapshot_bytes.clone()))?;
        registry.register(Box::new(metrics.snapshot_entries.clone()))?;
        registry.register(Box::new(metrics.last_build_seconds.clone()))?;
        registry.register(Box::new(metrics.last_install_seconds.clone()))?;
        registry.register(Box::new(metrics.install_batches_total.clone()))?;
        registry.register(Box::new(metrics.chunks_received_total.clone()))?;
        registry.register(Box::new(metrics.refused_total.clone()))?;
        Ok(metrics)
    }
}
