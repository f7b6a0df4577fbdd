//! Metadata snapshots of many records: build (streaming the leader's state to a file)
//! and install (a new member receiving it in chunks and installing it in bounded
//! batches), with the peak memory of each member process — the point of streaming
//! snapshots is that it does not grow with the record count — and the disk's write
//! speed measured in the same run as the bound.
//!
//! Run: `cargo bench -p shardlet --bench meta_snapshot` (or `make bench`).
//! `META_SNAPSHOT_RECORDS` (default 200 000) records of `META_SNAPSHOT_VALUE_BYTES`
//! (default 300, the size of the model's object and shardlet records) are written in
//! batches of 1024 through the KV API; the leader snapshots after the last batch; then a
//! second member joins as a learner and can only catch up by snapshot (the leader keeps
//! no log behind it). `SHARDLET_BENCH_DIR` (default /var/tmp) holds the members' data.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use shardlet_meta::client::ClientOptions;
use shardlet_meta::{Batch, MetaClient};
use shardlet_testkit::meta_member::{meta_client_key, MemberOptions, MetaMember};
use shardlet_testkit::{shardlet_binary, wait_until};

const SECRET: &str = "meta-snapshot-bench-secret";
const BATCH_RECORDS: u64 = 1024;
const MIB: f64 = 1024.0 * 1024.0;
/// Bound on the whole run's waits (building, transferring, installing).
const DEADLINE: Duration = Duration::from_secs(3 * 3600);

