#![allow(clippy::unwrap_used)]

use super::*;
use http_body_util::{BodyExt, StreamBody};

type Chunk = Result<Frame<Bytes>, std::convert::Infallible>;

/// A body the test feeds frame by frame, and the sender that feeds it.
fn channel() -> (
    tokio::sync::mpsc::Sender<Chunk>,
    StreamBody<impl futures::Stream<Item = Chunk> + Unpin>,
) {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Chunk>(4);
    let stream = futures::stream::poll_fn(move |context| receiver.poll_recv(context));
    (sender, StreamBody::new(stream))
}

const LONG: Duration = Duration::from_secs(60);

#[test]
fn only_put_object_and_upload_part_carry_object_data() {
    let kind = |method: &str, uri: &str| {
        body_kind(
            &http::Method::from_bytes(method.as_bytes()).unwrap(),
            &uri.parse().unwrap(),
            false,
        )
    };
    for uri in [
        "/bucket/key",
        "/bucket/a/deep/key",
        "/bucket/key?x-id=PutObject",
        "/bucket/key?partNumber=3&uploadId=abc",
        "/bucket/key?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00",
    ] {
        assert_eq!(kind("PUT", uri), BodyKind::ObjectData, "{uri}");
    }
    for (method, uri) in [
        ("POST", "/bucket?delete"),
        ("POST", "/bucket/key?uploadId=abc"),
        ("POST", "/bucket/key?uploads"),
        ("PUT", "/bucket"),
        ("PUT", "/bucket/"),
        ("PUT", "/bucket?versioning"),
        ("PUT", "/bucket/key?tagging"),
        ("PUT", "/bucket/key?acl"),
        ("PUT", "/bucket/key?retention&x-id=PutObjectRetention"),
        ("PUT", "//key"),
        ("DELETE", "/bucket/key"),
        ("GET", "/bucket/key"),
    ] {
        assert_eq!(kind(method, uri), BodyKind::Document, "{method} {uri}");
    }
}

#[test]
fn a_put_to_a_key_of_a_virtual_host_carries_object_data() {
    let kind = |method: &str, uri: &str| {
        body_kind(
            &http::Method::from_bytes(method.as_bytes()).unwrap(),
            &uri.parse().unwrap(),
            true,
        )
    };
    for uri in [
        "/key",
        "/a/deep/key",
        "/key?x-id=PutObject",
        "/key?partNumber=3&uploadId=abc",
        "/key?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00",
    ] {
        assert_eq!(kind("PUT", uri), BodyKind::ObjectData, "{uri}");
    }
    for (method, uri) in [
        ("PUT", "/"),
        ("PUT", "/?versioning"),
        ("PUT", "/key?tagging"),
        ("POST", "/?delete"),
        ("POST", "/key?uploadId=abc"),
        ("GET", "/key"),
    ] {
        assert_eq!(kind(method, uri), BodyKind::Document, "{method} {uri}");
    }
}

#[tokio::test]
async fn a_body_that_arrives_in_time_passes_whole() {
    let (sender, body) = channel();
    let timer = BodyTimer::default();
    let timed = timer.wrap(body, LONG, LONG);
    let feeder = tokio::spawn(async move {
        for part in [&b"<Delete>"[..], b"<Object>", b"</Delete>"] {
            sender
                .send(Ok(Frame::data(Bytes::from_static(part))))
                .await
                .unwrap();
        }
    });
    let collected = timed.collect().await.unwrap().to_bytes();
    feeder.await.unwrap();
    assert_eq!(&collected[..], b"<Delete><Object></Delete>");
    assert_eq!(timer.expired(), None);
}

#[tokio::test]
async fn a_trickled_body_is_cut_at_its_total_time() {
    let (sender, body) = channel();
    let timer = BodyTimer::default();
    // Never idle (a byte every 10 ms, the idle gap is a minute), never done: only the
    // total time can end it.
    let timed = timer.wrap(body, LONG, Duration::from_millis(300));
    let feeder = tokio::spawn(async move {
        while sender
            .send(Ok(Frame::data(Bytes::from_static(b"<"))))
            .await
            .is_ok()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let error = timed.collect().await.err().unwrap();
    assert_eq!(
        error.to_string(),
        "the request body did not arrive within 0.3 seconds"
    );
    assert_eq!(
        timer.expired(),
        Some(BodyTimeout::Total(Duration::from_millis(300)))
    );
    assert_eq!(timer.expired().unwrap().reason(), "total");
    feeder.abort();
}

#[tokio::test]
async fn a_silent_body_is_cut_at_its_idle_gap() {
    let (sender, body) = channel();
    let timer = BodyTimer::default();
    let timed = timer.wrap(body, Duration::from_millis(100), LONG);
    sender
        .send(Ok(Frame::data(Bytes::from_static(b"<Delete>"))))
        .await
        .unwrap();
    // The sender stays alive and silent.
    let error = timed.collect().await.err().unwrap();
    assert!(
        error.to_string().starts_with("no body bytes arrived"),
        "{error}"
    );
    assert_eq!(
        timer.expired(),
        Some(BodyTimeout::Idle(Duration::from_millis(100)))
    );
    drop(sender);
}

#[test]
fn a_document_gets_two_minutes_or_the_upload_deadline_if_shorter() {
    assert_eq!(
        document_limits(Duration::from_secs(3600)),
        (BODY_IDLE_MAX, DOCUMENT_BODY_TIME_MAX)
    );
    assert_eq!(
        document_limits(Duration::from_secs(4)),
        (BODY_IDLE_MAX, Duration::from_secs(4))
    );
}
