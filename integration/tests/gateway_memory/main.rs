//! The write path's memory bound, measured on a real cluster: `shardlet dev` (metadata
//! member, 12 storage nodes, gateway — all real processes) takes a 1 GiB single PUT,
//! and the gateway's peak RSS (VmHWM in /proc/PID/status) must not grow by more than
//! 64 MiB. The object is then read back whole and its MD5 compared with the ETag.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::StreamExt;
use shardlet_testkit::s3_client::signature_headers;
use shardlet_testkit::{pattern_bytes, shardlet_binary, DevCluster};

const OBJECT_BYTES: u64 = 1 << 30;
const CHUNK_BYTES: usize = 1 << 20;
const PEAK_GROWTH_BYTES_MAX: u64 = 64 << 20;

fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_gib_put_raises_gateway_peak_memory_by_at_most_64_mib() {
    let dev = DevCluster::start(&shardlet_binary!()).await;
    let gateway_pid = dev.component_pid("gateway");
    let endpoint = dev.access.endpoint.as_str();
    let signed_headers = |method: &str, url: &str| signature_headers(&dev.access, method, url, &[]);
    let http = reqwest::Client::new();

    let bucket_url = format!("{endpoint}/memory");
    let mut request = http.put(&bucket_url);
    for (name, value) in signed_headers("PUT", &bucket_url) {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert!(
        response.status().is_success(),
        "CreateBucket: {}",
        response.text().await.unwrap()
    );

    let before = peak_rss_bytes(gateway_pid);
    let object_url = format!("{bucket_url}/one-gib");
    let chunks = OBJECT_BYTES / CHUNK_BYTES as u64;
    let body = futures::stream::iter(0..chunks)
        .map(|index| Ok::<_, std::io::Error>(pattern_bytes(CHUNK_BYTES, index)));
    let mut request = http
        .put(&object_url)
        .header("content-length", OBJECT_BYTES)
        .body(reqwest::Body::wrap_stream(body));
    for (name, value) in signed_headers("PUT", &object_url) {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let etag = response
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string());
    assert!(
        status.is_success(),
        "PutObject: {status} {}",
        response.text().await.unwrap()
    );
    let after = peak_rss_bytes(gateway_pid);
    let growth = after.saturating_sub(before);
    println!("gateway VmHWM before {before} bytes, after {after} bytes, growth {growth} bytes");
    assert!(
        growth <= PEAK_GROWTH_BYTES_MAX,
        "peak RSS grew by {growth} bytes during a 1 GiB PUT"
    );

    // Read it back whole: same length, and the MD5 of what came back is the ETag.
    let mut request = http.get(&object_url);
    for (name, value) in signed_headers("GET", &object_url) {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut md5 = md5_hasher();
    let mut received = 0u64;
    let mut stream = response.bytes_stream();
    while let Some(bytes) = stream.next().await {
        let bytes = bytes.unwrap();
        received += bytes.len() as u64;
        md5.update(&bytes);
    }
    assert_eq!(received, OBJECT_BYTES);
    assert_eq!(etag.unwrap().trim_matches('"'), hex::encode(md5.finish()));
}

fn md5_hasher() -> shardlet_gateway::object::etag::EtagHasher {
    shardlet_gateway::object::etag::EtagHasher::default()
}
