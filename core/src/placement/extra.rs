//! Ranking nodes for extra replicas: hot shardlets and pre-emptive copies away from
//! nodes predicted to fail.

use super::{attempt_key, PlacementError, PlacementMap, Rule, Spread};
use crate::ids::{mix64, NodeId};
use crate::scheme::Scheme;
use crate::topology::NodeState;

/// The latency assumed for a node that has not been measured yet: a typical
/// same-region round trip, so an unmeasured node is neither favoured nor shunned.
pub const UNMEASURED_LATENCY_US: u64 = 1_000;

/// Latency at which a node's quality halves (see [`PlacementMap::rank_extra_targets`]).
pub const LATENCY_HALF_QUALITY_US: f64 = 1_000.0;

impl PlacementMap {
    /// Up to `count` nodes for extra whole replicas of a shardlet, best first.
    ///
    /// Candidates: nodes in state `Up` (not `Suspect`: an extra copy exists to escape
    /// risk), with free space, not in `current` or `exclude`.
    ///
    /// Quality: `q = (free_bytes / max free_bytes among candidates) /
    /// (1 + latency_us / 1000)` — high free capacity and low latency both count, and a
    /// node 1 ms away is worth half an equally empty local one.
    ///
    /// Order: weighted rendezvous hashing, `score = q / -ln(u)` with `u` a uniform hash
    /// of (key, node) in (0, 1). The best node wins most often, but not always: a pure
    /// sort by `q` would send every hot shardlet's extra copy to the same node. Each
    /// node's chance of ranking first is proportional to `q`, and the order is
    /// deterministic per key.
    ///
    /// Spread: extras count as fragments, and no zone (nor region at level High) may
    /// end up with more than the scheme's `tolerated_losses` pieces of the shardlet.
    pub fn rank_extra_targets(
        &self,
        key: u64,
        scheme: Scheme,
        spread: Spread,
        current: &[NodeId],
        exclude: &[NodeId],
        count: usize,
    ) -> Result<Vec<NodeId>, PlacementError> {
        // A single copy tolerates no loss, yet is exactly what most needs extra copies:
        // allow one piece per domain rather than refusing.
        let rule = match self.rule(scheme, spread) {
            Err(PlacementError::Infeasible(_)) if scheme.width() > 0 => Rule {
                domain: spread.survive,
                cap: Some(1),
            },
            other => other?,
        };
        let mut held: Vec<u32> = Vec::with_capacity(current.len() + count);
        for node in current {
            held.push(self.position(*node)?);
        }
        let is_candidate = |position: usize| {
            let id = self.node_ids[position];
            self.states[position] == NodeState::Up
                && self.free_bytes[position] > 0
                && !current.contains(&id)
                && !exclude.contains(&id)
        };
        let free_max = (0..self.node_ids.len())
            .filter(|p| is_candidate(*p))
            .map(|p| self.free_bytes[p])
            .max()
            .unwrap_or(1) as f64;
        let ranking_key = attempt_key(key, usize::MAX >> 32, 0);
        let mut scored: Vec<(f64, u32)> = (0..self.node_ids.len())
            .filter(|p| is_candidate(*p))
            .map(|p| {
                let latency_us = self.latency_us[p].unwrap_or(UNMEASURED_LATENCY_US) as f64;
                let quality = (self.free_bytes[p] as f64 / free_max)
                    / (1.0 + latency_us / LATENCY_HALF_QUALITY_US);
                let hash = mix64(ranking_key ^ u64::from(self.node_ids[p].0));
                // 53 random bits mapped into (0, 1), never 0 or 1.
                let uniform = ((hash >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                (quality / -uniform.ln(), p as u32)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));

        let mut chosen = Vec::with_capacity(count);
        for (_, position) in scored {
            if chosen.len() == count {
                break;
            }
            if self.admissible(position, &held, rule) {
                held.push(position);
                chosen.push(self.node_ids[position as usize]);
            }
        }
        Ok(chosen)
    }
}
