//! S3 load generator: drives the gateway of a real `shardlet dev` cluster (the binary cargo
//! built for this bench profile: meta-raft, 12 storage nodes and the gateway as separate
//! processes, fsync on) over loopback, and prints, in one run:
//! - 64 MiB object PUT and GET throughput (4 concurrent);
//! - 4 KiB object PUT and GET operations per second with p50/p99 latency (16 concurrent);
//! - time to first byte p50/p99 of 1 MiB GETs (one at a time);
//! - loopback TCP throughput measured in the same run (a tokio socket pair), the ceiling
//!   every byte of this bench crosses at least twice (client ↔ gateway ↔ node);
//! - each result as a ratio of its target (≥ 1 meets it), then one `key=value` line.
//!
//! MB is 10^6 bytes. Every GET is checked (length and CRC32C of what was PUT) and any
//! failed request aborts the run: a fast wrong answer cannot pass.
//!
//! Options (after `cargo bench --bench s3_load --`), each also an environment variable:
//! - `--endpoint URL` (`SHARDLET_LOAD_ENDPOINT`) aims at a running cluster instead of
//!   starting one; credentials from `--access-key`/`--secret-key`/`--region` or
//!   `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_REGION`.
//! - `--seconds N` (`SHARDLET_LOAD_SECONDS`, default 10): the bound of each phase.
//! - `--large-objects N` (`SHARDLET_LOAD_LARGE_OBJECTS`, default 16): 64 MiB objects PUT.
//! - `--small-objects N` (`SHARDLET_LOAD_SMALL_OBJECTS`, default 20000): 4 KiB PUTs at most.
//! - `--ttfb-gets N` (`SHARDLET_LOAD_TTFB_GETS`, default 200): 1 MiB GETs timed.
//! - `SHARDLET_LOAD_CLUSTER_DATA=DIR`: with `--endpoint`, the `--data` of that `shardlet
//!   dev`, so its processes' CPU time per operation is reported too (as for a started one).
//! - `SHARDLET_LOAD_TLS=1`: start `shardlet dev --tls` (every port over HTTPS) and load
//!   it over HTTPS, to measure what TLS costs against the same run without it.
//!
//! The started cluster keeps its data in a temporary directory under
//! `target/tmp/clusters` (a real disk, or fsync would be free and the numbers meaningless;
//! see `ShardletBinary::clusters_root` in the test kit for why not `/tmp`) and is stopped, by PID, when the run
//! ends or panics.
#![allow(clippy::unwrap_used)]

mod client;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use client::{Expected, S3Client};
use rand::RngCore;
use shardlet_testkit::bench::loopback;
use shardlet_testkit::bench::phase::{quantile_of, run_phase, Phase};
use shardlet_testkit::{shardlet_binary, DevCluster, S3Access};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
const LARGE_OBJECT_BYTES: usize = 64 * MIB;
const SMALL_OBJECT_BYTES: usize = 4 * KIB;
const TTFB_OBJECT_BYTES: usize = MIB;
const TTFB_OBJECTS: u64 = 8;
const LARGE_CONCURRENCY: usize = 4;
const SMALL_CONCURRENCY: usize = 16;
/// Each stored 64 MiB object is read this many times at most: bounded run time.
const LARGE_GETS_PER_OBJECT_MAX: u64 = 4;
const SMALL_GETS_MAX: u64 = 500_000;
/// The machine limit is a maximum: the best of a few short runs, so that a burst of other
/// work on the shared cores lowers it as little as possible.
const LOOPBACK_TRIALS: usize = 3;
const LOOPBACK_BYTES: u64 = 1024 * 1024 * 1024;

/// Targets for this 2-core machine class, everything on one box, fsync on (issue 4).
const TARGET_LARGE_GET_MB_PER_SECOND: f64 = 1_500.0;
const TARGET_LARGE_PUT_MB_PER_SECOND: f64 = 250.0;
const TARGET_SMALL_PUT_OPERATIONS_PER_SECOND: f64 = 1_000.0;
const TARGET_SMALL_GET_OPERATIONS_PER_SECOND: f64 = 3_000.0;
const TARGET_TTFB_MS_P50: f64 = 2.0;

