//! `shardlet-controller`: the part of Shardlet that decides where data should be, and
//! the daemon and simulator that act on those decisions.
//!
//! Every decision here is a pure function of a snapshot: state in, actions out. Time is
//! a `now_ms` argument. The daemon's shell ([`service`]) reads a
//! [`view::ShardletState`] snapshot from meta-raft, calls these functions and executes
//! the [`view::Action`]s; the simulator ([`sim`]) calls the very same functions over
//! virtual time. See `docs/controller.md`.
//!
//! The modules, from the bottom up (each imports only modules above it in this list):
//!
//! 1. [`view`]: the vocabulary (`ShardletState`, `FragmentLocation`, `Action`).
//! 2. Pure decisions: [`budget`], [`detector`], [`heat`], [`durability`], [`risk`],
//!    [`domains`], [`policy`], [`transition`], [`rebalance`], [`repair`], [`scheduler`], [`scrub`],
//!    [`orphan_grace`], [`stocks`].
//! 3. [`sim`]: the discrete-event simulator, pure as well (no clock, no I/O).
//! 4. [`service`]: the daemon, the only I/O in the crate.
//!
//! What it must never import: the pure modules (1–3) never import [`service`] nor an
//! I/O crate (tokio, axum, reqwest, prometheus, the metadata client, the node client);
//! they depend on `shardlet-core` (and `thiserror`) alone. Nothing in the crate imports the gateway or
//! reaches into a storage node's disk or meta-raft's storage: the shell talks to them
//! over their clients.

pub mod budget;
pub mod detector;
pub mod domains;
pub mod durability;
pub mod heat;
pub mod orphan_grace;
pub mod policy;
pub mod rebalance;
pub mod repair;
pub mod risk;
pub mod scheduler;
pub mod scrub;
pub mod service;
pub mod sim;
pub mod stocks;
pub mod transition;
pub mod view;

pub use view::{Action, FragmentLocation, ShardletState};
