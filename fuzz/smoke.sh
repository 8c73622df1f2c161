#!/usr/bin/env bash
# Short fuzzing smoke run of request decoding and of SASL/SCRAM message parsing (CI), each target for SECONDS_TO_FUZZ. For a real run: SECONDS_TO_FUZZ=600 bash fuzz/smoke.sh
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
for target in decode_request sasl_messages; do
    mkdir -p "corpus/$target"
    cargo fuzz run --sanitizer none "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="${SECONDS_TO_FUZZ:-60}" -rss_limit_mb=4096 -max_len=65536 -timeout=10
done
