//! The write path, top to bottom: request → shardlets → fragments → commit.
//!
//! 1. **Intent.** Before any fragment exists, an `Uploading` intent names the new
//!    object id in metadata. Crash from here on: the GC sweep finds the intent once it
//!    is older than the timeout and deletes whatever carries the id (see `gc.rs`).
//! 2. **Stream → shardlets.** The body is cut into shardlets of the size the core
//!    sizing rule picks for the declared length, while MD5 (the ETag) and any
//!    announced S3 checksum are computed on the same bytes — one pass, never two.
//! 3. **Shardlets → fragments.** Each full shardlet is encoded with the object's
//!    initial scheme, placed by core placement over the current topology, and its
//!    fragments written to their nodes in parallel. At most
//!    [`SHARDLETS_IN_FLIGHT_MAX`] shardlets are buffered at once, so an upload's
//!    memory is bounded whatever its size. A node that fails a write is replaced by
//!    the placement's replacement rule (bounded attempts).
//! 4. **Commit.** Only once every fragment is durable: shardlet records and node
//!    index entries are written (each batch conditioned on the intent being
//!    untouched, so a GC that claimed the intent wins), then ONE batch makes the object
//!    visible: object record + intent deletion, conditioned on the intent, the bucket
//!    and the version of the key it replaces. A replaced version becomes a `Garbage`
//!    intent in that same batch and is collected right after.
//!
//! Crash before the commit batch: the object was never visible; its fragments and
//! records are collected with the intent. Crash after it: the object is complete and
//! visible; a replaced version is collected by the next sweep.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use shardlet_core::{
    codec, AccessClass, Codec, Crc32c, FragmentId, FragmentIndex, Generation, NodeId, ObjectId,
    Scheme, ShardletId, SizingPolicy, Spread,
};
use tokio::task::JoinHandle;

use crate::catalog::{unix_ms_now, Catalog, CatalogError, Stored};
use crate::fragments::{first_replica, FragmentBody, FragmentError, FragmentStore};
use crate::gc::Collector;
use crate::metadata::{Batch, BatchOutcome, BATCH_ITEMS_MAX};
use crate::metrics::Metrics;
use crate::storage_class::StoragePlan;
use crate::topology_source::{Snapshot, TopologySource};
use shardlet_meta::schema::{
    encode, keys, BucketRecord, FragmentLocation, IntentRecord, IntentState, ObjectRecord,
    ShardletRecord, ShardletReference,
};

/// Shardlets of one upload buffered or being written at once. With 2 MiB shardlets and
/// 3 copies sharing one buffer this bounds an upload to ~8 MiB of shardlet memory
/// (erasure-coded: × (k+m)/k for the parity).
pub const SHARDLETS_IN_FLIGHT_MAX: usize = 4;
/// Attempts per fragment (the first node, then replacements) before the upload fails.
pub const FRAGMENT_WRITE_ATTEMPTS_MAX: usize = 3;
/// Commit retries when another writer changed the key in between (last writer wins).
pub const COMMIT_ATTEMPTS_MAX: usize = 8;
/// Fragments of new shardlets start at generation 0; repair and re-coding bump it.
pub const INITIAL_GENERATION: Generation = Generation(0);
/// Shardlet records + index entries per metadata batch, leaving room for conditions.
const RECORD_BATCH_ITEMS_MAX: usize = BATCH_ITEMS_MAX - 8;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the body is larger than the {max_bytes} bytes allowed")]
    TooLarge { max_bytes: u64 },
    #[error("the body ended after {received} of the {declared} declared bytes")]
    IncompleteBody { declared: u64, received: u64 },
    #[error("reading the request body failed: {0}")]
    Body(String),
    #[error("no placement for {scheme}: {reason}")]
    Placement { scheme: Scheme, reason: String },
    #[error("storage nodes failed: {0}")]
    Storage(FragmentError),
    #[error("encoding failed: {0}")]
    Codec(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("the upload was abandoned (its intent was collected) before it could commit")]
    Abandoned,
    #[error("the upload lost {attempts} commit races in a row")]
    Contended { attempts: usize },
    #[error("the key's current state does not satisfy the request's condition")]
    PreconditionFailed,
}

