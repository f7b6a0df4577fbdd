//! The HTTP API (contract: docs/storage-node.md): router, authentication, metrics and
//! the five fragment handlers. File I/O runs on blocking threads, never on the runtime.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures::StreamExt;
use shardlet_auth::{KeyName, ReplayCache, SigningKey, Verifier, MAX_CLOCK_SKEW};
use shardlet_core::{Crc32c, FragmentId};
use tokio::sync::Semaphore;

use crate::announce::AssignedId;
use crate::config::NodeConfig;
use crate::error::ApiError;
use crate::fragment_file::{FragmentReader, FragmentWriter};
use crate::group_commit::SyncTicket;
use crate::health::HealthSampler;
use crate::metrics::NodeMetrics;
use crate::readiness::NodeReadiness;
use crate::request::{self, PutHeaders};
use crate::store::{CommitOutcome, FragmentStore, SMALL_FRAGMENT_BYTES_MAX};
use crate::store_error::StoreError;
use crate::wire::{
    FragmentPage, CRC_HEADER, FRAGMENTS_PATH, FRAGMENT_ROUTE, HEALTH_PATH, LENGTH_HEADER,
    METRICS_PATH,
};

pub struct AppState {
    pub config: NodeConfig,
    pub store: Arc<FragmentStore>,
    pub metrics: Arc<NodeMetrics>,
    pub health: Arc<HealthSampler>,
    /// `GET /ready`: writable data directory, fence not tripped.
    pub readiness: NodeReadiness,
    /// The node's id in the layout, once an announcement returned it.
    pub assigned_id: Arc<AssignedId>,
    write_slots: Semaphore,
    /// Accepts this node's key only, and remembers the nonces it accepted.
    verifier: Verifier,
}

impl AppState {
    pub fn new(
        config: NodeConfig,
        store: Arc<FragmentStore>,
        metrics: Arc<NodeMetrics>,
        health: Arc<HealthSampler>,
    ) -> Arc<Self> {
        let write_slots = Semaphore::new(config.max_concurrent_writes);
        let own_key = SigningKey::new(KeyName::Node(config.name), config.key.clone());
        let verifier = Verifier::new(
            vec![own_key],
            ReplayCache::new(config.replay_cache_entries_max, MAX_CLOCK_SKEW.as_secs()),
        );
        Arc::new(Self {
            readiness: NodeReadiness::new(&config.data_dir),
            config,
            store,
            metrics,
            health,
            assigned_id: Arc::default(),
            write_slots,
            verifier,
        })
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    let fragments = Router::new()
        .route(FRAGMENTS_PATH, get(list_fragments))
        .route(
            FRAGMENT_ROUTE,
            get(get_fragment)
                .head(head_fragment)
                .put(put_fragment)
                .delete(delete_fragment),
        )
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            authenticate,
        ));
    Router::new()
        .merge(fragments)
        .route(HEALTH_PATH, get(health))
        .route(shardlet_net::READY_PATH, get(ready))
        .route(METRICS_PATH, get(metrics))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this path",
            )
        })
        // Bodies are streamed and bounded by `max_fragment_bytes` in the PUT handler.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(Arc::clone(&state), observe))
        .with_state(state)
}

/// Counts and times every request by operation and status.
async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let operation = operation_name(request.method(), request.uri().path());
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .request_seconds
        .with_label_values(&[operation])
        .observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .requests_total
        .with_label_values(&[operation, response.status().as_str()])
        .inc();
    response
}

fn operation_name(method: &Method, path: &str) -> &'static str {
    if path == FRAGMENTS_PATH {
        return "list";
    }
    if path
        .strip_prefix(FRAGMENTS_PATH)
        .is_some_and(|rest| rest.starts_with('/'))
    {
        return match *method {
            Method::PUT => "put",
            Method::GET => "get",
            Method::HEAD => "head",
            Method::DELETE => "delete",
            _ => "other",
        };
    }
    match path {
        HEALTH_PATH => "health",
        shardlet_net::READY_PATH => "ready",
        METRICS_PATH => "metrics",
        _ => "other",
    }
}

