//! The write path's memory bound, measured on a real cluster: `shardlet dev` (metadata
//! member, 12 storage nodes, gateway — all real processes) takes a 1 GiB single PUT,
//! and the gateway's peak RSS (VmHWM in /proc/PID/status) must not grow by more than
//! 64 MiB. The object is then read back whole and its MD5 compared with the ETag.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use futures::StreamExt;

const OBJECT_BYTES: u64 = 1 << 30;
const CHUNK_BYTES: usize = 1 << 20;
const PEAK_GROWTH_BYTES_MAX: u64 = 64 << 20;
const START_DEADLINE: Duration = Duration::from_secs(120);

/// `shardlet dev`, stopped with SIGTERM (then SIGKILL) when dropped.
struct Dev {
    child: Child,
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let give_up = Instant::now() + Duration::from_secs(30);
        while Instant::now() < give_up {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on now, and for a run of `count` ports after it.
fn free_ports(count: u16) -> u16 {
    loop {
        let base = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if base > u16::MAX - count {
            continue;
        }
        if (base..base + count).all(|port| TcpListener::bind(("127.0.0.1", port)).is_ok()) {
            return base;
        }
    }
}

fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn signed_headers(method: &str, url: &str, access: &str, secret: &str) -> Vec<(String, String)> {
    let identity = Credentials::new(access, secret, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let request = SignableRequest::new(
        method,
        url,
        std::iter::empty(),
        SignableBody::UnsignedPayload,
    )
    .unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    let (headers, _) = instructions.into_parts();
    headers
        .into_iter()
        .map(|h| (h.name().to_string(), h.value().to_string()))
        .collect()
}

/// Deterministic, incompressible-enough bytes for chunk `index`.
fn chunk(index: u64) -> Vec<u8> {
    let mut state = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..CHUNK_BYTES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn start_dev(data: &Path) -> (Dev, String, String, String) {
    let s3_port = free_ports(1);
    let meta_port = free_ports(1);
    let node_base = free_ports(12);
    let controller_port = free_ports(1);
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardlet"))
        .args(["dev", "--data"])
        .arg(data)
        .args(["--s3-port", &s3_port.to_string()])
        .args(["--meta-port", &meta_port.to_string()])
        .args(["--node-base-port", &node_base.to_string()])
        .args(["--controller-port", &controller_port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let dev = Dev { child };
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut endpoint = None;
    let mut access = None;
    let mut secret = None;
    let give_up = Instant::now() + START_DEADLINE;
    while endpoint.is_none() || access.is_none() || secret.is_none() {
        let remaining = give_up.saturating_duration_since(Instant::now());
        let line = receiver
            .recv_timeout(remaining)
            .expect("shardlet dev printed its credentials in time");
        if let Some(value) = line.strip_prefix("export AWS_ENDPOINT_URL=") {
            endpoint = Some(value.to_string());
        } else if let Some(value) = line.strip_prefix("export AWS_ACCESS_KEY_ID=") {
            access = Some(value.to_string());
        } else if let Some(value) = line.strip_prefix("export AWS_SECRET_ACCESS_KEY=") {
            secret = Some(value.to_string());
        }
    }
    (dev, endpoint.unwrap(), access.unwrap(), secret.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_gib_put_raises_gateway_peak_memory_by_at_most_64_mib() {
    let data = tempfile::tempdir().unwrap();
    let (_dev, endpoint, access, secret) = start_dev(data.path());
    let gateway_pid: u32 = std::fs::read_to_string(data.path().join("logs/gateway.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let http = reqwest::Client::new();

    let bucket_url = format!("{endpoint}/memory");
    let mut request = http.put(&bucket_url);
    for (name, value) in signed_headers("PUT", &bucket_url, &access, &secret) {
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
    let body = futures::stream::iter(0..chunks).map(|index| Ok::<_, std::io::Error>(chunk(index)));
    let mut request = http
        .put(&object_url)
        .header("content-length", OBJECT_BYTES)
        .body(reqwest::Body::wrap_stream(body));
    for (name, value) in signed_headers("PUT", &object_url, &access, &secret) {
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
    for (name, value) in signed_headers("GET", &object_url, &access, &secret) {
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

fn md5_hasher() -> shardlet_gateway::etag::EtagHasher {
    shardlet_gateway::etag::EtagHasher::default()
}
