//! `shardlet-predictor-api`: the failure predictor's contract, for every crate that
//! talks to the predictor without being it.
//!
//! What it is for: the node health feature schema (`schema`), the sidecar's wire types
//! and their limits (`api`), the mapping of a storage node's `/health` report onto a
//! schema row (`health`), the documented fallback heuristic (`heuristic`), and the
//! sidecar's HTTP client (`client`). The controller uses all of it; the predictor crate
//! builds its importer, simulator, model and sidecar server on it.
//!
//! Module order, lowest first (each imports only those above it): `schema` → `api` →
//! `heuristic` → `health` → `client`; `fuzzing` (the properties the fuzz targets in
//! `fuzz/` check) uses `schema`, `api` and `health`.
//!
//! It must never import libtorch (`tch`), the predictor crate, the controller, the
//! storage node, or any server or storage dependency: the controller links this
//! crate into the `shardlet` binary every node and gateway runs, and a workspace build
//! unifies features, so anything heavy here lands in that binary.

pub mod api;
pub mod client;
pub mod fuzzing;
pub mod health;
pub mod heuristic;
pub mod schema;

pub use client::{ClientConfig, ClientError, PredictorClient, RiskScore, ScoreSource};
pub use heuristic::heuristic_score;
pub use schema::{FeatureValues, HealthRow, FEATURE_COUNT, SCHEMA_VERSION};
