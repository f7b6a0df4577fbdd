//! The fault model: what fails when. Natural disk failures and transient outages per
//! node (exponential inter-arrival times from each disk model's AFR), whole-zone
//! outages, and the simulated predictor's alarms (true ones ahead of a data-destroying
//! failure, false ones at a fixed rate). It changes what is physically true (a node is
//! offline, its data destroyed) and tells the controller under test only what the
//! daemon would hear: silence, and a risk score.

use shardlet_core::{NodeId, NodeState};

use super::events::{Event, MS_PER_DAY, MS_PER_HOUR, MS_PER_YEAR};
use super::world::World;

/// False alarms clear after this long.
const FALSE_ALARM_MS: u64 = 30 * MS_PER_DAY;

impl World {
    // ---- failures and detection ----

    pub(super) fn schedule_natural_failure(&mut self, node: u32, from_ms: u64) {
        let afr = self.nodes[node as usize].afr;
        let disk_at = from_ms + (self.rng.exponential(1.0 / afr.max(1e-9)) * MS_PER_YEAR) as u64;
        let transient_at = from_ms
            + (self
                .rng
                .exponential(1.0 / self.config.transient_per_node_year.max(1e-9))
                * MS_PER_YEAR) as u64;
        let (at, permanent, downtime_ms) = if disk_at < transient_at {
            let permanent = self.rng.chance(self.config.permanent_share);
            let downtime = if permanent {
                (self.config.replace_days * MS_PER_DAY as f64) as u64
            } else {
                self.rng.range(1.0, 24.0) as u64 * MS_PER_HOUR
            };
            (disk_at, permanent, downtime)
        } else {
            let downtime = if self.rng.chance(self.config.long_transient_share) {
                self.rng.range(20.0 * 60_000.0, 12.0 * MS_PER_HOUR as f64) as u64
            } else {
                self.rng.range(60_000.0, 8.0 * 60_000.0) as u64
            };
            (transient_at, false, downtime)
        };
        if permanent && self.rng.chance(self.config.predictor_recall) {
            let lead = (self.rng.range(1.0, self.config.predictor_lead_days_max)
                * MS_PER_DAY as f64) as u64;
            self.push(
                at.saturating_sub(lead),
                Event::RiskAlarm {
                    node,
                    false_alarm: false,
                },
            );
        }
        self.push(
            at,
            Event::NodeFail {
                node,
                permanent,
                outage: false,
                downtime_ms,
            },
        );
    }

    pub(super) fn node_fail(&mut self, node: u32, permanent: bool, outage: bool, downtime_ms: u64) {
        if !self.nodes[node as usize].online {
            // Already down: a natural failure re-arms for after it is back.
            if !outage {
                self.nodes[node as usize].pending_failure = true;
            }
            return;
        }
        self.nodes[node as usize].online = false;
        self.nodes[node as usize].last_failure_ms = self.now_ms;
        if permanent {
            self.report.node_failures_permanent += 1;
        } else {
            self.report.node_failures_transient += 1;
        }
        // Its last heartbeat: from now on the detector hears silence.
        self.detector.observe(self.heartbeat(node), self.now_ms);
        self.detector_tracked.insert(node);
        let suspect = self.now_ms + self.detector.config().suspect_after_ms;
        let down = self.now_ms + self.detector.grace_ms(NodeId(node), self.now_ms);
        self.push(suspect, Event::DetectorTick);
        self.push(down, Event::DetectorTick);
        let holding: Vec<u32> = self.holders[node as usize].iter().copied().collect();
        if permanent {
            for shardlet in &holding {
                self.destroyed.insert((*shardlet, NodeId(node)));
                self.check_loss(*shardlet);
            }
        }
        for shardlet in holding {
            self.refresh_degraded(shardlet, false);
        }
        self.push(
            self.now_ms + downtime_ms,
            Event::NodeReturn {
                node,
                wiped: permanent,
                natural: !outage,
            },
        );
    }

    pub(super) fn node_return(&mut self, node: u32, wiped: bool, natural: bool) {
        if self.nodes[node as usize].online {
            return;
        }
        self.nodes[node as usize].online = true;
        if wiped {
            self.nodes[node as usize].flagged = false;
        }
        self.detector.observe(self.heartbeat(node), self.now_ms);
        self.push(self.now_ms, Event::DetectorTick);
        let holding: Vec<u32> = self.holders[node as usize].iter().copied().collect();
        for shardlet in holding {
            self.refresh_degraded(shardlet, false);
        }
        // One chain of natural failures per node: re-armed when it ends, or when one
        // fired while the node was already out (a zone outage).
        if natural || self.nodes[node as usize].pending_failure {
            self.nodes[node as usize].pending_failure = false;
            self.schedule_natural_failure(node, self.now_ms);
        }
    }

    pub(super) fn zone_outage(&mut self) {
        let zones = self.config.regions * self.config.zones_per_region;
        let zone = self.rng.below(u64::from(zones)) as u32;
        let downtime_ms = self.rng.range(5.0 * 60_000.0, 90.0 * 60_000.0) as u64;
        for node in (zone..self.config.nodes).step_by(zones as usize) {
            self.push(
                self.now_ms,
                Event::NodeFail {
                    node,
                    permanent: false,
                    outage: true,
                    downtime_ms,
                },
            );
        }
        let next = self.after_years(self.config.zone_outages_per_year);
        self.push(next, Event::ZoneOutage);
    }

    // ---- prediction and evacuation ----

    pub(super) fn risk_alarm(&mut self, node: u32, false_alarm: bool) {
        if false_alarm {
            let next = self.after_years(self.config.predictor_false_alarms_per_node_year);
            self.push(
                next,
                Event::RiskAlarm {
                    node,
                    false_alarm: true,
                },
            );
            self.push(self.now_ms + FALSE_ALARM_MS, Event::RiskClear { node });
        }
        if !self.nodes[node as usize].online || self.nodes[node as usize].flagged {
            return;
        }
        self.nodes[node as usize].flagged = true;
        self.set_node_state(node, NodeState::Draining);
        self.push(self.now_ms, Event::Evacuate { node });
    }
}
