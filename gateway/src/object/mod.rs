//! The object layer: what an S3 request becomes once the S3 layer has translated it.
//! It knows buckets, objects, multipart uploads and their data; it does not know S3's
//! wire format, error codes or headers (that is [`crate::s3`], which must not be
//! imported here).
//!
//! Modules, each importing only the ones above it in this list (and the model, the
//! core and the storage node client):
//!
//! | module | its one job |
//! |---|---|
//! | [`etag`], [`object_range`], [`storage_class`], [`topology_source`], [`fragments`] | pure helpers and the fragment store interface |
//! | [`layout_refresh`] | the cluster layout and node liveness from meta-raft, polled into the topology |
//! | [`node_fragments`] | the fragment store over real storage nodes |
//! | [`bucket_cache`], [`catalog`] | reads of buckets, objects, uploads, parts, credentials |
//! | [`upload_deadline`] | the cluster's upload deadline: the clock of one upload, body waits, the settings refresh |
//! | [`gc`], [`heat`] | background work: collecting what nothing references; access counters |
//! | [`commit`] | **every compare-and-set batch a request makes: where a write becomes visible** |
//! | [`write_path`] | request body → shardlets → durable fragments (an uncommitted write) |
//! | [`read_path`] | shardlets → response bytes, ranges, degraded reads |
//! | [`listing`] | listing pages over a bucket's objects and uploads |

pub mod etag;
pub mod fragments;
pub mod layout_refresh;
pub mod object_range;
pub mod storage_class;
pub mod topology_source;

pub mod node_fragments;

pub mod bucket_cache;
pub mod catalog;

pub mod upload_deadline;

pub mod gc;
pub mod heat;

pub mod commit;

pub mod listing;
pub mod read_path;
pub mod write_path;

#[cfg(test)]
mod deadline_tests;
#[cfg(test)]
mod paths_tests;
#[cfg(test)]
mod test_fixture;

/// Now, in unix milliseconds (the unit of every time in metadata records).
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
