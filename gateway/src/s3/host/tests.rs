#![allow(clippy::unwrap_used)]

use super::*;

fn hosts(domains: &[&str]) -> VirtualHosts {
    VirtualHosts::new(domains).unwrap()
}

#[test]
fn a_host_under_the_domain_names_its_bucket_with_or_without_a_port() {
    let hosts = hosts(&["s3.example.com"]);
    for (host, bucket) in [
        ("photos.s3.example.com", "photos"),
        ("photos.s3.example.com:9000", "photos"),
        ("Photos.S3.Example.COM:443", "photos"),
        ("photos.s3.example.com.", "photos"),
        ("my.dotted.bucket.s3.example.com:9000", "my.dotted.bucket"),
        // Not a valid bucket: named anyway, s3s refuses it (InvalidBucketName).
        ("bad_bucket.s3.example.com", "bad_bucket"),
    ] {
        assert_eq!(hosts.bucket_of(host).as_deref(), Some(bucket), "{host}");
    }
}

#[test]
fn the_domain_itself_an_address_and_any_other_host_are_path_style() {
    let hosts = hosts(&["s3.example.com", "storage.internal"]);
    for host in [
        "s3.example.com",
        "s3.example.com:9000",
        "storage.internal:80",
        "localhost",
        "localhost:9000",
        "gateway",
        "127.0.0.1:9000",
        "[::1]:9000",
        "example.com",
        "evils3.example.com",
        "s3.example.com.evil.org",
        "",
    ] {
        assert_eq!(hosts.bucket_of(host), None, "{host}");
    }
    assert_eq!(
        hosts.bucket_of("b.storage.internal:9000").as_deref(),
        Some("b")
    );
}

#[test]
fn the_s3s_host_parser_gives_the_same_answer() {
    let hosts = hosts(&["s3.example.com"]);
    let parsed = hosts.parse_host_header("b.s3.example.com:9000").unwrap();
    assert_eq!(parsed.bucket(), Some("b"));
    let parsed = hosts.parse_host_header("localhost:9000").unwrap();
    assert_eq!(parsed.bucket(), None);
}

#[test]
fn a_domain_that_is_not_a_dns_name_is_refused_saying_why() {
    for (domain, expected) in [
        ("", DomainError::Empty),
        ("  ", DomainError::Empty),
        ("127.0.0.1", DomainError::IpAddress("127.0.0.1".into())),
        ("::1", DomainError::IpAddress("::1".into())),
        ("[::1]", DomainError::IpAddress("[::1]".into())),
        ("10.1", DomainError::IpAddress("10.1".into())),
        (
            "127.0.0.1:9000",
            DomainError::IpAddress("127.0.0.1:9000".into()),
        ),
        (
            "s3.example.com:9000",
            DomainError::Port("s3.example.com:9000".into()),
        ),
    ] {
        assert_eq!(
            VirtualHosts::new([domain]).unwrap_err(),
            expected,
            "{domain:?}"
        );
    }
    let long_label = format!("{}.com", "a".repeat(64));
    let long_name = format!("{}.com", vec!["a".repeat(60); 5].join("."));
    for domain in [
        "s3..example.com",
        ".example.com",
        "under_score.com",
        "-lead.com",
        "trail-.com",
        "sp ace.com",
        "*.example.com",
        "s3/example.com",
        &long_label,
        &long_name,
    ] {
        assert!(
            matches!(
                VirtualHosts::new([domain]),
                Err(DomainError::NotDnsName { .. })
            ),
            "{domain:?}"
        );
    }
    let none: [&str; 0] = [];
    assert_eq!(VirtualHosts::new(none).unwrap_err(), DomainError::Empty);
}

#[test]
fn overlapping_or_too_many_domains_are_refused() {
    assert!(matches!(
        VirtualHosts::new(["example.com", "s3.example.com"]),
        Err(DomainError::Overlapping { .. })
    ));
    assert!(matches!(
        VirtualHosts::new(["s3.example.com", "S3.Example.com"]),
        Err(DomainError::Overlapping { .. })
    ));
    let many: Vec<String> = (0..=DOMAINS_MAX).map(|n| format!("d{n}.example")).collect();
    assert_eq!(
        VirtualHosts::new(&many).unwrap_err(),
        DomainError::TooMany {
            count: DOMAINS_MAX + 1
        }
    );
    let hosts = hosts(&["S3.Example.COM."]);
    assert_eq!(hosts.domains(), ["s3.example.com"]);
}
