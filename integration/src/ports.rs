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

/// Lowest port this function hands out.
const FIXED_PORTS_LOW: u16 = 10_000;

/// The first port the kernel hands out for port 0 and outgoing connections
/// (`ip_local_port_range`), 32768 when it cannot be read.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// The first of `count` consecutive ports nobody listens on right now.
///
/// Chosen at random **below** the kernel's ephemeral range: a port in that range may be
/// taken at any moment by a parallel test's port-0 server or outgoing connection between
/// this check and the caller's bind (a `shardlet dev` test lost a node that way: "Address
/// already in use"). Below it only another caller of this function competes, and the
/// random base makes that unlikely.
pub fn free_port_run(count: u16) -> u16 {
    let high = ephemeral_low().max(FIXED_PORTS_LOW + 2 * count);
    for _ in 0..ATTEMPTS_MAX {
        let base = rand::random_range(FIXED_PORTS_LOW..high - count);
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
        assert!(
            base >= FIXED_PORTS_LOW && base + 12 <= ephemeral_low(),
            "{base}: not below the kernel's ephemeral range"
        );
        let listeners: Vec<_> = (base..base + 12)
            .map(|port| TcpListener::bind(("127.0.0.1", port)))
            .collect();
        assert!(listeners.iter().all(Result::is_ok), "{listeners:?}");
    }
}
