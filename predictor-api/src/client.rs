//! The sidecar's HTTP client, as the controller (and the predictor's own tests and
//! benchmark) use it. Compiled without libtorch.
//!
//! Every call has a connect timeout and a total timeout, and reads at most
//! `RESPONSE_BODY_BYTES_MAX` of an answer. When the sidecar cannot be reached (refused,
//! timed out, 5xx, unreadable or oversized answer) the error is `Unavailable`, and
//! `score_or_fallback` scores with the documented heuristic instead, saying so in each
//! score's `source` so the controller can show it is running degraded. `health` asks
//! the sidecar for its model's shape and refuses one this client cannot feed.
//!
//! `/v1/score` is signed with the `predictor` key (SigV4 with a nonce and the body's
//! SHA-256, `shardlet-auth`), and its answer must carry the sidecar's signature over
//! this request's nonce, the status and the body (`shardlet_auth::response`): the
//! controller drains nodes on these scores, so an answer from anyone but the sidecar
//! (or a replayed answer) is refused and the heuristic used instead (`Unauthenticated`).

use std::time::{Duration, SystemTime};

use shardlet_auth::response::{verify_response, HEADER_RESPONSE_SIGNATURE};
use shardlet_auth::{payload_sha256, Key, KeyName, RequestParts, SigningKey};
use shardlet_core::NodeId;
use shardlet_net::Transport;

