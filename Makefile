# Shardlet: the two commands a newcomer needs are `make run` and `make test`.
#
# One cargo target directory outside the clone survives between runs (and between CI
# runs on the same machine), so the C/C++ dependencies are compiled once.
SHARDLET_CACHE ?= $(HOME)/.cache/shardlet
export SHARDLET_CACHE
CARGO_TARGET_DIR ?= $(SHARDLET_CACHE)/target
export CARGO_TARGET_DIR
# tch 0.26 links libtorch 2.13.0, unpacked from PyPI wheels by scripts/install-libtorch.sh.
# Every workspace build compiles the predictor, so every target needs it.
LIBTORCH ?= $(SHARDLET_CACHE)/libtorch/torch
export LIBTORCH
CARGO ?= cargo
# Where `make run` keeps its data; running again on the same directory keeps it.
DATA ?= ./data

.PHONY: all run test build bench sim fuzz fmt lint deps deps-run deps-bench check-install clean clean-cache

all: build

deps:
	@scripts/install-deps.sh test
	@scripts/install-libtorch.sh

deps-run:
	@scripts/install-deps.sh run
	@scripts/install-libtorch.sh

deps-bench:
	@scripts/install-deps.sh bench
	@scripts/install-libtorch.sh

## build: every binary, release mode
build: deps-run
	$(CARGO) build --release --workspace --bins

## run: build, then start the local cluster (meta, 12 storage nodes, S3 gateway) and print its endpoint and credentials
run: build
	$(CARGO_TARGET_DIR)/release/shardlet dev --data $(DATA)

## test: install what is missing, then formatting, lints, the test build and every test (unit, property, end-to-end), each phase timed
test:
	@scripts/test.sh

## check-install: prove the dependency installers work from an empty cache (CI runs it before `make test`)
check-install:
	@scripts/check-install.sh

## bench: codec, placement and storage-node benchmarks, with machine limits beside them
bench: deps-bench
	scripts/bench.sh

## fuzz: every fuzz target (fuzz/, nightly) for FUZZ_SECONDS (default 60) each, one at a time; installs cargo-fuzz if missing; prints each target's executions
fuzz:
	@scripts/fuzz.sh

## sim: a year of a 10,000-node cluster through the controller's real policy and repair code
sim: build
	$(CARGO_TARGET_DIR)/release/shardlet-sim --nodes 10000 --days 365

fmt:
	$(CARGO) fmt --all

lint: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean

## clean-cache: delete what builds leave behind in CARGO_TARGET_DIR: superseded test and bench executables, incremental state, test clusters
clean-cache:
	@scripts/clean-cache.sh
