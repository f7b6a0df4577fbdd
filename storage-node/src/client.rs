//! `NodeClient`: the signed HTTP client every other component uses to talk to a
//! storage node. Bodies stream both ways; a full GET verifies the whole-fragment CRC32C
//! as the bytes pass and ends the stream with [`ClientError::ChecksumMismatch`] if it
//! does not match, so a caller that drains the stream never accepts bad data.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use reqwest::StatusCode;
use shardlet_auth::{RequestParts, SigningKey};
use shardlet_core::health_report::HealthReport;
use shardlet_core::{Crc32c, Crc32cHasher, FragmentId};
use shardlet_net::Transport;

use crate::wire::{
    fragment_path, ErrorBody, CACHE_HEADER, CACHE_KEEP, CRC_HEADER, ERROR_HEADER, FRAGMENTS_PATH,
    HEALTH_PATH, LENGTH_HEADER,
};
pub use crate::wire::{FragmentPage, ListedFragment};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("fragment not found")]
    NotFound,
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("checksum mismatch: {0}")]
    ChecksumMismatch(String),
    #[error("insufficient storage: {0}")]
    InsufficientStorage(String),
    #[error("a different fragment with this id exists: {0}")]
    FragmentExists(String),
    #[error("fragment too large: {0}")]
    TooLarge(String),
    #[error("range not satisfiable: {0}")]
    RangeNotSatisfiable(String),
    #[error("node unavailable: {0}")]
    Unavailable(String),
    #[error("request rejected ({status} {code}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    #[error("node error ({status} {code}): {message}")]
    Server {
        status: u16,
        code: String,
        message: String,
    },
    #[error("invalid response: {0}")]
    Protocol(String),
    #[error("invalid node URL {0:?} (expected http://HOST:PORT, or https://HOST:PORT with the cluster's CA)")]
    InvalidUrl(String),
}

impl From<reqwest::Error> for ClientError {
    fn from(error: reqwest::Error) -> Self {
        if error.is_connect() || error.is_timeout() {
            Self::Unavailable(error.to_string())
        } else {
            Self::Protocol(error.to_string())
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    /// Whole request, body included; sized for the largest fragment on a slow link.
    pub request_timeout: Duration,
    /// Idle keep-alive connections kept per node.
    pub idle_connections_per_node_max: usize,
    /// Plaintext, or TLS trusting the cluster's CA; the node URL's scheme must match.
    pub transport: Transport,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(60),
            idle_connections_per_node_max: 64,
            transport: Transport::Plaintext,
        }
    }
}

/// Length and whole-fragment CRC, from HEAD or GET headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentInfo {
    pub length: u64,
    pub crc32c: Crc32c,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    AlreadyStored,
}

/// Which bytes to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadRange {
    /// `first..=last`.
    Inclusive {
        first: u64,
        last: u64,
    },
    From {
        first: u64,
    },
    Suffix {
        length: u64,
    },
}

impl ReadRange {
    fn header(self) -> String {
        match self {
            Self::Inclusive { first, last } => format!("bytes={first}-{last}"),
            Self::From { first } => format!("bytes={first}-"),
            Self::Suffix { length } => format!("bytes=-{length}"),
        }
    }
}

/// A fragment body being received. `info` describes the whole fragment; the stream
/// yields the requested bytes and, for a full read, fails at the end if their CRC32C
/// differs from `info.crc32c`.
pub struct FragmentStream {
    pub info: FragmentInfo,
    /// Bytes this stream will yield.
    pub content_length: u64,
    body: Pin<Box<dyn Stream<Item = Result<Bytes, ClientError>> + Send>>,
}

impl FragmentStream {
    /// Collects the whole body (for callers that want it in memory).
    pub async fn bytes(self) -> Result<Bytes, ClientError> {
        let mut buffer = Vec::with_capacity(self.content_length.min(64 * 1024 * 1024) as usize);
        let mut body = self.body;
        while let Some(chunk) = body.next().await {
            buffer.extend_from_slice(&chunk?);
        }
        Ok(Bytes::from(buffer))
    }
}

impl Stream for FragmentStream {
    type Item = Result<Bytes, ClientError>;
    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.body.as_mut().poll_next(context)
    }
}

/// The `/health` report of the node at `base_url`, reached over `transport` like every
/// internal client (the URL's scheme must match it): `/health` is unauthenticated
/// (liveness probes, `shardlet admin health`), so no key is needed.
pub async fn health_at(base_url: &str, transport: &Transport) -> Result<HealthReport, ClientError> {
    let (base_url, _host) = checked_base_url(base_url, transport)?;
    let http = transport
        .client_builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|error| ClientError::Protocol(error.to_string()))?;
    let response = http.get(format!("{base_url}{HEALTH_PATH}")).send().await?;
    if response.status() != StatusCode::OK {
        return Err(error_from(response).await);
    }
    parse_json(response, HEALTH_BODY_BYTES_MAX).await
}

