//! Fuzz target `health_report`: a storage node's /health report and its schema row.
//! The properties it checks are documented at `shardlet_predictor_api::fuzzing::health_report`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardlet_predictor_api::fuzzing::health_report(data));
