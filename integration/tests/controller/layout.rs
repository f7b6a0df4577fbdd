//! The cluster layout in meta-raft (docs/layout.md) across processes: a node that
//! announces itself is pending until applied, then the running gateway places on it and
//! the controller uses it, without a restart; `apply --version N` is a compare-and-set;
//! every `shardlet admin layout` command refuses bad input by name; a node can announce
//! only under its own name.

use std::process::Output;
use std::time::{Duration, SystemTime};

use shardlet_core::NodeId;
use shardlet_testkit::controller::{controller_metric, controller_status};
use shardlet_testkit::raw_http::{self, Request};
use shardlet_testkit::records::shardlets;
use shardlet_testkit::{
    metric_total, shardlet_binary, signing, wait_until, Cluster, NodeOptions, NodeProcess, S3Client,
};

use crate::support::*;

/// Generous, for a loaded machine: a node's announcer backs off to 15 s between tries,
/// gateways and controllers poll the layout every 2 s (0.5 s here).
const LAYOUT_DEADLINE: Duration = Duration::from_secs(120);

/// `shardlet ARGUMENTS --meta MEMBER` with the cluster secret, success or not.
fn admin_output(cluster: &Cluster, arguments: &[&str]) -> Output {
    cluster
        .binary
        .command()
        .args(arguments)
        .args(["--meta", &cluster.meta.address.to_string()])
        .env("SHARDLET_CLUSTER_SECRET", &cluster.secret)
        .env_remove("SHARDLET_KEYS")
        .output()
        .unwrap()
}

