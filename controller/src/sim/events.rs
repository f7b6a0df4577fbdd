//! The event queue: what happens next in virtual time. Events are popped in time
//! order, ties in the order they were pushed (a sequence number), so a run is a pure
//! function of its seed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

pub(super) const MS_PER_HOUR: u64 = 3_600_000;
pub(super) const MS_PER_DAY: u64 = 24 * MS_PER_HOUR;
pub(super) const MS_PER_YEAR: f64 = 365.25 * MS_PER_DAY as f64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Event {
    NodeFail {
        node: u32,
        permanent: bool,
        outage: bool,
        downtime_ms: u64,
    },
    NodeReturn {
        node: u32,
        wiped: bool,
        natural: bool,
    },
    DetectorTick,
    Popularity {
        shardlet: u32,
    },
    Evaluate {
        shardlet: u32,
    },
    RepairDone {
        shardlet: u32,
    },
    BackgroundDone {
        shardlet: u32,
    },
    RiskAlarm {
        node: u32,
        false_alarm: bool,
    },
    RiskClear {
        node: u32,
    },
    Evacuate {
        node: u32,
    },
    ZoneOutage,
    Sample,
}

/// Time-ordered events up to the end of the run; later ones are dropped on push.
pub(super) struct EventQueue {
    heap: BinaryHeap<Reverse<(u64, u64, Event)>>,
    sequence: u64,
    end_ms: u64,
}

impl EventQueue {
    pub(super) fn new(end_ms: u64) -> Self {
        Self {
            heap: BinaryHeap::new(),
            sequence: 0,
            end_ms,
        }
    }

    pub(super) fn push(&mut self, at_ms: u64, event: Event) {
        if at_ms > self.end_ms {
            return;
        }
        self.sequence += 1;
        self.heap.push(Reverse((at_ms, self.sequence, event)));
    }

    /// The next event and its time, or `None` once nothing is left before the end.
    pub(super) fn pop(&mut self) -> Option<(u64, Event)> {
        let Reverse((at_ms, _, event)) = self.heap.pop()?;
        (at_ms <= self.end_ms).then_some((at_ms, event))
    }
}
