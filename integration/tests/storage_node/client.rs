//! The product's own `NodeClient` (what the gateway and controller will use) against a
//! real node process: outcomes and typed errors, and that a caller draining a GET never
//! accepts rotten bytes as a good fragment.

use bytes::Bytes;
use futures::StreamExt;
use shardlet_auth::{ClusterSecret, KeyName, SigningKey};
use shardlet_core::{Crc32c, FragmentId};
use shardlet_node::client::{ClientError, NodeClient, PutOutcome, ReadRange};

use shardlet_testkit::{
    pattern_bytes, random_fragment_id, shardlet_binary, NodeOptions, NodeProcess,
};

const BLOCK: usize = 64 * 1024;

/// The product's client of `node`, signing with the node's key derived from `secret`.
fn client_for(node: &NodeProcess, secret: &str) -> NodeClient {
    let root = ClusterSecret::new(secret).expect("a valid secret");
    let name = KeyName::Node(shardlet_auth::NodeName::parse(&node.options.name()).unwrap());
    let key = SigningKey::new(name, root.derive(name));
    NodeClient::new(&format!("http://{}", node.address), key).expect("a client")
}

fn new_id() -> FragmentId {
    random_fragment_id().parse().unwrap()
}

/// Drains a GET; returns the bytes received and the error that ended it, if any.
async fn drain(client: &NodeClient, id: &FragmentId) -> (Vec<u8>, Option<ClientError>) {
    let mut stream = match client.get(id).await {
        Ok(stream) => stream,
        Err(error) => return (Vec::new(), Some(error)),
    };
    let mut received = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => received.extend_from_slice(&bytes),
            Err(error) => return (received, Some(error)),
        }
    }
    (received, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_client_round_trip_and_typed_errors_against_a_real_node() {
    let mut node = NodeProcess::start(&shardlet_binary!(), NodeOptions::default()).await;
    let client = client_for(&node, &node.secret);
    let id = new_id();
    let bytes = Bytes::from(pattern_bytes(2 * BLOCK + 3, 1));

    assert_eq!(
        client.put(&id, bytes.clone()).await.unwrap(),
        PutOutcome::Created
    );
    assert_eq!(
        client.put(&id, bytes.clone()).await.unwrap(),
        PutOutcome::AlreadyStored
    );
    let other = Bytes::from(pattern_bytes(10, 2));
    assert!(matches!(
        client.put(&id, other).await,
        Err(ClientError::FragmentExists(_))
    ));

    let stream = client.get(&id).await.unwrap();
    assert_eq!(stream.info.length, bytes.len() as u64);
    assert_eq!(stream.info.crc32c, Crc32c::of(&bytes));
    assert_eq!(stream.bytes().await.unwrap(), bytes);
    let info = client.head(&id).await.unwrap();
    assert_eq!(
        (info.length, info.crc32c),
        (bytes.len() as u64, Crc32c::of(&bytes))
    );
    let ranges = [
        (
            ReadRange::Inclusive {
                first: BLOCK as u64 - 2,
                last: BLOCK as u64 + 1,
            },
            BLOCK - 2..BLOCK + 2,
        ),
        (
            ReadRange::From {
                first: 2 * BLOCK as u64,
            },
            2 * BLOCK..bytes.len(),
        ),
        (
            ReadRange::Suffix { length: 5 },
            bytes.len() - 5..bytes.len(),
        ),
    ];
    for (range, expected) in ranges {
        let read = client
            .get_range(&id, range)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(read, bytes.slice(expected), "{range:?}");
    }
    assert!(matches!(
        client
            .get_range(
                &id,
                ReadRange::From {
                    first: bytes.len() as u64
                }
            )
            .await,
        Err(ClientError::RangeNotSatisfiable(_))
    ));

    // A streamed upload with the length and CRC known up front.
    let streamed_id = new_id();
    let streamed = pattern_bytes(3 * BLOCK + 1, 3);
    let chunks: Vec<Result<Bytes, std::io::Error>> = streamed
        .chunks(10_000)
        .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
        .collect();
    let outcome = client
        .put_stream(
            &streamed_id,
            streamed.len() as u64,
            Crc32c::of(&streamed),
            futures::stream::iter(chunks),
        )
        .await
        .unwrap();
    assert_eq!(outcome, PutOutcome::Created);
    assert_eq!(
        client
            .get(&streamed_id)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        streamed
    );

    let page = client.list(None, Some(1)).await.unwrap();
    assert_eq!(page.fragments.len(), 1);
    let rest = client.list(page.next_after.as_ref(), None).await.unwrap();
    let mut listed: Vec<FragmentId> = page
        .fragments
        .iter()
        .chain(&rest.fragments)
        .map(|f| f.id)
        .collect();
    let mut expected = vec![id, streamed_id];
    expected.sort();
    listed.dedup();
    assert_eq!(listed, expected);

    let intruder = client_for(&node, "a-different-cluster-secret");
    assert!(matches!(
        intruder.head(&id).await,
        Err(ClientError::Unauthorized(_))
    ));
    assert!(matches!(
        intruder.put(&new_id(), Bytes::from_static(b"x")).await,
        Err(ClientError::Unauthorized(_))
    ));

    client.delete(&id).await.unwrap();
    client.delete(&id).await.unwrap();
    assert!(matches!(client.get(&id).await, Err(ClientError::NotFound)));
    assert!(matches!(client.head(&id).await, Err(ClientError::NotFound)));

    // Down: a typed "unavailable", not a hang. Full: a typed "insufficient storage".
    node.kill_9();
    assert!(matches!(
        client.put(&new_id(), Bytes::from_static(b"x")).await,
        Err(ClientError::Unavailable(_))
    ));
    let capacity = {
        let stats = rustix::fs::statvfs(node.root.path()).unwrap();
        stats.f_blocks * stats.f_frsize
    };
    node.options.reserve_bytes = Some(capacity);
    node.restart().await;
    assert!(matches!(
        client.put(&new_id(), Bytes::from_static(b"x")).await,
        Err(ClientError::InsufficientStorage(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_client_never_accepts_rotten_bytes() {
    let node = NodeProcess::start(&shardlet_binary!(), NodeOptions::default()).await;
    let client = client_for(&node, &node.secret);
    // Small (rot found before the headers go out) and large (rot found mid-stream).
    for (length, rotten_offset) in [(2 * BLOCK, 10), (8 * 1024 * 1024, 7 * 1024 * 1024 + 5)] {
        let id = new_id();
        let bytes = pattern_bytes(length, length as u64);
        client.put(&id, Bytes::from(bytes.clone())).await.unwrap();
        let path = node.fragment_path(&id.to_string());
        let mut file = std::fs::read(&path).unwrap();
        let header = file.len() - length - 4 * length.div_ceil(BLOCK);
        file[header + rotten_offset] ^= 0x80;
        std::fs::write(&path, &file).unwrap();

        let (received, error) = drain(&client, &id).await;
        let error = error.unwrap_or_else(|| {
            panic!("a GET over rot at {rotten_offset} of {length} bytes ended without an error")
        });
        assert!(
            received.len() <= rotten_offset - rotten_offset % BLOCK,
            "only verified blocks before the rot were delivered ({} bytes)",
            received.len()
        );
        assert!(
            received == bytes[..received.len()],
            "delivered bytes are the original's"
        );
        if received.is_empty() {
            assert!(
                matches!(error, ClientError::ChecksumMismatch(_)),
                "rot found before the headers is a typed checksum error, got {error:?}"
            );
        }
    }
}
