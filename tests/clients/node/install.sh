#!/usr/bin/env bash
# Installs Node.js (Debian) and the pinned kafkajs into a cache directory, once per version; prints the directory
# whose node_modules holds it (for NODE_PATH).
set -euo pipefail
version=2.2.4
dir=/var/cache/strata/node-kafkajs-$version
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2
fi
if [ ! -f "$dir/node_modules/kafkajs/package.json" ]; then
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp"
    npm install --prefix "$dir.tmp" --no-audit --no-fund --loglevel=error "kafkajs@$version" >&2
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
fi
echo "$dir"
