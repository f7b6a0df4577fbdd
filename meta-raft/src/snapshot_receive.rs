//! Receiving a snapshot from the leader, chunk by chunk, into a file; checking the whole
//! file before raft may install it.
//!
//! The leader sends openraft's chunked `InstallSnapshot` RPC (`network.rs`), each chunk at
//! most [`chunk_bytes_max`] so its body stays under the route's limit. The body is binary
//! ([`encode_chunk`]): a length-prefixed JSON header (vote, snapshot meta, offset, done)
//! and then the chunk's bytes as they are — not openraft's JSON array of numbers, which
//! costs up to 4 bytes per byte and, on this 2-core class of machine, enough CPU per
//! chunk to starve heartbeats. openraft's own
//! receiver (`Raft::install_snapshot`) would hand the finished file straight to the state
//! machine, where a refusal is a fatal storage error that stops raft on this member. So
//! the route uses this receiver instead: it writes chunks in order (a chunk may be
//! re-sent; one that skips ahead is answered `SnapshotMismatch`, and the leader restarts
//! from the offset asked for), and on the last one reads the whole file through
//! `snapshot_file::verify` — every block's CRC32C, every entry, the end counts. A file
//! that fails is removed and the request answered 400 `snapshot_invalid` naming the
//! block: the member's state is untouched and raft keeps running; the leader starts over.
//! Only a file that passed goes to `Raft::install_full_snapshot`.
//!
//! Each chunk's bytes in transit are also covered by the request's signed SHA-256
//! (`auth.rs`): a chunk altered on the wire is refused 401 before it is written.

// openraft's RPC answer carries its `RaftError` (224 bytes); it is what the route
// serializes, so it is returned as is.
#![allow(clippy::result_large_err)]

use std::io::SeekFrom;
use std::sync::Arc;

use openraft::error::{InstallSnapshotError, RaftError, SnapshotMismatch};
use openraft::raft::{InstallSnapshotRequest, InstallSnapshotResponse};
use openraft::{SnapshotSegmentId, Vote};
use openraft::{StorageError, StorageIOError};
use rocksdb::DB;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::sync::Mutex;

use crate::snapshot::SnapshotInvalid;
use crate::snapshot_metrics::SnapshotMetrics;
use crate::snapshot_store::{self, PendingInstall, SnapshotDirectory, RECEIVED_FILE};
use crate::storage::KvFamily;
use crate::types::{MemberId, Raft, TypeConfig};

/// The largest snapshot a member receives: beyond it the stream is refused (413
/// `snapshot_too_large`) before the disk fills. 256 GiB is ~500 M records of the model's
/// size; raise it with the disk.
pub const RECEIVED_SNAPSHOT_BYTES_MAX: u64 = 256 * 1024 * 1024 * 1024;
/// Room in a request body for the chunk's header (vote, snapshot meta with its
/// membership): the header is refused above it.
pub const CHUNK_HEADER_BYTES_MAX: usize = 64 * 1024;
/// The largest chunk: big enough that a chunk's fixed costs (a signed request, a raft
/// round trip) are small next to its bytes, small enough that hashing and writing one
/// holds a runtime thread for milliseconds only.
pub const CHUNK_BYTES_MAX: usize = 2 * 1024 * 1024;
/// The smallest chunk, whatever the body limit.
const CHUNK_BYTES_MIN: usize = 4 * 1024;

/// The chunk size the leader sends (openraft's `snapshot_max_chunk_size`) for a route
/// body limit of `request_body_bytes_max`.
pub fn chunk_bytes_max(request_body_bytes_max: usize) -> u64 {
    let room = request_body_bytes_max.saturating_sub(4 + CHUNK_HEADER_BYTES_MAX);
    room.clamp(CHUNK_BYTES_MIN, CHUNK_BYTES_MAX) as u64
}

/// The header of a chunk's body; the data follows it.
#[derive(Serialize, Deserialize)]
struct ChunkHeader {
    vote: Vote<MemberId>,
    meta: openraft::SnapshotMeta<MemberId, openraft::BasicNode>,
    offset: u64,
    done: bool,
}

