//! The client against a canned HTTP server (a real socket, one fixed answer per test):
//! each way a sidecar can answer badly ends in the right `ClientError`, and a good
//! answer is read whole.
#![allow(clippy::unwrap_used)]

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::schema::ALL_MISSING;

/// Serves `status` with `body` (JSON) to every connection; returns the base URL.
async fn canned(status: &'static str, body: String) -> String {
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
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
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
    PredictorClient::new(&ClientConfig::new(base_url)).unwrap()
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