/// A conditional write (`If-None-Match: *` / `If-Match: etag` on PUT), checked in the
/// commit batch itself, so it holds at the instant the object becomes visible.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CommitCondition {
    #[default]
    Always,
    /// The key must not exist.
    Absent,
    /// The key must exist with this (bare) ETag.
    EtagMatches(String),
}

/// What a finished stream produced: durable fragments, not yet visible anywhere.
#[derive(Debug)]
pub struct Written {
    pub object_id: ObjectId,
    pub intent_version: u64,
    pub size_bytes: u64,
    pub md5: [u8; 16],
    pub shardlets: Vec<ShardletRecord>,
}

impl Written {
    pub fn references(&self) -> Vec<ShardletReference> {
        self.shardlets
            .iter()
            .map(|record| ShardletReference {
                id: record.id,
                size_bytes: record.size_bytes,
            })
            .collect()
    }
}

/// The body as the S3 layer hands it over.
pub struct UploadBody<S> {
    pub stream: S,
    /// Content-Length (decoded length for aws-chunked), when the client sent one.
    pub declared_length: Option<u64>,
    pub max_length: u64,
}

pub struct WritePath {
    pub catalog: Catalog,
    pub fragments: Arc<dyn FragmentStore>,
    pub topology: Arc<TopologySource>,
    pub sizing: SizingPolicy,
    pub metrics: Arc<Metrics>,
    pub collector: Arc<Collector>,
}

impl WritePath {
    /// Steps 1–3: intent, then stream → shardlets → durable fragments. `observe` sees
    /// every body byte once, in order (MD5 is computed here; S3 checksums by the
    /// caller's closure).
    pub async fn write<S, E>(
        &self,
        bucket: &str,
        key: &str,
        object_id: ObjectId,
        plan: StoragePlan,
        body: UploadBody<S>,
        observe: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<Written, WriteError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        // 1. Intent first: nothing may reach a node that the GC could not find later.
        let intent_version = self.record_intent(bucket, key, object_id).await?;
        match self
            .stream_to_fragments(object_id, plan, body, observe)
            .await
        {
            Ok((size_bytes, md5, shardlets)) => Ok(Written {
                object_id,
                intent_version,
                size_bytes,
                md5,
                shardlets,
            }),
            Err(error) => {
                self.abandon(object_id, intent_version).await;
                Err(error)
            }
        }
    }

    async fn record_intent(
        &self,
        bucket: &str,
        key: &str,
        object_id: ObjectId,
    ) -> Result<u64, WriteError> {
        let intent = IntentRecord {
            object_id,
            state: IntentState::Uploading,
            bucket: bucket.to_string(),
            key: key.to_string(),
            created_unix_ms: unix_ms_now(),
            object_ids: Vec::new(),
            records_complete: false,
        };
        let mut batch = Batch::default();
        batch
            .require_absent(keys::intent(object_id))
            .put(keys::intent(object_id), encode(&intent));
        match self.catalog.apply(batch).await? {
            BatchOutcome::Applied { version } => Ok(version),
            // 128 random bits collided: astronomically unlikely, but never overwrite.
            BatchOutcome::ConditionFailed { .. } => Err(WriteError::Contended { attempts: 1 }),
        }
    }

