//! The simulated cluster: what is physically true (nodes, where each sampled
//! shardlet's fragments are, which were destroyed), the main loop that pops events
//! and hands each to the fault model ([`super::faults`]) or the controller under test
//! ([`super::controller`]), and the measurements that become the [`Report`].

use std::collections::{BTreeMap, BTreeSet};

use shardlet_core::{
    AccessClass, Generation, Node, NodeId, NodeState, ObjectId, PlacementMap, RedundancyLevel,
    ShardletId, Topology,
};

use super::config::SimConfig;
use super::events::{Event, EventQueue, MS_PER_DAY, MS_PER_HOUR, MS_PER_YEAR};
use super::report::Report;
use super::rng::Rng;
use crate::budget::IoBudget;
use crate::detector::Detector;
use crate::domains::Domains;
use crate::heat;
use crate::policy::{self, SchemeTable};
use crate::repair::RepairPlan;
use crate::view::{Action, FragmentLocation, ShardletState};

pub(super) struct SimNode {
    pub(super) online: bool,
    pub(super) afr: f64,
    pub(super) bytes_per_second: f64,
    pub(super) flagged: bool,
    pub(super) pending_failure: bool,
    pub(super) last_failure_ms: u64,
}

pub(super) struct Shardlet {
    pub(super) state: ShardletState,
    pub(super) rate_per_hour: f64,
    pub(super) class: AccessClass,
    pub(super) lost: bool,
    pub(super) degraded_since_ms: Option<u64>,
    pub(super) busy: bool,
    pub(super) evaluate_scheduled: bool,
}

pub(super) struct World {
    pub(super) config: SimConfig,
    pub(super) rng: Rng,
    pub(super) now_ms: u64,
    pub(super) end_ms: u64,
    pub(super) queue: EventQueue,
    pub(super) nodes: Vec<SimNode>,
    pub(super) topology: Topology,
    pub(super) map: PlacementMap,
    pub(super) domains: Domains,
    pub(super) table: SchemeTable,
    pub(super) detector: Detector,
    pub(super) detector_tracked: BTreeSet<u32>,
    pub(super) shardlets: Vec<Shardlet>,
    pub(super) holders: Vec<BTreeSet<u32>>,
    pub(super) destroyed: BTreeSet<(u32, NodeId)>,
    pub(super) blocked: BTreeSet<u32>,
    /// Planned repairs waiting for the scheduler, in priority order.
    pub(super) repair_queue: Vec<RepairPlan>,
    /// Running repairs, and how many each node takes part in (`scheduler`'s count).
    pub(super) repairs: BTreeMap<u32, RepairPlan>,
    pub(super) repair_in_flight: BTreeMap<NodeId, usize>,
    /// In-flight transitions and evacuations (the flag marks evacuations).
    pub(super) background: BTreeMap<u32, (Vec<Action>, bool)>,
    pub(super) budget: IoBudget,
    pub(super) cluster_bytes_per_second: f64,
    pub(super) repair_cursor_ms: u64,
    pub(super) background_bytes_per_hour: BTreeMap<u64, f64>,
    pub(super) scale: f64,
    pub(super) overhead_samples: Vec<f64>,
    pub(super) degraded_ms_total: f64,
    pub(super) report: Report,
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
            queue: EventQueue::new(u64::from(config.days) * MS_PER_DAY),
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
            repair_queue: Vec::new(),
            repairs: BTreeMap::new(),
            repair_in_flight: BTreeMap::new(),
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
        while let Some((at_ms, event)) = self.queue.pop() {
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

    // ---- data state ----

    pub(super) fn available(&self, shardlet: u32, location: &FragmentLocation) -> bool {
        self.nodes[location.node.0 as usize].online
            && !self.destroyed.contains(&(shardlet, location.node))
    }

    pub(super) fn check_loss(&mut self, shardlet: u32) {
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
    pub(super) fn refresh_degraded(&mut self, shardlet: u32, repaired: bool) {
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

    // ---- plumbing ----

    pub(super) fn zipf_rate(&mut self) -> f64 {
        let rank = 1.0 + (self.rng.unit() * self.config.zipf_ranks).floor();
        self.config.zipf_peak_per_hour * rank.powf(-self.config.zipf_exponent)
    }

    pub(super) fn after_years(&mut self, per_year: f64) -> u64 {
        if per_year <= 0.0 {
            return u64::MAX;
        }
        self.now_ms + (self.rng.exponential(1.0 / per_year) * MS_PER_YEAR) as u64
    }

    pub(super) fn push(&mut self, at_ms: u64, event: Event) {
        self.queue.push(at_ms, event);
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
