# syntax=docker/dockerfile:1
#
# The images the Helm chart (helm/shardlet) runs. Two final targets, so the image every
# server runs does not carry libtorch (~420 MiB):
#
#   docker build --target shardlet           -t shardlet/shardlet:0.1.0 .
#   docker build --target shardlet-predictor -t shardlet/shardlet-predictor:0.1.0 .
#
# `shardlet` (meta, node, gateway, controller, admin) links no libtorch (checked below
# with ldd); `shardlet-predictor` links libtorch_cpu, libc10 and, through them, libgomp,
# libcudart and libcupti (libtorch_cpu.so needs the two CUDA libraries even without a
# GPU: docs/predictor.md). Not built on the project's machines (no container engine
# there); docs/kubernetes.md says what was and was not checked.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
# clang + libclang: RocksDB's bindgen; unzip, pip: scripts/install-libtorch.sh.
RUN apt-get update \
    && apt-get install -y --no-install-recommends clang libclang-dev pkg-config unzip python3 python3-pip \
    && rm -rf /var/lib/apt/lists/*
# The same path in the builder and the runtime image: the predictor's build script bakes
# libtorch's directories into its rpath.
ENV SHARDLET_CACHE=/opt/shardlet \
    LIBTORCH=/opt/shardlet/libtorch/torch \
    CARGO_TARGET_DIR=/build/target
WORKDIR /build/src
# libtorch first: a layer kept until the script (its pinned wheels) changes.
COPY scripts/install-libtorch.sh scripts/install-libtorch.sh
RUN scripts/install-libtorch.sh && rm -rf /opt/shardlet/wheels
COPY . .
RUN cargo build --release --locked --bin shardlet --bin shardlet-predictor \
    && mkdir -p /out \
    && cp /build/target/release/shardlet /build/target/release/shardlet-predictor /out/ \
    && strip /out/shardlet /out/shardlet-predictor
# The main image must not need libtorch, and the predictor must resolve every library.
RUN if ldd /out/shardlet | grep -E 'torch|c10|not found'; then \
        echo "shardlet links libtorch or misses a library" >&2; exit 1; fi \
    && if ldd /out/shardlet-predictor | grep 'not found'; then \
        echo "shardlet-predictor misses a library" >&2; exit 1; fi

# What both images share: Debian slim, the C++ runtime (RocksDB, libtorch), CA
# certificates, and an unprivileged user whose uid the chart's securityContext names.
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 shardlet \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin shardlet
USER 10001:10001
WORKDIR /

FROM runtime AS shardlet-predictor
COPY --from=builder /opt/shardlet/libtorch/torch/lib/libtorch_cpu.so \
    /opt/shardlet/libtorch/torch/lib/libc10.so \
    /opt/shardlet/libtorch/torch/lib/libgomp.so.1 \
    /opt/shardlet/libtorch/torch/lib/
COPY --from=builder /opt/shardlet/libtorch/nvidia/cu13/lib/libcudart.so.13 \
    /opt/shardlet/libtorch/nvidia/cu13/lib/libcupti.so.13 \
    /opt/shardlet/libtorch/nvidia/cu13/lib/
COPY --from=builder /out/shardlet-predictor /usr/local/bin/shardlet-predictor
# The rpath already points here; the variable is for tools that look at it.
ENV LD_LIBRARY_PATH=/opt/shardlet/libtorch/torch/lib:/opt/shardlet/libtorch/nvidia/cu13/lib
ENTRYPOINT ["shardlet-predictor"]
CMD ["--help"]

# Last, so a plain `docker build .` makes the main image.
FROM runtime AS shardlet
COPY --from=builder /out/shardlet /usr/local/bin/shardlet
ENTRYPOINT ["shardlet"]
CMD ["--help"]
