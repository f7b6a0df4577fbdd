//! The simulated cluster and its event loop.
//!
//! Decisions come from the controller's own functions: [`Detector`] for Up/Suspect/Down,
//! [`heat::classify`] for classes, [`policy::decide`] and [`policy::place_new`] for
//! layouts, [`plan_transition`] + [`check_plan`] for re-encoding, [`plan_repair`] +
//! [`order_repairs`] for repair, [`plan_evacuation`] for predicted failures and
//! [`IoBudget`] for throttling. Only timing and bytes are modelled here.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use shardlet_core::{
    AccessClass, Generation, Node, NodeId, NodeState, ObjectId, PlacementMap, RedundancyLevel,
    ShardletId, Topology,
};

use super::config::SimConfig;
use super::report::Report;
use super::rng::Rng;
use crate::budget::{Grant, IoBudget, Urgency};
use crate::detector::{Detector, Heartbeat, Liveness};
use crate::domains::Domains;
use crate::heat;
use crate::policy::{self, PolicyInput, Reason, SchemeTable};
use crate::repair::{
    order_repairs, plan_evacuation, plan_repair, RepairError, RepairInput, RepairPlan,
};
use crate::transition::{check_plan, plan_transition};
use crate::view::{Action, FragmentLocation, ShardletState, StoredFragment};

const MS_PER_HOUR: u64 = 3_600_000;
const MS_PER_DAY: u64 = 24 * MS_PER_HOUR;
const MS_PER_YEAR: f64 = 365.25 * MS_PER_DAY as f64;
/// Risk the simulated predictor reports for a flagged node, and for the others.
const RISK_FLAGGED: f64 = 0.8;
const RISK_BASELINE: f64 = 0.0015;
/// A granted transition or evacuation commits this long after its grant.
const BACKGROUND_COMMIT_DELAY_MS: u64 = 60_000;
/// Evacuation plans per step before yielding to other events.
const EVACUATION_BATCH_MAX: usize = 64;
/// False alarms clear after this long.
const FALSE_ALARM_MS: u64 = 30 * MS_PER_DAY;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    NodeFail {
        node: u32,
        permanent: bool,
        outage: bool,
        downtime_ms: u64,
    },
    NodeReturn {
        node: u32,
        wiped: bool,
        natural: bool,
    },
    DetectorTick,
    Popularity {
        shardlet: u32,
    },
    Evaluate {
        shardlet: u32,
    },
    RepairDone {
        shardlet: u32,
    },
    BackgroundDone {
        shardlet: u32,
    },
    RiskAlarm {
        node: u32,
        false_alarm: bool,
    },
    RiskClear {
        node: u32,
    },
    Evacuate {
        node: u32,
    },
    ZoneOutage,
    Sample,
}

struct SimNode {
    online: bool,
    afr: f64,
    bytes_per_second: f64,
    flagged: bool,
    pending_failure: bool,
    last_failure_ms: u64,
}

struct Shardlet {
    state: ShardletState,
    rate_per_hour: f64,
    class: AccessClass,
    lost: bool,
    degraded_since_ms: Option<u64>,
    busy: bool,
    evaluate_scheduled: bool,
}

pub struct World {
    config: SimConfig,
    rng: Rng,
    now_ms: u64,
    end_ms: u64,
    queue: BinaryHeap<Reverse<(u64, u64, Event)>>,
    sequence: u64,
    nodes: Vec<SimNode>,
    topology: Topology,
    map: PlacementMap,
    domains: Domains,
    table: SchemeTable,
    detector: Detector,
    detector_tracked: BTreeSet<u32>,
    shardlets: Vec<Shardlet>,
    holders: Vec<BTreeSet<u32>>,
    destroyed: BTreeSet<(u32, NodeId)>,
    blocked: BTreeSet<u32>,
    repairs: BTreeMap<u32, RepairPlan>,
    /// In-flight transitions and evacuations (the flag marks evacuations).
    background: BTreeMap<u32, (Vec<Action>, bool)>,
    budget: IoBudget,
    cluster_bytes_per_second: f64,
    repair_cursor_ms: u64,
    background_bytes_per_hour: BTreeMap<u64, f64>,
    scale: f64,
    overhead_samples: Vec<f64>,
    degraded_ms_total: f64,
    report: Report,
}

