//! A release: every pod of the rendered chart in its own network namespace, installed the
//! way `helm install --wait` and `helm test` go: the workloads' pods start together and
//! must all become ready, then the post-install hooks run to completion (lightest
//! weight first), then the test pods must exit 0.

use std::path::{Path, PathBuf};
use std::time::Duration;

use shardlet_testkit::netns::Network;
use shardlet_testkit::poll::{poll_until, POLL_INTERVAL};
use shardlet_testkit::ShardletBinary;

use crate::dns::{hosts_file, services_of, Endpoint, HostsFiles, Service};
use crate::manifests::Manifests;
use crate::pod_run::{Context, PodRun};
use crate::pod_spec::{pods_of, PodTemplate, Stage};

/// Bounds each phase; generous for a loaded machine (the phases take seconds).
pub const PHASE_DEADLINE: Duration = Duration::from_secs(120);

pub struct Release {
    /// First field: the processes die before their namespaces go.
    pub pods: Vec<PodRun>,
    hosts_files: HostsFiles,
    pub network: Network,
    pub manifests: Manifests,
    services: Vec<Service>,
    pub namespace: String,
    root: PathBuf,
    pub logs: PathBuf,
    programs: PathBuf,
    templates: Vec<PodTemplate>,
    /// Incarnations per pod name (a restarted pod gets new emptyDirs).
    incarnations: std::collections::BTreeMap<String, u32>,
    /// Pods whose processes were killed and that were not started again: the pod object
    /// still exists in Kubernetes, so its DNS names stay (not ready). Address by name.
    killed: Vec<(PodTemplate, std::net::Ipv4Addr)>,
    /// Pods created only once the pod they come after is ready (OrderedReady).
    waiting: Vec<PodTemplate>,
    /// The network host of each pod name (kept across restarts).
    hosts_of_pods: std::collections::BTreeMap<String, String>,
    client: reqwest::Client,
    timeline: Vec<(std::time::Instant, String)>,
    started: std::time::Instant,
}

impl Release {
    /// `root`: this run's directory (logs, pods' volumes, claims). The programs the
    /// images stand for: the binary under test, `shardlet-predictor` built next to it,
    /// and the aws CLI.
    pub fn new(
        network: Network,
        manifests: Manifests,
        binary: &ShardletBinary,
        root: &Path,
    ) -> Self {
        let programs = root.join("programs");
        let logs = root.join("logs");
        std::fs::create_dir_all(&programs).unwrap();
        std::fs::create_dir_all(&logs).unwrap();
        let predictor = binary.path().with_file_name("shardlet-predictor");
        for (name, target) in [
            ("shardlet", binary.path().to_path_buf()),
            ("shardlet-predictor", predictor),
            ("aws", aws_cli()),
        ] {
            std::os::unix::fs::symlink(&target, programs.join(name)).unwrap();
        }
        let namespace = manifests
            .objects
            .iter()
            .find_map(|object| object["metadata"]["namespace"].as_str())
            .unwrap_or("default")
            .to_string();
        let services = services_of(&manifests);
        let templates = pods_of(&manifests);
        let client = reqwest::Client::builder()
            .no_proxy()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        Self {
            pods: Vec::new(),
            hosts_files: HostsFiles::new(),
            network,
            manifests,
            services,
            namespace,
            root: root.to_path_buf(),
            logs,
            programs,
            templates,
            incarnations: Default::default(),
            hosts_of_pods: Default::default(),
            waiting: Vec::new(),
            killed: Vec::new(),
            client,
            timeline: Vec::new(),
            started: std::time::Instant::now(),
        }
    }

    /// The workloads' pods, started together and ready; then the post-install hooks,
    /// each run to completion.
    pub async fn install(&mut self) {
        self.needs_predictor_if_used();
        for template in self.templates_of(Stage::Install) {
            if template.after.is_some() {
                // An OrderedReady StatefulSet's later ordinals wait (tick starts them).
                self.waiting.push(template);
            } else {
                self.start_pod(template);
            }
        }
        self.wait_ready("every pod of the release ready").await;
        let restarts: usize = self.pods.iter().map(PodRun::exits).sum();
        self.note(&format!("every pod ready ({restarts} container restarts)"));
        for hook in self.templates_of(Stage::PostInstall) {
            let name = hook.name.clone();
            self.start_pod(hook);
            self.wait_succeeded(&name).await;
            self.note(&format!("hook {name} completed"));
        }
    }

