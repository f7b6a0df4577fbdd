//! Failure detection from heartbeats: Up → Suspect → Down, with flap damping.
//!
//! A node is Suspect after `suspect_after_ms` of silence (still a placement target, no
//! data moves) and Down after its grace period (repair starts). The grace period is
//! long in production (10 minutes, like Ceph's down-out interval) so a reboot does
//! not trigger a storm of repair.
//!
//! Damping: every recovery (Suspect/Down → Up) is a *flap*, remembered for
//! `flap_window_ms`. A node with `f` flaps in the window gets a grace period of
//! `down_after_ms · 2^f`, capped at `down_after_ms_max`: a node that keeps dropping
//! out briefly is given longer to come back before its data is rebuilt elsewhere,
//! because rebuilding after every blip would move its data again and again.
//!
//! Pure: [`Detector::observe`] records a heartbeat, [`Detector::tick`] returns the
//! transitions due at `now_ms`. No clocks inside.

use std::collections::{BTreeMap, VecDeque};

use shardlet_core::NodeId;

/// Flap timestamps kept per node; more than this many flaps already hit the cap.
const FLAPS_REMEMBERED_MAX: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetectorConfig {
    pub suspect_after_ms: u64,
    pub down_after_ms: u64,
    pub down_after_ms_max: u64,
    pub flap_window_ms: u64,
}

impl DetectorConfig {
    /// Production: suspect after 15 s, down after 10 min, flapping up to 2 h.
    pub fn production() -> Self {
        Self {
            suspect_after_ms: 15_000,
            down_after_ms: 600_000,
            down_after_ms_max: 7_200_000,
            flap_window_ms: 6 * 3_600_000,
        }
    }

    /// `shardlet dev`: seconds, so a developer sees repair happen.
    pub fn dev() -> Self {
        Self {
            suspect_after_ms: 3_000,
            down_after_ms: 10_000,
            down_after_ms_max: 80_000,
            flap_window_ms: 600_000,
        }
    }
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self::production()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Liveness {
    Up,
    Suspect,
    Down,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeTransition {
    pub node: NodeId,
    pub from: Liveness,
    pub to: Liveness,
    pub at_ms: u64,
}

/// A heartbeat: the node is alive. Its health report goes to risk assessment (the
/// shell's `NodeWindows`), not here: liveness is decided from silence alone.
#[derive(Clone, Debug, PartialEq)]
pub struct Heartbeat {
    pub node: NodeId,
}

#[derive(Clone, Debug)]
struct Tracked {
    last_seen_ms: u64,
    liveness: Liveness,
    flaps_ms: VecDeque<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct Detector {
    config: DetectorConfig,
    nodes: BTreeMap<NodeId, Tracked>,
    /// Up-transitions found by `observe`, handed out by the next `tick`.
    pending: Vec<NodeTransition>,
}

impl Detector {
    pub fn new(config: DetectorConfig) -> Self {
        Self {
            config,
            nodes: BTreeMap::new(),
            pending: Vec::new(),
        }
    }

    pub fn config(&self) -> DetectorConfig {
        self.config
    }

    /// Records a heartbeat received at `now_ms`. A node seen for the first time is Up.
    pub fn observe(&mut self, heartbeat: Heartbeat, now_ms: u64) {
        let window = self.config.flap_window_ms;
        let tracked = self.nodes.entry(heartbeat.node).or_insert_with(|| Tracked {
            last_seen_ms: now_ms,
            liveness: Liveness::Up,
            flaps_ms: VecDeque::new(),
        });
        // Heartbeats can arrive out of order; an older one says nothing new.
        tracked.last_seen_ms = tracked.last_seen_ms.max(now_ms);
        if tracked.liveness != Liveness::Up {
            while tracked
                .flaps_ms
                .front()
                .is_some_and(|at| now_ms.saturating_sub(*at) > window)
            {
                tracked.flaps_ms.pop_front();
            }
            if tracked.flaps_ms.len() == FLAPS_REMEMBERED_MAX {
                tracked.flaps_ms.pop_front();
            }
            tracked.flaps_ms.push_back(now_ms);
            self.pending.push(NodeTransition {
                node: heartbeat.node,
                from: tracked.liveness,
                to: Liveness::Up,
                at_ms: now_ms,
            });
            tracked.liveness = Liveness::Up;
        }
    }

    /// Transitions due at `now_ms`: recoveries seen since the last tick, then nodes
    /// whose silence crossed a threshold (in node order, so the output is deterministic).
    pub fn tick(&mut self, now_ms: u64) -> Vec<NodeTransition> {
        let mut transitions = std::mem::take(&mut self.pending);
        let config = self.config;
        for (node, tracked) in &mut self.nodes {
            let silent_ms = now_ms.saturating_sub(tracked.last_seen_ms);
            let grace_ms = grace_ms(config, recent_flaps(tracked, now_ms, config));
            let next = if silent_ms >= grace_ms {
                Liveness::Down
            } else if silent_ms >= config.suspect_after_ms {
                Liveness::Suspect
            } else {
                Liveness::Up
            };
            // Only silence moves a node down here; coming back is `observe`'s job.
            if next > tracked.liveness {
                transitions.push(NodeTransition {
                    node: *node,
                    from: tracked.liveness,
                    to: next,
                    at_ms: now_ms,
                });
                tracked.liveness = next;
            }
        }
        transitions
    }

    /// Drops a node's record (decommissioned, or quiet for longer than the flap
    /// window, when its history no longer matters). It is Up again at its next
    /// heartbeat.
    pub fn forget(&mut self, node: NodeId) {
        self.nodes.remove(&node);
    }

    pub fn liveness(&self, node: NodeId) -> Option<Liveness> {
        self.nodes.get(&node).map(|tracked| tracked.liveness)
    }

    /// The grace period a node gets right now (longer for a flapping node).
    pub fn grace_ms(&self, node: NodeId, now_ms: u64) -> u64 {
        match self.nodes.get(&node) {
            Some(tracked) => grace_ms(self.config, recent_flaps(tracked, now_ms, self.config)),
            None => self.config.down_after_ms,
        }
    }

    /// The earliest time a `tick` could report something: lets an event-driven
    /// caller (the simulator) skip the time in between.
    pub fn next_deadline_ms(&self, now_ms: u64) -> Option<u64> {
        if !self.pending.is_empty() {
            return Some(now_ms);
        }
        self.nodes
            .iter()
            .filter_map(|(node, tracked)| match tracked.liveness {
                Liveness::Up => Some(tracked.last_seen_ms + self.config.suspect_after_ms),
                Liveness::Suspect => Some(tracked.last_seen_ms + self.grace_ms(*node, now_ms)),
                Liveness::Down => None,
            })
            .min()
    }
}

fn recent_flaps(tracked: &Tracked, now_ms: u64, config: DetectorConfig) -> u32 {
    tracked
        .flaps_ms
        .iter()
        .filter(|at| now_ms.saturating_sub(**at) <= config.flap_window_ms)
        .count() as u32
}

fn grace_ms(config: DetectorConfig, flaps: u32) -> u64 {
    config
        .down_after_ms
        .saturating_mul(1u64 << flaps.min(16))
        .min(config.down_after_ms_max.max(config.down_after_ms))
}
