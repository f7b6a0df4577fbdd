//! Bad input from outside gets a clear 4xx with a reason, and changes nothing.

use std::time::Duration;

use serde_json::{json, Value};
use shardlet_meta::auth::{ClientAuth, Sender};
use shardlet_meta::identity::ClusterId;
use shardlet_meta::ReadConsistency;

use shardlet_testkit::meta_member::meta_client_key;
use shardlet_testkit::wait_until;

use super::load::replica_contents;
use super::members::{client, start_member, status, SECRET};

pub struct Raw {
    pub http: reqwest::Client,
    pub address: String,
}

/// The signer of caller `caller` (`admin`, `gateway`, `controller`, `member`) of the
/// cluster whose secret is `secret`.
pub fn caller(secret: &str, caller: &str) -> ClientAuth {
    ClientAuth::new(meta_client_key(secret, caller)).unwrap()
}

impl Raw {
    /// POSTs `body` signed as `sender` with `auth`, or unsigned when `auth` is `None`.
    pub async fn post(
        &self,
        path: &str,
        body: &[u8],
        sender: Sender,
        auth: Option<&ClientAuth>,
    ) -> (u16, Value) {
        self.post_in_cluster(path, body, sender, auth, None).await
    }

    /// [`Self::post`] naming `cluster` in the signed `x-shardlet-cluster` header, as raft
    /// RPC between members does.
    pub async fn post_in_cluster(
        &self,
        path: &str,
        body: &[u8],
        sender: Sender,
        auth: Option<&ClientAuth>,
        cluster: Option<&ClusterId>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("http://{}{path}", self.address))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(auth) = auth {
            for (name, value) in auth
                .sign_for_cluster("POST", &self.address, path, &sender, body, false, cluster)
                .unwrap()
            {
                request = request.header(name, value);
            }
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn client_post(&self, path: &str, body: &Value) -> (u16, Value) {
        let admin = caller(SECRET, "admin");
        self.post(
            path,
            body.to_string().as_bytes(),
            Sender::Client,
            Some(&admin),
        )
        .await
    }
}

pub fn error_code(body: &Value) -> &str {
    body["error"].as_str().unwrap_or("<no error code>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_4xx_errors_and_change_nothing() {
    let root = tempfile::tempdir().unwrap();
    let member = start_member(1, root.path(), true, &["--value-bytes-max", "1024"]).await;
    wait_until(Duration::from_secs(30), "the member leads", || async {
        status(&member.address).await?.leader_id
    })
    .await;
    let meta = client(std::slice::from_ref(&member.address));
    meta.put("kept", "original").await.unwrap();
    let applied_before = status(&member.address).await.unwrap().last_applied_index;
    let raw = Raw {
        http: reqwest::Client::new(),
        address: member.address.clone(),
    };
    let key = "a2VwdA=="; // base64("kept")
    let admin = caller(SECRET, "admin");
    let member_key = caller(SECRET, "member");

    let (code, body) = raw
        .post("/kv/put", b"{not json", Sender::Client, Some(&admin))
        .await;
    assert_eq!((code, error_code(&body)), (400, "malformed_body"), "{body}");

    let oversized = base64_of(&vec![b'x'; 2048]);
    let (code, body) = raw
        .client_post("/kv/put", &json!({"key": key, "value": oversized}))
        .await;
    assert_eq!((code, error_code(&body)), (413, "invalid_batch"), "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("value_bytes_max"),
        "{body}"
    );

    // Well signed, badly formed: (path, JSON body, status, error code, what is wrong).
    #[rustfmt::skip]
    let refused = [
        ("/kv/put", r#"{"key":"!!!","value":""}"#, 400, "malformed_body", "bad base64"),
        ("/kv/put", r#"{"key":"","value":"eA=="}"#, 400, "invalid_batch", "empty key"),
        ("/kv/batch", r#"{"operations":[]}"#, 400, "invalid_batch", "empty batch"),
        ("/kv/get", r#"{"key":"dW5rbm93bg=="}"#, 404, "key_not_found", "unknown key"),
        ("/kv/scan", r#"{"prefix":"","limit":0}"#, 400, "invalid_limit", "zero limit"),
        ("/cluster/change-membership", r#"{"voters":[]}"#, 400, "invalid_membership", "no voters"),
        ("/cluster/add-learner", r#"{"member_id":5,"address":"no-port"}"#, 400, "invalid_membership", "address without a port"),
        ("/cluster/add-learner", r#"{"member_id":5,"address":"h:0"}"#, 400, "invalid_membership", "port 0"),
        ("/cluster/add-learner", r#"{"member_id":5,"address":"h:1/x"}"#, 400, "invalid_membership", "a path"),
        ("/cluster/add-learner", r#"{"member_id":"five","address":"h:1"}"#, 400, "malformed_body", "id not a number"),
        ("/cluster/promote", r#"{"member_id":9}"#, 400, "invalid_membership", "unknown member"),
        ("/cluster/promote", r#"{"member_id":1}"#, 400, "invalid_membership", "already a voter"),
        ("/cluster/remove", r#"{"member_id":1}"#, 400, "invalid_membership", "the last voter"),
        ("/cluster/remove", r#"{"member_id":9}"#, 400, "invalid_membership", "unknown member"),
        ("/cluster/remove", r#"{}"#, 400, "malformed_body", "no member"),
    ];
    for (path, request, status, code, what) in refused {
        let (got, body) = raw
            .post(path, request.as_bytes(), Sender::Client, Some(&admin))
            .await;
        assert_eq!((got, error_code(&body)), (status, code), "{what}: {body}");
    }
    assert_eq!(
        meta.get("unknown", ReadConsistency::Linearizable)
            .await
            .unwrap(),
        None
    );

    let put = json!({"key": key, "value": "aGlqYWNrZWQ="}).to_string();
    let stranger = caller("a-wrong-cluster-secret", "admin");
    for (auth, what) in [(Some(&stranger), "wrong secret"), (None, "unsigned")] {
        let (code, body) = raw
            .post("/kv/put", put.as_bytes(), Sender::Client, auth)
            .await;
        assert_eq!(
            (code, error_code(&body)),
            (401, "unauthenticated"),
            "{what}: {body}"
        );
    }

    // Raft RPC from a correctly signed sender that is not a member of the cluster.
    let vote = json!({"vote": {"leader_id": {"term": 99, "node_id": 99}, "committed": false}, "last_log_id": null});
    let cluster = status(&member.address).await.unwrap().cluster_id.unwrap();
    for sender in [Sender::Member(99), Sender::Client] {
        let (code, body) = raw
            .post_in_cluster(
                "/raft/vote",
                vote.to_string().as_bytes(),
                sender,
                Some(&member_key),
                Some(&cluster),
            )
            .await;
        assert_eq!((code, error_code(&body)), (403, "not_a_member"), "{body}");
    }
    // From a member naming no cluster, or another one (a cluster made from the same
    // secret): refused before anything else is looked at.
    let other: ClusterId = "0123456789abcdef0123456789abcdef".parse().unwrap();
    for (named, what) in [
        (None, "no cluster named"),
        (Some(&other), "another cluster"),
    ] {
        let (code, body) = raw
            .post_in_cluster(
                "/raft/vote",
                vote.to_string().as_bytes(),
                Sender::Member(1),
                Some(&member_key),
                named,
            )
            .await;
        assert_eq!(
            (code, error_code(&body)),
            (403, "wrong_cluster"),
            "{what}: {body}"
        );
    }
    let malformed = raw
        .http
        .post(format!("http://{}/raft/vote", raw.address))
        .header("content-type", "application/json")
        .body(vote.to_string());
    let mut malformed = malformed;
    for (name, value) in member_key
        .sign(
            "POST",
            &raw.address,
            "/raft/vote",
            &Sender::Member(1),
            vote.to_string().as_bytes(),
            false,
        )
        .unwrap()
    {
        malformed = malformed.header(name, value);
    }
    // Unsigned, the header changes nothing the signature covers: a forged one is refused
    // as unauthenticated (it is in the signed set whenever present).
    let response = malformed
        .header("x-shardlet-cluster", "not-an-id")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        401,
        "an unsigned cluster header"
    );
    let (code, body) = raw
        .post_in_cluster(
            "/raft/append",
            b"[]",
            Sender::Member(1),
            Some(&member_key),
            Some(&cluster),
        )
        .await;
    assert_eq!((code, error_code(&body)), (400, "malformed_body"), "{body}");

    // Nothing changed: the one key and nothing else, and no entry was applied.
    let contents = replica_contents(&member.address, "").await.unwrap();
    assert_eq!(
        contents.into_iter().collect::<Vec<_>>(),
        vec![("kept".to_string(), "original".to_string())]
    );
    let after = status(&member.address).await.unwrap();
    assert_eq!(after.last_applied_index, applied_before);
    assert_eq!(after.term, status(&member.address).await.unwrap().term);
    assert_eq!(
        after.leader_id,
        Some(1),
        "the non-member's vote request must not depose the leader"
    );
}

pub fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Sends only the head of a POST that announces `announced_bytes` of body, none of
/// which ever follows, and returns the status line the member answers with (or panics
/// after `deadline`: a member that waits for the body never answers).
async fn answer_to_a_body_that_never_comes(
    address: &str,
    head: &str,
    announced_bytes: usize,
    deadline: Duration,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "{head}\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {announced_bytes}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(deadline, stream.read(&mut answer))
        .await
        .unwrap_or_else(|_| panic!("no answer within {deadline:?}: the member waited for the body"))
        .unwrap();
    String::from_utf8_lossy(&answer[..read])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_is_refused_before_its_body_is_read_and_key_routes_take_small_bodies() {
    let root = tempfile::tempdir().unwrap();
    let member = start_member(1, root.path(), true, &[]).await;
    wait_until(Duration::from_secs(30), "the member leads", || async {
        status(&member.address).await?.leader_id
    })
    .await;
    // An unsigned 12 MiB PUT (under the 16 MiB request limit): refused on its headers.
    let line = answer_to_a_body_that_never_comes(
        &member.address,
        "POST /kv/put HTTP/1.1",
        12 * 1024 * 1024,
        Duration::from_secs(20),
    )
    .await;
    assert!(line.contains(" 401 "), "{line}");

    // Well signed, but a key lookup the size of a batch: refused by its route's limit.
    let raw = Raw {
        http: reqwest::Client::new(),
        address: member.address.clone(),
    };
    let admin = caller(SECRET, "admin");
    let huge = json!({"key": base64_of(&vec![b'k'; 200 * 1024])}).to_string();
    let (code, body) = raw
        .post("/kv/get", huge.as_bytes(), Sender::Client, Some(&admin))
        .await;
    assert_eq!((code, error_code(&body)), (413, "body_too_large"), "{body}");
    // The same size is fine where values travel.
    let value = json!({"key": "a2V5", "value": base64_of(&vec![b'v'; 200 * 1024])}).to_string();
    let (code, body) = raw
        .post("/kv/put", value.as_bytes(), Sender::Client, Some(&admin))
        .await;
    assert_eq!(code, 200, "{body}");
}