    /// `helm test`: each test pod must exit 0. Returns their logs.
    pub async fn helm_test(&mut self) -> String {
        let tests = self.templates_of(Stage::Test);
        assert!(!tests.is_empty(), "the chart renders no helm test pod");
        let mut logs = String::new();
        for test in tests {
            let name = test.name.clone();
            self.start_pod(test);
            self.wait_succeeded(&name).await;
            logs.push_str(&self.pod(&name).logs());
            self.note(&format!("helm test {name} passed"));
        }
        logs
    }

    pub fn pod(&self, name: &str) -> &PodRun {
        self.pods
            .iter()
            .find(|pod| pod.template.name == name)
            .unwrap_or_else(|| panic!("no pod {name} runs"))
    }

    /// SIGKILL to every process of pod `name` (and whatever they started), as when its
    /// machine dies: the pod object stays, not ready, so its names stay only in the DNS
    /// of Services that publish not-ready addresses.
    pub fn kill_pod(&mut self, name: &str) -> PodTemplate {
        let index = self
            .pods
            .iter()
            .position(|pod| pod.template.name == name)
            .unwrap_or_else(|| panic!("no pod {name} runs"));
        let pod = self.pods.remove(index);
        let template = pod.template.clone();
        self.killed.push((template.clone(), pod.address));
        drop(pod);
        self.refresh_dns();
        self.note(&format!("pod {name} killed (SIGKILL)"));
        template
    }

    /// Starts `template` again, as its StatefulSet would: same name and host, same
    /// claims, new emptyDirs, init containers first; waits until it is ready.
    pub async fn restart_pod(&mut self, template: PodTemplate) {
        let name = template.name.clone();
        self.start_pod(template);
        self.wait_ready(&format!("pod {name} ready again after its restart"))
            .await;
        self.note(&format!("pod {name} ready again"));
    }

    /// Exits of each pod's containers so far (a crash after the install shows as a
    /// change).
    pub async fn exits(&mut self) -> std::collections::BTreeMap<String, usize> {
        // One round notices processes that exited since the last.
        self.tick().await;
        self.pods
            .iter()
            .map(|pod| (pod.template.name.clone(), pod.exits()))
            .collect()
    }

    /// The network namespaces of the pods (to check they are gone after the drop).
    pub fn namespaces(&self) -> Vec<String> {
        self.network
            .hosts()
            .iter()
            .map(|host| host.namespace.clone())
            .collect()
    }

