#!/usr/bin/env bash
# Restart benchmark: builds the release broker and the client venv, then runs bench/restart.py (restart time and
# peak RSS after SIGTERM and SIGKILL with thousands of partitions). Pass an older broker binary as the first
# argument to measure it side by side (the "before" column of BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p strata-broker --bin strata-broker
venv=$(bash tests/clients/venv.sh)
target="${CARGO_TARGET_DIR:-$PWD/target}/release"
exec "$venv/bin/python" bench/restart.py "$target/strata-broker" "$@"
