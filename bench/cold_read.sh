#!/usr/bin/env bash
# Producer and consumer latency while a lagging consumer reads evicted segments, with and without the cold-read
# warm-up (see cold_read.py). Writes 3 GiB under $BENCH_DIR (default: the system temp dir); about eight minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p strata-broker --bins
target="${CARGO_TARGET_DIR:-$PWD/target}/release"
cd bench
exec python3 cold_read.py "$target/strata-broker"