use crate::api::{
    ErrorResponse, HealthResponse, NodeWindow, ScoreRequest, ScoreResponse, RESPONSE_BODY_BYTES_MAX,
};
use crate::heuristic::heuristic_score;
use crate::schema::{FeatureValues, SCHEMA_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The sidecar is down, slow or broken: fall back.
    #[error("predictor sidecar unavailable: {0}")]
    Unavailable(String),
    /// The sidecar answers but serves a model this client cannot feed (another schema
    /// version, an out-of-range window): fall back until it is replaced.
    #[error("predictor sidecar is incompatible: {0}")]
    Incompatible(String),
    /// The sidecar refused the request (a 4xx): a bug on our side, worth logging loudly.
    #[error("predictor sidecar rejected the request ({status}): {reason}")]
    Rejected { status: u16, reason: String },
    /// The answer is not signed by the sidecar for this request: spoofed, replayed, or
    /// a sidecar with another key. Fall back; never act on it.
    #[error("predictor answer not authenticated: {0}")]
    Unauthenticated(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum ScoreSource {
    Model { model_version: String },
    Heuristic { reason: String },
}

#[derive(Clone, Debug, PartialEq)]
pub struct RiskScore {
    pub node_id: NodeId,
    pub failure_probability: f64,
    pub source: ScoreSource,
}

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// e.g. `http://127.0.0.1:9400`, or `https://…` with a TLS transport
    pub base_url: String,
    /// The `predictor` key: signs requests and verifies answers. `Debug` hides it.
    pub key: Key,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Plaintext, or TLS trusting the cluster's CA (then `base_url` must be `https://`).
    pub transport: Transport,
}

impl ClientConfig {
    pub fn new(base_url: impl Into<String>, key: Key) -> Self {
        Self {
            base_url: base_url.into(),
            key,
            connect_timeout: Duration::from_millis(200),
            request_timeout: Duration::from_secs(2),
            transport: Transport::Plaintext,
        }
    }
}

#[derive(Clone, Debug)]
pub struct PredictorClient {
    http: reqwest::Client,
    score_url: String,
    /// `Host` as the request carries it, which the signature covers.
    host: String,
    health_url: String,
    key: SigningKey,
}

impl PredictorClient {
    pub fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        let http = config
            .transport
            .client_builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .build()
            .map_err(|error| {
                ClientError::Unavailable(format!("cannot build HTTP client: {error}"))
            })?;
        let base = config.base_url.trim_end_matches('/');
        let url = reqwest::Url::parse(base)
            .map_err(|error| ClientError::Unavailable(format!("invalid URL {base:?}: {error}")))?;
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            (None, _) => return Err(ClientError::Unavailable(format!("no host in URL {base:?}"))),
        };
        Ok(Self {
            http,
            score_url: format!("{base}/v1/score"),
            host,
            health_url: format!("{base}/health"),
            key: SigningKey::new(KeyName::Predictor, config.key.clone()),
        })
    }

    /// The sidecar's model: version, schema and window length, checked to be one this
    /// client can feed (`Incompatible` otherwise).
    pub async fn health(&self) -> Result<HealthResponse, ClientError> {
        let response = self
            .http
            .get(&self.health_url)
            .send()
            .await
            .map_err(|error| ClientError::Unavailable(error.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(ClientError::Unavailable(format!(
                "GET /health: HTTP {status}"
            )));
        }
        let body = read_bounded(response).await?;
        let health: HealthResponse = serde_json::from_slice(&body).map_err(|error| {
            ClientError::Unavailable(format!("unreadable /health response: {error}"))
        })?;
        health.check().map_err(ClientError::Incompatible)?;
        Ok(health)
    }

    /// Scores a batch with the model.
    pub async fn score(&self, windows: Vec<NodeWindow>) -> Result<ScoreResponse, ClientError> {
        let request = ScoreRequest {
            schema_version: SCHEMA_VERSION,
            windows,
        };
        let body = serde_json::to_vec(&request).map_err(|error| {
            ClientError::Unavailable(format!("cannot encode the request: {error}"))
        })?;
        let hash = payload_sha256(&body);
        let parts = RequestParts {
            method: "POST",
            host: &self.host,
            target: "/v1/score",
            headers: &[],
            payload_sha256: Some(&hash),
        };
        let signature = self
            .key
            .sign(&parts, SystemTime::now())
            .map_err(|error| ClientError::Unavailable(error.to_string()))?;
        let mut builder = self
            .http
            .post(&self.score_url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in signature.iter() {
            builder = builder.header(name, value);
        }
        let response = builder
            .body(body)
            .send()
            .await
            .map_err(|error| ClientError::Unavailable(error.to_string()))?;
        let status = response.status();
        if status.is_client_error() {
            let reason = match read_bounded(response).await {
                Ok(body) => serde_json::from_slice::<ErrorResponse>(&body).map_or_else(
                    |error| format!("no error reason in the answer ({error})"),
                    |body| body.error,
                ),
                Err(error) => error.to_string(),
            };
            return Err(ClientError::Rejected {
                status: status.as_u16(),
                reason,
            });
        }
        if !status.is_success() {
            return Err(ClientError::Unavailable(format!("HTTP {status}")));
        }
        let answer_signature = response
            .headers()
            .get(HEADER_RESPONSE_SIGNATURE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let body = read_bounded(response).await?;
        verify_response(
            self.key.key(),
            &signature.nonce,
            status.as_u16(),
            &body,
            answer_signature.as_deref(),
        )
        .map_err(|error| ClientError::Unauthenticated(error.to_string()))?;
        let scores: ScoreResponse = serde_json::from_slice(&body)
            .map_err(|error| ClientError::Unavailable(format!("unreadable response: {error}")))?;
        if scores.scores.len() != request.windows.len() {
            return Err(ClientError::Unavailable(format!(
                "{} scores for {} windows",
                scores.scores.len(),
                request.windows.len()
            )));
        }
        Ok(scores)
    }

    /// Scores with the model, or with the heuristic when the model cannot answer.
    pub async fn score_or_fallback(
        &self,
        windows: &[(NodeId, Vec<FeatureValues>)],
    ) -> Vec<RiskScore> {
        let request: Vec<NodeWindow> = windows
            .iter()
            .map(|(node_id, rows)| NodeWindow::from_rows(*node_id, rows))
            .collect();
        match self.score(request).await {
            Ok(response) => response
                .scores
                .into_iter()
                .map(|score| RiskScore {
                    node_id: score.node_id,
                    failure_probability: score.failure_probability,
                    source: ScoreSource::Model {
                        model_version: response.model_version.clone(),
                    },
                })
                .collect(),
            Err(error) => {
                if matches!(error, ClientError::Rejected { .. }) {
                    tracing::error!(%error, "predictor rejected our request; using the heuristic");
                } else {
                    tracing::warn!(%error, "predictor unavailable; using the heuristic");
                }
                fallback_scores(windows, &error.to_string())
            }
        }
    }
}

/// The body of an answer, refused beyond `RESPONSE_BODY_BYTES_MAX` (checked against the
/// declared length first, then while reading, since a length need not be declared).
async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, ClientError> {
    let too_large = || {
        ClientError::Unavailable(format!(
            "response larger than {RESPONSE_BODY_BYTES_MAX} bytes"
        ))
    };
    if response
        .content_length()
        .is_some_and(|length| length > RESPONSE_BODY_BYTES_MAX as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| ClientError::Unavailable(format!("reading the response: {error}")))?
    {
        if body.len() + chunk.len() > RESPONSE_BODY_BYTES_MAX {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Heuristic scores for every window, each marked with why the model was not used.
pub fn fallback_scores(windows: &[(NodeId, Vec<FeatureValues>)], reason: &str) -> Vec<RiskScore> {
    windows
        .iter()
        .map(|(node_id, rows)| RiskScore {
            node_id: *node_id,
            failure_probability: f64::from(heuristic_score(rows)),
            source: ScoreSource::Heuristic {
                reason: reason.to_string(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests;
