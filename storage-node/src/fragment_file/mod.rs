//! One fragment on disk (or, for a small one, as a stored value in the same format).
//!
//! - [`format`]: the file format — header layout, encode/decode, block checksums. Pure.
//! - [`staging`]: the pool of aligned staging buffers large writes go through.
//! - [`writer`]: streaming a fragment into a temporary file (`O_DIRECT` when large), header
//!   last, then `fdatasync`; and encoding a small fragment whole in memory.
//! - [`reader`]: opening a fragment with its header and block table checked, and reading
//!   verified ranges.
//!
//! Order inside: `format` and `staging` import nothing here; `writer` uses both,
//! `reader` uses `format`. None of them imports the stores above. What happens after a
//! write is durable in `tmp/` (rename, directory fsync) is [`crate::store`]'s job.

pub mod format;
pub mod reader;
pub mod staging;
pub mod writer;

#[cfg(test)]
mod tests;

pub use reader::{decode_header, open_header, FragmentReader};
pub use staging::StagingPool;
pub use writer::{encode_fragment, FragmentWriter, StagedFragment, TempPath};
