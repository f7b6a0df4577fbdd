//! Cluster DNS as hosts files: `ip netns exec NS` bind-mounts `/etc/netns/NS/hosts` over
//! `/etc/hosts` for the program it runs, and every Shardlet binary and the aws CLI
//! resolve through getaddrinfo, which reads it (`hosts: files dns`). Each pod's file
//! names every Service the way a pod's resolver finds them with Kubernetes' search
//! path: `SVC`, `SVC.NS`, `SVC.NS.svc`, `SVC.NS.svc.DOMAIN`, and for a headless Service
//! each member pod as `POD.SVC…`. A headless Service lists a pod only once it is ready,
//! unless it publishes not-ready addresses; a ClusterIP name always resolves (to the
//! pods that exist: the test has no virtual IPs). Files are rewritten in place when
//! readiness changes, so processes already running see the change. A name in no hosts
//! file fails at once, as Kubernetes' DNS answers NXDOMAIN: each namespace's
//! `resolv.conf` (bind-mounted the same way) names a server on the namespace's own
//! loopback, where nothing listens (the machine's resolver is unreachable from a
//! namespace, and glibc would wait out its timeouts, ~30 s, on every lookup).

use std::collections::BTreeMap;
use std::io::{Seek, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde_json::Value;

use crate::kube::selects;
use crate::manifests::{string_map, text_of, Manifests};

/// Kubernetes' default cluster domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";
const ETC_NETNS: &str = "/etc/netns";
/// Every namespace's `/etc/resolv.conf`: see the module documentation.
const RESOLV_CONF: &str = "# chart test: names not in /etc/hosts fail at once (NXDOMAIN in Kubernetes)\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n";

/// A Service as the resolver sees it.
pub struct Service {
    pub name: String,
    selector: BTreeMap<String, String>,
    headless: bool,
    publish_not_ready: bool,
}

pub fn services_of(manifests: &Manifests) -> Vec<Service> {
    manifests
        .of_kind("Service")
        .map(|service: &Value| {
            let spec = &service["spec"];
            let name = text_of(&service["metadata"]["name"]);
            // No remapped ports: names resolve to the pods themselves.
            for port in spec["ports"].as_array().into_iter().flatten() {
                if let Some(target) = port["targetPort"].as_u64() {
                    assert_eq!(
                        port["port"].as_u64(),
                        Some(target),
                        "Service {name} maps port {} to {target}: this test resolves service names to the pods and cannot remap ports",
                        port["port"]
                    );
                }
            }
            Service {
                name,
                selector: string_map(&spec["selector"]),
                headless: spec["clusterIP"].as_str() == Some("None"),
                publish_not_ready: spec["publishNotReadyAddresses"].as_bool().unwrap_or(false),
            }
        })
        .collect()
}

/// A pod as the resolver sees it.
#[derive(Clone, Copy)]
pub struct Endpoint<'a> {
    pub name: &'a str,
    pub address: Ipv4Addr,
    pub labels: &'a BTreeMap<String, String>,
    pub subdomain: Option<&'a str>,
    pub ready: bool,
}

