//! What the controller tests share besides the kit's cluster: the bucket they write
//! to, objects written and read back through S3, and records by object key.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use shardlet_core::{Scheme, ShardletId};
use shardlet_meta::MetaClient;
use shardlet_model::schema::ObjectRecord;
use shardlet_testkit::records::scan;
use shardlet_testkit::{pattern_bytes, S3Client};

/// Generous: 2 shared cores, a dozen processes per cluster, several clusters at once.
pub const REPAIR_DEADLINE: Duration = Duration::from_secs(240);
pub const BUCKET: &str = "controlled";

/// Controller flags from `(flag, value)` pairs, as `start_controller` takes them.
pub fn flags(pairs: &[(&str, &str)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
        .collect()
}

/// Shardlet ids of each object, by key.
pub async fn shardlets_by_key(meta: &MetaClient) -> BTreeMap<String, Vec<ShardletId>> {
    scan::<ObjectRecord>(meta, &format!("o/{BUCKET}/"))
        .await
        .into_iter()
        .map(|object| (object.key, object.shardlets.iter().map(|s| s.id).collect()))
        .collect()
}

/// An object the test wrote: its key and bytes.
pub struct Written {
    pub key: String,
    pub bytes: Vec<u8>,
}

/// Writes `count` objects named `prefix/N` of 1–`size_max` bytes with `storage_class`,
/// eight at a time.
pub async fn write_objects(
    s3: &S3Client,
    prefix: &str,
    count: usize,
    size_max: usize,
    storage_class: Option<&str>,
) -> Vec<Written> {
    let objects: Vec<Written> = (0..count)
        .map(|n| {
            let seed = (n as u64 + 1) * 7919 + prefix.len() as u64;
            let size = 1 + (seed as usize * 104_729) % size_max;
            Written {
                key: format!("{prefix}/{n:04}"),
                bytes: pattern_bytes(size, seed),
            }
        })
        .collect();
    let results: Vec<_> = futures::stream::iter(objects.iter())
        .map(|object| s3.put_object(BUCKET, &object.key, object.bytes.clone(), storage_class))
        .buffer_unordered(8)
        .collect()
        .await;
    for result in results {
        result.unwrap();
    }
    objects
}

/// Keys whose bytes do not read back identical.
pub async fn unreadable(s3: &S3Client, objects: &[Written]) -> Vec<String> {
    let results: Vec<(String, bool)> = futures::stream::iter(objects.iter())
        .map(|object| async move {
            let ok = matches!(s3.get_object(BUCKET, &object.key, None).await, Ok(bytes) if bytes == object.bytes);
            (object.key.clone(), ok)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(key, _)| key)
        .collect()
}

pub fn is_replicated(scheme: Scheme) -> bool {
    matches!(scheme, Scheme::Replicated { .. })
}
