//! Fuzz target `topology`: the topology file (TOML).
//! The properties it checks are documented at `shardlet_core::fuzzing::topology`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardlet_core::fuzzing::topology(data));
