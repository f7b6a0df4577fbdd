//! The discrete-event simulator (see `model.rs`).