/// Rejects any `/v1` request that is not signed with this node's key (401), or that
/// was already received (401, a replay); 503 when the replay cache is full. Nothing of
/// a refused request is read or done. The key is per node, so a request signed for
/// another node (or replayed to this one from another) cannot verify here.
async fn authenticate(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |path_and_query| path_and_query.as_str());
    let verified = state.verifier.verify(
        request.method().as_str(),
        target,
        request.headers(),
        SystemTime::now(),
    );
    state
        .metrics
        .replay_cache_entries
        .set(state.verifier.replay_cache().entries() as i64);
    match verified {
        Ok(_) => next.run(request).await,
        Err(error) => {
            state
                .metrics
                .auth_refused_total
                .with_label_values(&[error.reason()])
                .inc();
            // The reason, never a header value: the request may carry anything.
            tracing::debug!(%error, method = %request.method(), path = request.uri().path(), "refused a request");
            let code = match error {
                shardlet_auth::AuthError::ReplayCacheFull { .. } => "replay_cache_full",
                _ => "unauthorized",
            };
            ApiError::new(error.status(), code, error.to_string()).into_response()
        }
    }
}

/// Runs blocking store work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ApiError::internal(format!("storage task failed: {error}")))?
}

impl AppState {
    /// Runs `work` on the store off the async runtime.
    async fn on_store<T: Send + 'static, E>(
        &self,
        work: impl FnOnce(&FragmentStore) -> Result<T, E> + Send + 'static,
    ) -> Result<T, ApiError>
    where
        ApiError: From<E>,
    {
        let store = Arc::clone(&self.store);
        blocking(move || Ok(work(&store)?)).await
    }
}

fn crc_value(crc: Crc32c) -> HeaderValue {
    HeaderValue::from_str(&crc.to_string()).unwrap_or_else(|_| HeaderValue::from_static("00000000"))
}

fn number_value(number: u64) -> HeaderValue {
    HeaderValue::from(number)
}

async fn put_fragment(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = request::fragment_id(&id)?;
    // A node that had an fsync fail takes no more writes: refused before the body.
    state.store.write_fence().check()?;
    let PutHeaders {
        length,
        claimed_crc,
        keep_cached,
    } = request::put_headers(&headers, state.config.max_fragment_bytes)?;
    check_reserve(&state, length)?;
    let _slot = tokio::time::timeout(
        state.config.write_queue_timeout,
        state.write_slots.acquire(),
    )
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_busy",
            "no write slot became free in time",
        )
    })?
    .map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "node is stopping",
        )
    })?;
    let (outcome, ticket) = tokio::time::timeout(
        state.config.body_total_timeout,
        receive_body(&state, id, length, keep_cached, claimed_crc, body),
    )
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body took too long",
        )
    })??;
    if let Err(error) = ticket.wait().await {
        // The directory fsync failed (the fence is tripped). A file this PUT renamed
        // into place goes again, so no retry finds it; a copy that was there before
        // (AlreadyStored) is left alone.
        if outcome == CommitOutcome::Created {
            let store = Arc::clone(&state.store);
            let _ = tokio::task::spawn_blocking(move || store.discard_unsynced(&id)).await;
        }
        return Err(ApiError::from(StoreError::Fsync(error)));
    }
    // Another write's fsync may have failed while this one waited: once the fence is
    // tripped, nothing is acknowledged any more, whatever this write's own syncs said.
    state.store.write_fence().check()?;
    let status = match outcome {
        CommitOutcome::Created => StatusCode::CREATED,
        CommitOutcome::AlreadyStored => StatusCode::OK,
    };
    Ok((status, [(CRC_HEADER, crc_value(claimed_crc))]).into_response())
}

fn check_reserve(state: &AppState, length: u64) -> Result<(), ApiError> {
    let capacity = state
        .store
        .capacity()
        .map_err(|error| ApiError::internal(format!("statvfs failed: {error}")))?;
    let needed =
        length.saturating_add(crate::fragment_file::format::HEADER_BYTES + length / 1024 + 4096);
    if capacity.free_bytes < needed.saturating_add(state.config.reserve_bytes) {
        state.metrics.insufficient_storage_total.inc();
        return Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            format!(
                "{} bytes free; storing {length} bytes would leave less than the reserve of {} bytes",
                capacity.free_bytes, state.config.reserve_bytes
            ),
        ));
    }
    Ok(())
}