    /// 2 + 3: cut, encode, place, write; returns (size, md5, shardlet records in order).
    async fn stream_to_fragments<S, E>(
        &self,
        object_id: ObjectId,
        plan: StoragePlan,
        mut body: UploadBody<S>,
        observe: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<(u64, [u8; 16], Vec<ShardletRecord>), WriteError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        if let Some(declared) = body.declared_length {
            if declared > body.max_length {
                return Err(WriteError::TooLarge {
                    max_bytes: body.max_length,
                });
            }
        }
        let shardlet_size = match body.declared_length {
            Some(length) => self.sizing.shardlet_size_bytes(length, AccessClass::Warm),
            None => self
                .sizing
                .shardlet_size_bytes_for_unknown_length(AccessClass::Warm),
        } as usize;
        let snapshot = self.topology.snapshot();
        let mut md5 = crate::etag::EtagPipeline::for_length(body.declared_length);
        let mut buffer = BytesMut::with_capacity(shardlet_size);
        let mut in_flight: std::collections::VecDeque<
            JoinHandle<Result<ShardletRecord, WriteError>>,
        > = std::collections::VecDeque::new();
        let mut records = Vec::new();
        let mut received: u64 = 0;
        let mut next_index: u32 = 0;
        let outcome: Result<(), WriteError> = async {
            loop {
                let chunk = match body.stream.next().await {
                    Some(Ok(chunk)) => chunk,
                    Some(Err(error)) => return Err(WriteError::Body(error.to_string())),
                    None => break,
                };
                received += chunk.len() as u64;
                if received > body.max_length
                    || body
                        .declared_length
                        .is_some_and(|declared| received > declared)
                {
                    return Err(WriteError::TooLarge {
                        max_bytes: body
                            .declared_length
                            .unwrap_or(body.max_length)
                            .min(body.max_length),
                    });
                }
                md5.update(&chunk)
                    .await
                    .map_err(|error| WriteError::Codec(error.to_string()))?;
                observe(&chunk);
                let mut rest = &chunk[..];
                while !rest.is_empty() {
                    let take = (shardlet_size - buffer.len()).min(rest.len());
                    buffer.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if buffer.len() == shardlet_size {
                        let bytes = buffer.split().freeze();
                        buffer.reserve(shardlet_size);
                        // Back-pressure: wait for the oldest shardlet before buffering more.
                        if in_flight.len() >= SHARDLETS_IN_FLIGHT_MAX {
                            records.push(join(in_flight.pop_front()).await?);
                        }
                        in_flight.push_back(
                            self.spawn_shardlet(&snapshot, object_id, next_index, plan, bytes),
                        );
                        next_index = next_index.checked_add(1).ok_or(WriteError::TooLarge {
                            max_bytes: body.max_length,
                        })?;
                    }
                }
            }
            if let Some(declared) = body.declared_length {
                if received != declared {
                    return Err(WriteError::IncompleteBody { declared, received });
                }
            }
            // The last, shorter shardlet. An empty object has no shardlets at all.
            if !buffer.is_empty() {
                let bytes = buffer.split().freeze();
                in_flight
                    .push_back(self.spawn_shardlet(&snapshot, object_id, next_index, plan, bytes));
            }
            while let Some(handle) = in_flight.pop_front() {
                records.push(join(Some(handle)).await?);
            }
            Ok(())
        }
        .await;
        if let Err(error) = outcome {
            // Let writes already started finish before the caller hands the object id to
            // the collector, so none lands after the collector looked.
            while let Some(handle) = in_flight.pop_front() {
                let _ = handle.await;
            }
            return Err(error);
        }
        self.metrics.bytes_written_total.inc_by(received);
        let md5 = md5
            .finish()
            .await
            .map_err(|error| WriteError::Codec(error.to_string()))?;
        Ok((received, md5, records))
    }

    fn spawn_shardlet(
        &self,
        snapshot: &Arc<Snapshot>,
        object_id: ObjectId,
        index: u32,
        plan: StoragePlan,
        bytes: Bytes,
    ) -> JoinHandle<Result<ShardletRecord, WriteError>> {
        let fragments = self.fragments.clone();
        let snapshot = snapshot.clone();
        let metrics = self.metrics.clone();
        metrics.shardlets_in_flight.inc();
        tokio::spawn(async move {
            let id = ShardletId::new(object_id, index);
            let result = store_shardlet(&*fragments, &snapshot, &metrics, id, plan, bytes).await;
            metrics.shardlets_in_flight.dec();
            if result.is_ok() {
                metrics.shardlets_written_total.inc();
            }
            result
        })
    }

