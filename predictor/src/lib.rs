//! `shardlet-predictor`: node failure prediction for Shardlet.
//!
//! Without the `lstm` feature (how the controller depends on it) this crate is the
//! health schema, the Backblaze importer, the fleet simulator, features and metrics,
//! the baselines, the sidecar's wire types, its client and the fallback heuristic.
//! With `lstm` (default) it adds the tch model, training, and the sidecar server.
//! docs/predictor.md explains the whole pipeline and its results.

pub mod api;
pub mod backblaze;
pub mod baselines;
pub mod client;
pub mod dataset;
pub mod dates;
pub mod evaluate;
pub mod features;
pub mod health;
pub mod heuristic;
pub mod metrics;
pub mod plot;
pub mod schema;
pub mod simulator;
pub mod split;

#[cfg(feature = "lstm")]
pub mod model;
#[cfg(feature = "lstm")]
pub mod serve;
#[cfg(feature = "lstm")]
pub mod train;

pub use client::{ClientConfig, ClientError, PredictorClient, RiskScore, ScoreSource};
pub use heuristic::heuristic_score;
pub use schema::{FeatureValues, HealthRow, FEATURE_COUNT, SCHEMA_VERSION};
