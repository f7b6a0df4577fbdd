//! The gateway's view of storage nodes: put, read, delete and list fragments by node.
//! Production uses [`crate::node_fragments::NodeFragments`] (the storage node's
//! `NodeClient` over signed HTTP); `InMemoryFragments` exists for unit tests of single
//! modules only.

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use shardlet_core::{Crc32c, FragmentId, NodeId, ObjectId, ShardletId};

#[derive(Debug, Clone, thiserror::Error)]
pub enum FragmentError {
    #[error("fragment not found")]
    NotFound,
    #[error("fragment failed its checksum: {0}")]
    Corrupt(String),
    #[error("node unavailable: {0}")]
    Unavailable(String),
    #[error("node did not answer in time")]
    Timeout,
    #[error("node refused: {0}")]
    Refused(String),
    #[error("node {0} is not in the topology")]
    UnknownNode(NodeId),
}

impl FragmentError {
    /// The `reason` label of `shardlet_gateway_degraded_reads_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFound => "missing",
            Self::Corrupt(_) => "checksum",
            Self::Unavailable(_) | Self::UnknownNode(_) => "unavailable",
            Self::Timeout => "timeout",
            Self::Refused(_) => "error",
        }
    }
}

/// One fragment to store.
#[derive(Debug, Clone)]
pub struct FragmentBody {
    pub bytes: Bytes,
    /// CRC32C of `bytes`, computed once by the writer for every copy; the node checks it.
    pub checksum: Crc32c,
    /// This copy is the one reads of its shardlet start at: the node keeps it in its
    /// page cache; the other copies of a large shardlet bypass it.
    pub read_first: bool,
}

/// The replica reads of a replicated shardlet with `copies` copies start at: chosen by
/// the shardlet id so that reads spread over the copies. The writer marks that copy
/// [`FragmentBody::read_first`].
pub fn first_replica(id: &ShardletId, copies: usize) -> usize {
    (id.hash_key() % copies.max(1) as u64) as usize
}

#[async_trait]
pub trait FragmentStore: Send + Sync + 'static {
    /// Stores a fragment durably (the node acknowledges after fsync).
    async fn put(
        &self,
        node: NodeId,
        id: FragmentId,
        body: FragmentBody,
    ) -> Result<(), FragmentError>;

    /// Reads a whole fragment (verified against its CRC32C) or a byte range of it
    /// (verified block by block by the node).
    async fn get(
        &self,
        node: NodeId,
        id: FragmentId,
        range: Option<Range<u64>>,
    ) -> Result<Bytes, FragmentError>;

    /// Deletes a fragment; absent is success.
    async fn delete(&self, node: NodeId, id: FragmentId) -> Result<(), FragmentError>;

    /// Fragments on `node` named after `object` (at most `limit`), for GC of uploads
    /// that never recorded where they wrote.
    async fn list_of_object(
        &self,
        node: NodeId,
        object: ObjectId,
        limit: usize,
    ) -> Result<Vec<FragmentId>, FragmentError>;
}

#[cfg(test)]
pub use in_memory::InMemoryFragments;

#[cfg(test)]
mod in_memory {
    use std::collections::{BTreeMap, HashSet};
    use std::sync::Mutex;

    use super::*;

    /// Fragments in maps, with switches to make nodes fail: unit tests only.
    #[derive(Default)]
    pub struct InMemoryFragments {
        pub stored: Mutex<BTreeMap<(NodeId, FragmentId), Bytes>>,
        pub down: Mutex<HashSet<NodeId>>,
        /// Copies written with `read_first`.
        pub read_first: Mutex<HashSet<(NodeId, FragmentId)>>,
        /// Every successful `get`, in order.
        pub fetched: Mutex<Vec<(NodeId, FragmentId)>>,
    }

    impl InMemoryFragments {
        pub fn count(&self) -> usize {
            self.stored.lock().map(|map| map.len()).unwrap_or(0)
        }

        pub fn set_down(&self, node: NodeId) {
            if let Ok(mut down) = self.down.lock() {
                down.insert(node);
            }
        }

        pub fn corrupt(&self, node: NodeId, id: FragmentId) {
            if let Ok(mut map) = self.stored.lock() {
                if let Some(bytes) = map.get_mut(&(node, id)) {
                    let mut changed = bytes.to_vec();
                    if let Some(first) = changed.first_mut() {
                        *first ^= 0xFF;
                    }
                    *bytes = Bytes::from(changed);
                }
            }
        }

        fn check_up(&self, node: NodeId) -> Result<(), FragmentError> {
            match self.down.lock() {
                Ok(down) if down.contains(&node) => {
                    Err(FragmentError::Unavailable(node.to_string()))
                }
                _ => Ok(()),
            }
        }
    }

    #[async_trait]
    impl FragmentStore for InMemoryFragments {
        async fn put(
            &self,
            node: NodeId,
            id: FragmentId,
            body: FragmentBody,
        ) -> Result<(), FragmentError> {
            self.check_up(node)?;
            if Crc32c::of(&body.bytes) != body.checksum {
                return Err(FragmentError::Refused("crc32c mismatch".into()));
            }
            if body.read_first {
                if let Ok(mut marked) = self.read_first.lock() {
                    marked.insert((node, id));
                }
            }
            if let Ok(mut map) = self.stored.lock() {
                map.insert((node, id), body.bytes);
            }
            Ok(())
        }

        async fn get(
            &self,
            node: NodeId,
            id: FragmentId,
            range: Option<Range<u64>>,
        ) -> Result<Bytes, FragmentError> {
            self.check_up(node)?;
            let bytes = self
                .stored
                .lock()
                .ok()
                .and_then(|map| map.get(&(node, id)).cloned())
                .ok_or(FragmentError::NotFound)?;
            if let Ok(mut fetched) = self.fetched.lock() {
                fetched.push((node, id));
            }
            match range {
                None => Ok(bytes),
                Some(range) => Ok(bytes.slice(range.start as usize..range.end as usize)),
            }
        }

        async fn delete(&self, node: NodeId, id: FragmentId) -> Result<(), FragmentError> {
            self.check_up(node)?;
            if let Ok(mut map) = self.stored.lock() {
                map.remove(&(node, id));
            }
            Ok(())
        }

        async fn list_of_object(
            &self,
            node: NodeId,
            object: ObjectId,
            limit: usize,
        ) -> Result<Vec<FragmentId>, FragmentError> {
            self.check_up(node)?;
            Ok(self
                .stored
                .lock()
                .map(|map| {
                    map.keys()
                        .filter(|(n, id)| *n == node && id.shardlet.object == object)
                        .map(|(_, id)| *id)
                        .take(limit)
                        .collect()
                })
                .unwrap_or_default())
        }
    }
}
