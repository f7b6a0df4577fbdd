//! A node accepts a request once, and only when it is signed with its own key: a
//! captured request replayed is refused, one signed for another node is refused, and
//! the same request signed afresh goes through.

use std::os::unix::fs::PermissionsExt;
use std::time::SystemTime;

use shardlet_testkit::raw_http::Request;
use shardlet_testkit::signing;
use shardlet_testkit::{
    metric_total, pattern_bytes, random_fragment_id, shardlet_binary, Auth, NodeOptions,
    NodeProcess,
};

/// `request` signed for `node` with its key, as captured on the wire.
fn signed_for(node: &NodeProcess, mut request: Request) -> Request {
    let client = node.client();
    request.headers.extend(signing::signature_headers(
        &client.key(),
        SystemTime::now(),
        &request.method,
        &node.address.to_string(),
        &request.target,
        &request.headers,
        None,
    ));
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_fragment_delete_replayed_is_refused_and_the_same_request_re_signed_is_accepted()
{
    let node = NodeProcess::start(&shardlet_binary!(), NodeOptions::default()).await;
    let client = node.client();
    let id = random_fragment_id();
    let bytes = pattern_bytes(3000, 7);
    assert_eq!(client.put(&id, &bytes).await.status, 201);

    let delete = signed_for(
        &node,
        Request::new("DELETE", &format!("/v1/fragments/{id}")),
    );
    assert_eq!(
        client.send_with(delete.clone(), Auth::None).await.status,
        204
    );
    // The fragment is written again; the captured DELETE must not remove it a second time.
    assert_eq!(client.put(&id, &bytes).await.status, 201);
    let replayed = client.send_with(delete.clone(), Auth::None).await;
    assert_eq!(replayed.status, 401, "a replayed DELETE");
    assert_eq!(replayed.error_code(), "unauthorized");
    let message = replayed.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("replay"),
        "the refusal says why: {message}"
    );
    assert_eq!(
        client.get(&id).await.body,
        bytes,
        "the fragment survived the replay"
    );

    // The same request with a fresh signature (new nonce) is an operator's new intent.
    let again = client
        .send(Request::new("DELETE", &format!("/v1/fragments/{id}")))
        .await;
    assert_eq!(again.status, 204);
    assert_eq!(client.head(&id).await.status, 404);

    // A nonce is bound by the signature: swapping in a fresh one breaks it.
    let mut renonced = delete;
    for (name, value) in renonced.headers.iter_mut() {
        if name == signing::NONCE_HEADER {
            *value = signing::nonce();
        }
    }
    let response = client.send_with(renonced, Auth::None).await;
    assert_eq!(response.status, 401, "a replay with a new unsigned nonce");

    let metrics = client.metrics().await;
    assert_eq!(
        metric_total(
            &metrics,
            "shardlet_node_auth_refused_total{reason=\"replayed\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        metric_total(&metrics, "shardlet_node_replay_cache_entries").unwrap_or(0.0) >= 4.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_signed_for_one_node_is_refused_by_another() {
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let start = |node_id: u32| {
        let secret = secret.clone();
        async move {
            NodeProcess::start(
                &shardlet_binary!(),
                NodeOptions {
                    node_id,
                    secret: Some(secret),
                    ..NodeOptions::default()
                },
            )
            .await
        }
    };
    let first = start(1).await;
    let second = start(2).await;
    let id = random_fragment_id();
    let bytes = pattern_bytes(2000, 3);
    assert_eq!(second.client().put(&id, &bytes).await.status, 201);

    // Captured on its way to node 1, sent to node 2 unchanged (Host still node 1's).
    let captured = signed_for(
        &first,
        Request::new("DELETE", &format!("/v1/fragments/{id}")),
    );
    let response = second.client().send_with(captured, Auth::None).await;
    assert_eq!(response.status, 401);
    let message = response.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("node-1") && message.contains("node-2"),
        "names the key and what is accepted: {message}"
    );
    // Node 1's key with node 2's host: still node 1's key.
    let forged = Auth::Signed {
        key: first.client().key(),
        time: SystemTime::now(),
    };
    let delete = Request::new("DELETE", &format!("/v1/fragments/{id}"));
    assert_eq!(second.client().send_with(delete, forged).await.status, 401);
    assert_eq!(second.client().get(&id).await.body, bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_replay_cache_refuses_with_503_rather_than_forget_a_nonce() {
    let node = NodeProcess::start(
        &shardlet_binary!(),
        NodeOptions {
            replay_cache_entries_max: Some(2),
            ..NodeOptions::default()
        },
    )
    .await;
    let client = node.client();
    let id = random_fragment_id();
    let first = signed_for(&node, Request::new("HEAD", &format!("/v1/fragments/{id}")));
    assert_eq!(
        client.send_with(first.clone(), Auth::None).await.status,
        404
    );
    assert_eq!(
        client
            .send(Request::new("HEAD", &format!("/v1/fragments/{id}")))
            .await
            .status,
        404
    );
    // Full: a new request waits for room (the window is 60 s); nothing is forgotten.
    let refused = client
        .send(Request::new("GET", &format!("/v1/fragments/{id}")))
        .await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.error_code(), "replay_cache_full");
    assert_eq!(
        client.send_with(first, Auth::None).await.status,
        401,
        "still a replay"
    );
    let metrics = client.metrics().await;
    assert_eq!(
        metric_total(
            &metrics,
            "shardlet_node_auth_refused_total{reason=\"replay_cache_full\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_total(&metrics, "shardlet_node_replay_cache_entries"),
        Some(2.0)
    );
}

#[test]
fn a_node_refuses_to_start_without_its_key_naming_what_is_wrong() {
    let root = tempfile::tempdir().unwrap();
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let write = |name: &str, text: &str| {
        let path = root.path().join(name);
        shardlet_testkit::write_private_file(&path, text);
        path.display().to_string()
    };
    let other_node = write("node-2.keys", &signing::role_key_file(&secret, "node-2"));
    let garbage = write("garbage.keys", "# a comment\nnode-1=not-hex\n");
    let secret_file = write("cluster-secret", &secret);
    let short = write("short-secret", "short");
    let open_to_all = write("open.keys", &signing::role_key_file(&secret, "node-1"));
    std::fs::set_permissions(&open_to_all, std::fs::Permissions::from_mode(0o644)).unwrap();
    let data = root.path().join("data").display().to_string();
    let cases: [(&[&str], &str); 6] = [
        (&[], "no keys: pass --key-file"),
        (&["--key-file", &other_node], "no key node-1"),
        (&["--key-file", &garbage], "line 2: node-1: a key is 64"),
        (
            &["--key-file", &other_node, "--secret-file", &secret_file],
            "not both",
        ),
        (&["--secret-file", &short], "at least 16 are required"),
        (
            &["--key-file", &open_to_all],
            "can be read by every user (mode 644); `chmod 600` it",
        ),
    ];
    for (arguments, expected) in cases {
        // Plaintext, like the kit's nodes: the key is the only thing wrong.
        let output = shardlet_binary!()
            .command()
            .args([
                "node",
                "--listen",
                "127.0.0.1:0",
                "--name",
                "1",
                "--data",
                &data,
            ])
            .args(arguments)
            .env_remove("SHARDLET_CLUSTER_SECRET")
            .env_remove("SHARDLET_KEYS")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{arguments:?} started a node");
        assert!(stderr.contains(expected), "{arguments:?}: {stderr}");
        assert!(!stderr.contains(&secret[..16]), "{stderr}");
    }
}