    /// Step 4a: shardlet records and node index entries, in as many batches as needed,
    /// each conditioned on the intent still being ours. Invisible until the object (or
    /// part) record that references them is committed.
    pub async fn record_shardlets(&self, written: &Written) -> Result<(), WriteError> {
        let mut batch = Batch::default();
        batch.require_version(keys::intent(written.object_id), written.intent_version);
        for record in &written.shardlets {
            if batch.len() + 1 + record.fragments.len() > RECORD_BATCH_ITEMS_MAX {
                self.apply_record_batch(std::mem::take(&mut batch)).await?;
                batch.require_version(keys::intent(written.object_id), written.intent_version);
            }
            put_shardlet_record(&mut batch, record);
        }
        if batch.operations.is_empty() {
            return Ok(());
        }
        self.apply_record_batch(batch).await
    }

    async fn apply_record_batch(&self, batch: Batch) -> Result<(), WriteError> {
        match self.catalog.apply(batch).await? {
            BatchOutcome::Applied { .. } => Ok(()),
            BatchOutcome::ConditionFailed { .. } => Err(WriteError::Abandoned),
        }
    }

    /// Step 4b: makes a single-PUT object visible (last writer wins). Returns the
    /// committed record.
    pub async fn commit_object(
        &self,
        written: &Written,
        record: ObjectRecord,
        condition: CommitCondition,
    ) -> Result<ObjectRecord, WriteError> {
        self.commit_object_in(written, record, condition, None)
            .await
    }

    /// [`Self::commit_object`] with the bucket as the caller already read it: the first
    /// commit attempt is conditioned on that version instead of reading it again (if the
    /// bucket changed since, the condition fails and the next attempt re-reads it). So
    /// the caller's copy may come from [`Catalog::existing_bucket_recent`].
    ///
    /// When the shardlet records and node index entries fit in one batch beside the
    /// object record (every small object), they go into the commit batch itself: one
    /// metadata write instead of two, and still all-or-nothing — a crash before the batch
    /// leaves only the intent (collected), after it the complete object.
    pub async fn commit_object_in(
        &self,
        written: &Written,
        mut record: ObjectRecord,
        condition: CommitCondition,
        known_bucket: Option<Stored<BucketRecord>>,
    ) -> Result<ObjectRecord, WriteError> {
        let record_items: usize = written
            .shardlets
            .iter()
            .map(|shardlet| 1 + shardlet.fragments.len())
            .sum();
        // Room for the commit's own conditions and operations (3 + 2 + the garbage intent).
        let records_inline = record_items + 8 <= RECORD_BATCH_ITEMS_MAX;
        if !records_inline {
            self.record_shardlets(written).await?;
        }
        record.shardlets = written.references();
        let mut known_bucket = known_bucket;
        for attempt in 1..=COMMIT_ATTEMPTS_MAX {
            let bucket = match known_bucket.take() {
                Some(bucket) => bucket,
                // Always fresh, never the bucket cache: the caller's copy may have come
                // from it, and this read is what corrects (and refreshes) a stale one.
                None => match self.catalog.existing_bucket(&record.bucket).await {
                    Ok(bucket) => bucket,
                    Err(error) => {
                        self.abandon(written.object_id, written.intent_version)
                            .await;
                        return Err(error.into());
                    }
                },
            };
            let current = self.catalog.object(&record.bucket, &record.key).await?;
            let satisfied = match (&condition, &current) {
                (CommitCondition::Always, _) => true,
                (CommitCondition::Absent, current) => current.is_none(),
                (CommitCondition::EtagMatches(etag), Some(current)) => {
                    crate::etag::bare(&current.record.etag) == etag
                }
                (CommitCondition::EtagMatches(_), None) => false,
            };
            if !satisfied {
                self.abandon(written.object_id, written.intent_version)
                    .await;
                return Err(WriteError::PreconditionFailed);
            }
            let mut batch = Batch::default();
            batch
                .require_version(keys::intent(written.object_id), written.intent_version)
                .require_version(keys::bucket(&record.bucket), bucket.version)
                .require_version(
                    keys::object(&record.bucket, &record.key),
                    current.as_ref().map_or(0, |stored| stored.version),
                )
                .put(keys::object(&record.bucket, &record.key), encode(&record))
                .delete(keys::intent(written.object_id));
            if records_inline {
                add_shardlet_records(&mut batch, written);
            }
            let replaced = current.map(|stored| stored.record);
            if let Some(old) = &replaced {
                let (key, value) = garbage_intent_for(old);
                batch.put(key, value);
            }
            match self.catalog.apply(batch).await? {
                BatchOutcome::Applied { .. } => {
                    if let Some(old) = replaced {
                        self.collector.collect_soon(old.id);
                    }
                    return Ok(record);
                }
                BatchOutcome::ConditionFailed { key } if key == keys::intent(written.object_id) => {
                    return Err(WriteError::Abandoned)
                }
                BatchOutcome::ConditionFailed { key } if key == keys::bucket(&record.bucket) => {
                    // The bucket changed since it was read (its settings, or a delete
                    // marking it): the next attempt re-reads it and answers NoSuchBucket
                    // if it is going away.
                    tracing::debug!(attempt, bucket = %record.bucket, "bucket changed since it was read; retrying");
                }
                BatchOutcome::ConditionFailed { .. } => {
                    tracing::debug!(attempt, key = %record.key, "commit raced another writer; retrying");
                }
            }
        }
        self.abandon(written.object_id, written.intent_version)
            .await;
        Err(WriteError::Contended {
            attempts: COMMIT_ATTEMPTS_MAX,
        })
    }

