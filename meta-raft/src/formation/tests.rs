#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::wire::ClusterStatus;

fn status(member_id: MemberId, initialized: bool, cluster: Option<&ClusterId>) -> PeerAnswer {
    PeerAnswer::Member(Box::new(ClusterStatus {
        member_id,
        leader_id: initialized.then_some(1),
        term: u64::from(initialized),
        last_log_index: None,
        last_applied_index: None,
        snapshot_index: None,
        purged_index: None,
        voters: if initialized {
            BTreeSet::from([1, 2, 3])
        } else {
            BTreeSet::new()
        },
        learners: BTreeSet::new(),
        cluster_id: cluster.cloned(),
        initialized,
        committed_index: None,
        state: String::new(),
        addresses: BTreeMap::new(),
        joint: false,
        replication: None,
        ready: false,
        not_ready_reason: None,
    }))
}

#[test]
fn initial_members_are_parsed_and_every_mistake_is_named() {
    let members =
        parse_initial_members("1=10.0.0.1:7380, 2=10.0.0.2:7380,3=meta-3.svc:7380").unwrap();
    assert_eq!(members.len(), 3);
    assert_eq!(members[&3], "meta-3.svc:7380");
    let refusals = [
        ("", "no member listed"),
        ("1=a:1,2=b:2", "odd number"),
        ("1=a:1,1=b:2,3=c:3", "listed twice"),
        ("1=a:1,2=a:1,3=c:3", "share one address"),
        ("x=a:1", "not a member id"),
        ("1:a:1", "not ID=HOST:PORT"),
        ("1=a", "not HOST:PORT"),
        ("1=a:0", "not HOST:PORT"),
        ("1=http://a:1", "not HOST:PORT"),
        (
            "1=a:1,2=b:1,3=c:1,4=d:1,5=e:1,6=f:1,7=g:1,8=h:1,9=i:1",
            "at most 7",
        ),
    ];
    for (text, expected) in refusals {
        let error = parse_initial_members(text).unwrap_err();
        assert!(
            error.contains(expected) && error.contains("--initial-members"),
            "{text:?}: {error}"
        );
    }
}

#[test]
fn bootstrap_is_refused_when_any_peer_belongs_to_a_cluster_or_refuses_our_key() {
    let cluster = ClusterId::generate();
    let unreachable = ("a:1".to_string(), PeerAnswer::Unreachable("refused".into()));
    let idle = ("b:1".to_string(), status(2, false, None));
    assert_eq!(
        judge_bootstrap(&[unreachable.clone(), idle.clone()]),
        Verdict::Proceed
    );
    for answer in [
        status(2, true, Some(&cluster)),
        status(2, true, None),
        status(2, false, Some(&cluster)),
        PeerAnswer::RefusesOurKey("401".into()),
        PeerAnswer::NotAMember("404".into()),
    ] {
        let verdict = judge_bootstrap(&[unreachable.clone(), ("c:1".into(), answer.clone())]);
        assert!(
            matches!(verdict, Verdict::Refuse(_)),
            "{answer:?}: {verdict:?}"
        );
    }
}

#[test]
fn the_lowest_member_forms_the_cluster_only_when_every_other_one_is_up_and_idle() {
    let ours = ClusterId::generate();
    let theirs = ClusterId::generate();
    let idle = |id| (id, format!("m{id}:1"), status(id, false, None));
    assert_eq!(
        judge_initial_members(None, &[idle(2), idle(3)]),
        Verdict::Proceed
    );
    let down = (
        3,
        "m3:1".to_string(),
        PeerAnswer::Unreachable("refused".into()),
    );
    assert!(
        matches!(judge_initial_members(None, &[idle(2), down]), Verdict::Wait(reason) if reason.contains("m3:1"))
    );
    // Member 2 already belongs to a cluster: this member lost its disk (or another
    // cluster sits at that address).
    let formed = (2, "m2:1".to_string(), status(2, true, Some(&theirs)));
    assert!(matches!(
        judge_initial_members(None, &[formed, idle(3)]),
        Verdict::Refuse(_)
    ));
    // A member answering under another id: the list is wrong.
    let wrong = (2, "m2:1".to_string(), status(5, false, None));
    assert!(
        matches!(judge_initial_members(None, &[wrong, idle(3)]), Verdict::Refuse(reason) if reason.contains("member 5 answers"))
    );
    let stranger = (
        2,
        "m2:1".to_string(),
        PeerAnswer::RefusesOurKey("401".into()),
    );
    assert!(matches!(
        judge_initial_members(None, &[stranger]),
        Verdict::Refuse(_)
    ));
    // Recorded our id and crashed before initialising; a member that adopted nothing yet
    // or our own id (not initialised) is fine, another id is not.
    let adopted = (2, "m2:1".to_string(), status(2, false, Some(&ours)));
    assert_eq!(
        judge_initial_members(Some(&ours), &[adopted.clone(), idle(3)]),
        Verdict::Proceed
    );
    assert!(matches!(
        judge_initial_members(None, &[adopted]),
        Verdict::Refuse(_)
    ));
}

#[test]
fn a_waiting_member_refuses_when_the_leader_says_it_had_acknowledged_entries() {
    let cluster = ClusterId::generate();
    let mut leader = status(1, true, Some(&cluster));
    assert_eq!(
        judge_waiting_member(2, &[("m1:1".into(), leader.clone())]),
        Verdict::Proceed
    );
    if let PeerAnswer::Member(status) = &mut leader {
        status.replication = Some(BTreeMap::from([(2, Some(40)), (3, None)]));
    }
    assert!(
        matches!(judge_waiting_member(2, &[("m1:1".into(), leader.clone())]), Verdict::Refuse(reason) if reason.contains("entry 40"))
    );
    assert_eq!(
        judge_waiting_member(3, &[("m1:1".into(), leader)]),
        Verdict::Proceed
    );
}

#[test]
fn the_advice_names_every_step_of_rejoining() {
    let advice = rejoin_advice(2, "10.0.0.2:7380");
    for step in [
        "admin meta remove 2",
        "admin meta add 2 10.0.0.2:7380",
        "admin meta promote 2",
    ] {
        assert!(advice.contains(step), "{advice}");
    }
}
