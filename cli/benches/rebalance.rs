//! Rebalance benchmark: twelve real storage nodes holding `SHARDLET_BENCH_REBALANCE_BYTES`
//! of user data (default 1 GiB, written through the S3 gateway: half 3 replicas, half
//! RS(6,3)), then one node added (layout version 2) and, once that rebalance is done,
//! the busiest node drained (version 3). For each: bytes moved against the ideal (1/13
//! of the stored bytes when adding; what the node held when draining), the time, and
//! the MB/s, next to the machine's loopback TCP and synced disk write rates measured in
//! the same run.
//!
//! Bytes moved are counted from the records, exactly: a fragment whose node is not in
//! the shardlet's node set any more was copied once (its size is in the record). The
//! time runs from the apply to the moment the controller reports nothing left (for the
//! drain: the node also holds nothing). Every process is killed by PID when its cluster
//! is dropped, also on panic. The last line is machine-readable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use futures::StreamExt;
use shardlet_core::NodeId;
use shardlet_meta::MetaClient;
use shardlet_testkit::bench::loopback;
use shardlet_testkit::controller::controller_metric;
use shardlet_testkit::poll::poll_until;
use shardlet_testkit::records::{redundancy_problems, shardlets, shardlets_on};
use shardlet_testkit::{
    pattern_bytes, shardlet_binary, Cluster, NodeOptions, NodeProcess, S3Client, ServiceProcess,
};

const MIB: u64 = 1024 * 1024;
const BUCKET: &str = "rebalance-bench";
const OBJECT_BYTES: u64 = 32 * MIB;
const UPLOAD_CONCURRENCY: usize = 4;
const LOOPBACK_BYTES: u64 = 1024 * MIB;
const DISK_BYTES: u64 = 256 * MIB;
/// A rebalance slower than this is reported as a failure, not waited for forever.
const REBALANCE_DEADLINE: Duration = Duration::from_secs(3600);
/// How often the end is checked: the resolution of the measured time.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Per shardlet: (node, fragment bytes) of each fragment.
type Placements = BTreeMap<String, Vec<(NodeId, u64)>>;

