//! The sidecar started for real (the `shardlet-predictor serve` binary on a port the OS
//! picks): it scores valid batches, answers every kind of bad input with a 400 and a
//! reason, exposes /health and /metrics; when it is gone the client falls back.
#![cfg(feature = "lstm")]
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use shardlet_auth::{payload_sha256, ClusterSecret, Key, KeyName, RequestParts, SigningKey};
use shardlet_core::NodeId;
use shardlet_predictor_api::api::{HealthResponse, NodeWindow, ScoreRequest, BATCH_NODES_MAX};
use shardlet_predictor_api::client::{ClientConfig, ClientError, PredictorClient, ScoreSource};
use shardlet_predictor_api::schema::{index, ALL_MISSING, FEATURE_COUNT, SCHEMA_VERSION};

const WINDOW: usize = 6;
const ROOT: &str = "predictor-sidecar-test-root-secret";

fn predictor_key() -> Key {
    ClusterSecret::new(ROOT).unwrap().derive(KeyName::Predictor)
}

/// Kills the sidecar when the test ends, however it ends.
struct Sidecar {
    child: Child,
    base_url: String,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sidecar(model_directory: &std::path::Path) -> Sidecar {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardlet-predictor"))
        .args([
            "serve",
            "--insecure-plaintext",
            "--listen",
            "127.0.0.1:0",
            "--model",
        ])
        .arg(model_directory)
        // Only its own key, as `shardlet admin key derive --role predictor` writes it.
        .env(
            "SHARDLET_KEYS",
            format!("predictor={}", predictor_key().to_hex().as_str()),
        )
        .env_remove("SHARDLET_CLUSTER_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(address) = line.strip_prefix("listening on ") {
                let _ = sender.send(address.to_string());
            }
        }
    });
    let mut sidecar = Sidecar {
        child,
        base_url: String::new(),
    };
    // Wait for the "listening" line with a deadline (no fixed sleeps); the guard kills
    // the process if it never comes.
    let address = receiver
        .recv_timeout(Duration::from_secs(60))
        .expect("sidecar did not start");
    sidecar.base_url = format!("http://{address}");
    sidecar
}

fn window(node: u32, intervals: usize) -> NodeWindow {
    let mut row = ALL_MISSING;
    row[index::CPU_UTILIZATION] = 0.3;
    row[index::SMART_5] = f32::from(u8::try_from(node % 200).unwrap());
    NodeWindow::from_rows(NodeId(node), &vec![row; intervals])
}

fn request(windows: Vec<NodeWindow>) -> ScoreRequest {
    ScoreRequest {
        schema_version: SCHEMA_VERSION,
        windows,
    }
}

/// The signature headers of a `/v1/score` POST of `body`, signed with `key`.
fn signature(base_url: &str, key: &SigningKey, body: &[u8]) -> Vec<(&'static str, String)> {
    let host = base_url.trim_start_matches("http://");
    let hash = payload_sha256(body);
    let parts = RequestParts {
        method: "POST",
        host,
        target: "/v1/score",
        headers: &[],
        payload_sha256: Some(&hash),
    };
    key.sign(&parts, std::time::SystemTime::now())
        .unwrap()
        .iter()
        .map(|(name, value)| (name, value.to_string()))
        .collect()
}

