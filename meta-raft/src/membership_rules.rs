//! The safety rules of membership changes, as pure functions over what the operator's
//! tool saw (`shardlet admin meta promote|remove`): one change at a time, never the
//! last voter, never a change whose quorum is not reachable now (openraft's joint
//! consensus needs a quorum of the old AND the new voters, so such a change would hang
//! until members come back), and no even voter count or unready learner unless forced.
//!
//! Why even counts are refused: 2 voters tolerate no failure (like 1) and 4 tolerate one
//! (like 3), but every write waits for more of them. A cluster passes through an even
//! count while it grows (3 → 4 → 5); `--force` says the operator knows.

use std::collections::BTreeMap;

use crate::types::MemberId;

/// More voters than this slow every write and add no useful tolerance; grow further with
/// learners.
pub const VOTERS_MAX: usize = 7;

/// One member as the operator's tool sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberHealth {
    pub voter: bool,
    /// It answered, and says it is ready (knows the leader, has caught up).
    pub healthy: bool,
}

/// The configuration and each member's health.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub members: BTreeMap<MemberId, MemberHealth>,
    /// A change is between its two steps: no other may start.
    pub joint: bool,
}

/// Votes a write needs among `voters`.
pub fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// Voters that may fail while writes go on.
pub fn failures_tolerated(voters: usize) -> usize {
    voters.saturating_sub(1) / 2
}

/// Why a change is refused; `forcible` ones go ahead with `--force`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
    pub forcible: bool,
}

fn refuse(reason: String) -> Refusal {
    Refusal {
        reason,
        forcible: false,
    }
}

fn refuse_unless_forced(reason: String) -> Refusal {
    Refusal {
        reason,
        forcible: true,
    }
}

impl ClusterView {
    fn voters(&self) -> usize {
        self.members.values().filter(|member| member.voter).count()
    }

    fn healthy_voters_except(&self, excluded: Option<MemberId>) -> usize {
        self.members
            .iter()
            .filter(|(id, member)| member.voter && member.healthy && Some(**id) != excluded)
            .count()
    }

    fn common_checks(&self, member_id: MemberId) -> Result<MemberHealth, Refusal> {
        if self.joint {
            return Err(refuse(
                "a membership change is in progress; wait until it finished (shardlet admin meta status), one change at a time".into(),
            ));
        }
        self.members.get(&member_id).copied().ok_or_else(|| {
            refuse(format!(
                "member {member_id} is not in this cluster's configuration"
            ))
        })
    }
}

/// Checks learner → voter. `Ok`: notes worth printing.
pub fn check_promote(
    view: &ClusterView,
    member_id: MemberId,
    force: bool,
) -> Result<Vec<String>, Refusal> {
    let member = view.common_checks(member_id)?;
    if member.voter {
        return Err(refuse(format!("member {member_id} is already a voter")));
    }
    let voters = view.voters() + 1;
    let mut forcible = Vec::new();
    if !member.healthy {
        forcible.push(format!(
            "learner {member_id} has not caught up (or does not answer): promoted now, it would count towards the quorum without holding the log; wait until `shardlet admin meta status` shows it ready"
        ));
    }
    if voters > VOTERS_MAX {
        forcible.push(format!(
            "{voters} voters is more than {VOTERS_MAX} (VOTERS_MAX): every write would wait for {} of them; keep extra members as learners",
            quorum(voters)
        ));
    }
    let healthy = view.healthy_voters_except(None) + usize::from(member.healthy);
    if healthy < quorum(voters) {
        return Err(refuse(format!(
            "with {voters} voters a change needs {} that answer, but only {healthy} do: the change could not commit; bring members back first",
            quorum(voters)
        )));
    }
    if !forcible.is_empty() && !force {
        return Err(refuse_unless_forced(forcible.join("; ")));
    }
    let mut notes = Vec::new();
    if voters % 2 == 0 {
        notes.push(format!(
            "{voters} voters tolerate {} failure(s), no more than {}: promote another learner to reach {}",
            failures_tolerated(voters),
            voters - 1,
            voters + 1
        ));
    }
    Ok(notes)
}

