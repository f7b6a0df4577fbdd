//! The honest evaluation: every method scored on the same test windows (held-out nodes,
//! after the time cutoff), thresholds chosen on validation, results broken down by
//! failure mode when the data says which mode killed each node.

use std::collections::HashMap;
use std::fmt::Write;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::baselines::{smart_rule_scores, LogisticConfig, LogisticRegression};
use crate::dataset::Fleet;
use crate::features::{balanced_sample, Normalizer, Window};
use crate::metrics::{
    at_threshold, best_f1_threshold, pr_auc, pr_curve, roc_auc, AtThreshold, CurvePoint,
};
use crate::simulator::FailureMode;
use crate::split::Split;

#[derive(Clone, Debug)]
pub struct ModeResult {
    pub mode: String,
    pub failed_nodes: usize,
    pub positive_windows: usize,
    pub pr_auc: f64,
}

#[derive(Clone, Debug)]
pub struct MethodResult {
    pub name: String,
    pub threshold: f32,
    pub at_threshold: AtThreshold,
    pub pr_auc: f64,
    pub roc_auc: f64,
    /// Days between the first alarm within the horizon and the failure, over failed
    /// test nodes that were alarmed in time.
    pub lead_time_days_median: Option<f64>,
    pub lead_time_days_mean: Option<f64>,
    pub failures_detected: usize,
    pub failures_total: usize,
    pub curve: Vec<CurvePoint>,
    pub per_mode: Vec<ModeResult>,
}

/// Scores one method on the test windows.
pub fn evaluate_method(
    name: &str,
    fleet: &Fleet,
    windows: &[Window],
    scores: &[f32],
    threshold: f32,
    modes: Option<&HashMap<String, FailureMode>>,
) -> MethodResult {
    assert_eq!(windows.len(), scores.len(), "one score per window");
    let labels: Vec<bool> = windows.iter().map(|window| window.label).collect();
    // Lead time: per failed node, the earliest alarmed window among its positives.
    let mut first_alarm: HashMap<u32, i32> = HashMap::new();
    let mut failed_nodes: HashMap<u32, i32> = HashMap::new();
    for (window, score) in windows.iter().zip(scores) {
        if !window.label {
            continue;
        }
        let node = &fleet.nodes[window.node as usize];
        let Some(failure_day) = node.failure_day else {
            continue;
        };
        failed_nodes.insert(window.node, failure_day);
        if *score >= threshold {
            let lead = failure_day - window.day;
            let entry = first_alarm.entry(window.node).or_insert(lead);
            *entry = (*entry).max(lead);
        }
    }
    let mut leads: Vec<f64> = first_alarm.values().map(|lead| f64::from(*lead)).collect();
    leads.sort_by(f64::total_cmp);
    let lead_time_days_median = (!leads.is_empty()).then(|| {
        let middle = leads.len() / 2;
        if leads.len() % 2 == 0 {
            (leads[middle - 1] + leads[middle]) / 2.0
        } else {
            leads[middle]
        }
    });
    let lead_time_days_mean =
        (!leads.is_empty()).then(|| leads.iter().sum::<f64>() / leads.len() as f64);
    let per_mode = modes.map_or_else(Vec::new, |modes| per_mode(fleet, windows, scores, modes));
    MethodResult {
        name: name.to_string(),
        threshold,
        at_threshold: at_threshold(scores, &labels, threshold),
        pr_auc: pr_auc(scores, &labels),
        roc_auc: roc_auc(scores, &labels),
        lead_time_days_median,
        lead_time_days_mean,
        failures_detected: first_alarm.len(),
        failures_total: failed_nodes.len(),
        curve: pr_curve(scores, &labels),
        per_mode,
    }
}

/// PR-AUC per failure mode: the windows of nodes that did not fail in the test range
/// plus those of nodes that failed with this mode (other failing nodes left out).
fn per_mode(
    fleet: &Fleet,
    windows: &[Window],
    scores: &[f32],
    modes: &HashMap<String, FailureMode>,
) -> Vec<ModeResult> {
    let failing_in_test: std::collections::HashSet<u32> = windows
        .iter()
        .filter(|window| window.label)
        .map(|window| window.node)
        .collect();
    let mut results = Vec::new();
    for mode in FailureMode::ALL {
        let mut subset_scores = Vec::new();
        let mut subset_labels = Vec::new();
        let mut nodes = std::collections::HashSet::new();
        for (window, score) in windows.iter().zip(scores) {
            let node_mode = modes.get(&fleet.nodes[window.node as usize].serial);
            let include = if failing_in_test.contains(&window.node) {
                node_mode == Some(&mode)
            } else {
                true
            };
            if include {
                subset_scores.push(*score);
                subset_labels.push(window.label);
                if window.label {
                    nodes.insert(window.node);
                }
            }
        }
        let positive_windows = subset_labels.iter().filter(|label| **label).count();
        if positive_windows == 0 {
            continue;
        }
        results.push(ModeResult {
            mode: mode.name().to_string(),
            failed_nodes: nodes.len(),
            positive_windows,
            pr_auc: pr_auc(&subset_scores, &subset_labels),
        });
    }
    results
}

