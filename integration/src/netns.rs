//! Several "machines" on one: a bridge in the root network namespace and one network
//! namespace per host, each with a veth pair on the bridge, `lo` up and an address of a
//! /24 chosen for this test run; processes run inside a host with `ip netns exec`; a
//! group of hosts can be cut off from everyone else and healed.
//!
//! How a cut drops packets on this machine class (no iptables, no nft, no netem): policy
//! routing inside each cut host's namespace. At creation every namespace's `local`
//! table rule moves from priority 0 to [`LOCAL_RULE_PRIORITY`], so rules can come before
//! it; a cut adds, in each cut host, "packets arriving on `eth0` from a host of the same
//! group: look up `local`" ([`ALLOW_RULE_PRIORITY`]) and "anything else arriving on
//! `eth0`: blackhole" ([`DROP_RULE_PRIORITY`]). A blackhole on the input path drops the
//! packet silently: a peer's SYN, data or ACK never arrives, so both sides see timeouts,
//! as behind a firewall's drop (a blackhole *route* for the host's own output would
//! instead fail `connect` at once with EINVAL, which is not what a partition looks
//! like). The processes keep running; ARP still passes (it is not IP), so healing is
//! immediate. Only the namespaces' rules change: the root namespace (the machine's own
//! network) is never touched beyond the bridge and the veths.
//!
//! Needs root (namespaces, links). [`Network::create`] says why it cannot instead of
//! panicking, so a test can skip loudly ([`crate::ShardletBinary::skipped`]). Everything
//! is removed when the guard drops, also during a panic: every host's veth (which
//! removes its peer), the namespaces and the bridge. Names carry the creating process's
//! pid, and a new network first removes what a run that was killed (SIGKILL leaves no
//! chance to drop anything) left behind under a pid that no longer runs: the processes
//! still inside its namespaces (SIGKILL), the namespaces, veths and bridge.

use std::net::Ipv4Addr;
use std::process::Command;

/// Every name this module creates starts with one of these, followed by the creating
/// process's pid in base 36 over [`PID_DIGITS`] digits and the network's number in that
/// process (two digits), so leftovers of dead runs can be found and two networks of
/// one test binary (tests run in parallel threads) never collide: namespaces
/// `shl-RUN-HOST`, bridge `shbRUN`, root-side veths `shvRUNvN` (RUN = pid and number:
/// at most 3 + 7 + 1 + 3 characters, inside the 15 of an interface name).
const NAMESPACE_PREFIX: &str = "shl-";
const BRIDGE_PREFIX: &str = "shb";
const VETH_PREFIX: &str = "shv";
/// Base-36 digits of a pid (Linux's largest pid_max, 2^22, has 5).
const PID_DIGITS: usize = 5;
/// Networks one process may create (two base-36 digits).
const NETWORKS_PER_PROCESS_MAX: u32 = 36 * 36;
/// Where the run's /24 is picked: `10.X.Y.0/24` with X in `SUBNET_SECOND_OCTETS`.
const SUBNET_SECOND_OCTETS: std::ops::Range<u16> = 64..128;
/// Host addresses are `.1` up; the bridge (the test process's own address on the
/// network) is `.254`, so at most 253 hosts.
const HOSTS_MAX: usize = 253;
const BRIDGE_HOST_OCTET: u8 = 254;
/// A Linux interface name is at most 15 bytes.
const INTERFACE_NAME_MAX: usize = 15;
/// A host name becomes part of a namespace name: short DNS-label-like names only.
const HOST_NAME_MAX: usize = 24;
/// Rule priorities inside a host's namespace (see the module documentation).
const ALLOW_RULE_PRIORITY: u32 = 9;
const DROP_RULE_PRIORITY: u32 = 10;
const LOCAL_RULE_PRIORITY: u32 = 100;
/// Bounds the loop that deletes a priority's rules (a cut adds one allow rule per host
/// of its group).
const RULES_PER_PRIORITY_MAX: usize = HOSTS_MAX + 1;

/// One host: a network namespace with `eth0` on the bridge.
#[derive(Clone, Debug)]
pub struct Host {
    pub name: String,
    /// The namespace (`ip netns exec NAMESPACE …`).
    pub namespace: String,
    pub address: Ipv4Addr,
    /// The root-side end of its veth pair, on the bridge.
    root_veth: String,
}

