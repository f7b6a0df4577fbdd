//! The fallback risk score used when the sidecar is unreachable (documented in
//! docs/predictor.md, "Fallback heuristic"). Deliberately simple and monotone: more
//! evidence of trouble never lowers the score.
//!
//! risk = 1.5 × [SMART rule alarms on the latest interval]
//!      + 1.0 × [reallocated sectors (SMART 5) grew within the window]
//!      + 0.4 × ln(1 + read, write, checksum and fsync errors summed over the window)
//!      + 0.1 × max(0, age in years − 3)          (age from SMART 9, power-on hours)
//! score = 1 − 0.99 × e^(−risk)   (0.01 for a young, clean node; → 1 as risk grows)

use crate::schema::{index, FeatureValues, SMART_RULE_FEATURES};

const HOURS_PER_YEAR: f32 = 8766.0;

/// The SMART rule operators use (also one of the predictor's baselines): 1 when any of
/// raw 5, 187, 188, 197, 198 is above zero, else 0. Missing attributes never alarm.
pub fn smart_rule(values: &FeatureValues) -> f32 {
    let alarm = SMART_RULE_FEATURES
        .iter()
        .any(|feature| values[*feature] > 0.0);
    f32::from(u8::from(alarm))
}

/// Heuristic failure probability-like score in [0.01, 1) for a window, oldest first.
pub fn heuristic_score(intervals: &[FeatureValues]) -> f32 {
    let present = |value: f32| if value.is_nan() { None } else { Some(value) };
    let latest = intervals.last();
    let smart_alarm = latest.map_or(0.0, smart_rule);
    let reallocated: Vec<f32> = intervals
        .iter()
        .filter_map(|values| present(values[index::SMART_5]))
        .collect();
    let reallocated_grew = match (reallocated.first(), reallocated.last()) {
        (Some(first), Some(last)) if last > first => 1.0,
        _ => 0.0,
    };
    let errors: f32 = intervals
        .iter()
        .flat_map(|values| {
            [
                index::READ_ERRORS,
                index::WRITE_ERRORS,
                index::CHECKSUM_FAILURES,
                index::FSYNC_FAILURES,
            ]
            .map(|feature| present(values[feature]).unwrap_or(0.0).max(0.0))
        })
        .sum();
    let age_years = intervals
        .iter()
        .rev()
        .find_map(|values| present(values[index::SMART_9]))
        .map_or(0.0, |hours| hours / HOURS_PER_YEAR);
    let risk = 1.5 * smart_alarm
        + reallocated_grew
        + 0.4 * errors.ln_1p()
        + 0.1 * (age_years - 3.0).max(0.0);
    1.0 - 0.99 * (-risk).exp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ALL_MISSING;

    #[test]
    fn clean_young_node_scores_low_and_evidence_raises_the_score() {
        let clean = vec![ALL_MISSING; 7];
        let base = heuristic_score(&clean);
        assert!((base - 0.01).abs() < 1e-6);
        let mut errors = clean.clone();
        errors[3][index::READ_ERRORS] = 5.0;
        let with_errors = heuristic_score(&errors);
        assert!(with_errors > base);
        let mut alarm = errors.clone();
        alarm[6][index::SMART_197] = 1.0;
        assert!(heuristic_score(&alarm) > with_errors);
        let mut old = clean;
        old[6][index::SMART_9] = 6.0 * HOURS_PER_YEAR;
        assert!(heuristic_score(&old) > base);
        assert!(heuristic_score(&[]) < 0.02);
    }

    #[test]
    fn smart_rule_alarms_on_listed_attributes_only() {
        let mut values = ALL_MISSING;
        assert_eq!(smart_rule(&values), 0.0);
        values[index::SMART_199] = 50.0;
        assert_eq!(smart_rule(&values), 0.0);
        values[index::SMART_197] = 1.0;
        assert_eq!(smart_rule(&values), 1.0);
    }
}
