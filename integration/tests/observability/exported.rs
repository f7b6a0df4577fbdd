//! What a running `shardlet dev` exports: every service's `/metrics` scraped over HTTP
//! (never grepped from source), as metric families and the label names their samples
//! carry; and the check of selectors against it.

use std::collections::{BTreeMap, BTreeSet};

use shardlet_testkit::dev_cluster::DEV_NODE_COUNT;
use shardlet_testkit::DevPorts;

use crate::expressions::{Expression, Selector};

/// Metrics an expression may name that no Shardlet service exports: Prometheus makes
/// them itself for every target.
pub const PROMETHEUS_OWN: &[&str] = &["up"];

/// Metrics that exist only on a metadata group of several members: the leader reports
/// each follower's lag, and `shardlet dev` runs one member, so it has no series there
/// (docs/metrics.md). The many-member suites (`meta_raft`, `many_hosts`) run where it
/// has some.
pub const ONLY_WITH_SEVERAL_MEMBERS: &[&str] = &["shardlet_meta_raft_follower_lag_entries"];

/// Labels Prometheus (or its Kubernetes service discovery) puts on every series.
const TARGET_LABELS: &[&str] = &["namespace", "job", "instance"];

/// The `/metrics` endpoints of one `shardlet dev`, by Prometheus job name. The
/// predictor sidecar is left out: `shardlet dev` starts it only when a trained model
/// exists, and no panel names a predictor-only metric.
pub fn dev_endpoints(ports: &DevPorts) -> Vec<(&'static str, String)> {
    let mut endpoints = vec![
        (
            "shardlet-gateway",
            format!("127.0.0.1:{}", ports.gateway_admin),
        ),
        ("shardlet-meta", format!("127.0.0.1:{}", ports.meta)),
        (
            "shardlet-controller",
            format!("127.0.0.1:{}", ports.controller),
        ),
    ];
    for node in 0..DEV_NODE_COUNT {
        endpoints.push((
            "shardlet-node",
            format!("127.0.0.1:{}", ports.node_base + node),
        ));
    }
    endpoints
}

/// Metric families and the label names seen on their samples.
#[derive(Default, Clone, Debug)]
pub struct Exported {
    /// Sample name (`x_bucket`, `x_total`, ...) → label names seen on it.
    samples: BTreeMap<String, BTreeSet<String>>,
    /// Families declared by `# TYPE name kind`, with their kind.
    families: BTreeMap<String, String>,
}

impl Exported {
    /// Adds one exposition-format text.
    pub fn add(&mut self, text: &str) {
        for line in text.lines() {
            if let Some(declaration) = line.strip_prefix("# TYPE ") {
                let mut words = declaration.split_whitespace();
                if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                    self.families.insert(name.to_string(), kind.to_string());
                }
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            let labels = self.samples.entry(line[..end].to_string()).or_default();
            if line[end..].starts_with('{') {
                let inside = &line[end + 1..line.rfind('}').unwrap_or(line.len())];
                labels.extend(label_names(inside));
            }
        }
    }

    /// The samples of `metric` as a selector names it (`x_bucket` of a histogram `x`):
    /// the label names seen, or `None` when nothing of that name is exported.
    fn labels_of(&self, metric: &str) -> Option<BTreeSet<String>> {
        if let Some(labels) = self.samples.get(metric) {
            return Some(labels.clone());
        }
        // A family declared with no sample yet (a labelled metric nobody touched):
        // exported by name, but which labels it will carry cannot be seen.
        if self.families.contains_key(metric) {
            return Some(BTreeSet::new());
        }
        None
    }
}

/// The label names of `name="value",other="..."` (values may hold commas and escaped
/// quotes).
fn label_names(inside: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = inside;
    while let Some(equals) = rest.find('=') {
        names.push(
            rest[..equals]
                .trim()
                .trim_start_matches(',')
                .trim()
                .to_string(),
        );
        // Skip the quoted value.
        let value = &rest[equals + 1..];
        let mut escaped = false;
        let mut end = value.len();
        for (index, character) in value.char_indices().skip(1) {
            match character {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = index + 1;
                    break;
                }
                _ => escaped = false,
            }
        }
        rest = &value[end..];
    }
    names
}

/// Scrapes every endpoint; panics naming one that does not answer 200.
pub async fn scrape(endpoints: &[(&str, String)]) -> Exported {
    let client = reqwest::Client::new();
    let mut exported = Exported::default();
    for (job, address) in endpoints {
        let url = format!("http://{address}/metrics");
        let response = client
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|error| panic!("{job} {url}: {error}"));
        assert_eq!(response.status(), 200, "{job} {url}");
        exported.add(&response.text().await.expect("a /metrics body"));
    }
    exported
}

/// Every problem of `expressions` against what is exported: an expression that does not
/// parse, a metric nobody exports, a label matcher on a label the metric never carries.
pub fn problems(expressions: &[Expression], exported: &Exported) -> Vec<String> {
    let mut problems = Vec::new();
    for expression in expressions {
        let selectors = crate::expressions::substitute_grafana_variables(&expression.text)
            .and_then(|text| crate::expressions::selectors(&text));
        let selectors = match selectors {
            Ok(selectors) => selectors,
            Err(error) => {
                problems.push(format!(
                    "{}: {error}\n    {}",
                    expression.origin, expression.text
                ));
                continue;
            }
        };
        if selectors.is_empty() {
            problems.push(format!("{}: selects no metric", expression.origin));
        }
        for selector in selectors {
            if let Some(problem) = selector_problem(&selector, exported) {
                problems.push(format!("{}: {problem}", expression.origin));
            }
        }
    }
    problems
}

fn selector_problem(selector: &Selector, exported: &Exported) -> Option<String> {
    if PROMETHEUS_OWN.contains(&selector.metric.as_str())
        || ONLY_WITH_SEVERAL_MEMBERS.contains(&selector.metric.as_str())
    {
        return None;
    }
    let Some(seen) = exported.labels_of(&selector.metric) else {
        return Some(format!(
            "{} is not exported by shardlet dev",
            selector.metric
        ));
    };
    let missing: Vec<&String> = selector
        .labels
        .iter()
        .filter(|label| !TARGET_LABELS.contains(&label.as_str()))
        .filter(|label| !seen.is_empty() && !seen.contains(*label))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "{} is exported without the label(s) {missing:?} the selector matches on (seen: {seen:?})",
            selector.metric
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_survive_commas_and_quotes_in_values() {
        assert_eq!(
            label_names(r#"a="x,y",b="say \"hi\", ok",le="+Inf""#),
            ["a", "b", "le"]
        );
    }
}