impl World {
    pub fn new(config: &SimConfig) -> Result<Self, String> {
        let mut rng = Rng::new(config.seed);
        let zones = config.regions * config.zones_per_region;
        if config.nodes < zones || zones == 0 {
            return Err(format!("{} nodes cannot fill {zones} zones", config.nodes));
        }
        let mut topology_nodes = Vec::with_capacity(config.nodes as usize);
        let mut nodes = Vec::with_capacity(config.nodes as usize);
        for index in 0..config.nodes {
            let zone = index % zones;
            let region = zone / config.zones_per_region;
            let free_bytes = (config.node_capacity_bytes as f64 * (1.0 - config.fill)) as u64;
            topology_nodes.push(Node {
                id: NodeId(index),
                name: format!("node-{index}"),
                address: format!(
                    "10.{}.{}.{}:7480",
                    index >> 16,
                    (index >> 8) & 255,
                    index & 255
                ),
                region: format!("region-{region}"),
                zone: format!("zone-{zone}"),
                capacity_bytes: config.node_capacity_bytes,
                free_bytes,
                weight: 1.0,
                state: NodeState::Up,
                latency_us: Some(200 + rng.below(1_800)),
            });
            let model = (index as usize) % config.disk_model_afr.len().max(1);
            nodes.push(SimNode {
                online: true,
                afr: config.disk_model_afr.get(model).copied().unwrap_or(0.02),
                bytes_per_second: rng.range(
                    config.node_bytes_per_second_min,
                    config.node_bytes_per_second_max,
                ),
                flagged: false,
                pending_failure: false,
                last_failure_ms: 0,
            });
        }
        let topology = Topology::new(0, topology_nodes).map_err(|error| error.to_string())?;
        let map = PlacementMap::new(&topology);
        let domains = Domains::new(&topology);
        let table = SchemeTable::new(&config.policy, &map).map_err(|error| error.to_string())?;
        let cluster_bytes_per_second: f64 = nodes.iter().map(|n| n.bytes_per_second).sum();
        let real_user_bytes =
            f64::from(config.nodes) * config.node_capacity_bytes as f64 * config.fill / 2.0;
        let scale = real_user_bytes
            / (f64::from(config.sample_shardlets.max(1)) * config.shardlet_bytes as f64);
        let mut world = Self {
            config: config.clone(),
            rng,
            now_ms: 0,
            end_ms: u64::from(config.days) * MS_PER_DAY,
            queue: BinaryHeap::new(),
            sequence: 0,
            holders: vec![BTreeSet::new(); config.nodes as usize],
            nodes,
            topology,
            map,
            domains,
            table,
            detector: Detector::new(config.detector),
            detector_tracked: BTreeSet::new(),
            shardlets: Vec::with_capacity(config.sample_shardlets as usize),
            destroyed: BTreeSet::new(),
            blocked: BTreeSet::new(),
            repairs: BTreeMap::new(),
            background: BTreeMap::new(),
            budget: IoBudget::from_cluster_bandwidth(
                cluster_bytes_per_second,
                config.budget_share,
                0,
            ),
            cluster_bytes_per_second,
            repair_cursor_ms: 0,
            background_bytes_per_hour: BTreeMap::new(),
            scale,
            overhead_samples: Vec::new(),
            degraded_ms_total: 0.0,
            report: Report {
                seed: config.seed,
                nodes: config.nodes,
                days: config.days,
                sample_shardlets: config.sample_shardlets,
                scale,
                ..Report::default()
            },
        };
        world.populate()?;
        Ok(world)
    }

