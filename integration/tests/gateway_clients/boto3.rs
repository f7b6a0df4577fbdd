//! boto3 (latest from PyPI, default checksum settings) against a cluster of real
//! processes: `integration/clients/boto3_suite.py` runs every check and names each one
//! that fails; this test requires all of them to pass.

use std::time::Duration;

use shardlet_testkit::{clients_dir, shardlet_binary, Cluster};

use crate::tools;

/// The whole suite, including a 21 MiB managed transfer and a dozen multi-MiB objects.
const SUITE_DEADLINE: Duration = Duration::from_secs(300);
const NODE_COUNT: usize = 12;
/// How many checks the suite has at least (`boto3_suite.py --list`).
const CHECKS_MIN: usize = 32;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_suite_passes_every_check() {
    let cluster = Cluster::start(&shardlet_binary!(), NODE_COUNT).await;
    let mut command = tools::client_command(&tools::python());
    command
        .arg(clients_dir().join("boto3_suite.py"))
        .args(["--endpoint", &cluster.access.endpoint])
        .args(["--access-key", &cluster.access.access_key])
        .args(["--secret-key", &cluster.access.secret_key])
        .args(["--region", &cluster.access.region])
        // No ~/.aws file may change what boto3 does (AWS_* variables are cleared).
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    // For working on one behaviour: SHARDLET_TEST_BOTO3_ONLY="check_name other_check".
    let only = std::env::var("SHARDLET_TEST_BOTO3_ONLY").unwrap_or_default();
    let only: Vec<&str> = only.split_whitespace().collect();
    if !only.is_empty() {
        command.arg("--only").args(&only);
    }
    let finished = tools::run(command, SUITE_DEADLINE);
    let stdout = finished.stdout();
    println!("{stdout}");
    let failed: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("FAIL "))
        .collect();
    assert!(
        finished.success() && failed.is_empty(),
        "boto3 checks failed ({}):\n{}\n--- full output ---\n{stdout}\n--- stderr ---\n{}",
        finished.output.status,
        failed.join("\n"),
        finished.stderr()
    );
    // The suite really ran its checks (an early crash would print no `ok` line).
    let passed = stdout
        .lines()
        .filter(|line| line.starts_with("ok "))
        .count();
    let expected = if only.is_empty() {
        CHECKS_MIN
    } else {
        only.len()
    };
    assert!(
        passed >= expected,
        "only {passed} checks reported ok:\n{stdout}"
    );
}
