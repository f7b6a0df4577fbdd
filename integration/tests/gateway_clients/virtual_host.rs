//! Virtual-hosted–style addressing (`shardlet dev --domain`, passed on to the gateway):
//! boto3 and the aws CLI with `addressing_style = virtual`, and raw requests whose
//! `Host` names a bucket.
//!
//! `BUCKET.DOMAIN` must resolve to the gateway for the real clients. Nothing here
//! resolves a wildcard (`getent hosts x.localhost` fails on this machine class), so
//! each client runs in a mount namespace of its own (`unshare --mount`) where a hosts
//! file of the test is bind-mounted over `/etc/hosts` — what `ip netns exec` does with
//! `/etc/netns/NS/hosts`, without a network namespace: the client stays on loopback
//! with the gateway. Needs root; without it the test says SKIPPED.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use shardlet_testkit::raw_http::{self, Request};
use shardlet_testkit::s3_client::signature_headers;
use shardlet_testkit::{clients_dir, shardlet_binary, DevCluster, S3Access};

use crate::tools::{self, Finished, AWS_DEADLINE};

/// The base domain: `.test` is reserved (RFC 2606) and never resolves by itself.
const DOMAIN: &str = "s3.shardlet.test";
const BOTO3_BUCKET: &str = "vhost-boto3";
const DOTTED_BUCKET: &str = "vhost.dotted.bucket";
const MISSING_BUCKET: &str = "vhost-missing";
const CLI_BUCKET: &str = "vhost-cli";
const RAW_BUCKET: &str = "vhost-raw";
/// How many checks `virtual_host.py` runs (each prints `ok NAME`).
const BOTO3_CHECKS: usize = 9;
const SCRIPT_DEADLINE: Duration = Duration::from_secs(300);
const TEST: &str = "boto3_aws_cli_and_raw_requests_address_buckets_by_host";

/// `command` run in its own mount namespace with `hosts` over `/etc/hosts`: the same
/// program, arguments and environment changes.
fn with_hosts_file(command: &Command, hosts: &Path) -> Command {
    let mut wrapped = Command::new("unshare");
    wrapped
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind "$0" /etc/hosts && exec "$@""#)
        .arg(hosts)
        .arg(command.get_program())
        .args(command.get_args());
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(name, value),
            None => wrapped.env_remove(name),
        };
    }
    wrapped
}

