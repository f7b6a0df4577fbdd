//! The stock gauges (`shardlet_controller_shardlets`, `_logical_bytes`, `_stored_bytes`,
//! `_mttdl_seconds`, `_mttdl_target_seconds`, `_bucket_objects`,
//! `_bucket_logical_bytes`), set from [`crate::stocks`] by the pass that computed them
//! and left unchanged between passes. The scheme series are always the same six; a
//! bucket series that a pass no longer finds (a bucket deleted, or now beyond the cap)
//! is removed, never the whole family reset first, so a scrape in the middle of a
//! publish sees the old or the new value, not a gap.

use std::collections::BTreeSet;
use std::sync::Mutex;

use prometheus::{GaugeVec, IntGaugeVec, Opts, Registry};

use crate::durability::DurabilityModel;
use crate::policy::PolicyConfig;
use crate::stocks::{self, ShardletStocks, LEVELS, OTHER};

pub struct StockMetrics {
    shardlets: IntGaugeVec,
    logical_bytes: IntGaugeVec,
    stored_bytes: IntGaugeVec,
    mttdl_seconds: GaugeVec,
    mttdl_target_seconds: GaugeVec,
    bucket_objects: IntGaugeVec,
    bucket_logical_bytes: IntGaugeVec,
    /// Buckets published by the last pass, to remove the ones the next does not find.
    published_buckets: Mutex<BTreeSet<String>>,
}

fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl StockMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let int_vec = |name: &str, help: &str, labels: &[&str]| {
            let gauge = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok::<_, prometheus::Error>(gauge)
        };
        let float_vec = |name: &str, help: &str, labels: &[&str]| {
            let gauge = GaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok::<_, prometheus::Error>(gauge)
        };
        let scheme_labels = ["scheme", "level"];
        let bucket_help = |what: &str| {
            format!(
                "{what} per bucket: the {} largest buckets by bytes by name, the rest summed under bucket=\"{OTHER}\"",
                stocks::BUCKETS_MAX
            )
        };
        let metrics = Self {
            shardlets: int_vec(
                "shardlets",
                "Shardlets by scheme (replicated, erasure) and durability level (low, medium, high)",
                &scheme_labels,
            )?,
            logical_bytes: int_vec(
                "logical_bytes",
                "Bytes users stored, by scheme and durability level",
                &scheme_labels,
            )?,
            stored_bytes: int_vec(
                "stored_bytes",
                "Bytes on disks including redundancy, by scheme and level (overhead = stored / logical)",
                &scheme_labels,
            )?,
            mttdl_seconds: float_vec(
                "mttdl_seconds",
                "Modelled mean time to data loss of one shardlet of the level (its weakest scheme in use; +Inf: the level holds nothing)",
                &["level"],
            )?,
            mttdl_target_seconds: float_vec(
                "mttdl_target_seconds",
                "The policy's MTTDL target for one shardlet of the level",
                &["level"],
            )?,
            bucket_objects: int_vec("bucket_objects", &bucket_help("Objects"), &["bucket"])?,
            bucket_logical_bytes: int_vec(
                "bucket_logical_bytes",
                &bucket_help("Bytes users stored"),
                &["bucket"],
            )?,
            published_buckets: Mutex::new(BTreeSet::new()),
        };
        // Present from the start: every scheme and level at 0, +Inf MTTDL per level
        // (nothing stored yet), and the `_other` bucket at 0.
        metrics.publish_shardlets(&ShardletStocks::default(), &DurabilityModel::default());
        metrics.publish_buckets(&stocks::tally_buckets(
            std::iter::empty(),
            stocks::BUCKETS_MAX,
        ));
        Ok(metrics)
    }

    /// The policy's targets (constant for the process).
    pub fn publish_targets(&self, policy: &PolicyConfig) {
        for level in LEVELS {
            self.mttdl_target_seconds
                .with_label_values(&[stocks::level_label(level)])
                .set(policy.target_years(level) * stocks::SECONDS_PER_YEAR);
        }
    }

    pub fn publish_shardlets(&self, stocks: &ShardletStocks, model: &DurabilityModel) {
        for ((scheme, level), totals) in &stocks.by_scheme {
            let labels = [*scheme, *level];
            self.shardlets
                .with_label_values(&labels)
                .set(gauge_value(totals.shardlets));
            self.logical_bytes
                .with_label_values(&labels)
                .set(gauge_value(totals.logical_bytes));
            self.stored_bytes
                .with_label_values(&labels)
                .set(gauge_value(totals.stored_bytes));
        }
        for level in LEVELS {
            self.mttdl_seconds
                .with_label_values(&[stocks::level_label(level)])
                .set(stocks.mttdl_seconds(level, model));
        }
    }

    pub fn publish_buckets(
        &self,
        buckets: &std::collections::BTreeMap<String, stocks::BucketTotals>,
    ) {
        let mut published = self
            .published_buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (bucket, totals) in buckets {
            self.bucket_objects
                .with_label_values(&[bucket])
                .set(gauge_value(totals.objects));
            self.bucket_logical_bytes
                .with_label_values(&[bucket])
                .set(gauge_value(totals.logical_bytes));
        }
        for gone in published
            .iter()
            .filter(|bucket| !buckets.contains_key(*bucket))
        {
            let _ = self.bucket_objects.remove_label_values(&[gone]);
            let _ = self.bucket_logical_bytes.remove_label_values(&[gone]);
        }
        *published = buckets.keys().cloned().collect();
    }
}
