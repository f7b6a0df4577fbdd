//! Fuzz target `backblaze_csv`: the Backblaze drive-stats CSV importer.
//! The properties it checks are documented at `shardlet_predictor::fuzzing::backblaze_csv`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardlet_predictor::fuzzing::backblaze_csv(data));
