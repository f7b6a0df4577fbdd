//! The whole story on many hosts, under the workload, from a printed seed
//! (`SHARDLET_SEED=N` replays the same choices): cut a zone off and heal it, kill -9
//! the metadata leader and restart it, kill -9 a gateway (the clients fail over) and
//! restart it, add a storage node (announced, applied) and remove another. Then: every
//! acknowledged write reads back with its sha256 through both gateways, every object is
//! back at full redundancy, and every gateway and controller uses the applied layout.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shardlet_core::NodeId;
use shardlet_testkit::netns::Network;
use shardlet_testkit::poll::poll_until;
use shardlet_testkit::raw_http::{self, Request};
use shardlet_testkit::records::{redundancy_problems, shardlets, shardlets_on};
use shardlet_testkit::{shardlet_binary, wait_until};

use crate::cluster::{ManyHosts, CLUSTER_DEADLINE, NODES_AT_START, ZONES};
use crate::workload::{gateway_clients, Workload, BUCKET};

/// Acknowledged writes each phase waits for, so every phase runs under load.
const WRITES_PER_PHASE: u64 = 10;
/// How often the final redundancy check re-reads the shardlet records.
const REDUNDANCY_POLL: Duration = Duration::from_millis(500);

/// What the test did, when (printed as it goes and in full at the end).
struct Timeline {
    started: Instant,
    events: Vec<String>,
}

impl Timeline {
    fn event(&mut self, what: impl Into<String>) {
        let line = format!(
            "{:>7.1}s  {}",
            self.started.elapsed().as_secs_f64(),
            what.into()
        );
        println!("[many_hosts] {line}");
        self.events.push(line);
    }
}

fn seed() -> u64 {
    std::env::var("SHARDLET_SEED")
        .ok()
        .map(|text| {
            text.parse()
                .unwrap_or_else(|_| panic!("SHARDLET_SEED={text:?}: not a number"))
        })
        .unwrap_or_else(rand::random)
}

/// The value of the series of `name` whose labels contain `labels` (0 when absent).
fn series_value(metrics: &str, name: &str, labels: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && line.contains(labels))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn metrics_of(address: SocketAddr) -> Option<String> {
    let response = raw_http::send(address, &Request::new("GET", "/metrics"))
        .await
        .ok()?;
    (response.status == 200).then(|| String::from_utf8_lossy(&response.body).into_owned())
}

/// Nodes the controllers count in `state` (the lease holder's view: the larger).
async fn controllers_count(cluster: &ManyHosts, state: &str) -> f64 {
    let mut most: f64 = 0.0;
    for controller in &cluster.controllers {
        if let Some(text) = metrics_of(controller.address).await {
            let value = series_value(
                &text,
                "shardlet_controller_nodes",
                &format!("state=\"{state}\""),
            );
            most = most.max(value);
        }
    }
    most
}

/// The layout version each gateway (admin port) and controller reports.
async fn layout_versions(cluster: &ManyHosts) -> Vec<(String, f64)> {
    let mut versions = Vec::new();
    for gateway in &cluster.gateways {
        let admin = SocketAddr::new(gateway.address.ip(), 9090);
        let text = metrics_of(admin).await.unwrap_or_default();
        versions.push((
            gateway.name.clone(),
            series_value(&text, "shardlet_gateway_layout_version", ""),
        ));
    }
    for controller in &cluster.controllers {
        let text = metrics_of(controller.address).await.unwrap_or_default();
        versions.push((
            controller.name.clone(),
            series_value(&text, "shardlet_controller_layout_version", ""),
        ));
    }
    versions
}

async fn wait_layout_everywhere(cluster: &ManyHosts, version: u64) {
    wait_until(
        CLUSTER_DEADLINE,
        &format!("every gateway and controller uses layout version {version}"),
        || async {
            layout_versions(cluster)
                .await
                .iter()
                .all(|(_, seen)| *seen == version as f64)
        },
    )
    .await;
}

