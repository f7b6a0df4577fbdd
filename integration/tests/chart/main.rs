//! The Helm chart run as rendered: `helm/shardlet` rendered with `ci/local.yaml` by
//! `scripts/chart_check.py render` (the real Helm library), and every pod the manifests
//! describe — StatefulSet replicas by ordinal, Deployment replicas, hook Jobs, the
//! `helm test` pod — run as local processes, each pod in its own network namespace of
//! the kit's `Network`, so the listen addresses and ports are the rendered ones.
//!
//! What Kubernetes would do, done here: Service DNS names (`POD.SVC.NS.svc.cluster.local`
//! of a headless Service, `SVC.NS.svc.cluster.local`, `SVC.NS`, `SVC`) resolve to the
//! pods' addresses through a hosts file per namespace (`dns.rs`); env from `value`,
//! `fieldRef`, `secretKeyRef`, `configMapKeyRef` and `envFrom`, from the rendered
//! Secrets and ConfigMaps; `$(VAR)` in command, args and env expanded by the kubelet's
//! rules (`kube.rs`); init containers run to completion in order, then the containers
//! start together and are restarted per `restartPolicy` (a crash loop fails the test
//! with the container's log); readiness is each container's `readinessProbe`, polled
//! until it answers 200 (a wrong probe fails the test); post-install hook Jobs run once
//! every pod is ready, then the `helm test` pod must exit 0. Images map to the programs
//! built for the test: `shardlet` → the binary under test, `shardlet-predictor` → the one
//! built next to it, `aws-cli` → Debian's aws CLI.
//!
//! **The one place this is not Kubernetes:** volumes. Secrets, ConfigMaps, emptyDirs and
//! claims become directories under the run's directory, and every container path under
//! a `mountPath` in command, args, env values and `workingDir` is rewritten to the
//! directory standing for it (`kube::rewrite_paths`). Also not modelled: users and
//! `securityContext` (the processes run as the test's user), resource limits, service
//! virtual IPs and port remapping (a Service whose port differs from its target port is
//! refused), liveness probes, and service-link environment variables.
//!
//! Then the cluster is used: the aws CLI (the real one, from the test process) writes
//! objects through the gateway pod's address and reads them back; one storage pod is
//! SIGKILLed, every object is read again (degraded reads) and more are written; the pod
//! is started again as its StatefulSet would (same name, same claim) and must become
//! ready; everything reads back. The key the values declare (`s3Keys`), imported by the
//! hook Job, must work too.
//!
//! `SHARDLET_CHART_RENDERED=DIR` runs the manifests in DIR instead of rendering (to
//! check that a broken manifest fails this test: edit a copy); `SHARDLET_CHART_ROOT`
//! renders the chart of another checkout; `SHARDLET_CHART_KEEP=1` keeps the run's
//! directory (logs, volumes). Needs root (namespaces); skips loudly without.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod aws;
mod dns;
mod kube;
mod manifests;
mod pod_run;
mod pod_spec;
mod release;

use std::path::{Path, PathBuf};

use shardlet_testkit::netns::Network;
use shardlet_testkit::{pattern_bytes, shardlet_binary};

use crate::aws::Aws;
use crate::manifests::{text_of, Manifests};
use crate::pod_spec::Stage;
use crate::release::Release;

