//! Stocks: what the cluster holds, summed from records a pass has already read — the
//! scheme mix and bytes by scheme and durability level (from shardlet records) and
//! objects and bytes per bucket (from object records). Pure: the transition pass hands
//! the records in, the shell publishes the sums as gauges.
//!
//! Every label set is bounded, because each one is a series Prometheus keeps: two
//! scheme kinds (`replicated`, `erasure`) by three levels, always all six (zeros
//! included, so a fresh cluster draws 0, not "no data"); buckets the [`BUCKETS_MAX`]
//! largest by bytes, the rest summed under [`OTHER`].

use std::collections::BTreeMap;

use shardlet_core::{RedundancyLevel, Scheme};

use crate::durability::DurabilityModel;
use crate::view::fragment_bytes;

/// Label value of everything beyond a cap.
pub const OTHER: &str = "_other";
/// Buckets published by name; the rest are summed under [`OTHER`].
pub const BUCKETS_MAX: usize = 1_000;
pub const SECONDS_PER_YEAR: f64 = 365.25 * 24.0 * 3600.0;

/// The three levels, in the order dashboards list them.
pub const LEVELS: [RedundancyLevel; 3] = [
    RedundancyLevel::Low,
    RedundancyLevel::Medium,
    RedundancyLevel::High,
];

/// The `level` label: the names the policy and the S3 storage classes use.
pub fn level_label(level: RedundancyLevel) -> &'static str {
    match level {
        RedundancyLevel::Low => "low",
        RedundancyLevel::Medium => "medium",
        RedundancyLevel::High => "high",
    }
}

/// The `scheme` label values.
pub const SCHEMES: [&str; 2] = ["replicated", "erasure"];

/// The `scheme` label: `replicated` or `erasure`.
pub fn scheme_label(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Replicated { .. } => "replicated",
        Scheme::ErasureCoded { .. } => "erasure",
    }
}

/// One series of the scheme mix: `(scheme, level)` label values.
pub type SchemeKey = (&'static str, &'static str);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchemeTotals {
    pub shardlets: u64,
    /// Bytes users stored.
    pub logical_bytes: u64,
    /// Bytes on disks, every fragment counted (so stored / logical is the overhead).
    pub stored_bytes: u64,
}

/// The scheme mix, and the weakest scheme in use per level (for modelled durability).
#[derive(Clone, Debug, PartialEq)]
pub struct ShardletStocks {
    /// Every `(scheme, level)` pair, zeros included.
    pub by_scheme: BTreeMap<SchemeKey, SchemeTotals>,
    /// Per level, the scheme with the lowest modelled MTTDL among its shardlets.
    weakest: BTreeMap<RedundancyLevel, Scheme>,
}

impl ShardletStocks {
    /// Sums `(scheme, level, size_bytes)` of every shardlet. `model` ranks schemes by
    /// modelled durability to find each level's weakest.
    pub fn tally(
        shardlets: impl IntoIterator<Item = (Scheme, RedundancyLevel, u64)>,
        model: &DurabilityModel,
    ) -> Self {
        let mut stocks = Self::default();
        for (scheme, level, size_bytes) in shardlets {
            let totals = stocks
                .by_scheme
                .entry((scheme_label(scheme), level_label(level)))
                .or_default();
            totals.shardlets += 1;
            totals.logical_bytes += size_bytes;
            totals.stored_bytes += fragment_bytes(size_bytes, scheme) * scheme.width() as u64;
            let weakest = stocks.weakest.entry(level).or_insert(scheme);
            if model.mttdl_years(scheme) < model.mttdl_years(*weakest) {
                *weakest = scheme;
            }
        }
        stocks
    }

    /// Modelled mean time to data loss of one shardlet of `level`, in seconds: that of
    /// the weakest scheme the level's shardlets use. `+Inf` for a level that holds
    /// nothing (no data of that level can be lost), so an alert comparing it with the
    /// target stays quiet on an empty cluster.
    pub fn mttdl_seconds(&self, level: RedundancyLevel, model: &DurabilityModel) -> f64 {
        self.weakest.get(&level).map_or(f64::INFINITY, |scheme| {
            model.mttdl_years(*scheme) * SECONDS_PER_YEAR
        })
    }
}