/// Node `name`'s id and admin state, as `layout show` prints them.
fn layout_entry(cluster: &ManyHosts, name: &str) -> (u32, String) {
    let shown = cluster.admin(&["admin", "layout", "show"]);
    shown
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(1) == Some(&name)).then(|| {
                let id = fields[0]
                    .parse()
                    .unwrap_or_else(|_| panic!("an id in {line:?}"));
                (id, fields.last().unwrap_or(&"?").to_string())
            })
        })
        .unwrap_or_else(|| panic!("{name} is not in the layout: {shown}"))
}

async fn wait_writes(workload: &Workload, what: &str, more: u64) {
    let target = workload.writes_acked() + more;
    wait_until(CLUSTER_DEADLINE, what, || async {
        workload.writes_acked() >= target
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_on_many_hosts_survives_a_zone_cut_kills_and_growth() {
    const TEST: &str = "a_cluster_on_many_hosts_survives_a_zone_cut_kills_and_growth";
    let binary = shardlet_binary!();
    let network = match Network::create() {
        Ok(network) => network,
        Err(reason) => {
            binary.skipped(TEST, &format!("no test network here: {reason}"));
            return;
        }
    };
    let seed = seed();
    println!("[many_hosts] seed {seed} (SHARDLET_SEED={seed} replays its choices)");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut timeline = Timeline {
        started: Instant::now(),
        events: Vec::new(),
    };
    let mut cluster = ManyHosts::start(&binary, network).await;
    timeline.event(format!(
        "formed: 3 meta members (--initial-members), {NODES_AT_START} nodes in {} zones applied as layout version 1, 2 controllers, 2 gateways; logs in {}",
        ZONES.len(),
        cluster.logs.display()
    ));

    let endpoints: Vec<String> = cluster
        .gateways
        .iter()
        .map(|gateway| format!("http://{}", gateway.address))
        .collect();
    let clients = gateway_clients(&cluster.access, &endpoints);
    wait_until(CLUSTER_DEADLINE, "the bucket is created", || async {
        clients[0].create_bucket(BUCKET).await.is_ok()
    })
    .await;
    let mut workload = Workload::start(clients.clone(), seed);
    wait_writes(&workload, "the workload writes", WRITES_PER_PHASE).await;
    timeline.event(format!("workload running: {}", workload.summary()));

    // A zone cut: its storage hosts and its metadata member's host lose the network.
    let zone = ZONES[rng.random_range(0..ZONES.len())];
    let cut: Vec<String> = cluster
        .zone_of
        .iter()
        .filter(|(_, z)| z.as_str() == zone)
        .map(|(host, _)| host.clone())
        .collect();
    let cut_nodes = cut
        .iter()
        .filter(|host| cluster.nodes.contains_key(*host))
        .count();
    let acked_before_cut = workload.writes_acked();
    let cut_names: Vec<&str> = cut.iter().map(String::as_str).collect();
    cluster.network.cut(&cut_names).unwrap();
    timeline.event(format!("cut {zone} off: {cut:?}"));
    wait_until(
        CLUSTER_DEADLINE,
        &format!("the controller declares the {cut_nodes} nodes of {zone} down"),
        || async { controllers_count(&cluster, "down").await >= cut_nodes as f64 },
    )
    .await;
    timeline.event(format!(
        "the controller declared the {cut_nodes} nodes of {zone} down"
    ));
    wait_writes(
        &workload,
        "writes continue with a zone cut off",
        WRITES_PER_PHASE,
    )
    .await;
    timeline.event(format!(
        "{} writes acknowledged during the cut",
        workload.writes_acked() - acked_before_cut
    ));
    cluster.network.heal().unwrap();
    timeline.event(format!("healed {zone}"));
    wait_until(CLUSTER_DEADLINE, "every node is up again", || async {
        controllers_count(&cluster, "down").await == 0.0
    })
    .await;
    timeline.event("every node up again");

    // kill -9 of the metadata leader.
    let leader = wait_until(CLUSTER_DEADLINE, "a metadata leader", || async {
        cluster.meta_leader()
    })
    .await;
    let position = usize::try_from(leader - 1).unwrap();
    cluster.meta[position].kill_9();
    timeline.event(format!("kill -9 meta leader {leader}"));
    let successor = wait_until(CLUSTER_DEADLINE, "another metadata leader", || async {
        cluster.meta_leader().filter(|id| *id != leader)
    })
    .await;
    wait_writes(
        &workload,
        "writes continue under the new leader",
        WRITES_PER_PHASE,
    )
    .await;
    timeline.event(format!("member {successor} leads; writes continue"));
    cluster.meta[position].restart(&cluster.network).await;
    wait_until(CLUSTER_DEADLINE, "all 3 members ready", || async {
        cluster
            .try_admin(&["admin", "meta", "status"])
            .is_ok_and(|status| {
                status
                    .lines()
                    .filter(|line| line.ends_with("  yes"))
                    .count()
                    == 3
            })
    })
    .await;
    timeline.event(format!("restarted member {leader}; 3 members ready"));

    // kill -9 of a gateway: the clients fail over to the other one.
    let victim = rng.random_range(0..2usize);
    let other = 1 - victim;
    cluster.gateways[victim].kill_9();
    timeline.event(format!("kill -9 gateway-{}", victim + 1));
    let through_other = workload.acked_by_gateway(other) + WRITES_PER_PHASE;
    wait_until(
        CLUSTER_DEADLINE,
        "writes go through the other gateway",
        || async { workload.acked_by_gateway(other) >= through_other },
    )
    .await;
    cluster.gateways[victim].restart(&cluster.network).await;
    let through_victim = workload.acked_by_gateway(victim) + 1;
    wait_until(
        CLUSTER_DEADLINE,
        "the restarted gateway serves again",
        || async { workload.acked_by_gateway(victim) >= through_victim },
    )
    .await;
    timeline.event(format!(
        "gateway-{} restarted and serving; {}",
        victim + 1,
        workload.summary()
    ));

    // Growth: a new host with a node that announces itself, applied by the operator.
    let name = format!("s{}", NODES_AT_START + 1);
    let zone = ZONES[rng.random_range(0..ZONES.len())];
    cluster.start_node(&name, zone).await;
    cluster.wait_staged(std::slice::from_ref(&name)).await;
    let version = cluster.layout_version() + 1;
    cluster.admin(&[
        "admin",
        "layout",
        "apply",
        "--version",
        &version.to_string(),
    ]);
    wait_layout_everywhere(&cluster, version).await;
    timeline.event(format!("added {name} in {zone}: layout version {version}"));

    // Removal: staged and applied; the node is draining from then on. The controller's
    // evacuation of draining nodes (main's repair worker) moves its fragments away;
    // then it is decommissioned and its host stopped.
    let meta = shardlet_meta::MetaClient::new(
        cluster.meta.iter().map(|m| m.address.to_string()).collect(),
        shardlet_testkit::meta_member::meta_client_key(&cluster.secret, "admin"),
        Default::default(),
    )
    .unwrap();
    // From the zone that just grew: RS(6,3) needs 9 nodes with at most 3 per zone, so
    // with 10 nodes a zone of 3 cannot lose one (apply refuses it, naming RS(6,3)); an
    // operator replacing a machine adds one first and then removes one in that zone.
    let candidates: Vec<String> = (1..=NODES_AT_START)
        .map(|number| format!("s{number}"))
        .filter(|node| cluster.zone_of.get(node).map(String::as_str) == Some(zone))
        .collect();
    let removed = candidates[rng.random_range(0..candidates.len())].clone();
    let (removed_id, _) = layout_entry(&cluster, &removed);
    let held_at_removal = shardlets_on(&meta, NodeId(removed_id)).await;
    assert!(
        held_at_removal > 0,
        "{removed} holds data before its removal"
    );
    cluster.admin(&["admin", "layout", "remove", &removed]);
    let version = version + 1;
    cluster.admin(&[
        "admin",
        "layout",
        "apply",
        "--version",
        &version.to_string(),
    ]);
    wait_layout_everywhere(&cluster, version).await;
    let (_, state) = layout_entry(&cluster, &removed);
    assert_eq!(state, "draining", "{removed} after its removal");
    timeline.event(format!(
        "removed {removed} (node {removed_id}): layout version {version}, {state}"
    ));
    wait_writes(
        &workload,
        "writes continue on the new layout",
        WRITES_PER_PHASE,
    )
    .await;
    wait_until(
        CLUSTER_DEADLINE,
        &format!("{removed} is drained"),
        || async { shardlets_on(&meta, NodeId(removed_id)).await == 0 },
    )
    .await;
    timeline.event(format!(
        "{removed} drained: the {held_at_removal} shardlets it held at its removal moved away"
    ));
    cluster.admin(&["admin", "layout", "remove", &removed, "--decommission"]);
    let version = version + 1;
    cluster.admin(&[
        "admin",
        "layout",
        "apply",
        "--version",
        &version.to_string(),
    ]);
    wait_layout_everywhere(&cluster, version).await;
    let (_, state) = layout_entry(&cluster, &removed);
    assert_eq!(state, "decommissioned", "{removed} after --decommission");
    cluster.nodes.get_mut(&removed).unwrap().kill_9();
    timeline.event(format!(
        "decommissioned {removed} (layout version {version}) and stopped it"
    ));
    wait_writes(
        &workload,
        "writes continue without the removed node",
        WRITES_PER_PHASE,
    )
    .await;

    workload.stop().await;
    timeline.event(format!("workload stopped: {}", workload.summary()));

    // Every acknowledged write, through both gateways.
    for (position, client) in clients.iter().enumerate() {
        let (problems, keys, on_unacked) = workload.verify(client).await;
        assert!(
            problems.is_empty(),
            "through gateway-{}: {} problems:\n{}",
            position + 1,
            problems.len(),
            problems.join("\n")
        );
        timeline.event(format!(
            "gateway-{}: {keys} keys read back with their sha256 ({on_unacked} on a write whose ack never came)",
            position + 1
        ));
    }
    // Full redundancy, in the metadata, nothing on the removed node.
    let gone = [NodeId(removed_id)];
    let give_up = tokio::time::Instant::now() + CLUSTER_DEADLINE;
    let converged = poll_until(give_up, REDUNDANCY_POLL, || async {
        let records = shardlets(&meta).await;
        redundancy_problems(&records, &gone)
            .is_empty()
            .then_some(records)
    })
    .await;
    let Ok(records) = converged else {
        let problems = redundancy_problems(&shardlets(&meta).await, &gone);
        panic!(
            "not at full redundancy within {CLUSTER_DEADLINE:?}: {} problems:\n{}",
            problems.len(),
            problems.join("\n")
        );
    };
    timeline.event(format!("{} shardlets at full redundancy", records.len()));
    let versions = layout_versions(&cluster).await;
    assert!(
        versions.iter().all(|(_, seen)| *seen == version as f64),
        "layout version {version} everywhere: {versions:?}"
    );
    timeline.event(format!("layout version {version} everywhere: {versions:?}"));
    // Two controllers, one lease: exactly one of them acts.
    let mut holders = Vec::new();
    for controller in &cluster.controllers {
        let text = metrics_of(controller.address).await.unwrap_or_default();
        if series_value(&text, "shardlet_controller_lease_active", "") == 1.0 {
            holders.push(controller.name.clone());
        }
    }
    assert_eq!(
        holders.len(),
        1,
        "one controller holds the lease: {holders:?}"
    );
    timeline.event(format!("the lease is held by {}", holders[0]));
    println!(
        "[many_hosts] timeline (seed {seed}):\n{}",
        timeline.events.join("\n")
    );
}
