//! The client against a canned HTTP server (a real socket, one fixed answer per test):
//! each way a sidecar can answer badly ends in the right `ClientError`, and a good
//! answer is read whole.
#![allow(clippy::unwrap_used)]

use shardlet_auth::response::sign_response;
use shardlet_auth::ClusterSecret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::schema::ALL_MISSING;

fn predictor_key() -> Key {
    ClusterSecret::new("predictor-api-tests-root-secret")
        .unwrap()
        .derive(KeyName::Predictor)
}

/// How the canned server signs its answer.
#[derive(Clone, Copy)]
enum Answer {
    /// With the predictor key, over the request's nonce: a genuine sidecar.
    Signed,
    /// Without a signature: anyone else on the path.
    Unsigned,
    /// With the right key but for another request (a replayed answer).
    SignedForAnotherRequest,
}

/// Serves `status` with `body` (JSON) to every connection, signed; returns the base URL.
async fn canned(status: &'static str, body: String) -> String {
    canned_as(status, body, Answer::Signed).await
}

async fn canned_as(status: &'static str, body: String, answer: Answer) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                // Read the request head and its declared body, then answer and close.
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    let Ok(read) = stream.read(&mut buffer).await else {
                        return;
                    };
                    if read == 0 {
                        return;
                    }
                    request.extend_from_slice(&buffer[..read]);
                    let text = String::from_utf8_lossy(&request).to_lowercase();
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let declared = text
                            .lines()
                            .find_map(|line| line.strip_prefix("content-length:"))
                            .and_then(|value| value.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if request.len() >= head_end + 4 + declared {
                            break;
                        }
                    }
                }
                let text = String::from_utf8_lossy(&request).to_lowercase();
                let nonce = text
                    .lines()
                    .find_map(|line| line.strip_prefix("x-shardlet-nonce:"))
                    .map(|value| value.trim().to_string())
                    .unwrap_or_default();
                let code: u16 = status[..3].parse().unwrap();
                let signature = match answer {
                    Answer::Signed => {
                        sign_response(&predictor_key(), &nonce, code, body.as_bytes())
                    }
                    Answer::Unsigned => String::new(),
                    Answer::SignedForAnotherRequest => {
                        sign_response(&predictor_key(), "another-nonce", code, body.as_bytes())
                    }
                };
                let signature_line = if signature.is_empty() {
                    String::new()
                } else {
                    format!("{HEADER_RESPONSE_SIGNATURE}: {signature}\r\n")
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{signature_line}connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("http://{address}")
}

fn client(base_url: &str) -> PredictorClient {
    PredictorClient::new(&ClientConfig::new(base_url, predictor_key())).unwrap()
}

fn one_window() -> Vec<NodeWindow> {
    vec![NodeWindow::from_rows(NodeId(4), &[ALL_MISSING; 2])]
}

#[tokio::test]
async fn a_good_answer_is_read_with_one_score_per_window() {
    let body = r#"{"model_version":"m7","horizon_days":30,"scores":[{"node_id":4,"failure_probability":0.25}]}"#;
    let url = canned("200 OK", body.into()).await;
    let response = client(&url).score(one_window()).await.unwrap();
    assert_eq!(response.model_version, "m7");
    assert_eq!(response.scores[0].node_id, NodeId(4));
    assert_eq!(response.scores[0].failure_probability, 0.25);
}

#[tokio::test]
async fn a_4xx_is_rejected_with_the_sidecars_reason() {
    let url = canned(
        "400 Bad Request",
        r#"{"error":"windows[0]: too short"}"#.into(),
    )
    .await;
    match client(&url).score(one_window()).await.unwrap_err() {
        ClientError::Rejected { status, reason } => {
            assert_eq!(status, 400);
            assert_eq!(reason, "windows[0]: too short");
        }
        other => panic!("expected Rejected, got {other}"),
    }
}

#[tokio::test]
async fn a_5xx_a_garbage_body_or_a_wrong_score_count_is_unavailable() {
    let cases = [
        ("503 Service Unavailable", "{}".to_string(), "503"),
        ("200 OK", "not json".to_string(), "unreadable"),
        (
            "200 OK",
            r#"{"model_version":"m","horizon_days":30,"scores":[]}"#.to_string(),
            "0 scores for 1 windows",
        ),
    ];
    for (status, body, expected) in cases {
        let url = canned(status, body).await;
        let error = client(&url).score(one_window()).await.unwrap_err();
        assert!(
            matches!(&error, ClientError::Unavailable(reason) if reason.contains(expected)),
            "{status}: {error}"
        );
    }
}

