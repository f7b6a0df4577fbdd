//! The Grafana dashboard: its shape (what Grafana and the chart's sidecar need), and
//! every expression parsed and checked against the metrics a running `shardlet dev`
//! exports.

use std::collections::BTreeSet;
use std::time::Duration;

use shardlet_testkit::poll::poll_until;

use shardlet_testkit::{shardlet_binary, DevCluster};

use crate::exported::{dev_endpoints, problems, scrape};
use crate::expressions::{
    dashboard, dashboard_expressions, read, repository_root, rule_expressions,
    substitute_grafana_variables, RATE_INTERVAL, RULES,
};

/// Every panel except rows, rows' nested panels included.
fn panels(dashboard: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut found = Vec::new();
    let mut pending: Vec<serde_json::Value> =
        dashboard["panels"].as_array().cloned().unwrap_or_default();
    while let Some(panel) = pending.pop() {
        pending.extend(panel["panels"].as_array().cloned().unwrap_or_default());
        if panel["type"] != "row" {
            found.push(panel);
        }
    }
    found
}

#[test]
fn the_dashboard_reads_its_data_source_from_a_variable_and_rates_over_the_rate_interval() {
    let dashboard = dashboard();
    assert!(
        dashboard["schemaVersion"].as_u64().unwrap_or(0) >= 39,
        "schemaVersion {} < 39",
        dashboard["schemaVersion"]
    );
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list");
    assert!(
        variables.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "a `datasource` variable of type datasource, query prometheus"
    );
    let panels = panels(&dashboard);
    assert!(panels.len() >= 30, "{} panels", panels.len());
    let mut ids = BTreeSet::new();
    for panel in &panels {
        let title = &panel["title"];
        assert!(
            ids.insert(panel["id"].as_u64()),
            "panel id of {title} used twice"
        );
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "panel {title}");
        for target in panel["targets"].as_array().expect("targets") {
            assert_eq!(
                target["datasource"]["uid"], "${datasource}",
                "panel {title}"
            );
            let text = substitute_grafana_variables(target["expr"].as_str().expect("expr"))
                .unwrap_or_else(|error| panic!("panel {title}: {error}"));
            for selector in crate::expressions::selectors(&text)
                .unwrap_or_else(|error| panic!("panel {title}: {error}\n{text}"))
            {
                if let Some(range) = selector.range {
                    assert_eq!(
                        range, RATE_INTERVAL,
                        "panel {title}: {} over a fixed range instead of $__rate_interval",
                        selector.metric
                    );
                }
            }
        }
    }
    // Panels on Grafana's 24-column grid, none over another (the picture draws the
    // same grid).
    let mut boxes: Vec<(u64, u64, u64, u64, String)> = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let grid = &panel["gridPos"];
        let (x, y, w, h) = (
            grid["x"].as_u64().expect("x"),
            grid["y"].as_u64().expect("y"),
            grid["w"].as_u64().expect("w"),
            grid["h"].as_u64().expect("h"),
        );
        assert!(
            x + w <= 24 && w > 0 && h > 0,
            "panel {} at {grid}",
            panel["title"]
        );
        let title = panel["title"].to_string();
        for (ox, oy, ow, oh, other) in &boxes {
            let apart = x + w <= *ox || *ox + ow <= x || y + h <= *oy || *oy + oh <= y;
            assert!(apart, "panel {title} overlaps {other}");
        }
        boxes.push((x, y, w, h, title));
    }
}

#[test]
fn the_dashboard_json_is_what_its_generator_writes() {
    let output = std::process::Command::new("python3")
        .arg(repository_root().join("scripts/dashboard_json.py"))
        .arg("--check")
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_dashboard_and_alert_expression_is_valid_promql() {
    let mut expressions = dashboard_expressions(&dashboard());
    expressions.extend(rule_expressions(&read(RULES)));
    assert!(expressions.len() > 60, "{} expressions", expressions.len());
    let mut failures = Vec::new();
    for expression in &expressions {
        let parsed = substitute_grafana_variables(&expression.text)
            .and_then(|text| crate::expressions::selectors(&text));
        if let Err(error) = parsed {
            failures.push(format!(
                "{}: {error}\n    {}",
                expression.origin, expression.text
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // And the parser does refuse what is not PromQL.
    for broken in [
        "sum(rate(x[5m])",
        "rate(x)[5m]",
        "x{a=}",
        "sum by (a b) (x)",
    ] {
        assert!(
            crate::expressions::selectors(broken).is_err(),
            "{broken} parsed"
        );
    }
}

/// Start-up of 12 nodes, the metadata member, gateway and controller on a loaded
/// 2-core machine, and the controller's first worker passes.
pub const DEV_DEADLINE: Duration = Duration::from_secs(120);
/// How often the endpoints are scraped again while waiting (15 of them).
const SCRAPE_INTERVAL: Duration = Duration::from_millis(500);

#[tokio::test]
async fn every_metric_the_dashboard_and_alerts_name_is_exported_by_shardlet_dev() {
    let binary = shardlet_binary!();
    let dev = DevCluster::start(&binary).await;
    let endpoints = dev_endpoints(&dev.ports);
    let mut expressions = dashboard_expressions(&dashboard());
    expressions.extend(rule_expressions(&read(RULES)));
    // Stock gauges are set by the controller's first worker passes after start-up, so
    // the check is repeated until it holds (or the deadline names what is missing).
    let last = std::sync::Mutex::new(Vec::new());
    let (endpoints, expressions, last_found) = (&endpoints, &expressions, &last);
    let checked = poll_until(
        tokio::time::Instant::now() + DEV_DEADLINE,
        SCRAPE_INTERVAL,
        move || async move {
            let exported = scrape(endpoints).await;
            let found = problems(expressions, &exported);
            let clean = found.is_empty();
            *last_found.lock().expect("not poisoned") = found;
            clean.then_some(exported)
        },
    )
    .await;
    let Ok(exported) = checked else {
        let last = last.lock().expect("not poisoned");
        panic!(
            "after {DEV_DEADLINE:?}, {} problem(s):\n{}",
            last.len(),
            last.join("\n")
        );
    };
    // The check can fail: the same dashboard with one metric name misspelt in one panel
    // is refused, naming the panel.
    let mut typo = dashboard();
    let first = typo["panels"]
        .as_array_mut()
        .expect("panels")
        .iter_mut()
        .find(|panel| panel["type"] != "row")
        .expect("a panel");
    let expression = first["targets"][0]["expr"]
        .as_str()
        .expect("expr")
        .to_string();
    first["targets"][0]["expr"] = expression.replacen("shardlet_", "shardlet_typo_", 1).into();
    let found = problems(&dashboard_expressions(&typo), &exported);
    assert!(
        found.len() == 1
            && found[0].contains("shardlet_typo_")
            && found[0].contains("not exported"),
        "a misspelt metric is reported: {found:?}"
    );
    // And a matcher on a label the metric does not carry.
    let label_typo = dashboard_expressions(&dashboard())
        .into_iter()
        .filter(|e| e.text.contains("outcome!=\"ok\""))
        .map(|mut e| {
            e.text = e.text.replace("outcome!=", "result!=");
            e
        })
        .collect::<Vec<_>>();
    assert!(
        !label_typo.is_empty(),
        "the errors panel matches on outcome"
    );
    let found = problems(&label_typo, &exported);
    assert!(
        found.iter().all(|problem| problem.contains("[\"result\"]")) && !found.is_empty(),
        "a matcher on a label the metric lacks is reported: {found:?}"
    );
}