    /// Gives an upload up: its intent becomes garbage (if it is still ours) and is
    /// collected in the background. Best effort: a failure leaves the intent to the
    /// timeout sweep.
    pub async fn abandon(&self, object_id: ObjectId, intent_version: u64) {
        if let Err(error) = self.collector.mark_garbage(object_id, intent_version).await {
            tracing::warn!(%object_id, %error, "could not mark an abandoned upload; the sweep will");
            return;
        }
        self.collector.collect_soon(object_id);
    }
}

/// A shardlet record and the index entries of its fragments on their nodes.
fn put_shardlet_record(batch: &mut Batch, record: &ShardletRecord) {
    batch.put(keys::shardlet(record.id), encode(record));
    for location in &record.fragments {
        batch.put(
            keys::node_fragment(location.node, record.fragment_id(location)),
            Vec::new(),
        );
    }
}

fn add_shardlet_records(batch: &mut Batch, written: &Written) {
    for record in &written.shardlets {
        put_shardlet_record(batch, record);
    }
}

/// The `Garbage` intent that makes a replaced or deleted object's data collectable.
pub fn garbage_intent_for(old: &ObjectRecord) -> (Vec<u8>, Vec<u8>) {
    let mut ids: Vec<ObjectId> = old.shardlets.iter().map(|s| s.id.object).collect();
    ids.push(old.id);
    ids.sort();
    ids.dedup();
    let intent = IntentRecord {
        object_id: old.id,
        state: IntentState::Garbage,
        bucket: old.bucket.clone(),
        key: old.key.clone(),
        created_unix_ms: unix_ms_now(),
        object_ids: ids,
        records_complete: true,
    };
    (keys::intent(old.id), encode(&intent))
}

async fn join(
    handle: Option<JoinHandle<Result<ShardletRecord, WriteError>>>,
) -> Result<ShardletRecord, WriteError> {
    match handle {
        Some(handle) => handle
            .await
            .map_err(|error| WriteError::Codec(format!("shardlet task failed: {error}")))?,
        None => Err(WriteError::Codec("no shardlet task to wait for".into())),
    }
}