fn parameter(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|line| line.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Samples `VmRSS` of `pid` every 100 ms while `running`; the largest seen (KiB).
fn sample_rss(pid: u32, running: Arc<AtomicBool>, largest: Arc<AtomicU64>) {
    std::thread::spawn(move || {
        while running.load(Ordering::Relaxed) {
            if let Some(rss) = status_kib(pid, "VmRSS:") {
                largest.fetch_max(rss, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
}

async fn metric(address: &str, name: &str) -> Option<u64> {
    metric_value(address, name).await.map(|value| value as u64)
}

/// A gauge in seconds, as whole milliseconds.
async fn metric_milliseconds(address: &str, name: &str) -> Option<u64> {
    metric_value(address, name)
        .await
        .map(|seconds| (seconds * 1e3).round() as u64)
}

async fn metric_value(address: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{address}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|line| line.starts_with(name) && line[name.len()..].starts_with('{'))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// 256 MiB in 1 MiB writes then one fsync, on the disk the members use: the bound on
/// how fast any snapshot can be written there.
fn disk_write_bytes_per_second(directory: &std::path::Path) -> f64 {
    const BYTES: u64 = 256 * 1024 * 1024;
    let path = directory.join("disk-probe");
    let chunk = vec![7u8; 1024 * 1024];
    let started = Instant::now();
    let mut file = std::fs::File::create(&path).unwrap();
    for _ in 0..BYTES / chunk.len() as u64 {
        file.write_all(&chunk).unwrap();
    }
    file.sync_all().unwrap();
    let rate = BYTES as f64 / started.elapsed().as_secs_f64();
    std::fs::remove_file(&path).unwrap();
    rate
}

fn options(arguments: &[String]) -> MemberOptions {
    MemberOptions {
        secret: SECRET.to_string(),
        log_filter: "warn,shardlet_meta=info".to_string(),
        arguments: arguments.to_vec(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let records = parameter("META_SNAPSHOT_RECORDS", 200_000);
    let value_bytes = parameter("META_SNAPSHOT_VALUE_BYTES", 300) as usize;
    let base = std::env::var("SHARDLET_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".to_string());
    let root = tempfile::tempdir_in(base).unwrap();
    let disk = disk_write_bytes_per_second(root.path());
    println!("disk writes, 1 MiB + fsync: {:.0} MB/s", disk / 1e6);

    // One writer, so each batch is one raft entry and the snapshot policy fires after
    // the last one; no log kept behind a snapshot, so a new member needs the snapshot.
    let batches = records.div_ceil(BATCH_RECORDS);
    let leader_arguments = [
        "--snapshot-after-entries".to_string(),
        batches.to_string(),
        "--entries-kept-after-snapshot".to_string(),
        "0".to_string(),
    ];
    let leader = MetaMember::start(
        &shardlet_binary!(),
        1,
        root.path(),
        true,
        &options(&leader_arguments),
    )
    .await;
    let client_options = ClientOptions {
        request_timeout: Duration::from_secs(120),
        ..ClientOptions::default()
    };
    let admin = MetaClient::new(
        vec![leader.address.clone()],
        meta_client_key(SECRET, "admin"),
        client_options.clone(),
    )
    .unwrap();
    wait_until(Duration::from_secs(30), "a leader", || async {
        admin.status_of(&leader.address).await.ok()?.leader_id
    })
    .await;

    let leader_pid = leader.pid().unwrap();
    let loading = Instant::now();
    let mut random = rand::rng();
    for batch_index in 0..batches {
        let mut batch = Batch::default();
        let first = batch_index * BATCH_RECORDS;
        for record in first..(first + BATCH_RECORDS).min(records) {
            let key = format!("o/bench-bucket/objects/{record:010}");
            let value: Vec<u8> = (0..value_bytes)
                .map(|_| random.random_range(b'a'..=b'z'))
                .collect();
            batch.put(key.as_str(), value);
        }
        admin.batch(batch).await.unwrap();
    }
    let load_seconds = loading.elapsed().as_secs_f64();
    let leader_hwm_after_load = status_kib(leader_pid, "VmHWM:").unwrap_or(0);

    let sampling = Arc::new(AtomicBool::new(true));
    let leader_rss_max = Arc::new(AtomicU64::new(0));
    sample_rss(leader_pid, sampling.clone(), leader_rss_max.clone());
    wait_until(DEADLINE, "the leader built its snapshot", || async {
        let built = metric(&leader.address, "shardlet_meta_snapshots_built_total").await?;
        (built >= 1).then_some(())
    })
    .await;
    let build_ms =
        metric_milliseconds(&leader.address, "shardlet_meta_snapshot_last_build_seconds")
            .await
            .unwrap();
    let snapshot_bytes = metric(&leader.address, "shardlet_meta_snapshot_bytes")
        .await
        .unwrap();
    let snapshot_entries = metric(&leader.address, "shardlet_meta_snapshot_entries")
        .await
        .unwrap();
    let leader_hwm = status_kib(leader_pid, "VmHWM:").unwrap_or(0);

    let learner =
        MetaMember::start(&shardlet_binary!(), 2, root.path(), false, &options(&[])).await;
    let learner_pid = learner.pid().unwrap();
    let learner_rss_max = Arc::new(AtomicU64::new(0));
    sample_rss(learner_pid, sampling.clone(), learner_rss_max.clone());
    let joining = Instant::now();
    let add = {
        let admin = MetaClient::new(
            vec![leader.address.clone()],
            meta_client_key(SECRET, "admin"),
            client_options,
        )
        .unwrap();
        let address = learner.address.clone();
        // Answers once the learner caught up; the wait below does not depend on it.
        tokio::spawn(async move { admin.add_learner(2, &address).await })
    };
    wait_until(DEADLINE, "the learner installed the snapshot", || async {
        let installed = metric(&learner.address, "shardlet_meta_snapshots_installed_total").await?;
        (installed >= 1).then_some(())
    })
    .await;
    let join_seconds = joining.elapsed().as_secs_f64();
    let install_ms = metric_milliseconds(
        &learner.address,
        "shardlet_meta_snapshot_last_install_seconds",
    )
    .await
    .unwrap();
    let chunks = metric(
        &learner.address,
        "shardlet_meta_snapshot_chunks_received_total",
    )
    .await
    .unwrap();
    let learner_hwm = status_kib(learner_pid, "VmHWM:").unwrap_or(0);
    sampling.store(false, Ordering::Relaxed);
    add.abort();

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "records {snapshot_entries} of {value_bytes} bytes in the snapshot; {:.1} MiB; loaded {records} in {load_seconds:.1} s",
        snapshot_bytes as f64 / MIB
    );
    println!(
        "build: {:.1} s ({:.0} MB/s); leader RSS max while building {:.0} MiB, VmHWM {:.0} MiB (after loading {:.0} MiB)",
        build_ms as f64 / 1e3,
        snapshot_bytes as f64 / 1e6 / (build_ms.max(1) as f64 / 1e3),
        mib(leader_rss_max.load(Ordering::Relaxed)),
        mib(leader_hwm),
        mib(leader_hwm_after_load),
    );
    println!(
        "install: {:.1} s to check, stage and switch; {join_seconds:.1} s from add-learner with the transfer ({chunks} chunks); learner VmHWM {:.0} MiB",
        install_ms as f64 / 1e3,
        mib(learner_hwm),
    );
    println!(
        "meta_snapshot records={snapshot_entries} value_bytes={value_bytes} snapshot_bytes={snapshot_bytes} build_seconds={:.2} install_seconds={:.2} join_seconds={join_seconds:.2} leader_hwm_mib={:.0} learner_hwm_mib={:.0} disk_write_bytes_per_second={disk:.0}",
        build_ms as f64 / 1e3,
        install_ms as f64 / 1e3,
        mib(leader_hwm),
        mib(learner_hwm),
    );
    drop(learner);
    drop(leader);
}
