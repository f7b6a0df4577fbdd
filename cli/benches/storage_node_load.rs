//! Storage node load benchmark: a real `shardlet node` process (the binary cargo built
//! for this bench profile) driven over loopback by the product's own `NodeClient`, with
//! the machine's own limits (memcpy, single-stream loopback TCP) measured in the same
//! run so the node's numbers read as ratios of what the box can do at all.
//!
//! Bounds: every phase stops at `SHARDLET_BENCH_SECONDS` (default 10) or at its
//! operation cap, whichever comes first. The node's data dir lives under
//! `SHARDLET_BENCH_DIR` (default `/var/tmp`, which is on disk: a tmpfs would make fsync
//! free and the numbers meaningless). The node is killed by PID when the bench ends,
//! also on panic (the test kit's Drop guard).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use shardlet_core::{FragmentId, FragmentIndex, Generation, ObjectId, ShardletId};
use shardlet_node::client::{ClientOptions, NodeClient};
use shardlet_testkit::bench::loopback;
use shardlet_testkit::bench::phase::{run_phase, Phase};
use shardlet_testkit::{pattern_bytes, shardlet_binary, NodeOptions, NodeProcess};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
const SMALL_WRITERS: usize = 64;
const SMALL_PUTS_MAX: u64 = 200_000;
const SINGLE_WRITER_PUTS_MAX: u64 = 5_000;
const LARGE_CONCURRENCY: usize = 4;
/// 1 GiB written, 2 GiB read at most: bounded disk use and run time.
const LARGE_PUTS_MAX: u64 = 1_024;
const LARGE_GETS_MAX: u64 = 2_048;
/// Machine limits are maxima: each is the best of a few short runs, so that a burst of
/// other work on the shared cores lowers them as little as possible.
const LIMIT_TRIALS: usize = 3;
const LOOPBACK_BYTES: u64 = 1024 * 1024 * 1024;
const MEMCPY_BUFFER_BYTES: usize = 64 * MIB;
const MEMCPY_ROUNDS: usize = 16;

fn fragment_id() -> FragmentId {
    FragmentId::new(
        ShardletId::new(ObjectId::random(), 0),
        Generation(0),
        FragmentIndex(0),
    )
}

async fn put_phase(
    client: &NodeClient,
    size: usize,
    concurrency: usize,
    operations_max: u64,
    deadline: Duration,
) -> (Phase, Vec<FragmentId>) {
    let payload = Bytes::from(pattern_bytes(size, size as u64));
    let ids: Arc<Vec<FragmentId>> = Arc::new((0..operations_max).map(|_| fragment_id()).collect());
    let client = client.clone();
    let phase_ids = ids.clone();
    let phase = run_phase(
        "PUT",
        concurrency,
        operations_max,
        deadline,
        || None,
        move |number| {
            let (client, payload, ids) = (client.clone(), payload.clone(), phase_ids.clone());
            async move {
                client
                    .put(&ids[number as usize], payload)
                    .await
                    .map_err(|error| format!("PUT of {size} bytes failed: {error}"))?;
                Ok(size as u64)
            }
        },
    )
    .await;
    let written = ids[..phase.operations as usize].to_vec();
    (phase, written)
}

async fn get_phase(
    client: &NodeClient,
    ids: Vec<FragmentId>,
    size: usize,
    deadline: Duration,
) -> Phase {
    let client = client.clone();
    let ids = Arc::new(ids);
    run_phase(
        "GET",
        LARGE_CONCURRENCY,
        LARGE_GETS_MAX,
        deadline,
        || None,
        move |number| {
            let (client, ids) = (client.clone(), ids.clone());
            async move {
                let id = ids[number as usize % ids.len()];
                let mut stream = client.get(&id).await.expect("GET starts");
                let mut received = 0;
                // Stream, never buffer: the client verifies the whole-fragment CRC at the end.
                while let Some(chunk) = stream.next().await {
                    received += chunk.expect("GET body").len();
                }
                assert_eq!(received, size, "GET returned the whole fragment");
                Ok(size as u64)
            }
        },
    )
    .await
}

fn memcpy_gigabytes_per_second() -> f64 {
    let source = vec![0xa5u8; MEMCPY_BUFFER_BYTES];
    let mut destination = vec![0u8; MEMCPY_BUFFER_BYTES];
    destination.copy_from_slice(&source); // fault the pages in before timing
    let begin = Instant::now();
    for round in 0..MEMCPY_ROUNDS {
        destination.copy_from_slice(black_box(&source));
        black_box(&mut destination[round]);
    }
    (MEMCPY_BUFFER_BYTES * MEMCPY_ROUNDS) as f64 / 1e9 / begin.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; accept and ignore libtest-style arguments.
    let seconds: u64 = std::env::var("SHARDLET_BENCH_SECONDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .filter(|seconds| *seconds > 0)
        .unwrap_or(10);
    let parent_dir = std::env::var("SHARDLET_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".to_string());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(Duration::from_secs(seconds), parent_dir.into()));
}

