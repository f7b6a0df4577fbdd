//! Signed (or deliberately unsigned) requests to one storage node, following the node
//! API contract (`docs/storage-node.md`), over [`crate::raw_http`].

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use crate::fixtures::crc32c_hex;
use crate::raw_http::{self, Body, Request, Response};
use crate::signing;
use crate::wait::wait_until;

/// Signed (or deliberately unsigned) requests to one node, following the contract.
#[derive(Clone, Debug)]
pub struct NodeHttp {
    pub address: SocketAddr,
    /// The cluster secret (the node itself holds only its own key, derived from it).
    pub secret: String,
    /// The node's name: its key is `node-NAME`.
    pub name: String,
}

/// How a request is authenticated.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    /// Signed with `key` at `time`, with a fresh nonce.
    Signed {
        key: signing::ContractKey,
        time: SystemTime,
    },
}

impl NodeHttp {
    /// This node's key (`node-NAME`).
    pub fn key(&self) -> signing::ContractKey {
        signing::derive(&self.secret, &format!("node-{}", self.name))
    }

    pub fn auth(&self) -> Auth {
        Auth::Signed {
            key: self.key(),
            time: SystemTime::now(),
        }
    }

    /// Sends `request` with `auth`; panics only if the node cannot be reached.
    pub async fn send_with(&self, mut request: Request, auth: Auth) -> Response {
        if let Auth::Signed { key, time } = auth {
            let host = self.address.to_string();
            let added = signing::signature_headers(
                &key,
                time,
                &request.method,
                &host,
                &request.target,
                &request.headers,
                None,
            );
            request.headers.extend(added);
        }
        raw_http::send(self.address, &request)
            .await
            .unwrap_or_else(|error| panic!("{} {}: {error}", request.method, request.target))
    }

    pub async fn send(&self, request: Request) -> Response {
        self.send_with(request, self.auth()).await
    }

    pub async fn put(&self, id: &str, bytes: &[u8]) -> Response {
        self.send(put_request(id, bytes)).await
    }

    pub async fn get(&self, id: &str) -> Response {
        self.send(Request::new("GET", &format!("/v1/fragments/{id}")))
            .await
    }

    pub async fn get_range(&self, id: &str, range: &str) -> Response {
        self.send(Request::new("GET", &format!("/v1/fragments/{id}")).header("range", range))
            .await
    }

    pub async fn head(&self, id: &str) -> Response {
        self.send(Request::new("HEAD", &format!("/v1/fragments/{id}")))
            .await
    }

    pub async fn delete(&self, id: &str) -> Response {
        self.send(Request::new("DELETE", &format!("/v1/fragments/{id}")))
            .await
    }

    pub async fn list(&self, after: Option<&str>, limit: Option<usize>) -> Response {
        let mut query = Vec::new();
        if let Some(after) = after {
            query.push(format!("after={after}"));
        }
        if let Some(limit) = limit {
            query.push(format!("limit={limit}"));
        }
        let target = if query.is_empty() {
            "/v1/fragments".to_string()
        } else {
            format!("/v1/fragments?{}", query.join("&"))
        };
        self.send(Request::new("GET", &target)).await
    }

    pub async fn health(&self) -> serde_json::Value {
        let response = self
            .send_with(Request::new("GET", "/health"), Auth::None)
            .await;
        assert_eq!(response.status, 200, "/health answers 200");
        response.json()
    }

    /// `GET /ready` (unauthenticated): its status (200 or 503) and JSON body.
    pub async fn ready(&self) -> (u16, serde_json::Value) {
        let response = self
            .send_with(Request::new("GET", "/ready"), Auth::None)
            .await;
        (response.status, response.json())
    }

    /// Polls `/health` until `check` holds; panics naming `what` after `deadline`.
    pub async fn wait_for_health(
        &self,
        deadline: Duration,
        what: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) {
        let check = &check;
        wait_until(
            deadline,
            what,
            || async move { check(&self.health().await) },
        )
        .await
    }

    pub async fn metrics(&self) -> String {
        let response = self
            .send_with(Request::new("GET", "/metrics"), Auth::None)
            .await;
        assert_eq!(response.status, 200, "/metrics answers 200");
        String::from_utf8(response.body).expect("metrics are UTF-8 text")
    }
}

/// A contract-conforming PUT: `Content-Length` and the body's CRC32C header.
pub fn put_request(id: &str, bytes: &[u8]) -> Request {
    Request::new("PUT", &format!("/v1/fragments/{id}"))
        .header("x-shardlet-crc32c", &crc32c_hex(bytes))
        .body(Body::Full(bytes.to_vec()))
}
