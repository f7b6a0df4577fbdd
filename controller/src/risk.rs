//! Node risk: the probability that a node fails within the predictor's horizon.
//!
//! When the predictor sidecar has scored a node recently, its probability is the risk
//! ([`RiskSource::Predictor`]). Otherwise the predictor's documented fallback
//! heuristic (`shardlet_predictor_api::heuristic_score`, docs/predictor.md) scores the
//! node's recent window of schema rows ([`RiskSource::Heuristic`]), and the shell
//! exports `risk_source` so an operator sees the controller is running degraded.
//!
//! The input is the predictor's own window type (schema rows, oldest first) rather
//! than a controller health type: the heuristic and the model read the same rows, so
//! a node's risk means the same thing whichever of them answers.

use std::collections::BTreeMap;

use shardlet_core::NodeId;
use shardlet_predictor_api::heuristic_score;
use shardlet_predictor_api::schema::FeatureValues;

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

/// A predictor score for one node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PredictorScore {
    pub probability: f64,
    pub scored_at_ms: u64,
}

/// Combines predictor scores (when fresh) with the heuristic.
#[derive(Clone, Debug)]
pub struct RiskAssessor {
    /// A score older than this is ignored: the sidecar is presumed down.
    pub predictor_stale_after_ms: u64,
    scores: BTreeMap<NodeId, PredictorScore>,
}

impl RiskAssessor {
    pub fn new(predictor_stale_after_ms: u64) -> Self {
        Self {
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

    /// The node's risk at `now_ms`: its fresh predictor score, else the heuristic over
    /// `window` (the node's recent schema rows, oldest first; empty when unknown).
    pub fn node_risk(
        &self,
        node: NodeId,
        window: &[FeatureValues],
        now_ms: u64,
    ) -> (f64, RiskSource) {
        match self.scores.get(&node) {
            Some(score)
                if now_ms.saturating_sub(score.scored_at_ms) <= self.predictor_stale_after_ms =>
            {
                (score.probability, RiskSource::Predictor)
            }
            _ => (f64::from(heuristic_score(window)), RiskSource::Heuristic),
        }
    }
}

#[cfg(test)]
mod tests {
    use shardlet_predictor_api::schema::{index, ALL_MISSING};

    use super::*;

    #[test]
    fn fresh_predictor_score_wins_and_stale_one_falls_back() {
        let mut assessor = RiskAssessor::new(60_000);
        let window = vec![ALL_MISSING; 3];
        let node = NodeId(1);
        assert_eq!(
            assessor.node_risk(node, &window, 0).1,
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
            assessor.node_risk(node, &window, 2_000),
            (0.7, RiskSource::Predictor)
        );
        let (risk, source) = assessor.node_risk(node, &window, 1_000 + 60_001);
        assert_eq!(source, RiskSource::Heuristic);
        assert_eq!(risk, f64::from(heuristic_score(&window)));
    }

    #[test]
    fn broken_predictor_scores_are_ignored() {
        let mut assessor = RiskAssessor::new(60_000);
        for probability in [f64::NAN, -0.1, 1.5] {
            assert!(!assessor.record_score(
                NodeId(1),
                PredictorScore {
                    probability,
                    scored_at_ms: 0
                }
            ));
        }
        let (_, source) = assessor.node_risk(NodeId(1), &[], 0);
        assert_eq!(source, RiskSource::Heuristic);
    }

    #[test]
    fn smart_alarms_and_errors_in_the_window_raise_the_heuristic_risk() {
        let assessor = RiskAssessor::new(60_000);
        let node = NodeId(1);
        let healthy = vec![ALL_MISSING; 3];
        let mut smart = healthy.clone();
        smart[2][index::SMART_197] = 8.0;
        let mut erroring = healthy.clone();
        erroring[1][index::CHECKSUM_FAILURES] = 100.0;
        let risk = |window: &[FeatureValues]| assessor.node_risk(node, window, 0).0;
        assert!(risk(&healthy) < 0.02);
        assert!(risk(&smart) >= 0.5);
        // 100 checksum failures within the window: above the default evacuation
        // threshold of 0.8 (the end-to-end evacuation test relies on it).
        assert!(risk(&erroring) > 0.8, "{}", risk(&erroring));
    }
}
