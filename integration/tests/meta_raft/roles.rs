//! Who may do what on the metadata service, and that a request is good once, at one
//! member: a storage node's key opens nothing (so a compromised node gets neither S3
//! secret keys nor a metadata write), membership is the admin's alone, a captured write
//! replayed is refused (to the same member or another), and a changed body is refused.
//!
//! Requests are signed with the test kit's own signer from the contract
//! (`shardlet_testkit::signing`), so they can be captured and sent again byte for byte.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use shardlet_meta::ReadConsistency;
use shardlet_testkit::signing::{self, ContractKey};
use shardlet_testkit::wait_until;

use super::bad_input::{base64_of, error_code};
use super::members::{client, start_member, status, wait_for_leader, SECRET};

/// A signed request as it went over the wire (Host header included), to send again.
#[derive(Clone)]
struct Captured {
    method: String,
    path: String,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

/// `body` to `path` on `host`, signed with `key` (member header `client`) at `time`.
fn sign(key: &ContractKey, host: &str, path: &str, body: &[u8], time: SystemTime) -> Captured {
    // The cluster routes that read are GETs; everything else is a POST.
    let method = if path == "/cluster/status" {
        "GET"
    } else {
        "POST"
    };
    let mut headers = vec![("x-shardlet-member".to_string(), "client".to_string())];
    let signature = signing::signature_headers(
        key,
        time,
        method,
        host,
        path,
        &headers,
        Some(&signing::payload_sha256(body)),
    );
    headers.extend(signature);
    headers.push(("host".to_string(), host.to_string()));
    Captured {
        method: method.to_string(),
        path: path.to_string(),
        body: body.to_vec(),
        headers,
    }
}

/// Sends `captured`, byte for byte, to the member at `address`.
async fn send(address: &str, captured: &Captured) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(captured.method.as_bytes()).unwrap();
    let mut request = reqwest::Client::new()
        .request(method, format!("http://{address}{}", captured.path))
        .header("content-type", "application/json")
        .body(captured.body.clone());
    for (name, value) in &captured.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn key(name: &str) -> ContractKey {
    signing::derive(SECRET, name)
}

fn put_body(key_text: &str, value: &str) -> Vec<u8> {
    json!({"key": base64_of(key_text.as_bytes()), "value": base64_of(value.as_bytes())})
        .to_string()
        .into_bytes()
}

async fn value_of(address: &str, key_text: &str) -> Option<String> {
    client(&[address.to_string()])
        .get(key_text, ReadConsistency::Linearizable)
        .await
        .unwrap()
        .map(|entry| String::from_utf8_lossy(entry.value.as_slice()).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_node_key_can_neither_read_nor_write_metadata_nor_change_membership() {
    let root = tempfile::tempdir().unwrap();
    let member = start_member(1, root.path(), true, &[]).await;
    wait_until(Duration::from_secs(30), "the member leads", || async {
        status(&member.address).await?.leader_id
    })
    .await;
    // What a node must never learn: an S3 secret key, stored as the gateway stores one.
    let s3_secret = "wJalrXUtnFEMI-an-s3-secret-key-of-some-owner";
    let admin = client(std::slice::from_ref(&member.address));
    admin.put("c/AKIDOFANOWNER", s3_secret).await.unwrap();
    let applied_before = status(&member.address).await.unwrap().last_applied_index;

    let everything = [
        ("/kv/get", json!({"key": base64_of(b"c/AKIDOFANOWNER")})),
        ("/kv/scan", json!({"prefix": base64_of(b"c/")})),
        (
            "/kv/put",
            json!({"key": base64_of(b"c/AKIDOFANOWNER"), "value": base64_of(b"mine")}),
        ),
        ("/kv/delete", json!({"key": base64_of(b"c/AKIDOFANOWNER")})),
        (
            "/kv/batch",
            json!({"operations": [{"delete": {"key": base64_of(b"c/AKIDOFANOWNER")}}]}),
        ),
        (
            "/cluster/add-learner",
            json!({"member_id": 9, "address": "127.0.0.1:1"}),
        ),
        ("/cluster/change-membership", json!({"voters": [9]})),
        ("/cluster/status", json!({})),
        (
            "/raft/vote",
            json!({"vote": {"leader_id": {"term": 99, "node_id": 9}, "committed": false}, "last_log_id": null}),
        ),
    ];
    let mut refusals = 0;
    for stolen in ["node-1", "node-2", "storage"] {
        for (path, body) in &everything {
            let request = sign(
                &key(stolen),
                &member.address,
                path,
                body.to_string().as_bytes(),
                SystemTime::now(),
            );
            let (code, answer) = send(&member.address, &request).await;
            assert_eq!(
                (code, error_code(&answer)),
                (401, "unauthenticated"),
                "{stolen} on {path}: {answer}"
            );
            assert!(
                answer["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("not accepted"),
                "{stolen} on {path}: {answer}"
            );
            assert!(!answer.to_string().contains(s3_secret), "{answer}");
            refusals += 1;
        }
    }
    assert_eq!(refusals, 27);

    // Callers with metadata keys are held to their routes: no membership change, no raft.
    for (caller, path) in [
        ("meta.gateway", "/cluster/change-membership"),
        ("meta.gateway", "/cluster/add-learner"),
        ("meta.gateway", "/cluster/status"),
        ("meta.controller", "/cluster/change-membership"),
        ("meta.controller", "/raft/vote"),
        ("meta.admin", "/raft/vote"),
        ("meta.gateway", "/raft/append"),
    ] {
        let body = everything
            .iter()
            .find(|(known, _)| *known == path)
            .map_or_else(|| json!([]), |(_, body)| body.clone());
        let request = sign(
            &key(caller),
            &member.address,
            path,
            body.to_string().as_bytes(),
            SystemTime::now(),
        );
        let (code, answer) = send(&member.address, &request).await;
        assert_eq!(
            (code, error_code(&answer)),
            (403, "forbidden"),
            "{caller} on {path}: {answer}"
        );
    }

    // Nothing changed: the secret is still the owner's, membership is still member 1.
    assert_eq!(
        value_of(&member.address, "c/AKIDOFANOWNER")
            .await
            .as_deref(),
        Some(s3_secret)
    );
    let after = status(&member.address).await.unwrap();
    assert_eq!(after.last_applied_index, applied_before);
    assert_eq!(after.voters, BTreeSet::from([1]));
    let metrics = reqwest::get(format!("http://{}/metrics", member.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused = shardlet_testkit::metric_total(
        &metrics,
        "shardlet_meta_auth_refused_total{reason=\"key_not_accepted\",member=\"1\"}",
    );
    assert_eq!(refused, Some(27.0), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_kv_put_replayed_is_refused_and_the_same_put_re_signed_is_accepted() {
    let root = tempfile::tempdir().unwrap();
    let member = start_member(1, root.path(), true, &[]).await;
    wait_until(Duration::from_secs(30), "the member leads", || async {
        status(&member.address).await?.leader_id
    })
    .await;
    let gateway = key("meta.gateway");
    let captured = sign(
        &gateway,
        &member.address,
        "/kv/put",
        &put_body("o/bucket/key", "first"),
        SystemTime::now(),
    );
    let (code, answer) = send(&member.address, &captured).await;
    assert_eq!(code, 200, "{answer}");
    client(std::slice::from_ref(&member.address))
        .put("o/bucket/key", "overwritten later")
        .await
        .unwrap();

    let (code, answer) = send(&member.address, &captured).await;
    assert_eq!(
        (code, error_code(&answer)),
        (401, "unauthenticated"),
        "{answer}"
    );
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("replay"),
        "{answer}"
    );
    assert_eq!(
        value_of(&member.address, "o/bucket/key").await.as_deref(),
        Some("overwritten later"),
        "the replay changed nothing"
    );

    // The same body signed again is a new request.
    let again = sign(
        &gateway,
        &member.address,
        "/kv/put",
        &put_body("o/bucket/key", "first"),
        SystemTime::now(),
    );
    let (code, answer) = send(&member.address, &again).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        value_of(&member.address, "o/bucket/key").await.as_deref(),
        Some("first")
    );

    // A captured request with another body (same signed headers) is refused.
    let mut altered = sign(
        &gateway,
        &member.address,
        "/kv/put",
        &put_body("o/bucket/key", "third"),
        SystemTime::now(),
    );
    altered.body = put_body("o/bucket/key", "thirX");
    let (code, answer) = send(&member.address, &altered).await;
    assert_eq!(
        (code, error_code(&answer)),
        (401, "unauthenticated"),
        "{answer}"
    );
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("SHA-256"),
        "{answer}"
    );

    // Two minutes of clock skew is refused, naming the offset and NTP.
    let stale = sign(
        &gateway,
        &member.address,
        "/kv/put",
        &put_body("o/bucket/key", "stale"),
        SystemTime::now() - Duration::from_secs(120),
    );
    let (code, answer) = send(&member.address, &stale).await;
    assert_eq!(code, 401, "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("behind this server's clock") && message.contains("NTP"),
        "{message}"
    );
    assert_eq!(
        value_of(&member.address, "o/bucket/key").await.as_deref(),
        Some("first")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_captured_on_its_way_to_one_member_is_refused_by_another() {
    let root = tempfile::tempdir().unwrap();
    let first = start_member(1, root.path(), true, &[]).await;
    let second = start_member(2, root.path(), false, &[]).await;
    let admin = client(std::slice::from_ref(&first.address));
    wait_until(Duration::from_secs(30), "member 1 leads", || async {
        status(&first.address).await?.leader_id
    })
    .await;
    admin.add_learner(2, &second.address).await.unwrap();
    admin
        .change_membership(BTreeSet::from([1, 2]))
        .await
        .unwrap();
    wait_for_leader(&[&first, &second], &BTreeSet::from([1, 2])).await;

    let captured = sign(
        &key("meta.gateway"),
        &first.address,
        "/kv/put",
        &put_body("o/bucket/moved", "captured"),
        SystemTime::now(),
    );
    // Sent to member 2 unchanged: its Host is member 1's.
    let (code, answer) = send(&second.address, &captured).await;
    assert_eq!(
        (code, error_code(&answer)),
        (401, "unauthenticated"),
        "{answer}"
    );
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("addressed to host"),
        "{answer}"
    );
    assert_eq!(value_of(&first.address, "o/bucket/moved").await, None);
    // Its own member takes it, once.
    assert_eq!(send(&first.address, &captured).await.0, 200);
    assert_eq!(send(&first.address, &captured).await.0, 401);
}
