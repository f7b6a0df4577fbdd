//! Fuzz target `fragment_file`: a stored fragment: header, block table, payload, damage.
//! The properties it checks are documented at `shardlet_node::fuzzing::fragment_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardlet_node::fuzzing::fragment_file(data));
