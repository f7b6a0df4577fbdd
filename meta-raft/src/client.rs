//! [`MetaClient`]: how every other Shardlet component reaches metadata.
//!
//! It knows several member addresses and remembers which one answered as (or named) the
//! leader. Retries are bounded (`attempts_max`, capped exponential backoff, and a
//! per-request timeout) and only happen when they cannot duplicate a write:
//! - connection refused / no leader / leader hint (503): the write was not accepted, so
//!   it is retried at the next member or at the named leader;
//! - reads are idempotent and retried on any transient failure;
//! - a write whose fate is unknown (timeout or connection lost after sending) is NOT
//!   retried: the caller gets [`ClientError::Ambiguous`] and must re-read (e.g. with a
//!   compare-and-set) before trying again. Silently retrying could apply it twice.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use shardlet_net::Transport;

use crate::auth::{ClientAuth, Sender};
use crate::blob::Blob;
use crate::command::{Batch, BatchOutcome, ScanPage, VersionedValue};
use crate::types::MemberId;
use crate::wire::{self, ErrorBody, ReadConsistency, HEADER_LEADER_ADDRESS};

#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub request_timeout: Duration,
    pub attempts_max: usize,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Plaintext, or TLS trusting the cluster's CA (member addresses stay `host:port`).
    pub transport: Transport,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout: Duration::from_secs(5),
            attempts_max: 30,
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(500),
            transport: Transport::Plaintext,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request was refused as invalid (4xx); retrying will not help.
    #[error("rejected ({status}): {code}: {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    /// A write may or may not have been applied (timeout or lost connection after it was
    /// sent). Re-read before retrying.
    #[error("outcome unknown: {0}")]
    Ambiguous(String),
    /// No member could serve the request within the retry budget.
    #[error("metadata service unavailable after {attempts} attempts: {last_error}")]
    Unavailable { attempts: usize, last_error: String },
}

/// Whether a request may be retried after an ambiguous failure.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Idempotence {
    Read,
    Write,
}

enum AttemptError {
    /// Not accepted; try elsewhere (optionally at the named leader).
    Retry {
        reason: String,
        leader: Option<String>,
    },
    Ambiguous(String),
    Final(ClientError),
}

pub struct MetaClient {
    addresses: Mutex<Vec<String>>,
    preferred: AtomicUsize,
    http: reqwest::Client,
    auth: ClientAuth,
    options: ClientOptions,
}