/// `base_url` without a trailing `/`, and the `Host` header a request to it carries;
/// refused unless it is `SCHEME://HOST[:PORT]` with the transport's scheme.
fn checked_base_url(
    base_url: &str,
    transport: &Transport,
) -> Result<(String, String), ClientError> {
    let base_url = base_url.trim_end_matches('/').to_string();
    let url =
        reqwest::Url::parse(&base_url).map_err(|_| ClientError::InvalidUrl(base_url.clone()))?;
    if url.scheme() != transport.scheme() || url.path() != "/" || url.query().is_some() {
        return Err(ClientError::InvalidUrl(base_url));
    }
    let host_name = url
        .host_str()
        .ok_or_else(|| ClientError::InvalidUrl(base_url.clone()))?;
    // The Host header reqwest sends, which the signature covers.
    let host = match url.port() {
        Some(port) => format!("{host_name}:{port}"),
        None => host_name.to_string(),
    };
    Ok((base_url, host))
}

#[derive(Clone)]
pub struct NodeClient {
    http: reqwest::Client,
    base_url: String,
    host: String,
    /// The key of the node this client talks to (`node-N`): signatures made with it are
    /// good at that node only.
    key: SigningKey,
}

impl NodeClient {
    /// A client of the node at `base_url`, signing with that node's `key` (`node-N`).
    pub fn new(base_url: &str, key: SigningKey) -> Result<Self, ClientError> {
        Self::with_options(base_url, key, ClientOptions::default())
    }

