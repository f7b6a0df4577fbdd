//! Fuzz target `ids`: text and binary forms of every id, CRC32C text.
//! The properties it checks are documented at `shardlet_core::fuzzing::ids`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardlet_core::fuzzing::ids(data));
