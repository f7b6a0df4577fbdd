//! `shardlet dev --tls`: every port over HTTPS with a local CA, every component holding
//! only its own role's keys. The aws CLI and boto3 put, get and list through it; a
//! plaintext client gets a clean refusal; clients trusting another CA (an S3 client, and
//! Shardlet's own internal clients through `shardlet admin`: metadata, the controller's
//! signed `/v1/status`, a node's `/health`) are refused.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use shardlet_net::Transport;
use shardlet_testkit::raw_http::{self, Request};
use shardlet_testkit::{shardlet_binary, DevCluster, S3Client, S3Error};

/// Generous: a dozen processes on 2 shared cores, Python and the aws CLI starting.
const CLIENT_DEADLINE: Duration = Duration::from_secs(120);

/// Runs a client program to completion (bounded), with no `AWS_*` variable of this
/// machine; (success, stdout, stderr).
async fn run(
    program: &str,
    arguments: &[&str],
    environment: &[(&str, &str)],
) -> (bool, String, String) {
    let mut command = tokio::process::Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command
        .args(arguments)
        .envs(environment.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(CLIENT_DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| {
            panic!("{program} {arguments:?} did not finish within {CLIENT_DEADLINE:?}")
        })
        .unwrap_or_else(|error| panic!("{program} does not run: {error}"));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Debian's aws CLI v2 first (a pip-installed v1 may shadow it on PATH).
fn aws() -> &'static str {
    if Path::new("/usr/bin/aws").exists() {
        "/usr/bin/aws"
    } else {
        "aws"
    }
}

const BOTO3_ROUND_TRIP: &str = r#"
import os, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["ENDPOINT"], verify=os.environ["CA"],
                  aws_access_key_id=os.environ["KEY"], aws_secret_access_key=os.environ["SECRET"],
                  region_name=os.environ["REGION"])
