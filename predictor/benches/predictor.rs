//! `cargo bench -p shardlet-predictor --bench predictor`: training throughput and
//! scoring latency of the sidecar over real HTTP on loopback, with the machine's load
//! printed beside the numbers (the box's two cores are shared).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use shardlet_core::NodeId;
use shardlet_predictor::backblaze::import_fleet;
use shardlet_predictor::features::INPUT_WIDTH;
use shardlet_predictor::simulator::{simulate, SimulationConfig};
use shardlet_predictor::train::{train, TrainConfig};
use shardlet_predictor_api::api::NodeWindow;
use shardlet_predictor_api::client::{ClientConfig, PredictorClient};

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    let position = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[position.min(sorted.len() - 1)]
}

fn summary(mut samples_ms: Vec<f64>) -> (f64, f64) {
    samples_ms.sort_by(f64::total_cmp);
    (percentile(&samples_ms, 0.5), percentile(&samples_ms, 0.99))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing useful. Both
    // run the whole thing: it is short.
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "machine: {cores} cores, load average at start {}",
        load_average()
    );

    let data = tempfile::tempdir().unwrap();
    let config = SimulationConfig {
        nodes: 1000,
        days: 200,
        seed: 9,
        failure_rate_scale: 2.0,
    };
    simulate(&config, data.path(), |_| {}).unwrap();
    let fleet = import_fleet(data.path(), |_, _| {}).unwrap();

    let mut train_config = TrainConfig::new(7, 9);
    train_config.epochs_max = 4;
    train_config.patience = 100;
    let trained = train(&fleet, &train_config, "bench", &ProgressBar::hidden()).unwrap();
    println!(
        "training: {:.0} windows/s (window {} x {} inputs, hidden {}, batch {}, 1 torch thread)",
        trained.windows_per_second,
        train_config.window_intervals,
        INPUT_WIDTH,
        train_config.hidden_size,
        train_config.batch_size
    );

    // Direct forward passes, no HTTP.
    let window_numbers = train_config.window_intervals * INPUT_WIDTH;
    let model = trained.model;
    tch::set_num_threads(1);
    let mut direct = Vec::new();
    for batch in [1usize, 100] {
        let encoded = vec![0.1f32; batch * window_numbers];
        let mut samples = Vec::new();
        for iteration in 0..1100 {
            let started = Instant::now();
            let scores = model.predict(&encoded);
            assert_eq!(scores.len(), batch);
            if iteration >= 100 {
                samples.push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        direct.push((batch, summary(samples)));
    }

    // Through the sidecar over loopback HTTP, with the real client.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (address_sender, address_receiver) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let intervals = train_config.window_intervals;
    // Signed requests and answers, as the controller and the sidecar exchange them.
    let key = shardlet_auth::ClusterSecret::new("predictor-bench-root-secret")
        .unwrap()
        .derive(shardlet_auth::KeyName::Predictor);
    let server = runtime.spawn(shardlet_predictor::serve::serve(
        model,
        "127.0.0.1:0".parse().unwrap(),
        shardlet_net::PortConfig::default(),
        key.clone(),
        move |address| address_sender.send(address).unwrap(),
        async {
            let _ = stopped.await;
        },
    ));
    let address = address_receiver
        .recv_timeout(Duration::from_secs(30))
        .unwrap();
    let client =
        PredictorClient::new(&ClientConfig::new(format!("http://{address}"), key)).unwrap();
    let mut over_http = Vec::new();
    for batch in [1u32, 100] {
        let mut row = shardlet_predictor_api::schema::ALL_MISSING;
        row[shardlet_predictor_api::schema::index::CPU_UTILIZATION] = 0.4;
        let windows: Vec<NodeWindow> = (0..batch)
            .map(|node| NodeWindow::from_rows(NodeId(node), &vec![row; intervals]))
            .collect();
        let samples = runtime.block_on(async {
            let mut samples = Vec::new();
            for iteration in 0..1100 {
                let started = Instant::now();
                let response = client.score(windows.clone()).await.unwrap();
                assert_eq!(response.scores.len(), batch as usize);
                if iteration >= 100 {
                    samples.push(started.elapsed().as_secs_f64() * 1000.0);
                }
            }
            samples
        });
        over_http.push((batch, summary(samples)));
    }
    let _ = stop.send(());
    runtime.block_on(server).unwrap().unwrap();

    println!("\n| path | batch (nodes) | latency_ms_p50 | latency_ms_p99 |\n|---|---|---|---|");
    for (batch, (p50, p99)) in direct {
        println!("| forward pass only | {batch} | {p50:.3} | {p99:.3} |");
    }
    for (batch, (p50, p99)) in over_http {
        println!("| POST /v1/score over loopback HTTP (client + JSON + validation) | {batch} | {p50:.3} | {p99:.3} |");
    }
    println!("\nload average at end {}", load_average());
}