/// The two baselines on the split the model was trained on. The logistic regression
/// is trained on the same training windows with the same balanced sampling; its
/// threshold, like the LSTM's, is the F1-best one on validation.
pub fn baseline_results(
    fleet: &Fleet,
    split: &Split,
    normalizer: &Normalizer,
    negatives_per_positive: usize,
    seed: u64,
    modes: Option<&HashMap<String, FailureMode>>,
) -> Vec<MethodResult> {
    let smart_scores = smart_rule_scores(fleet, &split.test);
    let smart = evaluate_method("smart-rule", fleet, &split.test, &smart_scores, 0.5, modes);

    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED);
    let (sample, positive_weight) = balanced_sample(&split.train, negatives_per_positive, &mut rng);
    let inputs = normalizer.encode_windows(fleet, &sample, 1);
    let labels: Vec<bool> = sample.iter().map(|window| window.label).collect();
    let logistic = LogisticRegression::train(
        &inputs,
        &labels,
        positive_weight,
        &LogisticConfig {
            seed,
            ..LogisticConfig::default()
        },
    );
    let validation_scores = logistic.score_windows(fleet, normalizer, &split.validation);
    let validation_labels: Vec<bool> = split.validation.iter().map(|window| window.label).collect();
    let threshold = best_f1_threshold(&validation_scores, &validation_labels);
    let test_scores = logistic.score_windows(fleet, normalizer, &split.test);
    let logistic = evaluate_method(
        "logistic",
        fleet,
        &split.test,
        &test_scores,
        threshold,
        modes,
    );
    vec![smart, logistic]
}

fn optional(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_string(), |value| format!("{value:.1}"))
}

/// The results as Markdown: the main table, then PR-AUC by failure mode.
pub fn markdown(results: &[MethodResult], split: &Split) -> String {
    let mut out = String::new();
    let positives = split.test.iter().filter(|window| window.label).count();
    let _ = writeln!(
        out,
        "Test set: {} windows of held-out nodes on or after the time cutoff, {} positive.\n",
        split.test.len(),
        positives
    );
    let _ = writeln!(out, "| method | threshold | precision | recall | f1 | pr_auc | roc_auc | lead_time_days_median | lead_time_days_mean | failures_detected |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for result in results {
        let _ = writeln!(
            out,
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {}/{} |",
            result.name,
            result.threshold,
            result.at_threshold.precision,
            result.at_threshold.recall,
            result.at_threshold.f1,
            result.pr_auc,
            result.roc_auc,
            optional(result.lead_time_days_median),
            optional(result.lead_time_days_mean),
            result.failures_detected,
            result.failures_total
        );
    }
    let modes: Vec<&ModeResult> = results
        .first()
        .map(|first| first.per_mode.iter().collect())
        .unwrap_or_default();
    if !modes.is_empty() {
        let _ = writeln!(out, "\nPR-AUC by failure mode (healthy windows plus the windows of nodes that failed with that mode):\n");
        let mut header = String::from("| failure mode | failed nodes | positive windows |");
        let mut rule = String::from("|---|---|---|");
        for result in results {
            header.push_str(&format!(" {} |", result.name));
            rule.push_str("---|");
        }
        let _ = writeln!(out, "{header}\n{rule}");
        for mode in modes {
            let mut row = format!(
                "| {} | {} | {} |",
                mode.mode, mode.failed_nodes, mode.positive_windows
            );
            for result in results {
                let value = result
                    .per_mode
                    .iter()
                    .find(|other| other.mode == mode.mode)
                    .map_or(f64::NAN, |other| other.pr_auc);
                row.push_str(&format!(" {value:.3} |"));
            }
            let _ = writeln!(out, "{row}");
        }
    }
    out
}
