#![allow(clippy::unwrap_used)]

use super::*;

const EXAMPLE: &str = include_str!("../../../examples/topology.toml");

const ONE_NODE: &str = r#"epoch = 3

[[node]]
id = 1
name = "alpha"
address = "127.0.0.1:19101"
region = "r1"
zone = "z1"
capacity_bytes = 1000
"#;

/// Parses `text` and returns (line, column, reason); panics if it parses.
fn rejection(text: &str) -> (usize, usize, String) {
    let error = Topology::from_toml_str(text, "cluster.toml").unwrap_err();
    let formatted = error.to_string();
    assert!(
        formatted.starts_with(&format!("cluster.toml:{}:{}: ", error.line, error.column)),
        "{formatted}"
    );
    (error.line, error.column, error.reason)
}

/// ONE_NODE plus a second node whose body is `body`.
fn with_second_node(body: &str) -> String {
    format!("{ONE_NODE}\n[[node]]\n{body}")
}

const SECOND: &str = r#"id = 2
name = "beta"
address = "127.0.0.1:19102"
region = "r1"
zone = "z2"
capacity_bytes = 1000
"#;

/// Line of the second node's `field` in `with_second_node(body)`.
fn line_of_second(body: &str, field: &str) -> usize {
    let text = with_second_node(body);
    let second_start = text.rfind("[[node]]").unwrap();
    let field_offset = second_start + text[second_start..].find(field).unwrap();
    text[..field_offset].matches('\n').count() + 1
}

#[test]
fn the_example_dev_topology_parses() {
    let topology = Topology::from_toml_str(EXAMPLE, "examples/topology.toml").unwrap();
    assert_eq!(topology.epoch(), 1);
    assert_eq!(topology.nodes().len(), 12);
    let regions = topology.regions();
    assert_eq!(
        regions.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["eu-west", "us-east"]
    );
    for region in &regions {
        assert_eq!(region.zones.len(), 2);
        for zone in &region.zones {
            assert_eq!(zone.nodes.len(), 3);
        }
    }
    let first = topology.node(NodeId(1)).unwrap();
    assert_eq!(first.address, "127.0.0.1:19101");
    assert_eq!(first.capacity_bytes, 1 << 40);
    assert_eq!(first.free_bytes, 1 << 40);
    assert!((first.weight - 1.0).abs() < 1e-12);
    assert_eq!(first.state, NodeState::Up);
    assert_eq!(
        topology.node(NodeId(12)).unwrap().address,
        "127.0.0.1:19112"
    );
}

#[test]
fn optional_fields_are_read() {
    let text = with_second_node(&format!(
        "{SECOND}free_bytes = 10\nweight = 2.5\nstate = \"draining\"\nlatency_us = 250\n"
    ));
    let topology = Topology::from_toml_str(&text, "t.toml").unwrap();
    let beta = topology.node(NodeId(2)).unwrap();
    assert_eq!(beta.free_bytes, 10);
    assert_eq!(beta.weight, 2.5);
    assert_eq!(beta.state, NodeState::Draining);
    assert_eq!(beta.latency_us, Some(250));
}

#[test]
fn syntax_errors_give_the_line() {
    let text = "epoch = 1\n\n[[node]]\nid = = 2\n";
    let (line, column, reason) = rejection(text);
    assert_eq!(line, 4);
    assert!(column >= 4, "{column}");
    assert!(!reason.is_empty());
}

#[test]
fn unknown_fields_give_the_line() {
    let text = with_second_node(&format!("{SECOND}colour = \"red\"\n"));
    let (line, _, reason) = rejection(&text);
    assert_eq!(line, line_of_second(&format!("{SECOND}colour"), "colour"));
    assert!(reason.contains("colour"), "{reason}");
    let (line, _, reason) = rejection("epoch = 1\nnodes = []\n");
    assert_eq!(line, 2);
    assert!(reason.contains("nodes"), "{reason}");
}

