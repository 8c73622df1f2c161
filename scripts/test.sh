#!/usr/bin/env bash
# The whole test suite (README's test command). Installs what it needs on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test (workspace)"
cargo test --workspace --locked 2>&1
