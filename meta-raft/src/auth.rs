//! Authentication of requests to members, and who may call what.
//!
//! Every request is signed (`shardlet-auth`: SigV4 with a nonce) with the key of its
//! caller's role, each derived from the `meta` key that members hold: `meta.member`
//! (other members: raft RPC, forwarded requests), `meta.gateway`, `meta.controller`,
//! `meta.admin`. A member verifies with the key named by the request and so knows the
//! caller's role; the server then decides per route (`server::roles`). Storage nodes hold no key a
//! member accepts, so a compromised node can neither read (credentials live here) nor
//! write metadata.
//!
//! On top of the signature, every request carries:
//! - the SHA-256 of its body in `x-amz-content-sha256`, signed and checked against the
//!   body received: a cryptographic binding (bodies are small, hashing costs ~1 µs/KiB);
//! - `x-shardlet-member`: the sender's member id, or `client` (signed). Raft RPC uses it
//!   to refuse members outside the configuration (a removed member that still runs);
//! - a `Host` naming this member (its advertised or bound address): members share one
//!   key, so the host is what keeps a request for one member from being replayed to
//!   another, which never saw its nonce.
//!
//! Raft RPC also carries `x-shardlet-cluster` (signed): the sender's cluster id, so a
//! member refuses raft messages from another cluster made from the same secret
//! (`crate::identity`).

use std::time::SystemTime;

use http::HeaderMap;
use shardlet_auth::{
    payload_sha256, Key, KeyName, MetaCaller, ReplayCache, RequestParts, SigningKey, Verified,
    Verifier, MAX_CLOCK_SKEW,
};

use crate::identity::{ClusterId, HEADER_CLUSTER};
use crate::wire::HEADER_FORWARDED;

pub const HEADER_MEMBER: &str = "x-shardlet-member";
/// The member header value of requests from outside the cluster's members.
pub const CLIENT_SENDER: &str = "client";

pub use shardlet_auth::AuthError;

/// Who sent a verified request, as its member header says (checked against its key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    Member(crate::types::MemberId),
    Client,
}

/// Signs requests to members with one caller key. `Debug` shows the key's name only.
#[derive(Clone, Debug)]
pub struct ClientAuth {
    key: SigningKey,
}

impl ClientAuth {
    /// `key` must be one a member accepts (`meta.gateway`, `meta.admin`, …).
    pub fn new(key: SigningKey) -> Result<Self, AuthError> {
        match key.name() {
            KeyName::MetaCaller(_) => Ok(ClientAuth { key }),
            other => Err(AuthError::BadSecret(format!(
                "the metadata service accepts keys meta.gateway, meta.controller, meta.admin and meta.member, not {other}"
            ))),
        }
    }

    pub fn key_name(&self) -> KeyName {
        self.key.name()
    }

    /// The headers to attach to a request for `target` (path and query) on `host`
    /// (`address:port`, exactly as the `Host` header will carry it). Each call makes a
    /// new nonce: sign every attempt, never resend a signed request.
    pub fn sign(
        &self,
        method: &str,
        host: &str,
        target: &str,
        sender: &Sender,
        body: &[u8],
        forwarded: bool,
    ) -> Result<Vec<(&'static str, String)>, AuthError> {
        self.sign_for_cluster(method, host, target, sender, body, forwarded, None)
    }

