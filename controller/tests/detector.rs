//! Failure detection: suspect and down timings, reboots, flapping.
#![allow(clippy::unwrap_used)]

use shardlet_controller::detector::{Detector, DetectorConfig, Heartbeat, Liveness};
use shardlet_core::NodeId;

fn beat(detector: &mut Detector, node: u32, at_ms: u64) {
    detector.observe(Heartbeat { node: NodeId(node) }, at_ms);
}

fn config() -> DetectorConfig {
    DetectorConfig {
        suspect_after_ms: 15_000,
        down_after_ms: 600_000,
        down_after_ms_max: 4_800_000,
        flap_window_ms: 3_600_000,
    }
}

#[test]
fn silent_node_is_suspect_then_down_exactly_at_the_thresholds() {
    let mut detector = Detector::new(config());
    beat(&mut detector, 1, 0);
    beat(&mut detector, 2, 0);
    assert!(detector.tick(14_999).is_empty());
    // Node 2 keeps beating; only node 1 goes silent.
    beat(&mut detector, 2, 15_000);
    let suspect = detector.tick(15_000);
    assert_eq!(suspect.len(), 1);
    assert_eq!(
        (suspect[0].node, suspect[0].to),
        (NodeId(1), Liveness::Suspect)
    );
    assert!(detector.tick(599_999).iter().all(|t| t.node != NodeId(1)));
    let down = detector.tick(600_000);
    assert!(down
        .iter()
        .any(|t| t.node == NodeId(1) && t.from == Liveness::Suspect && t.to == Liveness::Down));
    assert_eq!(detector.liveness(NodeId(1)), Some(Liveness::Down));
    // Down is reported once.
    assert!(detector.tick(700_000).iter().all(|t| t.node != NodeId(1)));
}

#[test]
fn reboot_within_grace_never_reaches_down() {
    let mut detector = Detector::new(config());
    beat(&mut detector, 7, 0);
    let mut transitions = detector.tick(60_000);
    // Back after five minutes, well inside the ten-minute grace.
    beat(&mut detector, 7, 300_000);
    transitions.extend(detector.tick(300_000));
    transitions.extend(detector.tick(300_000 + 14_999));
    assert!(
        transitions.iter().all(|t| t.to != Liveness::Down),
        "{transitions:?}"
    );
    assert_eq!(
        transitions.last().map(|t| (t.from, t.to)),
        Some((Liveness::Suspect, Liveness::Up))
    );
}

#[test]
fn flapping_node_gets_a_longer_grace_period_each_time() {
    let mut detector = Detector::new(config());
    let node = NodeId(3);
    beat(&mut detector, 3, 0);
    assert_eq!(detector.grace_ms(node, 0), 600_000);
    let mut now = 0;
    let mut graces = Vec::new();
    for _ in 0..4 {
        // Silent long enough to be suspect, then back.
        now += 60_000;
        detector.tick(now);
        assert_eq!(detector.liveness(node), Some(Liveness::Suspect));
        beat(&mut detector, 3, now);
        detector.tick(now);
        graces.push(detector.grace_ms(node, now));
    }
    assert_eq!(graces, vec![1_200_000, 2_400_000, 4_800_000, 4_800_000]);
    // A node silent for the base grace is not down while it is flapping.
    let silent_from = now;
    let transitions = detector.tick(silent_from + 600_000);
    assert!(transitions.iter().all(|t| t.to != Liveness::Down));
    assert!(detector
        .tick(silent_from + 4_800_000)
        .iter()
        .any(|t| t.to == Liveness::Down));
    // Flaps older than the window stop counting.
    assert_eq!(detector.grace_ms(node, now + 3_600_001), 600_000);
}

#[test]
fn out_of_order_heartbeat_does_not_rewind_last_seen() {
    let mut detector = Detector::new(config());
    beat(&mut detector, 1, 100_000);
    beat(&mut detector, 1, 50_000);
    assert!(detector.tick(100_000 + 14_999).is_empty());
}
