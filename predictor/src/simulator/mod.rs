//! A fleet simulator producing labelled health traces in the Backblaze CSV format, so
//! that the importer is the one data path into training and evaluation.
//!
//! Every node draws from its own ChaCha8 stream seeded from (seed, node index): the
//! output depends only on the configuration, not on iteration order or thread timing.
//! Every disk model, failure mode and noise source is documented, with its parameters,
//! in docs/predictor.md ("The fleet simulator"); keep the two in step.
//!
//! Files, lowest first: `config` (what to simulate and what a failure is) → `node` (one
//! node's day-by-day health) → `output` (the CSV files); this file drives them.

mod config;
mod node;
mod output;

use std::io::Write;
use std::path::Path;

use crate::dates::format_day;

pub use config::{FailureMode, FailureRecord, SimulationConfig, DAYS_MAX, FIRST_DAY, NODES_MAX};
use node::SimulatedNode;
use output::{header, write_atomically, write_row};

/// Side file naming each failed node's failure mode (not read by the importer).
pub const FAILURE_MODES_FILE: &str = "failure_modes.csv";

/// Simulates the fleet into `out` (created if needed): one `YYYY-MM-DD.csv` per day and
/// the `failure_modes.csv` side file. `on_day_done` is called after each day.
pub fn simulate(
    config: &SimulationConfig,
    out: &Path,
    mut on_day_done: impl FnMut(u32),
) -> anyhow::Result<Vec<FailureRecord>> {
    anyhow::ensure!(
        (1..=NODES_MAX).contains(&config.nodes),
        "--nodes must be 1 to {NODES_MAX}"
    );
    anyhow::ensure!(
        (1..=DAYS_MAX).contains(&config.days),
        "--days must be 1 to {DAYS_MAX}"
    );
    anyhow::ensure!(
        config.failure_rate_scale.is_finite() && (0.0..=100.0).contains(&config.failure_rate_scale),
        "failure rate scale must be 0 to 100"
    );
    std::fs::create_dir_all(out)?;
    let mut nodes: Vec<SimulatedNode> = (0..config.nodes)
        .map(|node_index| SimulatedNode::new(config, node_index))
        .collect();
    let header = header();
    for day in 0..config.days {
        let date = format_day(FIRST_DAY + day as i32);
        write_atomically(&out.join(format!("{date}.csv")), |writer| {
            writeln!(writer, "{header}")?;
            for node in nodes.iter_mut() {
                if let Some((values, failing)) = node.step(day) {
                    write_row(writer, &date, node, &values, failing)?;
                }
            }
            Ok(())
        })?;
        on_day_done(day);
    }
    let failures: Vec<FailureRecord> = nodes
        .iter()
        .filter_map(SimulatedNode::failure_record)
        .collect();
    write_atomically(&out.join(FAILURE_MODES_FILE), |writer| {
        writeln!(writer, "serial_number,model,failure_mode,failure_date")?;
        for record in &failures {
            writeln!(
                writer,
                "{},{},{},{}",
                record.serial,
                record.model,
                record.mode.name(),
                format_day(record.failure_day)
            )?;
        }
        Ok(())
    })?;
    Ok(failures)
}

/// Reads the side file; `Ok(None)` when the directory has none (real data).
pub fn read_failure_modes(
    directory: &Path,
) -> anyhow::Result<Option<std::collections::HashMap<String, FailureMode>>> {
    let path = directory.join(FAILURE_MODES_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let mut reader = csv::Reader::from_path(&path)?;
    let mut modes = std::collections::HashMap::new();
    for (position, record) in reader.records().enumerate() {
        let line = position + 2;
        let record =
            record.map_err(|error| anyhow::anyhow!("{}:{line}: {error}", path.display()))?;
        let (Some(serial), Some(mode)) = (record.get(0), record.get(2)) else {
            anyhow::bail!(
                "{}:{line}: expected serial_number,model,failure_mode,failure_date",
                path.display()
            );
        };
        let mode = FailureMode::from_name(mode).ok_or_else(|| {
            anyhow::anyhow!("{}:{line}: unknown failure mode {mode:?}", path.display())
        })?;
        modes.insert(serial.to_string(), mode);
    }
    Ok(Some(modes))
}
