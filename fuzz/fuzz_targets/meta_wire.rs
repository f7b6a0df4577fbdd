//! Fuzz target `meta_wire`: meta-raft request and answer bodies, stored entries, snapshots.
//! The properties it checks are documented at `shardlet_meta::fuzzing::meta_wire`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardlet_meta::fuzzing::meta_wire(data));
