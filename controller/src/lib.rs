//! `shardlet-controller`: the part of Shardlet that decides where data should be.
//!
//! Every decision here is a pure function of a snapshot: state in, actions out. Nothing
//! touches a clock, a socket or a disk; time is a `now_ms` argument. The daemon's shell
//! reads a [`view::ShardletState`] snapshot from meta-raft, calls these functions
//! and executes the [`view::Action`]s; the simulator in [`sim`] calls the very same
//! functions over virtual time. See `docs/controller.md`. The daemon's shell is
//! [`service`]; nothing outside it does I/O.

pub mod budget;
pub mod detector;
pub mod domains;
pub mod durability;
pub mod heat;
pub mod policy;
pub mod repair;
pub mod risk;
pub mod scheduler;
pub mod scrub;
pub mod service;
pub mod sim;
pub mod transition;
pub mod view;
pub mod worker;

pub use view::{Action, FragmentLocation, ShardletState};