#[test]
fn wrong_types_and_missing_fields_are_rejected() {
    let (line, _, _) = rejection(&with_second_node(&SECOND.replace("1000", "\"lots\"")));
    assert_eq!(line, line_of_second(SECOND, "capacity_bytes"));
    let (_, _, reason) = rejection(&with_second_node(&SECOND.replace("zone = \"z2\"\n", "")));
    assert!(reason.contains("zone"), "{reason}");
    let (line, _, _) = rejection(&with_second_node(&SECOND.replace("id = 2", "id = -2")));
    assert_eq!(line, line_of_second(SECOND, "id"));
    let (line, _, reason) = rejection(&with_second_node(&format!("{SECOND}state = \"gone\"\n")));
    assert_eq!(line, line_of_second(&format!("{SECOND}state"), "state"));
    assert!(
        reason.contains("gone") || reason.contains("variant"),
        "{reason}"
    );
}

#[test]
fn duplicate_ids_and_names_point_at_the_second_one() {
    let body = SECOND.replace("id = 2", "id = 1");
    let (line, _, reason) = rejection(&with_second_node(&body));
    assert_eq!(line, line_of_second(&body, "id"));
    assert!(reason.contains("duplicate node id 1"), "{reason}");

    let body = SECOND.replace("beta", "alpha");
    let (line, _, reason) = rejection(&with_second_node(&body));
    assert_eq!(line, line_of_second(&body, "name"));
    assert!(reason.contains("duplicate node name"), "{reason}");
}

#[test]
fn semantic_errors_point_at_the_field() {
    let cases = [
        (
            format!("{SECOND}free_bytes = 1001\n"),
            "free_bytes",
            "larger than capacity",
        ),
        (
            format!("{SECOND}weight = 0.0\n"),
            "weight",
            "weight must be greater than 0",
        ),
        (
            format!("{SECOND}weight = -1.5\n"),
            "weight",
            "weight must be greater than 0",
        ),
        (
            format!("{SECOND}weight = nan\n"),
            "weight",
            "weight must be greater than 0",
        ),
        (
            SECOND.replace("zone = \"z2\"", "zone = \"\""),
            "zone",
            "zone name is empty",
        ),
        (
            SECOND.replace("region = \"r1\"", "region = \" \""),
            "region",
            "region name is empty",
        ),
        (SECOND.replace("beta", ""), "name", "node name is empty"),
        (
            SECOND.replace("1000", "0"),
            "capacity_bytes",
            "capacity_bytes must be greater",
        ),
        (
            SECOND.replace("127.0.0.1:19102", "localhost"),
            "address",
            "not host:port",
        ),
        (SECOND.replace("19102", "99999"), "address", "invalid port"),
        (
            SECOND
                .replace("zone = \"z2\"", "zone = \"z1\"")
                .replace("\"r1\"", "\"r2\""),
            "zone",
            "is in region",
        ),
    ];
    for (body, field, expected_reason) in cases {
        let (line, _, reason) = rejection(&with_second_node(&body));
        assert_eq!(line, line_of_second(&body, field), "{body}");
        assert!(reason.contains(expected_reason), "{reason} for {body}");
    }
}

#[test]
fn a_topology_without_nodes_is_rejected() {
    let (line, _, reason) = rejection("# empty cluster\nepoch = 7\n");
    assert_eq!(line, 2);
    assert!(reason.contains("no nodes"), "{reason}");
    let (line, _, reason) = rejection("");
    assert_eq!(line, 1);
    assert!(reason.contains("epoch"), "{reason}");
}

#[test]
fn garbage_never_panics() {
    for text in [
        "\u{0}",
        "[[node]]\n\u{feff}",
        "epoch = 99999999999999999999",
        "ä = ö",
    ] {
        assert!(Topology::from_toml_str(text, "x").is_err());
    }
}

#[test]
fn code_built_topologies_are_validated_and_sorted() {
    let topology = Topology::from_toml_str(EXAMPLE, "example").unwrap();
    let mut nodes = topology.nodes().to_vec();
    nodes.reverse();
    let rebuilt = Topology::new(5, nodes.clone()).unwrap();
    assert_eq!(rebuilt.nodes(), topology.nodes());
    nodes[0].weight = 0.0;
    let error = Topology::new(5, nodes).unwrap_err();
    assert_eq!((error.node_position, error.field), (Some(0), "weight"));
    let down = topology
        .with_node_state(2, NodeId(4), NodeState::Down)
        .unwrap();
    assert_eq!(down.epoch(), 2);
    assert_eq!(down.node(NodeId(4)).unwrap().state, NodeState::Down);
    assert!(topology
        .with_node_state(2, NodeId(99), NodeState::Down)
        .is_none());
}
