//! Observability as operators get it: the Grafana dashboard and the alert rules under
//! `helm/shardlet/`, checked against the real thing. Every PromQL expression is parsed
//! by a real PromQL parser and every metric it names must be exported by a running
//! `shardlet dev` (scraped from each service's `/metrics`); the rules pass `promtool`;
//! and a real Prometheus server scrapes `shardlet dev` and counts what the test wrote.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alerts;
mod dashboard;
mod exported;
mod expressions;
mod prometheus;