/// A chunk's body: header length (u32, big-endian), header JSON, data.
pub fn encode_chunk(request: &InstallSnapshotRequest<TypeConfig>) -> serde_json::Result<Vec<u8>> {
    let header = serde_json::to_vec(&ChunkHeader {
        vote: request.vote,
        meta: request.meta.clone(),
        offset: request.offset,
        done: request.done,
    })?;
    let mut body = Vec::with_capacity(4 + header.len() + request.data.len());
    body.extend_from_slice(&(header.len() as u32).to_be_bytes());
    body.extend_from_slice(&header);
    body.extend_from_slice(&request.data);
    Ok(body)
}

/// Parses a chunk's body; the reason when it is not one.
pub fn decode_chunk(body: &[u8]) -> Result<InstallSnapshotRequest<TypeConfig>, String> {
    let Some((length, rest)) = body.split_first_chunk::<4>() else {
        return Err("a snapshot chunk starts with its header's length (4 bytes)".into());
    };
    let length = u32::from_be_bytes(*length) as usize;
    if length > CHUNK_HEADER_BYTES_MAX || length > rest.len() {
        return Err(format!(
            "snapshot chunk header of {length} bytes (at most {CHUNK_HEADER_BYTES_MAX} and within the body)"
        ));
    }
    let (header, data) = rest.split_at(length);
    let header: ChunkHeader = serde_json::from_slice(header)
        .map_err(|error| format!("snapshot chunk header: {error}"))?;
    Ok(InstallSnapshotRequest {
        vote: header.vote,
        meta: header.meta,
        offset: header.offset,
        data: data.to_vec(),
        done: header.done,
    })
}

type RaftResult =
    Result<InstallSnapshotResponse<MemberId>, RaftError<MemberId, InstallSnapshotError>>;

/// A received snapshot refused before raft saw it.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{0}")]
    Invalid(SnapshotInvalid),
    #[error("snapshot of more than {limit} bytes (RECEIVED_SNAPSHOT_BYTES_MAX)")]
    TooLarge { limit: u64 },
    #[error("snapshot file: {0}")]
    Io(String),
}

struct Receiving {
    snapshot_id: String,
    file: Box<tokio::fs::File>,
    /// Bytes written so far, in order.
    offset: u64,
}

/// One per member; chunks of one snapshot at a time (a new snapshot id restarts it).
#[derive(Clone)]
pub struct SnapshotReceiver {
    receiving: Arc<Mutex<Option<Receiving>>>,
    db: Arc<DB>,
    serving: Arc<std::sync::RwLock<KvFamily>>,
    directory: SnapshotDirectory,
    metrics: Arc<SnapshotMetrics>,
    install_pause_after_batches: Option<u64>,
}

fn mismatch(id: &str, expected: u64, got: u64) -> RaftResult {
    Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(
        SnapshotMismatch {
            expect: SnapshotSegmentId {
                id: id.to_string(),
                offset: expected,
            },
            got: SnapshotSegmentId {
                id: id.to_string(),
                offset: got,
            },
        },
    )))
}

fn storage_fatal(error: std::io::Error) -> RaftResult {
    let error: StorageError<MemberId> = StorageIOError::write_snapshot(None, &error).into();
    Err(RaftError::Fatal(openraft::error::Fatal::StorageError(
        error,
    )))
}

impl SnapshotReceiver {
    pub fn new(
        db: Arc<DB>,
        serving: Arc<std::sync::RwLock<KvFamily>>,
        directory: SnapshotDirectory,
        metrics: Arc<SnapshotMetrics>,
        install_pause_after_batches: Option<u64>,
    ) -> Self {
        Self {
            receiving: Arc::new(Mutex::new(None)),
            db,
            serving,
            directory,
            metrics,
            install_pause_after_batches,
        }
    }

