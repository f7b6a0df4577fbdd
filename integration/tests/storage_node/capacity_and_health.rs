//! The capacity reserve and the `/health` document the predictor reads.

use std::collections::BTreeSet;
use std::time::Duration;

use shardlet_testkit::raw_http::{Body, Request};
use shardlet_testkit::{
    crc32c_hex, metric_total, pattern_bytes, random_fragment_id, shardlet_binary, NodeOptions,
    NodeProcess,
};

/// Total and free bytes of the filesystem holding `path`, as statvfs reports them.
fn filesystem_bytes(path: &std::path::Path) -> (u64, u64) {
    let stats = rustix::fs::statvfs(path).expect("statvfs");
    (
        stats.f_blocks * stats.f_frsize,
        stats.f_bavail * stats.f_frsize,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_refuses_writes_when_disk_is_nearly_full() {
    let mut node = NodeProcess::start(&shardlet_binary!(), NodeOptions::default()).await;
    let readable = random_fragment_id();
    let readable_bytes = pattern_bytes(70_000, 4);
    assert_eq!(
        node.client().put(&readable, &readable_bytes).await.status,
        201
    );

    // A reserve as large as the whole filesystem: free space is always below it.
    let (capacity, _free) = filesystem_bytes(node.root.path());
    node.kill_9();
    node.options.reserve_bytes = Some(capacity);
    node.restart().await;
    let client = node.client();

    let refused = random_fragment_id();
    let response = client.put(&refused, &pattern_bytes(4096, 5)).await;
    assert_eq!(response.status, 507);
    assert_eq!(response.error_code(), "insufficient_storage");
    // Checked before the body is read: a declared body that never comes is refused too.
    let declared = Request::new("PUT", &format!("/v1/fragments/{refused}"))
        .header("x-shardlet-crc32c", &crc32c_hex(&[0; 8]))
        .body(Body::DeclaredOnly(8));
    assert_eq!(client.send(declared).await.status, 507);
    assert_eq!(client.head(&refused).await.status, 404, "nothing stored");
    assert!(!node.fragment_path(&refused).exists());

    let get = client.get(&readable).await;
    assert_eq!(get.status, 200, "reads still work");
    assert!(get.body == readable_bytes);
    assert_eq!(
        client.delete(&readable).await.status,
        204,
        "deletes free space"
    );

    let health = client.health().await;
    assert_eq!(health["disk"]["reserve_bytes"].as_u64(), Some(capacity));
    let free = health["disk"]["free_bytes"].as_u64().expect("free_bytes");
    assert!(free < capacity, "free {free} below the reserve {capacity}");
}

fn keys(value: &serde_json::Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("expected a JSON object, got {value}"))
        .keys()
        .cloned()
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| name.to_string()).collect()
}

fn is_fraction(value: &serde_json::Value) -> bool {
    value.as_f64().is_some_and(|x| (0.0..=1.0).contains(&x))
}

fn is_non_negative_number(value: &serde_json::Value) -> bool {
    value.as_f64().is_some_and(|x| x >= 0.0 && x.is_finite())
}

