//! Driving `shardlet controller` processes from tests: flags that make it act in
//! seconds, and its `/metrics` read as numbers.

use crate::fixtures::metric_total;
use crate::service::ServiceProcess;

/// Flags (`--flag value` pairs) that make a controller act in seconds. Scrub and
/// transitions are off unless a test turns them on, so each test sees only the
/// behaviour it checks.
pub const CONTROLLER_FAST_FLAGS: [&str; 14] = [
    "--down-grace-seconds",
    "3",
    "--suspect-after-seconds",
    "1",
    "--probe-interval-seconds",
    "0.25",
    "--lease-seconds",
    "3",
    "--repair-interval-seconds",
    "0.5",
    "--scrub-interval-seconds",
    "0",
    "--transition-interval-seconds",
    "0",
];

/// `GET path` on the controller, retried (bounded) until it answers 200.
pub async fn controller_get(controller: &ServiceProcess, path: &str) -> String {
    controller.get_text(path).await
}

/// The controller's `/v1/status`, signed with the `controller` key (as `shardlet admin
/// nodes --controller` signs it), retried (bounded) until it answers 200.
pub async fn controller_status(controller: &ServiceProcess) -> String {
    let key = crate::signing::derive(controller.cluster_secret(), "controller");
    controller.get_signed_text("/v1/status", &key).await
}

/// The total of metric family `name` on the controller's `/metrics`, 0 when absent.
pub async fn controller_metric(controller: &ServiceProcess, name: &str) -> f64 {
    metric_total(&controller_get(controller, "/metrics").await, name).unwrap_or(0.0)
}
