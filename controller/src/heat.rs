//! Access heat per shardlet, and its class (hot / warm / cold) with hysteresis.
//!
//! Per shardlet, not per object: the shardlet is the unit the policy re-encodes and
//! places, and a large object's head is often read far more than its tail. Gateways
//! send batched counts; each shardlet keeps an exponentially decayed count `c` with
//! half-life `h`: `c(t) = c(t₀) · 2^(−(t−t₀)/h) + new`, and its rate estimate is
//! `c · ln 2 / h` accesses per unit time (for a steady rate `r` this converges to `r`).
//! Writes count like reads: both want replicas close by.
//!
//! Classes have two thresholds per boundary (enter above the upper, leave below the
//! lower), so a shardlet whose rate wobbles around one threshold keeps its class.

use std::collections::BTreeMap;

use shardlet_core::{AccessClass, ShardletId};

const MS_PER_HOUR: f64 = 3_600_000.0;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeatConfig {
    pub half_life_ms: u64,
    /// Accesses per hour to become hot, and to stop being hot.
    pub hot_enter_per_hour: f64,
    pub hot_leave_per_hour: f64,
    /// Accesses per hour to become warm from cold, and to fall back to cold.
    pub warm_enter_per_hour: f64,
    pub cold_enter_per_hour: f64,
    /// Shardlets tracked at most; beyond it the coldest are dropped (an untracked
    /// shardlet is cold, which is what the coldest ones are).
    pub tracked_max: usize,
}

impl Default for HeatConfig {
    fn default() -> Self {
        Self {
            half_life_ms: 6 * 3_600_000,
            hot_enter_per_hour: 60.0,
            hot_leave_per_hour: 30.0,
            warm_enter_per_hour: 1.0,
            cold_enter_per_hour: 0.5,
            tracked_max: 1_000_000,
        }
    }
}

/// The class a shardlet moves to, given its previous class and current rate.
/// The bands `[cold_enter, warm_enter]` and `[hot_leave, hot_enter]` keep the class.
pub fn classify(previous: AccessClass, rate_per_hour: f64, config: &HeatConfig) -> AccessClass {
    let hot = match previous {
        AccessClass::Hot => rate_per_hour >= config.hot_leave_per_hour,
        _ => rate_per_hour > config.hot_enter_per_hour,
    };
    if hot {
        return AccessClass::Hot;
    }
    let warm = match previous {
        AccessClass::Cold => rate_per_hour > config.warm_enter_per_hour,
        _ => rate_per_hour >= config.cold_enter_per_hour,
    };
    if warm {
        AccessClass::Warm
    } else {
        AccessClass::Cold
    }
}

/// A batch entry from a gateway: accesses counted since its last report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeatReport {
    pub shardlet: ShardletId,
    pub reads: u64,
    pub writes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Heat {
    decayed_count: f64,
    updated_ms: u64,
    class: AccessClass,
}

#[derive(Clone, Debug, Default)]
pub struct HeatTracker {
    config: HeatConfig,
    shardlets: BTreeMap<ShardletId, Heat>,
}

impl HeatTracker {
    pub fn new(config: HeatConfig) -> Self {
        Self {
            config,
            shardlets: BTreeMap::new(),
        }
    }

    /// Folds a batch of reports received at `now_ms` into the decayed counts and
    /// reclassifies the shardlets it names. Returns the class changes.
    pub fn observe(&mut self, batch: &[HeatReport], now_ms: u64) -> Vec<(ShardletId, AccessClass)> {
        let mut changes = Vec::new();
        for report in batch {
            let heat = self.shardlets.entry(report.shardlet).or_insert(Heat {
                decayed_count: 0.0,
                updated_ms: now_ms,
                class: AccessClass::Cold,
            });
            heat.decayed_count = decay(heat.decayed_count, heat.updated_ms, now_ms, &self.config)
                + (report.reads.saturating_add(report.writes)) as f64;
            heat.updated_ms = heat.updated_ms.max(now_ms);
            let class = classify(heat.class, rate(heat, &self.config), &self.config);
            if class != heat.class {
                heat.class = class;
                changes.push((report.shardlet, class));
            }
        }
        self.evict_coldest();
        changes
    }

