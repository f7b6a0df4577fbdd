//! The fleet simulator is deterministic by seed and its output is what the importer
//! reads, with the failure modes recorded beside it.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use shardlet_predictor::backblaze::import_fleet;
use shardlet_predictor::simulator::{
    read_failure_modes, simulate, SimulationConfig, FAILURE_MODES_FILE,
};

fn config(seed: u64) -> SimulationConfig {
    SimulationConfig {
        nodes: 120,
        days: 60,
        seed,
        failure_rate_scale: 4.0,
    }
}

fn contents(directory: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn same_seed_same_bytes_other_seed_other_fleet() {
    let (first, second, third) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    simulate(&config(11), first.path(), |_| {}).unwrap();
    simulate(&config(11), second.path(), |_| {}).unwrap();
    simulate(&config(12), third.path(), |_| {}).unwrap();
    let first_files = contents(first.path());
    assert_eq!(
        first_files.len(),
        61,
        "60 daily files and the failure-mode file"
    );
    assert_eq!(first_files, contents(second.path()));
    assert_ne!(first_files, contents(third.path()));
}

#[test]
fn imported_failures_match_the_side_file() {
    let directory = tempfile::tempdir().unwrap();
    let records = simulate(&config(5), directory.path(), |_| {}).unwrap();
    assert!(
        !records.is_empty(),
        "a 4x failure rate over 120 nodes must produce failures"
    );
    let fleet = import_fleet(directory.path(), |_, _| {}).unwrap();
    assert_eq!(fleet.nodes.len(), 120);
    let modes = read_failure_modes(directory.path()).unwrap().unwrap();
    assert_eq!(modes.len(), records.len());
    for record in &records {
        let node = fleet
            .nodes
            .iter()
            .find(|node| node.serial == record.serial)
            .unwrap();
        assert_eq!(
            node.failure_day,
            Some(record.failure_day),
            "{}",
            record.serial
        );
        assert_eq!(
            node.last_day(),
            record.failure_day,
            "a failed node stops reporting"
        );
        assert_eq!(modes[&record.serial], record.mode);
    }
    assert_eq!(fleet.failed_nodes(), records.len());
    assert!(directory.path().join(FAILURE_MODES_FILE).is_file());
}

#[test]
fn simulator_rejects_absurd_sizes() {
    let directory = tempfile::tempdir().unwrap();
    let mut too_many = config(1);
    too_many.days = 100_000;
    assert!(simulate(&too_many, directory.path(), |_| {}).is_err());
    let mut none = config(1);
    none.nodes = 0;
    assert!(simulate(&none, directory.path(), |_| {}).is_err());
}