impl Default for ShardletStocks {
    fn default() -> Self {
        let by_scheme = SCHEMES
            .iter()
            .flat_map(|scheme| {
                LEVELS
                    .iter()
                    .map(move |level| ((*scheme, level_label(*level)), SchemeTotals::default()))
            })
            .collect();
        Self {
            by_scheme,
            weakest: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BucketTotals {
    pub objects: u64,
    pub logical_bytes: u64,
}

/// Objects and bytes per bucket: the [`BUCKETS_MAX`] largest by bytes by name, the
/// others summed under [`OTHER`] (always present, 0 when nothing is beyond the cap).
pub fn tally_buckets<'a>(
    objects: impl IntoIterator<Item = (&'a str, u64)>,
    buckets_max: usize,
) -> BTreeMap<String, BucketTotals> {
    let mut all: BTreeMap<&str, BucketTotals> = BTreeMap::new();
    for (bucket, size_bytes) in objects {
        let totals = all.entry(bucket).or_default();
        totals.objects += 1;
        totals.logical_bytes += size_bytes;
    }
    let mut ranked: Vec<(&str, BucketTotals)> = all.into_iter().collect();
    // Largest first; ties by name so the cut is the same every pass.
    ranked.sort_by(|(left_name, left), (right_name, right)| {
        right
            .logical_bytes
            .cmp(&left.logical_bytes)
            .then_with(|| left_name.cmp(right_name))
    });
    let mut published = BTreeMap::new();
    let mut other = BucketTotals::default();
    for (position, (bucket, totals)) in ranked.into_iter().enumerate() {
        if position < buckets_max && bucket != OTHER {
            published.insert(bucket.to_string(), totals);
        } else {
            other.objects += totals.objects;
            other.logical_bytes += totals.logical_bytes;
        }
    }
    published.insert(OTHER.to_string(), other);
    published
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE_COPIES: Scheme = Scheme::Replicated { copies: 3 };
    const TWO_COPIES: Scheme = Scheme::Replicated { copies: 2 };
    const RS_6_3: Scheme = Scheme::ErasureCoded { data: 6, parity: 3 };

    #[test]
    fn stocks_sum_by_scheme_and_level_with_stored_bytes_counting_redundancy() {
        let model = DurabilityModel::default();
        let stocks = ShardletStocks::tally(
            [
                (THREE_COPIES, RedundancyLevel::Medium, 100),
                (THREE_COPIES, RedundancyLevel::Medium, 50),
                (RS_6_3, RedundancyLevel::Medium, 600),
                // 601 bytes over 6 data fragments: 101 each (rounded up), 9 fragments.
                (RS_6_3, RedundancyLevel::High, 601),
            ],
            &model,
        );
        let get = |scheme, level| {
            stocks
                .by_scheme
                .get(&(scheme, level))
                .copied()
                .unwrap_or_default()
        };
        assert_eq!(
            get("replicated", "medium"),
            SchemeTotals {
                shardlets: 2,
                logical_bytes: 150,
                stored_bytes: 450
            }
        );
        assert_eq!(
            get("erasure", "medium"),
            SchemeTotals {
                shardlets: 1,
                logical_bytes: 600,
                stored_bytes: 900
            }
        );
        assert_eq!(get("erasure", "high").stored_bytes, 101 * 9);
        // Every pair is there, the unused ones at 0.
        assert_eq!(stocks.by_scheme.len(), 6);
        assert_eq!(get("replicated", "low"), SchemeTotals::default());
        let total_logical: u64 = stocks.by_scheme.values().map(|t| t.logical_bytes).sum();
        assert_eq!(total_logical, 100 + 50 + 600 + 601);
    }

    #[test]
    fn each_levels_mttdl_is_its_weakest_scheme_and_infinite_when_empty() {
        let model = DurabilityModel::default();
        let stocks = ShardletStocks::tally(
            [
                (THREE_COPIES, RedundancyLevel::Low, 1),
                (TWO_COPIES, RedundancyLevel::Low, 1),
                (RS_6_3, RedundancyLevel::Medium, 1),
            ],
            &model,
        );
        let low = stocks.mttdl_seconds(RedundancyLevel::Low, &model);
        assert_eq!(low, model.mttdl_years(TWO_COPIES) * SECONDS_PER_YEAR);
        assert!(low < model.mttdl_years(THREE_COPIES) * SECONDS_PER_YEAR);
        assert_eq!(
            stocks.mttdl_seconds(RedundancyLevel::Medium, &model),
            model.mttdl_years(RS_6_3) * SECONDS_PER_YEAR
        );
        assert_eq!(
            stocks.mttdl_seconds(RedundancyLevel::High, &model),
            f64::INFINITY
        );
    }

    #[test]
    fn buckets_beyond_the_cap_are_summed_under_other_largest_kept() {
        let objects = [
            ("small", 1),
            ("large", 1_000),
            ("large", 1_000),
            ("middle", 500),
            ("tiny", 0),
            ("tiny", 0),
        ];
        let buckets = tally_buckets(objects.iter().map(|(b, s)| (*b, *s)), 2);
        let names: Vec<&str> = buckets.keys().map(String::as_str).collect();
        assert_eq!(names, ["_other", "large", "middle"]);
        assert_eq!(
            buckets["large"],
            BucketTotals {
                objects: 2,
                logical_bytes: 2_000
            }
        );
        assert_eq!(
            buckets[OTHER],
            BucketTotals {
                objects: 3,
                logical_bytes: 1
            }
        );
        let total: u64 = buckets.values().map(|t| t.objects).sum();
        assert_eq!(total, objects.len() as u64);
    }

    #[test]
    fn no_buckets_still_publishes_other_at_zero() {
        let buckets = tally_buckets(std::iter::empty(), BUCKETS_MAX);
        assert_eq!(buckets.len(), 1);
        assert_eq!(buckets[OTHER], BucketTotals::default());
    }
}
