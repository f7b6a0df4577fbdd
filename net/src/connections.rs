//! The table of a server's open connections and the rule that keeps a port usable at its
//! connection limit.
//!
//! A connection is *busy* from the moment hyper hands a request head to the service
//! until the response body is finished (or dropped), and *idle* otherwise: in its TLS
//! handshake, waiting for its first request, trickling a request head, or kept alive
//! between requests. At the limit, a new connection makes room by evicting one idle
//! connection, chosen in this order:
//! 1. connections that have never had a request served, oldest first: a stranger who
//!    opened a socket and sends nothing (or one byte at a time) goes before any client
//!    that has used its connection;
//! 2. then kept-alive connections, the longest idle first.
//!
//! A busy connection is never evicted, so no request in progress is cut off, and neither
//! is one idle for less than `eviction_idle_min`: every connection, a legitimate
//! client's as much as an attacker's, gets at least that long to send its request head,
//! however fast strangers open new connections. (Without it, an attacker opening
//! connections in a tight loop would evict a client's new connection before its head
//! arrived.) When no connection can be evicted, the accept loop waits for one to finish
//! or to reach that age (backpressure, counted in `…_connections_waited_at_limit_total`)
//! and further clients wait in the listen backlog, in arrival order.
//!
//! Eviction and the start of a request race (a head can complete just as the connection
//! is chosen); the per-connection lock decides: a connection marked evicted never starts
//! a request, so a request that was cut off by eviction was never processed and is safe
//! for the client to retry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Every open connection of one server.
pub(crate) struct Connections {
    limit: usize,
    eviction_idle_min: Duration,
    table: Mutex<Table>,
    /// Signalled whenever a connection leaves the table (ended or evicted).
    slot_freed: Notify,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    entries: HashMap<u64, Arc<Entry>>,
}

pub(crate) struct Entry {
    state: Mutex<EntryState>,
    /// Signalled once when the connection is chosen for eviction.
    evict: Notify,
}

struct EntryState {
    in_flight: u32,
    served: bool,
    idle_since: Instant,
    evicted: bool,
}

/// What [`Connections::evict_one`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Eviction {
    Evicted,
    /// Nothing is evictable yet; the youngest idle connection becomes evictable then.
    NotBefore(Instant),
    /// Every connection is busy.
    NoneIdle,
}

/// Whether a request may start on a connection.
pub(crate) enum Start {
    Started(RequestGuard),
    /// The connection was evicted; the request must not be processed.
    Evicted,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these short locks leaves consistent data behind
    // (plain counters and flags), so a poisoned lock is still safe to use.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Connections {
    pub(crate) fn new(limit: usize, eviction_idle_min: Duration) -> Self {
        assert!(limit >= 1, "a server must accept at least one connection");
        Self {
            limit,
            eviction_idle_min,
            table: Mutex::new(Table::default()),
            slot_freed: Notify::new(),
        }
    }

    /// Registers a new connection if there is room, else `None`.
    pub(crate) fn try_admit(self: &Arc<Self>) -> Option<Slot> {
        let mut table = lock(&self.table);
        if table.entries.len() >= self.limit {
            return None;
        }
        let id = table.next_id;
        table.next_id += 1;
        let entry = Arc::new(Entry {
            state: Mutex::new(EntryState {
                in_flight: 0,
                served: false,
                idle_since: Instant::now(),
                evicted: false,
            }),
            evict: Notify::new(),
        });
        table.entries.insert(id, entry.clone());
        Some(Slot {
            connections: self.clone(),
            id,
            entry,
        })
    }

    /// Evicts one idle connection (see the module comment for which). The victim leaves
    /// the table at once, so its slot is free before its task has finished closing the
    /// socket.
    pub(crate) fn evict_one(&self) -> Eviction {
        self.evict_one_at(Instant::now())
    }

    fn evict_one_at(&self, now: Instant) -> Eviction {
        let mut table = lock(&self.table);
        // Lock order: the table, then one entry. A request starting or ending takes
        // only its entry's lock, so the state seen here can change between the scan
        // and the mark: the mark re-checks, and the scan runs again if it lost.
        loop {
            let mut victim: Option<(u64, (bool, Instant))> = None;
            let mut soonest: Option<Instant> = None;
            for (id, entry) in &table.entries {
                let state = lock(&entry.state);
                if state.in_flight > 0 || state.evicted {
                    continue;
                }
                let evictable_at = state.idle_since + self.eviction_idle_min;
                if evictable_at > now {
                    soonest = Some(soonest.map_or(evictable_at, |at| at.min(evictable_at)));
                    continue;
                }
                // `false` (never served) sorts before `true`, then the oldest idle first.
                let rank = (state.served, state.idle_since);
                if victim.as_ref().is_none_or(|(_, best)| rank < *best) {
                    victim = Some((*id, rank));
                }
            }
            let Some((id, _)) = victim else {
                return soonest.map_or(Eviction::NoneIdle, Eviction::NotBefore);
            };
            let Some(entry) = table.entries.get(&id).cloned() else {
                return Eviction::NoneIdle;
            };
            let mut state = lock(&entry.state);
            if state.in_flight > 0 {
                continue;
            }
            state.evicted = true;
            drop(state);
            table.entries.remove(&id);
            drop(table);
            entry.evict.notify_one();
            self.slot_freed.notify_waiters();
            return Eviction::Evicted;
        }
    }

