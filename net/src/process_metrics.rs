//! What every service exports besides its own metrics: `shardlet_build_info` (which
//! build runs) and the `process_*` metrics of the `prometheus` crate's process
//! collector (CPU, resident memory, open file descriptors, start time).
//!
//! They live in a small registry of their own, [`ProcessMetrics`], that a service's
//! `/metrics` renders after its own registry ([`encode`]): the controller's and the
//! metadata member's registries add a `shardlet_controller_` / `shardlet_meta_` prefix
//! (and the member a `member` label) to everything registered in them, which would turn
//! `process_cpu_seconds_total` into a name no dashboard knows. Each service builds its
//! own; several services in one test process each get one (the process collector reads
//! `/proc/self` at every scrape, so they all report the same process, as they should).

use std::sync::OnceLock;

use prometheus::proto::MetricFamily;
use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};

/// The commit the binary was built from, set once by its `main` (only a binary's build
/// script can ask git; libraries are built once for every commit that does not change
/// them).
static BUILD_COMMIT: OnceLock<String> = OnceLock::new();

/// Commit label when the binary did not say (a service started inside a test process,
/// or a build outside a git checkout).
pub const UNKNOWN_COMMIT: &str = "unknown";

/// Records the commit `shardlet_build_info` reports; the first call wins.
pub fn set_build_commit(commit: &str) {
    let _ = BUILD_COMMIT.set(commit.to_string());
}

/// The commit `shardlet_build_info` reports.
pub fn build_commit() -> &'static str {
    BUILD_COMMIT.get().map_or(UNKNOWN_COMMIT, String::as_str)
}

/// The service's build information and process metrics, in their own registry.
pub struct ProcessMetrics {
    registry: Registry,
}

impl ProcessMetrics {
    /// `service` is the `service` label of `shardlet_build_info` (`gateway`,
    /// `controller`, `meta`, `node`, `predictor`).
    pub fn new(service: &str) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let build_info = IntGaugeVec::new(
            Opts::new(
                "shardlet_build_info",
                "1 for the service, version and commit of the running build",
            ),
            &["service", "version", "commit"],
        )?;
        build_info
            .with_label_values(&[service, env!("CARGO_PKG_VERSION"), build_commit()])
            .set(1);
        registry.register(Box::new(build_info))?;
        register_process_collector(&registry)?;
        Ok(Self { registry })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// The process collector, on Linux (the only platform whose `/proc` it reads).
#[cfg(target_os = "linux")]
fn register_process_collector(registry: &Registry) -> Result<(), prometheus::Error> {
    match registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    )) {
        // One collector per registry; a second registration changes nothing.
        Ok(()) | Err(prometheus::Error::AlreadyReg) => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(not(target_os = "linux"))]
fn register_process_collector(_registry: &Registry) -> Result<(), prometheus::Error> {
    Ok(())
}

/// The text exposition of the service's families followed by the process metrics.
pub fn gather(service: &Registry, process: &ProcessMetrics) -> Vec<MetricFamily> {
    let mut families = service.gather();
    families.extend(process.registry.gather());
    families
}

/// [`gather`], encoded in the Prometheus text format.
pub fn encode(service: &Registry, process: &ProcessMetrics) -> Result<String, prometheus::Error> {
    let mut buffer = Vec::with_capacity(16 * 1024);
    TextEncoder::new().encode(&gather(service, process), &mut buffer)?;
    String::from_utf8(buffer).map_err(|error| prometheus::Error::Msg(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_and_process_metrics_render_without_the_service_prefix() {
        let prefixed = Registry::new_custom(Some("shardlet_controller".into()), None)
            .unwrap_or_else(|error| panic!("{error}"));
        let gauge = prometheus::IntGauge::new("lease_active", "help")
            .unwrap_or_else(|error| panic!("{error}"));
        prefixed
            .register(Box::new(gauge))
            .unwrap_or_else(|error| panic!("{error}"));
        let process = ProcessMetrics::new("controller").unwrap_or_else(|error| panic!("{error}"));
        // A second service in the same process: its own registry, no panic.
        let second = ProcessMetrics::new("node").unwrap_or_else(|error| panic!("{error}"));
        let text = encode(&prefixed, &process).unwrap_or_else(|error| panic!("{error}"));
        assert!(
            text.contains("shardlet_controller_lease_active 0"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "shardlet_build_info{{commit=\"{}\",service=\"controller\",version=\"{}\"}} 1",
                build_commit(),
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
            "process_virtual_memory_bytes",
        ] {
            assert!(
                text.contains(&format!("\n{name} ")),
                "{name} missing:\n{text}"
            );
        }
        let second_text =
            encode(&Registry::new(), &second).unwrap_or_else(|error| panic!("{error}"));
        assert!(second_text.contains("service=\"node\""), "{second_text}");
    }
}
