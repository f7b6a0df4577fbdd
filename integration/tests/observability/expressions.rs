//! Every PromQL expression of the dashboard and the alert rules, read from the
//! committed files, with Grafana's variables replaced, parsed by a real PromQL parser
//! (`promql-parser`), and the metrics and label matchers each one selects.

use std::collections::BTreeSet;
use std::time::Duration;

use promql_parser::parser::{parse, Expr, VectorSelector};
use promql_parser::util::{walk_expr, ExprVisitor};

/// The repository root (the `shardlet` package is `cli/`).
pub fn repository_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ has a parent")
        .to_path_buf()
}

pub const DASHBOARD: &str = "helm/shardlet/dashboards/shardlet.json";
pub const RULES: &str = "helm/shardlet/alerts/shardlet.rules.yaml";
pub const RULE_TESTS: &str = "helm/shardlet/alerts/shardlet.rules.test.yaml";

pub fn read(relative: &str) -> String {
    let path = repository_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

pub fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|error| panic!("{DASHBOARD}: {error}"))
}

/// The range Grafana's `$__rate_interval` stands for here: an odd value, so a range
/// written as a literal (`[5m]`) instead of the variable is told apart after parsing.
pub const RATE_INTERVAL: Duration = Duration::from_secs(7 * 60 + 13);

/// One expression and where it was found (panel or rule), for failure messages.
#[derive(Clone, Debug)]
pub struct Expression {
    pub origin: String,
    pub text: String,
}

/// The expressions of every panel (rows' nested panels too) and of every query
/// variable of the dashboard.
pub fn dashboard_expressions(dashboard: &serde_json::Value) -> Vec<Expression> {
    let mut found = Vec::new();
    let mut panels: Vec<&serde_json::Value> = panel_list(dashboard).collect();
    while let Some(panel) = panels.pop() {
        panels.extend(panel_list(panel));
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expression) = target["expr"].as_str() {
                found.push(Expression {
                    origin: format!("panel {title:?} target {}", target["refId"]),
                    text: expression.to_string(),
                });
            }
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] != "query" {
            continue;
        }
        let query = variable["query"]["query"]
            .as_str()
            .or(variable["query"].as_str())
            .unwrap_or_default();
        found.push(Expression {
            origin: format!("variable {}", variable["name"]),
            text: variable_query_expression(query),
        });
    }
    found
}

fn panel_list(value: &serde_json::Value) -> impl Iterator<Item = &serde_json::Value> {
    value["panels"].as_array().into_iter().flatten()
}

/// The PromQL inside a Grafana variable query: `label_values(EXPR, label)` and
/// `query_result(EXPR)` wrap one; anything else is PromQL itself.
fn variable_query_expression(query: &str) -> String {
    let query = query.trim();
    if let Some(inner) = query
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        // `label_values(label)` names no metric: an empty selector the check refuses.
        return match inner.rsplit_once(',') {
            Some((selector, _label)) => selector.trim().to_string(),
            None => String::new(),
        };
    }
    if let Some(inner) = query
        .strip_prefix("query_result(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        return inner.to_string();
    }
    query.to_string()
}

/// The alerting and recording rules' expressions.
pub fn rule_expressions(yaml: &str) -> Vec<Expression> {
    #[derive(serde::Deserialize)]
    struct File {
        groups: Vec<Group>,
    }
    #[derive(serde::Deserialize)]
    struct Group {
        name: String,
        rules: Vec<Rule>,
    }
    #[derive(serde::Deserialize)]
    struct Rule {
        alert: Option<String>,
        record: Option<String>,
        expr: String,
    }
    let file: File =
        serde_yaml_ng::from_str(yaml).unwrap_or_else(|error| panic!("{RULES}: {error}"));
    file.groups
        .into_iter()
        .flat_map(|group| {
            let name = group.name;
            group.rules.into_iter().map(move |rule| Expression {
                origin: format!(
                    "rule {} in group {name}",
                    rule.alert.or(rule.record).unwrap_or_default()
                ),
                text: rule.expr,
            })
        })
        .collect()
}

/// `text` with the Grafana variables the dashboard uses replaced by values a query
/// could get; an error names any other variable left (a typo in a variable is as
/// broken as one in a metric name).
pub fn substitute_grafana_variables(text: &str) -> Result<String, String> {
    let rate_interval = format!("{}s", RATE_INTERVAL.as_secs());
    let mut result = text.to_string();
    for (variable, value) in [
        ("${__rate_interval}", rate_interval.as_str()),
        ("$__rate_interval", rate_interval.as_str()),
        ("${__interval}", "30s"),
        ("$__interval", "30s"),
        ("${__range}", "1h"),
        ("$__range", "1h"),
        // "All": the variable's allValue.
        ("${namespace}", ".*"),
        ("$namespace", ".*"),
    ] {
        result = result.replace(variable, value);
    }
    match result.find('$') {
        Some(at) => Err(format!(
            "unknown variable at {:?}",
            &result[at..(at + 20).min(result.len())]
        )),
        None => Ok(result),
    }
}

/// What one selector of an expression selects.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Selector {
    pub metric: String,
    /// Label names the selector matches on (not `__name__`).
    pub labels: Vec<String>,
    /// The range of a range selector (`rate(x[RANGE])`).
    pub range: Option<Duration>,
}

/// Parses `text` (variables already substituted) and returns every selector in it.
pub fn selectors(text: &str) -> Result<Vec<Selector>, String> {
    let expression = parse(text)?;
    let mut collector = Collector::default();
    walk_expr(&mut collector, &expression)?;
    Ok(collector.found)
}

#[derive(Default)]
struct Collector {
    found: Vec<Selector>,
}

impl Collector {
    fn add(&mut self, selector: &VectorSelector, range: Option<Duration>) -> Result<(), String> {
        let matchers = &selector.matchers.matchers;
        let metric = selector
            .name
            .clone()
            .or_else(|| {
                matchers
                    .iter()
                    .find(|matcher| matcher.name == "__name__")
                    .map(|matcher| matcher.value.clone())
            })
            .ok_or_else(|| "a selector without a metric name".to_string())?;
        let labels: BTreeSet<String> = matchers
            .iter()
            .chain(selector.matchers.or_matchers.iter().flatten())
            .filter(|matcher| matcher.name != "__name__")
            .map(|matcher| matcher.name.clone())
            .collect();
        self.found.push(Selector {
            metric,
            labels: labels.into_iter().collect(),
            range,
        });
        Ok(())
    }
}

impl ExprVisitor for Collector {
    type Error = String;

    fn pre_visit(&mut self, expression: &Expr) -> Result<bool, String> {
        match expression {
            Expr::VectorSelector(selector) => self.add(selector, None)?,
            Expr::MatrixSelector(matrix) => self.add(&matrix.vs, Some(matrix.range))?,
            _ => {}
        }
        Ok(true)
    }
}
