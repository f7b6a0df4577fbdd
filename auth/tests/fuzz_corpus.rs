//! Every committed fuzz input of this crate's targets (`fuzz/corpus/<target>/`, the
//! minimised corpus, and `fuzz/regressions/<target>/`, inputs that once failed) replayed
//! through the same check the fuzz target runs, on the stable toolchain.

use std::path::{Path, PathBuf};

use shardlet_auth::fuzzing::TARGETS;

/// The inputs of `target`, sorted by path so a failure report is stable.
fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files: Vec<PathBuf> = ["corpus", "regressions"]
        .iter()
        .filter_map(|kind| std::fs::read_dir(fuzz.join(kind).join(target)).ok())
        .flatten()
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_committed_fuzz_input_still_passes_its_target_checks() {
    let mut failures = Vec::new();
    for (target, check) in TARGETS {
        let files = inputs(target);
        assert!(!files.is_empty(), "no corpus for fuzz target {target}");
        for file in files {
            let bytes = std::fs::read(&file).unwrap_or_else(|error| panic!("{file:?}: {error}"));
            if std::panic::catch_unwind(|| check(&bytes)).is_err() {
                failures.push(file);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "inputs that fail their checks: {failures:#?}"
    );
}
