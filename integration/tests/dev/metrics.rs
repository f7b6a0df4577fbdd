//! What operators scrape: every metric name of the contract with the dashboard and the
//! alerts (docs/metrics.md) on a running `shardlet dev`'s `/metrics`, scraped (not
//! grepped from source), without special traffic beyond a few S3 requests; none of the
//! names issue 16 renamed; every exposition lint-free for `promtool check metrics`; and
//! a `shardlet dev` given a model makes its controller ask the predictor.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use shardlet_testkit::dev_cluster::DEV_NODE_COUNT;
use shardlet_testkit::ports::free_port_run;
use shardlet_testkit::{metric_total, shardlet_binary, wait_until, DevCluster, S3Client};

/// Start-up is done when `DevCluster` returns; this covers the first passes that fill
/// the per-node series (the first probe, the first risk update) and the stock pass
/// (every 10 s in `shardlet dev`) on a loaded 2-core machine.
const METRICS_DEADLINE: Duration = Duration::from_secs(120);

/// Every service's `/metrics`.
const EVERY_SERVICE: &[&str] = &[
    "shardlet_build_info",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
    "process_virtual_memory_bytes",
];

const GATEWAY: &[&str] = &[
    "shardlet_gateway_requests_total",
    "shardlet_gateway_request_seconds",
    "shardlet_gateway_read_bytes_total",
    "shardlet_gateway_written_bytes_total",
    "shardlet_gateway_credential_cache_total",
    "shardlet_gateway_degraded_reads_total",
    "shardlet_gateway_fragment_write_retries_total",
    "shardlet_gateway_access_denied_total",
];

const NODE: &[&str] = &[
    "shardlet_node_info",
    "shardlet_node_stored_fragments",
    "shardlet_node_stored_fragment_bytes",
    "shardlet_node_disk_capacity_bytes",
    "shardlet_node_disk_free_bytes",
];

const CONTROLLER: &[&str] = &[
    "shardlet_controller_node_info",
    "shardlet_controller_node_risk",
    "shardlet_controller_evacuate_risk_threshold",
    "shardlet_controller_shardlets",
    "shardlet_controller_logical_bytes",
    "shardlet_controller_stored_bytes",
    "shardlet_controller_mttdl_seconds",
    "shardlet_controller_mttdl_target_seconds",
    "shardlet_controller_repair_duration_seconds",
    "shardlet_controller_repair_backlog_oldest_seconds",
    "shardlet_controller_io_budget_bytes_per_second",
    "shardlet_controller_repair_moved_bytes_total",
    "shardlet_controller_transition_moved_bytes_total",
    "shardlet_controller_rebalance_moved_bytes_total",
    "shardlet_controller_rebalance_moved_bytes",
    "shardlet_controller_rebalance_remaining_bytes",
    "shardlet_controller_scrub_verified_bytes_total",
    "shardlet_controller_transitions_total",
    "shardlet_controller_bucket_objects",
    "shardlet_controller_bucket_logical_bytes",
    "shardlet_controller_unrecoverable_shardlets",
    "shardlet_controller_shardlets_below_target",
    "shardlet_controller_lease_active",
    "shardlet_controller_nodes",
    "shardlet_controller_repairs_queued",
    "shardlet_controller_scrub_findings_total",
    "shardlet_controller_risk_source",
];

/// `shardlet_meta_raft_follower_lag_entries` is missing on purpose: it has a series per
/// follower on the leader only, and `shardlet dev` runs one member.
const META: &[&str] = &[
    "shardlet_meta_raft_is_leader",
    "shardlet_meta_raft_has_leader",
    "shardlet_meta_raft_leader_changes_total",
    "shardlet_meta_raft_term",
    "shardlet_meta_raft_applied_index",
    "shardlet_meta_raft_committed_index",
    "shardlet_meta_raft_last_log_index",
    "shardlet_meta_raft_members",
    "shardlet_meta_snapshot_last_build_seconds",
    "shardlet_meta_snapshot_last_install_seconds",
];

const PREDICTOR: &[&str] = &["shardlet_predictor_requests_total"];