fn mem_total_bytes_from_proc() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = meminfo
        .lines()
        .find(|line| line.starts_with("MemTotal:"))
        .unwrap();
    let kibibytes: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kibibytes * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_real_values() {
    let reserve = 12_345_678;
    let node = NodeProcess::start(
        &shardlet_binary!(),
        NodeOptions {
            node_id: 7,
            reserve_bytes: Some(reserve),
            ..NodeOptions::default()
        },
    )
    .await;
    let client = node.client();
    let sizes = [1000usize, 70_000];
    for (seed, size) in sizes.iter().enumerate() {
        let id = random_fragment_id();
        let bytes = pattern_bytes(*size, seed as u64);
        assert_eq!(client.put(&id, &bytes).await.status, 201);
    }
    let expected_bytes: u64 = sizes.iter().map(|size| *size as u64).sum();
    client
        .wait_for_health(
            Duration::from_secs(30),
            "health counts the two fragments",
            |health| {
                health["fragments"]["count"].as_u64() == Some(2)
                    && health["fragments"]["bytes"].as_u64() == Some(expected_bytes)
            },
        )
        .await;

    let health = client.health().await;
    assert_eq!(
        keys(&health),
        set(&[
            "node_id",
            "version",
            "uptime_seconds",
            "cpu_utilization",
            "memory_used_bytes",
            "memory_total_bytes",
            "disk",
            "errors",
            "smart",
            "fragments",
            "writes_refused",
            "name",
        ]),
        "top-level fields exactly as in the contract: {health}"
    );
    assert_eq!(
        keys(&health["disk"]),
        set(&[
            "capacity_bytes",
            "free_bytes",
            "reserve_bytes",
            "read_bytes_per_second",
            "write_bytes_per_second",
            "io_utilization",
            "read_latency_ms",
            "write_latency_ms",
        ])
    );
    assert_eq!(
        keys(&health["errors"]),
        set(&[
            "read_errors",
            "write_errors",
            "checksum_failures",
            "fsync_failures"
        ])
    );
    assert_eq!(keys(&health["fragments"]), set(&["count", "bytes"]));

    // Named 7; its id comes from the layout through an announcement (none here): 0.
    assert_eq!(health["name"].as_str(), Some("7"));
    assert_eq!(health["node_id"].as_u64(), Some(0));
    assert!(!health["version"].as_str().unwrap_or("").is_empty());
    assert!(health["uptime_seconds"].as_u64().is_some());
    assert!(is_fraction(&health["cpu_utilization"]), "{health}");
    let memory_total = health["memory_total_bytes"].as_u64().unwrap();
    let memory_used = health["memory_used_bytes"].as_u64().unwrap();
    let proc_total = mem_total_bytes_from_proc();
    assert!(
        memory_total.abs_diff(proc_total) <= proc_total / 100,
        "memory_total_bytes {memory_total} is the machine's ({proc_total})"
    );
    assert!(memory_used > 0 && memory_used <= memory_total);

    let disk = &health["disk"];
    let (capacity, _free) = filesystem_bytes(&node.data_dir);
    let reported_capacity = disk["capacity_bytes"].as_u64().unwrap();
    assert!(
        reported_capacity.abs_diff(capacity) <= capacity / 100,
        "capacity_bytes {reported_capacity} is the data filesystem's ({capacity})"
    );
    let free = disk["free_bytes"].as_u64().unwrap();
    assert!(free > 0 && free <= reported_capacity);
    assert_eq!(disk["reserve_bytes"].as_u64(), Some(reserve));
    for field in [
        "read_bytes_per_second",
        "write_bytes_per_second",
        "read_latency_ms",
        "write_latency_ms",
    ] {
        assert!(is_non_negative_number(&disk[field]), "disk.{field}: {disk}");
    }
    assert!(is_fraction(&disk["io_utilization"]), "{disk}");
    for field in [
        "read_errors",
        "write_errors",
        "checksum_failures",
        "fsync_failures",
    ] {
        assert_eq!(health["errors"][field].as_u64(), Some(0), "errors.{field}");
    }
    assert!(health["smart"].is_null(), "no SMART in a VM");
    assert!(
        health["writes_refused"].is_null(),
        "a healthy disk: writes accepted"
    );

    // Uptime is real time, not a constant.
    let before = health["uptime_seconds"].as_u64().unwrap();
    client
        .wait_for_health(Duration::from_secs(30), "uptime_seconds advances", |now| {
            now["uptime_seconds"].as_u64().unwrap() > before
        })
        .await;

    let metrics = client.metrics().await;
    assert!(
        metric_total(&metrics, "shardlet_node_checksum_failures_total").is_some(),
        "the checksum failure counter is exported from the start"
    );
    assert!(metrics
        .lines()
        .any(|line| line.starts_with("shardlet_node_")));
}
