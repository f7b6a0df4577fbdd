//! `NodeClient` against a real node served in-process on a real TCP listener
//! (127.0.0.1, port chosen by the OS): the streaming paths the process-level tests in
//! `integration/` do not reach (fragments longer than the verify-before-response window,
//! corruption detected mid-stream, the client's own CRC check).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use shardlet_auth::{ClusterSecret, KeyName, NodeName, SigningKey};
use shardlet_core::{Crc32c, FragmentId, FragmentIndex, Generation, ObjectId, ShardletId};
use shardlet_node::client::{PutOutcome, ReadRange};
use shardlet_node::{BoundNode, ClientError, NodeClient, NodeConfig};

const MIB: u64 = 1024 * 1024;

/// Node 7's key in the test cluster (or in another cluster, with another root).
fn node_name() -> NodeName {
    NodeName::parse("n7").unwrap()
}

fn node_key_name() -> KeyName {
    KeyName::Node(node_name())
}

fn node_key(root: &str) -> SigningKey {
    let root = ClusterSecret::new(root).unwrap();
    SigningKey::new(node_key_name(), root.derive(node_key_name()))
}

const ROOT: &str = "test-secret-0123456789abcdef";

struct RunningNode {
    client: NodeClient,
    data_dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl RunningNode {
    async fn start(configure: impl FnOnce(&mut NodeConfig)) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let key = node_key(ROOT);
        let mut config = NodeConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            data_dir.path().to_path_buf(),
            node_name(),
            key.key().clone(),
        );
        config.reserve_bytes = 0;
        configure(&mut config);
        let node = BoundNode::bind(config).await.unwrap();
        let url = format!("http://{}", node.local_address());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            node.serve(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            client: NodeClient::new(&url, key).unwrap(),
            data_dir,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Stores `bytes` as `id`, which must succeed.
    async fn put(&self, id: &FragmentId, bytes: &[u8]) -> PutOutcome {
        self.client
            .put(id, Bytes::copy_from_slice(bytes))
            .await
            .unwrap()
    }

    fn fragment_path(&self, id: &FragmentId) -> std::path::PathBuf {
        let name = id.to_string();
        self.data_dir
            .path()
            .join("fragments")
            .join(&name[..2])
            .join(name)
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(30), self.server.take().unwrap())
            .await
            .unwrap()
            .unwrap();
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

fn random_id() -> FragmentId {
    FragmentId::new(
        ShardletId::new(ObjectId::random(), 0),
        Generation(1),
        FragmentIndex(2),
    )
}

fn pattern(length: u64) -> Vec<u8> {
    (0..length)
        .map(|index| (index * 7 + index / 4093) as u8)
        .collect()
}

/// Flips one payload byte of a stored fragment on disk (after the 32-byte header).
fn flip_payload_byte(path: &std::path::Path, payload_offset: u64) {
    let mut file = std::fs::read(path).unwrap();
    file[32 + payload_offset as usize] ^= 0x40;
    std::fs::write(path, file).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_fragment_streams_back_intact_whole_and_in_ranges() {
    let node = RunningNode::start(|_| {}).await;
    let id = random_id();
    let bytes = pattern(9 * MIB + 12_345);
    let outcome = node.put(&id, &bytes).await;
    assert_eq!(outcome, PutOutcome::Created);

    let stream = node.client.get(&id).await.unwrap();
    assert_eq!(stream.info.length, bytes.len() as u64);
    assert_eq!(stream.info.crc32c, Crc32c::of(&bytes));
    assert_eq!(stream.bytes().await.unwrap(), bytes);

    let length = bytes.len() as u64;
    for (range, expected) in [
        (
            ReadRange::Inclusive {
                first: MIB - 1,
                last: 5 * MIB + 1,
            },
            (MIB - 1)..(5 * MIB + 2),
        ),
        (ReadRange::From { first: 8 * MIB }, (8 * MIB)..length),
        (
            ReadRange::Suffix { length: 70_000 },
            (length - 70_000)..length,
        ),
    ] {
        let read = node
            .client
            .get_range(&id, range)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            &read[..],
            &bytes[expected.start as usize..expected.end as usize],
            "{range:?}"
        );
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_streamed_with_a_known_length_is_stored_and_retries_are_idempotent() {
    let node = RunningNode::start(|_| {}).await;
    let id = random_id();
    let bytes = pattern(3 * MIB + 5);
    let crc = Crc32c::of(&bytes);
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(100_000)
        .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
        .collect();
    let outcome = node
        .client
        .put_stream(&id, bytes.len() as u64, crc, futures::stream::iter(chunks))
        .await
        .unwrap();
    assert_eq!(outcome, PutOutcome::Created);
    let again = node.put(&id, &bytes).await;
    assert_eq!(again, PutOutcome::AlreadyStored);
    let other = node.client.put(&id, Bytes::from(pattern(10))).await;
    assert!(
        matches!(other, Err(ClientError::FragmentExists(_))),
        "{other:?}"
    );
    assert_eq!(
        node.client.get(&id).await.unwrap().bytes().await.unwrap(),
        bytes
    );
    let info = node.client.head(&id).await.unwrap();
    assert_eq!((info.length, info.crc32c), (bytes.len() as u64, crc));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_found_before_the_response_is_a_checksum_mismatch_error() {
    let node = RunningNode::start(|_| {}).await;
    let id = random_id();
    node.put(&id, &pattern(MIB)).await;
    flip_payload_byte(&node.fragment_path(&id), MIB - 1);
    let result = node.client.get(&id).await;
    assert!(
        matches!(result, Err(ClientError::ChecksumMismatch(_))),
        "{:?}",
        result.err()
    );
    let health = node.client.health().await.unwrap();
    assert_eq!(health.errors.checksum_failures, 1);
    // A range in an untouched block is still served.
    let head = node
        .client
        .get_range(&id, ReadRange::Inclusive { first: 0, last: 99 })
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&head[..], &pattern(100)[..]);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_found_mid_stream_aborts_the_body_and_the_client_never_accepts_it() {
    // A small verify-before-response window forces the streaming path.
    let node = RunningNode::start(|config| {
        config.verify_before_response_bytes = MIB;
        config.read_chunk_bytes = MIB;
    })
    .await;
    let id = random_id();
    let bytes = pattern(6 * MIB);
    node.put(&id, &bytes).await;
    flip_payload_byte(&node.fragment_path(&id), 4 * MIB + 3);

    let mut stream = node.client.get(&id).await.unwrap();
    let mut received = Vec::new();
    let mut failed = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => received.extend_from_slice(&chunk),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the stream must end in an error");
    // Everything received before the error is a verified prefix of the fragment.
    assert!(received.len() <= 4 * MIB as usize);
    assert_eq!(&received[..], &bytes[..received.len()]);
    let metrics = reqwest_metrics(&node).await;
    assert!(
        metrics.contains("shardlet_node_checksum_failures_total 1"),
        "{metrics}"
    );
    node.stop().await;
}

async fn reqwest_metrics(node: &RunningNode) -> String {
    let url = format!("{}/metrics", node.client.base_url());
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_maps_node_errors_onto_typed_errors() {
    let node = RunningNode::start(|config| config.max_fragment_bytes = 1000).await;
    let id = random_id();
    assert!(matches!(
        node.client.get(&id).await.err(),
        Some(ClientError::NotFound)
    ));
    assert!(matches!(
        node.client.head(&id).await,
        Err(ClientError::NotFound)
    ));
    node.client.delete(&id).await.unwrap();
    let too_large = node.client.put(&id, Bytes::from(pattern(1001))).await;
    assert!(
        matches!(too_large, Err(ClientError::TooLarge(_))),
        "{too_large:?}"
    );
    node.put(&id, &pattern(10)).await;
    let unsatisfiable = node
        .client
        .get_range(&id, ReadRange::From { first: 10 })
        .await;
    assert!(matches!(
        unsatisfiable.err(),
        Some(ClientError::RangeNotSatisfiable(_))
    ));

    let url = node.client.base_url().to_string();
    let stranger = NodeClient::new(&url, node_key("another-secret-0123456789")).unwrap();
    assert!(matches!(
        stranger.head(&id).await,
        Err(ClientError::Unauthorized(_))
    ));
    let page = node.client.list(None, None).await.unwrap();
    assert_eq!(page.fragments.len(), 1);
    assert_eq!(page.next_after, None);
    node.stop().await;

    let refused = NodeClient::new(&url, node_key(ROOT))
        .unwrap()
        .head(&id)
        .await;
    assert!(
        matches!(refused, Err(ClientError::Unavailable(_))),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reserve_refuses_writes_but_not_reads() {
    let node = RunningNode::start(|config| config.reserve_bytes = u64::MAX / 2).await;
    let id = random_id();
    let refused = node.client.put(&id, Bytes::from(pattern(10))).await;
    assert!(
        matches!(refused, Err(ClientError::InsufficientStorage(_))),
        "{refused:?}"
    );
    assert!(matches!(
        node.client.head(&id).await,
        Err(ClientError::NotFound)
    ));
    let health = node.client.health().await.unwrap();
    assert!(health.disk.capacity_bytes > 0);
    assert_eq!(health.disk.reserve_bytes, u64::MAX / 2);
    node.stop().await;
}
