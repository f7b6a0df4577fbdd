//! Fuzz target `model_records`: every metadata record's stored form, index keys.
//! The properties it checks are documented at `shardlet_model::fuzzing::model_records`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardlet_model::fuzzing::model_records(data));