/// The hosts file of `own` (its own names first), given every pod that exists.
pub fn hosts_file(
    own: &Endpoint<'_>,
    pods: &[Endpoint<'_>],
    services: &[Service],
    namespace: &str,
) -> String {
    let mut lines = vec![
        "127.0.0.1\tlocalhost".to_string(),
        "::1\tlocalhost ip6-localhost ip6-loopback".to_string(),
    ];
    let names = |base: &str| {
        format!("{base}.{namespace}.svc.{CLUSTER_DOMAIN} {base}.{namespace}.svc {base}.{namespace} {base}")
    };
    match own.subdomain {
        Some(subdomain) => lines.push(format!(
            "{}\t{} {}",
            own.address,
            names(&format!("{}.{subdomain}", own.name)),
            own.name
        )),
        None => lines.push(format!("{}\t{}", own.address, own.name)),
    }
    for service in services {
        for pod in pods
            .iter()
            .filter(|pod| selects(&service.selector, pod.labels))
        {
            let listed = !service.headless || pod.ready || service.publish_not_ready;
            if !listed {
                continue;
            }
            lines.push(format!("{}\t{}", pod.address, names(&service.name)));
            if service.headless && pod.subdomain == Some(service.name.as_str()) {
                lines.push(format!(
                    "{}\t{}",
                    pod.address,
                    names(&format!("{}.{}", pod.name, service.name))
                ));
            }
        }
    }
    lines.join("\n") + "\n"
}

/// The `/etc/netns/NS` directories of this run, removed when dropped (also on a panic),
/// and the ones a killed run left for namespaces that no longer exist.
pub struct HostsFiles {
    namespaces: Vec<String>,
    written: BTreeMap<String, String>,
}

impl HostsFiles {
    pub fn new() -> Self {
        remove_leftovers();
        Self {
            namespaces: Vec::new(),
            written: BTreeMap::new(),
        }
    }

    /// Writes `contents` as namespace `namespace`'s hosts file, in place (a running
    /// process's bind mount sees the new contents), if they changed.
    pub fn write(&mut self, namespace: &str, contents: &str) {
        if self.written.get(namespace).map(String::as_str) == Some(contents) {
            return;
        }
        let directory = PathBuf::from(ETC_NETNS).join(namespace);
        if !self.namespaces.iter().any(|known| known == namespace) {
            std::fs::create_dir_all(&directory)
                .unwrap_or_else(|error| panic!("cannot create {}: {error}", directory.display()));
            self.namespaces.push(namespace.to_string());
            std::fs::write(directory.join("resolv.conf"), RESOLV_CONF).unwrap();
        }
        let path = directory.join("hosts");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .unwrap_or_else(|error| panic!("cannot open {}: {error}", path.display()));
        // Written over the old contents, then cut: a reader never sees an empty file.
        file.rewind().unwrap();
        file.write_all(contents.as_bytes()).unwrap();
        file.set_len(contents.len() as u64).unwrap();
        self.written
            .insert(namespace.to_string(), contents.to_string());
    }
}

impl Drop for HostsFiles {
    fn drop(&mut self) {
        for namespace in &self.namespaces {
            let _ = std::fs::remove_dir_all(PathBuf::from(ETC_NETNS).join(namespace));
        }
    }
}

/// `/etc/netns/shl-…` directories of namespaces gone (a run killed before it could
/// drop its guard).
fn remove_leftovers() {
    let Ok(listed) = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
    else {
        return;
    };
    let existing = String::from_utf8_lossy(&listed.stdout).into_owned();
    let Ok(entries) = std::fs::read_dir(ETC_NETNS) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with("shl-");
        let alive = existing
            .lines()
            .any(|line| line.split_whitespace().next() == Some(name.as_str()));
        if ours && !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(app: &str) -> BTreeMap<String, String> {
        [("app".to_string(), app.to_string())].into()
    }

    #[test]
    fn names_follow_readiness_only_where_kubernetes_makes_them() {
        let service = |name: &str, app: &str, headless: bool, publish_not_ready: bool| Service {
            name: name.into(),
            selector: labels(app),
            headless,
            publish_not_ready,
        };
        let services = [
            service("meta", "meta", true, true),
            service("node", "node", true, false),
            service("gateway", "gateway", false, false),
        ];
        let (meta, node, gateway) = (labels("meta"), labels("node"), labels("gateway"));
        let pods = [
            Endpoint {
                name: "meta-0",
                address: Ipv4Addr::new(10, 0, 0, 1),
                labels: &meta,
                subdomain: Some("meta"),
                ready: false,
            },
            Endpoint {
                name: "node-0",
                address: Ipv4Addr::new(10, 0, 0, 2),
                labels: &node,
                subdomain: Some("node"),
                ready: false,
            },
            Endpoint {
                name: "gw-1",
                address: Ipv4Addr::new(10, 0, 0, 3),
                labels: &gateway,
                subdomain: None,
                ready: false,
            },
        ];
        let file = hosts_file(&pods[2], &pods, &services, "ns");
        assert!(file.contains("10.0.0.3\tgw-1\n"), "{file}");
        assert!(
            file.contains("10.0.0.1\tmeta-0.meta.ns.svc.cluster.local meta-0.meta.ns.svc meta-0.meta.ns meta-0.meta\n"),
            "publishNotReadyAddresses lists a pod before it is ready:\n{file}"
        );
        assert!(
            !file.contains("node-0"),
            "a headless Service lists only ready pods:\n{file}"
        );
        assert!(
            file.contains(
                "10.0.0.3\tgateway.ns.svc.cluster.local gateway.ns.svc gateway.ns gateway\n"
            ),
            "a ClusterIP name always resolves:\n{file}"
        );
        let pods = [
            pods[0],
            Endpoint {
                ready: true,
                ..pods[1]
            },
            pods[2],
        ];
        let file = hosts_file(&pods[0], &pods, &services, "ns");
        assert!(
            file.contains("10.0.0.2\tnode-0.node.ns.svc.cluster.local"),
            "{file}"
        );
        assert!(file.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(file.contains("10.0.0.1\tmeta-0.meta.ns.svc.cluster.local meta-0.meta.ns.svc meta-0.meta.ns meta-0.meta meta-0\n"), "its own name first:\n{file}");
    }
}
