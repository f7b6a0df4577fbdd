//! Fuzz target `predictor_wire`: the predictor sidecar's request and answer bodies.
//! The properties it checks are documented at `shardlet_predictor_api::fuzzing::predictor_wire`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardlet_predictor_api::fuzzing::predictor_wire(data));