/// Encodes one shardlet, places it and writes every fragment, replacing nodes that
/// fail. Returns its record once every fragment is durable.
async fn store_shardlet(
    fragments: &dyn FragmentStore,
    snapshot: &Snapshot,
    metrics: &Metrics,
    id: ShardletId,
    plan: StoragePlan,
    bytes: Bytes,
) -> Result<ShardletRecord, WriteError> {
    let scheme = plan.initial_scheme;
    let checksum = Crc32c::of(&bytes);
    let (pieces, codec_used): (Vec<(Bytes, Crc32c)>, Codec) = match scheme {
        // Copies share one buffer: replication costs no extra memory here.
        Scheme::Replicated { copies } => (
            vec![(bytes.clone(), checksum); usize::from(copies)],
            Codec::None,
        ),
        Scheme::ErasureCoded { .. } => {
            let mut encoding = codec::ErasureEncoding::default();
            codec::encode_erasure_into(scheme, &bytes, &mut encoding)
                .map_err(|error| WriteError::Codec(error.to_string()))?;
            // Data fragments are slices of the body buffer (no copy); only parity and a
            // padded last data shard have buffers of their own.
            let pieces = encoding
                .into_fragments()
                .into_iter()
                .map(|(piece, crc32c)| match piece {
                    codec::FragmentBytes::Input(range) => (bytes.slice(range), crc32c),
                    codec::FragmentBytes::Owned(owned) => (Bytes::from(owned), crc32c),
                })
                .collect();
            (pieces, Codec::ReedSolomonGf8)
        }
    };
    // The copy reads will start at stays in its node's page cache (read-after-write is
    // common); the other replicas, and erasure-coded fragments (cold by policy), of a
    // large shardlet bypass it.
    let read_first = match scheme {
        Scheme::Replicated { copies } => Some(first_replica(&id, usize::from(copies))),
        Scheme::ErasureCoded { .. } => None,
    };
    let spread = Spread::for_level(plan.level);
    let placement = snapshot
        .placement
        .place(id.hash_key(), scheme, spread)
        .map_err(|error| WriteError::Placement {
            scheme,
            reason: error.to_string(),
        })?;
    let mut nodes: Vec<NodeId> = placement.nodes;
    let mut pending: Vec<usize> = (0..pieces.len()).collect();
    let mut failed_nodes: Vec<NodeId> = Vec::new();
    let mut last_error = None;
    for attempt in 0..FRAGMENT_WRITE_ATTEMPTS_MAX {
        if pending.is_empty() {
            break;
        }
        if attempt > 0 {
            // Replace every failed fragment's node, keeping the others where they are.
            for &index in &pending {
                let current: Vec<Option<NodeId>> = nodes.iter().copied().map(Some).collect();
                nodes[index] = snapshot
                    .placement
                    .place_replacement(
                        id.hash_key(),
                        scheme,
                        spread,
                        &current,
                        index,
                        &failed_nodes,
                    )
                    .map_err(|error| WriteError::Placement {
                        scheme,
                        reason: error.to_string(),
                    })?;
                metrics.fragment_write_retries_total.inc();
            }
        }
        let writes = pending.iter().map(|&index| {
            let fragment = FragmentId::new(id, INITIAL_GENERATION, FragmentIndex(index as u8));
            let node = nodes[index];
            let (bytes, checksum) = pieces[index].clone();
            let body = FragmentBody {
                bytes,
                checksum,
                read_first: read_first == Some(index),
            };
            async move { (index, node, fragments.put(node, fragment, body).await) }
        });
        let results = futures::future::join_all(writes).await;
        pending.clear();
        for (index, node, result) in results {
            if let Err(error) = result {
                tracing::warn!(shardlet = %id, %node, %error, "fragment write failed; replacing the node");
                failed_nodes.push(node);
                pending.push(index);
                last_error = Some(error);
            }
        }
    }
    if !pending.is_empty() {
        return Err(WriteError::Storage(last_error.unwrap_or(
            FragmentError::Refused("fragment writes failed".into()),
        )));
    }
    Ok(ShardletRecord {
        id,
        size_bytes: bytes.len() as u64,
        checksum,
        scheme,
        codec: codec_used,
        fragments: pieces
            .iter()
            .enumerate()
            .map(|(index, (piece, crc))| FragmentLocation {
                index: FragmentIndex(index as u8),
                node: nodes[index],
                generation: INITIAL_GENERATION,
                checksum: *crc,
                size_bytes: piece.len() as u64,
            })
            .collect(),
        access: Default::default(),
        level: Some(plan.level),
        layout_changed_unix_ms: crate::catalog::unix_ms_now(),
    })
}
