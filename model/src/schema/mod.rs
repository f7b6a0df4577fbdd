//! The metadata schema: typed records, their encoding, and the key layout.
//!
//! The replicated store knows only bytes; this module is the one place that gives them
//! meaning (see `docs/metadata.md`). Every record is stored as
//! `[format version byte][JSON document]`:
//! - the version byte lets a reader refuse (or migrate) a format it does not know,
//!   instead of misreading it;
//! - JSON objects tolerate unknown fields (serde ignores them unless told otherwise) and
//!   missing optional ones (`#[serde(default)]`), so a newer writer and an older reader,
//!   or the reverse, interoperate during a rolling upgrade without a version bump for
//!   every added field. The byte only changes for incompatible changes.

pub mod encoding;
pub mod index;
pub mod keys;
pub mod records;

pub use encoding::{decode, encode, DecodeError, Record};
pub use records::*;

#[cfg(test)]
mod tests;
