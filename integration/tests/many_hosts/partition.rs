//! The kit's network itself: a cut drops packets (a connection attempt times out, where
//! a reachable host without a listener refuses at once), the cut group still reaches
//! itself, and healing restores everything. Probed with bash's `/dev/tcp` from inside
//! the hosts (nothing needs to listen: a refusal proves the packet arrived) and with a
//! TCP connect from the test process.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use shardlet_testkit::netns::Network;
use shardlet_testkit::shardlet_binary;

/// A port where nothing listens on any host: a reachable host answers with a reset.
const CLOSED_PORT: u16 = 9;
/// How long a probe waits for an answer (reset or accept) before calling the packets
/// dropped: far above a refusal's round trip on a bridge, even on a loaded machine.
const PROBE_SECONDS: u64 = 3;

#[derive(Debug, PartialEq, Eq)]
enum Probe {
    /// A reset came back: the packets arrive.
    Refused,
    /// Nothing came back within the probe's time: the packets are dropped.
    Dropped,
}

/// Connects from inside `from` to `to`'s closed port.
fn probe_from(network: &Network, from: &str, to: Ipv4Addr) -> Probe {
    let script = format!("exec 3<>/dev/tcp/{to}/{CLOSED_PORT}");
    let output = network
        .command(from, std::path::Path::new("timeout"))
        .args([&PROBE_SECONDS.to_string(), "bash", "-c", &script])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(124) => Probe::Dropped,
        _ if stderr.contains("refused") => Probe::Refused,
        other => panic!("probe {from} -> {to}: exit {other:?}: {stderr}"),
    }
}

/// Connects from the test process (the root namespace, on the bridge).
async fn probe_from_test(to: Ipv4Addr) -> Probe {
    let connect = tokio::net::TcpStream::connect(SocketAddr::from((to, CLOSED_PORT)));
    match tokio::time::timeout(Duration::from_secs(PROBE_SECONDS), connect).await {
        Err(_) => Probe::Dropped,
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => Probe::Refused,
        Ok(other) => panic!("probe test -> {to}: {other:?}"),
    }
}

fn bash_available() -> bool {
    Command::new("bash")
        .arg("-c")
        .arg("true")
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("timeout")
            .arg("1")
            .arg("true")
            .status()
            .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_drops_the_groups_packets_and_heal_restores_them() {
    const TEST: &str = "a_cut_drops_the_groups_packets_and_heal_restores_them";
    let mut network = match Network::create() {
        Ok(network) => network,
        Err(reason) => {
            shardlet_binary!().skipped(TEST, &format!("no test network here: {reason}"));
            return;
        }
    };
    if !bash_available() {
        shardlet_binary!().skipped(TEST, "no bash or timeout to probe with");
        return;
    }
    let a = network.add_host("a").unwrap().address;
    let b = network.add_host("b").unwrap().address;
    let c = network.add_host("c").unwrap().address;
    let namespaces: Vec<String> = network
        .hosts()
        .iter()
        .map(|h| h.namespace.clone())
        .collect();

    assert_eq!(probe_from(&network, "a", b), Probe::Refused, "a reaches b");
    assert_eq!(
        probe_from_test(b).await,
        Probe::Refused,
        "the test reaches b"
    );

    network.cut(&["b", "c"]).unwrap();
    assert_eq!(
        probe_from(&network, "a", b),
        Probe::Dropped,
        "a -> b dropped"
    );
    assert_eq!(
        probe_from(&network, "b", a),
        Probe::Dropped,
        "b -> a dropped"
    );
    assert_eq!(
        probe_from_test(c).await,
        Probe::Dropped,
        "test -> c dropped"
    );
    assert_eq!(
        probe_from(&network, "b", c),
        Probe::Refused,
        "the group still reaches itself"
    );
    assert!(network.cut(&["a"]).is_err(), "one cut at a time");

    network.heal().unwrap();
    assert_eq!(
        probe_from(&network, "a", b),
        Probe::Refused,
        "healed: a reaches b"
    );
    assert_eq!(
        probe_from(&network, "c", a),
        Probe::Refused,
        "healed: c reaches a"
    );
    assert_eq!(
        probe_from_test(c).await,
        Probe::Refused,
        "healed: the test reaches c"
    );

    // Teardown on drop: no namespace, veth or bridge of this run is left.
    let link_names = network.link_names();
    drop(network);
    let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    for namespace in &namespaces {
        assert!(
            !listed.contains(namespace.as_str()),
            "{namespace} removed: {listed}"
        );
    }
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    for link in &link_names {
        let listed = links.contains(&format!(" {link}:")) || links.contains(&format!(" {link}@"));
        assert!(!listed, "{link} removed: {links}");
    }
}