    /// As [`Self::sign`], naming the sender's cluster in the signed
    /// [`HEADER_CLUSTER`] (raft RPC between members: `crate::identity`).
    #[allow(clippy::too_many_arguments)]
    pub fn sign_for_cluster(
        &self,
        method: &str,
        host: &str,
        target: &str,
        sender: &Sender,
        body: &[u8],
        forwarded: bool,
        cluster: Option<&ClusterId>,
    ) -> Result<Vec<(&'static str, String)>, AuthError> {
        let member = sender_text(sender);
        let hash = payload_sha256(body);
        let mut signed: Vec<(&str, &str)> = vec![(HEADER_MEMBER, &member)];
        if forwarded {
            signed.push((HEADER_FORWARDED, "1"));
        }
        if let Some(cluster) = cluster {
            signed.push((HEADER_CLUSTER, cluster.as_str()));
        }
        let parts = RequestParts {
            method,
            host,
            target,
            headers: &signed,
            payload_sha256: Some(&hash),
        };
        let signature = self.key.sign(&parts, SystemTime::now())?;
        let mut headers: Vec<(&'static str, String)> = signature
            .iter()
            .map(|(name, value)| (name, value.to_string()))
            .collect();
        headers.push((HEADER_MEMBER, member));
        if forwarded {
            headers.push((HEADER_FORWARDED, "1".to_string()));
        }
        if let Some(cluster) = cluster {
            headers.push((HEADER_CLUSTER, cluster.to_string()));
        }
        Ok(headers)
    }
}

/// A member's side: verifies every caller, signs as `meta.member`.
pub struct MemberAuth {
    verifier: Verifier,
    member_key: ClientAuth,
}

impl MemberAuth {
    /// From the `meta` key: accepts the four caller keys derived from it, for requests
    /// addressed to one of `hosts`.
    pub fn new(meta_key: &Key, hosts: Vec<String>, replay_cache_entries_max: usize) -> Self {
        let accepted: Vec<SigningKey> = MetaCaller::ALL
            .into_iter()
            .map(|caller| {
                let name = KeyName::MetaCaller(caller);
                SigningKey::new(name, shardlet_auth::keys::derive(meta_key, name))
            })
            .collect();
        let member_name = KeyName::MetaCaller(MetaCaller::Member);
        let member_key = ClientAuth {
            key: SigningKey::new(
                member_name,
                shardlet_auth::keys::derive(meta_key, member_name),
            ),
        };
        let verifier = Verifier::new(
            accepted,
            ReplayCache::new(replay_cache_entries_max, MAX_CLOCK_SKEW.as_secs()),
        )
        .with_hosts(hosts);
        MemberAuth {
            verifier,
            member_key,
        }
    }

    /// What this member signs its own requests with (raft RPC, forwarding).
    pub fn member_key(&self) -> &ClientAuth {
        &self.member_key
    }

    pub fn replay_cache_entries(&self) -> usize {
        self.verifier.replay_cache().entries()
    }

