//! A storage node whose disk starts failing its fsyncs (a real fault: [`FaultyDisk`],
//! ext4 on a loop device over a tmpfs that fills up) while S3 clients write: no object
//! is acknowledged short of its redundancy, the controller treats the node as failing
//! (draining, risk 1, the reason in `/v1/status` and `shardlet admin nodes`), moves its
//! data away, and every acknowledged object reads back.

use std::collections::BTreeSet;
use std::time::Duration;

use shardlet_core::NodeId;
use shardlet_testkit::controller::{controller_metric, controller_status};
use shardlet_testkit::records::{redundancy_problems, shardlets};
use shardlet_testkit::{pattern_bytes, shardlet_binary, wait_until, Cluster, FaultyDisk, S3Client};

use crate::support::*;

/// The tmpfs behind the disk image; writeback fails once it is full.
const BACKING_BYTES: u64 = 6 * 1024 * 1024;
const IMAGE_BYTES: u64 = 64 * 1024 * 1024;
/// Objects written at most while waiting for the node's disk to fail (~120 MB, of which
/// the failing node gets about three eighths).
const OBJECTS_MAX: usize = 400;
const OBJECT_BYTES: usize = 300_000;
/// Objects written after the node refuses writes: they must all go elsewhere.
const OBJECTS_AFTER: usize = 10;
const HEALTH_CHECK_EVERY: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_fsync_failed_is_drained_and_no_write_is_acknowledged_short() {
    let disk = match FaultyDisk::create(BACKING_BYTES, IMAGE_BYTES) {
        Ok(disk) => disk,
        Err(reason) => {
            shardlet_binary!().skipped(
                "a_node_whose_fsync_failed_is_drained_and_no_write_is_acknowledged_short",
                &format!("no faulty disk here: {reason}"),
            );
            return;
        }
    };
    let mount_point = disk.mount_point.clone();
    // Declared after the disk: its processes are killed before the disk is unmounted.
    let cluster = Cluster::start_with(&shardlet_binary!(), 8, |position, options| {
        if position == 0 {
            options.parent_dir = Some(mount_point.clone());
        }
    })
    .await;
    let failing = NodeId(cluster.nodes[0].options.node_id);
    let failing_client = cluster.nodes[0].client();
    // Predictive evacuation off: the node must be drained for refusing writes, not
    // because its risk crossed a threshold.
    let controller = cluster
        .start_controller("controller", &flags(&[("--evacuate-risk-above", "0")]))
        .await;
    let s3 = S3Client::new(cluster.access.clone());
    s3.create_bucket(BUCKET).await.unwrap();
    let meta = cluster.meta_client();

    // Write until the node on the faulty disk says it refuses writes. Every PUT must
    // succeed: the gateway replaces a node that refuses a fragment.
    let mut objects = Vec::new();
    let mut refusing = false;
    for number in 0..OBJECTS_MAX {
        let key = format!("before/{number:04}");
        let bytes = pattern_bytes(OBJECT_BYTES, number as u64);
        s3.put_object(BUCKET, &key, bytes.clone(), None)
            .await
            .unwrap_or_else(|error| panic!("PUT {key}: {error}\n{}", cluster.logs()));
        objects.push(Written { key, bytes });
        if number % HEALTH_CHECK_EVERY == HEALTH_CHECK_EVERY - 1
            && !failing_client.health().await["writes_refused"].is_null()
        {
            refusing = true;
            break;
        }
    }
    assert!(
        refusing,
        "node {failing} never refused writes after {OBJECTS_MAX} objects"
    );
    let reason = failing_client.health().await["writes_refused"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for number in 0..OBJECTS_AFTER {
        let key = format!("after/{number:04}");
        let bytes = pattern_bytes(OBJECT_BYTES, 10_000 + number as u64);
        s3.put_object(BUCKET, &key, bytes.clone(), None)
            .await
            .unwrap_or_else(|error| panic!("PUT {key} after the fence: {error}"));
        objects.push(Written { key, bytes });
    }

    // Nothing acknowledged short of its redundancy: every shardlet has its full width,
    // and every fragment a record places on the failing node is one that node holds
    // (the gateway records a fragment only once its node acknowledged it durable).
    let records = shardlets(&meta).await;
    let problems = redundancy_problems(&records, &[]);
    assert!(problems.is_empty(), "{problems:?}");
    let held: BTreeSet<String> = cluster.nodes[0]
        .stored_fragments()
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let unheld: Vec<String> = records
        .iter()
        .flat_map(|record| {
            record
                .fragments
                .iter()
                .filter(|location| location.node == failing)
                .map(|location| record.fragment_id(location).to_string())
                .collect::<Vec<_>>()
        })
        .filter(|id| !held.contains(id))
        .collect();
    assert!(
        unheld.is_empty(),
        "records place fragments the failing node does not hold: {unheld:?}"
    );

    // The controller treats the node as failing, visibly.
    wait_until(
        Duration::from_secs(120),
        "the controller drains the node that refuses writes and says why",
        || async {
            let status: serde_json::Value =
                serde_json::from_str(&controller_status(&controller).await).unwrap_or_default();
            status["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|node| {
                    node["id"] == failing.0
                        && node["state"] == "draining"
                        && !node["writes_refused"].is_null()
                        && node["risk"] == 1.0
                })
        },
    )
    .await;
    assert_eq!(
        controller_metric(&controller, "shardlet_controller_nodes_refusing_writes").await,
        1.0
    );
    let table = cluster.admin(&["admin", "nodes"]);
    assert!(
        table.contains("refuses writes") && table.contains("draining"),
        "{table}"
    );

    // Its data moves away (copied from it: reads still work), and everything reads back.
    wait_until(
        REPAIR_DEADLINE,
        "no shardlet has a fragment on the failing node",
        || async { redundancy_problems(&shardlets(&meta).await, &[failing]).is_empty() },
    )
    .await;
    assert_eq!(unreadable(&s3, &objects).await, Vec::<String>::new());
    println!(
        "{} objects written, node {failing} refused writes after {} ({reason}) and was emptied",
        objects.len(),
        objects.len() - OBJECTS_AFTER
    );
}
