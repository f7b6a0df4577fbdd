//! Fuzz target `model_files`: the model artifact: model.json and the weights file's header.
//! The properties it checks are documented at `shardlet_predictor::fuzzing::model_files`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardlet_predictor::fuzzing::model_files(data));
