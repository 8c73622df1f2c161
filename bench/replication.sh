#!/usr/bin/env bash
# Replication benchmark (issue 14): builds the release broker, librdkafka's rdkafka_performance and the client
# venv, then runs bench/replication.py (three brokers, each a quorum voter, on 127.0.0.1: RF=3 acks=all against
# RF=1 acks=1 produce throughput and latency, bytes served to followers with sendfile and copy, broker CPU per
# GiB, failover after kill -9 and SIGTERM of a leader, RSS). Takes about 6 minutes on two cores.
# Usage: bench/replication.sh [ROUNDS]   (throughput rounds, default 5; BENCH_DIR: where the data dirs go;
# KILL_ROUNDS / TERM_ROUNDS: failover rounds with kill -9 and SIGTERM, default 4 and 3; LATENCY_RATES: more 1 KiB
# latency runs at these msg/s, e.g. 30000,60000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p strata-broker --bin strata-broker -p strata-cli
rdkafka=$(bash tests/librdkafka/build.sh)
venv=$(bash tests/clients/venv.sh)
bin="${CARGO_TARGET_DIR:-$PWD/target}/release"
exec "$venv/bin/python" bench/replication.py "$bin/strata-broker" "$rdkafka" "$@"
