#!/usr/bin/env bash
# Controller quorum benchmark: builds the release broker and the client venv, then runs bench/quorum.py (topic
# creations per second and create-to-visible latency through a 3-voter quorum, leader failover time, next to
# this machine's fdatasync latency). Usage: bench/quorum.sh [TOPICS]   (BENCH_DIR: where the data dirs go)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p strata-broker --bin strata-broker -p strata-cli
venv=$(bash tests/clients/venv.sh)
bin="${CARGO_TARGET_DIR:-$PWD/target}/release"
exec "$venv/bin/python" bench/quorum.py "$bin/strata-broker" "$bin/strata" "$@"
