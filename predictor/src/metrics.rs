//! Classification metrics for imbalanced data: precision/recall/F1 at a threshold,
//! PR-AUC (average precision), ROC-AUC, the PR curve, and the F1-optimal threshold.
//! Tied scores are handled as one step (a binary score like the SMART rule gets the
//! PR-AUC it deserves, not one inflated by an arbitrary tie order).

/// Precision, recall and F1 of `score >= threshold`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AtThreshold {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

pub fn at_threshold(scores: &[f32], labels: &[bool], threshold: f32) -> AtThreshold {
    let mut true_positives = 0.0;
    let mut false_positives = 0.0;
    let mut false_negatives = 0.0;
    for (score, label) in scores.iter().zip(labels) {
        match (*score >= threshold, *label) {
            (true, true) => true_positives += 1.0,
            (true, false) => false_positives += 1.0,
            (false, true) => false_negatives += 1.0,
            (false, false) => {}
        }
    }
    let precision = if true_positives + false_positives > 0.0 {
        true_positives / (true_positives + false_positives)
    } else {
        0.0
    };
    let recall = if true_positives + false_negatives > 0.0 {
        true_positives / (true_positives + false_negatives)
    } else {
        0.0
    };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    AtThreshold {
        precision,
        recall,
        f1,
    }
}

/// One point of the PR curve: everything scoring `>= threshold` is flagged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurvePoint {
    pub threshold: f32,
    pub precision: f64,
    pub recall: f64,
}

/// The PR curve, one point per distinct score, from the highest threshold down.
pub fn pr_curve(scores: &[f32], labels: &[bool]) -> Vec<CurvePoint> {
    let positives = labels.iter().filter(|label| **label).count() as f64;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|left, right| scores[*right].total_cmp(&scores[*left]));
    let mut points = Vec::new();
    let (mut true_positives, mut flagged) = (0.0, 0.0);
    let mut position = 0;
    while position < order.len() {
        let threshold = scores[order[position]];
        while position < order.len() && scores[order[position]] == threshold {
            flagged += 1.0;
            if labels[order[position]] {
                true_positives += 1.0;
            }
            position += 1;
        }
        points.push(CurvePoint {
            threshold,
            precision: true_positives / flagged,
            recall: if positives > 0.0 {
                true_positives / positives
            } else {
                0.0
            },
        });
    }
    points
}

/// Average precision: the sum over curve steps of precision × recall gained.
pub fn pr_auc(scores: &[f32], labels: &[bool]) -> f64 {
    let mut previous_recall = 0.0;
    let mut area = 0.0;
    for point in pr_curve(scores, labels) {
        area += point.precision * (point.recall - previous_recall);
        previous_recall = point.recall;
    }
    area
}

/// ROC-AUC via the Mann–Whitney U statistic with average ranks for ties.
pub fn roc_auc(scores: &[f32], labels: &[bool]) -> f64 {
    let positives = labels.iter().filter(|label| **label).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return f64::NAN;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|left, right| scores[*left].total_cmp(&scores[*right]));
    let mut rank_sum_of_positives = 0.0;
    let mut position = 0;
    while position < order.len() {
        let mut end = position;
        while end < order.len() && scores[order[end]] == scores[order[position]] {
            end += 1;
        }
        // Ranks are 1-based; tied items share the average of their ranks.
        let average_rank = (position + 1 + end) as f64 / 2.0;
        for item in &order[position..end] {
            if labels[*item] {
                rank_sum_of_positives += average_rank;
            }
        }
        position = end;
    }
    (rank_sum_of_positives - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// The threshold maximising F1 (chosen on validation data, never on test data).
pub fn best_f1_threshold(scores: &[f32], labels: &[bool]) -> f32 {
    let mut best = (f64::MIN, 0.5);
    for point in pr_curve(scores, labels) {
        let f1 = if point.precision + point.recall > 0.0 {
            2.0 * point.precision * point.recall / (point.precision + point.recall)
        } else {
            0.0
        };
        if f1 > best.0 {
            best = (f1, point.threshold);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_ranking_scores_one_and_reversed_scores_zero_roc() {
        let labels = [false, false, true, true];
        assert_eq!(pr_auc(&[0.1, 0.2, 0.8, 0.9], &labels), 1.0);
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &labels), 1.0);
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &labels), 0.0);
    }

    #[test]
    fn constant_score_is_worth_the_base_rate() {
        let labels = [true, false, false, false];
        assert!((pr_auc(&[1.0; 4], &labels) - 0.25).abs() < 1e-12);
        assert!((roc_auc(&[1.0; 4], &labels) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn threshold_metrics_count_correctly() {
        let result = at_threshold(&[0.9, 0.6, 0.4, 0.1], &[true, false, true, false], 0.5);
        assert_eq!(result.precision, 0.5);
        assert_eq!(result.recall, 0.5);
        assert_eq!(
            best_f1_threshold(&[0.9, 0.6, 0.4, 0.1], &[true, false, true, false]),
            0.4
        );
    }
}
