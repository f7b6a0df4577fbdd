//! The background I/O budget.
#![allow(clippy::unwrap_used)]

use shardlet_controller::budget::{Grant, IoBudget, Urgency, BURST_SECONDS};

#[test]
fn default_share_is_five_percent_of_cluster_bandwidth() {
    let budget = IoBudget::from_cluster_bandwidth(1e9, IoBudget::DEFAULT_SHARE, 0);
    assert!((budget.bytes_per_second() - 5e7).abs() < 1e-3);
}

#[test]
fn background_waits_for_tokens_and_long_run_rate_is_the_budget() {
    let mut budget = IoBudget::new(1_000_000.0, 0);
    let burst = (1_000_000.0 * BURST_SECONDS) as u64;
    assert_eq!(
        budget.request(burst, Urgency::Background, 0),
        Grant::Granted
    );
    let Grant::WaitUntil { at_ms } = budget.request(500_000, Urgency::Background, 0) else {
        panic!("an empty bucket granted more");
    };
    assert_eq!(at_ms, 500);
    assert_eq!(
        budget.request(500_000, Urgency::Background, at_ms),
        Grant::Granted
    );
    // Over 100 virtual seconds, grants never exceed burst + rate × time.
    let mut granted = 0u64;
    let mut now = at_ms;
    while now < 100_500 {
        match budget.request(100_000, Urgency::Background, now) {
            Grant::Granted => granted += 100_000,
            Grant::WaitUntil { at_ms } => now = at_ms,
        }
    }
    assert!(granted <= 100_000_000 + burst, "{granted}");
    assert!(granted >= 99_000_000, "{granted}");
}

#[test]
fn endangered_repair_is_never_made_to_wait_and_background_pays_the_debt() {
    let mut budget = IoBudget::new(1_000.0, 0);
    for _ in 0..5 {
        assert_eq!(
            budget.request(1_000_000, Urgency::Endangered, 0),
            Grant::Granted
        );
    }
    assert!(matches!(
        budget.request(1, Urgency::Background, 1_000),
        Grant::WaitUntil { .. }
    ));
}

#[test]
fn a_request_larger_than_the_burst_goes_through_when_the_bucket_is_full() {
    let mut budget = IoBudget::new(1_000.0, 0);
    assert_eq!(
        budget.request(1_000_000, Urgency::Background, 0),
        Grant::Granted
    );
    // ... and is paid back before anything else runs.
    let Grant::WaitUntil { at_ms } = budget.request(1, Urgency::Background, 0) else {
        panic!("debt was forgiven");
    };
    assert!(at_ms >= 990_000, "{at_ms}");
}
