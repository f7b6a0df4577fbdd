//! A real Prometheus server (Debian's `prometheus`) scraping a running `shardlet dev`
//! every second, with Shardlet's alert rules loaded: what the test writes through S3 is
//! what Prometheus's HTTP API answers.

use std::path::Path;
use std::time::Duration;

use shardlet_testkit::ports::free_port;
use shardlet_testkit::process::ChildProcess;
use shardlet_testkit::{shardlet_binary, wait_until, DevCluster, S3Client};

use crate::alerts::prometheus_tool;
use crate::dashboard::DEV_DEADLINE;
use crate::exported::dev_endpoints;
use crate::expressions::{repository_root, RULES};

/// Objects the test writes.
const PUTS: usize = 20;
/// Prometheus start-up (TSDB, rule loading) on a loaded 2-core machine.
const PROMETHEUS_DEADLINE: Duration = Duration::from_secs(60);

/// A `prometheus.yml` scraping `endpoints` (grouped by job) every second and
/// evaluating `rules` every second.
fn configuration(endpoints: &[(&str, String)], rules: &Path) -> String {
    let mut text = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {}\nscrape_configs:\n",
        rules.display()
    );
    let mut jobs: Vec<&str> = endpoints.iter().map(|(job, _)| *job).collect();
    jobs.dedup();
    for job in jobs {
        let targets: Vec<String> = endpoints
            .iter()
            .filter(|(name, _)| *name == job)
            .map(|(_, address)| format!("'{address}'"))
            .collect();
        text.push_str(&format!(
            "  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ));
    }
    text
}

/// Prometheus's own process: killed by pid when dropped (also on a panic).
struct Prometheus {
    process: ChildProcess,
    url: String,
    http: reqwest::Client,
}

impl Prometheus {
    fn start(root: &Path, configuration: &str) -> Self {
        let config_path = root.join("prometheus.yml");
        std::fs::write(&config_path, configuration).expect("prometheus.yml");
        let address = format!("127.0.0.1:{}", free_port());
        let mut command = prometheus_tool("prometheus");
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                root.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={address}"));
        let process = ChildProcess::spawn("prometheus", command, &root.join("prometheus.log"))
            .unwrap_or_else(|error| panic!("prometheus does not start: {error}"));
        Self {
            process,
            url: format!("http://{address}"),
            http: reqwest::Client::new(),
        }
    }

    /// `GET /api/v1/PATH?query`'s `data`, or `None` while the server does not answer.
    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Option<serde_json::Value> {
        let response = self
            .http
            .get(format!("{}/api/v1/{path}", self.url))
            .query(query)
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = response.json().await.ok()?;
        assert_eq!(body["status"], "success", "{path} {query:?}: {body}");
        Some(body["data"].clone())
    }

    /// The single value of an instant query's answer, `None` while it has none.
    async fn value(&self, query: &str) -> Option<f64> {
        let data = self.api("query", &[("query", query)]).await?;
        let result = data["result"].as_array()?;
        assert!(result.len() <= 1, "{query}: {data}");
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    fn log(&self) -> String {
        self.process.log_tail(40)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log());
        }
        self.process.kill();
    }
}

#[tokio::test]
async fn a_real_prometheus_counts_the_puts_made_through_shardlet_dev() {
    let binary = shardlet_binary!();
    let dev = DevCluster::start(&binary).await;
    let endpoints = dev_endpoints(&dev.ports);
    let root = DevCluster::new_root(&binary);
    let prometheus = Prometheus::start(
        root.path(),
        &configuration(&endpoints, &repository_root().join(RULES)),
    );

    // Every target scraped and up.
    let prometheus = &prometheus;
    let expected_targets = endpoints.len();
    wait_until(
        PROMETHEUS_DEADLINE.max(DEV_DEADLINE),
        "every scrape target is up",
        || async move {
            let Some(data) = prometheus.api("targets", &[("state", "active")]).await else {
                return false;
            };
            let targets = data["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            targets.len() == expected_targets && targets.iter().all(|t| t["health"] == "up")
        },
    )
    .await;

    let client = S3Client::new(dev.access.clone());
    client
        .create_bucket("observed")
        .await
        .expect("create bucket");
    for index in 0..PUTS {
        client
            .put_object(
                "observed",
                &format!("object-{index}"),
                vec![7; 1000 + index],
                None,
            )
            .await
            .unwrap_or_else(|error| panic!("PUT {index}: {error:?}"));
    }

    // The counter Prometheus stored reaches exactly the number of PUTs (never more).
    let query = r#"sum(shardlet_gateway_requests_total{operation="put_object",outcome="ok"})"#;
    wait_until(
        DEV_DEADLINE,
        "Prometheus reports every PUT",
        || async move {
            let value = prometheus.value(query).await;
            if let Some(value) = value {
                assert!(value <= PUTS as f64, "{query} = {value} after {PUTS} PUTs");
            }
            value == Some(PUTS as f64)
        },
    )
    .await;

    // The alert rules loaded from the committed file evaluate without error on real
    // series (a rule naming a label wrongly still evaluates: the promtool tests and the
    // exported-metrics test cover that).
    wait_until(
        DEV_DEADLINE,
        "every alert rule evaluated without error",
        || async move {
            let Some(data) = prometheus.api("rules", &[]).await else {
                return false;
            };
            let rules: Vec<serde_json::Value> = data["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            for rule in &rules {
                assert_ne!(
                    rule["health"], "err",
                    "rule {}: {}",
                    rule["name"], rule["lastError"]
                );
            }
            !rules.is_empty() && rules.iter().all(|rule| rule["health"] == "ok")
        },
    )
    .await;

    // Every target is still up after the load.
    let down = prometheus
        .value(r#"count(up == 0) or vector(0)"#)
        .await
        .expect("an answer");
    assert_eq!(down, 0.0, "targets down");
}
