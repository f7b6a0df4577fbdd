//! `shardlet dev` as a process, around the S3 path rather than through it: its stdout
//! closed by whoever read it, and a signal in the middle of start-up. Real processes
//! (metadata member, 12 storage nodes, gateway, controller), started by `shardlet dev`
//! itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod logs;
mod metrics;

use std::process::Stdio;
use std::time::Duration;

use shardlet_testkit::dev_cluster::dev_command;
use shardlet_testkit::local_cluster::health_ok;
use shardlet_testkit::process::ChildProcess;
use shardlet_testkit::{shardlet_binary, wait_until, DevCluster, NodeHttp, ShardletBinary};

/// Start-up of 12 nodes, the metadata member and the gateway on a loaded 2-core machine.
const READY_DEADLINE: Duration = Duration::from_secs(120);
/// `shardlet dev` gives its children 15 s after SIGTERM before SIGKILL.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// An output whose reader is already gone: every write to it fails with EPIPE, as after
/// `shardlet dev | head -3` or a script that read the credentials and closed its end.
/// (A socket pair with one end closed: `std::io::pipe` is newer than our MSRV.)
fn closed_pipe() -> Stdio {
    let (writer, reader) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
    drop(reader);
    std::os::fd::OwnedFd::from(writer).into()
}

/// Polls until `ready(dev)` holds; panics with the logs if `shardlet dev` exits first or
/// the deadline passes.
async fn wait_while_running<F, Fut>(dev: &mut DevCluster, what: &str, mut ready: F)
where
    F: FnMut(&DevCluster) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    // On a timeout the panic drops `dev`, which prints every log.
    wait_until(READY_DEADLINE, what, || {
        if let Some(status) = dev.exit_status() {
            panic!(
                "shardlet dev exited ({status}) before {what}\n{}",
                dev.logs()
            );
        }
        ready(dev)
    })
    .await;
}

/// Stops `dev` with SIGTERM and checks it exited with status 0 and took every component
/// it had started with it.
async fn terminate_and_check_everything_stopped(dev: &mut DevCluster) {
    let status = dev.terminate(STOP_DEADLINE).await;
    let started = dev.components();
    assert!(
        !started.is_empty(),
        "no component was recorded in {}",
        dev.data.join("logs").display()
    );
    let running = dev.running_components();
    assert!(
        status.success() && running.is_empty(),
        "after SIGTERM shardlet dev exited with {status}; still running: {running:?} of {started:?}\n{}",
        dev.logs()
    );
}

