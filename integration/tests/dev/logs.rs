//! No secret in any log line: a whole `shardlet dev` cluster logging at `debug`, driven
//! through its S3 path, its operator commands and a series of refused internal
//! requests (wrong keys, replays, unsigned), and then every log searched for the cluster
//! secret, every role key, and every S3 secret key — whole or any 16-character piece.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use shardlet_testkit::raw_http::{self, Request};
use shardlet_testkit::signing;
use shardlet_testkit::{
    pattern_bytes, random_fragment_id, shardlet_binary, Auth, DevCluster, NodeHttp, S3Client,
};

/// A piece of a secret this long found in a log counts as a leak.
const PIECE_CHARACTERS: usize = 16;
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// `shardlet admin ARGUMENTS` with no keys of its own in the environment, plaintext like
/// `shardlet dev`.
fn admin(arguments: &[&str]) -> std::process::Output {
    shardlet_binary!()
        .command()
        .arg("admin")
        .args(arguments)
        .env_remove("SHARDLET_CLUSTER_SECRET")
        .env_remove("SHARDLET_KEYS")
        .env("RUST_LOG", "debug")
        .output()
        .unwrap()
}

/// Every secret of the cluster in `data`: the cluster secret, each key of each role
/// (held in `data/keys/*.keys`, or derived below one), and `s3_secrets`.
fn secrets(data: &Path, node_count: u32, s3_secrets: &[String]) -> Vec<String> {
    let root = std::fs::read_to_string(data.join("cluster-secret")).unwrap();
    let root = root.trim().to_string();
    let mut secrets = vec![root.clone()];
    for entry in std::fs::read_dir(data.join("keys")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            if let Some((_, hex)) = line.split_once('=') {
                secrets.push(hex.trim().to_string());
            }
        }
    }
    let mut names: Vec<String> = [
        "meta",
        "meta.member",
        "meta.gateway",
        "meta.controller",
        "meta.admin",
        "storage",
        "controller",
        "predictor",
    ]
    .map(String::from)
    .to_vec();
    names.extend((1..=node_count).map(|node| format!("node-{node}")));
    secrets.extend(names.iter().map(|name| signing::derive(&root, name).hex));
    secrets.extend(s3_secrets.iter().cloned());
    secrets.sort();
    secrets.dedup();
    secrets
}

