#!/usr/bin/env bash
# The e2e node's private bridge: 10.244.77.1/24 (host side of the pod network; the apiserver binds here so
# pods can reach it without kube-proxy) and 172.30.255.1/32 (the node IP). No gateway, forwarding or NAT.
set -euo pipefail
if ! ip link show strata0 >/dev/null 2>&1; then
  ip link add strata0 type bridge
  ip addr add 10.244.77.1/24 dev strata0
  ip link set strata0 up
fi
# `replace` is idempotent: a second call (node-up.sh calls this again) must not fail with "Address already
# assigned", which a check-then-add once did in CI.
ip addr replace 172.30.255.1/32 dev strata0