/// The names issue 16 replaced: none may be exported any more.
const RENAMED: &[&str] = &[
    "shardlet_gateway_bytes_read_total",
    "shardlet_gateway_bytes_written_total",
    "shardlet_controller_repair_bytes_moved_total",
    "shardlet_controller_transition_bytes_moved_total",
    "shardlet_controller_scrub_bytes_verified_total",
    "shardlet_controller_rebalance_bytes_moved",
    "shardlet_controller_rebalance_bytes_remaining",
    "shardlet_controller_transitions_done_total",
    "shardlet_controller_transitions_failed_total",
    "shardlet_meta_snapshot_last_build_milliseconds",
    "shardlet_meta_snapshot_last_install_milliseconds",
    "shardlet_node_fragment_bytes_stored",
    "shardlet_node_fragments_stored",
];

/// Whether `text` has a sample of the family `name` (of a histogram: its `_count`).
fn has_samples(text: &str, name: &str) -> bool {
    let histogram = text.contains(&format!("# TYPE {name} histogram\n"));
    let sample = if histogram {
        format!("{name}_count")
    } else {
        name.to_string()
    };
    text.lines().any(|line| {
        line.strip_prefix(sample.as_str())
            .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
    })
}

/// The names of `expected` that `text` has no sample of, and the renamed names it has.
fn problems(service: &str, text: &str, expected: &[&str]) -> Vec<String> {
    let mut problems: Vec<String> = EVERY_SERVICE
        .iter()
        .chain(expected)
        .filter(|name| !has_samples(text, name))
        .map(|name| format!("{service}: no {name}"))
        .collect();
    problems.extend(
        RENAMED
            .iter()
            .filter(|name| text.contains(&format!("# TYPE {name} ")))
            .map(|name| format!("{service}: still exports {name}")),
    );
    if !text
        .lines()
        .any(|line| line.starts_with("shardlet_build_info{commit=") && line.ends_with(" 1"))
    {
        problems.push(format!("{service}: shardlet_build_info is not 1"));
    }
    problems
}

async fn scrape(port: u16) -> String {
    match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// `promtool check metrics` on `text`: its findings (empty when it finds none).
fn promtool_findings(promtool: &Path, text: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(text.as_bytes())
        .expect("the exposition reaches promtool");
    let output = child.wait_with_output().expect("promtool ends");
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() && findings.trim().is_empty() {
        String::new()
    } else {
        format!("exit {}: {findings}", output.status)
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|directory| directory.join(program))
            .find(|path| path.is_file())
    })
}