    pub fn with_options(
        base_url: &str,
        key: SigningKey,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let (base_url, host) = checked_base_url(base_url, &options.transport)?;
        let http = options
            .transport
            .client_builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .tcp_nodelay(true)
            .pool_max_idle_per_host(options.idle_connections_per_node_max)
            .build()
            .map_err(|error| ClientError::Protocol(error.to_string()))?;
        Ok(Self {
            http,
            base_url,
            host,
            key,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn signed(
        &self,
        method: reqwest::Method,
        target: &str,
        crc32c: Option<Crc32c>,
        range: Option<&str>,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let crc_text = crc32c.map(|crc| crc.to_string());
        let mut signed_headers: Vec<(&str, &str)> = Vec::with_capacity(2);
        if let Some(crc) = &crc_text {
            signed_headers.push((CRC_HEADER, crc));
        }
        if let Some(range) = range {
            signed_headers.push(("range", range));
        }
        let parts = RequestParts {
            method: method.as_str(),
            host: &self.host,
            target,
            headers: &signed_headers,
            // The body is bound by the signed CRC32C, checked by the node as it stores.
            payload_sha256: None,
        };
        // Signed per request, just before sending: each carries its own nonce, so a
        // retry is a new request, never a replay.
        let signature = self
            .key
            .sign(&parts, SystemTime::now())
            .map_err(|error| ClientError::Protocol(error.to_string()))?;
        let mut builder = self
            .http
            .request(method, format!("{}{target}", self.base_url));
        for (name, value) in signature.iter() {
            builder = builder.header(name, value);
        }
        if let Some(crc) = crc_text {
            builder = builder.header(CRC_HEADER, crc);
        }
        if let Some(range) = range {
            builder = builder.header(reqwest::header::RANGE, range);
        }
        Ok(builder)
    }

    /// Stores `body` as fragment `id`.
    pub async fn put(&self, id: &FragmentId, body: Bytes) -> Result<PutOutcome, ClientError> {
        let crc = Crc32c::of(&body);
        let length = body.len() as u64;
        self.put_body(id, length, crc, false, reqwest::Body::from(body))
            .await
    }

    /// Stores `body`, whose CRC32C the caller has already computed (the node checks it),
    /// as fragment `id`. `keep_cached`: this copy will be read soon, so the node writes it
    /// through its page cache (`x-shardlet-cache: keep`); otherwise a large fragment
    /// bypasses the cache.
    pub async fn put_checked(
        &self,
        id: &FragmentId,
        body: Bytes,
        crc32c: Crc32c,
        keep_cached: bool,
    ) -> Result<PutOutcome, ClientError> {
        let length = body.len() as u64;
        self.put_body(id, length, crc32c, keep_cached, reqwest::Body::from(body))
            .await
    }

    /// Stores a fragment streamed from `body`, whose length and CRC32C the caller knows
    /// in advance (the CRC is a signed header, sent before the body).
    pub async fn put_stream<S>(
        &self,
        id: &FragmentId,
        length: u64,
        crc32c: Crc32c,
        body: S,
    ) -> Result<PutOutcome, ClientError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        self.put_body(id, length, crc32c, false, reqwest::Body::wrap_stream(body))
            .await
    }

    async fn put_body(
        &self,
        id: &FragmentId,
        length: u64,
        crc32c: Crc32c,
        keep_cached: bool,
        body: reqwest::Body,
    ) -> Result<PutOutcome, ClientError> {
        let mut request = self
            .signed(reqwest::Method::PUT, &fragment_path(id), Some(crc32c), None)?
            // An explicit length keeps a streamed body from going out chunked (411).
            .header(reqwest::header::CONTENT_LENGTH, length);
        if keep_cached {
            request = request.header(CACHE_HEADER, CACHE_KEEP);
        }
        let response = request.body(body).send().await?;
        match response.status() {
            StatusCode::CREATED => Ok(PutOutcome::Created),
            StatusCode::OK => Ok(PutOutcome::AlreadyStored),
            _ => Err(error_from(response).await),
        }
    }

    /// Reads the whole fragment, verifying its CRC32C as it streams.
    pub async fn get(&self, id: &FragmentId) -> Result<FragmentStream, ClientError> {
        self.get_inner(id, None).await
    }

    /// Reads part of a fragment (verified block by block on the node).
    pub async fn get_range(
        &self,
        id: &FragmentId,
        range: ReadRange,
    ) -> Result<FragmentStream, ClientError> {
        self.get_inner(id, Some(range)).await
    }

    async fn get_inner(
        &self,
        id: &FragmentId,
        range: Option<ReadRange>,
    ) -> Result<FragmentStream, ClientError> {
        let range_text = range.map(ReadRange::header);
        let response = self
            .signed(
                reqwest::Method::GET,
                &fragment_path(id),
                None,
                range_text.as_deref(),
            )?
            .send()
            .await?;
        let expected = if range.is_some() {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        };
        if response.status() != expected {
            return Err(error_from(response).await);
        }
        let info = fragment_info(response.headers())?;
        let content_length = response
            .content_length()
            .ok_or_else(|| ClientError::Protocol("response without Content-Length".into()))?;
        let raw = response.bytes_stream().map_err(ClientError::from);
        let body: Pin<Box<dyn Stream<Item = Result<Bytes, ClientError>> + Send>> =
            if range.is_none() {
                Box::pin(verify_whole(raw, info))
            } else {
                Box::pin(raw)
            };
        Ok(FragmentStream {
            info,
            content_length,
            body,
        })
    }

    pub async fn head(&self, id: &FragmentId) -> Result<FragmentInfo, ClientError> {
        let response = self
            .signed(reqwest::Method::HEAD, &fragment_path(id), None, None)?
            .send()
            .await?;
        match response.status() {
            StatusCode::OK => fragment_info(response.headers()),
            StatusCode::NOT_FOUND => Err(ClientError::NotFound),
            _ => Err(error_from(response).await),
        }
    }

    /// Deletes a fragment; succeeds also when it did not exist.
    pub async fn delete(&self, id: &FragmentId) -> Result<(), ClientError> {
        let response = self
            .signed(reqwest::Method::DELETE, &fragment_path(id), None, None)?
            .send()
            .await?;
        match response.status() {
            StatusCode::NO_CONTENT => Ok(()),
            _ => Err(error_from(response).await),
        }
    }

    /// One page of the node's fragments, ids ascending, strictly after `after`.
    pub async fn list(
        &self,
        after: Option<&FragmentId>,
        limit: Option<usize>,
    ) -> Result<FragmentPage, ClientError> {
        let mut query = Vec::new();
        if let Some(after) = after {
            query.push(format!("after={after}"));
        }
        if let Some(limit) = limit {
            query.push(format!("limit={limit}"));
        }
        let target = if query.is_empty() {
            FRAGMENTS_PATH.to_string()
        } else {
            format!("{FRAGMENTS_PATH}?{}", query.join("&"))
        };
        let response = self
            .signed(reqwest::Method::GET, &target, None, None)?
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            return Err(error_from(response).await);
        }
        parse_json(response, LIST_BODY_BYTES_MAX).await
    }

    /// The node's `/health` report (unauthenticated).
    pub async fn health(&self) -> Result<HealthReport, ClientError> {
        let response = self
            .http
            .get(format!("{}{HEALTH_PATH}", self.base_url))
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            return Err(error_from(response).await);
        }
        parse_json(response, HEALTH_BODY_BYTES_MAX).await
    }
}

