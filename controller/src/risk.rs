//! Node risk: the probability that a node fails within the predictor's horizon.
//!
//! When the predictor sidecar has scored a node recently, its probability is the risk
//! ([`RiskSource::Predictor`]). Otherwise a documented heuristic stands in
//! ([`RiskSource::Heuristic`]) and the shell exports `risk_source` so an operator sees
//! the controller is running degraded. The heuristic is a trait so it can later
//! delegate to `shardlet-predictor`'s fallback score.

use std::collections::BTreeMap;

use shardlet_core::NodeId;

/// What a storage node reports with each heartbeat (SMART-like counters where the
/// hardware exposes them; zero otherwise).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HealthSample {
    pub io_errors_total: u64,
    pub checksum_failures_total: u64,
    /// SMART 5, 187, 188, 197, 198: the five attributes Backblaze found most
    /// predictive of drive failure.
    pub reallocated_sectors: u64,
    pub reported_uncorrectable: u64,
    pub command_timeouts: u64,
    pub pending_sectors: u64,
    pub offline_uncorrectable: u64,
    pub power_on_hours: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RiskSource {
    Predictor,
    Heuristic,
}

impl RiskSource {
    /// The label value of the shell's `risk_source` metric.
    pub fn label(self) -> &'static str {
        match self {
            RiskSource::Predictor => "predictor",
            RiskSource::Heuristic => "heuristic",
        }
    }
}

/// A fallback risk score in `[0, 1]` from one health sample.
pub trait RiskHeuristic {
    fn risk(&self, health: &HealthSample) -> f64;
}

/// The default heuristic, roughly a failure probability over the next 30 days:
///
/// - base: by age, a bathtub curve: 0.5 % in the first 1,000 power-on hours (infant
///   mortality), 0.15 % until 5 years, then 0.5 % (wear-out);
/// - the SMART rule: any of SMART 5/187/188/197/198 above zero → at least 0.5
///   (Backblaze: a small share of healthy drives but most failed ones show one);
/// - errors: I/O errors and checksum failures push towards 1 as `1 − e^(−errors/10)`.
///
/// The parts combine as independent causes: `1 − Π(1 − pᵢ)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultHeuristic;

impl RiskHeuristic for DefaultHeuristic {
    fn risk(&self, health: &HealthSample) -> f64 {
        let age = match health.power_on_hours {
            0..1_000 => 0.005,
            1_000..43_800 => 0.0015,
            _ => 0.005,
        };
        let smart_rule = [
            health.reallocated_sectors,
            health.reported_uncorrectable,
            health.command_timeouts,
            health.pending_sectors,
            health.offline_uncorrectable,
        ]
        .iter()
        .any(|count| *count > 0);
        let smart = if smart_rule { 0.5 } else { 0.0 };
        let errors = health
            .io_errors_total
            .saturating_add(health.checksum_failures_total) as f64;
        let from_errors = 1.0 - (-errors / 10.0).exp();
        1.0 - (1.0 - age) * (1.0 - smart) * (1.0 - from_errors)
    }
}

/// A predictor score for one node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PredictorScore {
    pub probability: f64,
    pub scored_at_ms: u64,
}

/// Combines predictor scores (when fresh) with the heuristic.
#[derive(Clone, Debug)]
pub struct RiskAssessor<H> {
    heuristic: H,
    /// A score older than this is ignored: the sidecar is presumed down.
    pub predictor_stale_after_ms: u64,
    scores: BTreeMap<NodeId, PredictorScore>,
}

impl<H: RiskHeuristic> RiskAssessor<H> {
    pub fn new(heuristic: H, predictor_stale_after_ms: u64) -> Self {
        Self {
            heuristic,
            predictor_stale_after_ms,
            scores: BTreeMap::new(),
        }
    }

    /// Records a predictor score; probabilities outside `[0, 1]` (or NaN) come from a
    /// broken sidecar and are ignored, so the heuristic stays in force.
    pub fn record_score(&mut self, node: NodeId, score: PredictorScore) -> bool {
        if !(0.0..=1.0).contains(&score.probability) {
            return false;
        }
        self.scores.insert(node, score);
        true
    }

    pub fn node_risk(&self, node: NodeId, health: &HealthSample, now_ms: u64) -> (f64, RiskSource) {
        match self.scores.get(&node) {
            Some(score)
                if now_ms.saturating_sub(score.scored_at_ms) <= self.predictor_stale_after_ms =>
            {
                (score.probability, RiskSource::Predictor)
            }
            _ => (self.heuristic.risk(health), RiskSource::Heuristic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_predictor_score_wins_and_stale_one_falls_back() {
        let mut assessor = RiskAssessor::new(DefaultHeuristic, 60_000);
        let health = HealthSample {
            power_on_hours: 10_000,
            ..HealthSample::default()
        };
        let node = NodeId(1);
        assert_eq!(
            assessor.node_risk(node, &health, 0).1,
            RiskSource::Heuristic
        );
        assert!(assessor.record_score(
            node,
            PredictorScore {
                probability: 0.7,
                scored_at_ms: 1_000
            }
        ));
        assert_eq!(
            assessor.node_risk(node, &health, 2_000),
            (0.7, RiskSource::Predictor)
        );
        let (risk, source) = assessor.node_risk(node, &health, 1_000 + 60_001);
        assert_eq!(source, RiskSource::Heuristic);
        assert!((risk - 0.0015).abs() < 1e-12);
    }

    #[test]
    fn broken_predictor_scores_are_ignored() {
        let mut assessor = RiskAssessor::new(DefaultHeuristic, 60_000);
        for probability in [f64::NAN, -0.1, 1.5] {
            assert!(!assessor.record_score(
                NodeId(1),
                PredictorScore {
                    probability,
                    scored_at_ms: 0
                }
            ));
        }
        let (_, source) = assessor.node_risk(NodeId(1), &HealthSample::default(), 0);
        assert_eq!(source, RiskSource::Heuristic);
    }

    #[test]
    fn smart_rule_and_errors_raise_the_heuristic() {
        let healthy = HealthSample {
            power_on_hours: 10_000,
            ..HealthSample::default()
        };
        let smart = HealthSample {
            pending_sectors: 8,
            ..healthy.clone()
        };
        let erroring = HealthSample {
            io_errors_total: 50,
            ..healthy.clone()
        };
        let heuristic = DefaultHeuristic;
        assert!(heuristic.risk(&healthy) < 0.01);
        assert!(heuristic.risk(&smart) >= 0.5);
        assert!(heuristic.risk(&erroring) > 0.99);
    }
}
