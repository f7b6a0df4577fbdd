//! Free TCP ports on loopback, for processes that need a port fixed before they start
//! (`shardlet dev`'s topology names its ports; etcd's peers name each other). Processes
//! that can bind port 0 and announce the port do so instead, which cannot race.

use std::net::TcpListener;

/// How many candidate runs [`free_port_run`] tries before it gives up.
const ATTEMPTS_MAX: usize = 1000;

/// A port nobody listens on right now (another process may take it before the caller
/// binds it; a start-up then fails loudly rather than silently).
pub fn free_port() -> u16 {
    free_port_run(1)
}

/// The first of `count` consecutive ports nobody listens on right now.
pub fn free_port_run(count: u16) -> u16 {
    for _ in 0..ATTEMPTS_MAX {
        let base = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("an ephemeral port");
        if base > u16::MAX - count {
            continue;
        }
        let listeners: Vec<_> = (base..base + count)
            .map_while(|port| TcpListener::bind(("127.0.0.1", port)).ok())
            .collect();
        if listeners.len() == usize::from(count) {
            return base;
        }
    }
    panic!("no run of {count} free ports found in {ATTEMPTS_MAX} attempts");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_port_of_a_free_run_can_be_bound() {
        let base = free_port_run(12);
        let listeners: Vec<_> = (base..base + 12)
            .map(|port| TcpListener::bind(("127.0.0.1", port)))
            .collect();
        assert!(listeners.iter().all(Result::is_ok), "{listeners:?}");
    }
}