type PendingWrite = tokio::task::JoinHandle<Result<FragmentWriter, ApiError>>;

/// Received bytes handed to a blocking thread at once: fewer hand-offs (each a thread
/// wake-up and context switch) against more memory per PUT (at most two batches).
const WRITE_BATCH_BYTES: usize = 512 * 1024;

/// Streams the body to disk a batch at a time: while one batch is being written on a
/// blocking thread, the next is received. The batch is the body's own chunks (no copy);
/// memory per PUT is two batches.
async fn receive_body(
    state: &Arc<AppState>,
    id: FragmentId,
    length: u64,
    keep_cached: bool,
    claimed_crc: Crc32c,
    body: Body,
) -> Result<(CommitOutcome, SyncTicket), ApiError> {
    let mut stream = body.into_data_stream();
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batch_bytes: usize = 0;
    let mut writer: Option<FragmentWriter> = None;
    let mut pending: Option<PendingWrite> = None;
    let mut received: u64 = 0;
    loop {
        let next = tokio::time::timeout(state.config.body_idle_timeout, stream.next())
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "the request body stalled",
                )
            })?;
        let chunk = match next {
            None => break,
            Some(Ok(chunk)) => chunk,
            Some(Err(error)) => {
                return Err(ApiError::bad_request(
                    "incomplete_body",
                    format!("request body ended early: {error}"),
                ))
            }
        };
        received += chunk.len() as u64;
        if received > length {
            return Err(ApiError::bad_request(
                "incomplete_body",
                "body longer than Content-Length",
            ));
        }
        batch_bytes += chunk.len();
        batch.push(chunk);
        if batch_bytes >= WRITE_BATCH_BYTES && received < length {
            if let Some(handle) = pending.take() {
                writer = Some(join_write(handle).await?);
            }
            let full = std::mem::take(&mut batch);
            batch_bytes = 0;
            let store = Arc::clone(&state.store);
            let current = writer.take();
            pending = Some(tokio::task::spawn_blocking(move || {
                Ok(write_chunks(
                    &store,
                    current,
                    &id,
                    length,
                    keep_cached,
                    &full,
                )?)
            }));
        }
    }
    state.metrics.received_bytes_total.inc_by(received);
    if let Some(handle) = pending.take() {
        writer = Some(join_write(handle).await?);
    }
    let store = Arc::clone(&state.store);
    blocking(move || {
        if writer.is_none() && length <= SMALL_FRAGMENT_BYTES_MAX {
            // The whole body is in `batch`: one synced write to the small-fragment store.
            return Ok(store.put_small(&id, length, &batch, claimed_crc)?);
        }
        let writer = write_chunks(&store, writer, &id, length, keep_cached, &batch)?;
        Ok(store.finish_write(&id, writer, claimed_crc)?)
    })
    .await
}

/// Appends `chunks` to the write in progress, starting it (a new temporary file) first if
/// this is the first batch. Blocking.
fn write_chunks(
    store: &FragmentStore,
    writer: Option<FragmentWriter>,
    id: &FragmentId,
    length: u64,
    keep_cached: bool,
    chunks: &[Bytes],
) -> Result<FragmentWriter, StoreError> {
    let mut writer = match writer {
        Some(writer) => writer,
        None => store.begin_write(id, length, keep_cached)?,
    };
    for chunk in chunks {
        writer.write(chunk)?;
    }
    Ok(writer)
}

async fn join_write(handle: PendingWrite) -> Result<FragmentWriter, ApiError> {
    handle
        .await
        .map_err(|error| ApiError::internal(format!("storage task failed: {error}")))?
}

async fn head_fragment(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = request::fragment_id(&id)?;
    let header = state.on_store(move |store| store.head(&id)).await?;
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, number_value(header.payload_length));
    headers.insert(CRC_HEADER, crc_value(header.payload_crc));
    headers.insert(LENGTH_HEADER, number_value(header.payload_length));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    Ok(response)
}

