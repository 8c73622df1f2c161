#!/usr/bin/env bash
# Builds librdkafka from the source shipped in the rdkafka-sys crate (the version the Rust tests use) with its
# test-runner and rdkafka_performance, once per version, cached under /var/cache/strata. Prints the build dir.
set -euo pipefail
cd "$(dirname "$0")/../.."

manifest=$(cargo metadata --locked --format-version 1 | python3 -c '
import json, sys
pkgs = json.load(sys.stdin)["packages"]
print(next(p["manifest_path"] for p in pkgs if p["name"] == "rdkafka-sys"))')
src=$(dirname "$manifest")/librdkafka
version=$(sed -n 's/^#define RD_KAFKA_VERSION *0x\(..\)\(..\)\(..\)ff.*/\1 \2 \3/p' "$src/src/rdkafka.h" \
    | { read -r a b c; echo "$((16#$a)).$((16#$b)).$((16#$c))"; })
dir=/var/cache/strata/librdkafka-$version
if [ ! -x "$dir/tests/test-runner" ] || [ ! -x "$dir/examples/rdkafka_performance" ]; then
    if ! dpkg -s libzstd-dev libssl-dev zlib1g-dev >/dev/null 2>&1; then
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libzstd-dev libssl-dev zlib1g-dev >&2
    fi
    mkdir -p /var/cache/strata
    rm -rf "$dir.tmp"
    cp -r "$src" "$dir.tmp"
    (
        cd "$dir.tmp"
        ./configure --disable-gssapi --disable-curl
        make -j"$(nproc)" libs
        make -j"$(nproc)" -C tests test-runner
        make -C examples rdkafka_performance
    ) >"$dir.build.log" 2>&1 || { tail -n 50 "$dir.build.log" >&2; exit 1; }
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
fi
echo "$dir"
