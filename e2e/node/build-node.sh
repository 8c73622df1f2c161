#!/usr/bin/env bash
# Build kubelet + kube-scheduler v1.20.2 from Debian's source package (see ../lib/k8s-build.sh) and a static
# `pause` sandbox binary from the same tree; cache them, keyed by version. Also installs the node's runtime
# pieces from Debian: containerd, runc, CNI plugins, umoci (local OCI images), busybox.
# Usage: e2e/node/build-node.sh -> prints the bin dir. Env: STRATA_CACHE (default /var/cache/strata).
set -euo pipefail
source "$(dirname "$0")/../lib/k8s-build.sh"
OUT=${STRATA_CACHE:-/var/cache/strata}/k8s-node-$K8S_VERSION
BIN=$OUT/bin

need=()
for cmd in containerd:containerd runc:runc umoci:umoci ip:iproute2 gcc:gcc; do
  command -v "${cmd%%:*}" >/dev/null || need+=("${cmd#*:}")
done
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

build_pause() { gcc -Os -Wall -Werror -static -DVERSION=v3.4-strata -o "$1/pause" build/pause/linux/pause.c; }
if [ ! -x "$BIN/kubelet" ] || [ ! -x "$BIN/kube-scheduler" ] || [ ! -x "$BIN/pause" ]; then
  k8s_build "$OUT" "cmd/kubelet cmd/kube-scheduler" build_pause
  "$BIN/kubelet" --version >&2
fi
echo "$BIN"
