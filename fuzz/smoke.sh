#!/usr/bin/env bash
# Short fuzzing smoke run of request decoding (CI). For a real run: SECONDS_TO_FUZZ=600 bash fuzz/smoke.sh
set -euo pipefail
cd "$(dirname "$0")"

version=0.13.2
root=/var/cache/strata/cargo-fuzz-$version
if [ ! -x "$root/bin/cargo-fuzz" ]; then
    cargo install --quiet --locked --root "$root" --version "$version" cargo-fuzz
fi
export PATH="$root/bin:$PATH"
# Instrumented builds are slow; keep them between runs.
export CARGO_TARGET_DIR=/var/cache/strata/fuzz-target
# Without a sanitizer, so it builds on the stable toolchain; libFuzzer still finds panics, aborts and hangs.
# The seeds hold internal (node-to-node) frames, whose API key random bytes rarely hit.
mkdir -p corpus/decode_request
cargo fuzz run --sanitizer none decode_request corpus/decode_request seeds/decode_request -- \
    -max_total_time="${SECONDS_TO_FUZZ:-60}" -rss_limit_mb=4096 -max_len=65536 -timeout=10
