//! Crashes, bit rot and shutdown: what was acknowledged stays, what rotted is never
//! served, and a stop is clean.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shardlet_testkit::raw_http::{self, Request};
use shardlet_testkit::{
    files_under, metric_total, pattern_bytes, put_request, random_fragment_id, shardlet_binary,
    wait_until, NodeOptions, NodeProcess,
};

const BLOCK: usize = 64 * 1024;
const WRITERS: u64 = 32;
/// Bounds the stream even if the node never gets killed.
const PUTS_PER_WRITER_MAX: u64 = 2_000;
/// The node is killed once this many puts were acknowledged, while writers still run.
const ACKNOWLEDGED_BEFORE_KILL: usize = 300;

/// A put of the stream: its id, and the seed and size that determine its bytes.
#[derive(Clone, Copy, Debug)]
struct Attempt {
    seed: u64,
    size: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_puts_survive_kill_9() {
    let mut node = NodeProcess::start(&shardlet_binary!(), NodeOptions::default()).await;
    let client = node.client();
    let attempted: Arc<Mutex<HashMap<String, Attempt>>> = Arc::default();
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (client, attempted, acknowledged, stop) = (
            client.clone(),
            attempted.clone(),
            acknowledged.clone(),
            stop.clone(),
        );
        writers.push(tokio::spawn(async move {
            for number in 0..PUTS_PER_WRITER_MAX {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let seed = writer * PUTS_PER_WRITER_MAX + number;
                // Mostly small fragments, some spanning several blocks.
                let size = if number % 5 == 0 {
                    3 * BLOCK + 11
                } else {
                    1 + (seed as usize * 37) % 9000
                };
                let id = random_fragment_id();
                let bytes = pattern_bytes(size, seed);
                attempted
                    .lock()
                    .unwrap()
                    .insert(id.clone(), Attempt { seed, size });
                let mut request = put_request(&id, &bytes);
                request
                    .headers
                    .extend(shardlet_testkit::signing::signature_headers(
                        &client.key(),
                        std::time::SystemTime::now(),
                        "PUT",
                        &client.address.to_string(),
                        &request.target,
                        &request.headers,
                        None,
                    ));
                match raw_http::send(client.address, &request).await {
                    Ok(response) if response.status == 201 => acknowledged.lock().unwrap().push(id),
                    Ok(response) => panic!("PUT answered {} before the crash", response.status),
                    // The node was killed: the stream ends here.
                    Err(_) => return,
                }
            }
        }));
    }

    wait_until(
        Duration::from_secs(120),
        "enough puts were acknowledged",
        || {
            let acknowledged = acknowledged.clone();
            async move { acknowledged.lock().unwrap().len() >= ACKNOWLEDGED_BEFORE_KILL }
        },
    )
    .await;
    node.kill_9();
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("a writer panicked");
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let attempted = attempted.lock().unwrap().clone();
    assert!(
        acknowledged.len() < attempted.len(),
        "the kill landed mid-stream (some puts were in flight)"
    );

    node.restart().await;
    let client = node.client();
    for id in &acknowledged {
        let attempt = attempted[id];
        let response = client.get(id).await;
        assert_eq!(response.status, 200, "acknowledged {id} survives kill -9");
        assert!(
            response.body == pattern_bytes(attempt.size, attempt.seed),
            "acknowledged {id} reads back intact"
        );
    }
    let mut unacknowledged_present = 0;
    for (id, attempt) in attempted
        .iter()
        .filter(|(id, _)| !acknowledged.contains(id))
    {
        let response = client.get(id).await;
        match response.status {
            404 => {}
            200 => {
                unacknowledged_present += 1;
                assert!(
                    response.body == pattern_bytes(attempt.size, attempt.seed),
                    "an unacknowledged {id} that exists is intact, never torn"
                );
            }
            status => panic!("GET {id} after the crash answered {status}"),
        }
    }
    // Everything the node lists after the crash is something we wrote, and intact.
    let listing = client
        .send(Request::new("GET", "/v1/fragments?limit=10000"))
        .await
        .json();
    let listed = listing["fragments"].as_array().expect("a fragments array");
    assert_eq!(listed.len(), acknowledged.len() + unacknowledged_present);
    for entry in listed {
        let id = entry["id"].as_str().unwrap();
        let attempt = attempted.get(id).expect("only written ids are listed");
        assert_eq!(entry["length"].as_u64(), Some(attempt.size as u64));
    }
    eprintln!(
        "kill -9 mid-stream: {} attempted, {} acknowledged (all intact), {} unacknowledged \
         present after restart (all intact)",
        attempted.len(),
        acknowledged.len(),
        unacknowledged_present
    );
    let leftovers = files_under(&node.data_dir.join("tmp"));
    assert!(leftovers.is_empty(), "start-up empties tmp/: {leftovers:?}");
    let health = client.health().await;
    assert_eq!(
        health["fragments"]["count"].as_u64(),
        Some(listed.len() as u64)
    );
}

