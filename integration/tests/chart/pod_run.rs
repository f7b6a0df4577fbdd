//! One pod as local processes in its network namespace: volumes made directories, each
//! container's environment resolved and its command expanded as the kubelet does, init
//! containers run to completion in order, then the containers started together,
//! restarted per `restartPolicy` with a growing back-off, and probed for readiness.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use shardlet_testkit::local_cluster::spawn_component;
use shardlet_testkit::netns::Network;
use shardlet_testkit::ChildProcess;

use crate::kube::{expand, rewrite_paths};
use crate::manifests::{text_of, Manifests};
use crate::pod_spec::{PodTemplate, RestartPolicy};

/// Restarts of one container (a crash loop) before the test gives up, naming it.
const RESTARTS_MAX: u32 = 5;
/// The kubelet's restart back-off, scaled down: 250 ms doubling to 4 s.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(4);
/// How often an unready container is probed (the kubelet: `periodSeconds`).
const PROBE_INTERVAL: Duration = Duration::from_millis(200);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Lines of a container's log in a failure message.
const LOG_TAIL_LINES: usize = 30;

/// What the pods of one release share.
pub struct Context<'a> {
    pub manifests: &'a Manifests,
    pub namespace: &'a str,
    /// Directory of `shardlet`, `shardlet-predictor` and `aws`, first on every PATH.
    pub programs: &'a Path,
    /// Where per-pod directories and claims live, and the logs.
    pub root: &'a Path,
    pub logs: &'a Path,
}

/// The images this test runs and the program each stands for.
fn program_of_image(image: &str) -> &'static str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let repository = last.split(':').next().unwrap_or(last);
    match repository {
        "shardlet" => "shardlet",
        "shardlet-predictor" => "shardlet-predictor",
        "aws-cli" => "aws",
        _ => panic!(
            "image {image:?}: this test runs the images shardlet, shardlet-predictor and aws-cli (mapped to local programs)"
        ),
    }
}

/// How a container is judged ready.
#[derive(Clone, Debug)]
enum Probe {
    /// No readiness probe: ready once running.
    Running,
    Http {
        path: String,
        port: u16,
        https: bool,
    },
    Tcp {
        port: u16,
    },
}

/// One container's command and its state.
pub struct Container {
    pub name: String,
    pub program: String,
    pub arguments: Vec<String>,
    pub environment: Vec<(String, String)>,
    working_directory: PathBuf,
    probe: Probe,
    process: Option<ChildProcess>,
    /// Exit statuses so far (each was followed by a restart, or ended it).
    exits: Vec<std::process::ExitStatus>,
    restart_at: Option<Instant>,
    /// Exited successfully and will not run again.
    finished: bool,
    pub ready: bool,
    last_probe: Option<Instant>,
    /// What the last readiness probe saw, for the message when a pod never gets ready.
    last_probe_result: String,
    log: PathBuf,
}

/// A pod: its template, where it runs and its containers.
pub struct PodRun {
    pub template: PodTemplate,
    pub host: String,
    pub address: Ipv4Addr,
    init: Vec<Container>,
    pub containers: Vec<Container>,
    /// The first init container not finished yet; `init.len()` once all are.
    next_init: usize,
    started: bool,
}

/// Why a pod gave up (crash loop, failed Job pod): the message names the container and
/// carries its log.
pub type Failure = String;