/// The 1-minute load average: other work on the same cores (builds, other benches)
/// lowers every number here, so the result line carries it.
fn load_average_1m() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

async fn run(deadline: Duration, parent_dir: std::path::PathBuf) {
    let cores = std::thread::available_parallelism().map_or(0, |cores| cores.get());
    let load_before = load_average_1m();
    println!("shardlet storage node load benchmark: {cores} cores, phases bounded by {deadline:?}");
    let memcpy = (0..LIMIT_TRIALS)
        .map(|_| memcpy_gigabytes_per_second())
        .fold(0.0, f64::max);
    let loopback = loopback::loopback_bytes_per_second(LOOPBACK_BYTES, LIMIT_TRIALS).await / 1e6;

    let mut node = NodeProcess::start(
        &shardlet_binary!(),
        NodeOptions {
            parent_dir: Some(parent_dir),
            log_filter: "warn".to_string(),
            ..NodeOptions::default()
        },
    )
    .await;
    println!(
        "node pid {:?} on {}, data in {}",
        node.pid(),
        node.address,
        node.data_dir.display()
    );
    // The node's own key (`node-N`), as a gateway derives it from `storage`.
    let root = shardlet_auth::ClusterSecret::new(&node.secret).expect("a valid secret");
    let name = shardlet_auth::KeyName::Node(
        shardlet_auth::NodeName::parse(&node.options.name()).expect("the kit's node name"),
    );
    let key = shardlet_auth::SigningKey::new(name, root.derive(name));
    let options = ClientOptions {
        idle_connections_per_node_max: SMALL_WRITERS,
        ..ClientOptions::default()
    };
    let client = NodeClient::with_options(&format!("http://{}", node.address), key, options)
        .expect("a node client");

    let (small, _) = put_phase(&client, 4 * KIB, SMALL_WRITERS, SMALL_PUTS_MAX, deadline).await;
    let (single, _) = put_phase(&client, 4 * KIB, 1, SINGLE_WRITER_PUTS_MAX, deadline / 2).await;
    let (large_put, large_ids) =
        put_phase(&client, MIB, LARGE_CONCURRENCY, LARGE_PUTS_MAX, deadline).await;
    assert!(!large_ids.is_empty(), "at least one 1 MiB put finished");
    let large_get = get_phase(&client, large_ids, MIB, deadline).await;

    let status = node.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "the node stopped cleanly: {status}");

    let load_after = load_average_1m();
    println!();
    println!(
        "1-minute load average: {load_before:.2} before, {load_after:.2} after ({cores} cores)"
    );
    println!("| measurement | result | p50 ms | p99 ms | ops |");
    println!("|---|---|---|---|---|");
    println!("| memcpy (one core, best of {LIMIT_TRIALS}) | {memcpy:.1} GB/s | | | |");
    println!("| loopback TCP, 1 stream, 1 MiB writes, best of {LIMIT_TRIALS} | {loopback:.0} MB/s | | | |");
    let rows: [(&str, &Phase, bool); 4] = [
        ("4 KiB PUT, 64 writers, fsync", &small, false),
        ("4 KiB PUT, 1 writer, fsync", &single, false),
        ("1 MiB PUT, 4 writers, fsync", &large_put, true),
        ("1 MiB GET, 4 readers", &large_get, true),
    ];
    for (name, phase, throughput) in rows {
        let result = if throughput {
            format!(
                "{:.0} MB/s ({:.0}% of loopback)",
                phase.megabytes_per_second(),
                100.0 * phase.megabytes_per_second() / loopback
            )
        } else {
            format!("{:.0} puts/s", phase.per_second())
        };
        println!(
            "| {name} | {result} | {:.2} | {:.2} | {} |",
            phase.latency_ms(0.5),
            phase.latency_ms(0.99),
            phase.operations
        );
    }
    println!();
    println!(
        "RESULT bench=storage_node_load cores={cores} load_average_1m_before={load_before:.2} \
         load_average_1m_after={load_after:.2} memcpy_gigabytes_per_second={memcpy:.2} \
         loopback_megabytes_per_second={loopback:.0} \
         put_4k_per_second_64_writers={:.0} put_4k_latency_ms_p50={:.2} put_4k_latency_ms_p99={:.2} \
         put_4k_per_second_1_writer={:.0} \
         put_1m_megabytes_per_second={:.0} get_1m_megabytes_per_second={:.0} \
         get_1m_latency_ms_p50={:.2}",
        small.per_second(),
        small.latency_ms(0.5),
        small.latency_ms(0.99),
        single.per_second(),
        large_put.megabytes_per_second(),
        large_get.megabytes_per_second(),
        large_get.latency_ms(0.5),
    );
}