    fn populate(&mut self) -> Result<(), String> {
        for index in 0..self.config.sample_shardlets {
            let mut bytes = u128::from(self.rng.next_u64()).to_be_bytes();
            bytes[..4].copy_from_slice(&index.to_be_bytes());
            let object = ObjectId(bytes);
            let id = ShardletId::new(object, 0);
            let draw = self.rng.unit();
            let level = if draw < self.config.low_share {
                RedundancyLevel::Low
            } else if draw < self.config.low_share + self.config.high_share {
                RedundancyLevel::High
            } else {
                RedundancyLevel::Medium
            };
            let rate_per_hour = self.zipf_rate();
            let heat_config = heat::HeatConfig::default();
            let class = heat::classify(AccessClass::Cold, rate_per_hour, &heat_config);
            let target = policy::place_new(
                &self.config.policy,
                &self.table,
                &self.map,
                &self.domains,
                id.hash_key(),
                level,
                class,
            )
            .map_err(|error| error.to_string())?;
            let fragments = target
                .nodes
                .iter()
                .enumerate()
                .map(|(position, node)| FragmentLocation {
                    index: shardlet_core::FragmentIndex(position as u8),
                    node: *node,
                    generation: Generation(1),
                })
                .collect();
            let state = ShardletState {
                id,
                level,
                size_bytes: self.config.shardlet_bytes,
                scheme: target.scheme,
                generation: Generation(1),
                fragments,
                layout_changed_at_ms: 0,
            };
            for node in &target.nodes {
                self.holders[node.0 as usize].insert(index);
            }
            self.shardlets.push(Shardlet {
                state,
                rate_per_hour,
                class,
                lost: false,
                degraded_since_ms: None,
                busy: false,
                evaluate_scheduled: false,
            });
            let next = self.after_years(self.config.popularity_changes_per_year);
            self.push(next, Event::Popularity { shardlet: index });
        }
        for node in 0..self.config.nodes {
            self.schedule_natural_failure(node, 0);
            let false_alarm = self.after_years(self.config.predictor_false_alarms_per_node_year);
            self.push(
                false_alarm,
                Event::RiskAlarm {
                    node,
                    false_alarm: true,
                },
            );
        }
        let outage = self.after_years(self.config.zone_outages_per_year);
        self.push(outage, Event::ZoneOutage);
        self.push(0, Event::Sample);
        Ok(())
    }

