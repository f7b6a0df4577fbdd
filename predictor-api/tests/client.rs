//! The client without a sidecar (no libtorch needed): refused connections and a
//! listener that never answers both end as `Unavailable` within the timeouts, and the
//! caller gets heuristic scores marked as such.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use shardlet_core::NodeId;
use shardlet_predictor_api::api::NodeWindow;
use shardlet_predictor_api::client::{ClientConfig, ClientError, PredictorClient, ScoreSource};
use shardlet_predictor_api::heuristic_score;
use shardlet_predictor_api::schema::{index, ALL_MISSING};

fn key() -> shardlet_auth::Key {
    shardlet_auth::ClusterSecret::new("predictor-api-client-tests")
        .unwrap()
        .derive(shardlet_auth::KeyName::Predictor)
}

fn rows(reallocated: f32) -> Vec<shardlet_predictor_api::FeatureValues> {
    let mut rows = vec![ALL_MISSING; 4];
    rows[3][index::SMART_5] = reallocated;
    rows
}

#[tokio::test]
async fn refused_connection_is_unavailable_and_falls_back_to_the_heuristic() {
    // Bind to learn a free port, then close it so nothing listens there.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client =
        PredictorClient::new(&ClientConfig::new(format!("http://{address}"), key())).unwrap();
    let error = client
        .score(vec![NodeWindow::from_rows(NodeId(1), &rows(0.0))])
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Unavailable(_)), "{error}");
    let windows = vec![(NodeId(1), rows(0.0)), (NodeId(2), rows(12.0))];
    let scores = client.score_or_fallback(&windows).await;
    assert_eq!(scores[0].node_id, NodeId(1));
    assert_eq!(
        scores[0].failure_probability,
        f64::from(heuristic_score(&windows[0].1))
    );
    assert!(scores[1].failure_probability > scores[0].failure_probability);
    assert!(
        matches!(&scores[1].source, ScoreSource::Heuristic { reason } if reason.contains("unavailable"))
    );
}

#[tokio::test]
async fn a_sidecar_that_never_answers_times_out_as_unavailable() {
    // Accepts connections (the kernel does, via the backlog) but never responds.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let mut config = ClientConfig::new(format!("http://{address}"), key());
    config.request_timeout = Duration::from_millis(300);
    let client = PredictorClient::new(&config).unwrap();
    let error = client
        .score(vec![NodeWindow::from_rows(NodeId(1), &rows(0.0))])
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Unavailable(_)), "{error}");
    // Reaching this line at all is the property: the call ended on the client's own
    // timeout instead of hanging on a sidecar that never answers.
    drop(listener);
}

#[test]
fn floats_written_as_json_read_back_bit_for_bit() {
    // Model metadata and scores travel as JSON; serde_json's default float parser can
    // be off by one ulp (found as a flaky model save/load test: 1.555308032 came back
    // as 1.5553080320000001). The workspace enables `float_roundtrip`.
    for value in [
        1.555_308_032_f64,
        1.555_308_032_000_000_1,
        0.1 + 0.2,
        f64::MIN_POSITIVE,
        123_456.789_012_345_67,
    ] {
        let text = serde_json::to_string(&value).unwrap();
        let back: f64 = serde_json::from_str(&text).unwrap();
        assert_eq!(back.to_bits(), value.to_bits(), "{text}");
    }
}