s3.put_object(Bucket="tls", Key="from-boto3", Body=b"boto3 over https")
assert s3.get_object(Bucket="tls", Key="from-boto3")["Body"].read() == b"boto3 over https"
keys = [o["Key"] for o in s3.list_objects_v2(Bucket="tls")["Contents"]]
print(" ".join(sorted(keys)))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_serves_the_aws_cli_and_boto3_and_refuses_strangers() {
    let binary = shardlet_binary!();
    let dev = DevCluster::start_tls(&binary).await;
    let ca = dev.ca_path().display().to_string();
    let access = dev.access.clone();
    assert!(
        access.endpoint.starts_with("https://"),
        "{}",
        access.endpoint
    );
    let credentials = [
        ("AWS_ACCESS_KEY_ID", access.access_key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", access.secret_key.as_str()),
        ("AWS_REGION", access.region.as_str()),
    ];

    // The aws CLI, trusting the CA through --ca-bundle: make a bucket, put, list, get.
    let file = dev.root.path().join("upload.txt");
    std::fs::write(&file, b"aws cli over https").unwrap();
    let file = file.display().to_string();
    let endpoint = access.endpoint.as_str();
    let aws_ok = |arguments: Vec<String>| async move {
        let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
        let (ok, stdout, stderr) = run(aws(), &arguments, &credentials).await;
        assert!(ok, "aws {arguments:?} failed:\n{stdout}\n{stderr}");
        stdout
    };
    let common = |rest: &[&str]| -> Vec<String> {
        ["--endpoint-url", endpoint, "--ca-bundle", &ca]
            .iter()
            .chain(rest)
            .map(|text| text.to_string())
            .collect()
    };
    aws_ok(common(&["s3", "mb", "s3://tls"])).await;
    aws_ok(common(&["s3", "cp", &file, "s3://tls/from-aws"])).await;
    let listed = aws_ok(common(&["s3", "ls", "s3://tls/"])).await;
    assert!(listed.contains("from-aws"), "{listed}");
    let fetched = aws_ok(common(&["s3", "cp", "s3://tls/from-aws", "-"])).await;
    assert_eq!(fetched, "aws cli over https");
    // AWS_CA_BUNDLE, as `shardlet dev --tls` prints it, works the same.
    let (ok, stdout, stderr) = run(
        aws(),
        &["--endpoint-url", endpoint, "s3", "ls", "s3://tls/"],
        &[credentials.as_slice(), &[("AWS_CA_BUNDLE", ca.as_str())]].concat(),
    )
    .await;
    assert!(ok && stdout.contains("from-aws"), "{stdout}\n{stderr}");
    // Without the CA, the aws CLI refuses the certificate.
    let (ok, _, stderr) = run(
        aws(),
        &["--endpoint-url", endpoint, "s3", "ls", "s3://tls/"],
        &credentials,
    )
    .await;
    assert!(!ok, "the aws CLI trusted an unknown CA");
    assert!(
        stderr.to_ascii_lowercase().contains("certificate"),
        "{stderr}"
    );

    // boto3 with verify= the CA: put, get, list.
    let (ok, stdout, stderr) = run(
        "python3",
        &["-c", BOTO3_ROUND_TRIP],
        &[
            ("ENDPOINT", endpoint),
            ("CA", ca.as_str()),
            ("KEY", access.access_key.as_str()),
            ("SECRET", access.secret_key.as_str()),
            ("REGION", access.region.as_str()),
        ],
    )
    .await;
    assert!(ok, "boto3 over https failed:\n{stdout}\n{stderr}");
    assert_eq!(stdout.trim(), "from-aws from-boto3");

    // A plaintext client gets a readable refusal from the TLS port, not a hang.
    let s3_address = format!("127.0.0.1:{}", dev.ports.s3).parse().unwrap();
    let refused = raw_http::send(s3_address, &Request::new("GET", "/health"))
        .await
        .expect("the TLS port answers a plaintext request");
    assert_eq!(refused.status, 400);
    assert!(String::from_utf8_lossy(&refused.body).contains("HTTPS only"));

    // The kit's S3 client: trusting the CA works; trusting another CA is refused.
    let trusted = S3Client::over(
        access.clone(),
        &Transport::from_ca_file(&dev.ca_path()).unwrap(),
    );
    assert_eq!(
        trusted.list_keys("tls").await.unwrap(),
        ["from-aws", "from-boto3"]
    );
    let elsewhere =
        shardlet_testkit::local_tls::local_tls(&dev.root.path().join("other-ca")).unwrap();
    let stranger = S3Client::over(access, &Transport::from_ca_file(&elsewhere.ca).unwrap());
    match stranger.list_keys("tls").await {
        Err(S3Error::Transport(reason)) => assert!(!reason.is_empty()),
        other => panic!("a client trusting another CA got an answer: {other:?}"),
    }

    // Every component got the certificate and only its own role's key file.
    let components = dev.components();
    assert!(components.len() >= 15, "{components:?}");
    let dev_topology = shardlet_core::Topology::from_toml_str(
        include_str!("../../../examples/topology.toml"),
        "examples/topology.toml",
    )
    .unwrap();
    for (name, pid) in &components {
        let command_line = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let command_line: Vec<String> = command_line
            .split(|byte| *byte == 0)
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect();
        // Node N's key file is named by its name in the topology (`node-eu-west-a-1`).
        let role_file = match name.strip_prefix("node-") {
            Some(number) => {
                let number: usize = number.parse().unwrap();
                format!("node-{}", dev_topology.nodes()[number - 1].name)
            }
            None if name == "meta" => "member".to_string(),
            None => name.clone(),
        };
        let expected = dev.data.join(format!("keys/{role_file}.keys"));
        let key_file = command_line
            .iter()
            .position(|part| part == "--key-file")
            .and_then(|position| command_line.get(position + 1));
        assert_eq!(
            key_file.map(String::as_str),
            Some(expected.to_str().unwrap()),
            "{name}: {command_line:?}"
        );
        assert!(
            !command_line.iter().any(|part| part == "--secret-file"),
            "{name}: {command_line:?}"
        );
        for flag in ["--tls-cert", "--tls-key", "--tls-ca"] {
            assert!(
                command_line.iter().any(|part| part == flag),
                "{name} without {flag}: {command_line:?}"
            );
        }
    }

    // Shardlet's own internal clients, as the operator runs them with the admin role's
    // keys: the metadata client and the signed /v1/status client of `shardlet admin
    // nodes --controller`, and the node /health client of `shardlet admin health`. The
    // cluster's CA works, another CA is refused, and plaintext is refused.
    let meta = format!("127.0.0.1:{}", dev.ports.meta);
    let admin_keys = dev.data.join("keys/admin.keys").display().to_string();
    let controller = format!("https://127.0.0.1:{}", dev.ports.controller);
    let node = format!("https://127.0.0.1:{}", dev.ports.node_base);
    let shardlet = binary.path().display().to_string();
    let run_shardlet = |arguments: Vec<String>| {
        let shardlet = shardlet.clone();
        async move {
            let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
            run(&shardlet, &arguments, &[]).await
        }
    };
    // `admin nodes`, asking the controller too when `with_controller`.
    let admin = |tls: Vec<String>, with_controller: bool| {
        let mut arguments: Vec<String> =
            ["admin", "nodes", "--meta", &meta, "--key-file", &admin_keys]
                .map(String::from)
                .to_vec();
        if with_controller {
            arguments.extend(["--controller".to_string(), controller.clone()]);
        }
        arguments.extend(tls);
        run_shardlet(arguments)
    };
    let (ok, stdout, stderr) = admin(vec!["--tls-ca".into(), ca.clone()], true).await;
    assert!(ok, "admin nodes over TLS failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("controller ") && stdout.contains("active"),
        "the signed /v1/status answered over TLS:\n{stdout}"
    );
    let other_ca = elsewhere.ca.display().to_string();
    let (ok, _, stderr) = admin(vec!["--tls-ca".into(), other_ca.clone()], false).await;
    assert!(!ok, "a metadata client trusting another CA was served");
    assert!(stderr.contains("metadata service unavailable"), "{stderr}");
    let (ok, _, stderr) = admin(vec!["--tls-ca".into(), other_ca.clone()], true).await;
    assert!(!ok, "a /v1/status client trusting another CA was served");
    assert!(
        stderr.contains("cannot reach the controller") && stderr.contains("certificate"),
        "{stderr}"
    );
    for with_controller in [false, true] {
        let (ok, _, _) = admin(vec!["--insecure-plaintext".into()], with_controller).await;
        assert!(!ok, "a plaintext internal client was served by a TLS port");
    }
    // And with neither, the command says what it needs.
    let (ok, _, stderr) = admin(Vec::new(), true).await;
    assert!(!ok && stderr.contains("--tls-ca"), "{stderr}");
    // A controller URL whose scheme is not the cluster's is refused by name.
    let (ok, _, stderr) = run_shardlet(
        [
            "admin",
            "nodes",
            "--meta",
            &meta,
            "--controller",
            &controller.replace("https://", "http://"),
            "--key-file",
            &admin_keys,
            "--tls-ca",
            &ca,
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert!(!ok && stderr.contains("--controller"), "{stderr}");
    let health = |tls: &[&str]| {
        let mut arguments: Vec<String> = ["admin", "health", "--node", &node]
            .map(String::from)
            .to_vec();
        arguments.extend(tls.iter().map(|text| text.to_string()));
        run_shardlet(arguments)
    };
    let (ok, stdout, stderr) = health(&["--tls-ca", &ca]).await;
    assert!(ok, "admin health over TLS failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("writes_refused"), "{stdout}");
    let (ok, _, _) = health(&["--tls-ca", &other_ca]).await;
    assert!(!ok, "the /health client trusted another CA");
    drop(dev);
}
