//! [`FragmentStore`] over real storage nodes: one `NodeClient` (signed HTTP, keep-alive
//! pool) per node, addressed through the current topology, signing with that node's
//! own key (`node-NAME`, derived from the `storage` key the gateway holds, by the name
//! the layout gives the node).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use shardlet_auth::{Key, KeyName, NodeName, SigningKey};
use shardlet_core::{FragmentId, FragmentIndex, Generation, NodeId, ObjectId, ShardletId};
use shardlet_net::Transport;
use shardlet_node::client::{ClientError, ClientOptions, ReadRange};
use shardlet_node::NodeClient;

use crate::object::fragments::{FragmentBody, FragmentError, FragmentStore};
use crate::object::topology_source::TopologySource;

pub struct NodeFragments {
    topology: Arc<TopologySource>,
    /// The `storage` key: every node's key derives from it.
    storage_key: Key,
    /// How nodes are reached: node addresses are `host:port`, the scheme is this.
    transport: Transport,
    /// Each node's client, with the address and name it was built for.
    clients: Mutex<HashMap<NodeId, (String, String, NodeClient)>>,
}

impl NodeFragments {
    pub fn new(topology: Arc<TopologySource>, storage_key: Key, transport: Transport) -> Self {
        Self {
            topology,
            storage_key,
            transport,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client for a node at its current address and name (rebuilt if either moved).
    fn client(&self, node: NodeId) -> Result<NodeClient, FragmentError> {
        let snapshot = self.topology.snapshot();
        let (address, name) = snapshot
            .topology
            .node(node)
            .map(|node| (node.address.clone(), node.name.clone()))
            .ok_or(FragmentError::UnknownNode(node))?;
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| FragmentError::Refused("client table poisoned".into()))?;
        if let Some((known, known_name, client)) = clients.get(&node) {
            if *known == address && *known_name == name {
                return Ok(client.clone());
            }
        }
        let url = self.transport.url(&address);
        let options = ClientOptions {
            transport: self.transport.clone(),
            ..ClientOptions::default()
        };
        let key_name = KeyName::Node(NodeName::parse(&name).map_err(|error| {
            FragmentError::Refused(format!("node {node} has an invalid name: {error}"))
        })?);
        let key = SigningKey::new(
            key_name,
            shardlet_auth::keys::derive(&self.storage_key, key_name),
        );
        let client = NodeClient::with_options(&url, key, options).map_err(|error| {
            FragmentError::Refused(format!("node {node} address {address:?}: {error}"))
        })?;
        clients.insert(node, (address, name, client.clone()));
        Ok(client)
    }
}

fn map_error(error: ClientError) -> FragmentError {
    match error {
        ClientError::NotFound => FragmentError::NotFound,
        ClientError::ChecksumMismatch(reason) => FragmentError::Corrupt(reason),
        ClientError::Unavailable(reason) => FragmentError::Unavailable(reason),
        ClientError::Server {
            status,
            code,
            message,
        } => FragmentError::Unavailable(format!("{status} {code}: {message}")),
        other => FragmentError::Refused(other.to_string()),
    }
}

/// The largest fragment id that sorts before every fragment of `object` (node listings
/// are strictly after a given id), or `None` for the all-zero object id.
fn before_object(object: ObjectId) -> Option<FragmentId> {
    let value = u128::from_be_bytes(object.0).checked_sub(1)?;
    let previous = ObjectId(value.to_be_bytes());
    Some(FragmentId::new(
        ShardletId::new(previous, u32::MAX),
        Generation(u32::MAX),
        FragmentIndex(u8::MAX),
    ))
}

#[async_trait]
impl FragmentStore for NodeFragments {
    async fn put(
        &self,
        node: NodeId,
        id: FragmentId,
        body: FragmentBody,
    ) -> Result<(), FragmentError> {
        self.client(node)?
            .put_checked(&id, body.bytes, body.checksum, body.read_first)
            .await
            .map(|_| ())
            .map_err(map_error)
    }

    async fn get(
        &self,
        node: NodeId,
        id: FragmentId,
        range: Option<Range<u64>>,
    ) -> Result<Bytes, FragmentError> {
        let client = self.client(node)?;
        let stream = match range {
            None => client.get(&id).await,
            Some(range) if range.is_empty() => return Ok(Bytes::new()),
            Some(range) => {
                client
                    .get_range(
                        &id,
                        ReadRange::Inclusive {
                            first: range.start,
                            last: range.end - 1,
                        },
                    )
                    .await
            }
        }
        .map_err(map_error)?;
        stream.bytes().await.map_err(map_error)
    }

    async fn delete(&self, node: NodeId, id: FragmentId) -> Result<(), FragmentError> {
        self.client(node)?.delete(&id).await.map_err(map_error)
    }

    async fn list_of_object(
        &self,
        node: NodeId,
        object: ObjectId,
        limit: usize,
    ) -> Result<Vec<FragmentId>, FragmentError> {
        let after = before_object(object);
        let page = self
            .client(node)?
            .list(after.as_ref(), Some(limit))
            .await
            .map_err(map_error)?;
        Ok(page
            .fragments
            .into_iter()
            .map(|listed| listed.id)
            .take_while(|id| id.shardlet.object == object)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_object_sorts_just_before_the_objects_first_fragment() {
        let object = ObjectId([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        let first = FragmentId::new(ShardletId::new(object, 0), Generation(0), FragmentIndex(0));
        let before = before_object(object).unwrap_or(first);
        assert!(before < first);
        assert!(before.to_string() < first.to_string());
        assert_ne!(before.shardlet.object, object);
        assert_eq!(before_object(ObjectId([0; 16])), None);
    }
}