#[tokio::test]
async fn dev_keeps_serving_with_its_stdout_closed_and_sigterm_stops_every_component() {
    let binary = shardlet_binary!();
    // Keys in `shardlet dev`'s own environment (another cluster's, say) must reach no
    // component: each holds only the key file it is handed.
    let foreign_secret = hex::encode(rand::random::<[u8; 32]>());
    let mut dev = DevCluster::spawn_in_with(
        &binary,
        DevCluster::new_root(&binary),
        closed_pipe(),
        closed_pipe(),
        |command| {
            command
                .env("SHARDLET_CLUSTER_SECRET", &foreign_secret)
                .env("SHARDLET_KEYS", format!("storage={foreign_secret}"));
        },
    );
    let gateway = format!("127.0.0.1:{}", dev.ports.s3);
    wait_while_running(&mut dev, "the gateway answered /health", |_| {
        health_ok(&gateway)
    })
    .await;
    // The controller starts after the gateway; the welcome lines follow once it answers.
    wait_while_running(&mut dev, "the controller started", |dev| {
        let started = dev
            .components()
            .iter()
            .any(|(name, _)| name == "controller");
        async move { started }
    })
    .await;
    assert!(
        health_ok(&gateway).await,
        "the gateway stopped answering\n{}",
        dev.logs()
    );
    for (name, pid) in dev.components() {
        let environment = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let environment = String::from_utf8_lossy(&environment);
        for variable in ["SHARDLET_CLUSTER_SECRET=", "SHARDLET_KEYS="] {
            assert!(
                !environment
                    .split('\0')
                    .any(|entry| entry.starts_with(variable)),
                "{name} inherited {variable}"
            );
        }
    }
    // Secrets and data are the owner's only.
    let mode = |path: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&dev.data), 0o700, "the data directory");
    for file in ["cluster-secret", "s3-credentials.json"] {
        assert_eq!(mode(&dev.data.join(file)), 0o600, "{file}");
    }
    // Every role's key file (one per component, and the admin's).
    assert_eq!(mode(&dev.data.join("keys")), 0o700, "the key directory");
    let key_files: Vec<_> = std::fs::read_dir(dev.data.join("keys"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(key_files.len(), 5 + 12, "{key_files:?}");
    for file in key_files {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    terminate_and_check_everything_stopped(&mut dev).await;
}

#[tokio::test]
async fn sigterm_during_start_up_stops_every_component_started_so_far() {
    let binary = shardlet_binary!();
    let mut dev = DevCluster::spawn_in(
        &binary,
        DevCluster::new_root(&binary),
        Stdio::null(),
        Stdio::null(),
    );
    // The metadata member and the storage nodes are spawned first; the gateway only once
    // they all answer, so this is well inside start-up.
    wait_while_running(&mut dev, "the storage nodes were started", |dev| {
        let started = dev.components().iter().any(|(name, _)| name == "node-11");
        async move { started }
    })
    .await;
    terminate_and_check_everything_stopped(&mut dev).await;
}

#[tokio::test]
async fn a_second_dev_on_the_same_ports_refuses_to_start_and_leaves_the_first_alone() {
    let binary = shardlet_binary!();
    let first = DevCluster::start(&binary).await;
    let second = DevCluster::new_root(&binary);
    let second_data = second.path().join("data");
    let stdout_path = second.path().join("dev.stdout");
    let stderr_path = second.path().join("dev.stderr");
    // Killed, with anything it started, if it is still running when dropped.
    let mut child = ChildProcess::spawn_with_output(
        "second dev",
        dev_command(&binary, &second_data, &first.ports),
        std::fs::File::create(&stdout_path).unwrap().into(),
        std::fs::File::create(&stderr_path).unwrap().into(),
    )
    .expect("shardlet dev starts");
    let status = child
        .wait_for_exit(READY_DEADLINE)
        .await
        .unwrap_or_else(|| {
            panic!("a second dev on the same ports was still running after {READY_DEADLINE:?}")
        });
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    assert!(!status.success(), "a second dev started: {stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{} is not free", first.ports.s3))
            && stderr.contains("another `shardlet dev`")
            && stderr.contains("--s3-port"),
        "the refusal names the port, the likely cause and the flag: {stderr}"
    );
    assert!(
        !second_data.exists(),
        "the refused dev created its data directory: {stderr}"
    );
    assert!(
        !stdout.contains("stopped"),
        "nothing was started, so nothing was stopped"
    );
    let gateway = format!("127.0.0.1:{}", first.ports.s3);
    assert!(
        health_ok(&gateway).await,
        "the first cluster stopped answering\n{}",
        first.logs()
    );
}

/// `shardlet admin layout ARGUMENTS` against dev's metadata member, with its secret.
fn layout(binary: &ShardletBinary, dev: &DevCluster, arguments: &[&str]) -> String {
    let output = binary
        .command()
        .args(["admin", "layout"])
        .args(arguments)
        .args(["--meta", &format!("127.0.0.1:{}", dev.ports.meta)])
        .arg("--secret-file")
        .arg(dev.data.join("cluster-secret"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "layout {arguments:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_dev_keeps_the_layout_in_meta_raft_and_its_nodes_learn_their_ids() {
    let binary = shardlet_binary!();
    let mut dev = DevCluster::start(&binary).await;
    // The first start imported examples/topology.toml as version 1.
    let shown = layout(&binary, &dev, &["show"]);
    assert!(
        shown.contains("cluster layout version 1 (by import") && shown.contains("eu-west-a-1"),
        "{shown}"
    );
    layout(&binary, &dev, &["assign", "eu-west-a-1", "--weight", "2"]);
    layout(&binary, &dev, &["apply", "--version", "2"]);

    dev.restart(&binary).await;
    // Not imported again: the operator's version 2 is still the layout.
    let shown = layout(&binary, &dev, &["show"]);
    assert!(
        shown.contains("cluster layout version 2 (by apply") && shown.contains("2.000"),
        "{shown}"
    );
    // Every node announces itself to the controller and learns its id from its name.
    let first = NodeHttp {
        address: format!("127.0.0.1:{}", dev.ports.node_base)
            .parse()
            .unwrap(),
        secret: std::fs::read_to_string(dev.data.join("cluster-secret"))
            .unwrap()
            .trim()
            .to_string(),
        name: "eu-west-a-1".into(),
    };
    wait_until(
        Duration::from_secs(120),
        "the first node learns id 1 from the layout",
        || async { first.health().await["node_id"] == 1 },
    )
    .await;
    terminate_and_check_everything_stopped(&mut dev).await;
}