    /// Completes when a connection leaves the table after this call (enable it before
    /// checking for room, so a slot freed in between is not missed).
    pub(crate) fn slot_freed(&self) -> tokio::sync::futures::Notified<'_> {
        self.slot_freed.notified()
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.table).entries.len()
    }
}

/// One connection's place in the table; leaving it (drop) frees the slot.
pub(crate) struct Slot {
    connections: Arc<Connections>,
    id: u64,
    entry: Arc<Entry>,
}

impl Slot {
    pub(crate) fn entry(&self) -> Arc<Entry> {
        self.entry.clone()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let removed = lock(&self.connections.table).entries.remove(&self.id);
        if removed.is_some() {
            self.connections.slot_freed.notify_waiters();
        }
    }
}

impl Entry {
    /// Marks the connection busy for one request, unless it was evicted.
    pub(crate) fn start_request(self: &Arc<Self>) -> Start {
        let mut state = lock(&self.state);
        if state.evicted {
            return Start::Evicted;
        }
        state.in_flight += 1;
        Start::Started(RequestGuard {
            entry: self.clone(),
        })
    }

    /// Completes once the connection has been chosen for eviction.
    pub(crate) async fn evicted(&self) {
        self.evict.notified().await;
    }
}

/// Held while a request is in progress (its handler and its response body).
pub(crate) struct RequestGuard {
    entry: Arc<Entry>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let mut state = lock(&self.entry.state);
        state.in_flight = state.in_flight.saturating_sub(1);
        state.served = true;
        state.idle_since = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn table(limit: usize) -> Arc<Connections> {
        Arc::new(Connections::new(limit, Duration::ZERO))
    }

    fn admitted(connections: &Arc<Connections>) -> Slot {
        connections.try_admit().expect("room for a connection")
    }

    #[test]
    fn a_full_table_admits_nobody_until_a_slot_is_freed() {
        let connections = table(2);
        let first = admitted(&connections);
        let _second = admitted(&connections);
        assert!(connections.try_admit().is_none());
        drop(first);
        assert!(connections.try_admit().is_some());
    }

    #[test]
    fn a_connection_that_never_served_a_request_is_evicted_before_a_used_one() {
        let connections = table(2);
        let used = admitted(&connections);
        let stranger = admitted(&connections);
        // The used connection is older and idle, but it has served a request.
        match used.entry().start_request() {
            Start::Started(guard) => drop(guard),
            Start::Evicted => panic!("not evicted"),
        }
        assert_eq!(connections.evict_one(), Eviction::Evicted);
        assert!(matches!(stranger.entry().start_request(), Start::Evicted));
        assert!(matches!(used.entry().start_request(), Start::Started(_)));
        assert_eq!(connections.len(), 1);
    }

    #[test]
    fn among_used_connections_the_longest_idle_goes_first() {
        let connections = table(3);
        let slots: Vec<Slot> = (0..3).map(|_| admitted(&connections)).collect();
        for index in [2, 0, 1] {
            match slots[index].entry().start_request() {
                Start::Started(guard) => drop(guard),
                Start::Evicted => panic!("not evicted"),
            }
        }
        assert_eq!(connections.evict_one(), Eviction::Evicted);
        assert!(matches!(slots[2].entry().start_request(), Start::Evicted));
    }

    #[test]
    fn a_busy_connection_is_never_evicted() {
        let connections = table(2);
        let busy = admitted(&connections);
        let _guard = match busy.entry().start_request() {
            Start::Started(guard) => guard,
            Start::Evicted => panic!("not evicted"),
        };
        let idle = admitted(&connections);
        assert_eq!(connections.evict_one(), Eviction::Evicted);
        assert!(matches!(idle.entry().start_request(), Start::Evicted));
        // Only the busy one is left: nothing can be evicted.
        assert_eq!(connections.evict_one(), Eviction::NoneIdle);
        assert_eq!(connections.len(), 1);
    }

    #[test]
    fn a_connection_younger_than_the_eviction_age_is_not_evicted() {
        let connections = Arc::new(Connections::new(1, Duration::from_secs(1)));
        let young = admitted(&connections);
        let opened = Instant::now();
        match connections.evict_one_at(opened) {
            Eviction::NotBefore(at) => assert!(at > opened),
            other => panic!("evicted a young connection: {other:?}"),
        }
        assert!(matches!(young.entry().start_request(), Start::Started(_)));
        assert_eq!(
            connections.evict_one_at(opened + Duration::from_secs(2)),
            Eviction::Evicted
        );
    }
}