/// Length of the file header, derived from the contract's layout (header | payload |
/// one u32 CRC per 64 KiB block) without knowing the header's fields.
fn header_length(file_length: u64, payload_length: u64) -> u64 {
    let blocks = payload_length.div_ceil(BLOCK as u64);
    file_length - payload_length - 4 * blocks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_on_disk_is_detected_and_never_served() {
    let node = NodeProcess::start(&shardlet_binary!(), NodeOptions::default()).await;
    let client = node.client();
    let id = random_fragment_id();
    let length = 4 * BLOCK + 10;
    let bytes = pattern_bytes(length, 99);
    assert_eq!(client.put(&id, &bytes).await.status, 201);

    let path = node.fragment_path(&id);
    let mut file = std::fs::read(&path).expect("the fragment file at the contract path");
    let header = header_length(file.len() as u64, length as u64) as usize;
    assert!(file.starts_with(b"SHFRAG"), "header starts with the magic");
    assert!(
        header > 6 && header <= 4096,
        "plausible header length {header}"
    );
    assert!(
        file[header..header + length] == bytes,
        "payload follows the header"
    );
    let rotten_offset = 2 * BLOCK + 5;
    file[header + rotten_offset] ^= 0x01;
    std::fs::write(&path, &file).unwrap();

    let metrics_before = metric_total(
        &client.metrics().await,
        "shardlet_node_checksum_failures_total",
    )
    .unwrap_or(0.0);
    let health_before = client.health().await["errors"]["checksum_failures"]
        .as_u64()
        .unwrap();

    // A read of the rotten block alone is refused before any byte is sent.
    let response = client.get_range(&id, "bytes=131072-131100").await;
    assert_eq!(
        response.status, 500,
        "a one-block range over rot is refused"
    );
    assert_eq!(response.error_code(), "checksum_mismatch");
    assert_eq!(
        response.header("x-shardlet-error"),
        Some("checksum_mismatch")
    );

    // The whole fragment: an error, or a stream aborted before the rotten block.
    let response = client.get(&id).await;
    eprintln!(
        "full GET over rot: status {}, {} bytes, complete: {}",
        response.status,
        response.body.len(),
        response.body_complete
    );
    if response.status == 500 {
        assert_eq!(response.error_code(), "checksum_mismatch");
    } else {
        assert_eq!(response.status, 200);
        assert!(
            !response.body_complete,
            "a full GET over rot never completes"
        );
        assert!(
            response.body.len() <= rotten_offset && response.body == bytes[..response.body.len()],
            "only verified bytes before the rotten block were sent"
        );
    }

    // Untouched blocks are still served.
    let healthy = client.get_range(&id, "bytes=0-65535").await;
    assert_eq!(healthy.status, 206);
    assert!(healthy.body == bytes[..BLOCK]);
    let tail = client
        .get_range(&id, &format!("bytes={}-", 3 * BLOCK))
        .await;
    assert_eq!(tail.status, 206);
    assert!(tail.body == bytes[3 * BLOCK..]);
    assert_eq!(
        client.head(&id).await.status,
        200,
        "HEAD does not read the payload"
    );

    wait_until(
        Duration::from_secs(10),
        "/metrics counts the failures",
        || {
            let client = client.clone();
            async move {
                let text = client.metrics().await;
                metric_total(&text, "shardlet_node_checksum_failures_total").unwrap_or(0.0)
                    >= metrics_before + 1.0
            }
        },
    )
    .await;
    client
        .wait_for_health(
            Duration::from_secs(10),
            "/health counts the failures",
            |health| health["errors"]["checksum_failures"].as_u64().unwrap() > health_before,
        )
        .await;

    // Repair path: uploading the good bytes again replaces the rotten copy.
    let repaired = client.put(&id, &bytes).await.status;
    assert!(
        repaired == 201 || repaired == 200,
        "re-upload over rot, got {repaired}"
    );
    let response = client.get(&id).await;
    assert_eq!(response.status, 200);
    assert!(
        response.body_complete && response.body == bytes,
        "the repaired copy is whole"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_node_cleanly() {
    let mut node = NodeProcess::start(&shardlet_binary!(), NodeOptions::default()).await;
    let id = random_fragment_id();
    let bytes = pattern_bytes(10_000, 1);
    assert_eq!(node.client().put(&id, &bytes).await.status, 201);
    let status = node.terminate(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean stop: {status}");
    node.restart().await;
    assert!(
        node.client().get(&id).await.body == bytes,
        "data kept across the stop"
    );
}
