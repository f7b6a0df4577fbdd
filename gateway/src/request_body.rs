//! Time bounds on the request bodies that are not object data.
//!
//! Object data (PutObject, UploadPart) is timed by the upload's own clock
//! ([`crate::object::upload_deadline`]): an idle gap of `BODY_IDLE_MAX` and the cluster's
//! upload deadline. Every other body is a document s3s reads whole before the handler
//! runs (DeleteObjects, CompleteMultipartUpload, CreateBucket's configuration, any
//! `?subresource` PUT), at most `XML_BODY_BYTES_MAX` bytes — and s3s reads it with no
//! time limit. A key holder trickling such a body, one byte every minute, would hold a
//! connection (and its slot in the server's connection limit: a busy connection is
//! never evicted) for as long as it likes; a few hundred of them would lock everyone
//! else out. So a document body gets the same idle gap and a total of
//! [`DOCUMENT_BODY_TIME_MAX`] (or the upload deadline, if an operator set it lower):
//! 2 MiB in two minutes is 17 KB/s, which any client that means to finish reaches.
//!
//! The clock runs while the body is being read (a body nobody polls costs the client
//! nothing: the gateway is busy elsewhere, e.g. checking the signature), and from the
//! moment the request arrived for the total. When a limit is hit, the read fails;
//! s3s turns any read failure into `InternalError`, so the caller
//! ([`crate::server`]) looks at [`BodyTimer::expired`] and answers S3's
//! `RequestTimeout` (400) instead, and closes the connection (the rest of the body is
//! never read).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::object::upload_deadline::BODY_IDLE_MAX;

/// Longest a document body (not object data) may take to arrive, from the request's
/// arrival; lowered to the upload deadline when that is shorter.
pub const DOCUMENT_BODY_TIME_MAX: Duration = Duration::from_secs(120);

/// Query parameters an object-data upload may carry besides presigning ones
/// (`X-Amz-*`): UploadPart's, and the `x-id` some SDKs add to every request.
const OBJECT_DATA_QUERY: [&str; 3] = ["partNumber", "uploadId", "x-id"];

/// Whether a request's body is object data (timed by its upload's clock) or a document
/// (timed here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    ObjectData,
    Document,
}

/// PutObject and UploadPart — a `PUT` to `/bucket/key` (path style), or to `/key` when
/// the `Host` names the bucket (`bucket_in_host`: virtual-hosted style, `--domain`),
/// whose query, if any, names nothing but an upload part or presigning — carry object
/// data; everything else with a body carries a document.
/// A request misfiled as a document is cut after two minutes at most, never sooner
/// than its idle gap allows; misfiled the other way it gets its upload's clock, which
/// only requests that write fragments start — so the object-data rule is kept narrow.
pub fn body_kind(method: &http::Method, uri: &http::Uri, bucket_in_host: bool) -> BodyKind {
    if method != http::Method::PUT {
        return BodyKind::Document;
    }
    let path = uri.path().trim_start_matches('/');
    let has_key = if bucket_in_host {
        !path.is_empty()
    } else {
        path.split_once('/')
            .is_some_and(|(bucket, key)| !bucket.is_empty() && !key.is_empty())
    };
    let only_upload_parameters = uri.query().unwrap_or_default().split('&').all(|pair| {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        name.is_empty() || OBJECT_DATA_QUERY.contains(&name) || name.starts_with("X-Amz-")
    });
    if has_key && only_upload_parameters {
        BodyKind::ObjectData
    } else {
        BodyKind::Document
    }
}

/// Which limit cut a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyTimeout {
    #[error("no body bytes arrived for {} seconds", .0.as_secs_f64())]
    Idle(Duration),
    #[error("the request body did not arrive within {} seconds", .0.as_secs_f64())]
    Total(Duration),
}

impl BodyTimeout {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            BodyTimeout::Idle(_) => "idle",
            BodyTimeout::Total(_) => "total",
        }
    }
}

/// Shared between the body (which records a timeout) and the request handler (which
/// answers it).
#[derive(Debug, Clone, Default)]
pub struct BodyTimer {
    expired: Arc<OnceLock<BodyTimeout>>,
}

impl BodyTimer {
    /// The limit that cut the body, if one did.
    pub fn expired(&self) -> Option<BodyTimeout> {
        self.expired.get().copied()
    }

    /// `body`, failing once no frame arrived for `idle_max`, or once `total` has
    /// passed since now.
    pub fn wrap<B>(&self, body: B, idle_max: Duration, total: Duration) -> TimedBody<B> {
        TimedBody {
            inner: body,
            idle_max,
            idle: Box::pin(tokio::time::sleep(idle_max)),
            total_limit: total,
            total: Box::pin(tokio::time::sleep(total)),
            expired: self.expired.clone(),
        }
    }
}

/// The limits for a document body, given the cluster's upload deadline now.
pub fn document_limits(upload_deadline: Duration) -> (Duration, Duration) {
    (BODY_IDLE_MAX, DOCUMENT_BODY_TIME_MAX.min(upload_deadline))
}

/// A request body with an idle gap and a total time; see the module doc.
pub struct TimedBody<B> {
    inner: B,
    idle_max: Duration,
    idle: Pin<Box<Sleep>>,
    total_limit: Duration,
    total: Pin<Box<Sleep>>,
    expired: Arc<OnceLock<BodyTimeout>>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<B> TimedBody<B> {
    fn fail(&mut self, timeout: BodyTimeout) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let _ = self.expired.set(timeout);
        Poll::Ready(Some(Err(Box::new(timeout))))
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Some(timeout) = this.expired.get().copied() {
            return Poll::Ready(Some(Err(Box::new(timeout))));
        }
        match Pin::new(&mut this.inner).poll_frame(context) {
            Poll::Ready(frame) => {
                // A frame (or the end) arrived: the idle gap starts again.
                let next = Instant::now() + this.idle_max;
                this.idle.as_mut().reset(next);
                return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
            }
            Poll::Pending => {}
        }
        if this.total.as_mut().poll(context).is_ready() {
            let limit = this.total_limit;
            return this.fail(BodyTimeout::Total(limit));
        }
        if this.idle.as_mut().poll(context).is_ready() {
            let limit = this.idle_max;
            return this.fail(BodyTimeout::Idle(limit));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
