//! The scoring sidecar: `POST /v1/score`, `GET /health`, `GET /metrics`.
//!
//! Requests are validated (shape, schema version, value ranges, batch and body size)
//! before any tensor is built; a bad request is a 400 with a JSON `{"error": reason}`.
//! The forward pass runs on a blocking thread with torch limited to one intra-op
//! thread: a batch of 100 windows is far too small to gain from more, and the box has
//! two cores to share with everything else.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use shardlet_net::{PortConfig, ServerMetrics, ServerOptions};
use shardlet_predictor_api::api::{
    validate, ErrorResponse, HealthResponse, NodeScore, ScoreRequest, ScoreResponse,
    REQUEST_BODY_BYTES_MAX,
};
use shardlet_predictor_api::schema::{feature_names, SCHEMA_VERSION};

use crate::model::LstmModel;

struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
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
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency_seconds.clone()))?;
        registry.register(Box::new(batch_nodes.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency_seconds,
            batch_nodes,
        })
    }
}

struct AppState {
    model: Mutex<LstmModel>,
    health: HealthResponse,
    metrics: Metrics,
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

async fn score(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
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
    let worker_state = Arc::clone(&state);
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
    if let Err(reason) = TextEncoder::new().encode(&state.metrics.registry.gather(), &mut buffer) {
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

/// The sidecar's routes around a loaded model.
pub fn router(model: LstmModel) -> anyhow::Result<Router> {
    Ok(app(model)?.0)
}

/// The routes, and the connection metrics they expose at `/metrics` (for the server).
fn app(model: LstmModel) -> anyhow::Result<(Router, ServerMetrics)> {
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
    let state = Arc::new(AppState {
        model: Mutex::new(model),
        health: health_response,
        metrics: state_metrics,
    });
    let router = Router::new()
        .route("/v1/score", post(score))
        .route("/health", get(health))
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
    on_listening: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    port.validate()?;
    let (app, metrics) = app(model)?;
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