/// POSTs `body` to `/v1/score` with the given headers (a signature, or none).
async fn post_with(
    http: &reqwest::Client,
    base_url: &str,
    body: Vec<u8>,
    headers: &[(&'static str, String)],
) -> (u16, String) {
    let mut request = http
        .post(format!("{base_url}/v1/score"))
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.body(body).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// POSTs `body` signed with the predictor key, as the controller does.
async fn post_raw(http: &reqwest::Client, base_url: &str, body: Vec<u8>) -> (u16, String) {
    let key = SigningKey::new(KeyName::Predictor, predictor_key());
    let headers = signature(base_url, &key, &body);
    post_with(http, base_url, body, &headers).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_scores_rejects_bad_input_and_client_falls_back_when_it_is_gone() {
    let artifact = tempfile::tempdir().unwrap();
    let model_directory = artifact.path().join("model");
    common::untrained_model(WINDOW)
        .save(&model_directory)
        .unwrap();
    let sidecar = start_sidecar(&model_directory);
    let base_url = sidecar.base_url.clone();
    let http = reqwest::Client::new();

    let health: HealthResponse = http
        .get(format!("{base_url}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health.window_intervals, WINDOW);
    assert_eq!(health.schema_version, SCHEMA_VERSION);
    assert_eq!(health.model_version, "test-untrained");

    let client =
        PredictorClient::new(&ClientConfig::new(base_url.clone(), predictor_key())).unwrap();
    let windows: Vec<NodeWindow> = (0..100).map(|node| window(node, WINDOW)).collect();
    let response = client.score(windows).await.unwrap();
    assert_eq!(response.scores.len(), 100);
    assert_eq!(response.model_version, "test-untrained");
    for (position, score) in response.scores.iter().enumerate() {
        assert_eq!(score.node_id, NodeId(position as u32));
        assert!((0.0..=1.0).contains(&score.failure_probability));
    }

    let json = |request: &ScoreRequest| serde_json::to_vec(request).unwrap();
    let mut bad_inputs: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not JSON", b"{\"windows\": [".to_vec(), "invalid JSON"),
        (
            "wrong types",
            br#"{"schema_version":1,"windows":[{"node_id":"abc","intervals":[]}]}"#.to_vec(),
            "invalid JSON",
        ),
        ("empty batch", json(&request(vec![])), "must not be empty"),
        (
            "too few intervals",
            json(&request(vec![window(1, WINDOW - 1)])),
            "exactly 6",
        ),
        (
            "too many windows",
            json(&request(
                (0..=BATCH_NODES_MAX as u32)
                    .map(|node| window(node, WINDOW))
                    .collect(),
            )),
            "at most",
        ),
    ];
    let mut wrong_schema = request(vec![window(1, WINDOW)]);
    wrong_schema.schema_version = SCHEMA_VERSION + 1;
    bad_inputs.push((
        "wrong schema version",
        json(&wrong_schema),
        "schema_version",
    ));
    let mut short_interval = request(vec![window(1, WINDOW)]);
    short_interval.windows[0].intervals[2].truncate(FEATURE_COUNT - 1);
    bad_inputs.push(("short interval", json(&short_interval), "expected 18"));
    let mut out_of_range = request(vec![window(1, WINDOW)]);
    out_of_range.windows[0].intervals[0][index::CPU_UTILIZATION] = Some(3.0);
    bad_inputs.push(("out of range", json(&out_of_range), "cpu_utilization"));
    let mut negative_counter = request(vec![window(1, WINDOW)]);
    negative_counter.windows[0].intervals[5][index::SMART_197] = Some(-1.0);
    bad_inputs.push(("negative counter", json(&negative_counter), "smart_197"));
    let mut huge = request(vec![window(1, WINDOW)]);
    huge.windows[0].intervals[5][index::READ_ERRORS] = Some(1e300);
    bad_inputs.push(("overflowing number", json(&huge), "read_errors"));
    for (what, body, reason) in bad_inputs {
        let (status, text) = post_raw(&http, &base_url, body).await;
        assert_eq!(status, 400, "{what}: {text}");
        assert!(
            text.contains(reason),
            "{what}: {text:?} should mention {reason:?}"
        );
    }
    // Unsigned, signed with another key, or replayed: 401 with a reason, nothing scored.
    let body = json(&request(vec![window(1, WINDOW)]));
    let root = ClusterSecret::new(ROOT).unwrap();
    let controller_key = SigningKey::new(KeyName::Controller, root.derive(KeyName::Controller));
    let node_name = KeyName::Node(shardlet_auth::NodeName::parse("1").unwrap());
    let node_key = SigningKey::new(node_name, root.derive(node_name));
    let stranger_root = ClusterSecret::new("another-cluster-root-secret").unwrap();
    let stranger = SigningKey::new(KeyName::Predictor, stranger_root.derive(KeyName::Predictor));
    let genuine = SigningKey::new(KeyName::Predictor, predictor_key());
    let captured = signature(&base_url, &genuine, &body);
    assert_eq!(
        post_with(&http, &base_url, body.clone(), &captured).await.0,
        200
    );
    let refused = [
        ("unsigned", Vec::new(), body.clone(), "not signed"),
        (
            "a storage node's key",
            signature(&base_url, &node_key, &body),
            body.clone(),
            "not accepted",
        ),
        (
            "the controller's own key",
            signature(&base_url, &controller_key, &body),
            body.clone(),
            "not accepted",
        ),
        (
            "another cluster's predictor key",
            signature(&base_url, &stranger, &body),
            body.clone(),
            "does not match",
        ),
        ("replayed", captured.clone(), body.clone(), "replay"),
        (
            "another body under a good signature",
            signature(&base_url, &genuine, &body),
            json(&request(vec![window(2, WINDOW)])),
            "SHA-256",
        ),
    ];
    for (what, headers, sent, reason) in refused {
        let (status, text) = post_with(&http, &base_url, sent, &headers).await;
        assert_eq!(status, 401, "{what}: {text}");
        assert!(text.contains(reason), "{what}: {text}");
    }

    // The server answers 413 without reading the body and closes that connection; a
    // one-off client keeps the shared one's pool free of the dead connection.
    let one_off = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let (status, _) = post_raw(&one_off, &base_url, vec![b' '; 9 * 1024 * 1024]).await;
    assert_eq!(status, 413, "an oversized body is refused before parsing");

    // The client reports a 4xx as our bug, not as the sidecar being down.
    let rejected = client.score(vec![window(1, WINDOW + 1)]).await.unwrap_err();
    assert!(
        matches!(rejected, ClientError::Rejected { status: 400, .. }),
        "{rejected}"
    );

    let metrics = http
        .get(format!("{base_url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("shardlet_predictor_requests_total{outcome=\"ok\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("shardlet_predictor_requests_total{outcome=\"unauthenticated\"} 6"),
        "{metrics}"
    );
    assert!(
        metrics.contains("shardlet_predictor_auth_refused_total{reason=\"replayed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("shardlet_predictor_requests_total{outcome=\"bad_request\"} 11"),
        "{metrics}"
    );

    // The sidecar goes away: the client says Unavailable and falls back.
    drop(sidecar);
    let error = client.score(vec![window(1, WINDOW)]).await.unwrap_err();
    assert!(matches!(error, ClientError::Unavailable(_)), "{error}");
    let mut alarming = vec![ALL_MISSING; WINDOW];
    alarming[WINDOW - 1][index::SMART_197] = 4.0;
    let scores = client
        .score_or_fallback(&[
            (NodeId(1), vec![ALL_MISSING; WINDOW]),
            (NodeId(2), alarming),
        ])
        .await;
    assert_eq!(scores.len(), 2);
    assert!(scores
        .iter()
        .all(|score| matches!(score.source, ScoreSource::Heuristic { .. })));
    assert!(scores[1].failure_probability > scores[0].failure_probability);
}

/// Sends SIGTERM to the sidecar and waits (bounded) for it to exit.
fn terminate_and_wait(
    sidecar: &mut Sidecar,
    deadline: Duration,
) -> Option<std::process::ExitStatus> {
    let pid = sidecar.child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success(), "kill -TERM {pid} failed");
    let give_up = std::time::Instant::now() + deadline;
    loop {
        if let Some(status) = sidecar.child.try_wait().unwrap() {
            return Some(status);
        }
        if std::time::Instant::now() >= give_up {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_is_ready_once_listening_and_exits_0_on_sigterm() {
    let artifact = tempfile::tempdir().unwrap();
    let model_directory = artifact.path().join("model");
    common::untrained_model(WINDOW)
        .save(&model_directory)
        .unwrap();
    let mut sidecar = start_sidecar(&model_directory);
    let ready = reqwest::get(format!("{}/ready", sidecar.base_url))
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "the model is loaded before the port opens"
    );
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], true);
    // Before the fix the sidecar listened for Ctrl-C only and ignored SIGTERM.
    let status = terminate_and_wait(&mut sidecar, Duration::from_secs(30))
        .expect("the sidecar did not exit within 30 s of SIGTERM");
    assert!(status.success(), "exit status after SIGTERM: {status}");
}
