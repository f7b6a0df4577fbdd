//! Virtual-hosted–style addressing (`--domain`): a request whose `Host` is
//! `BUCKET.DOMAIN[:port]` addresses bucket `BUCKET`; `Host: DOMAIN`, an IP address or any
//! other name is path style (`/BUCKET/KEY`), as without `--domain`.
//!
//! Built on s3s's host support: [`VirtualHosts`] is an [`S3Host`], and the suffix
//! match, the domain syntax and the overlap check are s3s's [`MultiDomain`]. It is not
//! `MultiDomain` itself for two reasons, both of which would break path style:
//! `MultiDomain` answers every host outside its domains as a bucket of that name (the
//! CNAME form: `Host: localhost` would address a bucket `localhost`), and it compares
//! the whole header, port included (`b.s3.example.com:9000` would be the bucket
//! `b.s3.example.com:9000`). So the port and a trailing dot are removed and the name
//! lower-cased (DNS names are case-insensitive) before `MultiDomain` matches it, and
//! a host it does not place under one of our domains stays path style.
//!
//! The bucket label is validated by s3s like a path-style bucket (`InvalidBucketName`),
//! and the signature still covers the `Host` header exactly as the client sent it.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use s3s::host::{MultiDomain, S3Host, VirtualHost};
use s3s::S3Result;

/// Longest DNS name (RFC 1035 §2.3.4, without the root's dot).
pub const DOMAIN_BYTES_MAX: usize = 253;
/// Longest DNS label (RFC 1035 §2.3.4).
const LABEL_BYTES_MAX: usize = 63;
/// How many `--domain`s a gateway takes: each request's host is matched against every
/// one, so the list stays short.
pub const DOMAINS_MAX: usize = 16;

/// Why a `--domain` is refused; the CLI names the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("the domain is empty")]
    Empty,
    #[error("{0:?} is an IP address, not a DNS name: virtual hosts are BUCKET.DOMAIN names")]
    IpAddress(String),
    #[error("{0:?} has a port: give the DNS name only (the port is ignored when matching)")]
    Port(String),
    #[error(
        "{name:?} is not a DNS name: labels of 1 to {LABEL_BYTES_MAX} letters, digits \
         or hyphens (not first or last), separated by dots, {DOMAIN_BYTES_MAX} bytes at most"
    )]
    NotDnsName { name: String },
    #[error("{first:?} and {second:?} overlap: one is a subdomain of the other, so a host under both would be ambiguous")]
    Overlapping { first: String, second: String },
    #[error("{count} domains given, at most {DOMAINS_MAX} are accepted")]
    TooMany { count: usize },
    #[error("s3s refuses the domains {domains:?}: {reason}")]
    Refused { domains: String, reason: String },
}

/// The gateway's base domains, validated; an [`S3Host`] for s3s.
#[derive(Debug)]
pub struct VirtualHosts {
    /// Lower-case, as given (after validation).
    domains: Vec<String>,
    matcher: MultiDomain,
}

impl VirtualHosts {
    /// Validates `domains` (DNS names; no IP address, port or empty entry; none a
    /// subdomain of another) and lower-cases them.
    pub fn new<I>(domains: I) -> Result<Self, DomainError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut checked: Vec<String> = Vec::new();
        for domain in domains {
            let domain = check_domain(domain.as_ref())?;
            if let Some(other) = checked.iter().find(|other| overlap(other, &domain)) {
                return Err(DomainError::Overlapping {
                    first: other.clone(),
                    second: domain,
                });
            }
            checked.push(domain);
        }
        if checked.is_empty() {
            return Err(DomainError::Empty);
        }
        if checked.len() > DOMAINS_MAX {
            return Err(DomainError::TooMany {
                count: checked.len(),
            });
        }
        // Every name passed `check_domain`, which is stricter than s3s's own check; s3s
        // still refuses two names of which one merely ends with the other (`a.com`,
        // `ba.com`), which it would match correctly but calls overlapping.
        let matcher = MultiDomain::new(&checked).map_err(|error| DomainError::Refused {
            domains: checked.join(","),
            reason: error.to_string(),
        })?;
        Ok(Self {
            domains: checked,
            matcher,
        })
    }

    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// The bucket a `Host` header names (`BUCKET.DOMAIN[:port]`), or `None` for path
    /// style. The bucket is not validated here (s3s does, with the path-style rules).
    pub fn bucket_of(&self, host: &str) -> Option<String> {
        let name = host_name(host)?;
        let virtual_host = self.matcher.parse_host_header(&name).ok()?;
        // `MultiDomain` answers a host outside our domains as a bucket of its own name
        // (the CNAME form): that host is path style here.
        if !self
            .domains
            .iter()
            .any(|domain| domain == virtual_host.domain())
        {
            return None;
        }
        virtual_host.bucket().map(str::to_owned)
    }
}

impl S3Host for VirtualHosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let virtual_host = VirtualHost::new(Cow::Borrowed(host));
        Ok(match self.bucket_of(host) {
            Some(bucket) => virtual_host.with_bucket(bucket),
            None => virtual_host,
        })
    }
}

/// [`VirtualHosts`] shared between s3s (which routes) and the server (which times
/// object-data bodies by the bucket the host names).
#[derive(Debug, Clone)]
pub struct SharedVirtualHosts(pub Arc<VirtualHosts>);

impl S3Host for SharedVirtualHosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        self.0.parse_host_header(host)
    }
}

/// The name of a `Host` header: without the port and a trailing dot, lower-cased;
/// `None` for an IPv6 literal (`[::1]:9000`, always path style).
fn host_name(host: &str) -> Option<String> {
    if host.starts_with('[') {
        return None;
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|byte| byte.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    Some(name.to_ascii_lowercase())
}

/// One `--domain`, lower-cased, or why it is not a DNS name.
fn check_domain(domain: &str) -> Result<String, DomainError> {
    let domain = domain.trim();
    if domain.is_empty() {
        return Err(DomainError::Empty);
    }
    let bracketless = domain.trim_start_matches('[').trim_end_matches(']');
    if domain.parse::<IpAddr>().is_ok()
        || bracketless.parse::<IpAddr>().is_ok()
        || domain.parse::<std::net::SocketAddr>().is_ok()
    {
        return Err(DomainError::IpAddress(domain.to_owned()));
    }
    if domain.contains(':') {
        return Err(DomainError::Port(domain.to_owned()));
    }
    let name = domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase();
    let not_dns = || DomainError::NotDnsName {
        name: domain.to_owned(),
    };
    if name.len() > DOMAIN_BYTES_MAX {
        return Err(not_dns());
    }
    for label in name.split('.') {
        let bytes = label.as_bytes();
        let well_formed = !bytes.is_empty()
            && bytes.len() <= LABEL_BYTES_MAX
            && bytes
                .iter()
                .all(|byte| byte.is_ascii_alphanumeric() || *byte == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !well_formed {
            return Err(not_dns());
        }
    }
    // A name of numeric labels only (`10.1`) reads as an address to resolvers.
    if name
        .split('.')
        .all(|label| label.bytes().all(|byte| byte.is_ascii_digit()))
    {
        return Err(DomainError::IpAddress(domain.to_owned()));
    }
    Ok(name)
}

/// Whether one domain is the other or a subdomain of it (`s3.example.com` and
/// `example.com`): a host under both would name two different buckets.
fn overlap(first: &str, second: &str) -> bool {
    let under = |inner: &str, outer: &str| {
        inner == outer
            || inner
                .strip_suffix(outer)
                .is_some_and(|rest| rest.ends_with('.'))
    };
    under(first, second) || under(second, first)
}

#[cfg(test)]
mod tests;
