//! Raft RPC to other members: JSON over HTTP, signed with the `meta.member` key.
//!
//! Every RPC is signed with the sender's cluster id (`x-shardlet-cluster`,
//! `crate::identity`): members of another cluster refuse it.
//!
//! One pooled HTTP client is shared by all targets, so a connection per member stays open
//! across RPCs. The remote returns `Result<Response, RaftError>` as JSON; transport
//! failures map to openraft's `Unreachable` (back off) or `Network` (retry) errors.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use shardlet_net::Transport;

use crate::auth::{ClientAuth, Sender};
use crate::identity::Identity;
use crate::types::{MemberId, TypeConfig};

pub const PATH_APPEND: &str = "/raft/append";
pub const PATH_VOTE: &str = "/raft/vote";
pub const PATH_SNAPSHOT: &str = "/raft/snapshot";

#[derive(Clone)]
pub struct HttpNetwork {
    http: reqwest::Client,
    transport: Transport,
    auth: ClientAuth,
    member_id: MemberId,
    /// Every RPC names this member's cluster (`x-shardlet-cluster`), so members of
    /// another cluster refuse it.
    identity: Arc<Identity>,
}

impl HttpNetwork {
    pub fn new(
        member_id: MemberId,
        auth: ClientAuth,
        connect_timeout: Duration,
        transport: Transport,
        identity: Arc<Identity>,
    ) -> anyhow::Result<Self> {
        let http = transport
            .client_builder()
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .pool_max_idle_per_host(8)
            .build()?;
        Ok(HttpNetwork {
            http,
            transport,
            auth,
            member_id,
            identity,
        })
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = MemberConnection;

    async fn new_client(&mut self, target: MemberId, node: &BasicNode) -> Self::Network {
        MemberConnection {
            network: self.clone(),
            target,
            target_node: node.clone(),
        }
    }
}

pub struct MemberConnection {
    network: HttpNetwork,
    target: MemberId,
    target_node: BasicNode,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

impl MemberConnection {
    async fn call<Request, Response, Error>(
        &self,
        path: &str,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, RPCError<MemberId, BasicNode, Error>>
    where
        Request: Serialize,
        Response: DeserializeOwned,
        Error: std::error::Error + DeserializeOwned,
    {
        let body = serde_json::to_vec(request)
            .map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        self.call_with_body(path, body, "application/json", timeout)
            .await
    }

    /// Sends `body` (already encoded, of `content_type`) signed, and parses the answer.
    async fn call_with_body<Response, Error>(
        &self,
        path: &str,
        body: Vec<u8>,
        content_type: &'static str,
        timeout: Duration,
    ) -> Result<Response, RPCError<MemberId, BasicNode, Error>>
    where
        Response: DeserializeOwned,
        Error: std::error::Error + DeserializeOwned,
    {
        let url = format!(
            "{}{path}",
            self.network.transport.url(&self.target_node.addr)
        );
        let mut builder = self.network.http.post(url).timeout(timeout);
        let cluster = self.network.identity.get();
        let signature = self
            .network
            .auth
            .sign_for_cluster(
                "POST",
                &self.target_node.addr,
                path,
                &Sender::Member(self.network.member_id),
                &body,
                false,
                cluster.as_ref(),
            )
            .map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        for (name, value) in signature {
            builder = builder.header(name, value);
        }
        let response = builder
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .map_err(|error| {
                if error.is_connect() {
                    RPCError::Unreachable(Unreachable::new(&error))
                } else {
                    RPCError::Network(NetworkError::new(&error))
                }
            })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        if !status.is_success() {
            // A refusal (wrong secret, not a member) is not transient from this side; it
            // surfaces as a network error so openraft keeps retrying while an operator
            // fixes the configuration, and the reason is logged.
            let reason = String::from_utf8_lossy(&bytes).into_owned();
            tracing::warn!(target = self.target, %status, %reason, "raft rpc refused");
            return Err(RPCError::Network(NetworkError::new(&TransportError(
                format!("{status}: {reason}"),
            ))));
        }
        let result: Result<Response, Error> = serde_json::from_slice(&bytes)
            .map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        result.map_err(|error| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.target_node.clone(),
                error,
            ))
        })
    }
}

impl RaftNetwork<TypeConfig> for MemberConnection {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<MemberId>, RPCError<MemberId, BasicNode, RaftError<MemberId>>>
    {
        self.call(PATH_APPEND, &request, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<MemberId>,
        RPCError<MemberId, BasicNode, RaftError<MemberId, InstallSnapshotError>>,
    > {
        // Binary: the chunk's bytes as they are (`snapshot_receive::encode_chunk`).
        let body = crate::snapshot_receive::encode_chunk(&request)
            .map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        self.call_with_body(
            PATH_SNAPSHOT,
            body,
            "application/octet-stream",
            option.hard_ttl(),
        )
        .await
    }

    async fn vote(
        &mut self,
        request: VoteRequest<MemberId>,
        option: RPCOption,
    ) -> Result<VoteResponse<MemberId>, RPCError<MemberId, BasicNode, RaftError<MemberId>>> {
        self.call(PATH_VOTE, &request, option.hard_ttl()).await
    }
}
