//! Failure detection: the controller probes every storage node's `/health` once per
//! `probe_interval` and feeds the answers to the pure [`Detector`] as heartbeats.
//!
//! Why probe instead of having nodes push: the storage node stays ignorant of the
//! controller and of meta-raft (it only serves fragments), a probe measures the path
//! the controller's repairs will use, and a standby controller keeps its detector warm
//! by probing too, so it can act at once when it takes the lease. The cost is one
//! small HTTP request per node per second from one process, fine for thousands of
//! nodes; beyond that, nodes would push.
//!
//! State changes are written to the nodes' [`NodeRecord`]s (only while holding the
//! lease); `Draining` and `Decommissioned` are set by operators and kept unless the
//! node goes down.
//!
//! A node whose `/health` says it refuses writes (an fsync failed on its disk: see the
//! storage node's `write_fence.rs`) is failing: it is drained at once, whatever the
//! predictive-evacuation threshold (a draining node takes no new fragments, so neither
//! repairs nor transitions target it, and the repair worker copies its fragments away
//! while it still serves reads), its risk counts as 1.0, and the reason is recorded in
//! its node record (`shardlet admin nodes`) and shown in `/v1/status`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shardlet_core::{NodeId, NodeState};
use shardlet_meta::{Batch, Condition, MetaClient};
use shardlet_model::schema::{encode, keys};
use shardlet_model::Metadata;
use shardlet_predictor_api::client::ClientError;
use tokio::sync::Mutex;

use super::clock::unix_ms_now;
use super::cluster::Cluster;
use super::lease::Lease;
use super::metrics::{Metrics, NODE_STATES};
use super::predictor::{NodeWindows, Predictor};
use super::shared::NodeHealthView;
use super::worker::{Pace, Pass, Stop, Worker};
use crate::detector::{Detector, Heartbeat, Liveness};
use crate::risk::{PredictorScore, RiskAssessor, RiskSource};

/// Node records are rewritten at least this often (last heartbeat, used bytes).
const RECORD_REFRESH: Duration = Duration::from_secs(5);
/// The predictor is asked at most this often; also the interval of one row of a node's
/// health window.
const PREDICTOR_INTERVAL: Duration = Duration::from_secs(10);

/// How detection runs (from the daemon's flags).
pub struct DetectionSettings {
    pub detector: Detector,
    pub probe_interval: Duration,
    /// The sidecar's URL and the `predictor` key that signs to it.
    pub predictor: Option<(String, shardlet_auth::Key)>,
    /// How the predictor is reached (its URL's scheme must match).
    pub transport: shardlet_net::Transport,
    pub evacuate_risk: Option<f64>,
}

pub struct Detection {
    pub cluster: Arc<Cluster>,
    pub meta: Arc<MetaClient>,
    pub metadata: Metadata,
    pub lease: Arc<Lease>,
    pub metrics: Arc<Metrics>,
    pub probe_interval: Duration,
    /// A node whose risk reaches this is drained ahead of failure (`None`: never).
    pub evacuate_risk: Option<f64>,
    predictor: Mutex<Option<Predictor>>,
    pub view: Arc<std::sync::Mutex<NodeHealthView>>,
    detector: Mutex<Detector>,
    /// Nodes the detector has been introduced to (see `introduce_new_nodes`).
    met: Mutex<std::collections::BTreeSet<shardlet_core::NodeId>>,
    /// Every node's health as schema rows, for the predictor and the heuristic.
    windows: Mutex<NodeWindows>,
    risk: Mutex<RiskAssessor>,
    /// When node records were last rewritten in full, and the predictor last asked.
    last_refresh_ms: AtomicU64,
    last_prediction_ms: AtomicU64,
}

impl Detection {
    pub fn new(
        cluster: Arc<Cluster>,
        meta: Arc<MetaClient>,
        lease: Arc<Lease>,
        metrics: Arc<Metrics>,
        settings: DetectionSettings,
    ) -> anyhow::Result<Self> {
        let DetectionSettings {
            detector,
            probe_interval,
            predictor,
            transport,
            evacuate_risk,
        } = settings;
        let predictor = match predictor {
            Some((url, key)) => Some(Predictor::new(&url, key, transport)?),
            None => None,
        };
        Ok(Self {
            cluster,
            metadata: Metadata::new(meta.clone()),
            meta,
            lease,
            metrics,
            probe_interval,
            evacuate_risk,
            predictor: Mutex::new(predictor),
            view: Arc::new(std::sync::Mutex::new(NodeHealthView::default())),
            detector: Mutex::new(detector),
            met: Mutex::new(Default::default()),
            windows: Mutex::new(NodeWindows::default()),
            // Scores older than three predictor rounds are stale: the heuristic rules.
            risk: Mutex::new(RiskAssessor::new(3 * PREDICTOR_INTERVAL.as_millis() as u64)),
            last_refresh_ms: AtomicU64::new(0),
            last_prediction_ms: AtomicU64::new(0),
        })
    }

