//! The layout's operations against the in-memory store: the workflow, and every way a
//! change is refused.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use shardlet_auth::NodeName;
use shardlet_core::{Node, NodeId, NodeState, Topology};

use super::check::{parse_capacity, LayoutError, CAPACITY_BYTES_MIN};
use super::operations::{
    self, announce, apply, apply_announced, import, revert, stage, Announced, Announcement,
    Imported, LayoutOpError,
};
use super::record::{AdminState, Change, ChangeSource, RoleAssignment, StagedChange};
use super::topology::to_topology;
use crate::access::Metadata;
use crate::memory::InMemoryMetadata;

const TIB: u64 = 1 << 40;

fn metadata() -> Metadata {
    Metadata::new(Arc::new(InMemoryMetadata::default()))
}

/// `zones` zones of `per_zone` nodes in one region, ids from 1, names `n<id>`.
fn file(zones: usize, per_zone: usize) -> Topology {
    let mut nodes = Vec::new();
    for zone in 0..zones {
        for _ in 0..per_zone {
            let id = nodes.len() as u32 + 1;
            nodes.push(Node {
                id: NodeId(id),
                name: format!("n{id}"),
                address: format!("10.0.0.{id}:19101"),
                region: "r1".into(),
                zone: format!("z{zone}"),
                capacity_bytes: TIB,
                free_bytes: TIB,
                weight: 1.0,
                state: NodeState::Up,
                latency_us: None,
            });
        }
    }
    Topology::new(1, nodes).unwrap()
}

fn assign(name: &str, zone: Option<&str>) -> StagedChange {
    StagedChange {
        name: name.into(),
        change: Change::Assign(RoleAssignment {
            region: Some("r1".into()),
            zone: zone.map(String::from),
            capacity_bytes: Some(TIB),
            weight: None,
            address: Some(format!("10.0.1.1:{}", 19000 + name.len())),
        }),
        source: ChangeSource::Operator,
        staged_unix_ms: 1,
    }
}

fn operator(name: &str, change: Change) -> StagedChange {
    StagedChange {
        name: name.into(),
        change,
        source: ChangeSource::Operator,
        staged_unix_ms: 1,
    }
}

