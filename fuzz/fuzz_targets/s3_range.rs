//! Fuzz target `s3_range`: Range and x-amz-copy-source-range over an object's shardlets.
//! The properties it checks are documented at `shardlet_gateway::fuzzing::s3_range`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardlet_gateway::fuzzing::s3_range(data));
