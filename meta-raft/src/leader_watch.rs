//! Counts leaders taking office (`shardlet_meta_raft_leader_changes_total`) from raft's
//! own metrics channel, so a change between two scrapes is never missed (the gauges in
//! [`crate::status`] are read at scrape time and would be).

use prometheus::IntCounter;

use crate::types::{MemberId, Raft};

/// A leader in office: who, in which term. The same member elected again in a later
/// term is a new leader (an election happened).
pub type Leadership = (MemberId, u64);

/// Whether `now` is a leader taking office after `last` (a member that learns of its
/// first leader counts it: it has just seen one take office).
pub fn is_new_leader(last: Option<Leadership>, now: Option<Leadership>) -> bool {
    now.is_some() && now != last
}

/// Runs until raft stops (its metrics channel closes).
pub async fn count_leader_changes(raft: Raft, counter: IntCounter) {
    let mut receiver = raft.metrics();
    drop(raft);
    let mut last: Option<Leadership> = None;
    loop {
        let now = {
            let metrics = receiver.borrow_and_update();
            metrics
                .current_leader
                .map(|leader| (leader, metrics.current_term))
        };
        if is_new_leader(last, now) {
            counter.inc();
            last = now;
        }
        if receiver.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_member_or_term_counts_and_losing_the_leader_does_not() {
        assert!(is_new_leader(None, Some((1, 1))));
        assert!(!is_new_leader(Some((1, 1)), Some((1, 1))));
        assert!(!is_new_leader(Some((1, 1)), None));
        assert!(is_new_leader(Some((1, 1)), Some((2, 2))));
        assert!(is_new_leader(Some((1, 1)), Some((1, 3))));
    }
}
