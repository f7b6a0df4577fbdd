//! A slowloris attacker for the port-hardening tests: many connections to one server,
//! some idle (connect, send nothing), some trickling a request head that never ends.
//! Whenever the server closes one, the attacker opens another, so the pressure lasts
//! until the [`Attack`] is dropped (or its own time bound runs out).
//!
//! It only ever connects to the address it is given: a server of the test on loopback.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// Pause between two bytes of a trickled head.
const TRICKLE_INTERVAL: Duration = Duration::from_millis(200);
/// Pause before reconnecting after the server closed a connection (or refused one): the
/// attack holds its connections open rather than churning them as fast as the machine
/// allows, which on 2 shared cores would test CPU exhaustion, not the server's
/// connection handling.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);
/// The attack stops by itself after this, even if the test forgets to drop it.
const ATTACK_DURATION_MAX: Duration = Duration::from_secs(300);

/// What the attacker observed.
#[derive(Default, Debug)]
pub struct AttackCounts {
    /// Connections the attacker opened.
    pub opened: AtomicU64,
    /// Idle connections the server closed (read returned end of stream or an error).
    pub idle_closed_by_server: AtomicU64,
    /// Trickling connections the server closed before the head was complete.
    pub trickling_closed_by_server: AtomicU64,
    /// Answers the server sent to a trickling connection (it never should: the head
    /// never completes).
    pub trickling_answered: AtomicU64,
}

/// A running attack on one server; dropping it stops every attacking task.
pub struct Attack {
    pub target: SocketAddr,
    pub counts: Arc<AttackCounts>,
    tasks: JoinSet<()>,
}

impl Attack {
    /// Starts `idle` idle and `trickling` trickling connections to `target`.
    pub fn start(target: SocketAddr, idle: usize, trickling: usize) -> Self {
        let counts = Arc::new(AttackCounts::default());
        let mut tasks = JoinSet::new();
        let stop_at = tokio::time::Instant::now() + ATTACK_DURATION_MAX;
        for _ in 0..idle {
            tasks.spawn(idle_connections(target, counts.clone(), stop_at));
        }
        for _ in 0..trickling {
            tasks.spawn(trickling_connections(target, counts.clone(), stop_at));
        }
        Self {
            target,
            counts,
            tasks,
        }
    }

    pub fn idle_closed_by_server(&self) -> u64 {
        self.counts.idle_closed_by_server.load(Ordering::SeqCst)
    }

    pub fn trickling_closed_by_server(&self) -> u64 {
        self.counts
            .trickling_closed_by_server
            .load(Ordering::SeqCst)
    }

    pub fn trickling_answered(&self) -> u64 {
        self.counts.trickling_answered.load(Ordering::SeqCst)
    }
}

impl Drop for Attack {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

async fn connect(
    target: SocketAddr,
    counts: &AttackCounts,
    stop_at: tokio::time::Instant,
) -> Option<TcpStream> {
    while tokio::time::Instant::now() < stop_at {
        match TcpStream::connect(target).await {
            Ok(stream) => {
                counts.opened.fetch_add(1, Ordering::SeqCst);
                return Some(stream);
            }
            Err(_) => tokio::time::sleep(RECONNECT_PAUSE).await,
        }
    }
    None
}

/// Connects, sends nothing, waits for the server to hang up; again.
async fn idle_connections(
    target: SocketAddr,
    counts: Arc<AttackCounts>,
    stop_at: tokio::time::Instant,
) {
    while let Some(mut stream) = connect(target, &counts, stop_at).await {
        let mut buffer = [0u8; 512];
        loop {
            match tokio::time::timeout_at(stop_at, stream.read(&mut buffer)).await {
                Err(_) => return,
                Ok(Ok(0)) | Ok(Err(_)) => break,
                // An answer to nothing (a 408, or a 503 from an eviction): keep reading
                // until the server closes.
                Ok(Ok(_)) => continue,
            }
        }
        counts.idle_closed_by_server.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
}

/// Connects, sends a request line and then one header byte at a time, forever; counts
/// the server hanging up; again.
async fn trickling_connections(
    target: SocketAddr,
    counts: Arc<AttackCounts>,
    stop_at: tokio::time::Instant,
) {
    while let Some(mut stream) = connect(target, &counts, stop_at).await {
        let mut buffer = [0u8; 512];
        let mut closed = stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: target\r\nX-Slow: ")
            .await
            .is_err();
        while !closed {
            if tokio::time::Instant::now() >= stop_at {
                return;
            }
            match tokio::time::timeout(TRICKLE_INTERVAL, stream.read(&mut buffer)).await {
                // Nothing from the server: one more byte.
                Err(_) => closed = stream.write_all(b"a").await.is_err(),
                Ok(Ok(0)) | Ok(Err(_)) => closed = true,
                Ok(Ok(_)) => {
                    counts.trickling_answered.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        counts
            .trickling_closed_by_server
            .fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
}
