//! Repair benchmark: twelve real storage nodes holding `SHARDLET_BENCH_REPAIR_BYTES` of
//! user data (default 2 GiB, written through the S3 gateway: half 3 replicas, half
//! RS(6,3)), one node killed with SIGKILL, and the time until every shardlet is back at
//! full redundancy, with one repair at a time and then with the default parallelism.
//! The machine's limits are measured in the same run: loopback TCP (one stream) and
//! synced disk writes, so the repair's aggregate bytes per second read as a share of
//! what the box can do at all.
//!
//! Time to full redundancy is measured from the moment the controller records the
//! node down (the grace period, 3 s here, is policy, not repair speed) to the moment
//! no shardlet record names the dead node. Bytes moved are the controller's own
//! `repair_moved_bytes_total` (read + written). Every process is killed by PID when its
//! cluster is dropped, also on panic. The last line is machine-readable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::{Duration, Instant};

use futures::StreamExt;
use shardlet_core::{NodeId, NodeState};
use shardlet_meta::ReadConsistency;
use shardlet_model::schema::{decode, keys, NodeRecord};

use shardlet_testkit::bench::loopback;
use shardlet_testkit::controller::controller_metric;
use shardlet_testkit::poll::poll_until;
use shardlet_testkit::records::{redundancy_problems, shardlets, shardlets_on};
use shardlet_testkit::{pattern_bytes, shardlet_binary, Cluster, S3Client};

const MIB: u64 = 1024 * 1024;
const BUCKET: &str = "repair-bench";
const OBJECT_BYTES: u64 = 32 * MIB;
const UPLOAD_CONCURRENCY: usize = 4;
const LOOPBACK_BYTES: u64 = 1024 * MIB;
const DISK_BYTES: u64 = 256 * MIB;
/// A repair slower than this is reported as a failure, not waited for forever.
const REPAIR_DEADLINE: Duration = Duration::from_secs(3600);
/// How often the end of a repair is checked: the resolution of the measured time.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

struct Run {
    name: &'static str,
    per_node: usize,
    in_flight: usize,
    shardlets_repaired: usize,
    seconds: f64,
    bytes_moved: f64,
}

fn main() {
    let data_bytes: u64 = std::env::var("SHARDLET_BENCH_REPAIR_BYTES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(2 * 1024 * MIB);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(data_bytes));
}

async fn run(data_bytes: u64) {
    let loopback = loopback::loopback_bytes_per_second(LOOPBACK_BYTES, 3).await;
    let disk = disk_write_bytes_per_second();
    println!("loopback TCP, one stream: {:.0} MB/s", loopback / 1e6);
    println!("disk writes, 1 MiB + fsync: {:.0} MB/s", disk / 1e6);
    let mut runs = Vec::new();
    for (name, per_node, in_flight) in [("one at a time", 1, 1), ("parallel (default)", 2, 64)] {
        let result = repair_run(data_bytes, per_node, in_flight).await;
        println!(
            "{name}: {} shardlets in {:.1} s, {:.0} MB/s moved",
            result.0,
            result.1,
            result.2 / result.1 / 1e6
        );
        runs.push(Run {
            name,
            per_node,
            in_flight,
            shardlets_repaired: result.0,
            seconds: result.1,
            bytes_moved: result.2,
        });
    }
    println!();
    println!(
        "{:<20} {:>9} {:>10} {:>10} {:>10} {:>12} {:>14} {:>11}",
        "repair",
        "per node",
        "in flight",
        "shardlets",
        "seconds",
        "MB/s moved",
        "% of loopback",
        "% of disk"
    );
    for run in &runs {
        let rate = run.bytes_moved / run.seconds;
        println!(
            "{:<20} {:>9} {:>10} {:>10} {:>10.1} {:>12.0} {:>14.1} {:>11.1}",
            run.name,
            run.per_node,
            run.in_flight,
            run.shardlets_repaired,
            run.seconds,
            rate / 1e6,
            100.0 * rate / loopback,
            100.0 * rate / disk
        );
    }
    let speedup = runs[0].seconds / runs[1].seconds;
    println!("speed-up of parallel reconstruction: {speedup:.2}x");
    println!(
        "repair data_bytes={data_bytes} seconds_one_at_a_time={:.2} seconds_parallel={:.2} speedup={speedup:.2} bytes_per_second_parallel={:.0} loopback_bytes_per_second={loopback:.0} disk_write_bytes_per_second={disk:.0}",
        runs[0].seconds,
        runs[1].seconds,
        runs[1].bytes_moved / runs[1].seconds
    );
}

/// (shardlets repaired, seconds from "down" to full redundancy, bytes moved).
async fn repair_run(data_bytes: u64, per_node: usize, in_flight: usize) -> (usize, f64, f64) {
    let mut cluster = Cluster::start(&shardlet_binary!(), 12).await;
    let flags = [
        "--repair-per-node-max".to_string(),
        per_node.to_string(),
        "--repair-in-flight-max".to_string(),
        in_flight.to_string(),
        "--repair-interval-seconds".to_string(),
        "0.2".to_string(),
    ];
    let controller = cluster.start_controller("controller", &flags).await;
    let s3 = S3Client::new(cluster.access.clone());
    s3.create_bucket(BUCKET).await.unwrap();
    let objects = data_bytes.div_ceil(OBJECT_BYTES).max(1);
    let started = Instant::now();
    let uploads: Vec<_> = futures::stream::iter(0..objects)
        .map(|n| {
            let s3 = &s3;
            async move {
                let class = (n % 2 == 1).then_some("STANDARD_IA");
                let size = OBJECT_BYTES.min(data_bytes) as usize;
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
    let upload_seconds = started.elapsed().as_secs_f64();
    println!(
        "wrote {objects} objects ({:.0} MiB) through the gateway in {upload_seconds:.1} s",
        (objects * OBJECT_BYTES.min(data_bytes)) as f64 / MIB as f64
    );
    let _ = std::io::stdout().flush();

    let meta = cluster.meta_client();
    let victim = cluster.busiest_node().await;
    let dead = NodeId(cluster.nodes[victim].options.node_id);
    let held = shardlets_on(&meta, dead).await;
    cluster.nodes[victim].kill_9();
    let give_up = tokio::time::Instant::now() + REPAIR_DEADLINE;
    // Down: the controller wrote the state (the grace period has passed).
    poll_until(give_up, POLL_INTERVAL, || async {
        let record = meta
            .get(keys::node(dead), ReadConsistency::Linearizable)
            .await
            .unwrap();
        let state = record.map(|entry| decode::<NodeRecord>(entry.value.as_slice()).unwrap().state);
        state == Some(NodeState::Down)
    })
    .await
    .unwrap_or_else(|_| panic!("node {dead} never declared down"));
    let down_at = Instant::now();
    poll_until(give_up, POLL_INTERVAL, || async {
        redundancy_problems(&shardlets(&meta).await, &[dead]).is_empty()
    })
    .await
    .unwrap_or_else(|_| panic!("repair did not finish within {REPAIR_DEADLINE:?}"));
    let seconds = down_at.elapsed().as_secs_f64();
    let bytes =
        controller_metric(&controller, "shardlet_controller_repair_moved_bytes_total").await;
    (held, seconds, bytes)
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
