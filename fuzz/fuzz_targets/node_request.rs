//! Fuzz target `node_request`: a storage node request's headers and query, and its JSON bodies.
//! The properties it checks are documented at `shardlet_node::fuzzing::node_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardlet_node::fuzzing::node_request(data));
