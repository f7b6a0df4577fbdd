//! Codec throughput in bytes of shardlet data per second, beside a plain memory copy
//! of the same size measured in the same run (the machine's own ceiling).
//!
//! `cargo bench -p shardlet-core --bench codec -- --warm-up-time 1 --measurement-time 2`
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use reed_solomon_erasure::galois_8::ReedSolomon;
use shardlet_core::codec::{encode_erasure_into, encode_into, rebuild, ErasureEncoding};
use shardlet_core::ids::mix64;
use shardlet_core::Scheme;

const SHAPES: [(u8, u8); 3] = [(4, 2), (8, 4), (10, 4)];
const SHARD_BYTES: [usize; 3] = [64 << 10, 256 << 10, 1 << 20];

fn shardlet(len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| mix64(i) as u8).collect()
}

fn codec(c: &mut Criterion) {
    for (data, parity) in SHAPES {
        let scheme = Scheme::ErasureCoded { data, parity };
        for shard_len in SHARD_BYTES {
            let data_len = usize::from(data) * shard_len;
            let original = shardlet(data_len);
            let mut group =
                c.benchmark_group(format!("rs({data},{parity}) shard {}KiB", shard_len >> 10));
            group.throughput(Throughput::Bytes(data_len as u64));

            // What the write path runs: parity computed, every fragment checksummed,
            // data fragments left in place as slices of the input.
            let mut encoding = ErasureEncoding::default();
            group.bench_function("encode", |b| {
                b.iter(|| encode_erasure_into(scheme, &original, &mut encoding).unwrap());
            });
            let mut fragments = Vec::new();
            encode_into(scheme, &original, &mut fragments).unwrap();
            group.bench_function("encode into owned fragments", |b| {
                b.iter(|| encode_into(scheme, &original, &mut fragments).unwrap());
            });

            let full: Vec<Option<Vec<u8>>> =
                fragments.iter().map(|f| Some(f.bytes.clone())).collect();
            group.bench_function("rebuild 2 lost data shards", |b| {
                b.iter_batched(
                    || {
                        let mut slots = full.clone();
                        slots[0] = None;
                        slots[1] = None;
                        slots
                    },
                    |mut slots| rebuild(scheme, &mut slots, data_len, &[0, 1]).unwrap(),
                    BatchSize::LargeInput,
                );
            });

            // The library alone on whole shards (no copy in, no checksums): the floor
            // our wrapper is measured against in the same run.
            let library = ReedSolomon::new(usize::from(data), usize::from(parity)).unwrap();
            let mut shards: Vec<Vec<u8>> = fragments.iter().map(|f| f.bytes.clone()).collect();
            group.bench_function("library encode only", |b| {
                b.iter(|| {
                    let (inputs, outputs) = shards.split_at_mut(usize::from(data));
                    library.encode_sep(inputs, outputs).unwrap();
                });
            });

            let mut target = vec![0u8; data_len];
            group.bench_function("memcpy", |b| {
                b.iter(|| target.copy_from_slice(std::hint::black_box(&original)));
            });
            group.finish();
        }
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
