//! Placement lookups per second on large topologies (regions × zones × nodes).
//!
//! `cargo bench -p shardlet-core --bench placement -- --warm-up-time 1 --measurement-time 2`
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shardlet_core::ids::mix64;
use shardlet_core::placement::{FailureDomain, PlacementMap, Spread};
use shardlet_core::topology::{Node, NodeState, Topology};
use shardlet_core::{NodeId, Scheme};

fn topology(regions: usize, zones_per_region: usize, nodes_per_zone: usize) -> Topology {
    let mut nodes = Vec::new();
    for region in 0..regions {
        for zone in 0..zones_per_region {
            for _ in 0..nodes_per_zone {
                let id = nodes.len() as u32 + 1;
                nodes.push(Node {
                    id: NodeId(id),
                    name: format!("node-{id}"),
                    address: format!("10.{region}.{zone}.1:{}", 10_000 + id % 50_000),
                    region: format!("region-{region}"),
                    zone: format!("region-{region}-zone-{zone}"),
                    capacity_bytes: 1 << 40,
                    free_bytes: 1 << 39,
                    weight: 1.0,
                    // A realistic sprinkling of nodes that must be rejected.
                    state: if id % 97 == 0 {
                        NodeState::Down
                    } else {
                        NodeState::Up
                    },
                    latency_us: Some(500),
                });
            }
        }
    }
    Topology::new(1, nodes).unwrap()
}

fn placement(c: &mut Criterion) {
    let spread = Spread {
        survive: FailureDomain::Zone,
    };
    for (label, shape) in [
        ("1000 nodes (2x5x100)", (2, 5, 100)),
        ("100000 nodes (5x20x1000)", (5, 20, 1000)),
    ] {
        let map = PlacementMap::new(&topology(shape.0, shape.1, shape.2));
        let mut group = c.benchmark_group(format!("place {label}"));
        group.throughput(Throughput::Elements(1));
        for scheme in [
            Scheme::Replicated { copies: 3 },
            Scheme::ErasureCoded { data: 8, parity: 4 },
        ] {
            let mut key = 0u64;
            group.bench_function(scheme.to_string(), |b| {
                b.iter(|| {
                    key += 1;
                    map.place(mix64(key), scheme, spread).unwrap()
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, placement);
criterion_main!(benches);
