//! fsyncgate with a real fault: the node's data directory on a file system whose
//! writeback fails ([`FaultyDisk`]: ext4 on a loop device over a full tmpfs). The first
//! failed fsync must stop every later write, be reported, and never turn into an
//! acknowledgement; every acknowledged fragment must still read back.

use shardlet_testkit::{metric_total, pattern_bytes, random_fragment_id, shardlet_binary};
use shardlet_testkit::{FaultyDisk, NodeOptions, NodeProcess};

/// The tmpfs behind the disk image: writeback fails once about this much has reached
/// the "device" (mkfs takes a few hundred KiB of it).
const BACKING_BYTES: u64 = 6 * 1024 * 1024;
/// What the file system believes it has: far more than the backing, so writes are
/// accepted into the page cache and only their fsync fails.
const IMAGE_BYTES: u64 = 64 * 1024 * 1024;
/// PUTs attempted at most: 40 MB, several times what the backing holds.
const PUTS_MAX: usize = 200;

/// The faulty disk, or `None` (and a loud line) where it cannot be made: the test then
/// proves nothing, so it says so. CI runs as root on a kernel with loop devices.
fn faulty_disk_or_skip(test: &str) -> Option<FaultyDisk> {
    match FaultyDisk::create(BACKING_BYTES, IMAGE_BYTES) {
        Ok(disk) => Some(disk),
        Err(reason) => {
            shardlet_binary!().skipped(test, &format!("no faulty disk here: {reason}"));
            None
        }
    }
}

/// Files: 200 KiB fragments go through the page cache into files (below the O_DIRECT
/// size); the first failure is a file's `fdatasync` or a directory's `fsync`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_file_fsync_stops_every_write_and_every_acknowledged_fragment_reads_back() {
    fill_until_an_fsync_fails(
        "a_failed_file_fsync_stops_every_write_and_every_acknowledged_fragment_reads_back",
        |_| 200_000,
    )
    .await;
}

/// The small-fragment store: every fourth fragment of 30 KiB goes to RocksDB, whose
/// synced log write is the first to fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_small_store_sync_stops_every_write_and_every_acknowledged_fragment_reads_back() {
    fill_until_an_fsync_fails(
        "a_failed_small_store_sync_stops_every_write_and_every_acknowledged_fragment_reads_back",
        |number| if number % 4 == 3 { 30_000 } else { 200_000 },
    )
    .await;
}

/// PUTs fragments of `size(number)` bytes onto a faulty disk until one is refused for a
/// failed sync, then checks that writes stay refused, the refusal is reported, and
/// every acknowledged fragment reads back.
async fn fill_until_an_fsync_fails(test: &str, size: fn(usize) -> usize) {
    let Some(disk) = faulty_disk_or_skip(test) else {
        return;
    };
    // Declared after the disk: dropped (killed) before the disk is unmounted.
    let node = NodeProcess::start(
        &shardlet_binary!(),
        NodeOptions {
            parent_dir: Some(disk.mount_point.clone()),
            ..NodeOptions::default()
        },
    )
    .await;
    let client = node.client();
    let (ready, body) = client.ready().await;
    assert_eq!(
        ready, 200,
        "a node on a disk that still writes is ready: {body}"
    );

    let mut acknowledged: Vec<(String, Vec<u8>)> = Vec::new();
    let mut refused: Option<(String, Vec<u8>, serde_json::Value)> = None;
    let mut other_failures = Vec::new();
    for number in 0..PUTS_MAX {
        let id = random_fragment_id();
        let bytes = pattern_bytes(size(number), number as u64);
        let response = client.put(&id, &bytes).await;
        match response.status {
            200 | 201 => acknowledged.push((id, bytes)),
            503 if response.error_code() == "writes_refused" => {
                refused = Some((id, bytes, response.json()));
                break;
            }
            status => other_failures.push(format!(
                "{id}: {status} {}",
                String::from_utf8_lossy(&response.body)
            )),
        }
    }
    let (failed_id, failed_bytes, refusal) = refused.unwrap_or_else(|| {
        panic!(
            "no PUT was refused for a failed fsync after {PUTS_MAX} ({} acknowledged, \
             other failures: {other_failures:?})\n{}",
            acknowledged.len(),
            node.log_text()
        )
    });
    assert!(
        other_failures.is_empty(),
        "before the fence, writes only succeed: {other_failures:?}"
    );
    let message = refusal["message"].as_str().unwrap_or_default().to_string();
    assert!(
        message.contains("fsync") || message.contains("synced"),
        "the refusal names the failure: {refusal}"
    );
    assert!(
        !acknowledged.is_empty(),
        "some writes succeeded before the backing filled up"
    );

    // Sticky: a new write, the retry of the refused one, and a delete are all refused
    // (the retry must not find the cached file and answer "already stored").
    for (what, response) in [
        (
            "a new PUT",
            client
                .put(&random_fragment_id(), &pattern_bytes(1000, 1))
                .await,
        ),
        (
            "the retry of the refused PUT",
            client.put(&failed_id, &failed_bytes).await,
        ),
        (
            "a DELETE of an acknowledged fragment",
            client.delete(&acknowledged[0].0).await,
        ),
    ] {
        assert_eq!(
            (response.status, response.error_code().as_str()),
            (503, "writes_refused"),
            "{what}: {}",
            String::from_utf8_lossy(&response.body)
        );
    }
    assert_eq!(
        client.get(&failed_id).await.status,
        404,
        "the fragment whose sync failed is not served as stored"
    );

    // Reported: /health, the gauge, the counter, one loud log line.
    let health = client.health().await;
    let reason = health["writes_refused"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(!reason.is_empty(), "/health reports the refusal: {health}");
    // Live (it serves reads) but not ready (it takes no writes).
    let (ready, body) = client.ready().await;
    assert_eq!(ready, 503, "/ready after the fence tripped: {body}");
    assert_eq!(body["ready"], false);
    assert!(
        body["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("writes are refused"),
        "{body}"
    );
    let metrics = client.metrics().await;
    assert_eq!(
        metric_total(&metrics, "shardlet_node_writes_refused"),
        Some(1.0)
    );
    assert!(metric_total(&metrics, "shardlet_node_fsync_failures_total").unwrap_or(0.0) >= 1.0);
    assert_eq!(
        node.log_text().matches("FSYNC FAILED").count(),
        1,
        "logged once, loudly"
    );

    // Reads go on: every acknowledged fragment reads back identical.
    let mut lost = Vec::new();
    for (id, bytes) in &acknowledged {
        let response = client.get(id).await;
        if response.status != 200 || &response.body != bytes {
            lost.push(format!("{id}: {}", response.status));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged fragments do not read back: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
    println!(
        "{test}: {} PUTs acknowledged before the first failed fsync ({reason}); all read back",
        acknowledged.len()
    );
}
