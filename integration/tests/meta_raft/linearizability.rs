//! A linearizability checker for one register with read, write and compare-and-set, in
//! the style of Wing & Gong with Lowe's memoisation: depth-first search over "which
//! operations are linearized so far + the register's value", visiting each such
//! configuration once.
//!
//! An operation may be linearized next only if it was invoked before every
//! not-yet-linearized completed operation returned (real-time order). Operations whose
//! outcome is unknown (the client timed out) may take effect at any point after their
//! invocation, or never. Histories of different keys are checked independently
//! (linearizability is compositional).

use std::collections::HashSet;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Read,
    Write(u64),
    /// Set to `new` if the register holds `expected` (`None`: absent).
    CompareAndSet {
        expected: Option<u64>,
        new: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Read(Option<u64>),
    Written,
    CompareAndSet {
        succeeded: bool,
    },
    /// The client does not know whether the operation took effect.
    Unknown,
}

#[derive(Clone, Copy, Debug)]
pub struct Operation {
    /// Who ran it: named when a failing history is printed.
    pub client: usize,
    /// Nanoseconds since the start of the history, on one monotonic clock.
    pub invoked_at: u64,
    /// `None` when the outcome is unknown.
    pub returned_at: Option<u64>,
    pub kind: Kind,
    pub outcome: Outcome,
}

impl fmt::Display for Operation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "client {}: {:?} -> {:?}, invoked at {} ns, ",
            self.client, self.kind, self.outcome, self.invoked_at
        )?;
        match self.returned_at {
            Some(returned_at) => write!(formatter, "returned at {returned_at} ns"),
            None => write!(formatter, "never returned"),
        }
    }
}

/// The first `OPERATIONS_PRINTED_MAX` operations of `history`, one a line, for the
/// message of a failed check.
pub fn describe(history: &[Operation]) -> String {
    let mut lines: Vec<String> = history
        .iter()
        .take(OPERATIONS_PRINTED_MAX)
        .map(Operation::to_string)
        .collect();
    if history.len() > OPERATIONS_PRINTED_MAX {
        lines.push(format!(
            "... and {} more",
            history.len() - OPERATIONS_PRINTED_MAX
        ));
    }
    lines.join("\n")
}

/// Bounds what a failure message prints of one history.
const OPERATIONS_PRINTED_MAX: usize = 500;

/// Applies `operation` to `value` if its outcome is consistent with it; returns the new
/// value, or `None` if the operation cannot take effect on this value.
fn step(value: Option<u64>, operation: &Operation) -> Option<Option<u64>> {
    match (operation.kind, operation.outcome) {
        (Kind::Read, Outcome::Read(seen)) => (seen == value).then_some(value),
        (Kind::Read, Outcome::Unknown) => Some(value),
        (Kind::Write(new), Outcome::Written | Outcome::Unknown) => Some(Some(new)),
        (Kind::CompareAndSet { expected, new }, Outcome::CompareAndSet { succeeded }) => {
            match (expected == value, succeeded) {
                (true, true) => Some(Some(new)),
                (false, false) => Some(value),
                _ => None,
            }
        }
        (Kind::CompareAndSet { expected, new }, Outcome::Unknown) => {
            Some(if expected == value { Some(new) } else { value })
        }
        _ => None,
    }
}

/// Bound on configurations explored, so a pathological history fails loudly instead of
/// running forever.
pub const CONFIGURATIONS_MAX: usize = 5_000_000;

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    TooLarge,
}