/// Checks removing a member. `Ok`: notes worth printing.
pub fn check_remove(
    view: &ClusterView,
    member_id: MemberId,
    force: bool,
) -> Result<Vec<String>, Refusal> {
    let member = view.common_checks(member_id)?;
    if !member.voter {
        return Ok(vec![format!(
            "learner {member_id} leaves; the voters do not change"
        )]);
    }
    let before = view.voters();
    let after = before - 1;
    if after == 0 {
        return Err(refuse(format!(
            "member {member_id} is the last voter: a cluster cannot lose its last voter"
        )));
    }
    let healthy_before = view.healthy_voters_except(None);
    let healthy_after = view.healthy_voters_except(Some(member_id));
    if healthy_before < quorum(before) || healthy_after < quorum(after) {
        return Err(refuse(format!(
            "the change needs {} of the {before} voters now and {} of the {after} left to answer, but {healthy_before} and {healthy_after} do: it could not commit; bring members back first",
            quorum(before),
            quorum(after)
        )));
    }
    if after % 2 == 0 && !force {
        return Err(refuse_unless_forced(format!(
            "{after} voters would tolerate {} failure(s), like {}, while every write waits for {} of them; add and promote a member first (shardlet admin meta add, promote), or pass --force",
            failures_tolerated(after),
            after - 1,
            quorum(after)
        )));
    }
    let mut notes = Vec::new();
    if failures_tolerated(after) < failures_tolerated(before) {
        notes.push(format!(
            "the cluster now tolerates {} failure(s) instead of {}",
            failures_tolerated(after),
            failures_tolerated(before)
        ));
    }
    if healthy_after == quorum(after) && after > 1 {
        notes.push(format!(
            "only {healthy_after} of the {after} voters left answer: one more failure stops writes"
        ));
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn view(members: &[(MemberId, bool, bool)]) -> ClusterView {
        ClusterView {
            members: members
                .iter()
                .map(|(id, voter, healthy)| {
                    (
                        *id,
                        MemberHealth {
                            voter: *voter,
                            healthy: *healthy,
                        },
                    )
                })
                .collect(),
            joint: false,
        }
    }

    #[test]
    fn quorum_and_tolerance_follow_the_voter_count() {
        let table = [
            (1, 1, 0),
            (2, 2, 0),
            (3, 2, 1),
            (4, 3, 1),
            (5, 3, 2),
            (7, 4, 3),
        ];
        for (voters, needed, tolerated) in table {
            assert_eq!(quorum(voters), needed, "{voters}");
            assert_eq!(failures_tolerated(voters), tolerated, "{voters}");
        }
    }

    #[test]
    fn promoting_a_ready_learner_to_an_odd_count_is_allowed_and_to_an_even_one_noted() {
        let three = view(&[
            (1, true, true),
            (2, true, true),
            (3, true, true),
            (4, false, true),
        ]);
        let notes = check_promote(&three, 4, false).unwrap();
        assert!(notes[0].contains("promote another learner"), "{notes:?}");
        let four = view(&[
            (1, true, true),
            (2, true, true),
            (3, true, true),
            (4, true, true),
            (5, false, true),
        ]);
        assert!(check_promote(&four, 5, false).unwrap().is_empty());
    }

    #[test]
    fn promotion_is_refused_for_voters_strangers_lagging_learners_and_during_a_change() {
        let cluster = view(&[
            (1, true, true),
            (2, true, true),
            (3, true, true),
            (4, false, false),
        ]);
        assert!(
            !check_promote(&cluster, 1, true).unwrap_err().forcible,
            "already a voter"
        );
        assert!(
            !check_promote(&cluster, 9, true).unwrap_err().forcible,
            "not a member"
        );
        let lagging = check_promote(&cluster, 4, false).unwrap_err();
        assert!(
            lagging.forcible && lagging.reason.contains("not caught up"),
            "{lagging:?}"
        );
        assert!(check_promote(&cluster, 4, true).is_ok(), "forced");
        let mut changing = view(&[(1, true, true), (2, false, true)]);
        changing.joint = true;
        assert!(check_promote(&changing, 2, true)
            .unwrap_err()
            .reason
            .contains("in progress"));
    }

    #[test]
    fn a_promotion_whose_quorum_cannot_answer_is_refused_even_when_forced() {
        // 3 voters, 2 down: 4 voters need 3 answers, only voter 1 and the learner answer.
        let cluster = view(&[
            (1, true, true),
            (2, true, false),
            (3, true, false),
            (4, false, true),
        ]);
        let refusal = check_promote(&cluster, 4, true).unwrap_err();
        assert!(
            !refusal.forcible && refusal.reason.contains("could not commit"),
            "{refusal:?}"
        );
    }

    #[test]
    fn the_last_voter_is_never_removed() {
        let alone = view(&[(1, true, true), (2, false, true)]);
        let refusal = check_remove(&alone, 1, true).unwrap_err();
        assert!(
            !refusal.forcible && refusal.reason.contains("last voter"),
            "{refusal:?}"
        );
        assert!(
            check_remove(&alone, 2, false).is_ok(),
            "a learner may always leave"
        );
    }

    #[test]
    fn leaving_an_even_count_needs_force_and_says_why() {
        let three = view(&[(1, true, true), (2, true, true), (3, true, false)]);
        let refusal = check_remove(&three, 3, false).unwrap_err();
        assert!(
            refusal.forcible && refusal.reason.contains("--force"),
            "{refusal:?}"
        );
        let notes = check_remove(&three, 3, true).unwrap();
        assert!(
            notes.iter().any(|note| note.contains("tolerates 0")),
            "{notes:?}"
        );
        let five = view(&[
            (1, true, true),
            (2, true, true),
            (3, true, true),
            (4, true, true),
            (5, true, true),
        ]);
        assert!(check_remove(&five, 5, false).unwrap_err().forcible);
    }

    #[test]
    fn a_removal_that_would_leave_no_reachable_quorum_is_refused_even_when_forced() {
        // 5 voters, 2 down: removing a healthy one leaves 4 with 2 healthy (3 needed).
        let cluster = view(&[
            (1, true, true),
            (2, true, true),
            (3, true, true),
            (4, true, false),
            (5, true, false),
        ]);
        let refusal = check_remove(&cluster, 1, true).unwrap_err();
        assert!(
            !refusal.forcible && refusal.reason.contains("could not commit"),
            "{refusal:?}"
        );
        // Removing one of the dead ones is fine (4 left, 3 healthy), with force (even).
        assert!(check_remove(&cluster, 5, true).is_ok());
    }
}
