#!/usr/bin/env bash
# The whole test suite (README's test command). Installs what it needs on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test (workspace)"
cargo test --workspace --locked 2>&1

echo "== monitoring assets: promtool check/test rules, dashboard structure"
command -v promtool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
promtool check rules monitoring/strata-rules.yml
promtool test rules monitoring/strata-rules.test.yml
python3 monitoring/check_assets.py
