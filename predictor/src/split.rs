//! The honest split: by node (no node in two splits) and by time (test after train).
//!
//! Nodes go to train / validation / test by a seeded hash of their serial, so the
//! assignment does not depend on import order and evaluation can rebuild it from the
//! seed saved with the model. Time is cut at `cutoff_day`: training and validation
//! windows end at least `horizon_days` before the cutoff (so even their labels are
//! known before it); test windows end on or after it, and at least `horizon_days - 1`
//! days before the data ends (so their labels are observed, not censored).

use serde::{Deserialize, Serialize};

use crate::dataset::Fleet;
use crate::features::{label, Window};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Part {
    Train,
    Validation,
    Test,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitConfig {
    pub seed: u64,
    pub train_node_fraction: f64,
    pub validation_node_fraction: f64,
    /// Where in the data's day range the time cutoff lies, 0..1.
    pub cutoff_fraction: f64,
    pub horizon_days: u32,
}

impl SplitConfig {
    pub fn new(seed: u64, horizon_days: u32) -> Self {
        Self {
            seed,
            train_node_fraction: 0.5,
            validation_node_fraction: 0.15,
            cutoff_fraction: 0.5,
            horizon_days,
        }
    }

    /// Which part a node belongs to: a stable FNV-1a hash of (seed, serial).
    pub fn part_of(&self, serial: &str) -> Part {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ self.seed;
        for byte in serial.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        // Finalise (splitmix64) so consecutive serials spread evenly.
        hash ^= hash >> 30;
        hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        hash ^= hash >> 27;
        let fraction = (hash >> 11) as f64 / (1u64 << 53) as f64;
        if fraction < self.train_node_fraction {
            Part::Train
        } else if fraction < self.train_node_fraction + self.validation_node_fraction {
            Part::Validation
        } else {
            Part::Test
        }
    }
}

/// The windows of each part.
#[derive(Clone, Debug, Default)]
pub struct Split {
    pub train: Vec<Window>,
    pub validation: Vec<Window>,
    pub test: Vec<Window>,
    pub cutoff_day: i32,
    /// Last day whose data training may see (features and labels).
    pub train_last_day: i32,
}

impl Split {
    /// Every window of every part. Only days a node reported on are windows: on other
    /// days there is no new sample to score.
    pub fn build(fleet: &Fleet, config: &SplitConfig) -> anyhow::Result<Self> {
        let (Some(first_day), Some(last_day)) = (fleet.first_day(), fleet.last_day()) else {
            anyhow::bail!("the data set is empty");
        };
        let horizon = config.horizon_days as i32;
        let cutoff_day =
            first_day + ((last_day - first_day) as f64 * config.cutoff_fraction) as i32;
        let train_last_window_day = cutoff_day - horizon;
        let test_last_window_day = last_day - horizon + 1;
        anyhow::ensure!(
            train_last_window_day > first_day && test_last_window_day >= cutoff_day,
            "the data spans {} days: too short for a {horizon}-day horizon on both sides of the time cutoff",
            last_day - first_day + 1
        );
        let mut split = Split {
            cutoff_day,
            train_last_day: cutoff_day - 1,
            ..Split::default()
        };
        for (node_index, node) in fleet.nodes.iter().enumerate() {
            let part = config.part_of(&node.serial);
            let (from, to, windows) = match part {
                Part::Train => (first_day, train_last_window_day, &mut split.train),
                Part::Validation => (first_day, train_last_window_day, &mut split.validation),
                Part::Test => (cutoff_day, test_last_window_day, &mut split.test),
            };
            for day in from.max(node.first_day)..=to.min(node.last_day()) {
                if node.reported_on(day) {
                    windows.push(Window {
                        node: node_index as u32,
                        day,
                        label: label(node, day, config.horizon_days),
                    });
                }
            }
        }
        Ok(split)
    }
}
