//! Fuzz target `s3_checksums`: Content-MD5, x-amz-checksum-* headers and trailers.
//! The properties it checks are documented at `shardlet_gateway::fuzzing::s3_checksums`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardlet_gateway::fuzzing::s3_checksums(data));
