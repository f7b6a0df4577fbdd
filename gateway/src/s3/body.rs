//! Bodies between S3 and the object layer: a request body as the write path's stream,
//! and a response body fed by a read task.

use std::ops::Range;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use s3s::dto::StreamingBlob;
use shardlet_model::schema::{ObjectRecord, ShardletReference};

use crate::s3::gateway::Gateway;

/// Chunks buffered between the read task and the response (plus the read-ahead).
const RESPONSE_CHANNEL_CHUNKS: usize = 2;

pub type BodyStream = BoxStream<'static, Result<Bytes, s3s::StdError>>;

/// A response body fed by a task through a bounded channel. The channel makes the body
/// `Sync` (s3s needs it) and keeps read-ahead in the producing task; an `Err` item
/// makes hyper abort the response, so a failed read never looks like a short object.
pub struct ChannelBody(pub tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures::Stream for ChannelBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(context)
    }
}

pub fn body_stream(body: Option<StreamingBlob>) -> BodyStream {
    match body {
        Some(body) => body.boxed(),
        None => futures::stream::empty().boxed(),
    }
}

/// The object's bytes in `range` as a response body, read by a task.
pub fn response_body(
    gateway: &Gateway,
    shardlets: &[ShardletReference],
    range: Range<u64>,
) -> StreamingBlob {
    let (sender, receiver) = tokio::sync::mpsc::channel(RESPONSE_CHANNEL_CHUNKS);
    let stream = gateway.reader.stream(shardlets, range);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            let failed = item.is_err();
            let item = item.map_err(std::io::Error::other);
            // The client went away: stop reading.
            if sender.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    StreamingBlob::wrap(ChannelBody(receiver))
}

/// The bytes of `range` of a stored object as an upload body (for copies).
pub fn copy_stream(gateway: &Gateway, source: &ObjectRecord, range: Range<u64>) -> BodyStream {
    gateway
        .reader
        .stream(&source.shardlets, range)
        .map(|item| item.map_err(|error| -> s3s::StdError { Box::new(error) }))
        .boxed()
}