    async fn probe_all(&self) {
        let timeout = self.probe_interval.max(Duration::from_millis(500));
        let members = self.cluster.members();
        let probes = members.topology.nodes().iter().map(|node| async move {
            let result = match self.cluster.client(node.id) {
                Ok(client) => tokio::time::timeout(timeout, client.health()).await.ok(),
                Err(_) => None,
            };
            let report = result.and_then(Result::ok);
            let report = match report {
                Some(report) if !answers_as(&report, &node.name) => {
                    tracing::warn!(node = %node.id, expected = %node.name, answered = %report.name, address = %node.address, "another storage node answers at this node's address; not a heartbeat");
                    None
                }
                other => other,
            };
            (node.id, report)
        });
        let results = futures::future::join_all(probes).await;
        let now = unix_ms_now();
        let mut detector = self.detector.lock().await;
        let mut windows = self.windows.lock().await;
        for (node, report) in results {
            let Some(report) = report else {
                self.metrics.probes_failed_total.inc();
                continue;
            };
            detector.observe(Heartbeat { node }, now);
            if let Ok(view) = self.view.lock().as_mut() {
                view.last_heartbeat_unix_ms.insert(node, now);
                match &report.writes_refused {
                    Some(refused) => {
                        if view
                            .writes_refused
                            .insert(node, refused.reason.clone())
                            .is_none()
                        {
                            tracing::error!(%node, reason = %refused.reason, "node refuses writes after a failed fsync; draining it");
                        }
                    }
                    None => {
                        view.writes_refused.remove(&node);
                    }
                }
                self.metrics
                    .nodes_refusing_writes
                    .set(view.writes_refused.len() as i64);
            }
            windows.observe(node, report);
        }
    }

    /// Ticks the detector and writes changed states (and, every `RECORD_REFRESH`, the
    /// last heartbeat) to meta-raft. Only the lease holder writes.
    async fn write_states(&self, now: u64, refresh: bool) -> anyhow::Result<()> {
        let records = self.cluster.node_records(&self.metadata).await?;
        self.introduce_new_nodes(&records, now).await;
        let transitions = self.detector.lock().await.tick(now);
        for transition in &transitions {
            tracing::info!(node = %transition.node, from = ?transition.from, to = ?transition.to, "node liveness changed");
        }
        let (risk, refused) = self
            .view
            .lock()
            .map(|view| (view.risk.clone(), view.writes_refused.clone()))
            .unwrap_or_default();
        let mut counts: BTreeMap<&'static str, i64> = BTreeMap::new();
        let mut states: BTreeMap<NodeId, &'static str> = BTreeMap::new();
        let detector = self.detector.lock().await;
        let heartbeats = self
            .view
            .lock()
            .map(|view| view.last_heartbeat_unix_ms.clone())
            .unwrap_or_default();
        for (node, versioned) in &records {
            let current = versioned.record.state;
            let next = match (detector.liveness(*node), current) {
                // Never heard of since start and recorded Down: stays Down.
                (None, state) => state,
                (Some(_), NodeState::Decommissioned) => NodeState::Decommissioned,
                (Some(Liveness::Down), _) => NodeState::Down,
                (Some(Liveness::Suspect), NodeState::Draining) => NodeState::Draining,
                (Some(Liveness::Suspect), _) => NodeState::Suspect,
                (Some(Liveness::Up), NodeState::Draining) => NodeState::Draining,
                (Some(Liveness::Up), _) => NodeState::Up,
            };
            // Predictive evacuation: a live node whose risk crossed the threshold is
            // drained while it still serves reads (copies, no reconstruction).
            let risky = self
                .evacuate_risk
                .zip(risk.get(node))
                .is_some_and(|(threshold, risk)| *risk >= threshold);
            let refusal = refused.get(node);
            let next = match next {
                // A node that cannot make writes durable is failing: drained whatever
                // the evacuation threshold (suspect ones too, once they answer again).
                NodeState::Up | NodeState::Suspect if refusal.is_some() => NodeState::Draining,
                NodeState::Up if risky => {
                    tracing::warn!(%node, risk = ?risk.get(node), "node risk crossed the evacuation threshold; draining it");
                    NodeState::Draining
                }
                next => next,
            };
            // The reason stays in the record once written (it explains the drain).
            let recorded_refusal = refusal
                .cloned()
                .or_else(|| versioned.record.writes_refused.clone());
            let refusal_changed = recorded_refusal != versioned.record.writes_refused;
            *counts.entry(state_label(next)).or_default() += 1;
            states.insert(*node, state_label(next));
            let heartbeat = heartbeats.get(node).copied();
            let stale_heartbeat =
                heartbeat.is_some_and(|at| at > versioned.record.last_heartbeat_unix_ms) && refresh;
            if (next == current && !stale_heartbeat && !refusal_changed) || !self.lease.is_active()
            {
                continue;
            }
            let mut record = versioned.record.clone();
            record.state = next;
            record.writes_refused = recorded_refusal;
            if let Some(at) = heartbeat {
                record.last_heartbeat_unix_ms = record.last_heartbeat_unix_ms.max(at);
            }
            let key = keys::node(*node);
            // Conditioned on the version read: an operator's concurrent `drain` wins
            // and is seen next round.
            let batch =
                Batch::of_put(key.clone(), encode(&record)).when(Condition::VersionEquals {
                    key: key.into(),
                    version: versioned.version,
                });
            let batch = match self.lease.fence_condition() {
                Some(fence) => batch.when(fence),
                None => continue,
            };
            if let shardlet_meta::BatchOutcome::ConditionFailed { .. } =
                self.meta.batch(batch).await?
            {
                // An operator changed the record meanwhile, or the lease moved: the
                // next round sees the new record.
                continue;
            }
            if next != current {
                tracing::info!(node = %node, from = ?current, to = ?next, "node state written");
                self.metrics
                    .node_transitions_total
                    .with_label_values(&[state_label(next)])
                    .inc();
            }
        }
        for state in NODE_STATES {
            self.metrics
                .nodes
                .with_label_values(&[state])
                .set(counts.get(state).copied().unwrap_or(0));
        }
        self.publish_node_info(&states);
        Ok(())
    }

