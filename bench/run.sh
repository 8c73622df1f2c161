#!/usr/bin/env bash
# Broker benchmark: builds the release broker and librdkafka's rdkafka_performance, then runs
# bench/broker_bench.py, which prints the tables recorded in BENCHMARKS.md. Takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p strata-broker --bins --examples
rdkafka=$(bash tests/librdkafka/build.sh)
target="${CARGO_TARGET_DIR:-$PWD/target}/release"
exec python3 bench/broker_bench.py "$target/strata-broker" "$rdkafka" "$target/examples/loopback"
