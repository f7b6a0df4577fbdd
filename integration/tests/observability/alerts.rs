//! The alert rules: `promtool check rules` on the rules file, `promtool test rules` on
//! its unit tests, and every alert's annotations (what operators read when paged).

use std::process::Command;

use crate::expressions::{read, repository_root, RULES, RULE_TESTS};

/// Debian's `prometheus` package (scripts/install-deps.sh test) brings promtool and the
/// server.
pub fn prometheus_tool(name: &str) -> Command {
    let path = std::path::Path::new("/usr/bin").join(name);
    assert!(
        path.exists() || which(name),
        "{name} is not installed: run scripts/install-deps.sh test (Debian package prometheus)"
    );
    Command::new(name)
}

fn which(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|directory| directory.join(name).is_file())
    })
}

fn run(mut command: Command) -> String {
    let output = command.output().expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?} failed:\n{text}");
    text
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let root = repository_root();
    let mut check = prometheus_tool("promtool");
    check.args(["check", "rules"]).arg(root.join(RULES));
    let checked = run(check);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let mut test = prometheus_tool("promtool");
    test.args(["test", "rules"]).arg(root.join(RULE_TESTS));
    let tested = run(test);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn every_alert_says_what_happened_and_points_at_a_runbook_section_that_exists() {
    #[derive(serde::Deserialize)]
    struct File {
        groups: Vec<Group>,
    }
    #[derive(serde::Deserialize)]
    struct Group {
        rules: Vec<Rule>,
    }
    #[derive(serde::Deserialize)]
    struct Rule {
        alert: String,
        labels: std::collections::BTreeMap<String, String>,
        annotations: std::collections::BTreeMap<String, String>,
    }
    let file: File = serde_yaml_ng::from_str(&read(RULES)).expect("the rules file");
    let operations = heading_anchors(&read("docs/operations.md"));
    let observability = heading_anchors(&read("docs/observability.md"));
    let alerts: Vec<Rule> = file.groups.into_iter().flat_map(|g| g.rules).collect();
    let names: Vec<&str> = alerts.iter().map(|rule| rule.alert.as_str()).collect();
    for wanted in [
        "ShardletUnrecoverableShardlets",
        "ShardletNoLeaseHolder",
        "ShardletMetaQuorumLost",
        "ShardletRepairBacklogGrowing",
        "ShardletDiskNearlyFull",
        "ShardletNodePredictedFailure",
        "ShardletTargetDown",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    for rule in &alerts {
        let name = &rule.alert;
        for annotation in ["summary", "description", "runbook"] {
            assert!(
                rule.annotations
                    .get(annotation)
                    .is_some_and(|text| !text.trim().is_empty()),
                "{name} has no {annotation}"
            );
        }
        assert!(
            ["critical", "warning"].contains(&rule.labels["severity"].as_str()),
            "{name}: severity"
        );
        let runbook = &rule.annotations["runbook"];
        let section = runbook
            .split_whitespace()
            .find_map(|word| word.strip_prefix("docs/operations.md#"))
            .unwrap_or_else(|| {
                panic!("{name}: runbook {runbook:?} names no docs/operations.md#section")
            });
        assert!(
            operations.contains(section),
            "{name}: docs/operations.md has no #{section}"
        );
        let own = name.to_lowercase();
        assert!(
            observability.contains(&own),
            "{name}: docs/observability.md has no section #{own}"
        );
    }
}

/// GitHub's anchors of a Markdown file's headings: lower case, spaces to `-`, only
/// letters, digits, `-` and `_` kept.
fn heading_anchors(markdown: &str) -> std::collections::BTreeSet<String> {
    markdown
        .lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| {
            line.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}