    /// Checks the signature over the method, target and headers, before any byte of
    /// the body is read: a stranger's request is refused without the server ever
    /// reading (or buffering) what it sends. The body is checked after with
    /// [`VerifiedHeaders::verify_body`].
    pub fn verify_headers(
        &self,
        method: &str,
        target: &str,
        headers: &HeaderMap,
    ) -> Result<VerifiedHeaders, AuthError> {
        let verified = self
            .verifier
            .verify(method, target, headers, SystemTime::now())?;
        verified.require_payload_hash()?;
        let KeyName::MetaCaller(caller) = verified.key else {
            // The verifier accepts caller keys only.
            return Err(AuthError::SignatureMismatch);
        };
        let member = headers
            .get(HEADER_MEMBER)
            .ok_or(AuthError::MissingHeader(HEADER_MEMBER))?
            .to_str()
            .map_err(|_| AuthError::MalformedHeader(HEADER_MEMBER))?;
        let sender = parse_sender(member)?;
        // The member header must agree with the key: only members speak as members.
        match (&sender, caller) {
            (Sender::Member(_), MetaCaller::Member) | (Sender::Client, _) => {}
            (Sender::Member(_), _) => return Err(AuthError::MalformedHeader(HEADER_MEMBER)),
        }
        Ok(VerifiedHeaders {
            sender,
            caller,
            forwarded: headers.contains_key(HEADER_FORWARDED),
            verified,
        })
    }
}

/// A request whose signed headers checked out; its body is still to be checked.
#[derive(Debug, Clone)]
pub struct VerifiedHeaders {
    pub sender: Sender,
    pub caller: MetaCaller,
    /// A follower forwarded it (`x-shardlet-forwarded`, signed by that member).
    pub forwarded: bool,
    verified: Verified,
}

impl VerifiedHeaders {
    /// The body must be the one whose SHA-256 was signed.
    pub fn verify_body(&self, body: &[u8]) -> Result<(), AuthError> {
        self.verified.check_body(body)
    }
}

fn sender_text(sender: &Sender) -> String {
    match sender {
        Sender::Member(id) => id.to_string(),
        Sender::Client => CLIENT_SENDER.to_string(),
    }
}

fn parse_sender(text: &str) -> Result<Sender, AuthError> {
    if text == CLIENT_SENDER {
        return Ok(Sender::Client);
    }
    text.parse()
        .map(Sender::Member)
        .map_err(|_| AuthError::MalformedHeader(HEADER_MEMBER))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use shardlet_auth::ClusterSecret;

    const ROOT: &str = "a-cluster-secret-for-tests";
    const HOST: &str = "127.0.0.1:7380";

    fn root() -> ClusterSecret {
        ClusterSecret::new(ROOT).unwrap()
    }

    fn member() -> MemberAuth {
        MemberAuth::new(&root().derive(KeyName::Meta), vec![HOST.into()], 1000)
    }

    fn client(caller: MetaCaller) -> ClientAuth {
        let name = KeyName::MetaCaller(caller);
        ClientAuth::new(SigningKey::new(name, root().derive(name))).unwrap()
    }

    fn signed(auth: &ClientAuth, target: &str, sender: Sender, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("host", HOST.parse().unwrap());
        for (name, value) in auth
            .sign("POST", HOST, target, &sender, body, false)
            .unwrap()
        {
            headers.insert(name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn a_signed_request_verifies_and_names_its_caller_and_sender() {
        let member = member();
        let headers = signed(
            &client(MetaCaller::Member),
            "/raft/vote",
            Sender::Member(3),
            b"{}",
        );
        let verified = member
            .verify_headers("POST", "/raft/vote", &headers)
            .unwrap();
        assert_eq!(verified.sender, Sender::Member(3));
        assert_eq!(verified.caller, MetaCaller::Member);
        verified.verify_body(b"{}").unwrap();
    }

    #[test]
    fn wrong_key_altered_body_or_path_is_rejected() {
        let member = member();
        let gateway = client(MetaCaller::Gateway);
        let other_cluster = ClusterSecret::new("another-secret-of-enough-bytes").unwrap();
        let name = KeyName::MetaCaller(MetaCaller::Gateway);
        let stranger = ClientAuth::new(SigningKey::new(name, other_cluster.derive(name))).unwrap();
        let headers = signed(&stranger, "/kv/put", Sender::Client, b"{}");
        assert_eq!(
            member
                .verify_headers("POST", "/kv/put", &headers)
                .unwrap_err(),
            AuthError::SignatureMismatch
        );
        let headers = signed(&gateway, "/kv/put", Sender::Client, b"{}");
        let verified = member.verify_headers("POST", "/kv/put", &headers).unwrap();
        assert_eq!(verified.verify_body(b"{ }"), Err(AuthError::BodyMismatch));
        let headers = signed(&gateway, "/kv/put", Sender::Client, b"{}");
        assert_eq!(
            member
                .verify_headers("POST", "/kv/get", &headers)
                .unwrap_err(),
            AuthError::SignatureMismatch
        );
    }

    #[test]
    fn only_member_keys_speak_as_members_and_headers_are_named() {
        let member = member();
        let headers = signed(
            &client(MetaCaller::Gateway),
            "/raft/vote",
            Sender::Member(1),
            b"",
        );
        assert_eq!(
            member
                .verify_headers("POST", "/raft/vote", &headers)
                .unwrap_err(),
            AuthError::MalformedHeader(HEADER_MEMBER)
        );
        assert_eq!(
            member
                .verify_headers("GET", "/", &HeaderMap::new())
                .unwrap_err(),
            AuthError::MissingHeader("host")
        );
    }

    #[test]
    fn storage_and_other_service_keys_are_not_accepted() {
        let member = member();
        for name in [
            KeyName::Storage,
            KeyName::Node(shardlet_auth::NodeName::parse("1").unwrap()),
            KeyName::Controller,
            KeyName::Meta,
        ] {
            let key = SigningKey::new(name, root().derive(name));
            assert!(ClientAuth::new(key.clone()).is_err(), "{name}");
            let hash = payload_sha256(b"{}");
            let parts = RequestParts {
                method: "POST",
                host: HOST,
                target: "/kv/get",
                headers: &[(HEADER_MEMBER, CLIENT_SENDER)],
                payload_sha256: Some(&hash),
            };
            let mut headers = HeaderMap::new();
            headers.insert("host", HOST.parse().unwrap());
            headers.insert(HEADER_MEMBER, CLIENT_SENDER.parse().unwrap());
            for (header, value) in key.sign(&parts, SystemTime::now()).unwrap().iter() {
                headers.insert(header, value.parse().unwrap());
            }
            let refused = member
                .verify_headers("POST", "/kv/get", &headers)
                .unwrap_err();
            assert!(
                matches!(refused, AuthError::KeyNotAccepted { .. }),
                "{name}: {refused}"
            );
        }
    }
}