/// Every `PIECE_CHARACTERS`-long piece of every secret.
fn pieces(secrets: &[String]) -> HashSet<Vec<u8>> {
    secrets
        .iter()
        .flat_map(|secret| {
            secret
                .as_bytes()
                .windows(PIECE_CHARACTERS)
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The first place in `text` where a piece of a secret appears, with its line.
fn leak(text: &[u8], pieces: &HashSet<Vec<u8>>) -> Option<String> {
    for start in 0..text.len().saturating_sub(PIECE_CHARACTERS - 1) {
        if pieces.contains(&text[start..start + PIECE_CHARACTERS]) {
            let line_start = text[..start]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let line_end = text[start..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(text.len(), |i| start + i);
            return Some(String::from_utf8_lossy(&text[line_start..line_end]).into_owned());
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_role_key_or_s3_secret_key_appears_in_any_log_at_debug_level() {
    let binary = shardlet_binary!();
    let mut dev = DevCluster::start_logging(&binary, "debug").await;
    let data = dev.data.clone();
    let meta = format!("127.0.0.1:{}", dev.ports.meta);
    let controller = format!("http://127.0.0.1:{}", dev.ports.controller);
    let secret_file = data.join("cluster-secret").display().to_string();
    let admin_keys = data.join("keys/admin.keys").display().to_string();

    // The S3 path, with the dev key and with a second owner's key made by the operator.
    let s3 = S3Client::new(dev.access.clone());
    s3.create_bucket("logged").await.unwrap();
    s3.put_object("logged", "object", pattern_bytes(300_000, 1), None)
        .await
        .unwrap();
    s3.get_object("logged", "object", None).await.unwrap();
    let created = admin(&[
        "key",
        "create",
        "--owner",
        "other",
        "--meta",
        &meta,
        "--secret-file",
        &secret_file,
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let created = String::from_utf8_lossy(&created.stdout).into_owned();
    let field = |prefix: &str| {
        created
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .map(|value| value.trim().to_string())
            .unwrap()
    };
    let other_secret = field("secret key:");
    let mut other = dev.access.clone();
    other.access_key = field("access key:");
    other.secret_key = other_secret.clone();
    S3Client::new(other.clone())
        .create_bucket("others")
        .await
        .unwrap();
    // A failed S3 signature: the right access key, a wrong secret.
    let mut wrong = other.clone();
    wrong.secret_key = format!("{}x", &other_secret[..other_secret.len() - 1]);
    assert!(S3Client::new(wrong).create_bucket("refused").await.is_err());

    // The operator's commands with the admin role's key file.
    let nodes = admin(&[
        "nodes",
        "--meta",
        &meta,
        "--controller",
        &controller,
        "--key-file",
        &admin_keys,
    ]);
    assert!(
        nodes.status.success(),
        "{}",
        String::from_utf8_lossy(&nodes.stderr)
    );

    // Refused internal requests: to a node with another node's key, replayed, unsigned.
    let node = NodeHttp {
        address: format!("127.0.0.1:{}", dev.ports.node_base)
            .parse()
            .unwrap(),
        secret: std::fs::read_to_string(data.join("cluster-secret"))
            .unwrap()
            .trim()
            .to_string(),
        // The first node of examples/topology.toml: its key is `node-eu-west-a-1`.
        name: "eu-west-a-1".into(),
    };
    let id = random_fragment_id();
    let wrong_node = Auth::Signed {
        key: signing::derive(&node.secret, "node-eu-west-a-2"),
        time: SystemTime::now(),
    };
    let get = Request::new("GET", &format!("/v1/fragments/{id}"));
    assert_eq!(node.send_with(get.clone(), wrong_node).await.status, 401);
    assert_eq!(node.send_with(get.clone(), Auth::None).await.status, 401);
    let mut captured = get.clone();
    captured.headers.extend(signing::signature_headers(
        &node.key(),
        SystemTime::now(),
        "GET",
        &node.address.to_string(),
        &captured.target,
        &[],
        None,
    ));
    assert_eq!(
        node.send_with(captured.clone(), Auth::None).await.status,
        404
    );
    assert_eq!(node.send_with(captured, Auth::None).await.status, 401);
    // To the metadata member with a node's key, and to the controller unsigned.
    let body = br#"{"key":"Yw=="}"#.to_vec();
    let mut stolen = Request::new("POST", "/kv/get")
        .header("x-shardlet-member", "client")
        .body(raw_http::Body::Full(body.clone()));
    stolen.headers.extend(signing::signature_headers(
        &node.key(),
        SystemTime::now(),
        "POST",
        &meta,
        "/kv/get",
        &stolen.headers,
        Some(&signing::payload_sha256(&body)),
    ));
    let answer = raw_http::send(meta.parse().unwrap(), &stolen)
        .await
        .unwrap();
    assert_eq!(answer.status, 401);
    let status = raw_http::send(
        controller.trim_start_matches("http://").parse().unwrap(),
        &Request::new("GET", "/v1/status"),
    )
    .await
    .unwrap();
    assert_eq!(status.status, 401);

    // Stop everything so every log is complete, then search them all.
    assert!(dev.terminate(STOP_DEADLINE).await.success());
    let secrets = secrets(
        &data,
        u32::from(shardlet_testkit::dev_cluster::DEV_NODE_COUNT),
        &[dev.access.secret_key.clone(), other_secret],
    );
    assert!(secrets.len() >= 20, "{} secrets", secrets.len());
    let pieces = pieces(&secrets);
    let mut searched = 0;
    let mut bytes = 0;
    for entry in std::fs::read_dir(dev.logs_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "log") {
            let text = std::fs::read(&path).unwrap();
            if let Some(line) = leak(&text, &pieces) {
                panic!("{} logs a secret: {line}", path.display());
            }
            searched += 1;
            bytes += text.len();
        }
    }
    // `shardlet dev`'s own output: its log lines, and the welcome, which prints the dev
    // S3 secret key on purpose (the one line a developer pastes).
    let own = std::fs::read_to_string(dev.root.path().join("dev.stdout")).unwrap();
    let without_welcome: String = own
        .lines()
        .filter(|line| !line.starts_with("export AWS_SECRET_ACCESS_KEY="))
        .collect::<Vec<_>>()
        .join("\n");
    if let Some(line) = leak(without_welcome.as_bytes(), &pieces) {
        panic!("shardlet dev logs a secret: {line}");
    }
    assert!(
        searched >= 14,
        "{searched} logs (meta, 12 nodes, gateway, controller)"
    );
    assert!(bytes > 100_000, "debug logs were written: {bytes} bytes");
}