/// Why a hosts file cannot be mounted for a client here, if it cannot.
fn hosts_file_unavailable(hosts: &Path) -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("needs root to mount a hosts file for the clients".into());
    }
    let probe = with_hosts_file(&Command::new("getent"), hosts);
    let mut probe = probe;
    probe.args(["hosts", &format!("{BOTO3_BUCKET}.{DOMAIN}")]);
    match probe.output() {
        Ok(output) if output.status.success() => None,
        Ok(output) => Some(format!(
            "`unshare --mount` with a bind-mounted /etc/hosts does not work here: {}",
            String::from_utf8_lossy(&output.stderr)
        )),
        Err(error) => Some(format!("cannot run unshare: {error}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_aws_cli_and_raw_requests_address_buckets_by_host() {
    let binary = shardlet_binary!();
    let scratch = tempfile::tempdir().unwrap();
    let hosts = scratch.path().join("hosts");
    let names: Vec<String> = [BOTO3_BUCKET, DOTTED_BUCKET, MISSING_BUCKET, CLI_BUCKET]
        .iter()
        .map(|bucket| format!("{bucket}.{DOMAIN}"))
        .collect();
    std::fs::write(
        &hosts,
        format!(
            "127.0.0.1 localhost\n127.0.0.1 {DOMAIN} {}\n",
            names.join(" ")
        ),
    )
    .unwrap();
    if let Some(why) = hosts_file_unavailable(&hosts) {
        return binary.skipped(TEST, &why);
    }

    let dev = DevCluster::start_with_arguments(&binary, &["--domain", DOMAIN]).await;
    let port = dev.ports.s3;
    let gateway: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let access = S3Access {
        endpoint: format!("http://{DOMAIN}:{port}"),
        ..dev.access.clone()
    };

    let other = other_owner(&binary, &dev, &access);
    raw_requests(gateway, &access, &other).await;
    boto3_in_virtual_style(&access, &hosts);
    aws_cli_in_virtual_style(&access, &hosts, scratch.path());
}

/// One request signed for `http://{host}{target}` and sent with that `Host`.
async fn signed(
    gateway: SocketAddr,
    access: &S3Access,
    method: &str,
    host: &str,
    target: &str,
    body: Option<&[u8]>,
) -> raw_http::Response {
    let url = format!("http://{host}{target}");
    let mut request = Request::new(method, target).header("host", host);
    for (name, value) in signature_headers(access, method, &url, &[("host", host)]) {
        request = request.header(&name, &value);
    }
    if let Some(body) = body {
        request = request.body(raw_http::Body::Full(body.to_vec()));
    }
    raw_http::send(gateway, &request).await.unwrap()
}

fn code(response: &raw_http::Response) -> String {
    let text = String::from_utf8_lossy(&response.body).into_owned();
    shardlet_testkit::s3_client::xml_values(&text, "Code")
        .into_iter()
        .next()
        .unwrap_or_else(|| format!("(no <Code> in {} {text:?})", response.status))
}

/// A key of a second owner (`shardlet admin key create` with dev's cluster secret).
fn other_owner(
    binary: &shardlet_testkit::ShardletBinary,
    dev: &DevCluster,
    access: &S3Access,
) -> S3Access {
    let mut command = binary.command();
    command
        .args(["admin", "key", "create", "--owner", "other", "--meta"])
        .arg(format!("127.0.0.1:{}", dev.ports.meta))
        .arg("--secret-file")
        .arg(dev.data.join("cluster-secret"));
    let created = tools::run(command, Duration::from_secs(60));
    created.assert_success();
    let stdout = created.stdout();
    let field = |prefix: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .map(|value| value.trim().to_string())
            .unwrap_or_else(|| panic!("no {prefix:?} line in: {stdout}"))
    };
    S3Access {
        access_key: field("access key:"),
        secret_key: field("secret key:"),
        ..access.clone()
    }
}

async fn raw_requests(gateway: SocketAddr, access: &S3Access, other: &S3Access) {
    let port = gateway.port();
    let bucket_host = format!("{RAW_BUCKET}.{DOMAIN}:{port}");
    let domain_host = format!("{DOMAIN}:{port}");

    // CreateBucket, PutObject and GetObject by Host.
    let created = signed(gateway, access, "PUT", &bucket_host, "/", None).await;
    assert_eq!(
        created.status,
        200,
        "CreateBucket by host: {}",
        code(&created)
    );
    let put = signed(gateway, access, "PUT", &bucket_host, "/a/key", Some(b"raw")).await;
    assert_eq!(put.status, 200, "PutObject by host: {}", code(&put));
    let got = signed(gateway, access, "GET", &bucket_host, "/a/key", None).await;
    assert_eq!((got.status, got.body.as_slice()), (200, &b"raw"[..]));

    // Path style with --domain set: on the domain itself and on the address.
    let target = format!("/{RAW_BUCKET}/a/key");
    for host in [domain_host.clone(), format!("127.0.0.1:{port}")] {
        let got = signed(gateway, access, "GET", &host, &target, None).await;
        assert_eq!(
            (got.status, got.body.as_slice()),
            (200, &b"raw"[..]),
            "path style on Host {host}: {}",
            code(&got)
        );
    }
    // A Host in capitals with a trailing dot is the same bucket (DNS ignores case).
    let shouting = format!(
        "{}.{}.:{port}",
        RAW_BUCKET.to_uppercase(),
        DOMAIN.to_uppercase()
    );
    let got = signed(gateway, access, "GET", &shouting, "/a/key", None).await;
    assert_eq!(got.status, 200, "Host {shouting}: {}", code(&got));

    // A Host naming a bucket that does not exist.
    let missing = format!("{MISSING_BUCKET}.{DOMAIN}:{port}");
    for target in ["/", "/key"] {
        let answer = signed(gateway, access, "GET", &missing, target, None).await;
        assert_eq!(
            (answer.status, code(&answer)),
            (404, "NoSuchBucket".to_string()),
            "GET {target} on Host {missing}"
        );
    }
    // A Host whose bucket label is no bucket name: refused as one, before any lookup.
    for label in ["bad_bucket", "ab", "-dash"] {
        let host = format!("{label}.{DOMAIN}:{port}");
        let answer = signed(gateway, access, "GET", &host, "/key", None).await;
        assert_eq!(
            (answer.status, code(&answer)),
            (400, "InvalidBucketName".to_string()),
            "Host {host}"
        );
    }
    // The signature covers the Host: signed for one bucket, sent to another.
    let url = format!("http://{bucket_host}/a/key");
    let mut moved = Request::new("GET", "/a/key").header("host", &missing);
    for (name, value) in signature_headers(access, "GET", &url, &[("host", &bucket_host)]) {
        moved = moved.header(&name, &value);
    }
    let answer = raw_http::send(gateway, &moved).await.unwrap();
    assert_eq!(
        (answer.status, code(&answer)),
        (403, "SignatureDoesNotMatch".to_string())
    );

    // Another owner's key reaches the bucket by its Host no more than by its path.
    for (method, target) in [
        ("GET", "/a/key"),
        ("GET", "/"),
        ("PUT", "/a/key"),
        ("DELETE", "/a/key"),
    ] {
        let body = (method == "PUT").then_some(&b"not yours"[..]);
        let answer = signed(gateway, other, method, &bucket_host, target, body).await;
        assert_eq!(
            (answer.status, code(&answer)),
            (403, "AccessDenied".to_string()),
            "{method} {target} on Host {bucket_host} with another owner's key"
        );
    }

    let deleted = signed(gateway, access, "DELETE", &bucket_host, "/a/key", None).await;
    assert_eq!(deleted.status, 204, "DeleteObject: {}", code(&deleted));
    let deleted = signed(gateway, access, "DELETE", &bucket_host, "/", None).await;
    assert_eq!(deleted.status, 204, "DeleteBucket: {}", code(&deleted));
}

fn boto3_in_virtual_style(access: &S3Access, hosts: &Path) {
    let mut command = tools::client_command(&tools::python());
    command
        .arg(clients_dir().join("virtual_host.py"))
        .args(["--endpoint", &access.endpoint])
        .args(["--access-key", &access.access_key])
        .args(["--secret-key", &access.secret_key])
        .args(["--region", &access.region])
        .args(["--bucket", BOTO3_BUCKET])
        .args(["--dotted-bucket", DOTTED_BUCKET])
        .args(["--missing-bucket", MISSING_BUCKET])
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let finished = tools::run(with_hosts_file(&command, hosts), SCRIPT_DEADLINE);
    let stdout = finished.stdout();
    println!("{stdout}");
    let passed = stdout
        .lines()
        .filter(|line| line.starts_with("ok "))
        .count();
    assert!(
        finished.success() && passed == BOTO3_CHECKS,
        "boto3 in virtual style: {passed} of {BOTO3_CHECKS} checks passed\n{stdout}\n--- stderr ---\n{}",
        finished.stderr()
    );
}

fn aws_cli_in_virtual_style(access: &S3Access, hosts: &Path, scratch: &Path) {
    let config = scratch.join("aws-config");
    std::fs::write(&config, "[default]\ns3 =\n  addressing_style = virtual\n").unwrap();
    std::fs::write(scratch.join("aws-credentials"), "").unwrap();
    let aws = |arguments: &[&str]| -> Finished {
        let mut command = tools::client_command(&tools::aws());
        command
            .arg("--endpoint-url")
            .arg(&access.endpoint)
            .args(["--no-cli-pager", "--output", "json", "--debug"])
            .args(arguments)
            .env("AWS_CONFIG_FILE", &config)
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                scratch.join("aws-credentials"),
            )
            .env("AWS_ACCESS_KEY_ID", &access.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &access.secret_key)
            .env("AWS_DEFAULT_REGION", &access.region)
            .env("AWS_EC2_METADATA_DISABLED", "true");
        let finished = tools::run(with_hosts_file(&command, hosts), AWS_DEADLINE);
        finished.assert_success();
        finished
    };
    let virtual_host = format!("{CLI_BUCKET}.{DOMAIN}");
    let file = scratch.join("up.txt");
    std::fs::write(&file, "sent by the aws CLI\n").unwrap();
    let file = file.to_str().unwrap();
    let object = format!("s3://{CLI_BUCKET}/dir/up.txt");

    for arguments in [
        vec!["s3", "mb", &format!("s3://{CLI_BUCKET}")],
        vec!["s3", "cp", file, &object],
    ] {
        let finished = aws(&arguments);
        // `--debug` logs each request's URL: the bucket went in the Host, not the path.
        assert!(
            finished.stderr().contains(&virtual_host),
            "aws {arguments:?} never sent to {virtual_host}:\n{}",
            finished.stderr()
        );
    }
    let listed = aws(&["s3", "ls", &format!("s3://{CLI_BUCKET}/dir/")]).stdout();
    assert!(listed.contains(" 20 up.txt"), "aws s3 ls:\n{listed}");
    let down = scratch.join("down.txt");
    aws(&["s3", "cp", &object, down.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(&down).unwrap(),
        "sent by the aws CLI\n"
    );

    // A presigned GET names the bucket in its host; curl fetches it in the same hosts.
    let url = aws(&["s3", "presign", &object, "--expires-in", "300"])
        .stdout()
        .lines()
        .find(|line| line.starts_with("http"))
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(
        url.starts_with(&format!("http://{virtual_host}:")),
        "presigned URL: {url}"
    );
    let mut curl = Command::new("curl");
    curl.args([
        "--silent",
        "--show-error",
        "--fail",
        "--max-time",
        "60",
        &url,
    ]);
    let fetched = tools::run(with_hosts_file(&curl, hosts), AWS_DEADLINE);
    fetched.assert_success();
    assert_eq!(fetched.stdout(), "sent by the aws CLI\n");

    aws(&["s3", "rm", &object]);
    aws(&["s3", "rb", &format!("s3://{CLI_BUCKET}")]);
    let buckets = aws(&["s3api", "list-buckets"]).json();
    assert!(
        !buckets.to_string().contains(CLI_BUCKET),
        "after rb: {buckets}"
    );
}

/// A bad `--domain` (or `SHARDLET_DOMAIN`) stops the gateway and `shardlet dev` before
/// they start anything, naming the flag and saying what is wrong.
#[test]
fn a_domain_that_is_no_dns_name_is_refused_at_start_naming_the_flag() {
    let binary = shardlet_binary!();
    let scratch = tempfile::tempdir().unwrap();
    for (domain, why) in [
        ("", "empty"),
        ("127.0.0.1", "IP address"),
        ("s3.example.com:9000", "port"),
        ("under_score.example", "not a DNS name"),
        ("example.com,s3.example.com", "overlap"),
    ] {
        let mut gateway = binary.command();
        gateway.args(["gateway", "--meta", "127.0.0.1:1", "--secret-file"]);
        gateway.arg(scratch.path().join("no-secret"));
        gateway.args(["--domain", domain]);
        let mut from_environment = binary.command();
        from_environment.args(["gateway", "--meta", "127.0.0.1:1", "--secret-file"]);
        from_environment.arg(scratch.path().join("no-secret"));
        from_environment.env("SHARDLET_DOMAIN", domain);
        let data = scratch.path().join("dev-data");
        let mut dev = binary.command();
        dev.arg("dev")
            .arg("--data")
            .arg(&data)
            .args(["--domain", domain]);
        for (what, command) in [
            ("gateway --domain", gateway),
            ("gateway SHARDLET_DOMAIN", from_environment),
            ("dev --domain", dev),
        ] {
            let finished = tools::run(command, Duration::from_secs(60));
            let stderr = finished.stderr();
            assert!(
                !finished.success() && stderr.contains("--domain") && stderr.contains(why),
                "{what} {domain:?}: {}\n--- stderr ---\n{stderr}",
                finished.output.status
            );
        }
        assert!(
            !data.exists(),
            "dev created {} before refusing",
            data.display()
        );
    }
}