    /// Node risk: the predictor's probability when it answers, else the heuristic.
    async fn update_risk(&self, now: u64) {
        let mut windows = self.windows.lock().await;
        windows.close_interval();
        let mut assessor = self.risk.lock().await;
        if let Some(predictor) = self.predictor.lock().await.as_mut() {
            match predictor.score(&windows).await {
                Ok(scores) => {
                    for (node, probability) in scores {
                        assessor.record_score(
                            node,
                            PredictorScore {
                                probability,
                                scored_at_ms: now,
                            },
                        );
                    }
                }
                Err(error) => {
                    if matches!(error, ClientError::Unauthenticated(_)) {
                        self.metrics.predictor_answers_refused_total.inc();
                    }
                    tracing::warn!(%error, "predictor unavailable; node risk from the heuristic");
                }
            }
        }
        let mut risks = BTreeMap::new();
        let mut node_risks: BTreeMap<String, (f64, RiskSource)> = BTreeMap::new();
        let mut source = RiskSource::Heuristic;
        let refused = self
            .view
            .lock()
            .map(|view| view.writes_refused.clone())
            .unwrap_or_default();
        let members = self.cluster.members();
        for node in members.topology.nodes() {
            let (risk, node_source) = assessor.node_risk(node.id, &windows.window(node.id), now);
            // A node that refuses writes is failing, whatever its counters say.
            let risk = if refused.contains_key(&node.id) {
                1.0
            } else {
                risk
            };
            if node_source != RiskSource::Heuristic {
                source = node_source;
            }
            risks.insert(node.id, risk);
            node_risks.insert(node.name.clone(), (risk, node_source));
        }
        // Every node's series is rewritten each update: a node that left the layout, or
        // whose source changed, loses its old series (bounded by the layout's size).
        self.metrics.node_risk.reset();
        for (node, (risk, node_source)) in &node_risks {
            self.metrics
                .node_risk
                .with_label_values(&[node.as_str(), node_source.label()])
                .set(*risk);
        }
        for candidate in [RiskSource::Predictor, RiskSource::Heuristic] {
            self.metrics
                .risk_source
                .with_label_values(&[candidate.label()])
                .set(i64::from(candidate == source));
        }
        if let Ok(mut view) = self.view.lock() {
            view.risk = risks;
            view.source = Some(source);
        }
    }
}

