#!/usr/bin/env bash
# Prints the path of the Python venv with the pinned client libraries (confluent-kafka, pytest), creating it
# if needed. It lives in a cache keyed by the requirements, so CI and the e2e scripts reuse it.
set -euo pipefail
req=$(cd "$(dirname "$0")" && pwd)/requirements.txt
venv=/var/cache/strata/venv-clients-$(sha256sum "$req" | cut -c1-12)
if [ ! -f "$venv/.complete" ]; then
    python3 -m venv --help >/dev/null 2>&1 || {
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; }
    mkdir -p /var/cache/strata
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
    touch "$venv/.complete"
fi
echo "$venv"
