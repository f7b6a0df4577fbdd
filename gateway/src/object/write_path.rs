//! The write path's data half, top to bottom: request → shardlets → fragments. Its
//! metadata half (intent, records, the commit that makes the write visible) is
//! [`crate::object::commit`]; read that module's documentation first.
//!
//! 1. **Intent.** Before any fragment exists, [`Commit::open_intent`] names the new
//!    object id in metadata, so the collector can always find what this write leaves.
//! 2. **Stream → shardlets.** The body is cut into shardlets of the size the core
//!    sizing rule picks for the declared length, while MD5 (the ETag) and any
//!    announced S3 checksum are computed on the same bytes — one pass, never two.
//! 3. **Shardlets → fragments.** Each full shardlet is encoded with the object's
//!    initial scheme, placed by core placement over the current topology, and its
//!    fragments written to their nodes in parallel. At most
//!    [`SHARDLETS_IN_FLIGHT_MAX`] shardlets are buffered at once, so an upload's
//!    memory is bounded whatever its size. A node that fails a write is replaced by
//!    the placement's replacement rule (bounded attempts).
//!
//! Time: an [`UploadClock`] starts before the intent. Every wait for the body and every
//! wait behind fragment writes ends at the cluster's upload deadline, and a body that
//! goes silent for [`crate::object::upload_deadline::BODY_IDLE_MAX`] is let go earlier
//! ([`crate::object::upload_deadline`]); the commit checks the clock again.
//!
//! The result is an [`Uncommitted`] write: durable fragments that nothing references,
//! given up automatically unless a commit consumes it.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use shardlet_core::{
    codec, AccessClass, Codec, Crc32c, FragmentId, FragmentIndex, Generation, NodeId, ObjectId,
    Scheme, ShardletId, SizingPolicy, Spread,
};
use tokio::task::JoinHandle;

use shardlet_model::schema::{FragmentLocation, ShardletRecord};

use crate::metrics::Metrics;
use crate::object::commit::{Commit, CommitError, Uncommitted, Written};
use crate::object::etag::EtagPipeline;
use crate::object::fragments::{first_replica, FragmentBody, FragmentError, FragmentStore};
use crate::object::storage_class::StoragePlan;
use crate::object::topology_source::{Snapshot, TopologySource};
use crate::object::unix_ms_now;
use crate::object::upload_deadline::{DeadlineError, UploadClock};

/// Shardlets of one upload buffered or being written at once. With 2 MiB shardlets and
/// 3 copies sharing one buffer this bounds an upload to ~8 MiB of shardlet memory
/// (erasure-coded: × (k+m)/k for the parity).
pub const SHARDLETS_IN_FLIGHT_MAX: usize = 4;
/// Attempts per fragment (the first node, then replacements) before the upload fails.
pub const FRAGMENT_WRITE_ATTEMPTS_MAX: usize = 3;
/// Fragments of new shardlets start at generation 0; repair and re-coding bump it.
pub const INITIAL_GENERATION: Generation = Generation(0);

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
    /// The intent could not be written.
    #[error(transparent)]
    Intent(#[from] CommitError),
    /// The upload deadline passed, or the body went silent, before every fragment was
    /// durable.
    #[error(transparent)]
    Deadline(#[from] DeadlineError),
}

/// The body as the S3 layer hands it over.
pub struct UploadBody<S> {
    pub stream: S,
    /// Content-Length (decoded length for aws-chunked), when the client sent one.
    pub declared_length: Option<u64>,
    pub max_length: u64,
}

pub struct WritePath {
    pub commit: Arc<Commit>,
    pub fragments: Arc<dyn FragmentStore>,
    pub topology: Arc<TopologySource>,
    pub sizing: SizingPolicy,
    pub metrics: Arc<Metrics>,
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
    ) -> Result<Uncommitted, WriteError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        // The clock starts before the intent exists: never younger than the intent.
        let clock = self.commit.collector().start_upload_clock();
        // 1. Intent first: nothing may reach a node that the GC could not find later.
        let intent_version = self.commit.open_intent(bucket, key, object_id).await?;
        // The guard exists before the first fragment: an error, or this future being
        // dropped (the client went away), gives the upload up.
        let mut write = Uncommitted::new(
            Written {
                object_id,
                intent_version,
                size_bytes: 0,
                md5: [0; 16],
                shardlets: Vec::new(),
                clock: clock.clone(),
            },
            self.commit.collector().clone(),
        );
        match self
            .stream_to_fragments(object_id, plan, body, &clock, observe)
            .await
        {
            Ok((size_bytes, md5, shardlets)) => {
                write.set_data(size_bytes, md5, shardlets);
                Ok(write)
            }
            Err(error) => {
                write.abandon().await;
                Err(error)
            }
        }
    }

    /// 2 + 3: cut, encode, place, write; returns (size, md5, shardlet records in order).
    async fn stream_to_fragments<S, E>(
        &self,
        object_id: ObjectId,
        plan: StoragePlan,
        mut body: UploadBody<S>,
        clock: &UploadClock,
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
        let mut md5 = EtagPipeline::for_length(body.declared_length);
        let mut buffer = BytesMut::with_capacity(shardlet_size);
        let mut in_flight: std::collections::VecDeque<
            JoinHandle<Result<ShardletRecord, WriteError>>,
        > = std::collections::VecDeque::new();
        let mut records = Vec::new();
        let mut received: u64 = 0;
        let mut next_index: u32 = 0;
        let outcome: Result<(), WriteError> = async {
            loop {
                let chunk = match clock.next_chunk(&mut body.stream).await? {
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
                            records.push(join_oldest(&mut in_flight, clock).await?);
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
            while !in_flight.is_empty() {
                records.push(join_oldest(&mut in_flight, clock).await?);
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
        self.metrics.written_bytes_total.inc_by(received);
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
}

/// Waits (until the upload deadline at the latest) for the oldest shardlet in flight. A
/// task still running when the deadline passes stays in `in_flight`, so the error path
/// waits for it before the upload is handed to the collector.
async fn join_oldest(
    in_flight: &mut std::collections::VecDeque<JoinHandle<Result<ShardletRecord, WriteError>>>,
    clock: &UploadClock,
) -> Result<ShardletRecord, WriteError> {
    let Some(oldest) = in_flight.front_mut() else {
        return Err(WriteError::Codec("no shardlet task to wait for".into()));
    };
    let joined = clock.within(oldest).await?;
    in_flight.pop_front();
    joined.map_err(|error| WriteError::Codec(format!("shardlet task failed: {error}")))?
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
        layout_changed_unix_ms: unix_ms_now(),
        // The topology's epoch is the layout version its nodes were chosen under.
        layout_version: snapshot.topology.epoch(),
    })
}
