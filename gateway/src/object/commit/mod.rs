//! Where a write becomes visible: every compare-and-set batch an S3 request makes.
//!
//! The protocol, for every object write (PutObject, CopyObject, UploadPart; see
//! `write_path.rs` for the data half):
//!
//! 1. **Intent** ([`Commit::open_intent`]): before any fragment exists, an `Uploading`
//!    intent `i/{object id}` is created (condition: absent). From here on a crash
//!    leaves something the collector finds (`gc.rs`).
//! 2. **Fragments** (write path): every fragment is written and durable on its node.
//!    The result is an [`Uncommitted`] write: a guard that, unless a commit consumes
//!    it, turns its intent into garbage when dropped, so no error path can forget to
//!    give an upload up.
//! 3. **Records** ([`Commit::record_shardlets`], only when they do not fit in the
//!    commit batch): shardlet records and node index entries, each batch conditioned
//!    on the intent being untouched (a collector that claimed it wins).
//! 4. **Commit**: ONE batch makes the write visible and deletes the intent,
//!    conditioned on the intent, on what the write replaces (the key's version, the
//!    bucket's version, the upload's version) and on the request's own preconditions.
//!    What it replaces becomes a `Garbage` intent in that same batch:
//!    - PutObject and CopyObject: [`Commit::put_object`] (`object.rs`);
//!    - UploadPart: [`Commit::put_part`] (`multipart.rs`);
//!    - CompleteMultipartUpload: [`Commit::complete_upload`] (`multipart.rs`), which
//!      first marks the upload `closing` so no part can change under it (Abort too);
//!    - DeleteObject and DeleteObjects: [`Commit::delete_object`] (`object.rs`).
//!
//! Crash before the commit batch: the object was never visible; its fragments and
//! records are collected with the intent. Crash after it: the write is complete and
//! visible; what it replaced is collected by the next sweep.
//!
//! Buckets and credentials change here too ([`Buckets`], `bucket.rs`; imported
//! credentials: `credential.rs`). The only other metadata
//! writers of the gateway are the collector (`gc.rs`: deleting what nothing
//! references) and the heat flusher (`heat.rs`: access counters).

mod bucket;
mod credential;
mod error;
mod guard;
mod multipart;
mod object;
mod shared;
#[cfg(test)]
mod tests;

pub use self::bucket::{new_credential, Buckets};
pub use self::credential::{
    check_access_key, check_owner, check_secret_key, ImportError, Imported,
};
pub use self::error::CommitError;
pub use self::guard::{Uncommitted, Written};
pub use self::multipart::{CompleteError, Completion};
pub use self::object::CommitCondition;
pub use self::shared::{Commit, COMMIT_ATTEMPTS_MAX, RECORD_BATCH_ITEMS_MAX};