/// The bridge and its hosts; see the module documentation.
pub struct Network {
    /// The pid (base 36) and this network's number in the process: part of every name.
    run: String,
    bridge: String,
    /// The first three octets of the run's /24.
    prefix: [u8; 3],
    hosts: Vec<Host>,
    /// Hosts currently cut off (by name).
    cut: Vec<String>,
}

impl Network {
    /// Creates the bridge (with the test process's address `.254` on it) and no hosts
    /// yet. Fails, saying why, where this cannot be done (not root, no `ip`, no free
    /// /24).
    pub fn create() -> Result<Self, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("network namespaces need root".into());
        }
        ip(&["-V"]).map_err(|error| format!("no usable `ip` command: {error}"))?;
        // One network at a time picks its subnet and takes it (the bridge's address),
        // so two tests of one binary never pick the same free /24.
        static CREATING: std::sync::Mutex<u32> = std::sync::Mutex::new(0);
        let mut created = CREATING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *created >= NETWORKS_PER_PROCESS_MAX {
            return Err(format!(
                "at most {NETWORKS_PER_PROCESS_MAX} networks per process"
            ));
        }
        let number = *created;
        *created += 1;
        remove_leftovers_of_dead_runs();
        let pid = std::process::id();
        let prefix = free_subnet(pid.wrapping_add(number))?;
        let run = format!("{}{}", base36(pid, PID_DIGITS), base36(number, 2));
        let bridge = format!("{BRIDGE_PREFIX}{run}");
        let network = Self {
            run,
            bridge: bridge.clone(),
            prefix,
            hosts: Vec::new(),
            cut: Vec::new(),
        };
        // From here on, Drop removes whatever was made.
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", network.address(BRIDGE_HOST_OCTET)),
            "dev",
            &bridge,
        ])?;
        ip(&["link", "set", &bridge, "up"])?;
        Ok(network)
    }

    /// Adds host `name` (a short name of lowercase letters, digits and `-`) with the
    /// next address; its namespace has `lo` and `eth0` up and the local rule moved
    /// behind the priorities a cut uses.
    pub fn add_host(&mut self, name: &str) -> Result<Host, String> {
        let valid = !name.is_empty()
            && name.len() <= HOST_NAME_MAX
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(format!(
                "host name {name:?}: 1 to {HOST_NAME_MAX} of a-z, 0-9, -"
            ));
        }
        if self.hosts.iter().any(|host| host.name == name) {
            return Err(format!("host {name} exists already"));
        }
        if self.hosts.len() >= HOSTS_MAX {
            return Err(format!("at most {HOSTS_MAX} hosts on one network"));
        }
        let position = self.hosts.len();
        let octet = u8::try_from(position + 1).map_err(|_| "host number".to_string())?;
        let host = Host {
            name: name.to_string(),
            namespace: format!("{NAMESPACE_PREFIX}{}-{name}", self.run),
            address: self.address(octet),
            root_veth: format!("{VETH_PREFIX}{}v{position}", self.run),
        };
        if host.root_veth.len() > INTERFACE_NAME_MAX {
            return Err(format!("interface name {} too long", host.root_veth));
        }
        // Recorded first, so Drop removes the namespace and veth even if a step fails.
        self.hosts.push(host.clone());
        let ns = host.namespace.as_str();
        ip(&["netns", "add", ns])?;
        ip(&[
            "link",
            "add",
            &host.root_veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns,
        ])?;
        ip(&["link", "set", &host.root_veth, "master", &self.bridge, "up"])?;
        let address = format!("{}/24", host.address);
        let local = LOCAL_RULE_PRIORITY.to_string();
        for step in [
            vec!["addr", "add", address.as_str(), "dev", "eth0"],
            vec!["link", "set", "lo", "up"],
            vec!["link", "set", "eth0", "up"],
            vec!["rule", "add", "pref", local.as_str(), "lookup", "local"],
            vec!["rule", "del", "pref", "0", "lookup", "local"],
        ] {
            ip_in(ns, &step)?;
        }
        Ok(host)
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|host| host.name == name)
            .unwrap_or_else(|| panic!("no host {name} on the network"))
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The links it made in the root namespace (bridge, root-side veths): what must be
    /// gone after it is dropped.
    pub fn link_names(&self) -> Vec<String> {
        std::iter::once(self.bridge.clone())
            .chain(self.hosts.iter().map(|host| host.root_veth.clone()))
            .collect()
    }

    /// The test process's own address on the network (the bridge's).
    pub fn bridge_address(&self) -> Ipv4Addr {
        self.address(BRIDGE_HOST_OCTET)
    }

    /// `program` to be run inside host `name`'s namespace (`ip netns exec NS program`,
    /// which execs the program: the child's pid is the program's, so it is killed by
    /// pid like any other child).
    pub fn command(&self, name: &str, program: &std::path::Path) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.host(name).namespace])
            .arg(program);
        command
    }

    /// Cuts the hosts `names` off from every other host and from the test process:
    /// whatever arrives at one of them from outside the group is dropped. They still
    /// reach each other. One cut at a time: [`Self::heal`] first.
    pub fn cut(&mut self, names: &[&str]) -> Result<(), String> {
        if !self.cut.is_empty() {
            return Err(format!("{:?} are cut already: heal first", self.cut));
        }
        let group: Vec<Host> = names.iter().map(|name| self.host(name).clone()).collect();
        self.cut = names.iter().map(|name| name.to_string()).collect();
        let allow = ALLOW_RULE_PRIORITY.to_string();
        let drop = DROP_RULE_PRIORITY.to_string();
        for host in &group {
            for peer in &group {
                let from = peer.address.to_string();
                ip_in(
                    &host.namespace,
                    &[
                        "rule", "add", "pref", &allow, "from", &from, "iif", "eth0", "lookup",
                        "local",
                    ],
                )?;
            }
            ip_in(
                &host.namespace,
                &["rule", "add", "pref", &drop, "iif", "eth0", "blackhole"],
            )?;
        }
        Ok(())
    }

    /// Removes the cut: every host reaches every other again.
    pub fn heal(&mut self) -> Result<(), String> {
        let cut = std::mem::take(&mut self.cut);
        for name in &cut {
            let namespace = self.host(name).namespace.clone();
            for priority in [ALLOW_RULE_PRIORITY, DROP_RULE_PRIORITY] {
                delete_rules(&namespace, priority)?;
            }
        }
        Ok(())
    }

    fn address(&self, last: u8) -> Ipv4Addr {
        let [a, b, c] = self.prefix;
        Ipv4Addr::new(a, b, c, last)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Deleting the root-side veth deletes its peer; a namespace whose processes are
        // gone disappears with its name. Best effort: report, never panic in a drop.
        for host in &self.hosts {
            let _ = ip(&["link", "del", &host.root_veth]);
            if let Err(error) = ip(&["netns", "del", &host.namespace]) {
                eprintln!("netns: {error}");
            }
        }
        if let Err(error) = ip(&["link", "del", &self.bridge]) {
            eprintln!("netns: {error}");
        }
    }
}