async fn get_fragment(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = request::fragment_id(&id)?;
    let range = request::range(&headers)?;
    let store = Arc::clone(&state.store);
    let verify_before_response = state.config.verify_before_response_bytes;
    let chunk_bytes = state.config.read_chunk_bytes;
    let (reader, first, start, end) = blocking(move || {
        let reader = store.open_reader(&id)?;
        let length = reader.header.payload_length;
        let (start, end) = match range {
            None => (0, length),
            Some(range) => range.resolve(length).map_err(|error| ApiError {
                unsatisfiable_length: Some(length),
                ..ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range_not_satisfiable",
                    error.to_string(),
                )
            })?,
        };
        let first_end = if end - start <= verify_before_response {
            end
        } else {
            start + chunk_bytes
        };
        let first = store.read_range(&reader, start, first_end)?;
        Ok((reader, first, start, end))
    })
    .await?;
    let length = reader.header.payload_length;
    let status = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut response_headers = HeaderMap::new();
    response_headers.insert(header::CONTENT_LENGTH, number_value(end - start));
    response_headers.insert(CRC_HEADER, crc_value(reader.header.payload_crc));
    response_headers.insert(LENGTH_HEADER, number_value(length));
    response_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if range.is_some() {
        let content_range = format!("bytes {start}-{}/{length}", end - 1);
        if let Ok(value) = HeaderValue::from_str(&content_range) {
            response_headers.insert(header::CONTENT_RANGE, value);
        }
    }
    let sent_so_far = start + first.len() as u64;
    state.metrics.sent_bytes_total.inc_by(first.len() as u64);
    let body = if sent_so_far == end {
        Body::from(first)
    } else {
        Body::from_stream(verified_stream(
            Arc::clone(&state),
            reader,
            first,
            sent_so_far,
            end,
            chunk_bytes,
        ))
    };
    Ok((status, response_headers, body).into_response())
}

/// The rest of a long read: each chunk is read and verified on a blocking thread before
/// it is yielded. A checksum failure ends the stream with an error, which aborts the
/// response (the client sees a short body, never unverified bytes).
fn verified_stream(
    state: Arc<AppState>,
    reader: FragmentReader,
    first: Bytes,
    next_offset: u64,
    end: u64,
    chunk_bytes: u64,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let reader = Arc::new(reader);
    let rest = futures::stream::unfold(Some(next_offset), move |offset| {
        let state = Arc::clone(&state);
        let reader = Arc::clone(&reader);
        async move {
            let offset = offset?;
            if offset >= end {
                return None;
            }
            let chunk_end = (offset + chunk_bytes).min(end);
            let store = Arc::clone(&state.store);
            let read =
                tokio::task::spawn_blocking(move || store.read_range(&reader, offset, chunk_end))
                    .await;
            match read {
                Ok(Ok(chunk)) => {
                    state.metrics.sent_bytes_total.inc_by(chunk.len() as u64);
                    Some((Ok(chunk), Some(chunk_end)))
                }
                Ok(Err(error)) => {
                    tracing::error!(%error, "aborting a response mid-stream");
                    Some((Err(std::io::Error::other(error.to_string())), None))
                }
                Err(error) => Some((Err(std::io::Error::other(error.to_string())), None)),
            }
        }
    });
    futures::stream::once(async move { Ok(first) }).chain(rest)
}

async fn delete_fragment(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = request::fragment_id(&id)?;
    state.store.write_fence().check()?;
    let (_removed, ticket) = state.on_store(move |store| store.delete(&id)).await?;
    ticket
        .wait()
        .await
        .map_err(|error| ApiError::from(StoreError::Fsync(error)))?;
    state.store.write_fence().check()?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_fragments(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    let (after, limit) = request::list_query(
        request.uri().query().unwrap_or(""),
        state.config.list_limit_default,
        state.config.list_limit_max,
    )?;
    let (fragments, more) = state
        .on_store(move |store| store.list(after.as_ref(), limit))
        .await?;
    let next_after = if more {
        fragments.last().map(|fragment| fragment.id)
    } else {
        None
    };
    Ok(axum::Json(FragmentPage {
        fragments,
        next_after,
    })
    .into_response())
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    axum::Json(
        state
            .health
            .report(&state.store, &state.config, state.assigned_id.get()),
    )
    .into_response()
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    state
        .readiness
        .check(state.store.write_fence())
        .await
        .response::<axum::body::Body>()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match state.metrics.render() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            )],
            text,
        )
            .into_response(),
        Err(error) => ApiError::internal(error.to_string()).into_response(),
    }
}
