#!/usr/bin/env bash
# SASL_SSL versus PLAINTEXT benchmark: builds the release broker and librdkafka's rdkafka_performance, then runs
# bench/security.py (a few minutes); the table it prints is recorded in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p strata-broker
rdkafka=$(bash tests/librdkafka/build.sh)
exec python3 bench/security.py "${CARGO_TARGET_DIR:-$PWD/target}/release/strata-broker" "$rdkafka"