impl PodRun {
    /// Makes the pod's volumes (claims under `ROOT/claims` persist across incarnations;
    /// everything else is new) and resolves every container's command.
    pub fn create(
        template: PodTemplate,
        host: &str,
        address: Ipv4Addr,
        context: &Context<'_>,
        incarnation: u32,
    ) -> Self {
        let directory = context
            .root
            .join("pods")
            .join(format!("{}.{incarnation}", template.name));
        std::fs::create_dir_all(&directory).unwrap();
        let volumes = make_volumes(&template, &directory, context);
        let build = |container: &Value, init: bool| {
            build_container(
                container, init, &template, address, &volumes, &directory, context,
            )
        };
        let init = template.spec["initContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|container| build(container, true))
            .collect();
        let containers = template.spec["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|container| build(container, false))
            .collect();
        Self {
            template,
            host: host.to_string(),
            address,
            init,
            containers,
            next_init: 0,
            started: false,
        }
    }

    /// One step of the kubelet's work: start what is due, notice exits, restart per
    /// policy. `Err` when the pod gives up.
    pub fn tick(&mut self, network: &Network) -> Result<(), Failure> {
        let policy = self.template.restart_policy;
        let restarts_max = match policy {
            RestartPolicy::Always => RESTARTS_MAX,
            _ => self.template.retries_max.min(RESTARTS_MAX * 2),
        };
        let pod = self.template.name.clone();
        if self.next_init < self.init.len() {
            let host = self.host.clone();
            let container = &mut self.init[self.next_init];
            // An init container must succeed; it is retried unless the pod never restarts.
            let init_policy = if policy == RestartPolicy::Never {
                RestartPolicy::Never
            } else {
                RestartPolicy::OnFailure
            };
            container.step(&pod, &host, network, init_policy, restarts_max)?;
            if container.finished {
                self.next_init += 1;
            }
            return Ok(());
        }
        let host = self.host.clone();
        for container in &mut self.containers {
            container.step(&pod, &host, network, policy, restarts_max)?;
        }
        self.started = true;
        Ok(())
    }

    /// Probes the containers not ready yet (at most every [`PROBE_INTERVAL`]).
    pub async fn probe(&mut self, client: &reqwest::Client) {
        let address = self.address;
        for container in &mut self.containers {
            if container.process.is_none() {
                container.ready = false;
                continue;
            }
            if container.ready
                || container
                    .last_probe
                    .is_some_and(|last| last.elapsed() < PROBE_INTERVAL)
            {
                continue;
            }
            container.last_probe = Some(Instant::now());
            let (ready, seen) = probe(client, address, &container.probe).await;
            container.ready = ready;
            container.last_probe_result = seen;
        }
    }

    pub fn ready(&self) -> bool {
        self.started && self.containers.iter().all(|container| container.ready)
    }

    /// Every container exited successfully (a Job's or a test's pod).
    pub fn succeeded(&self) -> bool {
        self.started && self.containers.iter().all(|container| container.finished)
    }

    /// The first container whose command is `shardlet SUBCOMMAND …`.
    pub fn shardlet_container(&self, subcommand: &str) -> Option<&Container> {
        self.containers.iter().find(|container| {
            container.program.ends_with("shardlet")
                && container.arguments.first().map(String::as_str) == Some(subcommand)
        })
    }

    /// What keeps the pod from being ready, one line per container (empty once ready).
    pub fn unready(&self) -> String {
        let pod = &self.template.name;
        if self.next_init < self.init.len() {
            let container = &self.init[self.next_init];
            return format!(
                "pod {pod}: init container {} has not completed (exits {:?})\n",
                container.name, container.exits
            );
        }
        self.containers
            .iter()
            .filter(|container| !container.ready)
            .map(|container| {
                format!(
                    "pod {pod}: container {} not ready: {} (restarts: {})\n",
                    container.name,
                    container.last_probe_result,
                    container.exits.len()
                )
            })
            .collect()
    }

    /// Exits of the (main) containers so far: restarts, or the end of a Job's.
    pub fn exits(&self) -> usize {
        self.containers
            .iter()
            .map(|container| container.exits.len())
            .sum()
    }

    /// Every container's log tail, for failure messages.
    pub fn logs(&self) -> String {
        self.init
            .iter()
            .chain(&self.containers)
            .map(|container| container.log_tail(&self.template.name))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Container {
    /// The value `flag` is given in the arguments (`--flag=value` or `--flag value`).
    pub fn flag(&self, flag: &str) -> Option<&str> {
        let with_equals = format!("{flag}=");
        self.arguments
            .iter()
            .enumerate()
            .find_map(|(index, argument)| {
                if let Some(value) = argument.strip_prefix(&with_equals) {
                    Some(value)
                } else if argument == flag {
                    self.arguments.get(index + 1).map(String::as_str)
                } else {
                    None
                }
            })
    }

    pub fn variable(&self, name: &str) -> Option<&str> {
        self.environment
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn step(
        &mut self,
        pod: &str,
        host: &str,
        network: &Network,
        policy: RestartPolicy,
        restarts_max: u32,
    ) -> Result<(), Failure> {
        if self.finished {
            return Ok(());
        }
        if let Some(process) = self.process.as_mut() {
            let Some(status) = process.exit_status() else {
                return Ok(());
            };
            self.process = None;
            self.ready = false;
            self.exits.push(status);
            let restart = match policy {
                RestartPolicy::Always => true,
                RestartPolicy::OnFailure => !status.success(),
                RestartPolicy::Never => false,
            };
            if !restart {
                if status.success() {
                    self.finished = true;
                    return Ok(());
                }
                return Err(self.failure(pod, "failed"));
            }
            let restarts = u32::try_from(self.exits.len()).unwrap_or(u32::MAX);
            if restarts > restarts_max {
                return Err(self.failure(pod, "keeps exiting (a crash loop)"));
            }
            let backoff = BACKOFF_FIRST
                .saturating_mul(1 << (restarts - 1).min(8))
                .min(BACKOFF_MAX);
            self.restart_at = Some(Instant::now() + backoff);
            return Ok(());
        }
        let due = match self.restart_at {
            Some(at) => Instant::now() >= at,
            // An init container starts when its turn comes.
            None => true,
        };
        if due {
            self.restart_at = None;
            self.spawn(pod, host, network);
        }
        Ok(())
    }

    fn spawn(&mut self, pod: &str, host: &str, network: &Network) {
        let mut command = network.command(host, Path::new(&self.program));
        command
            .args(&self.arguments)
            .env_clear()
            .envs(self.environment.iter().map(|(key, value)| (key, value)))
            .current_dir(&self.working_directory);
        let logs = self.log.parent().expect("logs directory");
        let name = self
            .log
            .file_stem()
            .and_then(|stem| stem.to_str())
            .expect("log name");
        match spawn_component(logs, name, command) {
            Ok(process) => self.process = Some(process),
            Err(error) => panic!(
                "container {} of pod {pod} did not spawn: {error}",
                self.name
            ),
        }
    }

    fn failure(&self, pod: &str, what: &str) -> Failure {
        let exits: Vec<String> = self.exits.iter().map(|status| status.to_string()).collect();
        format!(
            "container {} of pod {pod} {what}: exits [{}]\ncommand: {} {}\n{}",
            self.name,
            exits.join(", "),
            self.program,
            self.arguments.join(" "),
            self.log_tail(pod)
        )
    }

    fn log_tail(&self, pod: &str) -> String {
        shardlet_testkit::process::log_tail(
            &format!("{pod}/{}", self.name),
            &self.log,
            LOG_TAIL_LINES,
        )
    }
}

/// Whether the probe passes, and what it saw.
async fn probe(client: &reqwest::Client, address: Ipv4Addr, probe: &Probe) -> (bool, String) {
    match probe {
        Probe::Running => (true, "running".into()),
        Probe::Tcp { port } => {
            let connected = tokio::time::timeout(
                PROBE_TIMEOUT,
                tokio::net::TcpStream::connect((address, *port)),
            )
            .await;
            match connected {
                Ok(Ok(_)) => (true, format!("tcp {address}:{port} connects")),
                Ok(Err(error)) => (false, format!("tcp {address}:{port}: {error}")),
                Err(_) => (
                    false,
                    format!("tcp {address}:{port}: no answer within {PROBE_TIMEOUT:?}"),
                ),
            }
        }
        Probe::Http { path, port, https } => {
            let scheme = if *https { "https" } else { "http" };
            let url = format!("{scheme}://{address}:{port}{path}");
            match client.get(&url).timeout(PROBE_TIMEOUT).send().await {
                Ok(answer) => (
                    answer.status().as_u16() == 200,
                    format!("GET {url} answered {}", answer.status()),
                ),
                Err(error) => (false, format!("GET {url}: {error}")),
            }
        }
    }
}

/// Volume name → the directory standing for it. Claims persist under `ROOT/claims`;
/// emptyDirs, Secrets and ConfigMaps are new for every incarnation of the pod. Secret
/// and ConfigMap files get their `defaultMode` (or item `mode`), and with the pod's
/// `fsGroup` the group-read bit Kubernetes adds to read-only volumes.
fn make_volumes(
    template: &PodTemplate,
    directory: &Path,
    context: &Context<'_>,
) -> BTreeMap<String, PathBuf> {
    let pod = &template.name;
    let mut volumes = BTreeMap::new();
    for (volume, claim) in &template.claims {
        let path = context.root.join("claims").join(claim);
        std::fs::create_dir_all(&path).unwrap();
        volumes.insert(volume.clone(), path);
    }
    let fs_group = !template.spec["securityContext"]["fsGroup"].is_null();
    for volume in template.spec["volumes"].as_array().into_iter().flatten() {
        let name = text_of(&volume["name"]);
        let path = directory.join("volumes").join(&name);
        std::fs::create_dir_all(&path).unwrap();
        if volume.get("emptyDir").is_some() {
            // A directory is all it is.
        } else if let Some(claim) = volume.get("persistentVolumeClaim") {
            let claim = context
                .root
                .join("claims")
                .join(text_of(&claim["claimName"]));
            std::fs::create_dir_all(&claim).unwrap();
            volumes.insert(name, claim);
            continue;
        } else if let Some(source) = volume.get("secret") {
            let secret = text_of(&source["secretName"]);
            let data = context.manifests.data_of("Secret", &secret);
            write_items(pod, &name, "Secret", &secret, data, source, &path, fs_group);
        } else if let Some(source) = volume.get("configMap") {
            let map = text_of(&source["name"]);
            let data = context.manifests.data_of("ConfigMap", &map);
            write_items(pod, &name, "ConfigMap", &map, data, source, &path, fs_group);
        } else {
            panic!("pod {pod}: volume {name} is of a kind this test does not make: {volume}");
        }
        volumes.insert(name, path);
    }
    volumes
}

#[allow(clippy::too_many_arguments)]
fn write_items(
    pod: &str,
    volume: &str,
    kind: &str,
    object: &str,
    data: Option<BTreeMap<String, Vec<u8>>>,
    source: &Value,
    path: &Path,
    fs_group: bool,
) {
    let optional = source["optional"].as_bool().unwrap_or(false);
    let Some(data) = data else {
        assert!(
            optional,
            "pod {pod}: volume {volume} names {kind} {object}, which the chart does not render"
        );
        return;
    };
    let default_mode = source["defaultMode"].as_u64().unwrap_or(0o644) as u32;
    let items: Vec<(String, String, u32)> = match source["items"].as_array() {
        Some(items) => items
            .iter()
            .map(|item| {
                let mode = item["mode"]
                    .as_u64()
                    .map_or(default_mode, |mode| mode as u32);
                (text_of(&item["key"]), text_of(&item["path"]), mode)
            })
            .collect(),
        None => data
            .keys()
            .map(|key| (key.clone(), key.clone(), default_mode))
            .collect(),
    };
    for (key, relative, mode) in items {
        let bytes = data.get(&key).unwrap_or_else(|| {
            panic!("pod {pod}: volume {volume} wants key {key} of {kind} {object}, which has none")
        });
        let file = path.join(&relative);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&file, bytes).unwrap();
        // Kubernetes adds group read to the files of a read-only volume when the pod
        // has an fsGroup (SetVolumeOwnership), so a 0400 Secret arrives as 0440.
        let mode = if fs_group { mode | 0o440 } else { mode };
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

fn build_container(
    container: &Value,
    init: bool,
    template: &PodTemplate,
    address: Ipv4Addr,
    volumes: &BTreeMap<String, PathBuf>,
    directory: &Path,
    context: &Context<'_>,
) -> Container {
    let pod = &template.name;
    let name = text_of(&container["name"]);
    let what = format!("container {name} of pod {pod}");
    let image_program = program_of_image(&text_of(&container["image"]));
    let mounts: Vec<(String, PathBuf)> = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|mount| {
            let volume = text_of(&mount["name"]);
            let base = volumes.get(&volume).unwrap_or_else(|| {
                panic!("{what} mounts volume {volume}, which the pod does not have")
            });
            let sub_path = text_of(&mount["subPath"]);
            let target = if sub_path.is_empty() {
                base.clone()
            } else {
                base.join(sub_path)
            };
            (text_of(&mount["mountPath"]), target)
        })
        .collect();
    let root_directory = directory.join("root").join(&name);
    std::fs::create_dir_all(&root_directory).unwrap();

    let environment = resolve_environment(container, template, address, context, &what);
    let lookup = |variable: &str| {
        environment
            .iter()
            .rev()
            .find(|(key, _)| key == variable)
            .map(|(_, value)| value.clone())
    };
    let strings = |field: &str| -> Vec<String> {
        container[field]
            .as_array()
            .into_iter()
            .flatten()
            .map(|value| rewrite_paths(&expand(&text_of(value), &lookup), &mounts))
            .collect()
    };
    let command = strings("command");
    let mut arguments = strings("args");
    let program = match command.split_first() {
        Some((program, rest)) => {
            let mut all = rest.to_vec();
            all.append(&mut arguments);
            arguments = all;
            map_program(program, context.programs)
        }
        None => context.programs.join(image_program).display().to_string(),
    };
    let mut full_environment = vec![
        (
            "PATH".to_string(),
            format!(
                "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                context.programs.display()
            ),
        ),
        ("HOSTNAME".to_string(), pod.clone()),
        ("HOME".to_string(), root_directory.display().to_string()),
    ];
    full_environment.extend(
        environment
            .into_iter()
            .map(|(key, value)| (key, rewrite_paths(&value, &mounts))),
    );
    let working_directory = match container["workingDir"].as_str() {
        Some(directory) => PathBuf::from(rewrite_paths(directory, &mounts)),
        None => root_directory,
    };
    let probe = if init {
        Probe::Running
    } else {
        probe_of(container, &what)
    };
    Container {
        log: context.logs.join(format!("{pod}.{name}.log")),
        name,
        program,
        arguments,
        environment: full_environment,
        working_directory,
        probe,
        process: None,
        exits: Vec::new(),
        restart_at: None,
        finished: false,
        ready: false,
        last_probe: None,
        last_probe_result: "not probed yet".into(),
    }
}

/// `command[0]` as a local program: the images' own binaries from the programs
/// directory, anything else (`/bin/sh`) as it is.
fn map_program(program: &str, programs: &Path) -> String {
    let base = program.rsplit('/').next().unwrap_or(program);
    match base {
        "shardlet" | "shardlet-predictor" | "aws" => programs.join(base).display().to_string(),
        _ => program.to_string(),
    }
}

/// The container's environment in order: `envFrom`, then `env` (each value expanded
/// against what came before it, as the kubelet does).
fn resolve_environment(
    container: &Value,
    template: &PodTemplate,
    address: Ipv4Addr,
    context: &Context<'_>,
    what: &str,
) -> Vec<(String, String)> {
    let mut environment: Vec<(String, String)> = Vec::new();
    for source in container["envFrom"].as_array().into_iter().flatten() {
        let prefix = text_of(&source["prefix"]);
        let (kind, reference) = if let Some(reference) = source.get("secretRef") {
            ("Secret", reference)
        } else if let Some(reference) = source.get("configMapRef") {
            ("ConfigMap", reference)
        } else {
            panic!("{what}: envFrom {source}");
        };
        let object = text_of(&reference["name"]);
        match context.manifests.data_of(kind, &object) {
            Some(data) => {
                for (key, value) in data {
                    environment.push((format!("{prefix}{key}"), String::from_utf8(value).unwrap()));
                }
            }
            None => assert!(
                reference["optional"].as_bool().unwrap_or(false),
                "{what}: envFrom names {kind} {object}, which the chart does not render"
            ),
        }
    }
    for variable in container["env"].as_array().into_iter().flatten() {
        let name = text_of(&variable["name"]);
        let value = if let Some(value) = variable.get("value") {
            let known = environment.clone();
            let lookup = move |key: &str| {
                known
                    .iter()
                    .rev()
                    .find(|(name, _)| name == key)
                    .map(|(_, value)| value.clone())
            };
            expand(&text_of(value), &lookup)
        } else if let Some(from) = variable.get("valueFrom") {
            match value_from(from, template, address, context, what, &name) {
                Some(value) => value,
                None => continue,
            }
        } else {
            String::new()
        };
        environment.push((name, value));
    }
    environment
}

fn value_from(
    from: &Value,
    template: &PodTemplate,
    address: Ipv4Addr,
    context: &Context<'_>,
    what: &str,
    name: &str,
) -> Option<String> {
    if let Some(field) = from.get("fieldRef") {
        let path = text_of(&field["fieldPath"]);
        let label = |prefix: &str| {
            path.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix("']"))
                .map(str::to_string)
        };
        return Some(match path.as_str() {
            "metadata.name" => template.name.clone(),
            "metadata.namespace" => context.namespace.to_string(),
            "status.podIP" | "status.podIPs" => address.to_string(),
            "spec.nodeName" | "status.hostIP" => "local-machine".to_string(),
            "spec.serviceAccountName" => text_of(&template.spec["serviceAccountName"]),
            _ => {
                if let Some(key) = label("metadata.labels['") {
                    // Absent labels read as empty, as in Kubernetes.
                    template.labels.get(&key).cloned().unwrap_or_default()
                } else {
                    panic!("{what}: env {name}: fieldRef {path} is not one this test knows")
                }
            }
        });
    }
    for (reference, kind) in [("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")] {
        if let Some(reference) = from.get(reference) {
            let object = text_of(&reference["name"]);
            let key = text_of(&reference["key"]);
            let optional = reference["optional"].as_bool().unwrap_or(false);
            let value = context
                .manifests
                .data_of(kind, &object)
                .and_then(|data| data.get(&key).cloned());
            return match value {
                Some(value) => Some(String::from_utf8(value).unwrap_or_else(|_| {
                    panic!("{what}: env {name}: key {key} of {kind} {object} is not UTF-8")
                })),
                None if optional => None,
                None => panic!("{what}: env {name} needs key {key} of {kind} {object}, which the chart does not render"),
            };
        }
    }
    panic!("{what}: env {name}: valueFrom {from} is not one this test knows")
}

fn probe_of(container: &Value, what: &str) -> Probe {
    let probe = &container["readinessProbe"];
    if probe.is_null() {
        return Probe::Running;
    }
    let port_of = |port: &Value| -> u16 {
        if let Some(number) = port.as_u64() {
            return u16::try_from(number).unwrap_or_else(|_| panic!("{what}: probe port {number}"));
        }
        let name = text_of(port);
        container["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|declared| declared["name"] == name.as_str())
            .and_then(|declared| declared["containerPort"].as_u64())
            .and_then(|number| u16::try_from(number).ok())
            .unwrap_or_else(|| panic!("{what}: the readiness probe names port {name:?}, which the container does not declare"))
    };
    if let Some(http) = probe.get("httpGet") {
        let scheme = http["scheme"].as_str().unwrap_or("HTTP");
        return Probe::Http {
            path: http["path"].as_str().unwrap_or("/").to_string(),
            port: port_of(&http["port"]),
            https: scheme.eq_ignore_ascii_case("https"),
        };
    }
    if let Some(tcp) = probe.get("tcpSocket") {
        return Probe::Tcp {
            port: port_of(&tcp["port"]),
        };
    }
    panic!("{what}: readinessProbe {probe} is not httpGet or tcpSocket, which this test runs")
}
