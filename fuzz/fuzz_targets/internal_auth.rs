//! Fuzz target `internal_auth`: the signature headers of internal requests, signed
//! answers, key names and key files. The properties it checks are documented at
//! `shardlet_auth::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardlet_auth::fuzzing::internal_auth(data));
