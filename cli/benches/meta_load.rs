//! Metadata write load: committed writes per second and latency for 1, 16 and 64
//! concurrent clients, on one member and on three (separate processes, loopback), with
//! fsync on — against etcd 3.4 driven through its JSON gateway by the SAME client code
//! (`put_loop`), so the two are compared like for like. Prints the machine's fsync
//! latency measured in the same run.
//!
//! Run: `cargo bench -p shardlet --bench meta_load` (or `make bench`).
//! `META_LOAD_SECONDS` sets the measuring time per cell (default 4).
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use shardlet_meta::auth::{ClientAuth, Sender};
use shardlet_testkit::meta_member::meta_client_key;
use shardlet_testkit::meta_member::{MemberOptions, MetaMember};
use shardlet_testkit::ports::free_port;
use shardlet_testkit::process::ChildProcess;
use shardlet_testkit::{shardlet_binary, wait_until};

const SECRET: &str = "meta-load-bench-secret";
const CONCURRENCY: [usize; 3] = [1, 16, 64];
const VALUE_BYTES: usize = 100;
const ETCD: &str = "/usr/bin/etcd";
const START_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct Target {
    /// Where writes go (the leader).
    put_url: String,
    /// `Some`: sign requests for Shardlet; `None`: etcd (no auth).
    auth: Option<ClientAuth>,
}

#[derive(Clone, Copy, Debug)]
struct Cell {
    writes_per_second: f64,
    latency_ms_p50: f64,
    latency_ms_p99: f64,
    errors: usize,
}

async fn shardlet_cluster(root: &Path, members: u64) -> (Vec<MetaMember>, Target) {
    // Default raft timings (unlike the tests'): the benchmark measures what a deployment
    // gets.
    let options = MemberOptions {
        secret: SECRET.to_string(),
        log_filter: "warn".to_string(),
        arguments: Vec::new(),
    };
    let mut processes = Vec::new();
    let mut addresses = Vec::new();
    for member_id in 1..=members {
        let member = MetaMember::start(
            &shardlet_binary!(),
            member_id,
            root,
            member_id == 1,
            &options,
        )
        .await;
        addresses.push(member.address.clone());
        processes.push(member);
    }
    let client = shardlet_meta::MetaClient::new(
        vec![addresses[0].clone()],
        meta_client_key(SECRET, "admin"),
        shardlet_meta::client::ClientOptions::default(),
    )
    .unwrap();
    wait_until(START_DEADLINE, "a shardlet leader", || async {
        client.status_of(&addresses[0]).await.ok()?.leader_id
    })
    .await;
    for member_id in 2..=members {
        let address = &addresses[(member_id - 1) as usize];
        client.add_learner(member_id, address).await.unwrap();
    }
    if members > 1 {
        client
            .change_membership((1..=members).collect())
            .await
            .unwrap();
    }
    let target = Target {
        put_url: format!("http://{}/kv/put", addresses[0]),
        auth: Some(ClientAuth::new(meta_client_key(SECRET, "gateway")).unwrap()),
    };
    (processes, target)
}

async fn etcd_cluster(root: &Path, members: usize) -> (Vec<ChildProcess>, Target) {
    let peers: Vec<(String, u16, u16)> = (0..members)
        .map(|index| (format!("etcd{index}"), free_port(), free_port()))
        .collect();
    let initial_cluster = peers
        .iter()
        .map(|(name, _, peer)| format!("{name}=http://127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    std::fs::create_dir_all(root).unwrap();
    let mut processes = Vec::new();
    for (name, client_port, peer_port) in &peers {
        let mut command = Command::new(ETCD);
        command
            .args(["--name", name])
            .arg("--data-dir")
            .arg(root.join(name))
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{client_port}"),
            ])
            .args([
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{client_port}"),
            ])
            .args([
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{peer_port}"),
            ])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer_port}"),
            ])
            .args(["--initial-cluster", &initial_cluster])
            .args(["--initial-cluster-state", "new"]);
        let log = root.join(format!("{name}.log"));
        processes.push(ChildProcess::spawn(name, command, &log).unwrap());
    }
    let http = reqwest::Client::new();
    // Writes go to the leader, as they do for Shardlet.
    let leader_port = wait_until(START_DEADLINE, "an etcd leader", || async {
        for (_, client_port, _) in &peers {
            let status: serde_json::Value = http
                .post(format!(
                    "http://127.0.0.1:{client_port}/v3/maintenance/status"
                ))
                .body("{}")
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let member = status["header"]["member_id"].as_str()?;
            if status["leader"].as_str() == Some(member) {
                return Some(*client_port);
            }
        }
        None
    })
    .await;
    let target = Target {
        put_url: format!("http://127.0.0.1:{leader_port}/v3/kv/put"),
        auth: None,
    };
    (processes, target)
}