    /// Handles one chunk (module comment). `Ok` is raft's answer for the leader;
    /// `Err` refuses the snapshot.
    pub async fn receive(
        &self,
        raft: &Raft,
        request: InstallSnapshotRequest<TypeConfig>,
    ) -> Result<RaftResult, Refused> {
        let my_vote: Vote<MemberId> = match raft.with_raft_state(|state| *state.vote_ref()).await {
            Ok(vote) => vote,
            Err(fatal) => return Ok(Err(RaftError::Fatal(fatal))),
        };
        let answer = InstallSnapshotResponse { vote: my_vote };
        // As openraft's receiver: a chunk from a leader of an older term is not written.
        if request.vote < my_vote {
            return Ok(Ok(answer));
        }
        self.metrics.chunks_received_total.inc();
        let mut receiving = self.receiving.lock().await;
        let id = request.meta.snapshot_id.clone();
        if receiving.as_ref().map(|current| &current.snapshot_id) != Some(&id) {
            if request.offset != 0 {
                return Ok(mismatch(&id, 0, request.offset));
            }
            let file = match raft.begin_receiving_snapshot().await {
                Ok(file) => file,
                Err(error) => {
                    return Ok(Err(RaftError::Fatal(
                        error
                            .into_fatal()
                            .unwrap_or(openraft::error::Fatal::Stopped),
                    )))
                }
            };
            *receiving = Some(Receiving {
                snapshot_id: id.clone(),
                file,
                offset: 0,
            });
        }
        let Some(current) = receiving.as_mut() else {
            return Ok(mismatch(&id, 0, request.offset));
        };
        if request.offset > current.offset {
            self.metrics
                .refused_total
                .with_label_values(&["out_of_order"])
                .inc();
            return Ok(mismatch(&id, current.offset, request.offset));
        }
        let end = request.offset.saturating_add(request.data.len() as u64);
        if end > RECEIVED_SNAPSHOT_BYTES_MAX {
            *receiving = None;
            self.metrics
                .refused_total
                .with_label_values(&["too_large"])
                .inc();
            return Err(Refused::TooLarge {
                limit: RECEIVED_SNAPSHOT_BYTES_MAX,
            });
        }
        if let Err(error) = write_at(&mut current.file, request.offset, &request.data).await {
            *receiving = None;
            return Ok(storage_fatal(error));
        }
        current.offset = end;
        if !request.done {
            return Ok(Ok(answer));
        }
        let Some(Receiving { mut file, .. }) = receiving.take() else {
            return Ok(mismatch(&id, 0, request.offset));
        };
        // A re-sent earlier chunk may have been followed by `done` before the old end:
        // the file is exactly what was sent up to this chunk.
        if let Err(error) = finish(&mut file, end).await {
            return Ok(storage_fatal(error));
        }
        if let Err(refused) = self.verify().await {
            self.metrics
                .refused_total
                .with_label_values(&["corrupt"])
                .inc();
            tracing::warn!(snapshot = %id, error = %refused, "received snapshot refused");
            let _ = tokio::fs::remove_file(self.directory.file(RECEIVED_FILE)).await;
            return Err(refused);
        }
        drop(file);
        // The long part of the install, before raft sees the snapshot (`snapshot_install`).
        let started = std::time::Instant::now();
        let pending = self.prepare(&request.meta).await?;
        let file = tokio::fs::File::open(self.directory.file(&pending.file))
            .await
            .map_err(|error| Refused::Io(error.to_string()))?;
        let snapshot = openraft::Snapshot {
            meta: request.meta,
            snapshot: Box::new(file),
        };
        // Keeps the lock while raft installs: a new stream must not reuse the staging
        // family meanwhile.
        let result = raft.install_full_snapshot(request.vote, snapshot).await;
        self.forget_unused(&pending);
        self.metrics
            .last_install_seconds
            .set(started.elapsed().as_secs_f64());
        drop(receiving);
        Ok(result
            .map(InstallSnapshotResponse::from)
            .map_err(RaftError::Fatal))
    }