#[tokio::test]
async fn an_oversized_answer_is_unavailable_not_buffered() {
    let url = canned("200 OK", " ".repeat(RESPONSE_BODY_BYTES_MAX + 1)).await;
    let error = client(&url).score(one_window()).await.unwrap_err();
    assert!(
        matches!(&error, ClientError::Unavailable(reason) if reason.contains("larger than")),
        "{error}"
    );
}

#[tokio::test]
async fn health_reads_the_models_shape_and_refuses_another_schema() {
    let health = |schema_version: u32| {
        format!(
            r#"{{"status":"ok","model_version":"m1","schema_version":{schema_version},"window_intervals":14,"horizon_days":30,"feature_names":[]}}"#
        )
    };
    let url = canned("200 OK", health(SCHEMA_VERSION)).await;
    assert_eq!(client(&url).health().await.unwrap().window_intervals, 14);
    let url = canned("200 OK", health(SCHEMA_VERSION + 1)).await;
    let error = client(&url).health().await.unwrap_err();
    assert!(matches!(error, ClientError::Incompatible(_)), "{error}");
    let url = canned("500 Internal Server Error", "{}".into()).await;
    let error = client(&url).health().await.unwrap_err();
    assert!(matches!(error, ClientError::Unavailable(_)), "{error}");
}

#[tokio::test]
async fn a_rejected_request_falls_back_to_heuristic_scores_that_say_why() {
    let url = canned("400 Bad Request", r#"{"error":"bad window"}"#.into()).await;
    let windows = vec![(NodeId(4), vec![ALL_MISSING; 2])];
    let scores = client(&url).score_or_fallback(&windows).await;
    assert_eq!(scores.len(), 1);
    assert_eq!(
        scores[0].failure_probability,
        f64::from(heuristic_score(&windows[0].1))
    );
    assert!(
        matches!(&scores[0].source, ScoreSource::Heuristic { reason } if reason.contains("bad window")),
        "{:?}",
        scores[0].source
    );
}

#[tokio::test]
async fn an_answer_not_signed_by_the_sidecar_for_this_request_is_refused() {
    let body = r#"{"model_version":"m7","horizon_days":30,"scores":[{"node_id":4,"failure_probability":0.99}]}"#;
    for answer in [Answer::Unsigned, Answer::SignedForAnotherRequest] {
        let url = canned_as("200 OK", body.into(), answer).await;
        let error = client(&url).score(one_window()).await.unwrap_err();
        assert!(matches!(error, ClientError::Unauthenticated(_)), "{error}");
        // The controller's path: the heuristic, never the spoofed 0.99.
        let windows = vec![(NodeId(4), vec![ALL_MISSING; 2])];
        let scores = client(&url).score_or_fallback(&windows).await;
        assert!(matches!(scores[0].source, ScoreSource::Heuristic { .. }));
    }
    // The same answer signed with another cluster's predictor key.
    let stranger = ClusterSecret::new("another-cluster-root-secret").unwrap();
    let other = PredictorClient::new(&ClientConfig::new(
        canned("200 OK", body.into()).await,
        stranger.derive(KeyName::Predictor),
    ))
    .unwrap();
    assert!(matches!(
        other.score(one_window()).await.unwrap_err(),
        ClientError::Unauthenticated(_)
    ));
}

#[tokio::test]
async fn score_requests_are_signed_with_the_predictor_key_and_the_body_hash() {
    use std::sync::{Arc, Mutex};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let recorder = seen.clone();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buffer = vec![0u8; 65536];
        loop {
            let read = stream.read(&mut buffer).await.unwrap();
            request.extend_from_slice(&buffer[..read]);
            let text = String::from_utf8_lossy(&request).to_string();
            let Some(head_end) = text.find("\r\n\r\n") else {
                continue;
            };
            let declared = text
                .to_lowercase()
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if read == 0 || request.len() >= head_end + 4 + declared {
                break;
            }
        }
        *recorder.lock().unwrap() = String::from_utf8_lossy(&request).to_string();
        let _ = stream
            .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
    });
    let _ = client(&format!("http://{address}"))
        .score(one_window())
        .await;
    let request = seen.lock().unwrap().clone();
    let head_end = request.find("\r\n\r\n").unwrap();
    let (head, body) = (request[..head_end].to_lowercase(), &request[head_end + 4..]);
    assert!(head.contains("credential=predictor/"), "{head}");
    assert!(head.contains("x-shardlet-nonce:"), "{head}");
    assert!(
        head.contains(&format!(
            "x-amz-content-sha256: {}",
            payload_sha256(body.as_bytes())
        )),
        "{head}"
    );
}
