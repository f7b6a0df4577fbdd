//! The controller's `/v1/status` answers only requests signed with the `controller` key,
//! each once; `/health` stays open for liveness probes. The operator reaches it with the
//! admin role's key file (`shardlet admin key derive --role admin`).

use std::time::SystemTime;

use shardlet_testkit::controller::controller_status;
use shardlet_testkit::raw_http::{self, Request};
use shardlet_testkit::signing;
use shardlet_testkit::{metric_total, shardlet_binary, Cluster};

/// `GET /v1/status` signed with `key` (or unsigned), as captured on the wire.
fn status_request(address: &str, key: Option<&signing::ContractKey>) -> Request {
    let mut request = Request::new("GET", "/v1/status");
    if let Some(key) = key {
        request.headers.extend(signing::signature_headers(
            key,
            SystemTime::now(),
            "GET",
            address,
            "/v1/status",
            &[],
            None,
        ));
    }
    request
}

/// `shardlet ARGUMENTS` with no keys of its own in the environment, plaintext like the
/// kit's clusters.
fn shardlet(arguments: &[&str]) -> std::process::Output {
    shardlet_binary!()
        .command()
        .args(arguments)
        .env_remove("SHARDLET_CLUSTER_SECRET")
        .env_remove("SHARDLET_KEYS")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_endpoint_answers_only_the_controller_key_once_and_health_stays_open() {
    let cluster = Cluster::start(&shardlet_binary!(), 4).await;
    let controller = cluster.start_controller("controller", &[]).await;
    let address = controller.address.to_string();
    // Signed as `shardlet admin nodes --controller` signs: 200 with the node table.
    let status: serde_json::Value =
        serde_json::from_str(&controller_status(&controller).await).unwrap();
    assert_eq!(
        status["nodes"].as_array().map(Vec::len),
        Some(4),
        "{status}"
    );

    let derive = |name: &str| signing::derive(&cluster.secret, name);
    let refused = [
        ("unsigned", None, "not signed"),
        (
            "a storage node's key",
            Some(derive("node-1")),
            "not accepted",
        ),
        ("the storage key", Some(derive("storage")), "not accepted"),
        (
            "the admin's metadata key",
            Some(derive("meta.admin")),
            "not accepted",
        ),
        (
            "the predictor's key",
            Some(derive("predictor")),
            "not accepted",
        ),
        (
            "another cluster's controller key",
            Some(signing::derive("another-cluster-secret", "controller")),
            "does not match",
        ),
    ];
    for (what, key, reason) in &refused {
        let response = raw_http::send(controller.address, &status_request(&address, key.as_ref()))
            .await
            .unwrap();
        assert_eq!(response.status, 401, "{what}");
        let body = response.json();
        assert_eq!(body["error"], "unauthenticated", "{what}: {body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains(reason),
            "{what}: {body}"
        );
        assert!(
            body.get("nodes").is_none(),
            "{what}: nothing of the status leaks"
        );
    }
    // A good request, captured and sent again.
    let captured = status_request(&address, Some(&derive("controller")));
    assert_eq!(
        raw_http::send(controller.address, &captured)
            .await
            .unwrap()
            .status,
        200
    );
    let replayed = raw_http::send(controller.address, &captured).await.unwrap();
    assert_eq!(replayed.status, 401, "a replayed status request");
    assert!(replayed.json()["message"]
        .as_str()
        .unwrap_or_default()
        .contains("replay"));

    let health = raw_http::send(controller.address, &Request::new("GET", "/health"))
        .await
        .unwrap();
    assert_eq!(health.status, 200, "liveness probes need no key");
    let metrics = controller.get_text("/metrics").await;
    assert_eq!(
        metric_total(&metrics, "shardlet_controller_auth_refused_total"),
        Some(7.0),
        "{metrics}"
    );

    // The operator: the admin role's key file, derived from the cluster secret.
    let keys = cluster.root.path().join("admin.keys");
    let secret_file = cluster.root.path().join("cluster-secret");
    shardlet_testkit::write_private_file(&secret_file, &cluster.secret);
    let derived = shardlet(&[
        "admin",
        "key",
        "derive",
        "--role",
        "admin",
        "--out",
        &keys.display().to_string(),
        "--secret-file",
        &secret_file.display().to_string(),
    ]);
    assert!(
        derived.status.success(),
        "{}",
        String::from_utf8_lossy(&derived.stderr)
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&keys).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "a key file is the owner's only");
    let meta = cluster.meta.address.to_string();
    let url = format!("http://{address}");
    let nodes = shardlet(&[
        "admin",
        "nodes",
        "--meta",
        &meta,
        "--controller",
        &url,
        "--key-file",
        &keys.display().to_string(),
    ]);
    let stdout = String::from_utf8_lossy(&nodes.stdout);
    assert!(
        nodes.status.success(),
        "{}",
        String::from_utf8_lossy(&nodes.stderr)
    );
    assert!(
        stdout.contains("controller controller-") && stdout.contains("risk"),
        "{stdout}"
    );

    // A node's key file opens neither the metadata service nor the controller.
    let node_keys = cluster.root.path().join("node-1.keys");
    shardlet_testkit::write_private_file(
        &node_keys,
        signing::role_key_file(&cluster.secret, "node-1"),
    );
    let refused = shardlet(&[
        "admin",
        "nodes",
        "--meta",
        &meta,
        "--controller",
        &url,
        "--key-file",
        &node_keys.display().to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("meta.admin") && stderr.contains("node-1"),
        "names the key it lacks and what it was given: {stderr}"
    );
}

#[test]
fn key_derive_writes_only_what_a_role_holds_and_refuses_what_it_cannot_derive() {
    let root = tempfile::tempdir().unwrap();
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let secret_file = root.path().join("cluster-secret");
    shardlet_testkit::write_private_file(&secret_file, &secret);
    let secret_file = secret_file.display().to_string();
    let out = |name: &str| root.path().join(name).display().to_string();

    let node = shardlet(&[
        "admin",
        "key",
        "derive",
        "--role",
        "node",
        "--node",
        "3",
        "--out",
        &out("node-3.keys"),
        "--secret-file",
        &secret_file,
    ]);
    assert!(
        node.status.success(),
        "{}",
        String::from_utf8_lossy(&node.stderr)
    );
    let text = std::fs::read_to_string(out("node-3.keys")).unwrap();
    let expected = signing::derive(&secret, "node-3");
    assert!(text.contains(&format!("node-3={}", expected.hex)), "{text}");
    assert_eq!(
        text.lines().filter(|line| !line.starts_with('#')).count(),
        1
    );
    assert!(!text.contains(&secret), "the root never goes in a key file");

    // From a gateway's keys, a node's key derives (below `storage`); the admin's does not.
    let gateway = out("gateway.keys");
    shardlet_testkit::write_private_file(
        std::path::Path::new(&gateway),
        signing::role_key_file(&secret, "gateway"),
    );
    let derived = shardlet(&[
        "admin",
        "key",
        "derive",
        "--role",
        "node",
        "--node",
        "3",
        "--out",
        "-",
        "--key-file",
        &gateway,
    ]);
    assert!(String::from_utf8_lossy(&derived.stdout).contains(&expected.hex));
    let refusals: [(&[&str], &str); 4] = [
        (
            &["--role", "admin", "--out", "-", "--key-file", &gateway],
            "no key meta.admin",
        ),
        (
            &[
                "--role",
                "node",
                "--out",
                "-",
                "--secret-file",
                &secret_file,
            ],
            "--node",
        ),
        (
            &[
                "--role",
                "root",
                "--out",
                "-",
                "--secret-file",
                &secret_file,
            ],
            "unknown role",
        ),
        (
            &[
                "--role",
                "gateway",
                "--node",
                "1",
                "--out",
                "-",
                "--secret-file",
                &secret_file,
            ],
            "only goes with role node",
        ),
    ];
    for (arguments, expected) in refusals {
        let output = shardlet(&[&["admin", "key", "derive"], arguments].concat());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{arguments:?}");
        assert!(stderr.contains(expected), "{arguments:?}: {stderr}");
    }
}

/// `shardlet admin … | head` must not panic: a reader that went away ends the command
/// quietly (status 0), as `ls | head` does. With `println!` it panicked ("failed printing
/// to stdout: Broken pipe", status 101).
#[test]
fn an_admin_command_whose_reader_went_away_ends_quietly() {
    let root = tempfile::tempdir().unwrap();
    let secret_file = root.path().join("cluster-secret");
    shardlet_testkit::write_private_file(&secret_file, hex::encode(rand::random::<[u8; 32]>()));
    // A pipe whose read end is closed before the command starts: its first write fails.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = shardlet_binary!()
        .command()
        .args(["admin", "key", "derive", "--role", "gateway", "--out", "-"])
        .arg("--secret-file")
        .arg(&secret_file)
        .env_remove("SHARDLET_CLUSTER_SECRET")
        .env_remove("SHARDLET_KEYS")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}