impl MetaClient {
    /// A client of the members at `addresses`, signing with `key`: the caller's role key
    /// (`meta.gateway`, `meta.controller` or `meta.admin`), which decides what it may do.
    pub fn new(
        addresses: Vec<String>,
        key: shardlet_auth::SigningKey,
        options: ClientOptions,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !addresses.is_empty(),
            "MetaClient needs at least one member address"
        );
        let http = options
            .transport
            .client_builder()
            .tcp_nodelay(true)
            .timeout(options.request_timeout)
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(MetaClient {
            addresses: Mutex::new(addresses),
            preferred: AtomicUsize::new(0),
            http,
            auth: ClientAuth::new(key)?,
            options,
        })
    }

    /// The value and version of `key`, or `None` if it does not exist.
    pub async fn get(
        &self,
        key: impl Into<Blob>,
        consistency: ReadConsistency,
    ) -> Result<Option<VersionedValue>, ClientError> {
        let request = wire::GetRequest {
            key: key.into(),
            consistency,
        };
        match self
            .call::<_, wire::GetResponse>(wire::PATH_GET, &request, Idempotence::Read)
            .await
        {
            Ok(response) => Ok(Some(response.entry)),
            Err(ClientError::Rejected { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// One page of keys under `prefix`, strictly after `start_after`.
    pub async fn scan(
        &self,
        prefix: impl Into<Blob>,
        start_after: Option<Blob>,
        limit: usize,
        consistency: ReadConsistency,
    ) -> Result<ScanPage, ClientError> {
        let request = wire::ScanRequest {
            prefix: prefix.into(),
            start_after,
            limit: Some(limit),
            consistency,
        };
        self.call(wire::PATH_SCAN, &request, Idempotence::Read)
            .await
    }

    /// Writes `key`; returns its new version.
    pub async fn put(
        &self,
        key: impl Into<Blob>,
        value: impl Into<Blob>,
    ) -> Result<u64, ClientError> {
        applied_version(self.batch(Batch::of_put(key, value)).await?)
    }

    /// Deletes `key` (deleting an absent key succeeds); returns the batch's version.
    pub async fn delete(&self, key: impl Into<Blob>) -> Result<u64, ClientError> {
        applied_version(self.batch(Batch::of_delete(key)).await?)
    }

    /// Applies `batch` atomically if all its conditions hold. A failed condition is
    /// `Ok(BatchOutcome::ConditionFailed { .. })`: nothing was applied.
    pub async fn batch(&self, batch: Batch) -> Result<BatchOutcome, ClientError> {
        match self
            .call::<_, BatchOutcome>(wire::PATH_BATCH, &batch, Idempotence::Write)
            .await
        {
            Ok(outcome) => Ok(outcome),
            Err(ClientError::Rejected {
                status: 409,
                message,
                ..
            }) => serde_json::from_str(&message).map_err(|error| {
                ClientError::Ambiguous(format!("unreadable conflict body: {error}"))
            }),
            Err(error) => Err(error),
        }
    }

    /// Adds a learner and answers once it has caught up.
    pub async fn add_learner(&self, member_id: MemberId, address: &str) -> Result<(), ClientError> {
        self.add_learner_with(member_id, address, true).await
    }

    /// Adds a learner; `wait`: answer once it has caught up, otherwise once it is in the
    /// configuration (follow its progress with [`Self::status_of`] on the leader).
    pub async fn add_learner_with(
        &self,
        member_id: MemberId,
        address: &str,
        wait: bool,
    ) -> Result<(), ClientError> {
        let request = wire::AddLearnerRequest {
            member_id,
            address: address.to_string(),
            wait,
        };
        self.call::<_, serde_json::Value>(wire::PATH_ADD_LEARNER, &request, Idempotence::Read)
            .await
            .map(|_| ())
    }

    /// Makes a learner a voter. Not retried once sent (a retry after it committed would
    /// be refused as "already a voter"): an unknown outcome is [`ClientError::Ambiguous`],
    /// and the caller reads the status.
    pub async fn promote(&self, member_id: MemberId) -> Result<(), ClientError> {
        let request = wire::MemberRequest { member_id };
        self.call::<_, serde_json::Value>(wire::PATH_PROMOTE, &request, Idempotence::Write)
            .await
            .map(|_| ())
    }

    /// Removes a member; not retried once sent, like [`Self::promote`].
    pub async fn remove(&self, member_id: MemberId) -> Result<(), ClientError> {
        let request = wire::MemberRequest { member_id };
        self.call::<_, serde_json::Value>(wire::PATH_REMOVE, &request, Idempotence::Write)
            .await
            .map(|_| ())
    }

    /// Sets the voters (membership changes are idempotent: retrying sets the same set).
    pub async fn change_membership(&self, voters: BTreeSet<MemberId>) -> Result<(), ClientError> {
        let request = wire::ChangeMembershipRequest { voters };
        self.call::<_, serde_json::Value>(wire::PATH_CHANGE_MEMBERSHIP, &request, Idempotence::Read)
            .await
            .map(|_| ())
    }

    /// The status as seen by the member at `address` (no retries elsewhere: the caller
    /// asked about that member).
    pub async fn status_of(&self, address: &str) -> Result<wire::ClusterStatus, ClientError> {
        match self.attempt_get(address, wire::PATH_STATUS).await {
            Ok(status) => Ok(status),
            Err(AttemptError::Final(error)) => Err(error),
            Err(AttemptError::Retry { reason, .. }) | Err(AttemptError::Ambiguous(reason)) => {
                Err(ClientError::Unavailable {
                    attempts: 1,
                    last_error: reason,
                })
            }
        }
    }

    fn address(&self, index: usize) -> String {
        let addresses = self
            .addresses
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        addresses[index % addresses.len()].clone()
    }

    /// Points the client at `leader`, learning the address if it is new.
    fn prefer(&self, leader: &str) {
        let mut addresses = self
            .addresses
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let index = match addresses.iter().position(|address| address == leader) {
            Some(index) => index,
            None => {
                addresses.push(leader.to_string());
                addresses.len() - 1
            }
        };
        self.preferred.store(index, Ordering::Relaxed);
    }

    async fn call<Request: Serialize, Response: DeserializeOwned>(
        &self,
        path: &str,
        request: &Request,
        idempotence: Idempotence,
    ) -> Result<Response, ClientError> {
        let body = serde_json::to_vec(request).map_err(|error| ClientError::Rejected {
            status: 0,
            code: "unserializable".into(),
            message: error.to_string(),
        })?;
        let mut backoff = self.options.backoff_initial;
        let mut last_error = String::new();
        for attempt in 0..self.options.attempts_max {
            let index = self.preferred.load(Ordering::Relaxed);
            let address = self.address(index);
            match self.attempt(&address, path, &body).await {
                Ok(response) => return Ok(response),
                Err(AttemptError::Final(error)) => return Err(error),
                Err(AttemptError::Ambiguous(reason)) if idempotence == Idempotence::Write => {
                    return Err(ClientError::Ambiguous(reason));
                }
                Err(AttemptError::Ambiguous(reason)) => {
                    last_error = reason;
                    self.preferred.store(index + 1, Ordering::Relaxed);
                }
                Err(AttemptError::Retry { reason, leader }) => {
                    last_error = reason;
                    match leader {
                        Some(leader) if leader != address => {
                            self.prefer(&leader);
                            // A fresh leader hint is worth following at once.
                            continue;
                        }
                        _ => self.preferred.store(index + 1, Ordering::Relaxed),
                    }
                }
            }
            if attempt + 1 < self.options.attempts_max {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(self.options.backoff_max);
            }
        }
        Err(ClientError::Unavailable {
            attempts: self.options.attempts_max,
            last_error,
        })
    }

    async fn attempt<Response: DeserializeOwned>(
        &self,
        address: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Response, AttemptError> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.options.transport.url(address)))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        for (name, value) in self.sign("POST", address, path, body)? {
            request = request.header(name, value);
        }
        self.finish(address, request.send().await).await
    }

    async fn attempt_get<Response: DeserializeOwned>(
        &self,
        address: &str,
        path: &str,
    ) -> Result<Response, AttemptError> {
        let mut request = self
            .http
            .get(format!("{}{path}", self.options.transport.url(address)));
        for (name, value) in self.sign("GET", address, path, b"")? {
            request = request.header(name, value);
        }
        self.finish(address, request.send().await).await
    }

    fn sign(
        &self,
        method: &str,
        address: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Vec<(&'static str, String)>, AttemptError> {
        // Signed for this attempt only (a fresh nonce, this member's address): a retry
        // elsewhere is a new request, and this one cannot be replayed to another member.
        self.auth
            .sign(method, address, path, &Sender::Client, body, false)
            .map_err(|error| {
                AttemptError::Final(ClientError::Rejected {
                    status: 0,
                    code: "signing_failed".into(),
                    message: error.to_string(),
                })
            })
    }

    async fn finish<Response: DeserializeOwned>(
        &self,
        address: &str,
        sent: reqwest::Result<reqwest::Response>,
    ) -> Result<Response, AttemptError> {
        let response = match sent {
            Ok(response) => response,
            Err(error) if error.is_connect() => {
                return Err(AttemptError::Retry {
                    reason: format!("{address}: {error}"),
                    leader: None,
                })
            }
            Err(error) => return Err(AttemptError::Ambiguous(format!("{address}: {error}"))),
        };
        let status = response.status();
        if let Some(leader) = response
            .headers()
            .get(HEADER_LEADER_ADDRESS)
            .and_then(|value| value.to_str().ok())
        {
            self.prefer(leader);
        }
        let bytes = response.bytes().await.map_err(|error| {
            AttemptError::Ambiguous(format!("{address}: reading response: {error}"))
        })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|error| {
                AttemptError::Ambiguous(format!("{address}: unreadable response: {error}"))
            });
        }
        if status == StatusCode::CONFLICT {
            return Err(AttemptError::Final(ClientError::Rejected {
                status: 409,
                code: "condition_failed".into(),
                message: String::from_utf8_lossy(&bytes).into_owned(),
            }));
        }
        let body: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
        let (code, message, leader) = match body {
            Some(body) => (body.error, body.message, body.leader_address),
            None => (
                "unknown".to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
                None,
            ),
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // The member refused before proposing (no leader, not leader, leader
            // unreachable): the write was not accepted anywhere.
            return Err(AttemptError::Retry {
                reason: format!("{address}: {code}: {message}"),
                leader,
            });
        }
        if status.is_server_error() {
            return Err(AttemptError::Ambiguous(format!(
                "{address}: {status}: {message}"
            )));
        }
        Err(AttemptError::Final(ClientError::Rejected {
            status: status.as_u16(),
            code,
            message,
        }))
    }
}

fn applied_version(outcome: BatchOutcome) -> Result<u64, ClientError> {
    match outcome {
        BatchOutcome::Applied { version } => Ok(version),
        BatchOutcome::ConditionFailed { .. } => Err(ClientError::Rejected {
            status: 409,
            code: "condition_failed".into(),
            message: "an unconditional write reported a failed condition".into(),
        }),
    }
}