    /// Re-evaluates every tracked shardlet at `now_ms` (decay alone cools them).
    pub fn decay_all(&mut self, now_ms: u64) -> Vec<(ShardletId, AccessClass)> {
        let mut changes = Vec::new();
        for (id, heat) in &mut self.shardlets {
            heat.decayed_count = decay(heat.decayed_count, heat.updated_ms, now_ms, &self.config);
            heat.updated_ms = heat.updated_ms.max(now_ms);
            let class = classify(heat.class, rate(heat, &self.config), &self.config);
            if class != heat.class {
                heat.class = class;
                changes.push((*id, class));
            }
        }
        changes
    }

    pub fn class(&self, shardlet: ShardletId) -> AccessClass {
        self.shardlets
            .get(&shardlet)
            .map_or(AccessClass::Cold, |heat| heat.class)
    }

    /// Accesses per hour as last computed.
    pub fn rate_per_hour(&self, shardlet: ShardletId) -> f64 {
        self.shardlets
            .get(&shardlet)
            .map_or(0.0, |heat| rate(heat, &self.config))
    }

    pub fn tracked(&self) -> usize {
        self.shardlets.len()
    }

    fn evict_coldest(&mut self) {
        let excess = self.shardlets.len().saturating_sub(self.config.tracked_max);
        if excess == 0 {
            return;
        }
        let mut by_count: Vec<(f64, ShardletId)> = self
            .shardlets
            .iter()
            .map(|(id, heat)| (heat.decayed_count, *id))
            .collect();
        by_count.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (_, id) in by_count.into_iter().take(excess) {
            self.shardlets.remove(&id);
        }
    }
}

fn decay(count: f64, from_ms: u64, to_ms: u64, config: &HeatConfig) -> f64 {
    let elapsed = to_ms.saturating_sub(from_ms) as f64;
    count * (-elapsed / config.half_life_ms.max(1) as f64 * std::f64::consts::LN_2).exp()
}

fn rate(heat: &Heat, config: &HeatConfig) -> f64 {
    heat.decayed_count * std::f64::consts::LN_2 / (config.half_life_ms.max(1) as f64 / MS_PER_HOUR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardlet_core::ObjectId;

    fn id(n: u8) -> ShardletId {
        ShardletId::new(ObjectId([n; 16]), 0)
    }

    #[test]
    fn steady_reports_converge_to_their_rate_and_change_class_once() {
        let mut tracker = HeatTracker::new(HeatConfig::default());
        let mut changes = Vec::new();
        // 100 accesses per hour, reported every minute, for two days.
        for minute in 1..=2 * 24 * 60u64 {
            let report = HeatReport {
                shardlet: id(1),
                reads: if minute % 3 == 0 { 1 } else { 2 },
                writes: 0,
            };
            changes.extend(tracker.observe(&[report], minute * 60_000));
        }
        let rate = tracker.rate_per_hour(id(1));
        assert!((rate - 100.0).abs() < 5.0, "{rate}");
        assert_eq!(tracker.class(id(1)), AccessClass::Hot);
        assert_eq!(
            changes.iter().map(|c| c.1).collect::<Vec<_>>(),
            vec![AccessClass::Warm, AccessClass::Hot]
        );
        // Silence cools it down through warm to cold, one step at a time.
        let cooled = tracker.decay_all(2 * 24 * 3_600_000 + 3 * 3_600_000 * 6);
        assert_eq!(cooled, vec![(id(1), AccessClass::Warm)]);
        let cold = tracker.decay_all(2 * 24 * 3_600_000 + 30 * 3_600_000 * 6);
        assert_eq!(cold, vec![(id(1), AccessClass::Cold)]);
    }

    #[test]
    fn tracker_is_bounded_and_drops_the_coldest() {
        let mut tracker = HeatTracker::new(HeatConfig {
            tracked_max: 2,
            ..HeatConfig::default()
        });
        let batch: Vec<HeatReport> = (1..=3)
            .map(|n| HeatReport {
                shardlet: id(n),
                reads: u64::from(n) * 10,
                writes: 0,
            })
            .collect();
        tracker.observe(&batch, 0);
        assert_eq!(tracker.tracked(), 2);
        assert_eq!(tracker.rate_per_hour(id(1)), 0.0);
        assert!(tracker.rate_per_hour(id(3)) > 0.0);
    }
}
