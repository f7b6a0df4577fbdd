//! The gateway under crashes: a cluster of real processes (metadata member, storage
//! nodes, gateway) started by the test itself, so that any one of them can be killed
//! with SIGKILL and restarted while clients keep working.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod faults;
mod readiness;
mod upload_deadline;
