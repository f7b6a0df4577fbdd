//! `shardlet-predictor`: node failure prediction for Shardlet.
//!
//! What it is for: the data path into the model (the Backblaze importer, the fleet
//! simulator, datasets, splits, features), the honest evaluation (metrics, the
//! baselines), and, with the `lstm` feature (default), the tch model, its training and
//! the scoring sidecar server. docs/predictor.md explains the whole pipeline and its
//! results.
//!
//! The contract with its callers (the feature schema, the sidecar's wire types, the
//! `/health` mapping, the fallback heuristic, the client) lives in
//! `shardlet-predictor-api`, which this crate builds on; nothing else in the workspace
//! depends on this crate.
//!
//! Module order, lowest first (each imports only modules before it): `dates`,
//! `dataset`, `metrics` → `simulator` → `backblaze` → `features` → `split` →
//! `model_files` → `baselines` → `evaluate` → `plot` → `fuzzing`; with `lstm`:
//! `model` → `train` → `serve`. `model_files` is the artifact as checked before
//! libtorch reads it; `fuzzing` holds the properties the fuzz targets in `fuzz/` check.
//!
//! It must never import the controller, the storage node, the gateway or the metadata
//! crates: the predictor learns from health series and answers over HTTP, it takes no
//! part in the cluster.

pub mod backblaze;
pub mod baselines;
pub mod dataset;
pub mod dates;
pub mod evaluate;
pub mod features;
pub mod fuzzing;
pub mod metrics;
pub mod model_files;
pub mod plot;
pub mod simulator;
pub mod split;

#[cfg(feature = "lstm")]
pub mod model;
#[cfg(feature = "lstm")]
pub mod serve;
#[cfg(feature = "lstm")]
pub mod train;
