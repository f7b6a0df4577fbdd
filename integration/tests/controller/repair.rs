//! Reactive repair: a storage node killed with `kill -9` is declared down after the
//! grace period and everything it held is rebuilt elsewhere; a controller killed in the
//! middle is replaced by a standby that finishes; `admin drain` empties a node.

use shardlet_core::NodeId;

use shardlet_meta::MetaClient;
use shardlet_testkit::controller::{controller_get, controller_metric, controller_status};
use shardlet_testkit::records::{redundancy_problems, shardlets, shardlets_on};
use shardlet_testkit::{shardlet_binary, wait_until, Cluster, S3Client, ServiceProcess};

use crate::support::*;

async fn mixed_objects(s3: &S3Client, count_per_class: usize) -> Vec<Written> {
    s3.create_bucket(BUCKET).await.unwrap();
    let mut objects = write_objects(s3, "replicated", count_per_class, 200_000, None).await;
    objects
        .extend(write_objects(s3, "rs-6-3", count_per_class, 400_000, Some("STANDARD_IA")).await);
    objects.extend(write_objects(s3, "rs-4-2", count_per_class, 300_000, Some("ONEZONE_IA")).await);
    objects
}

/// Where most tests here start: 12 nodes, one controller, mixed objects written.
/// Returns the cluster, the controller, the S3 client, the objects and a meta client.
async fn start_with_objects(
    count_per_class: usize,
) -> (Cluster, ServiceProcess, S3Client, Vec<Written>, MetaClient) {
    let cluster = Cluster::start(&shardlet_binary!(), 12).await;
    let controller = cluster.start_controller("controller", &[]).await;
    let s3 = S3Client::new(cluster.access.clone());
    let objects = mixed_objects(&s3, count_per_class).await;
    let meta = cluster.meta_client();
    (cluster, controller, s3, objects, meta)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shardlet_is_back_at_full_redundancy_after_a_node_is_killed() {
    let (mut cluster, controller, s3, objects, meta) = start_with_objects(100).await;

    let victim = cluster.busiest_node().await;
    let dead = NodeId(cluster.nodes[victim].options.node_id);
    let held = shardlets_on(&meta, dead).await;
    assert!(
        held > 50,
        "node {dead} should hold many shardlets, holds {held}"
    );
    cluster.nodes[victim].kill_9();

    wait_until(
        REPAIR_DEADLINE,
        "no shardlet has a fragment on the dead node",
        || async { redundancy_problems(&shardlets(&meta).await, &[dead]).is_empty() },
    )
    .await;
    let problems = redundancy_problems(&shardlets(&meta).await, &[dead]);
    assert!(problems.is_empty(), "{problems:?}");
    // Every shardlet on the dead node was repaired, visible in /metrics: each repair
    // is counted done, or failed when its commit could not be confirmed in time on a
    // loaded machine (it is then not repeated: the record already shows it).
    let done = controller_metric(&controller, "shardlet_controller_repairs_done_total").await;
    let failed = controller_metric(&controller, "shardlet_controller_repairs_failed_total").await;
    assert!(
        done >= 1.0 && done + failed >= held as f64,
        "{done} done, {failed} failed, {held} held"
    );
    wait_until(
        REPAIR_DEADLINE,
        "no shardlet below target in /metrics",
        || async {
            controller_metric(&controller, "shardlet_controller_shardlets_below_target").await
                == 0.0
        },
    )
    .await;
    assert!(
        controller_metric(&controller, "shardlet_controller_repair_moved_bytes_total").await > 0.0
    );
    let status = controller_status(&controller).await;
    assert!(
        status.contains("\"down\""),
        "status shows the dead node down: {status}"
    );
    assert_eq!(unreadable(&s3, &objects).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_controller_finishes_a_repair_when_the_active_one_is_killed() {
    let mut cluster = Cluster::start(&shardlet_binary!(), 12).await;
    // One repair at a time, so the repair is still running when the first controller dies.
    let slow = ["--repair-in-flight-max", "1"].map(String::from);
    let mut first = cluster.start_controller("controller-first", &slow).await;
    let meta = cluster.meta_client();
    wait_until(
        REPAIR_DEADLINE,
        "the first controller holds the lease",
        || async { controller_metric(&first, "shardlet_controller_lease_active").await == 1.0 },
    )
    .await;
    let second = cluster.start_controller("controller-second", &slow).await;
    let s3 = S3Client::new(cluster.access.clone());
    let objects = mixed_objects(&s3, 100).await;
    assert_eq!(
        controller_metric(&second, "shardlet_controller_lease_active").await,
        0.0
    );

    let victim = cluster.busiest_node().await;
    let dead = NodeId(cluster.nodes[victim].options.node_id);
    cluster.nodes[victim].kill_9();
    wait_until(
        REPAIR_DEADLINE,
        "the first controller has repaired something",
        || async {
            controller_metric(&first, "shardlet_controller_repairs_done_total").await >= 1.0
        },
    )
    .await;
    first.kill_9();

    wait_until(
        REPAIR_DEADLINE,
        "the standby takes the lease and repairs everything",
        || async { redundancy_problems(&shardlets(&meta).await, &[dead]).is_empty() },
    )
    .await;
    assert_eq!(
        controller_metric(&second, "shardlet_controller_lease_active").await,
        1.0
    );
    assert!(
        controller_metric(&second, "shardlet_controller_repairs_done_total").await >= 1.0,
        "the standby finished the repair"
    );
    assert_eq!(unreadable(&s3, &objects).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_drain_moves_every_fragment_off_the_node() {
    let (cluster, controller, s3, objects, meta) = start_with_objects(30).await;
    let drained = NodeId(cluster.nodes[cluster.busiest_node().await].options.node_id);

    let admin = |arguments: &[&str]| {
        shardlet_binary!()
            .command()
            .arg("admin")
            .args(arguments)
            .args(["--meta", &cluster.meta.address.to_string()])
            .env("SHARDLET_CLUSTER_SECRET", &cluster.secret)
            .output()
            .unwrap()
    };
    wait_until(
        REPAIR_DEADLINE,
        "the controller registered every node",
        || async {
            String::from_utf8_lossy(&admin(&["nodes"]).stdout)
                .matches(" up ")
                .count()
                == 12
        },
    )
    .await;
    let output = tokio::task::spawn_blocking({
        let node = drained.0.to_string();
        let meta_address = cluster.meta.address.to_string();
        let secret = cluster.secret.clone();
        move || {
            shardlet_binary!()
                .command()
                .args([
                    "admin",
                    "drain",
                    &node,
                    "--timeout-seconds",
                    "240",
                    "--meta",
                    &meta_address,
                ])
                .env("SHARDLET_CLUSTER_SECRET", secret)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "drain failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let problems = redundancy_problems(&shardlets(&meta).await, &[drained]);
    assert!(problems.is_empty(), "{problems:?}");
    let table = String::from_utf8_lossy(&admin(&["nodes"]).stdout).into_owned();
    assert!(table.contains("draining"), "{table}");
    assert!(
        controller_metric(&controller, "shardlet_controller_evacuations_done_total").await >= 1.0
    );
    assert_eq!(unreadable(&s3, &objects).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_risk_crosses_the_threshold_is_drained_ahead_of_failure() {
    let (cluster, controller, s3, objects, meta) = start_with_objects(20).await;
    let risky = &cluster.nodes[cluster.busiest_node().await];
    let risky_id = NodeId(risky.options.node_id);

    // The node's disk rots: 100 fragments that nothing references fail their checksum
    // on read, and the node reports the failures in /health. The predictor's heuristic
    // turns 100 checksum failures within the node's window into a risk of
    // 1 − 0.99 × e^(−0.4 × ln 101) ≈ 0.84, above the 0.8 threshold.
    let client = risky.client();
    for _ in 0..100 {
        let id = shardlet_testkit::random_fragment_id();
        // Larger than a block, so it is a file this test can damage (small fragments
        // live in the node's RocksDB; their rot is covered by the node's unit tests).
        assert_eq!(client.put(&id, &vec![7u8; 100 * 1024]).await.status, 201);
        let path = risky.fragment_path(&id);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let _ = client.get(&id).await;
    }
    assert!(
        risky.client().health().await["errors"]["checksum_failures"]
            .as_u64()
            .unwrap()
            >= 100
    );

    wait_until(
        REPAIR_DEADLINE,
        "the risky node is drained and empty",
        || async { redundancy_problems(&shardlets(&meta).await, &[risky_id]).is_empty() },
    )
    .await;
    let status = controller_status(&controller).await;
    assert!(status.contains("\"draining\""), "{status}");
    assert!(
        controller_metric(&controller, "shardlet_controller_evacuations_done_total").await >= 1.0
    );
    let metrics = controller_get(&controller, "/metrics").await;
    assert!(
        metrics.contains("shardlet_controller_risk_source{source=\"heuristic\"} 1"),
        "no predictor configured: the heuristic is in force"
    );
    assert_eq!(unreadable(&s3, &objects).await, Vec::<String>::new());
}