/// Deletes every rule of `priority` in `namespace` (one `ip rule del` removes one).
fn delete_rules(namespace: &str, priority: u32) -> Result<(), String> {
    let priority = priority.to_string();
    for _ in 0..RULES_PER_PRIORITY_MAX {
        let listed = ip_output(&["-n", namespace, "rule", "list", "pref", &priority])?;
        if listed.trim().is_empty() {
            return Ok(());
        }
        ip_in(namespace, &["rule", "del", "pref", &priority])?;
    }
    Err(format!(
        "{namespace}: more than {RULES_PER_PRIORITY_MAX} rules of priority {priority}"
    ))
}

/// A /24 `10.X.Y.0/24` derived from the pid that no address or route of the root
/// namespace touches (parallel runs have different pids; a collision moves on).
fn free_subnet(pid: u32) -> Result<[u8; 3], String> {
    let taken = ip_output(&["-4", "-o", "addr", "show"])? + &ip_output(&["-4", "route", "show"])?;
    let span = u32::from(SUBNET_SECOND_OCTETS.end - SUBNET_SECOND_OCTETS.start) * 256;
    for step in 0..span {
        let slot = (pid + step) % span;
        let second = u32::from(SUBNET_SECOND_OCTETS.start) + slot / 256;
        let third = slot % 256;
        let (Ok(second), Ok(third)) = (u8::try_from(second), u8::try_from(third)) else {
            continue;
        };
        let needle = format!("10.{second}.{third}.");
        if !taken.contains(&needle) {
            return Ok([10, second, third]);
        }
    }
    Err("no free 10.64-127.x.0/24 for the test network".into())
}