const TEST: &str = "the_chart_runs_as_rendered_serves_s3_and_survives_a_storage_pod_killed";
/// The value set this test runs (relative to the repository).
const VALUES: &str = "helm/shardlet/ci/local.yaml";
/// Object sizes written before and while a storage pod is down: small ones (values in
/// a node's RocksDB), and ones cut into several shardlets. The empty object is written
/// on its own ([`EMPTY_OBJECT`]).
const SIZES_BYTES: [usize; 6] = [1, 4_096, 65_537, 300_000, 1_500_000, 4_500_000];
/// An empty object, written by an aws CLI run of its own: the aws CLI's botocore (before
/// 1.43.77) sends `Expect: 100-continue` with a zero-length PUT and then misreads the
/// next response on that pooled connection (no headers, body read until the server
/// closes the idle connection: here 30 s later), botocore issue #3755. Alone, no PUT
/// follows it on its connection.
const EMPTY_OBJECT: &str = "s3://chart/empty";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_runs_as_rendered_serves_s3_and_survives_a_storage_pod_killed() {
    let binary = shardlet_binary!();
    let network = match Network::create() {
        Ok(network) => network,
        Err(why) => return binary.skipped(TEST, &why),
    };
    let mut run = tempfile::Builder::new()
        .prefix("chart-")
        .tempdir_in(binary.clusters_root())
        .unwrap();
    // SHARDLET_CHART_KEEP=1: the run's directory (logs, volumes) stays for a look.
    run.disable_cleanup(std::env::var_os("SHARDLET_CHART_KEEP").is_some());
    let manifests = match std::env::var_os("SHARDLET_CHART_RENDERED") {
        Some(directory) => Manifests::read(Path::new(&directory)),
        None => Manifests::render(VALUES, &run.path().join("rendered")),
    };
    let mut release = Release::new(network, manifests, &binary, run.path());
    release.install().await;
    release.helm_test().await;

    let exits_after_install = release.exits().await;
    let aws = admin_aws(&release, &run.path().join("aws-admin"));
    let logs = |release: &Release| {
        let pods: Vec<String> = release.pods.iter().map(|pod| pod.logs()).collect();
        format!("{}\n\ntimeline:\n{}", pods.join("\n"), release.timeline())
    };
    let context = || String::new();
    aws.ok(&["s3", "mb", "s3://chart"], &context);
    let empty = run.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    aws.ok(&["s3", "cp", path_text(&empty), EMPTY_OBJECT], &context);
    let first = write_files(&run.path().join("first"), 1);
    aws.ok(
        &[
            "s3",
            "cp",
            "--recursive",
            path_text(&first),
            "s3://chart/first/",
        ],
        &|| logs(&release),
    );
    read_back(&aws, "first", &first, &run.path().join("read-1"), &|| {
        logs(&release)
    });
    release.note("aws CLI wrote and read back the first objects");

    let victim = release
        .pods
        .iter()
        .find(|pod| pod.shardlet_container("node").is_some())
        .map(|pod| pod.template.name.clone())
        .expect("the chart runs storage nodes");
    let fragments_before = node_fragments(&release, &victim).await;
    assert!(
        fragments_before > 0,
        "{victim} holds no fragment before it is killed"
    );
    let template = release.kill_pod(&victim);
    read_back(&aws, "first", &first, &run.path().join("read-2"), &|| {
        logs(&release)
    });
    release.note("every object read back with a storage pod down (degraded reads)");
    let second = write_files(&run.path().join("second"), 2);
    aws.ok(
        &[
            "s3",
            "cp",
            "--recursive",
            path_text(&second),
            "s3://chart/second/",
        ],
        &|| logs(&release),
    );
    read_back(&aws, "second", &second, &run.path().join("read-3"), &|| {
        logs(&release)
    });
    release.note("more objects written and read back with the storage pod down");

    release.restart_pod(template).await;
    let fragments_after = node_fragments(&release, &victim).await;
    assert!(
        fragments_after >= fragments_before,
        "{victim} held {fragments_before} fragments before its kill and {fragments_after} after its restart on the same claim"
    );
    read_back(&aws, "first", &first, &run.path().join("read-4"), &|| {
        logs(&release)
    });
    read_back(&aws, "second", &second, &run.path().join("read-5"), &|| {
        logs(&release)
    });
    release.note("everything reads back after the storage pod's restart");

    declared_key_works(&release, &run.path().join("aws-declared"), &|| {
        logs(&release)
    });
    release.note("the key declared in the values (imported by the hook) writes and reads");
    let exits_at_end = release.exits().await;
    for (pod, exits) in &exits_after_install {
        if *pod != victim {
            assert_eq!(
                exits_at_end.get(pod),
                Some(exits),
                "a container of pod {pod} exited after the install\n{}",
                logs(&release)
            );
        }
    }
    assert_eq!(exits_at_end.get(&victim), Some(&0), "{}", logs(&release));
    eprintln!("chart test timeline:\n{}", release.timeline());

    // Every process and namespace goes with the release (also on a panic).
    let namespaces = release.namespaces();
    drop(release);
    let listed = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    for namespace in namespaces {
        assert!(
            !listed.contains(&namespace),
            "namespace {namespace} outlived the release"
        );
        assert!(
            !Path::new("/etc/netns").join(&namespace).exists(),
            "/etc/netns/{namespace} outlived the release"
        );
    }
}

/// The fragment count node pod `pod` reports on `/health` (its `--listen` port).
async fn node_fragments(release: &Release, pod: &str) -> u64 {
    let run = release.pod(pod);
    let node = run.shardlet_container("node").expect("a storage node pod");
    let port = node
        .flag("--listen")
        .and_then(|listen| listen.rsplit(':').next())
        .unwrap();
    let url = format!("http://{}:{port}/health", run.address);
    let health: serde_json::Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|error| panic!("GET {url}: {error}"))
        .json()
        .await
        .unwrap_or_else(|error| panic!("GET {url}: not JSON: {error}"));
    health["fragments"]["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("GET {url}: no fragments.count in {health}"))
}