    pub fn run(mut self) -> Result<Report, String> {
        while let Some(Reverse((at_ms, _, event))) = self.queue.pop() {
            if at_ms > self.end_ms {
                break;
            }
            self.now_ms = at_ms;
            self.report.events += 1;
            self.handle(event);
        }
        self.now_ms = self.end_ms;
        Ok(self.finish())
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::NodeFail {
                node,
                permanent,
                outage,
                downtime_ms,
            } => self.node_fail(node, permanent, outage, downtime_ms),
            Event::NodeReturn {
                node,
                wiped,
                natural,
            } => self.node_return(node, wiped, natural),
            Event::DetectorTick => self.detector_tick(),
            Event::Popularity { shardlet } => {
                let rate = self.zipf_rate();
                let heat_config = heat::HeatConfig::default();
                let entry = &mut self.shardlets[shardlet as usize];
                entry.rate_per_hour = rate;
                entry.class = heat::classify(entry.class, rate, &heat_config);
                let next = self.after_years(self.config.popularity_changes_per_year);
                self.push(next, Event::Popularity { shardlet });
                self.evaluate(shardlet);
            }
            Event::Evaluate { shardlet } => {
                self.shardlets[shardlet as usize].evaluate_scheduled = false;
                self.evaluate(shardlet);
            }
            Event::RepairDone { shardlet } => self.repair_done(shardlet),
            Event::BackgroundDone { shardlet } => self.background_done(shardlet),
            Event::RiskAlarm { node, false_alarm } => self.risk_alarm(node, false_alarm),
            Event::RiskClear { node } => {
                self.nodes[node as usize].flagged = false;
                if self.nodes[node as usize].online {
                    self.set_node_state(node, NodeState::Up);
                }
            }
            Event::Evacuate { node } => self.evacuate(node),
            Event::ZoneOutage => self.zone_outage(),
            Event::Sample => {
                let live: Vec<f64> = self
                    .shardlets
                    .iter()
                    .filter(|s| !s.lost)
                    .map(|s| s.state.scheme.storage_overhead())
                    .collect();
                if !live.is_empty() {
                    self.overhead_samples
                        .push(live.iter().sum::<f64>() / live.len() as f64);
                }
                self.push(self.now_ms + MS_PER_DAY, Event::Sample);
            }
        }
    }

    // ---- failures and detection ----

    fn schedule_natural_failure(&mut self, node: u32, from_ms: u64) {
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

    fn node_fail(&mut self, node: u32, permanent: bool, outage: bool, downtime_ms: u64) {
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

    fn node_return(&mut self, node: u32, wiped: bool, natural: bool) {
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

    fn detector_tick(&mut self) {
        let alive: Vec<u32> = self
            .detector_tracked
            .iter()
            .copied()
            .filter(|node| self.nodes[*node as usize].online)
            .collect();
        for node in &alive {
            self.detector.observe(self.heartbeat(*node), self.now_ms);
        }
        for transition in self.detector.tick(self.now_ms) {
            let node = transition.node.0;
            match transition.to {
                Liveness::Down => {
                    self.report.nodes_declared_down += 1;
                    self.set_node_state(node, NodeState::Down);
                    let holding: Vec<u32> = self.holders[node as usize].iter().copied().collect();
                    self.plan_repairs(holding);
                }
                Liveness::Up if transition.from == Liveness::Down => {
                    let state = if self.nodes[node as usize].flagged {
                        NodeState::Draining
                    } else {
                        NodeState::Up
                    };
                    self.set_node_state(node, state);
                    let blocked: Vec<u32> = std::mem::take(&mut self.blocked).into_iter().collect();
                    self.plan_repairs(blocked);
                }
                _ => {}
            }
        }
        // A node up and quiet for longer than the flap window has no history worth
        // keeping; the detector forgets it (it stands for the thousands of healthy
        // nodes whose heartbeats the simulator does not replay one by one).
        let window = self.detector.config().flap_window_ms;
        let quiet: Vec<u32> = alive
            .into_iter()
            .filter(|node| {
                self.detector.liveness(NodeId(*node)) == Some(Liveness::Up)
                    && self.now_ms - self.nodes[*node as usize].last_failure_ms > window
            })
            .collect();
        for node in quiet {
            self.detector_tracked.remove(&node);
            self.detector.forget(NodeId(node));
        }
    }

    fn heartbeat(&self, node: u32) -> Heartbeat {
        Heartbeat { node: NodeId(node) }
    }

    fn set_node_state(&mut self, node: u32, state: NodeState) {
        let epoch = self.topology.epoch() + 1;
        if let Some(next) = self.topology.with_node_state(epoch, NodeId(node), state) {
            self.topology = next;
            self.map = PlacementMap::new(&self.topology);
        }
    }

    fn zone_outage(&mut self) {
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

    // ---- data state ----

    fn available(&self, shardlet: u32, location: &FragmentLocation) -> bool {
        self.nodes[location.node.0 as usize].online
            && !self.destroyed.contains(&(shardlet, location.node))
    }

    fn check_loss(&mut self, shardlet: u32) {
        let entry = &self.shardlets[shardlet as usize];
        if entry.lost {
            return;
        }
        let intact = entry
            .state
            .usable_indexes(|location| !self.destroyed.contains(&(shardlet, location.node)));
        if intact < entry.state.scheme.required_fragments() {
            self.report.data_loss_events += 1;
            let entry = &mut self.shardlets[shardlet as usize];
            entry.lost = true;
            if let Some(since) = entry.degraded_since_ms.take() {
                self.degraded_ms_total += (self.now_ms - since) as f64;
            }
        }
    }

    /// Starts or ends a degraded interval; `repaired` records a repair time.
    fn refresh_degraded(&mut self, shardlet: u32, repaired: bool) {
        let entry = &self.shardlets[shardlet as usize];
        if entry.lost {
            return;
        }
        let degraded = entry
            .state
            .fragments
            .iter()
            .any(|location| !self.available(shardlet, location));
        let now = self.now_ms;
        let entry = &mut self.shardlets[shardlet as usize];
        match (degraded, entry.degraded_since_ms) {
            (true, None) => entry.degraded_since_ms = Some(now),
            (false, Some(since)) => {
                entry.degraded_since_ms = None;
                self.degraded_ms_total += (now - since) as f64;
                if repaired {
                    self.report
                        .repair_hours
                        .push((now - since) as f64 / MS_PER_HOUR as f64);
                }
            }
            _ => {}
        }
    }

    fn node_risk(&self, node: NodeId) -> f64 {
        if self.nodes[node.0 as usize].flagged {
            RISK_FLAGGED
        } else {
            RISK_BASELINE
        }
    }

    // ---- repair ----

    fn plan_repairs(&mut self, candidates: Vec<u32>) {
        let mut plans = Vec::new();
        for shardlet in candidates {
            let entry = &self.shardlets[shardlet as usize];
            if entry.lost || entry.busy {
                continue;
            }
            let spread = self.config.policy.spread(entry.state.level);
            let lost = |location: &FragmentLocation| !self.available(shardlet, location);
            let stored = |_: &StoredFragment| false;
            let risk = |node: NodeId| self.node_risk(node);
            let input = RepairInput {
                map: &self.map,
                domains: &self.domains,
                spread,
                lost: &lost,
                stored: &stored,
                node_risk: &risk,
            };
            match plan_repair(&entry.state, &input) {
                Ok(Some(plan)) => plans.push(plan),
                Ok(None) => {}
                // Not enough fragments readable right now (nodes offline): retry when
                // a node comes back.
                Err(RepairError::Unrecoverable { .. }) => {
                    self.blocked.insert(shardlet);
                }
                Err(RepairError::Placement(_)) => {
                    self.report.placement_failures += 1;
                    self.blocked.insert(shardlet);
                }
            }
        }
        order_repairs(&mut plans);
        // Endangered shardlets (no spare left) go at the cluster's full repair speed;
        // the rest queue behind each other at the background budget's rate.
        let nodes_online = self.nodes.iter().filter(|n| n.online).count() as f64;
        let full_speed = self.config.repair_bytes_per_second_per_node * nodes_online;
        let budget_speed = full_speed.min(self.budget.bytes_per_second());
        let mut endangered_cursor = self.now_ms;
        self.repair_cursor_ms = self.repair_cursor_ms.max(self.now_ms);
        for plan in plans {
            let Some(index) = self.index_of(plan.shardlet) else {
                continue;
            };
            let bytes = plan.bytes_moved(self.config.shardlet_bytes) as f64 * self.scale;
            let done = if plan.spare_fragments == 0 {
                endangered_cursor += (bytes / full_speed * 1000.0) as u64 + 1;
                endangered_cursor
            } else {
                self.repair_cursor_ms += (bytes / budget_speed * 1000.0) as u64 + 1;
                self.repair_cursor_ms
            };
            self.shardlets[index as usize].busy = true;
            self.repairs.insert(index, plan);
            self.push(done, Event::RepairDone { shardlet: index });
        }
    }

    fn repair_done(&mut self, shardlet: u32) {
        let Some(plan) = self.repairs.remove(&shardlet) else {
            return;
        };
        self.shardlets[shardlet as usize].busy = false;
        if self.shardlets[shardlet as usize].lost {
            return;
        }
        let still_degraded = self.shardlets[shardlet as usize]
            .degraded_since_ms
            .is_some();
        if !still_degraded {
            // The node came back before the repair finished: cancel it.
            self.report.repairs_cancelled += 1;
            return;
        }
        if self.apply(shardlet, &plan.actions) {
            self.refresh_degraded(shardlet, true);
        }
        if self.shardlets[shardlet as usize]
            .degraded_since_ms
            .is_some()
        {
            self.plan_repairs(vec![shardlet]);
        } else {
            self.evaluate(shardlet);
        }
    }

    /// Executes a plan's commit if its compare-and-set and its reads and writes would
    /// succeed now; updates the node → shardlet index. Returns whether it committed.
    fn apply(&mut self, shardlet: u32, actions: &[Action]) -> bool {
        let readable = |fragment: &StoredFragment| {
            self.nodes[fragment.node.0 as usize].online
                && !self.destroyed.contains(&(shardlet, fragment.node))
        };
        let writable = |fragment: &StoredFragment| self.nodes[fragment.node.0 as usize].online;
        let mut commit = None;
        for action in actions {
            let ok = match action {
                Action::CopyFragment { source, target, .. } => readable(source) && writable(target),
                Action::Reconstruct {
                    sources, outputs, ..
                }
                | Action::Reencode {
                    sources, outputs, ..
                } => {
                    let needed = match action {
                        Action::Reencode { from, .. } => from.required_fragments(),
                        _ => sources.len(),
                    };
                    sources.iter().filter(|s| readable(s)).count() >= needed
                        && outputs.iter().all(writable)
                }
                Action::Verify { fragments, .. } => fragments.iter().all(writable),
                Action::CommitLayout { .. } => {
                    commit = Some(action);
                    true
                }
                Action::DeleteFragment { .. } => true,
            };
            if !ok {
                return false;
            }
        }
        let Some(Action::CommitLayout {
            expected_generation,
            new_generation,
            scheme,
            new_locations,
            ..
        }) = commit
        else {
            return false;
        };
        let state = &self.shardlets[shardlet as usize].state;
        if state.generation != *expected_generation {
            return false;
        }
        let old_nodes: BTreeSet<NodeId> = state.nodes().into_iter().collect();
        let new_nodes: BTreeSet<NodeId> = new_locations.iter().map(|l| l.node).collect();
        let scheme_changed = state.scheme != *scheme;
        for node in old_nodes.difference(&new_nodes) {
            self.holders[node.0 as usize].remove(&shardlet);
            self.destroyed.remove(&(shardlet, *node));
        }
        for node in new_nodes.difference(&old_nodes) {
            self.holders[node.0 as usize].insert(shardlet);
            self.destroyed.remove(&(shardlet, *node));
        }
        let now = self.now_ms;
        let state = &mut self.shardlets[shardlet as usize].state;
        state.generation = *new_generation;
        state.scheme = *scheme;
        state.fragments = new_locations.clone();
        if scheme_changed {
            state.layout_changed_at_ms = now;
        }
        true
    }

    /// Sample shardlets are created in id order (the object id starts with the
    /// index), so a plan's id finds its position by binary search.
    fn index_of(&self, id: ShardletId) -> Option<u32> {
        self.shardlets
            .binary_search_by_key(&id, |s| s.state.id)
            .ok()
            .map(|position| position as u32)
    }

    // ---- policy and transitions ----

    fn evaluate(&mut self, shardlet: u32) {
        let entry = &self.shardlets[shardlet as usize];
        if entry.lost || entry.busy || entry.degraded_since_ms.is_some() {
            return;
        }
        let risk = |node: NodeId| self.node_risk(node);
        let input = PolicyInput {
            state: &entry.state,
            class: entry.class,
            node_risk: &risk,
            now_ms: self.now_ms,
        };
        let target = match policy::decide(
            &self.config.policy,
            &self.table,
            &self.map,
            &self.domains,
            &input,
        ) {
            Ok(target) => target,
            Err(_) => {
                self.report.placement_failures += 1;
                return;
            }
        };
        match target.reason {
            Reason::Unchanged => return,
            Reason::Dwelling => {
                let at = entry.state.layout_changed_at_ms + self.config.policy.change_dwell_ms;
                if !entry.evaluate_scheduled {
                    self.shardlets[shardlet as usize].evaluate_scheduled = true;
                    self.push(at, Event::Evaluate { shardlet });
                }
                return;
            }
            _ => {}
        }
        let Ok(plan) = plan_transition(&entry.state, &target) else {
            self.report.placement_failures += 1;
            return;
        };
        if plan.is_empty() {
            return;
        }
        if check_plan(&entry.state, &plan).is_err() {
            self.report.durability_violations += 1;
            return;
        }
        let bytes: u64 = plan
            .iter()
            .map(|a| a.bytes_moved(entry.state.size_bytes))
            .sum();
        self.start_background(shardlet, plan, bytes);
    }

    /// Charges the budget; on a grant the plan commits shortly, otherwise the
    /// shardlet is re-evaluated when the tokens will be there.
    fn start_background(&mut self, shardlet: u32, plan: Vec<Action>, bytes: u64) -> bool {
        let real_bytes = bytes as f64 * self.scale;
        match self
            .budget
            .request(real_bytes as u64, Urgency::Background, self.now_ms)
        {
            Grant::Granted => {
                *self
                    .background_bytes_per_hour
                    .entry(self.now_ms / MS_PER_HOUR)
                    .or_default() += real_bytes;
                self.shardlets[shardlet as usize].busy = true;
                self.background.insert(shardlet, (plan, false));
                self.push(
                    self.now_ms + BACKGROUND_COMMIT_DELAY_MS,
                    Event::BackgroundDone { shardlet },
                );
                true
            }
            Grant::WaitUntil { at_ms } => {
                if !self.shardlets[shardlet as usize].evaluate_scheduled {
                    self.shardlets[shardlet as usize].evaluate_scheduled = true;
                    self.push(at_ms, Event::Evaluate { shardlet });
                }
                false
            }
        }
    }

    fn background_done(&mut self, shardlet: u32) {
        let Some((plan, evacuation)) = self.background.remove(&shardlet) else {
            return;
        };
        self.shardlets[shardlet as usize].busy = false;
        if self.shardlets[shardlet as usize].lost {
            return;
        }
        if self.apply(shardlet, &plan) {
            if evacuation {
                self.report.evacuations += 1;
            } else {
                self.report.transitions += 1;
            }
        }
        self.refresh_degraded(shardlet, false);
        if self.shardlets[shardlet as usize]
            .degraded_since_ms
            .is_some()
        {
            self.plan_repairs(vec![shardlet]);
        }
    }

    // ---- prediction and evacuation ----

    fn risk_alarm(&mut self, node: u32, false_alarm: bool) {
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

    fn evacuate(&mut self, node: u32) {
        if !self.nodes[node as usize].flagged || !self.nodes[node as usize].online {
            return;
        }
        let holding: Vec<u32> = self.holders[node as usize].iter().copied().collect();
        let mut started = 0;
        for shardlet in holding {
            if started == EVACUATION_BATCH_MAX {
                break;
            }
            let entry = &self.shardlets[shardlet as usize];
            if entry.lost || entry.busy || entry.degraded_since_ms.is_some() {
                continue;
            }
            let spread = self.config.policy.spread(entry.state.level);
            let Ok(Some(plan)) =
                plan_evacuation(&entry.state, NodeId(node), &self.map, &self.domains, spread)
            else {
                continue;
            };
            let bytes: u64 = plan
                .iter()
                .map(|a| a.bytes_moved(entry.state.size_bytes))
                .sum();
            let real_bytes = bytes as f64 * self.scale;
            match self
                .budget
                .request(real_bytes as u64, Urgency::Background, self.now_ms)
            {
                Grant::Granted => {
                    *self
                        .background_bytes_per_hour
                        .entry(self.now_ms / MS_PER_HOUR)
                        .or_default() += real_bytes;
                    self.shardlets[shardlet as usize].busy = true;
                    self.background.insert(shardlet, (plan, true));
                    self.push(
                        self.now_ms + BACKGROUND_COMMIT_DELAY_MS,
                        Event::BackgroundDone { shardlet },
                    );
                    started += 1;
                }
                Grant::WaitUntil { at_ms } => {
                    self.push(at_ms, Event::Evacuate { node });
                    return;
                }
            }
        }
        if !self.holders[node as usize].is_empty() {
            self.push(
                self.now_ms + BACKGROUND_COMMIT_DELAY_MS + 1,
                Event::Evacuate { node },
            );
        }
    }

    // ---- plumbing ----

    fn zipf_rate(&mut self) -> f64 {
        let rank = 1.0 + (self.rng.unit() * self.config.zipf_ranks).floor();
        self.config.zipf_peak_per_hour * rank.powf(-self.config.zipf_exponent)
    }

    fn after_years(&mut self, per_year: f64) -> u64 {
        if per_year <= 0.0 {
            return u64::MAX;
        }
        self.now_ms + (self.rng.exponential(1.0 / per_year) * MS_PER_YEAR) as u64
    }

    fn push(&mut self, at_ms: u64, event: Event) {
        if at_ms > self.end_ms {
            return;
        }
        self.sequence += 1;
        self.queue.push(Reverse((at_ms, self.sequence, event)));
    }

    fn finish(mut self) -> Report {
        let end = self.end_ms;
        for entry in &self.shardlets {
            if let Some(since) = entry.degraded_since_ms {
                self.degraded_ms_total += (end - since) as f64;
            }
        }
        let shardlet_time = self.shardlets.len() as f64 * end.max(1) as f64;
        self.report.degraded_time_share = self.degraded_ms_total / shardlet_time;
        self.report.storage_overhead = if self.overhead_samples.is_empty() {
            0.0
        } else {
            self.overhead_samples.iter().sum::<f64>() / self.overhead_samples.len() as f64
        };
        let hour_capacity = self.cluster_bytes_per_second * 3600.0;
        self.report.max_transition_io_share = self
            .background_bytes_per_hour
            .values()
            .map(|bytes| bytes / hour_capacity)
            .fold(0.0, f64::max);
        let hours = (end / MS_PER_HOUR).max(1) as f64;
        self.report.mean_transition_io_share =
            self.background_bytes_per_hour.values().sum::<f64>() / (hour_capacity * hours);
        self.report
    }
}
