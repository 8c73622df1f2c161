#!/usr/bin/env bash
# Fetch throughput with and without the page-cache probe, three brokers side by side (see pagecache_overhead.py). About three minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p strata-broker --bins --examples
rdkafka=$(bash tests/librdkafka/build.sh)
target="${CARGO_TARGET_DIR:-$PWD/target}/release"
cd bench
exec python3 pagecache_overhead.py "$target/strata-broker" "$rdkafka" "$target/examples/loopback"
