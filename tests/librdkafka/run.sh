#!/usr/bin/env bash
# librdkafka's own test suite (from the rdkafka-sys crate's source) against a strata-broker on 127.0.0.1.
# Runs the tests listed in allowlist*.txt (all must pass), or the tests given as arguments.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=$PWD/tests/librdkafka

rdkafka=$(bash tests/librdkafka/build.sh)
cargo build --locked -p strata-broker
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/strata-broker"

if [ $# -gt 0 ]; then
    tests=$(IFS=,; echo "$*")
else
    tests=$(cat "$here"/allowlist*.txt | grep -o '^[0-9]\{4\}' | sort -u | paste -sd, -)
fi

work=$(mktemp -d)
broker_pid=
cleanup() {
    [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

mkfifo "$work/out"
# librdkafka's test clusters auto-create topics with 4 partitions.
"$bin" --listeners PLAINTEXT://127.0.0.1:0 --log.dirs "$work/data" --num.partitions 4 --metrics.port 0 >"$work/out" 2>"$work/broker.log" &
broker_pid=$!
exec 3<"$work/out"
read -r -t 30 line <&3 || { cat "$work/broker.log"; exit 1; }
port=${line##*:}
# Twice the suite's timeouts: CI machines have 2 cores shared by client, broker and test threads.
printf 'metadata.broker.list=127.0.0.1:%s\ntest.timeout.multiplier=2\n' "$port" >"$work/test.conf"

cd "$rdkafka/tests"
# The suite skips tests that need features newer than the broker version it is told.
status=0
RDKAFKA_TEST_CONF="$work/test.conf" TEST_KAFKA_VERSION=3.9.0 TESTS="$tests" \
    LD_LIBRARY_PATH=../src:../src-cpp ./test-runner -L -E -p1 || status=$?
if [ $status -ne 0 ]; then
    echo "broker log tail:"; tail -n 40 "$work/broker.log"
fi
exit $status