/// `value` in base 36 (0-9, a-z), left-padded with zeros to `width` digits.
fn base36(mut value: u32, width: usize) -> String {
    let mut digits = Vec::new();
    while value > 0 || digits.len() < width {
        digits.push(char::from_digit(value % 36, 36).unwrap_or('0'));
        value /= 36;
    }
    digits.iter().rev().collect()
}

/// The pid a name made by this module carries after `prefix`, if it is one.
fn pid_in(name: &str, prefix: &str) -> Option<u32> {
    let digits = name.strip_prefix(prefix)?.get(..PID_DIGITS)?;
    u32::from_str_radix(digits, 36).ok()
}

/// Removes the namespaces, bridges and veths of runs whose process no longer exists.
fn remove_leftovers_of_dead_runs() {
    let dead = |pid: u32| !crate::process::is_alive(pid);
    if let Ok(listed) = ip_output(&["netns", "list"]) {
        for namespace in listed
            .lines()
            .filter_map(|line| line.split_whitespace().next())
        {
            if pid_in(namespace, NAMESPACE_PREFIX).is_some_and(dead) {
                // Its processes outlived the killed test (nobody dropped their guards):
                // they belong to that run only, so they go with it.
                if let Ok(pids) = ip_output(&["netns", "pids", namespace]) {
                    for pid in pids.lines().filter_map(|line| line.trim().parse().ok()) {
                        if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                            let _ =
                                rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                        }
                    }
                }
                let _ = ip(&["netns", "del", namespace]);
            }
        }
    }
    if let Ok(listed) = ip_output(&["-o", "link", "show"]) {
        for line in listed.lines() {
            let Some(name) = line.split(": ").nth(1) else {
                continue;
            };
            let name = name.split('@').next().unwrap_or(name);
            let pid = pid_in(name, BRIDGE_PREFIX).or_else(|| pid_in(name, VETH_PREFIX));
            if pid.is_some_and(dead) {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
}

fn ip_in(namespace: &str, arguments: &[&str]) -> Result<(), String> {
    let mut all = vec!["-n", namespace];
    all.extend_from_slice(arguments);
    ip(&all)
}

fn ip(arguments: &[&str]) -> Result<(), String> {
    ip_output(arguments).map(|_| ())
}

fn ip_output(arguments: &[&str]) -> Result<String, String> {
    let output = Command::new("ip")
        .args(arguments)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|error| format!("ip {}: {error}", arguments.join(" ")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "ip {} failed ({}): {}",
            arguments.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_pid_and_fit_an_interface_name() {
        let largest_pid = 1 << 22;
        let last_network = NETWORKS_PER_PROCESS_MAX - 1;
        let run = format!(
            "{}{}",
            base36(largest_pid, PID_DIGITS),
            base36(last_network, 2)
        );
        let veth = format!("{VETH_PREFIX}{run}v{}", HOSTS_MAX - 1);
        assert!(veth.len() <= INTERFACE_NAME_MAX, "{veth}");
        assert_eq!(pid_in(&veth, VETH_PREFIX), Some(largest_pid));
        let bridge = format!("{BRIDGE_PREFIX}{run}");
        assert_eq!(pid_in(&bridge, BRIDGE_PREFIX), Some(largest_pid));
        let namespace = format!("{NAMESPACE_PREFIX}{}00-meta-1", base36(42, PID_DIGITS));
        assert_eq!(pid_in(&namespace, NAMESPACE_PREFIX), Some(42));
        assert_eq!(pid_in("shvx", VETH_PREFIX), None);
        assert_eq!(pid_in("eth0", VETH_PREFIX), None);
        assert_eq!(base36(0, 2), "00");
        assert_eq!(base36(37, 2), "11");
    }
}