impl Detection {
    /// `node_info{node, zone, region, state}` = 1 for every node of the layout, with
    /// the state just decided (the layout's own for a node without a record yet). The
    /// old series go first: a node whose state changed must not be counted twice.
    fn publish_node_info(&self, states: &BTreeMap<NodeId, &'static str>) {
        let members = self.cluster.members();
        self.metrics.node_info.reset();
        for node in members.topology.nodes() {
            let state = states
                .get(&node.id)
                .copied()
                .unwrap_or_else(|| state_label(node.state));
            self.metrics
                .node_info
                .with_label_values(&[&node.name, &node.zone, &node.region, state])
                .set(1);
        }
    }

    /// Nodes of the layout the detector has not met yet (at start, or added by a new
    /// layout version) are presumed alive from now on, unless their record says Down:
    /// one that never answers goes down after the grace, like any other.
    async fn introduce_new_nodes(
        &self,
        records: &BTreeMap<
            shardlet_core::NodeId,
            shardlet_model::Stored<shardlet_model::schema::NodeRecord>,
        >,
        now: u64,
    ) {
        let members = self.cluster.members();
        let mut met = self.met.lock().await;
        let mut detector = self.detector.lock().await;
        for node in members.topology.nodes() {
            if !met.insert(node.id) {
                continue;
            }
            let down = records
                .get(&node.id)
                .is_some_and(|r| r.record.state == NodeState::Down);
            if !down {
                detector.observe(Heartbeat { node: node.id }, now);
            }
        }
    }
}

/// Whether a `/health` report comes from the node named `name`: the address in the
/// layout may now be another node's (one moved, another took its address). `/health`
/// is unsigned, so without this a stranger's answers would keep the node alive while
/// every signed request to it fails. Nodes that predate names report none: trusted.
fn answers_as(report: &shardlet_core::health_report::HealthReport, name: &str) -> bool {
    report.name.is_empty() || report.name == name
}

pub fn state_label(state: NodeState) -> &'static str {
    match state {
        NodeState::Up => "up",
        NodeState::Suspect => "suspect",
        NodeState::Down => "down",
        NodeState::Draining => "draining",
        NodeState::Decommissioned => "decommissioned",
    }
}

/// One pass: probe every node, write changed states (every `RECORD_REFRESH` also the
/// heartbeats), and every `PREDICTOR_INTERVAL` update node risk.
#[async_trait]
impl Worker for Detection {
    fn name(&self) -> &'static str {
        "detection"
    }

    fn pace(&self) -> Pace {
        Pace::Every(self.probe_interval)
    }

    /// Nodes already recorded Down stay Down until they answer; every other node is
    /// presumed alive now, so one that never answers goes down after the grace.
    async fn start(&self) {
        match self.cluster.node_records(&self.metadata).await {
            Ok(records) => self.introduce_new_nodes(&records, unix_ms_now()).await,
            Err(error) => tracing::warn!(%error, "cannot read node records at start"),
        }
    }

    async fn step(&self, _: &Stop) -> anyhow::Result<Pass> {
        self.probe_all().await;
        let now = unix_ms_now();
        let last_refresh_ms = self.last_refresh_ms.load(Ordering::Relaxed);
        let refresh = now.saturating_sub(last_refresh_ms) >= RECORD_REFRESH.as_millis() as u64;
        let written = self.write_states(now, refresh).await;
        if written.is_ok() && refresh {
            self.last_refresh_ms.store(now, Ordering::Relaxed);
        }
        let last_prediction_ms = self.last_prediction_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last_prediction_ms) >= PREDICTOR_INTERVAL.as_millis() as u64 {
            self.update_risk(now).await;
            self.last_prediction_ms.store(now, Ordering::Relaxed);
        }
        // Probing and risk went on regardless: only the state write failed.
        written.map_err(|error| error.context("cannot write node states"))?;
        Ok(Pass::Worked)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use shardlet_core::health_report::{DiskReport, ErrorReport, FragmentReport, HealthReport};

    use super::answers_as;

    fn report(name: &str) -> HealthReport {
        HealthReport {
            node_id: 0,
            version: "0.1.0".into(),
            uptime_seconds: 1,
            cpu_utilization: 0.0,
            memory_used_bytes: 1,
            memory_total_bytes: 2,
            disk: DiskReport::default(),
            errors: ErrorReport::default(),
            smart: None,
            fragments: FragmentReport::default(),
            writes_refused: None,
            name: name.into(),
        }
    }

    #[test]
    fn only_the_named_node_or_one_that_predates_names_counts_as_a_heartbeat() {
        assert!(answers_as(&report("eu-west-a-1"), "eu-west-a-1"));
        assert!(answers_as(&report(""), "eu-west-a-1"));
        assert!(!answers_as(&report("eu-west-a-2"), "eu-west-a-1"));
    }
}