/// Checks one register's history, starting from an absent value.
pub fn check_register(history: &[Operation]) -> Verdict {
    let count = history.len();
    let words = count.div_ceil(64).max(1);
    let must_linearize: Vec<usize> = (0..count)
        .filter(|&index| history[index].returned_at.is_some())
        .collect();
    let is_set = |set: &[u64], index: usize| set[index / 64] & (1 << (index % 64)) != 0;
    let mut visited: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    let mut stack = vec![(vec![0_u64; words], None::<u64>)];
    visited.insert((vec![0_u64; words], None));
    while let Some((set, value)) = stack.pop() {
        if must_linearize.iter().all(|&index| is_set(&set, index)) {
            return Verdict::Linearizable;
        }
        if visited.len() > CONFIGURATIONS_MAX {
            return Verdict::TooLarge;
        }
        let earliest_return = must_linearize
            .iter()
            .filter(|&&index| !is_set(&set, index))
            .filter_map(|&index| history[index].returned_at)
            .min()
            .unwrap_or(u64::MAX);
        for (index, operation) in history.iter().enumerate() {
            if is_set(&set, index) || operation.invoked_at > earliest_return {
                continue;
            }
            let Some(next_value) = step(value, operation) else {
                continue;
            };
            let mut next_set = set.clone();
            next_set[index / 64] |= 1 << (index % 64);
            if visited.insert((next_set.clone(), next_value)) {
                stack.push((next_set, next_value));
            }
        }
    }
    Verdict::NotLinearizable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operation(invoked_at: u64, returned_at: u64, kind: Kind, outcome: Outcome) -> Operation {
        Operation {
            client: 0,
            invoked_at,
            returned_at: Some(returned_at),
            kind,
            outcome,
        }
    }

    /// A compare-and-set of `expected` → `new` that returned, `succeeded` or not.
    fn compare_and_set(
        invoked_at: u64,
        returned_at: u64,
        expected: Option<u64>,
        new: u64,
        succeeded: bool,
    ) -> Operation {
        operation(
            invoked_at,
            returned_at,
            Kind::CompareAndSet { expected, new },
            Outcome::CompareAndSet { succeeded },
        )
    }

    #[test]
    fn a_sequential_history_is_linearizable() {
        let history = [
            operation(0, 1, Kind::Write(1), Outcome::Written),
            operation(2, 3, Kind::Read, Outcome::Read(Some(1))),
            compare_and_set(4, 5, Some(1), 2, true),
            operation(6, 7, Kind::Read, Outcome::Read(Some(2))),
        ];
        assert_eq!(check_register(&history), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_write_is_rejected() {
        let history = [
            operation(0, 1, Kind::Write(1), Outcome::Written),
            operation(2, 3, Kind::Write(2), Outcome::Written),
            operation(4, 5, Kind::Read, Outcome::Read(Some(1))),
        ];
        assert_eq!(check_register(&history), Verdict::NotLinearizable);
    }

    #[test]
    fn a_read_concurrent_with_a_write_may_see_either_value() {
        for seen in [None, Some(1)] {
            let history = [
                operation(0, 10, Kind::Write(1), Outcome::Written),
                operation(1, 9, Kind::Read, Outcome::Read(seen)),
            ];
            assert_eq!(check_register(&history), Verdict::Linearizable);
        }
    }

    #[test]
    fn two_compare_and_sets_from_the_same_value_cannot_both_succeed() {
        let history = [
            operation(0, 1, Kind::Write(1), Outcome::Written),
            compare_and_set(2, 10, Some(1), 2, true),
            compare_and_set(3, 11, Some(1), 3, true),
        ];
        assert_eq!(check_register(&history), Verdict::NotLinearizable);
    }

    #[test]
    fn a_failed_compare_and_set_must_have_seen_another_value() {
        let history = [
            operation(0, 1, Kind::Write(1), Outcome::Written),
            compare_and_set(2, 3, Some(1), 2, false),
        ];
        assert_eq!(check_register(&history), Verdict::NotLinearizable);
    }

    #[test]
    fn an_unknown_write_may_take_effect_late_or_never() {
        let unknown = Operation {
            client: 1,
            invoked_at: 0,
            returned_at: None,
            kind: Kind::Write(7),
            outcome: Outcome::Unknown,
        };
        let never = [unknown, operation(5, 6, Kind::Read, Outcome::Read(None))];
        assert_eq!(check_register(&never), Verdict::Linearizable);
        let late = [
            unknown,
            operation(5, 6, Kind::Read, Outcome::Read(None)),
            operation(7, 8, Kind::Read, Outcome::Read(Some(7))),
        ];
        assert_eq!(check_register(&late), Verdict::Linearizable);
        let flip_back = [
            unknown,
            operation(5, 6, Kind::Read, Outcome::Read(Some(7))),
            operation(7, 8, Kind::Read, Outcome::Read(None)),
        ];
        assert_eq!(check_register(&flip_back), Verdict::NotLinearizable);
    }

    #[test]
    fn a_described_history_names_each_operations_client_and_times() {
        let unknown = Operation {
            client: 3,
            invoked_at: 10,
            returned_at: None,
            kind: Kind::Write(7),
            outcome: Outcome::Unknown,
        };
        let history = [operation(0, 1, Kind::Read, Outcome::Read(None)), unknown];
        assert_eq!(
            describe(&history),
            "client 0: Read -> Read(None), invoked at 0 ns, returned at 1 ns\n\
             client 3: Write(7) -> Unknown, invoked at 10 ns, never returned"
        );
    }
}