/// The aws CLI as the release's admin, with the credentials the `helm test` pod got,
/// at the gateway pod's S3 address.
fn admin_aws(release: &Release, scratch: &Path) -> Aws {
    let (pod, gateway) = release
        .pods
        .iter()
        .find_map(|pod| {
            pod.shardlet_container("gateway")
                .map(|container| (pod, container))
        })
        .expect("the chart runs a gateway");
    let listen = gateway.flag("--listen").expect("the gateway's --listen");
    let port = listen.rsplit(':').next().unwrap();
    let endpoint = format!("http://{}:{port}", pod.address);
    let region = gateway.flag("--region").unwrap_or("us-east-1");
    let test = release
        .pods
        .iter()
        .find(|pod| pod.template.stage == Stage::Test)
        .expect("a helm test pod ran");
    let credentials = test
        .containers
        .iter()
        .find_map(|container| {
            Some((
                container.variable("AWS_ACCESS_KEY_ID")?.to_string(),
                container.variable("AWS_SECRET_ACCESS_KEY")?.to_string(),
            ))
        })
        .expect("the helm test pod's AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
    Aws::new(&endpoint, &credentials.0, &credentials.1, region, scratch)
}

/// The first key of the `keys.json` the chart renders for the import hook: it writes
/// and reads an object of its own bucket.
fn declared_key_works(release: &Release, scratch: &Path, logs: &dyn Fn() -> String) {
    let declared = release
        .manifests
        .of_kind("Secret")
        .find_map(|secret| {
            let name = text_of(&secret["metadata"]["name"]);
            release
                .manifests
                .data_of("Secret", &name)?
                .remove("keys.json")
        })
        .expect("a rendered Secret with keys.json (the values declare s3Keys)");
    let keys: Vec<serde_json::Value> = serde_json::from_slice(&declared).unwrap();
    let key = keys.first().expect("local.yaml declares a key");
    let admin = admin_aws(release, scratch);
    let aws = Aws::new(
        &admin.endpoint,
        key["access_key"].as_str().unwrap(),
        key["secret_key"].as_str().unwrap(),
        "us-east-1",
        scratch,
    );
    let file = scratch.join("declared");
    std::fs::write(&file, b"written with the key the values declare").unwrap();
    aws.ok(&["s3", "mb", "s3://declared"], logs);
    aws.ok(
        &["s3", "cp", path_text(&file), "s3://declared/object"],
        logs,
    );
    let back = scratch.join("back");
    aws.ok(
        &["s3", "cp", "s3://declared/object", path_text(&back)],
        logs,
    );
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&file).unwrap());
}

/// Files of [`SIZES_BYTES`] in a new directory.
fn write_files(directory: &Path, seed: u64) -> PathBuf {
    std::fs::create_dir_all(directory).unwrap();
    for (index, size) in SIZES_BYTES.iter().enumerate() {
        std::fs::write(
            directory.join(format!("object-{index}-{size}")),
            pattern_bytes(*size, seed * 100 + index as u64),
        )
        .unwrap();
    }
    directory.to_path_buf()
}

/// Downloads `s3://chart/PREFIX/` into `into` and checks it holds exactly `expected`'s
/// files, byte for byte.
fn read_back(aws: &Aws, prefix: &str, expected: &Path, into: &Path, logs: &dyn Fn() -> String) {
    aws.ok(
        &[
            "s3",
            "cp",
            "--recursive",
            &format!("s3://chart/{prefix}/"),
            path_text(into),
        ],
        logs,
    );
    let mut names: Vec<_> = std::fs::read_dir(expected)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    names.sort();
    for name in &names {
        let read = std::fs::read(into.join(name)).unwrap_or_else(|error| {
            panic!(
                "{prefix}/{} was not read back: {error}\n{}",
                name.to_string_lossy(),
                logs()
            )
        });
        assert!(
            read == std::fs::read(expected.join(name)).unwrap(),
            "{prefix}/{} read back different bytes\n{}",
            name.to_string_lossy(),
            logs()
        );
    }
    let read_count = std::fs::read_dir(into).unwrap().count();
    assert_eq!(
        read_count,
        names.len(),
        "s3://chart/{prefix}/ lists other objects"
    );
}

fn path_text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 paths")
}
