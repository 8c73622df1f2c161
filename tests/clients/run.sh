#!/usr/bin/env bash
# Real-client tests of strata-broker: confluent-kafka (bundled librdkafka) and Debian's kcat against a broker
# started per test module on 127.0.0.1 (and kafka-python for what it checks). Installs what it needs on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/../.."

# kcat, and openssl for the TLS tests' certificates and s_client.
missing=()
command -v kcat >/dev/null || missing+=(kcat)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The venv lives in a cache keyed by the pinned requirements, so CI reuses it.
venv=$(bash tests/clients/venv.sh)

cargo build --locked -p strata-broker
export STRATA_BROKER_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/strata-broker"
cd tests/clients
exec "$venv/bin/pytest" -q -p no:cacheprovider "$@"
