//! Slowloris against every server of a running cluster at once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shardlet_meta::ReadConsistency;
use shardlet_testkit::cluster::{Cluster, ClusterOptions};
use shardlet_testkit::controller::controller_status;
use shardlet_testkit::slowloris::Attack;
use shardlet_testkit::{
    pattern_bytes, random_fragment_id, shardlet_binary, wait_until, S3Client, ServiceProcess,
};

/// Each server holds at most this many connections...
const CONNECTIONS_MAX: usize = 128;
/// ...and each is attacked by this many idle and this many trickling ones (200 > 128,
/// so the servers must evict to let anyone in).
const IDLE_PER_SERVER: usize = 100;
const TRICKLING_PER_SERVER: usize = 100;
/// Idle connections per server in the second, smaller attack (below the limit).
const SMALL_ATTACK: usize = 20;
/// Generous: 2 shared cores, a cluster and 800 attacking connections.
const DEADLINE: Duration = Duration::from_secs(120);
/// The controller's down grace in the kit's fast flags (`--down-grace-seconds 3`).
const DOWN_GRACE_MS: u64 = 3_000;

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// The value of `family`'s sample whose labels include `label` (e.g.
/// `reason="evicted_at_limit"`), 0 when absent.
fn sample(metrics: &str, family: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(family) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The controller's view of node `id`: (state, last heartbeat), from `/v1/status`
/// (signed with the `controller` key, as `shardlet admin nodes` signs it).
async fn node_status(controller: &ServiceProcess, id: u32) -> (String, u64, bool) {
    let status: serde_json::Value =
        serde_json::from_str(&controller_status(controller).await).expect("status JSON");
    let node = status["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|node| node["id"].as_u64() == Some(u64::from(id)))
        .expect("the attacked node in the controller's status");
    (
        node["state"].as_str().unwrap_or_default().to_string(),
        node["last_heartbeat_unix_ms"].as_u64().unwrap_or(0),
        status["active"].as_bool().unwrap_or(false),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_port_keeps_serving_signed_requests_during_a_slowloris_attack() {
    let server_arguments = [
        "--connections-max",
        &CONNECTIONS_MAX.to_string(),
        "--header-read-timeout-seconds",
        "2",
    ]
    .map(String::from)
    .to_vec();
    let cluster = Cluster::start_with_options(
        &shardlet_binary!(),
        ClusterOptions {
            node_count: 4,
            server_arguments,
        },
        |_, _| {},
    )
    .await;
    let controller = cluster.start_controller("controller", &[]).await;
    let attacked_node = &cluster.nodes[0];
    let attacked_id = attacked_node.options.node_id;
    wait_until(
        DEADLINE,
        "the controller holds the lease and sees the node up",
        || async {
            let (state, _, active) = node_status(&controller, attacked_id).await;
            active && state == "up"
        },
    )
    .await;
    let s3 = S3Client::new(cluster.access.clone());
    s3.create_bucket("attacked").await.unwrap();
    let meta = cluster.meta_client();

    let targets = [
        ("gateway", cluster.gateway.address),
        ("meta", cluster.meta.address),
        ("node", attacked_node.address),
        ("controller", controller.address),
    ];
    let attacks: Vec<(&str, Attack)> = targets
        .iter()
        .map(|(name, address)| {
            (
                *name,
                Attack::start(*address, IDLE_PER_SERVER, TRICKLING_PER_SERVER),
            )
        })
        .collect();
    let attack_started_ms = unix_ms_now();

    // Every server hangs up on idle and trickling strangers by itself.
    wait_until(
        DEADLINE,
        "every server closed idle and trickling connections",
        || {
            let closed = attacks.iter().all(|(_, attack)| {
                attack.idle_closed_by_server() > 0 && attack.trickling_closed_by_server() > 0
            });
            async move { closed }
        },
    )
    .await;

    // Signed requests to each server are served while the attack goes on.
    for round in 0..3u64 {
        let key = format!("object-{round}");
        let bytes = pattern_bytes(200_000, round);
        // A new connection for each request: a server at its connection limit evicts idle
        // connections, and the attack keeps it there, so a keep-alive connection pooled
        // from an earlier request may be closed just as it is reused (a PUT is not
        // retried by the client then). Fresh connections are what this test measures.
        let s3 = S3Client::new(cluster.access.clone());
        s3.put_object("attacked", &key, bytes.clone(), None)
            .await
            .unwrap_or_else(|error| panic!("S3 PUT under attack: {error:?}"));
        let read = S3Client::new(cluster.access.clone())
            .get_object("attacked", &key, None)
            .await
            .unwrap_or_else(|error| panic!("S3 GET under attack: {error:?}"));
        assert!(read == bytes, "S3 GET under attack returned other bytes");

        let node = attacked_node.client();
        let fragment = random_fragment_id();
        let stored = node.put(&fragment, b"under attack").await;
        assert_eq!(stored.status, 201, "node PUT under attack");
        let fetched = node.get(&fragment).await;
        assert_eq!(fetched.status, 200, "node GET under attack");
        assert_eq!(fetched.body, b"under attack");

        let meta_key = format!("attack/{round}");
        meta.put(meta_key.as_bytes().to_vec(), b"value".to_vec())
            .await
            .expect("meta put under attack");
        let value = meta
            .get(meta_key.as_bytes().to_vec(), ReadConsistency::Linearizable)
            .await
            .expect("meta get under attack")
            .expect("the key just written");
        assert_eq!(value.value.as_slice(), b"value");

        // A signed `/v1/status` on a new connection per request: each must get in.
        assert!(controller_status(&controller).await.contains("nodes"));
    }

    // The controller keeps hearing the attacked node past its down grace, and never
    // declares it down (which would start repairing everything it holds).
    wait_until(
        DEADLINE,
        "the controller heard the attacked node more than its down grace into the attack",
        || async {
            let (state, heartbeat_ms, active) = node_status(&controller, attacked_id).await;
            assert_ne!(state, "down", "the attacked node was declared down");
            active && heartbeat_ms > attack_started_ms + DOWN_GRACE_MS
        },
    )
    .await;

    for (name, attack) in &attacks {
        assert_eq!(
            attack.trickling_answered(),
            0,
            "{name} answered a head that never completed"
        );
    }
    drop(attacks);

    // Below the limit nothing is evicted: idle strangers are closed by the header-read
    // timeout alone.
    let small: Vec<Attack> = targets
        .iter()
        .map(|(_, address)| Attack::start(*address, SMALL_ATTACK, 0))
        .collect();
    wait_until(
        DEADLINE,
        "every server closed idle connections below its limit",
        || {
            let closed = small
                .iter()
                .all(|attack| attack.idle_closed_by_server() >= SMALL_ATTACK as u64);
            async move { closed }
        },
    )
    .await;
    drop(small);

    // The servers counted what they did to the strangers: evictions at the limit and
    // closes for the header-read timeout.
    let scraped = [
        ("shardlet_gateway", cluster.gateway_metrics().await),
        ("shardlet_meta", cluster.meta.get_text("/metrics").await),
        ("shardlet_node", attacked_node.client().metrics().await),
        ("shardlet_controller", controller.get_text("/metrics").await),
    ];
    for (prefix, metrics) in &scraped {
        let family = format!("{prefix}_connections_closed_total");
        for reason in ["header_read_timeout", "evicted_at_limit"] {
            assert!(
                sample(metrics, &family, &format!("reason=\"{reason}\"")) > 0.0,
                "{family}{{reason={reason}}} counted nothing:\n{metrics}"
            );
        }
    }
}