/// A tiny model (a simulated fleet of 200 disks, 4 epochs; about a second): enough for
/// the sidecar to load and score, not to predict well.
fn train_tiny_model(predictor: &Path, directory: &Path) -> PathBuf {
    let fleet = directory.join("fleet");
    let model = directory.join("model");
    for arguments in [
        vec![
            "simulate",
            "--nodes",
            "200",
            "--days",
            "90",
            "--failure-rate-scale",
            "10",
            "--out",
        ],
        vec![
            "train",
            "--horizon-days",
            "14",
            "--window-intervals",
            "3",
            "--hidden-size",
            "8",
            "--epochs",
            "4",
            "--data",
        ],
    ] {
        let mut command = Command::new(predictor);
        command.args(&arguments);
        if arguments[0] == "simulate" {
            command.arg(&fleet);
        } else {
            command.arg(&fleet).arg("--out").arg(&model);
        }
        let output = command.output().expect("shardlet-predictor runs");
        assert!(
            output.status.success(),
            "shardlet-predictor {arguments:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    model
}

#[tokio::test]
async fn every_service_exports_the_metric_contract_lint_free_and_dev_asks_its_predictor() {
    const TEST: &str =
        "every_service_exports_the_metric_contract_lint_free_and_dev_asks_its_predictor";
    let binary = shardlet_binary!();
    let predictor = binary.path().with_file_name("shardlet-predictor");
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let predictor_port = free_port_run(1);
    let model = predictor
        .is_file()
        .then(|| train_tiny_model(&predictor, scratch.path()));
    let model_text = model.as_ref().map(|path| path.display().to_string());
    let port_text = predictor_port.to_string();
    let mut arguments = vec!["--predictor-port", port_text.as_str()];
    match &model_text {
        Some(model) => arguments.extend(["--predictor-model", model.as_str()]),
        None => binary.skipped(
            TEST,
            "shardlet-predictor is not built (cargo build -p shardlet-predictor): the predictor's metrics and the controller asking it are not checked",
        ),
    }
    let dev = DevCluster::start_with_arguments(&binary, &arguments).await;

    // A few S3 requests: the byte counters move and a bucket appears in the stocks.
    let s3 = S3Client::new(dev.access.clone());
    s3.create_bucket("metrics").await.expect("CreateBucket");
    let body = vec![7u8; 100_000];
    s3.put_object("metrics", "object", body.clone(), None)
        .await
        .expect("PutObject");
    assert_eq!(
        s3.get_object("metrics", "object", None)
            .await
            .expect("GetObject"),
        body
    );

    let mut services: Vec<(String, u16, &[&str])> = vec![
        ("gateway".into(), dev.ports.gateway_admin, GATEWAY),
        ("controller".into(), dev.ports.controller, CONTROLLER),
        ("meta".into(), dev.ports.meta, META),
    ];
    for node in 0..DEV_NODE_COUNT {
        services.push((
            format!("node-{}", node + 1),
            dev.ports.node_base + node,
            NODE,
        ));
    }
    if model.is_some() {
        services.push(("predictor".into(), predictor_port, PREDICTOR));
    }
    let expositions = wait_until(
        METRICS_DEADLINE,
        "every service exports every name of the contract",
        || {
            let services = services.clone();
            async move {
                let mut expositions = Vec::new();
                let mut missing = Vec::new();
                for (service, port, expected) in &services {
                    let text = scrape(*port).await;
                    missing.extend(problems(service, &text, expected));
                    expositions.push((service.clone(), text));
                }
                if !missing.is_empty() {
                    eprintln!("waiting for: {missing:?}");
                    return None;
                }
                Some(expositions)
            }
        },
    )
    .await;
    let text_of = |service: &str| {
        expositions
            .iter()
            .find(|(name, _)| name == service)
            .map(|(_, text)| text.clone())
            .unwrap_or_default()
    };
    let gateway = text_of("gateway");
    assert!(
        metric_total(&gateway, "shardlet_gateway_written_bytes_total") >= Some(100_000.0)
            && metric_total(&gateway, "shardlet_gateway_read_bytes_total") >= Some(100_000.0),
        "the gateway's byte counters did not count the object:\n{gateway}"
    );
    let node_info = text_of("node-1")
        .lines()
        .find(|line| line.starts_with("shardlet_node_info{"))
        .unwrap_or_default()
        .to_string();
    assert!(
        node_info.contains("zone=\"") && !node_info.contains("zone=\"\""),
        "node 1 does not say its zone: {node_info}"
    );

    // The stock pass saw the object: the bucket and the bytes by scheme.
    let controller_port = dev.ports.controller;
    wait_until(
        METRICS_DEADLINE,
        "the controller's stocks count the bucket and its bytes",
        || async move {
            let text = scrape(controller_port).await;
            let objects = text
                .lines()
                .find_map(|line| {
                    line.strip_prefix("shardlet_controller_bucket_objects{bucket=\"metrics\"} ")
                })
                .and_then(|value| value.parse::<f64>().ok());
            let logical = metric_total(&text, "shardlet_controller_logical_bytes").unwrap_or(0.0);
            let stored = metric_total(&text, "shardlet_controller_stored_bytes").unwrap_or(0.0);
            objects == Some(1.0) && logical == 100_000.0 && stored > logical
        },
    )
    .await;

    if model.is_some() {
        // The controller asks the predictor: the source in force, and every node's
        // risk from it.
        wait_until(
            METRICS_DEADLINE,
            "the controller takes node risk from the predictor",
            || async move {
                let text = scrape(controller_port).await;
                let from_predictor = text
                    .lines()
                    .filter(|line| {
                        line.starts_with("shardlet_controller_node_risk{")
                            && line.contains("source=\"predictor\"")
                    })
                    .count();
                text.contains("shardlet_controller_risk_source{source=\"predictor\"} 1")
                    && from_predictor == usize::from(DEV_NODE_COUNT)
            },
        )
        .await;
        let scored = metric_total(
            &scrape(predictor_port).await,
            "shardlet_predictor_requests_total",
        );
        assert!(scored >= Some(1.0), "the predictor answered no request");
    }

    let Some(promtool) = find_on_path("promtool") else {
        binary.skipped(
            TEST,
            "promtool is not installed (Debian package prometheus): the expositions were not linted",
        );
        return;
    };
    let mut findings = Vec::new();
    for (service, text) in &expositions {
        let found = promtool_findings(&promtool, text);
        if !found.is_empty() {
            findings.push(format!("{service}: {found}"));
        }
    }
    assert!(
        findings.is_empty(),
        "promtool check metrics:\n{}",
        findings.join("\n")
    );
}