fn main() {
    let data_bytes: u64 = std::env::var("SHARDLET_BENCH_REBALANCE_BYTES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1024 * MIB);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(data_bytes));
}

async fn placements(meta: &MetaClient) -> Placements {
    shardlets(meta)
        .await
        .into_iter()
        .map(|record| {
            let fragments = record
                .fragments
                .iter()
                .map(|f| (f.node, f.size_bytes))
                .collect();
            (record.id.to_string(), fragments)
        })
        .collect()
}

/// Bytes of fragments whose node left the shardlet's node set between two looks.
fn bytes_moved(before: &Placements, after: &Placements) -> u64 {
    before
        .iter()
        .filter_map(|(id, fragments)| Some((fragments, after.get(id)?)))
        .map(|(old, new)| {
            old.iter()
                .filter(|(node, _)| !new.iter().any(|(now, _)| now == node))
                .map(|(_, bytes)| bytes)
                .sum::<u64>()
        })
        .sum()
}

fn stored(placements: &Placements) -> u64 {
    placements.values().flatten().map(|(_, bytes)| bytes).sum()
}

async fn rebalanced(controller: &ServiceProcess, version: f64) -> bool {
    controller_metric(controller, "shardlet_controller_rebalance_layout_version").await == version
        && controller_metric(
            controller,
            "shardlet_controller_rebalance_shardlets_remaining",
        )
        .await
            == 0.0
        && controller_metric(controller, "shardlet_controller_repairs_queued").await == 0.0
}

async fn run(data_bytes: u64) {
    let loopback = loopback::loopback_bytes_per_second(LOOPBACK_BYTES, 3).await;
    let disk = disk_write_bytes_per_second();
    println!("loopback TCP, one stream: {:.0} MB/s", loopback / 1e6);
    println!("disk writes, 1 MiB + fsync: {:.0} MB/s", disk / 1e6);
    let binary = shardlet_binary!();
    let cluster = Cluster::start(&binary, 12).await;
    // The whole assumed bandwidth as budget: this measures the mover, not the throttle.
    let flags = [
        "--io-budget-share",
        "1",
        "--rebalance-interval-seconds",
        "0.2",
        "--layout-poll-seconds",
        "0.2",
    ]
    .map(String::from);
    let controller = cluster.start_controller("controller", &flags).await;
    let s3 = S3Client::new(cluster.access.clone());
    s3.create_bucket(BUCKET).await.unwrap();
    let objects = data_bytes.div_ceil(OBJECT_BYTES).max(1);
    let size = OBJECT_BYTES.min(data_bytes) as usize;
    let uploads: Vec<_> = futures::stream::iter(0..objects)
        .map(|n| {
            let s3 = &s3;
            async move {
                let class = (n % 2 == 1).then_some("STANDARD_IA");
                s3.put_object(
                    BUCKET,
                    &format!("bench/{n:05}"),
                    pattern_bytes(size, n),
                    class,
                )
                .await
            }
        })
        .buffer_unordered(UPLOAD_CONCURRENCY)
        .collect()
        .await;
    for upload in uploads {
        upload.unwrap();
    }
    let meta = cluster.meta_client();
    let before = placements(&meta).await;
    let stored_bytes = stored(&before);
    println!(
        "wrote {objects} objects ({:.0} MiB of data, {:.0} MiB stored)",
        (objects * size as u64) as f64 / MIB as f64,
        stored_bytes as f64 / MIB as f64
    );
    let _ = std::io::stdout().flush();

    // Add node 13 (zone region-one-a) as version 2.
    let node = NodeProcess::start(
        &binary,
        NodeOptions {
            node_id: 13,
            parent_dir: Some(cluster.root.path().join("nodes")),
            secret: Some(cluster.secret.clone()),
            ..NodeOptions::default()
        },
    )
    .await;
    let address = node.address.to_string();
    cluster.admin(&[
        "admin",
        "layout",
        "assign",
        "13",
        "--region",
        "region-one",
        "--zone",
        "region-one-a",
        "--capacity",
        "1TiB",
        "--address",
        &address,
    ]);
    let give_up = tokio::time::Instant::now() + REBALANCE_DEADLINE;
    let started = Instant::now();
    cluster.admin(&["admin", "layout", "apply", "--version", "2"]);
    poll_until(give_up, POLL_INTERVAL, || rebalanced(&controller, 2.0))
        .await
        .unwrap_or_else(|_| panic!("the rebalance did not finish within {REBALANCE_DEADLINE:?}"));
    let add_seconds = started.elapsed().as_secs_f64();
    let after_add = placements(&meta).await;
    assert!(redundancy_problems(&shardlets(&meta).await, &[]).is_empty());
    let add_moved = bytes_moved(&before, &after_add);
    let add_ratio = add_moved as f64 / (stored_bytes as f64 / 13.0);

    // Drain the busiest node as version 3.
    let drained = NodeId(cluster.nodes[cluster.busiest_node().await].options.node_id);
    let held: u64 = after_add
        .values()
        .flatten()
        .filter(|(node, _)| *node == drained)
        .map(|(_, bytes)| bytes)
        .sum();
    cluster.admin(&["admin", "layout", "remove", &drained.0.to_string()]);
    let started = Instant::now();
    cluster.admin(&["admin", "layout", "apply", "--version", "3"]);
    poll_until(give_up, POLL_INTERVAL, || async {
        shardlets_on(&meta, drained).await == 0 && rebalanced(&controller, 3.0).await
    })
    .await
    .unwrap_or_else(|_| panic!("the drain did not finish within {REBALANCE_DEADLINE:?}"));
    let drain_seconds = started.elapsed().as_secs_f64();
    let after_drain = placements(&meta).await;
    assert!(redundancy_problems(&shardlets(&meta).await, &[drained]).is_empty());
    let drain_moved = bytes_moved(&after_add, &after_drain);
    let drain_ratio = drain_moved as f64 / held.max(1) as f64;

    println!();
    println!(
        "{:<22} {:>12} {:>12} {:>8} {:>9} {:>10} {:>14} {:>11}",
        "step", "moved MiB", "ideal MiB", "ratio", "seconds", "MB/s", "% of loopback", "% of disk"
    );
    for (step, moved, ideal, ratio, seconds) in [
        (
            "add 1 node to 12",
            add_moved,
            stored_bytes / 13,
            add_ratio,
            add_seconds,
        ),
        (
            "drain the busiest",
            drain_moved,
            held,
            drain_ratio,
            drain_seconds,
        ),
    ] {
        let rate = moved as f64 / seconds;
        println!(
            "{step:<22} {:>12.1} {:>12.1} {ratio:>8.3} {seconds:>9.1} {:>10.1} {:>14.1} {:>11.1}",
            moved as f64 / MIB as f64,
            ideal as f64 / MIB as f64,
            rate / 1e6,
            100.0 * rate / loopback,
            100.0 * rate / disk
        );
    }
    println!(
        "rebalance data_bytes={data_bytes} stored_bytes={stored_bytes} add_moved_bytes={add_moved} add_ratio_to_ideal={add_ratio:.3} add_seconds={add_seconds:.2} drain_held_bytes={held} drain_moved_bytes={drain_moved} drain_ratio_to_held={drain_ratio:.3} drain_seconds={drain_seconds:.2} loopback_bytes_per_second={loopback:.0} disk_write_bytes_per_second={disk:.0}"
    );
}

/// Best of three: 256 MiB in 1 MiB writes then one fsync, on the disk the nodes use.
fn disk_write_bytes_per_second() -> f64 {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("disk-probe");
    let chunk = vec![7u8; MIB as usize];
    let mut best: f64 = 0.0;
    for _ in 0..3 {
        let started = Instant::now();
        let mut file = std::fs::File::create(&path).unwrap();
        for _ in 0..DISK_BYTES / MIB {
            file.write_all(&chunk).unwrap();
        }
        file.sync_all().unwrap();
        best = best.max(DISK_BYTES as f64 / started.elapsed().as_secs_f64());
        std::fs::remove_file(&path).unwrap();
    }
    best
}
