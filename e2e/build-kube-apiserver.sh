#!/usr/bin/env bash
# Build kube-apiserver + kube-controller-manager v1.20.2 from Debian's source package and cache them, keyed
# by version (see lib/k8s-build.sh). Prints the bin dir, e.g. /var/cache/strata/k8s-1.20.2/bin.
# Env: STRATA_CACHE (default /var/cache/strata).
set -euo pipefail
source "$(dirname "$0")/lib/k8s-build.sh"
OUT=${STRATA_CACHE:-/var/cache/strata}/k8s-$K8S_VERSION
BIN=$OUT/bin

# etcd comes from Debian too; make sure it is there even when the binaries are cached.
need_apt=()
command -v etcd >/dev/null || need_apt+=(etcd-server)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v curl >/dev/null || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
if [ ! -x "$BIN/kube-apiserver" ] || [ ! -x "$BIN/kube-controller-manager" ]; then
  k8s_build "$OUT" "cmd/kube-apiserver cmd/kube-controller-manager"
  "$BIN/kube-apiserver" --version >&2
fi
echo "$BIN"