/// The one client loop both systems are driven by: JSON `{key, value}` with base64 bytes.
async fn put_loop(
    http: reqwest::Client,
    target: Target,
    client: usize,
    until: Instant,
) -> (Vec<Duration>, usize) {
    let value = STANDARD.encode(vec![b'v'; VALUE_BYTES]);
    let mut url_parts = target.put_url.splitn(4, '/');
    let host = url_parts.nth(2).unwrap().to_string();
    let path = format!("/{}", url_parts.next().unwrap());
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut sequence = 0_u64;
    while Instant::now() < until {
        sequence += 1;
        let key = STANDARD.encode(format!("bench/{client:03}/{sequence:09}"));
        let body = format!(r#"{{"key":"{key}","value":"{value}"}}"#).into_bytes();
        let started = Instant::now();
        let mut request = http
            .post(&target.put_url)
            .header("content-type", "application/json");
        if let Some(auth) = &target.auth {
            for (name, value) in auth
                .sign("POST", &host, &path, &Sender::Client, &body, false)
                .unwrap()
            {
                request = request.header(name, value);
            }
        }
        match request.body(body).send().await {
            Ok(response) if response.status().is_success() => {
                let _ = response.bytes().await;
                latencies.push(started.elapsed());
            }
            _ => errors += 1,
        }
    }
    (latencies, errors)
}

async fn measure(target: &Target, clients: usize, seconds: f64) -> Cell {
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(clients)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    // Warm-up: connections open, leader settled.
    let warm_until = Instant::now() + Duration::from_millis(500);
    let warm: Vec<_> = (0..clients)
        .map(|client| {
            tokio::spawn(put_loop(
                http.clone(),
                target.clone(),
                client + 1000,
                warm_until,
            ))
        })
        .collect();
    for task in warm {
        task.await.unwrap();
    }
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|client| tokio::spawn(put_loop(http.clone(), target.clone(), client, until)))
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mut part, failed) = task.await.unwrap();
        latencies.append(&mut part);
        errors += failed;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let percentile = |fraction: f64| {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let index = ((latencies.len() as f64 * fraction) as usize).min(latencies.len() - 1);
        latencies[index].as_secs_f64() * 1000.0
    };
    Cell {
        writes_per_second: latencies.len() as f64 / elapsed,
        latency_ms_p50: percentile(0.50),
        latency_ms_p99: percentile(0.99),
        errors,
    }
}

/// 4 KiB write + fdatasync, the cost every durable commit pays at least once.
fn fsync_latency_ms_p50(directory: &Path) -> f64 {
    let path = directory.join("fsync-probe");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0_u8; 4096];
    let mut samples: Vec<f64> = (0..100)
        .map(|_| {
            let started = Instant::now();
            file.write_all(&block).unwrap();
            file.sync_data().unwrap();
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let seconds: f64 = std::env::var("META_LOAD_SECONDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(4.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let root = tempfile::tempdir().unwrap();
        let etcd_available = Path::new(ETCD).exists();
        println!(
            "meta_load: committed puts of {VALUE_BYTES}-byte values over HTTP/JSON, fsync on; {seconds} s per cell"
        );
        let fsync_ms_p50 = fsync_latency_ms_p50(root.path());
        println!(
            "machine: {} cores, 4 KiB write+fdatasync p50 {fsync_ms_p50:.2} ms (one synced writer tops out near {:.0} writes/s)",
            std::thread::available_parallelism().map(|cores| cores.get()).unwrap_or(0),
            1000.0 / fsync_ms_p50
        );
        println!(
            "{:>7} {:>7} | {:>12} {:>8} {:>8} | {:>12} {:>8} {:>8} | {:>10} {:>9}",
            "members", "clients", "shardlet w/s", "p50 ms", "p99 ms", "etcd w/s", "p50 ms", "p99 ms", "w/s ratio", "p99 ratio"
        );
        for members in [1_u64, 3] {
            let shardlet_root = root.path().join(format!("shardlet-{members}"));
            let etcd_root = root.path().join(format!("etcd-{members}"));
            let mut shardlet_cells = Vec::new();
            {
                let (_processes, target) = shardlet_cluster(&shardlet_root, members).await;
                for clients in CONCURRENCY {
                    shardlet_cells.push(measure(&target, clients, seconds).await);
                }
            }
            let mut etcd_cells = Vec::new();
            if etcd_available {
                let (_processes, target) = etcd_cluster(&etcd_root, members as usize).await;
                for clients in CONCURRENCY {
                    etcd_cells.push(measure(&target, clients, seconds).await);
                }
            }
            for (index, clients) in CONCURRENCY.iter().enumerate() {
                let ours = shardlet_cells[index];
                let theirs = etcd_cells.get(index).copied();
                let etcd_text = theirs.map_or("etcd not installed".to_string(), |cell| {
                    format!(
                        "{:>12.0} {:>8.2} {:>8.2} | {:>10.2} {:>9.2}",
                        cell.writes_per_second,
                        cell.latency_ms_p50,
                        cell.latency_ms_p99,
                        ours.writes_per_second / cell.writes_per_second,
                        ours.latency_ms_p99 / cell.latency_ms_p99
                    )
                });
                println!(
                    "{members:>7} {clients:>7} | {:>12.0} {:>8.2} {:>8.2} | {etcd_text}",
                    ours.writes_per_second, ours.latency_ms_p50, ours.latency_ms_p99
                );
                let errors = ours.errors + theirs.map_or(0, |cell| cell.errors);
                if errors > 0 {
                    println!("        (errors: shardlet {}, etcd {})", ours.errors, theirs.map_or(0, |cell| cell.errors));
                }
            }
        }
        println!("w/s ratio > 1: Shardlet commits more writes per second; p99 ratio < 1: lower tail latency.");
    });
}
