//! A fleet's health history in memory: one dense daily series per node.
//!
//! Rows arrive in any order (one file per day, or one big file); the builder collects
//! them per node and densifies at the end. Days a node did not report (maintenance,
//! gaps in the data) become all-missing intervals so a window always spans consecutive
//! days.

use std::collections::HashMap;

use shardlet_predictor_api::schema::{FeatureValues, HealthRow, ALL_MISSING};

/// One node's history.
#[derive(Clone, Debug)]
pub struct NodeSeries {
    pub serial: String,
    pub model: String,
    /// Day number of `values[0]`.
    pub first_day: i32,
    /// One entry per day from `first_day`; all `NaN` on days without a report.
    pub values: Vec<FeatureValues>,
    /// Whether the node reported on that day.
    pub reported: Vec<bool>,
    /// The day the node failed (Backblaze `failure = 1`), if it did.
    pub failure_day: Option<i32>,
}

impl NodeSeries {
    pub fn last_day(&self) -> i32 {
        self.first_day + self.values.len() as i32 - 1
    }

    /// The values on `day`, or `None` outside the series.
    pub fn values_on(&self, day: i32) -> Option<&FeatureValues> {
        let offset = usize::try_from(day - self.first_day).ok()?;
        self.values.get(offset)
    }

    pub fn reported_on(&self, day: i32) -> bool {
        usize::try_from(day - self.first_day)
            .ok()
            .and_then(|offset| self.reported.get(offset).copied())
            .unwrap_or(false)
    }
}

/// Every node of a data set.
#[derive(Clone, Debug, Default)]
pub struct Fleet {
    pub nodes: Vec<NodeSeries>,
}

impl Fleet {
    pub fn first_day(&self) -> Option<i32> {
        self.nodes.iter().map(|node| node.first_day).min()
    }

    pub fn last_day(&self) -> Option<i32> {
        self.nodes.iter().map(NodeSeries::last_day).max()
    }

    pub fn failed_nodes(&self) -> usize {
        self.nodes
            .iter()
            .filter(|node| node.failure_day.is_some())
            .count()
    }

    pub fn row_count(&self) -> usize {
        self.nodes
            .iter()
            .map(|node| node.reported.iter().filter(|reported| **reported).count())
            .sum()
    }
}

#[derive(Default)]
struct PendingNode {
    model: String,
    rows: Vec<(i32, FeatureValues)>,
    failure_day: Option<i32>,
}

/// Collects rows in any order, then builds a `Fleet`.
#[derive(Default)]
pub struct FleetBuilder {
    nodes: HashMap<String, PendingNode>,
}

impl FleetBuilder {
    pub fn add(&mut self, row: HealthRow) {
        let node = self.nodes.entry(row.serial).or_default();
        if node.model.is_empty() {
            node.model = row.model;
        }
        if row.failure {
            // A drive reports failure once; if a data set says it twice, the first
            // failure is the one a predictor should have seen coming.
            node.failure_day = Some(node.failure_day.map_or(row.day, |day| day.min(row.day)));
        }
        node.rows.push((row.day, row.values));
    }

    /// Densifies every node's rows into a daily series, sorted by serial so the result
    /// does not depend on the order rows arrived in. Rows after a node's failure day are
    /// dropped (a replaced drive that reuses a serial would otherwise leak the future).
    pub fn build(self) -> Fleet {
        let mut nodes: Vec<NodeSeries> = self
            .nodes
            .into_iter()
            .filter_map(|(serial, mut pending)| {
                if let Some(failure_day) = pending.failure_day {
                    pending.rows.retain(|(day, _)| *day <= failure_day);
                }
                pending.rows.sort_by_key(|(day, _)| *day);
                let first_day = pending.rows.first()?.0;
                let last_day = pending.rows.last()?.0;
                let length = usize::try_from(last_day - first_day + 1).ok()?;
                let mut values = vec![ALL_MISSING; length];
                let mut reported = vec![false; length];
                for (day, row_values) in pending.rows {
                    let offset = (day - first_day) as usize;
                    values[offset] = row_values;
                    reported[offset] = true;
                }
                Some(NodeSeries {
                    serial,
                    model: pending.model,
                    first_day,
                    values,
                    reported,
                    failure_day: pending.failure_day,
                })
            })
            .collect();
        nodes.sort_by(|left, right| left.serial.cmp(&right.serial));
        Fleet { nodes }
    }
}
