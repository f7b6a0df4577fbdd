//! The machine's loopback TCP limit, measured beside each S3/node/repair benchmark so its
//! results read as ratios. One stream, 1 MiB writes, TCP_NODELAY, sender and receiver in
//! this process (so they share the cores exactly as a client and a server here do).

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHUNK_BYTES: usize = 1024 * 1024;

/// Best of `trials` transfers of `total_bytes`, in bytes per second: the limit is a
/// maximum, so a burst of other work on the shared cores lowers it as little as possible.
pub async fn loopback_bytes_per_second(total_bytes: u64, trials: usize) -> f64 {
    let mut best: f64 = 0.0;
    for _ in 0..trials.max(1) {
        best = best.max(one_transfer(total_bytes).await);
    }
    best
}

async fn one_transfer(total_bytes: u64) -> f64 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback listener");
    let address = listener.local_addr().expect("its address");
    let receiver = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("the sender connects");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let mut buffer = vec![0u8; CHUNK_BYTES];
        let mut received = 0u64;
        while received < total_bytes {
            let read = stream.read(&mut buffer).await.expect("loopback read");
            assert!(read > 0, "loopback sender closed early");
            received += read as u64;
        }
    });
    let mut sender = tokio::net::TcpStream::connect(address)
        .await
        .expect("loopback connect");
    sender.set_nodelay(true).expect("TCP_NODELAY");
    let chunk = vec![0x5au8; CHUNK_BYTES];
    let begin = Instant::now();
    let mut sent = 0u64;
    while sent < total_bytes {
        sender.write_all(&chunk).await.expect("loopback write");
        sent += chunk.len() as u64;
    }
    receiver.await.expect("the receiver finished");
    total_bytes as f64 / begin.elapsed().as_secs_f64()
}
