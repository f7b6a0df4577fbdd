//! Every port refuses strangers' abuse and keeps serving: real processes (metadata
//! member, storage nodes, gateway, controller) started with a small connection limit
//! and a short header-read timeout, attacked over loopback by hundreds of idle and
//! trickling connections while the tests send signed requests. Every wait polls a
//! condition with a deadline; nothing asserts how long anything took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod slowloris;
mod tls;
