//! Fuzz target `s3_request`: conditional headers, copy sources, listing parameters.
//! The properties it checks are documented at `shardlet_gateway::fuzzing::s3_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardlet_gateway::fuzzing::s3_request(data));
