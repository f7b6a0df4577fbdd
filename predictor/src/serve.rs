//! The scoring sidecar: `POST /v1/score`, `GET /health`, `GET /ready`, `GET /metrics`.
//!
//! `/v1/score` takes only requests signed with the `predictor` key (the controller holds
//! it), each nonce once, the body bound by its signed SHA-256; the signature is checked
//! on the headers before the body is read. A refusal is 401 with a JSON reason, counted
//! by reason. Every answer to a signed request is itself signed (`shardlet_auth::
//! response`) over the request's nonce, so the controller can tell the sidecar's scores
//! from a spoofed or replayed answer. `/health`, `/ready` and `/metrics` stay open.
//! It stops on SIGTERM or SIGINT (`shardlet_net::shutdown_signal`): no new connections,
//! scores in flight finish within the port's shutdown grace, then exit 0.
//!
//! Requests are validated (shape, schema version, value ranges, batch and body size)
//! before any tensor is built; a bad request is a 400 with a JSON `{"error": reason}`.
//! The forward pass runs on a blocking thread with torch limited to one intra-op
//! thread: a batch of 100 windows is far too small to gain from more, and the box has
//! two cores to share with everything else.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use shardlet_auth::response::{sign_response, HEADER_RESPONSE_SIGNATURE};
use shardlet_auth::{Key, KeyName, ReplayCache, SigningKey, Verified, Verifier, MAX_CLOCK_SKEW};
use shardlet_net::{PortConfig, ServerMetrics, ServerOptions};
use shardlet_predictor_api::api::{
    validate, ErrorResponse, HealthResponse, NodeScore, ScoreRequest, ScoreResponse,
    REQUEST_BODY_BYTES_MAX,
};
use shardlet_predictor_api::schema::{feature_names, SCHEMA_VERSION};

use crate::model::LstmModel;

/// Nonces of scoring requests remembered (the controller asks about once a minute):
/// 64 Ki entries, at most ~2.5 MiB.
pub const REPLAY_CACHE_ENTRIES_MAX: usize = 64 * 1024;

struct Metrics {
    registry: Registry,
    /// `shardlet_build_info` and the `process_*` metrics.
    process: shardlet_net::ProcessMetrics,
    requests: IntCounterVec,
    auth_refused: IntCounterVec,
    latency_seconds: HistogramVec,
    batch_nodes: HistogramVec,
}

impl Metrics {
    fn new() -> anyhow::Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "shardlet_predictor_requests_total",
                "Scoring requests by outcome",
            ),
            &["outcome"],
        )?;
        let latency_seconds = HistogramVec::new(
            HistogramOpts::new(
                "shardlet_predictor_score_latency_seconds",
                "Time to score a valid batch",
            )
            .buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5,
            ]),
            &["model_version"],
        )?;
        let batch_nodes = HistogramVec::new(
            HistogramOpts::new(
                "shardlet_predictor_batch_nodes",
                "Nodes per scoring request",
            )
            .buckets(vec![1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0]),
            &["model_version"],
        )?;
        let auth_refused = IntCounterVec::new(
            Opts::new(
                "shardlet_predictor_auth_refused_total",
                "Scoring requests refused by signature verification, by reason",
            ),
            &["reason"],
        )?;
        // Present at 0 from the start, so a dashboard's rate() is 0, not "no data".
        for outcome in ["ok", "bad_request", "internal_error", "unauthenticated"] {
            requests.with_label_values(&[outcome]);
        }
        registry.register(Box::new(auth_refused.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency_seconds.clone()))?;
        registry.register(Box::new(batch_nodes.clone()))?;
        Ok(Self {
            process: shardlet_net::ProcessMetrics::new("predictor")?,
            registry,
            requests,
            auth_refused,
            latency_seconds,
            batch_nodes,
        })
    }
}

struct AppState {
    model: Mutex<LstmModel>,
    health: HealthResponse,
    metrics: Metrics,
    /// Accepts the `predictor` key only; remembers nonces.
    verifier: Verifier,
    /// The `predictor` key, which also signs answers.
    key: Key,
}

fn error(status: StatusCode, reason: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorResponse {
            error: reason.into(),
        }),
    )
        .into_response()
}

/// Verifies the signature on the headers, before the body is read (a stranger's 8 MiB
/// costs nothing); the handler checks the body against the signed hash.
async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |target| target.as_str());
    let verified = state
        .verifier
        .verify(
            request.method().as_str(),
            target,
            request.headers(),
            SystemTime::now(),
        )
        .and_then(|verified| verified.require_payload_hash().map(|()| verified));
    match verified {
        Ok(verified) => {
            request.extensions_mut().insert(verified);
            next.run(request).await
        }
        Err(refusal) => unauthenticated(&state, &refusal),
    }
}

fn unauthenticated(state: &AppState, refusal: &shardlet_auth::AuthError) -> Response {
    state
        .metrics
        .auth_refused
        .with_label_values(&[refusal.reason()])
        .inc();
    state
        .metrics
        .requests
        .with_label_values(&["unauthenticated"])
        .inc();
    tracing::warn!(error = %refusal, "refused a scoring request");
    error(refusal.status(), refusal.to_string())
}