fn layout_error(result: Result<impl std::fmt::Debug, LayoutOpError>) -> LayoutError {
    match result {
        Err(LayoutOpError::Layout(error)) => error,
        other => panic!("expected a layout error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_import_becomes_the_first_version_and_a_second_identical_one_changes_nothing() {
    let metadata = metadata();
    assert_eq!(operations::read(&metadata).await.unwrap().record.version, 0);
    assert_eq!(
        import(&metadata, &file(3, 2), false, 5).await.unwrap(),
        Imported::Applied(1)
    );
    let layout = operations::read(&metadata).await.unwrap().record;
    assert_eq!((layout.version, layout.next_node_id), (1, 7));
    assert_eq!(layout.applied_by, "import");
    assert!(layout
        .nodes
        .iter()
        .all(|node| node.state == AdminState::Active && node.weight.is_none()));
    assert_eq!(
        import(&metadata, &file(3, 2), false, 6).await.unwrap(),
        Imported::Unchanged(1)
    );
}

#[tokio::test]
async fn a_conflicting_import_is_refused_unless_forced_and_keeps_omitted_nodes_decommissioned() {
    let metadata = metadata();
    import(&metadata, &file(3, 2), false, 5).await.unwrap();
    let error = layout_error(import(&metadata, &file(3, 1), false, 6).await);
    let message = error.to_string();
    assert!(message.contains("already has nodes"), "{message}");
    assert!(message.contains("--force"), "{message}");
    // Ids 1..3 are n1..n3 in both; 4..6 are missing from the smaller file.
    assert!(message.contains("is not in the file"), "{message}");
    // Forced, the file must still hold what the layout holds: 3 nodes cannot hold
    // RS(4,2), which 6 nodes over 3 zones do.
    let error = layout_error(import(&metadata, &file(3, 1), true, 7).await);
    assert!(matches!(error, LayoutError::Unplaceable { .. }), "{error}");
    // n6 replaced by n7 in the same zone: n6 stays, decommissioned.
    let mut replaced = file(3, 2).nodes().to_vec();
    replaced[5].id = NodeId(7);
    replaced[5].name = "n7".into();
    let replaced = Topology::new(1, replaced).unwrap();
    assert_eq!(
        import(&metadata, &replaced, true, 7).await.unwrap(),
        Imported::Applied(2)
    );
    let layout = operations::read(&metadata).await.unwrap().record;
    assert_eq!(layout.nodes.len(), 7);
    assert_eq!(
        layout.node_named("n6").unwrap().state,
        AdminState::Decommissioned
    );
    assert_eq!(layout.next_node_id, 8);
    // An id given to another name is refused: ids are never reused.
    let mut renamed = file(3, 2).nodes().to_vec();
    renamed[0].name = "other".into();
    let renamed = Topology::new(1, renamed).unwrap();
    let error = layout_error(import(&metadata, &renamed, true, 8).await);
    assert!(
        matches!(error, LayoutError::IdReused { id: NodeId(1), .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_staged_node_gets_the_next_id_when_applied_with_the_next_version() {
    let metadata = metadata();
    import(&metadata, &file(3, 2), false, 5).await.unwrap();
    let staged = stage(&metadata, assign("new-one", Some("z1")))
        .await
        .unwrap();
    assert_eq!(
        staged.record.version, 1,
        "staging does not change the version"
    );
    assert_eq!(staged.record.staged.len(), 1);
    let applied = apply(&metadata, 2, 9).await.unwrap().record;
    assert_eq!(applied.version, 2);
    assert!(applied.staged.is_empty());
    let node = applied.node_named("new-one").unwrap();
    assert_eq!((node.id, node.state), (NodeId(7), AdminState::Active));
    assert_eq!(applied.next_node_id, 8);
    // The same version again: refused, naming the versions.
    stage(&metadata, operator("n3", Change::Remove))
        .await
        .unwrap();
    let error = layout_error(apply(&metadata, 2, 10).await);
    assert_eq!(
        error,
        LayoutError::VersionMismatch {
            asked: 2,
            current: 2,
            next: 3
        }
    );
    assert!(error.to_string().contains("version 2"), "{error}");
    let drained = apply(&metadata, 3, 11).await.unwrap().record;
    assert_eq!(
        drained.node_named("n3").unwrap().state,
        AdminState::Draining
    );
}

#[tokio::test]
async fn revert_drops_every_staged_change_and_nothing_else() {
    let metadata = metadata();
    import(&metadata, &file(3, 2), false, 5).await.unwrap();
    stage(&metadata, assign("a", Some("z0"))).await.unwrap();
    stage(&metadata, operator("n2", Change::Remove))
        .await
        .unwrap();
    let (reverted, dropped) = revert(&metadata).await.unwrap();
    assert_eq!(dropped, 2);
    assert!(reverted.record.staged.is_empty());
    assert_eq!(reverted.record.version, 1);
    assert_eq!(revert(&metadata).await.unwrap().1, 0);
    assert_eq!(
        layout_error(apply(&metadata, 2, 6).await),
        LayoutError::NothingStaged
    );
}

#[tokio::test]
async fn bad_changes_are_refused_naming_what_is_wrong() {
    let metadata = metadata();
    import(&metadata, &file(3, 2), false, 5).await.unwrap();
    // Unknown node.
    let error = layout_error(stage(&metadata, operator("ghost", Change::Remove)).await);
    assert_eq!(error, LayoutError::UnknownNode("ghost".into()));
    assert!(error.to_string().contains("layout show"), "{error}");
    // Bad name, zone, capacity, weight, address.
    let cases: [(StagedChange, &str); 5] = [
        (assign("Bad_Name", Some("z1")), "DNS label"),
        (
            assign("ok", Some("Zone One")),
            "zone \"Zone One\" of node ok",
        ),
        (
            StagedChange {
                change: Change::Assign(RoleAssignment {
                    capacity_bytes: Some(CAPACITY_BYTES_MIN - 1),
                    ..RoleAssignment::default()
                }),
                ..assign("ok", None)
            },
            "out of bounds",
        ),
        (
            StagedChange {
                change: Change::Assign(RoleAssignment {
                    weight: Some(-1.0),
                    ..RoleAssignment::default()
                }),
                ..assign("ok", None)
            },
            "weight of node ok",
        ),
        (
            StagedChange {
                change: Change::Assign(RoleAssignment {
                    address: Some("no-port".into()),
                    ..RoleAssignment::default()
                }),
                ..assign("ok", None)
            },
            "not host:port",
        ),
    ];
    for (change, expected) in cases {
        let error = layout_error(stage(&metadata, change).await).to_string();
        assert!(error.contains(expected), "{expected}: {error}");
    }
    // A new node without a zone is staged, but apply names what is missing.
    stage(&metadata, assign("zoneless", None)).await.unwrap();
    let error = layout_error(apply(&metadata, 2, 6).await);
    assert_eq!(
        error,
        LayoutError::Incomplete {
            node: "zoneless".into(),
            missing: "zone",
            flag: "zone"
        }
    );
    assert!(error.to_string().contains("--zone"), "{error}");
    revert(&metadata).await.unwrap();
    // Two nodes at one address.
    let mut duplicate = assign("twin", Some("z1"));
    if let Change::Assign(role) = &mut duplicate.change {
        role.address = Some("10.0.0.1:19101".into());
    }
    stage(&metadata, duplicate).await.unwrap();
    let error = layout_error(apply(&metadata, 2, 6).await);
    assert!(
        matches!(&error, LayoutError::DuplicateAddress { first, second, .. } if first == "n1" && second == "twin"),
        "{error}"
    );
    revert(&metadata).await.unwrap();
    // A zone in two regions.
    let mut moved = assign("elsewhere", Some("z1"));
    if let Change::Assign(role) = &mut moved.change {
        role.region = Some("r2".into());
    }
    stage(&metadata, moved).await.unwrap();
    let error = layout_error(apply(&metadata, 2, 6).await);
    assert!(
        matches!(error, LayoutError::ZoneInTwoRegions { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_layout_that_can_no_longer_hold_rs_6_3_is_refused_naming_it() {
    let metadata = metadata();
    // 3 zones × 3 nodes: RS(6,3) fits exactly (at most 3 fragments per zone).
    import(&metadata, &file(3, 3), false, 5).await.unwrap();
    stage(&metadata, operator("n9", Change::Remove))
        .await
        .unwrap();
    let error = layout_error(apply(&metadata, 2, 6).await);
    let message = error.to_string();
    assert!(
        matches!(error, LayoutError::Unplaceable { scheme, .. } if scheme.to_string() == "rs(6,3)"),
        "{message}"
    );
    assert!(message.contains("STANDARD_IA"), "{message}");
    assert!(message.contains("current layout holds"), "{message}");
    assert!(message.contains("only 8 are possible"), "{message}");
    // Adding a node first makes the same removal fine.
    revert(&metadata).await.unwrap();
    stage(&metadata, assign("spare", Some("z2"))).await.unwrap();
    apply(&metadata, 2, 7).await.unwrap();
    stage(&metadata, operator("n9", Change::Remove))
        .await
        .unwrap();
    apply(&metadata, 3, 8).await.unwrap();
}

#[tokio::test]
async fn the_first_layout_must_hold_the_default_class() {
    let metadata = metadata();
    let error = layout_error(import(&metadata, &file(1, 2), false, 5).await);
    assert!(
        matches!(&error, LayoutError::Unplaceable { classes, .. } if classes.starts_with("STANDARD")),
        "{error}"
    );
}

#[tokio::test]
async fn a_decommissioned_name_is_never_used_again() {
    let metadata = metadata();
    import(&metadata, &file(4, 2), false, 5).await.unwrap();
    stage(&metadata, operator("n8", Change::Decommission))
        .await
        .unwrap();
    apply(&metadata, 2, 6).await.unwrap();
    let error = layout_error(stage(&metadata, assign("n8", Some("z2"))).await);
    assert_eq!(error, LayoutError::Decommissioned("n8".into()));
    let announced = announce(&metadata, &announcement("n8", "10.0.9.9:1"), 7).await;
    assert_eq!(
        layout_error(announced),
        LayoutError::Decommissioned("n8".into())
    );
}

fn announcement(name: &str, address: &str) -> Announcement {
    Announcement {
        name: NodeName::parse(name).unwrap(),
        address: address.into(),
        region: Some("r1".into()),
        zone: Some("z0".into()),
        capacity_bytes: Some(TIB),
    }
}

#[tokio::test]
async fn an_announced_node_is_pending_until_applied_then_learns_its_id() {
    let metadata = metadata();
    import(&metadata, &file(3, 2), false, 5).await.unwrap();
    let fresh = announcement("fresh", "10.0.2.1:19101");
    assert_eq!(
        announce(&metadata, &fresh, 6).await.unwrap(),
        Announced::Pending { layout_version: 1 }
    );
    let before = operations::read(&metadata).await.unwrap();
    assert_eq!(
        before
            .record
            .staged_for("fresh")
            .map(|staged| staged.source),
        Some(ChangeSource::Announced)
    );
    // Announcing again changes nothing (no write).
    announce(&metadata, &fresh, 7).await.unwrap();
    assert_eq!(
        operations::read(&metadata).await.unwrap().version,
        before.version
    );
    // Auto-apply applies it; the node then learns its id.
    let applied = apply_announced(&metadata, 8).await.unwrap().unwrap().record;
    assert_eq!(applied.version, 2);
    assert_eq!(applied.applied_by, "auto-apply");
    assert_eq!(
        announce(&metadata, &fresh, 9).await.unwrap(),
        Announced::Assigned {
            id: NodeId(7),
            layout_version: 2,
            mismatches: Vec::new()
        }
    );
    assert!(apply_announced(&metadata, 10).await.unwrap().is_none());
    // Another address: written at once as a new version. Another zone: reported only.
    let moved = Announcement {
        zone: Some("z1".into()),
        ..announcement("fresh", "10.0.2.2:19101")
    };
    match announce(&metadata, &moved, 11).await.unwrap() {
        Announced::Assigned {
            layout_version,
            mismatches,
            ..
        } => {
            assert_eq!(layout_version, 3);
            assert_eq!(mismatches, ["zone is z0 in the layout, z1 here"]);
        }
        other => panic!("{other:?}"),
    }
    let layout = operations::read(&metadata).await.unwrap().record;
    assert_eq!(
        layout.node_named("fresh").unwrap().address,
        "10.0.2.2:19101"
    );
    assert_eq!(layout.node_named("fresh").unwrap().zone, "z0");
}

#[tokio::test]
async fn an_announcement_never_overwrites_an_operators_change_and_auto_apply_leaves_it() {
    let metadata = metadata();
    import(&metadata, &file(3, 2), false, 5).await.unwrap();
    stage(&metadata, assign("planned", Some("z2")))
        .await
        .unwrap();
    announce(&metadata, &announcement("planned", "10.0.3.1:1"), 6)
        .await
        .unwrap();
    let layout = operations::read(&metadata).await.unwrap().record;
    let staged = layout.staged_for("planned").unwrap();
    assert_eq!(staged.source, ChangeSource::Operator);
    assert!(matches!(&staged.change, Change::Assign(role) if role.zone.as_deref() == Some("z2")));
    // Auto-apply: the operator's change waits, an announced one without a zone too.
    announce(
        &metadata,
        &Announcement {
            zone: None,
            ..announcement("zoneless", "10.0.3.2:1")
        },
        7,
    )
    .await
    .unwrap();
    assert!(apply_announced(&metadata, 8).await.unwrap().is_none());
    // An operator completes the announced role, then applies it all.
    stage(
        &metadata,
        StagedChange {
            change: Change::Assign(RoleAssignment {
                zone: Some("z1".into()),
                ..RoleAssignment::default()
            }),
            ..operator("zoneless", Change::Remove)
        },
    )
    .await
    .unwrap();
    let applied = apply(&metadata, 2, 9).await.unwrap().record;
    let zoneless = applied.node_named("zoneless").unwrap();
    assert_eq!(zoneless.zone, "z1");
    assert_eq!(
        zoneless.address, "10.0.3.2:1",
        "merged with the announcement"
    );
}

#[tokio::test]
async fn a_layout_becomes_a_topology_whose_epoch_is_its_version() {
    let metadata = metadata();
    import(&metadata, &file(4, 2), false, 5).await.unwrap();
    stage(&metadata, operator("n2", Change::Remove))
        .await
        .unwrap();
    let layout = apply(&metadata, 2, 6).await.unwrap().record;
    let liveness = [(NodeId(3), NodeState::Down)].into_iter().collect();
    let topology = to_topology(&layout, &liveness).unwrap();
    assert_eq!(topology.epoch(), 2);
    assert_eq!(topology.node(NodeId(2)).unwrap().state, NodeState::Draining);
    assert_eq!(topology.node(NodeId(3)).unwrap().state, NodeState::Down);
    assert_eq!(topology.node(NodeId(1)).unwrap().state, NodeState::Up);
    let empty = to_topology(&Default::default(), &liveness).unwrap();
    assert!(empty.nodes().is_empty());
}

#[test]
fn capacities_parse_with_their_units_and_bad_ones_are_refused() {
    let cases = [
        ("1099511627776", 1u64 << 40),
        ("1_099_511_627_776", 1 << 40),
        ("1T", 1 << 40),
        ("1TiB", 1 << 40),
        ("1.5T", 3 << 39),
        ("500GiB", 500 << 30),
        ("2TB", 2_000_000_000_000),
        (" 64M ", 64 << 20),
    ];
    for (text, bytes) in cases {
        assert_eq!(parse_capacity(text).unwrap(), bytes, "{text}");
    }
    for (bad, why) in [
        ("", "not a number"),
        ("-1", "not a number"),
        ("12XB", "unknown unit"),
        ("T", "not a number"),
        ("1.2.3T", "not a number"),
        ("0", "out of bounds"),
        ("100", "out of bounds"),
        ("5000T", "out of bounds"),
        ("1e30", "unknown unit"),
    ] {
        let error = parse_capacity(bad).unwrap_err().to_string();
        assert!(error.contains(why), "{bad:?}: {error}");
    }
}

#[tokio::test]
async fn of_two_applies_that_computed_the_same_version_the_second_is_refused_naming_it() {
    // Two operators who reviewed the same staged change and applied it within one
    // millisecond compute identical records: the compare-and-set still lets one win.
    let metadata = metadata();
    import(&metadata, &file(3, 2), false, 5).await.unwrap();
    stage(
        &metadata,
        operator(
            "n1",
            Change::Assign(RoleAssignment {
                weight: Some(2.0),
                ..RoleAssignment::default()
            }),
        ),
    )
    .await
    .unwrap();
    let current = operations::read(&metadata).await.unwrap();
    let next =
        super::check::next_layout(&current.record, &current.record.staged, 9, "apply").unwrap();
    operations::write_version(&metadata, &current, next.clone(), 2)
        .await
        .unwrap();
    assert_eq!(
        layout_error(operations::write_version(&metadata, &current, next, 2).await),
        LayoutError::VersionMismatch {
            asked: 2,
            current: 2,
            next: 3
        }
    );
}