/// The command's stderr, asserting it failed.
fn refused(cluster: &Cluster, arguments: &[&str]) -> String {
    let output = admin_output(cluster, arguments);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "{arguments:?} was accepted: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

async fn gateway_layout_version(cluster: &Cluster) -> f64 {
    metric_total(
        &cluster.gateway_metrics().await,
        "shardlet_gateway_layout_version",
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_node_is_pending_then_applied_and_the_running_gateway_places_on_it() {
    let binary = shardlet_binary!();
    let cluster = Cluster::start(&binary, 4).await;
    let controller = cluster
        .start_controller("controller", &flags(&[("--layout-poll-seconds", "0.5")]))
        .await;
    let shown = cluster.admin(&["admin", "layout", "show"]);
    assert!(shown.contains("cluster layout version 1"), "{shown}");

    // Node 5 starts with a name, a zone and a capacity, and announces itself.
    let controller_url = format!("http://{}", controller.address);
    let node = NodeProcess::start(
        &binary,
        NodeOptions {
            node_id: 5,
            parent_dir: Some(cluster.root.path().join("nodes")),
            secret: Some(cluster.secret.clone()),
            extra_arguments: [
                "--controller",
                &controller_url,
                "--region",
                "region-one",
                "--zone",
                "region-one-a",
                "--capacity",
                "1TiB",
            ]
            .map(String::from)
            .to_vec(),
            ..NodeOptions::default()
        },
    )
    .await;
    wait_until(
        LAYOUT_DEADLINE,
        "layout show lists node 5 as a pending role",
        || async {
            let shown = cluster.admin(&["admin", "layout", "show"]);
            shown.contains("5 assign region=region-one zone=region-one-a capacity=1099511627776")
                && shown.contains("pending role")
                && shown.contains("apply --version 2")
        },
    )
    .await;
    assert_eq!(
        node.client().health().await["node_id"],
        0,
        "no id while pending"
    );

    let applied = cluster.admin(&["admin", "layout", "apply", "--version", "2"]);
    assert!(
        applied.contains("applied cluster layout version 2"),
        "{applied}"
    );
    wait_until(LAYOUT_DEADLINE, "node 5 learns its id", || async {
        node.client().health().await["node_id"] == 5
    })
    .await;
    wait_until(LAYOUT_DEADLINE, "the gateway uses version 2", || async {
        gateway_layout_version(&cluster).await == 2.0
    })
    .await;
    wait_until(LAYOUT_DEADLINE, "the controller uses version 2", || async {
        controller_metric(&controller, "shardlet_controller_layout_version").await == 2.0
            && controller_status(&controller)
                .await
                .contains("\"layout_version\":2")
    })
    .await;

    // The gateway (never restarted) places new objects on node 5, under version 2.
    let s3 = S3Client::new(cluster.access.clone());
    s3.create_bucket(BUCKET).await.unwrap();
    write_objects(&s3, "after-join", 40, 20_000, None).await;
    let records = shardlets(&cluster.meta_client()).await;
    let on_new = records
        .iter()
        .filter(|record| record.fragments.iter().any(|f| f.node == NodeId(5)))
        .count();
    assert!(
        on_new > 0,
        "no shardlet placed on node 5 among {}",
        records.len()
    );
    assert!(
        records.iter().all(|record| record.layout_version == 2),
        "every shardlet says the layout version it was placed under"
    );
    assert!(!node.stored_fragments().await.is_empty());

    // Draining node 5 (version 3): the gateway places nothing new on it.
    cluster.admin(&["admin", "layout", "remove", "5"]);
    cluster.admin(&["admin", "layout", "apply", "--version", "3"]);
    wait_until(LAYOUT_DEADLINE, "the gateway uses version 3", || async {
        gateway_layout_version(&cluster).await == 3.0
    })
    .await;
    write_objects(&s3, "after-drain", 40, 20_000, None).await;
    let placed_while_draining: Vec<_> = shardlets(&cluster.meta_client())
        .await
        .into_iter()
        .filter(|record| record.layout_version == 3)
        .collect();
    assert!(placed_while_draining.len() >= 40);
    assert!(
        placed_while_draining
            .iter()
            .all(|record| record.fragments.iter().all(|f| f.node != NodeId(5))),
        "nothing new on a draining node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auto_apply_an_announced_node_joins_without_an_operator() {
    let binary = shardlet_binary!();
    let cluster = Cluster::start(&binary, 4).await;
    let controller = cluster
        .start_controller(
            "controller",
            &[
                "--layout-poll-seconds".to_string(),
                "0.5".to_string(),
                "--auto-apply-announced".to_string(),
            ],
        )
        .await;
    let controller_url = format!("http://{}", controller.address);
    let node = NodeProcess::start(
        &binary,
        NodeOptions {
            node_id: 9,
            parent_dir: Some(cluster.root.path().join("nodes")),
            secret: Some(cluster.secret.clone()),
            extra_arguments: [
                "--controller",
                &controller_url,
                "--region",
                "region-two",
                "--zone",
                "region-two-b",
                "--capacity",
                "2T",
            ]
            .map(String::from)
            .to_vec(),
            ..NodeOptions::default()
        },
    )
    .await;
    // Named 9, it gets the next id the layout allocates: 5.
    wait_until(LAYOUT_DEADLINE, "node 9 learns its id, 5", || async {
        node.client().health().await["node_id"] == 5
    })
    .await;
    let shown = cluster.admin(&["admin", "layout", "show"]);
    assert!(
        shown.contains("cluster layout version 2 (by auto-apply")
            && shown.contains("no staged changes"),
        "{shown}"
    );
    wait_until(LAYOUT_DEADLINE, "the gateway uses version 2", || async {
        gateway_layout_version(&cluster).await == 2.0
    })
    .await;
    assert_eq!(
        controller_metric(&controller, "shardlet_controller_layout_auto_applies_total").await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_applies_of_the_same_version_one_wins_and_the_other_is_refused_naming_it() {
    let cluster = Cluster::start(&shardlet_binary!(), 4).await;
    cluster.admin(&["admin", "layout", "assign", "1", "--weight", "2"]);
    let meta = cluster.meta.address.to_string();
    let applies: Vec<std::process::Child> = (0..2)
        .map(|_| {
            cluster
                .binary
                .command()
                .args([
                    "admin",
                    "layout",
                    "apply",
                    "--version",
                    "2",
                    "--meta",
                    &meta,
                ])
                .env("SHARDLET_CLUSTER_SECRET", &cluster.secret)
                .env_remove("SHARDLET_KEYS")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = applies
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .collect();
    let won: Vec<&Output> = outputs.iter().filter(|o| o.status.success()).collect();
    let lost: Vec<&Output> = outputs.iter().filter(|o| !o.status.success()).collect();
    assert_eq!(won.len(), 1, "exactly one apply wins: {outputs:?}");
    let refusal = String::from_utf8_lossy(&lost[0].stderr);
    assert!(
        refusal.contains("cannot apply version 2") && refusal.contains("at version 2"),
        "{refusal}"
    );
    let shown = cluster.admin(&["admin", "layout", "show"]);
    assert!(
        shown.contains("cluster layout version 2") && shown.contains("no staged changes"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_layout_command_refuses_bad_input_naming_what_is_wrong() {
    let cluster = Cluster::start(&shardlet_binary!(), 4).await;
    let layout = |rest: &[&str]| {
        let mut arguments = vec!["admin", "layout"];
        arguments.extend_from_slice(rest);
        refused(&cluster, &arguments)
    };
    let check = |text: String, expected: &[&str]| {
        for part in expected {
            assert!(text.contains(part), "{part:?} not in: {text}");
        }
    };
    // Unknown node, bad names, bad capacity, nothing to assign.
    check(
        layout(&["remove", "no-such-node"]),
        &["no node named no-such-node"],
    );
    check(
        layout(&["assign", "Bad_Name", "--zone", "z"]),
        &["DNS label"],
    );
    check(
        layout(&["assign", "9", "--capacity", "12XB"]),
        &["--capacity", "unknown unit"],
    );
    check(
        layout(&["assign", "9", "--capacity", "1"]),
        &["out of bounds"],
    );
    check(
        layout(&["assign", "9", "--zone", "Zone A"]),
        &["zone", "DNS label"],
    );
    check(
        layout(&["assign", "9", "--weight=0"]),
        &["weight of node 9"],
    );
    check(
        layout(&["assign", "9", "--address", "nowhere"]),
        &["address"],
    );
    check(layout(&["assign", "9"]), &["nothing to assign"]);
    // Apply: no --version, nothing staged, a version that is not the next one.
    check(layout(&["apply"]), &["--version"]);
    check(layout(&["apply", "--version", "2"]), &["nothing is staged"]);
    // A new node without a zone: staged, refused at apply naming the missing zone.
    cluster.admin(&[
        "admin",
        "layout",
        "assign",
        "9",
        "--region",
        "region-one",
        "--capacity",
        "1T",
        "--address",
        "127.0.0.1:9",
    ]);
    check(
        layout(&["apply", "--version", "5"]),
        &[
            "cannot apply version 5",
            "at version 1",
            "next version is 2",
        ],
    );
    check(
        layout(&["apply", "--version", "2"]),
        &["node 9 has no zone", "layout assign 9 --zone"],
    );
    let shown = cluster.admin(&["admin", "layout", "show"]);
    assert!(shown.contains("cannot be applied as they are"), "{shown}");
    // A second node at the same address: refused naming both.
    cluster.admin(&["admin", "layout", "assign", "9", "--zone", "region-one-a"]);
    let taken = cluster.nodes[0].address.to_string();
    cluster.admin(&["admin", "layout", "assign", "9", "--address", &taken]);
    check(
        layout(&["apply", "--version", "2"]),
        &[&format!(
            "address {taken} is given to both node 1 and node 9"
        )],
    );
    let reverted = cluster.admin(&["admin", "layout", "revert"]);
    assert!(reverted.contains("dropped 1 staged changes"), "{reverted}");
    // Import: a missing file, a file that conflicts (without --force), duplicate names.
    check(
        layout(&["import", "/nonexistent.toml"]),
        &["cannot read the topology file"],
    );
    let other = cluster.root.path().join("other.toml");
    std::fs::write(
        &other,
        "epoch = 1\n[[node]]\nid = 1\nname = \"other\"\naddress = \"127.0.0.1:1\"\nregion = \"r\"\nzone = \"z\"\ncapacity_bytes = 1099511627776\n",
    )
    .unwrap();
    check(
        layout(&["import", &other.display().to_string()]),
        &["already has nodes and the file differs", "--force"],
    );
    let twice = cluster.root.path().join("twice.toml");
    let node = |id: u32| {
        format!("[[node]]\nid = {id}\nname = \"same\"\naddress = \"127.0.0.1:{id}\"\nregion = \"r\"\nzone = \"z{id}\"\ncapacity_bytes = 1099511627776\n")
    };
    std::fs::write(&twice, format!("epoch = 1\n{}{}", node(1), node(2))).unwrap();
    check(
        layout(&["import", &twice.display().to_string(), "--force"]),
        &["same"],
    );
    // The layout is still version 1, untouched by every refusal.
    let shown = cluster.admin(&["admin", "layout", "show"]);
    assert!(
        shown.contains("cluster layout version 1") && shown.contains("no staged changes"),
        "{shown}"
    );
    // A node's name and flags are checked before it starts.
    let node_refused = |arguments: &[&str]| {
        let output = cluster
            .binary
            .command()
            .args(["node", "--listen", "127.0.0.1:0", "--data"])
            .arg(cluster.root.path().join("refused-node"))
            .args(arguments)
            .env("SHARDLET_CLUSTER_SECRET", &cluster.secret)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{arguments:?} was accepted");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    check(
        node_refused(&["--name", "Bad_Name"]),
        &["--name", "DNS label"],
    );
    check(
        node_refused(&["--name", "9", "--capacity", "lots"]),
        &["--capacity"],
    );
    check(
        node_refused(&["--name", "9", "--node-id", "9"]),
        &["--node-id was removed"],
    );
    check(
        node_refused(&["--name", "9", "--controller", "ftp://127.0.0.1:1"]),
        &["--controller", "http://"],
    );
    // The gateway's topology file became the layout import.
    let gateway = cluster
        .binary
        .command()
        .args([
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--meta",
            &cluster.meta.address.to_string(),
            "--topology",
            "t.toml",
        ])
        .env("SHARDLET_CLUSTER_SECRET", &cluster.secret)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&gateway.stderr);
    assert!(
        !gateway.status.success()
            && stderr.contains("--topology was removed")
            && stderr.contains("layout import"),
        "{stderr}"
    );
    check(
        String::from_utf8_lossy(
            &cluster
                .binary
                .command()
                .args([
                    "gateway",
                    "--meta",
                    "127.0.0.1:1",
                    "--layout-poll-seconds",
                    "0.01",
                ])
                .env("SHARDLET_CLUSTER_SECRET", &cluster.secret)
                .output()
                .unwrap()
                .stderr,
        )
        .into_owned(),
        &["--layout-poll-seconds must be between"],
    );
    // Started with name 9 but node 7's key: it holds no key for its name.
    let output = cluster
        .binary
        .command()
        .args(["node", "--listen", "127.0.0.1:0", "--name", "9", "--data"])
        .arg(cluster.root.path().join("stolen-key-node"))
        .env(
            "SHARDLET_KEYS",
            signing::role_key_file(&cluster.secret, "node-7"),
        )
        .env_remove("SHARDLET_CLUSTER_SECRET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("node-9"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_can_announce_only_itself_and_only_signed() {
    let cluster = Cluster::start(&shardlet_binary!(), 4).await;
    let controller = cluster.start_controller("controller", &[]).await;
    let host = controller.address.to_string();
    let announce = |key: Option<&str>, body: String| {
        let mut request = Request::new("POST", "/v1/announce")
            .header("content-type", "application/json")
            .body(raw_http::Body::Full(body.clone().into_bytes()));
        if let Some(key) = key {
            request.headers.extend(signing::signature_headers(
                &signing::derive(&cluster.secret, key),
                SystemTime::now(),
                "POST",
                &host,
                "/v1/announce",
                &request.headers,
                Some(&signing::payload_sha256(body.as_bytes())),
            ));
        }
        let address = controller.address;
        async move { raw_http::send(address, &request).await.unwrap() }
    };
    let node_1 = cluster.nodes[0].address.to_string();
    let body = |name: &str| format!(r#"{{"name":"{name}","address":"{node_1}"}}"#);
    // Node 2's key announcing node 1: refused, and the layout is unchanged.
    let forged = announce(Some("node-2"), body("1")).await;
    assert_eq!(forged.status, 403, "{:?}", forged.json());
    // Unsigned, or signed with a key that is no node's.
    assert_eq!(announce(None, body("1")).await.status, 401);
    assert_eq!(announce(Some("controller"), body("1")).await.status, 401);
    // Malformed bodies.
    assert_eq!(announce(Some("node-1"), "{".into()).await.status, 400);
    assert_eq!(
        announce(
            Some("node-1"),
            r#"{"name":"1","address":"x","extra":1}"#.into()
        )
        .await
        .status,
        400
    );
    let too_large = format!(r#"{{"name":"1","address":"{}"}}"#, "a".repeat(8192));
    assert_eq!(announce(Some("node-1"), too_large).await.status, 413);
    // Node 1 itself, at its address: its id.
    let own = announce(Some("node-1"), body("1")).await;
    assert_eq!(own.status, 200);
    let answer = own.json();
    assert_eq!(answer["state"], "assigned");
    assert_eq!(answer["node_id"], 1);
    let shown = cluster.admin(&["admin", "layout", "show"]);
    assert!(
        shown.contains("cluster layout version 1") && shown.contains("no staged changes"),
        "{shown}"
    );
    let refusals = controller_metric(&controller, "shardlet_controller_announcements_total").await;
    assert!(refusals >= 6.0, "every announcement is counted: {refusals}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_that_can_no_longer_hold_rs_6_3_is_refused_naming_it() {
    // 12 nodes hold RS(6,3) (9 fragments over 4 zones); draining 4 leaves 8 active.
    let cluster = Cluster::start(&shardlet_binary!(), 12).await;
    for node in ["1", "2", "3", "4"] {
        cluster.admin(&["admin", "layout", "remove", node]);
    }
    let refusal = refused(&cluster, &["admin", "layout", "apply", "--version", "2"]);
    assert!(
        refusal.contains("cannot hold rs(6,3)")
            && refusal.contains("STANDARD_IA")
            && refusal.contains("which the current layout holds"),
        "{refusal}"
    );
    // Draining one is fine: 11 active nodes still hold it.
    cluster.admin(&["admin", "layout", "revert"]);
    cluster.admin(&["admin", "layout", "remove", "1"]);
    let applied = cluster.admin(&["admin", "layout", "apply", "--version", "2"]);
    assert!(
        applied.contains("applied cluster layout version 2"),
        "{applied}"
    );
}