    async fn prepare(
        &self,
        meta: &openraft::SnapshotMeta<MemberId, openraft::BasicNode>,
    ) -> Result<PendingInstall, Refused> {
        let (db, serving, directory, metrics) = (
            self.db.clone(),
            self.serving.clone(),
            self.directory.clone(),
            self.metrics.clone(),
        );
        let meta = meta.clone();
        let pause = self.install_pause_after_batches;
        tokio::task::spawn_blocking(move || {
            crate::snapshot_install::prepare(&db, &serving, &directory, &meta, pause, &metrics)
        })
        .await
        .map_err(|error| Refused::Io(error.to_string()))?
        .map_err(|error| Refused::Io(format!("{error:#}")))
    }

    /// After raft took the snapshot: a pending install still recorded is one raft did
    /// not want (it was not newer than what this member committed); forgotten, so a
    /// start-up never rolls it forward.
    fn forget_unused(&self, pending: &PendingInstall) {
        let still = snapshot_store::read_pending(&self.db)
            .ok()
            .flatten()
            .is_some_and(|recorded| recorded.file == pending.file);
        if !still {
            return;
        }
        let mut batch = rocksdb::WriteBatch::default();
        let forgotten = snapshot_store::delete_pending(&self.db, &mut batch)
            .and_then(|()| snapshot_store::write_synced(&self.db, batch));
        match forgotten {
            Ok(()) => self.directory.remove(&pending.file),
            Err(error) => tracing::warn!(%error, "could not forget an unused staged snapshot"),
        }
    }

    async fn verify(&self) -> Result<u64, Refused> {
        let path = self.directory.file(RECEIVED_FILE);
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(path).map_err(|error| Refused::Io(error.to_string()))?;
            let input =
                std::io::BufReader::with_capacity(crate::snapshot_file::BLOCK_BYTES_TARGET, file);
            crate::snapshot_file::verify(input).map_err(Refused::Invalid)
        })
        .await
        .map_err(|error| Refused::Io(error.to_string()))?
    }
}

async fn write_at(file: &mut tokio::fs::File, offset: u64, data: &[u8]) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(offset)).await?;
    file.write_all(data).await
}

async fn finish(file: &mut tokio::fs::File, length: u64) -> std::io::Result<()> {
    file.flush().await?;
    file.set_len(length).await?;
    file.seek(SeekFrom::Start(0)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn chunk() -> InstallSnapshotRequest<TypeConfig> {
        InstallSnapshotRequest {
            vote: Vote::new_committed(3, 1),
            meta: openraft::SnapshotMeta::default(),
            offset: 4096,
            data: vec![0, 1, 2, 255],
            done: true,
        }
    }

    #[test]
    fn a_chunk_body_round_trips_and_malformed_ones_are_refused_by_name() {
        let body = encode_chunk(&chunk()).unwrap();
        let decoded = decode_chunk(&body).unwrap();
        assert_eq!((decoded.offset, decoded.done), (4096, true));
        assert_eq!(decoded.data, vec![0, 1, 2, 255]);
        assert_eq!(decoded.vote, Vote::new_committed(3, 1));

        let refused = |body: &[u8]| decode_chunk(body).unwrap_err();
        assert!(refused(&[0, 0]).contains("header's length"));
        let mut too_long = body.clone();
        too_long[..4].copy_from_slice(&(CHUNK_HEADER_BYTES_MAX as u32 + 1).to_be_bytes());
        assert!(refused(&too_long).contains("header of"));
        let mut beyond = (1000u32).to_be_bytes().to_vec();
        beyond.extend_from_slice(b"{}");
        assert!(refused(&beyond).contains("within the body"));
        let mut not_json = 3u32.to_be_bytes().to_vec();
        not_json.extend_from_slice(b"abcdata");
        assert!(refused(&not_json).contains("snapshot chunk header"));
    }

    #[test]
    fn a_chunk_fits_the_body_limit_it_is_sized_for() {
        for limit in [64 * 1024, 1024 * 1024, 16 * 1024 * 1024, 1 << 30] {
            let chunk = chunk_bytes_max(limit) as usize;
            assert!(chunk <= CHUNK_BYTES_MAX);
            if limit > 4 * CHUNK_HEADER_BYTES_MAX {
                assert!(4 + CHUNK_HEADER_BYTES_MAX + chunk <= limit, "limit {limit}");
            }
        }
    }
}
