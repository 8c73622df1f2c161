#!/usr/bin/env bash
# The pod sandbox image (local.test/pause:3.4) as an OCI archive, from the static pause binary that
# build-node.sh compiles from the Kubernetes tree. Usage: build-pause-image.sh PAUSE_BIN OUT_TAR
set -euo pipefail
pause=$1 out=$2
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
umoci init --layout "$w/layout"
umoci new --image "$w/layout:3.4"
umoci unpack --image "$w/layout:3.4" "$w/bundle"
install -m 0755 "$pause" "$w/bundle/rootfs/pause"
umoci repack --image "$w/layout:3.4" "$w/bundle"
umoci config --image "$w/layout:3.4" --os linux --architecture amd64 --config.entrypoint /pause
umoci gc --layout "$w/layout"
tar -C "$w/layout" -cf "$out" .