/// A full page of 10,000 entries is about 1 MB of JSON.
const LIST_BODY_BYTES_MAX: usize = 8 * 1024 * 1024;
const HEALTH_BODY_BYTES_MAX: usize = 64 * 1024;

async fn parse_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    limit: usize,
) -> Result<T, ClientError> {
    let body = read_bounded(response, limit).await;
    serde_json::from_slice(&body).map_err(|error| ClientError::Protocol(error.to_string()))
}

fn fragment_info(headers: &reqwest::header::HeaderMap) -> Result<FragmentInfo, ClientError> {
    let text = |name: &str| -> Result<&str, ClientError> {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| ClientError::Protocol(format!("response without a valid {name} header")))
    };
    Ok(FragmentInfo {
        length: text(LENGTH_HEADER)?
            .parse()
            .map_err(|_| ClientError::Protocol(format!("bad {LENGTH_HEADER}")))?,
        crc32c: text(CRC_HEADER)?
            .parse()
            .map_err(|_| ClientError::Protocol(format!("bad {CRC_HEADER}")))?,
    })
}

/// Passes chunks through, then checks length and CRC32C of everything that passed.
fn verify_whole<S>(
    raw: S,
    info: FragmentInfo,
) -> impl Stream<Item = Result<Bytes, ClientError>> + Send
where
    S: Stream<Item = Result<Bytes, ClientError>> + Send,
{
    let checked = raw.scan(Crc32cHasher::new(), |hasher, chunk| {
        if let Ok(bytes) = &chunk {
            hasher.update(bytes);
        }
        futures::future::ready(Some((chunk, *hasher)))
    });
    let mut last_hasher = Crc32cHasher::new();
    let mut failed = false;
    let mut body = Box::pin(checked);
    futures::stream::poll_fn(move |context| {
        if failed {
            return Poll::Ready(None);
        }
        match body.as_mut().poll_next(context) {
            Poll::Ready(Some((chunk, hasher))) => {
                last_hasher = hasher;
                if chunk.is_err() {
                    failed = true;
                }
                Poll::Ready(Some(chunk))
            }
            Poll::Ready(None) => {
                failed = true;
                if last_hasher.bytes_hashed() != info.length {
                    return Poll::Ready(Some(Err(ClientError::ChecksumMismatch(format!(
                        "received {} bytes, the fragment has {}",
                        last_hasher.bytes_hashed(),
                        info.length
                    )))));
                }
                if last_hasher.finish() != info.crc32c {
                    return Poll::Ready(Some(Err(ClientError::ChecksumMismatch(format!(
                        "received bytes have CRC32C {}, the fragment's is {}",
                        last_hasher.finish(),
                        info.crc32c
                    )))));
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    })
}

/// Error bodies are a short JSON object; anything longer is cut here.
const ERROR_BODY_BYTES_MAX: usize = 64 * 1024;

/// Reads at most `limit` bytes of a body (a misbehaving peer cannot make us buffer more).
async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = limit - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == limit {
            break;
        }
    }
    body
}

/// Bounded read of an error body, mapped onto the typed errors.
async fn error_from(response: reqwest::Response) -> ClientError {
    let status = response.status();
    let header_code = response
        .headers()
        .get(ERROR_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let body = read_bounded(response, ERROR_BODY_BYTES_MAX).await;
    let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(parsed) => (parsed.error, parsed.message),
        Err(_) => (
            header_code.unwrap_or_else(|| "unknown".into()),
            String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
        ),
    };
    match (status, code.as_str()) {
        (StatusCode::NOT_FOUND, _) => ClientError::NotFound,
        (StatusCode::UNAUTHORIZED, _) => ClientError::Unauthorized(message),
        (_, "checksum_mismatch") => ClientError::ChecksumMismatch(message),
        (StatusCode::INSUFFICIENT_STORAGE, _) => ClientError::InsufficientStorage(message),
        (StatusCode::CONFLICT, _) => ClientError::FragmentExists(message),
        (StatusCode::PAYLOAD_TOO_LARGE, _) => ClientError::TooLarge(message),
        (StatusCode::RANGE_NOT_SATISFIABLE, _) => ClientError::RangeNotSatisfiable(message),
        (StatusCode::SERVICE_UNAVAILABLE, _) => ClientError::Unavailable(message),
        (status, _) if status.is_client_error() => ClientError::Rejected {
            status: status.as_u16(),
            code,
            message,
        },
        (status, _) => ClientError::Server {
            status: status.as_u16(),
            code,
            message,
        },
    }
}