/// Scores a signed request and signs the answer over the request's nonce.
async fn score(
    State(state): State<Arc<AppState>>,
    Extension(verified): Extension<Verified>,
    body: Bytes,
) -> Response {
    if let Err(refusal) = verified.check_body(&body) {
        return unauthenticated(&state, &refusal);
    }
    let answer = score_body(&state, body).await;
    let (mut parts, answer_body) = answer.into_parts();
    // Answers are small JSON documents built here; the bound only guards the buffer.
    let bytes = match axum::body::to_bytes(answer_body, 16 * 1024 * 1024).await {
        Ok(bytes) => bytes,
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "answer too large"),
    };
    let signature = sign_response(&state.key, &verified.nonce, parts.status.as_u16(), &bytes);
    if let Ok(value) = HeaderValue::from_str(&signature) {
        parts.headers.insert(HEADER_RESPONSE_SIGNATURE, value);
    }
    Response::from_parts(parts, Body::from(bytes))
}

async fn score_body(state: &Arc<AppState>, body: Bytes) -> Response {
    let started = Instant::now();
    let request: ScoreRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(reason) => {
            state
                .metrics
                .requests
                .with_label_values(&["bad_request"])
                .inc();
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid JSON body: {reason}"),
            );
        }
    };
    let rows = match validate(&request, state.health.window_intervals) {
        Ok(rows) => rows,
        Err(reason) => {
            state
                .metrics
                .requests
                .with_label_values(&["bad_request"])
                .inc();
            return error(StatusCode::BAD_REQUEST, reason);
        }
    };
    let worker_state = Arc::clone(state);
    let probabilities = tokio::task::spawn_blocking(move || {
        let model = worker_state
            .model
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut encoded = Vec::new();
        for window in &rows {
            model
                .metadata
                .normalizer
                .encode_intervals(window, &mut encoded);
        }
        model.predict(&encoded)
    })
    .await;
    let probabilities = match probabilities {
        Ok(probabilities) if probabilities.len() == request.windows.len() => probabilities,
        Ok(_) | Err(_) => {
            state
                .metrics
                .requests
                .with_label_values(&["internal_error"])
                .inc();
            tracing::error!("scoring failed");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "scoring failed");
        }
    };
    let version = state.health.model_version.as_str();
    state.metrics.requests.with_label_values(&["ok"]).inc();
    state
        .metrics
        .batch_nodes
        .with_label_values(&[version])
        .observe(request.windows.len() as f64);
    state
        .metrics
        .latency_seconds
        .with_label_values(&[version])
        .observe(started.elapsed().as_secs_f64());
    let scores = request
        .windows
        .iter()
        .zip(probabilities)
        .map(|(window, probability)| NodeScore {
            node_id: window.node_id,
            failure_probability: f64::from(probability),
        })
        .collect();
    Json(ScoreResponse {
        model_version: state.health.model_version.clone(),
        horizon_days: state.health.horizon_days,
        scores,
    })
    .into_response()
}

async fn health(State(state): State<Arc<AppState>>) -> Json<HealthResponse> {
    Json(state.health.clone())
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut buffer = Vec::new();
    let families =
        shardlet_net::process_metrics::gather(&state.metrics.registry, &state.metrics.process);
    if let Err(reason) = TextEncoder::new().encode(&families, &mut buffer) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, reason.to_string());
    }
    (
        [(
            header::CONTENT_TYPE,
            TextEncoder::new().format_type().to_string(),
        )],
        buffer,
    )
        .into_response()
}

/// The sidecar's routes around a loaded model; `/v1/score` verifies with `key`
/// (`predictor`).
pub fn router(model: LstmModel, key: Key) -> anyhow::Result<Router> {
    Ok(app(model, key)?.0)
}

/// The routes, and the connection metrics they expose at `/metrics` (for the server).
fn app(model: LstmModel, key: Key) -> anyhow::Result<(Router, ServerMetrics)> {
    tch::set_num_threads(1);
    let health_response = HealthResponse {
        status: "ok".into(),
        model_version: model.metadata.model_version.clone(),
        schema_version: SCHEMA_VERSION,
        window_intervals: model.metadata.window_intervals,
        horizon_days: model.metadata.horizon_days,
        feature_names: feature_names(),
    };
    let state_metrics = Metrics::new()?;
    let server_metrics = ServerMetrics::register(&state_metrics.registry, "shardlet_predictor")?;
    let verifier = Verifier::new(
        vec![SigningKey::new(KeyName::Predictor, key.clone())],
        ReplayCache::new(REPLAY_CACHE_ENTRIES_MAX, MAX_CLOCK_SKEW.as_secs()),
    );
    let state = Arc::new(AppState {
        model: Mutex::new(model),
        health: health_response,
        metrics: state_metrics,
        verifier,
        key,
    });
    let signed = Router::new().route("/v1/score", post(score)).route_layer(
        axum::middleware::from_fn_with_state(Arc::clone(&state), authenticate),
    );
    let router = Router::new()
        .merge(signed)
        .route("/health", get(health))
        // The model is loaded before the port opens (`serve` takes a loaded model), so
        // once anything answers here it can score: ready. Distinct from `/health` so
        // probes use the same path on every Shardlet server.
        .route(
            shardlet_net::READY_PATH,
            get(|| async { shardlet_net::Readiness::Ready.response::<axum::body::Body>() }),
        )
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(REQUEST_BODY_BYTES_MAX))
        .with_state(state);
    Ok((router, server_metrics))
}

/// Serves until `shutdown` completes, configured by `port` (connections, header-read
/// timeout, metrics token). `on_listening` receives the bound address (the port may have been chosen
/// by the OS).
pub async fn serve(
    model: LstmModel,
    listen: SocketAddr,
    port: PortConfig,
    key: Key,
    on_listening: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    port.validate()?;
    let (app, metrics) = app(model, key)?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "predictor sidecar listening");
    on_listening(address);
    let options = ServerOptions {
        name: "predictor",
        port,
        metrics,
    };
    shardlet_net::serve(listener, app, options, shutdown).await;
    Ok(())
}