    /// The timeline, for the test's output.
    pub fn timeline(&self) -> String {
        self.timeline
            .iter()
            .map(|(at, what)| {
                format!(
                    "{:>7.2} s  {what}",
                    at.duration_since(self.started).as_secs_f64()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn note(&mut self, what: &str) {
        eprintln!("chart: {what}");
        self.timeline
            .push((std::time::Instant::now(), what.to_string()));
    }

    fn templates_of(&self, stage: Stage) -> Vec<PodTemplate> {
        let mut templates: Vec<PodTemplate> = self
            .templates
            .iter()
            .filter(|template| template.stage == stage)
            .cloned()
            .collect();
        templates.sort_by_key(|template| template.weight);
        templates
    }

    fn needs_predictor_if_used(&self) {
        let used = self
            .manifests
            .objects
            .iter()
            .any(|object| object.to_string().contains("shardlet-predictor"));
        let predictor = self.programs.join("shardlet-predictor");
        assert!(
            !used || predictor.exists(),
            "the chart runs shardlet-predictor, and {} does not exist: build it first (cargo build -p shardlet-predictor; make test builds the workspace)",
            std::fs::read_link(&predictor).unwrap_or(predictor.clone()).display()
        );
    }

    fn start_pod(&mut self, template: PodTemplate) {
        let name = template.name.clone();
        self.killed.retain(|(killed, _)| killed.name != name);
        // A pod keeps its host (and address) across restarts: its DNS names stay.
        let next = format!("p{}", self.hosts_of_pods.len());
        let host_name = self
            .hosts_of_pods
            .entry(name.clone())
            .or_insert(next)
            .clone();
        if !self
            .network
            .hosts()
            .iter()
            .any(|host| host.name == host_name)
        {
            self.network.add_host(&host_name).unwrap_or_else(|error| {
                panic!("cannot add host {host_name} for pod {name}: {error}")
            });
        }
        let address = self.network.host(&host_name).address;
        let incarnation = self.incarnations.entry(name.clone()).or_insert(0);
        *incarnation += 1;
        let incarnation = *incarnation;
        let context = Context {
            manifests: &self.manifests,
            namespace: &self.namespace,
            programs: &self.programs,
            root: &self.root,
            logs: &self.logs,
        };
        let owner = template.owner.clone();
        let pod = PodRun::create(template, &host_name, address, &context, incarnation);
        self.pods.push(pod);
        self.note(&format!("pod {name} ({owner}) created on {address}"));
        self.refresh_dns();
    }

    /// Rewrites every pod's hosts file from the pods that exist now and their readiness.
    fn refresh_dns(&mut self) {
        let killed = self.killed.iter().map(|(template, address)| Endpoint {
            name: &template.name,
            address: *address,
            labels: &template.labels,
            subdomain: template.subdomain.as_deref(),
            ready: false,
        });
        let endpoints: Vec<Endpoint<'_>> = self
            .pods
            .iter()
            .map(|pod| Endpoint {
                name: &pod.template.name,
                address: pod.address,
                labels: &pod.template.labels,
                subdomain: pod.template.subdomain.as_deref(),
                ready: pod.ready(),
            })
            .chain(killed)
            .collect();
        let files: Vec<(String, String)> = endpoints
            .iter()
            .zip(&self.pods)
            .map(|(own, pod)| {
                (
                    self.network.host(&pod.host).namespace.clone(),
                    hosts_file(own, &endpoints, &self.services, &self.namespace),
                )
            })
            .collect();
        for (namespace, contents) in files {
            self.hosts_files.write(&namespace, &contents);
        }
    }

    /// One round of the kubelets' work over every pod; panics with the logs when a
    /// pod gives up.
    async fn tick(&mut self) {
        let due: Vec<usize> = self
            .waiting
            .iter()
            .enumerate()
            .filter(|(_, template)| {
                let after = template.after.as_deref().unwrap_or_default();
                self.pods
                    .iter()
                    .any(|pod| pod.template.name == after && pod.ready())
            })
            .map(|(index, _)| index)
            .collect();
        for index in due.into_iter().rev() {
            let template = self.waiting.remove(index);
            self.start_pod(template);
        }
        let readiness_before: Vec<bool> = self.pods.iter().map(PodRun::ready).collect();
        let mut failure = None;
        for pod in &mut self.pods {
            if let Err(why) = pod.tick(&self.network) {
                failure = Some(why);
                break;
            }
            pod.probe(&self.client).await;
        }
        if let Some(failure) = failure {
            panic!("{failure}\n\ntimeline:\n{}", self.timeline());
        }
        let readiness: Vec<bool> = self.pods.iter().map(PodRun::ready).collect();
        if readiness != readiness_before {
            self.refresh_dns();
        }
    }

    async fn wait_ready(&mut self, what: &str) {
        self.wait(what, |release| {
            release.waiting.is_empty()
                && release
                    .pods
                    .iter()
                    .all(|pod| pod.template.stage != Stage::Install || pod.ready())
        })
        .await;
    }

    async fn wait_succeeded(&mut self, name: &str) {
        self.wait(&format!("pod {name} completed"), |release| {
            release.pod(name).succeeded()
        })
        .await;
    }

    /// Runs the kubelets' rounds until `done`; past [`PHASE_DEADLINE`], fails naming
    /// what is not ready and why, with the logs.
    async fn wait(&mut self, what: &str, done: impl Fn(&Release) -> bool) {
        let release = tokio::sync::Mutex::new(self);
        let give_up = tokio::time::Instant::now() + PHASE_DEADLINE;
        let outcome = poll_until(give_up, POLL_INTERVAL, || async {
            let mut release = release.lock().await;
            release.tick().await;
            done(&release)
        })
        .await;
        if outcome.is_err() {
            let release = release.lock().await;
            let mut unready: String = release.pods.iter().map(PodRun::unready).collect();
            for template in &release.waiting {
                unready.push_str(&format!(
                    "pod {} not created: it waits for {} to be ready (OrderedReady)\n",
                    template.name,
                    template.after.as_deref().unwrap_or_default()
                ));
            }
            let logs: Vec<String> = release.pods.iter().map(PodRun::logs).collect();
            panic!(
                "timed out after {PHASE_DEADLINE:?} waiting until {what}:\n{unready}\n{}\n\ntimeline:\n{}",
                logs.join("\n"),
                release.timeline()
            );
        }
    }
}

/// Debian's aws CLI v2 (a pip-installed v1 may shadow it on PATH), or
/// `SHARDLET_TEST_AWS`.
pub fn aws_cli() -> PathBuf {
    if let Some(path) = std::env::var_os("SHARDLET_TEST_AWS") {
        return PathBuf::from(path);
    }
    let debian = Path::new("/usr/bin/aws");
    assert!(
        debian.exists(),
        "no /usr/bin/aws (set SHARDLET_TEST_AWS to override); install the clients with scripts/install-deps.sh test"
    );
    debian.to_path_buf()
}