struct Options {
    endpoint: Option<S3Access>,
    seconds: u64,
    large_objects: u64,
    small_objects: u64,
    ttfb_gets: u64,
}

fn options() -> Options {
    let arguments: Vec<String> = std::env::args().collect();
    let value = |flag: &str, variable: &str| -> Option<String> {
        arguments
            .iter()
            .position(|argument| argument == flag)
            .and_then(|position| arguments.get(position + 1).cloned())
            .or_else(|| std::env::var(variable).ok())
            .filter(|value| !value.is_empty())
    };
    let number = |flag: &str, variable: &str, default: u64| -> u64 {
        match value(flag, variable) {
            None => default,
            Some(text) => text.parse().unwrap_or_else(|_| {
                panic!("{flag} / {variable} must be a whole number, got {text:?}")
            }),
        }
    };
    let endpoint = value("--endpoint", "SHARDLET_LOAD_ENDPOINT").map(|url| {
        let required = |flag: &str, variable: &str| {
            value(flag, variable).unwrap_or_else(|| panic!("--endpoint needs {flag} or {variable}"))
        };
        S3Access {
            endpoint: url.trim_end_matches('/').to_string(),
            access_key: required("--access-key", "AWS_ACCESS_KEY_ID"),
            secret_key: required("--secret-key", "AWS_SECRET_ACCESS_KEY"),
            region: value("--region", "AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
        }
    });
    Options {
        endpoint,
        seconds: number("--seconds", "SHARDLET_LOAD_SECONDS", 10).max(1),
        large_objects: number("--large-objects", "SHARDLET_LOAD_LARGE_OBJECTS", 16).max(1),
        small_objects: number("--small-objects", "SHARDLET_LOAD_SMALL_OBJECTS", 20_000).max(1),
        ttfb_gets: number("--ttfb-gets", "SHARDLET_LOAD_TTFB_GETS", 200).max(1),
    }
}

/// The cluster's CPU milliseconds per operation of `phase`.
fn cluster_cpu_ms_per_operation(phase: &Phase) -> f64 {
    phase.cpu_seconds.map_or(f64::NAN, |seconds| {
        seconds * 1e3 / phase.operations.max(1) as f64
    })
}

/// `DIR/logs` of the cluster under test, where `shardlet dev` records its children's pids.
static CLUSTER_LOGS: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
/// Linux reports process CPU time in USER_HZ ticks, 100 per second on every mainstream
/// architecture.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU seconds of every process `shardlet dev` recorded a pid for.
fn cluster_cpu_seconds() -> Option<f64> {
    let logs = CLUSTER_LOGS.get()?;
    let mut ticks = 0u64;
    let mut found = false;
    for entry in std::fs::read_dir(logs).ok()?.flatten() {
        if entry
            .path()
            .extension()
            .is_none_or(|extension| extension != "pid")
        {
            continue;
        }
        let Some(pid) = std::fs::read_to_string(entry.path())
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command name; utime and stime are the 14th and
        // 15th fields of the whole line.
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if let (Some(user), Some(system)) = (fields.get(11), fields.get(12)) {
            ticks += user.parse::<u64>().unwrap_or(0) + system.parse::<u64>().unwrap_or(0);
            found = true;
        }
    }
    found.then(|| ticks as f64 / CLOCK_TICKS_PER_SECOND)
}

/// Object `number` of a size class: the shared random bytes with the number in front, so
/// every object differs and a GET answered with another object's bytes fails its check.
fn object_body(random: &Bytes, number: u64, size: usize) -> Bytes {
    let mut body = BytesMut::with_capacity(size);
    body.put_u64_le(number);
    body.put_slice(&random[8..size]);
    body.freeze()
}

/// Stored objects of one size class: what each must read back as.
#[derive(Default)]
struct Stored {
    expected: Mutex<Vec<(u64, Expected)>>,
}

impl Stored {
    fn add(&self, number: u64, expected: Expected) {
        self.expected.lock().unwrap().push((number, expected));
    }

    fn snapshot(&self) -> Arc<Vec<(u64, Expected)>> {
        let mut all = self.expected.lock().unwrap().clone();
        all.sort_by_key(|(number, _)| *number);
        Arc::new(all)
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

struct Results {
    loopback_mb_per_second: f64,
    large_put: Phase,
    large_get: Phase,
    small_put: Phase,
    small_get: Phase,
    ttfb_ms: Vec<f64>,
}

async fn run_load(client: S3Client, options: &Options, loopback_mb_per_second: f64) -> Results {
    let bucket = format!("s3-load-{:08x}", rand::random::<u32>());
    client.create_bucket(&bucket).await.unwrap();
    let mut random = vec![0u8; LARGE_OBJECT_BYTES];
    rand::rng().fill_bytes(&mut random);
    let random = Bytes::from(random);
    let deadline = Duration::from_secs(options.seconds);

    let large = Arc::new(Stored::default());
    let large_put = {
        let (client, bucket, random, large) = (
            client.clone(),
            bucket.clone(),
            random.clone(),
            large.clone(),
        );
        run_phase(
            "64 MiB PUT",
            LARGE_CONCURRENCY,
            options.large_objects,
            deadline,
            cluster_cpu_seconds,
            move |number| {
                let (client, bucket, random, large) = (
                    client.clone(),
                    bucket.clone(),
                    random.clone(),
                    large.clone(),
                );
                async move {
                    let body = object_body(&random, number, LARGE_OBJECT_BYTES);
                    let expected = Expected::of(&body);
                    client
                        .put(&bucket, &format!("large-{number}"), body)
                        .await?;
                    large.add(number, expected);
                    Ok(LARGE_OBJECT_BYTES as u64)
                }
            },
        )
        .await
    };
    let large_get = get_phase(
        "64 MiB GET",
        &client,
        &bucket,
        "large",
        large.snapshot(),
        LARGE_CONCURRENCY,
        large_put.operations * LARGE_GETS_PER_OBJECT_MAX,
        deadline,
    )
    .await;

    let small = Arc::new(Stored::default());
    let small_put = {
        let (client, bucket, random, small) = (
            client.clone(),
            bucket.clone(),
            random.clone(),
            small.clone(),
        );
        run_phase(
            "4 KiB PUT",
            SMALL_CONCURRENCY,
            options.small_objects,
            deadline,
            cluster_cpu_seconds,
            move |number| {
                let (client, bucket, random, small) = (
                    client.clone(),
                    bucket.clone(),
                    random.clone(),
                    small.clone(),
                );
                async move {
                    let body = object_body(&random, number, SMALL_OBJECT_BYTES);
                    let expected = Expected::of(&body);
                    client
                        .put(&bucket, &format!("small-{number}"), body)
                        .await?;
                    small.add(number, expected);
                    Ok(SMALL_OBJECT_BYTES as u64)
                }
            },
        )
        .await
    };
    let small_get = get_phase(
        "4 KiB GET",
        &client,
        &bucket,
        "small",
        small.snapshot(),
        SMALL_CONCURRENCY,
        SMALL_GETS_MAX,
        deadline,
    )
    .await;

    let mut ttfb_objects = Vec::new();
    for number in 0..TTFB_OBJECTS {
        let body = object_body(&random, number, TTFB_OBJECT_BYTES);
        ttfb_objects.push(Expected::of(&body));
        client
            .put(&bucket, &format!("ttfb-{number}"), body)
            .await
            .unwrap();
    }
    let mut ttfb_ms = Vec::new();
    for get in 0..options.ttfb_gets {
        let number = get % TTFB_OBJECTS;
        let verified = client
            .get_verified(
                &bucket,
                &format!("ttfb-{number}"),
                ttfb_objects[number as usize],
            )
            .await
            .unwrap_or_else(|error| panic!("1 MiB GET failed: {error}"));
        ttfb_ms.push(verified.time_to_first_byte.as_secs_f64() * 1e3);
    }
    Results {
        loopback_mb_per_second,
        large_put,
        large_get,
        small_put,
        small_get,
        ttfb_ms,
    }
}

/// GETs objects `PREFIX-N` from `stored`, spread over them by a multiplicative hash of the
/// operation number, each checked against what was PUT.
#[allow(clippy::too_many_arguments)]
async fn get_phase(
    name: &'static str,
    client: &S3Client,
    bucket: &str,
    prefix: &'static str,
    stored: Arc<Vec<(u64, Expected)>>,
    concurrency: usize,
    operations_max: u64,
    deadline: Duration,
) -> Phase {
    assert!(!stored.is_empty(), "{name}: no object was stored to read");
    let (client, bucket) = (client.clone(), bucket.to_string());
    run_phase(
        name,
        concurrency,
        operations_max,
        deadline,
        cluster_cpu_seconds,
        move |number| {
            let (client, bucket, stored) = (client.clone(), bucket.clone(), stored.clone());
            async move {
                let pick = number.wrapping_mul(0x9e37_79b9_7f4a_7c15) % stored.len() as u64;
                let (object, expected) = stored[pick as usize];
                let verified = client
                    .get_verified(&bucket, &format!("{prefix}-{object}"), expected)
                    .await?;
                Ok(verified.bytes)
            }
        },
    )
    .await
}

fn print_report(results: &Results, load_before: &str) {
    let r = results;
    let ttfb_p50 = quantile_of(&r.ttfb_ms, 0.5);
    let ttfb_p99 = quantile_of(&r.ttfb_ms, 0.99);
    println!();
    println!(
        "machine: loopback TCP, 1 stream: {:.0} MB/s (best of {LOOPBACK_TRIALS})",
        r.loopback_mb_per_second
    );
    println!(
        "load average before: {load_before}; after: {}",
        load_average()
    );
    println!(
        "| workload | concurrency | operations | seconds | result | p50 ms | p99 ms | cluster CPU ms/op |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let row = |name: &str, concurrency: usize, phase: &Phase, result: String| {
        println!(
            "| {name} | {concurrency} | {} | {:.1} | {result} | {:.2} | {:.2} | {:.2} |",
            phase.operations,
            phase.elapsed.as_secs_f64(),
            phase.latency_ms(0.5),
            phase.latency_ms(0.99),
            cluster_cpu_ms_per_operation(phase)
        );
    };
    row(
        "64 MiB PUT",
        LARGE_CONCURRENCY,
        &r.large_put,
        format!("{:.0} MB/s", r.large_put.megabytes_per_second()),
    );
    row(
        "64 MiB GET",
        LARGE_CONCURRENCY,
        &r.large_get,
        format!("{:.0} MB/s", r.large_get.megabytes_per_second()),
    );
    row(
        "4 KiB PUT",
        SMALL_CONCURRENCY,
        &r.small_put,
        format!("{:.0} ops/s", r.small_put.per_second()),
    );
    row(
        "4 KiB GET",
        SMALL_CONCURRENCY,
        &r.small_get,
        format!("{:.0} ops/s", r.small_get.per_second()),
    );
    println!(
        "| 1 MiB GET time to first byte | 1 | {} | - | - | {ttfb_p50:.2} | {ttfb_p99:.2} | - |",
        r.ttfb_ms.len()
    );
    println!();
    println!("ratio to target (>= 1 meets it):");
    let ratios = [
        (
            "64 MiB GET",
            r.large_get.megabytes_per_second() / TARGET_LARGE_GET_MB_PER_SECOND,
            "≥ 1,500 MB/s",
        ),
        (
            "64 MiB PUT",
            r.large_put.megabytes_per_second() / TARGET_LARGE_PUT_MB_PER_SECOND,
            "≥ 250 MB/s",
        ),
        (
            "4 KiB PUT",
            r.small_put.per_second() / TARGET_SMALL_PUT_OPERATIONS_PER_SECOND,
            "≥ 1,000 ops/s",
        ),
        (
            "4 KiB GET",
            r.small_get.per_second() / TARGET_SMALL_GET_OPERATIONS_PER_SECOND,
            "≥ 3,000 ops/s",
        ),
        ("1 MiB TTFB p50", TARGET_TTFB_MS_P50 / ttfb_p50, "≤ 2 ms"),
    ];
    for (name, ratio, target) in ratios {
        println!("  {name:<16} {ratio:>6.2}  (target {target})");
    }
    println!(
        "RESULT bench=s3_load loopback_mb_per_second={:.0} put_64mib_mb_per_second={:.1} get_64mib_mb_per_second={:.1} put_4kib_operations_per_second={:.0} put_4kib_latency_ms_p50={:.2} put_4kib_latency_ms_p99={:.2} get_4kib_operations_per_second={:.0} get_4kib_latency_ms_p50={:.2} get_4kib_latency_ms_p99={:.2} ttfb_1mib_ms_p50={ttfb_p50:.2} ttfb_1mib_ms_p99={ttfb_p99:.2} put_64mib_cluster_cpu_ms={:.1} get_64mib_cluster_cpu_ms={:.1} put_4kib_cluster_cpu_ms={:.3} get_4kib_cluster_cpu_ms={:.3} load_average_1m_before={}",
        r.loopback_mb_per_second,
        r.large_put.megabytes_per_second(),
        r.large_get.megabytes_per_second(),
        r.small_put.per_second(),
        r.small_put.latency_ms(0.5),
        r.small_put.latency_ms(0.99),
        r.small_get.per_second(),
        r.small_get.latency_ms(0.5),
        r.small_get.latency_ms(0.99),
        cluster_cpu_ms_per_operation(&r.large_put),
        cluster_cpu_ms_per_operation(&r.large_get),
        cluster_cpu_ms_per_operation(&r.small_put),
        cluster_cpu_ms_per_operation(&r.small_get),
        load_before.split_whitespace().next().unwrap_or("unknown"),
    );
}

#[tokio::main]
async fn main() {
    let options = options();
    let load_before = load_average();
    println!("== s3_load: loopback TCP limit");
    let loopback = loopback::loopback_bytes_per_second(LOOPBACK_BYTES, LOOPBACK_TRIALS).await / 1e6;
    let tls = std::env::var("SHARDLET_LOAD_TLS").is_ok_and(|value| value == "1");
    let mut transport = shardlet_net::Transport::Plaintext;
    let (endpoint, _cluster) = match options.endpoint.clone() {
        Some(endpoint) => {
            if let Ok(data) = std::env::var("SHARDLET_LOAD_CLUSTER_DATA") {
                let _ = CLUSTER_LOGS.set(std::path::PathBuf::from(data).join("logs"));
            }
            println!("== s3_load: against {}", endpoint.endpoint);
            (endpoint, None)
        }
        None => {
            println!(
                "== s3_load: starting shardlet dev{} (meta + 12 nodes + gateway, fsync on)",
                if tls { " --tls" } else { "" }
            );
            let cluster = if tls {
                let cluster = DevCluster::start_tls(&shardlet_binary!()).await;
                transport = shardlet_net::Transport::from_ca_file(&cluster.ca_path()).unwrap();
                cluster
            } else {
                DevCluster::start(&shardlet_binary!()).await
            };
            let _ = CLUSTER_LOGS.set(cluster.data.join("logs"));
            (cluster.access.clone(), Some(cluster))
        }
    };
    println!(
        "== s3_load: {} s per phase, {} x 64 MiB, up to {} x 4 KiB, {} timed 1 MiB GETs",
        options.seconds, options.large_objects, options.small_objects, options.ttfb_gets
    );
    let client = S3Client::new(endpoint, &transport).unwrap();
    let results = run_load(client, &options, loopback).await;
    print_report(&results, &load_before);
}
