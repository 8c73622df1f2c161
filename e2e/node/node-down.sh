#!/usr/bin/env bash
# Tear down what node-up.sh started, by PID, and undo its host side effects: pods, kubelet, scheduler,
# containerd and its tasks, mounts, network namespaces, the bridge, cgroups, created host paths, sysctls.
# Safe to run twice, and after a partial node-up.
S=${STATE:-/tmp/strata-e2e-node}
KUBECTL=${KUBECTL:-kubectl}
log() { printf '[%s] node: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
stop_pid() { # name pidfile
  [ -f "$2" ] || return 0
  local p; p=$(cat "$2")
  if kill -0 "$p" 2>/dev/null; then
    kill "$p"
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$p" 2>/dev/null && kill -9 "$p"
    log "stopped $1 (pid $p)"
  fi
  rm -f "$2"
}
# 1. Let the kubelet stop pods properly (CNI DEL, unmounts) while it still runs.
if [ -f "$S/kubelet.pid" ] && kill -0 "$(cat "$S/kubelet.pid")" 2>/dev/null && [ -n "${KUBECONFIG:-}" ]; then
  "$KUBECTL" delete statefulset,deployment --all --all-namespaces --wait=false >/dev/null 2>&1 || true
  "$KUBECTL" delete pod --all --all-namespaces --grace-period=1 --wait=true --timeout=60s >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do
    [ "$(ctr -n k8s.io tasks ls -q 2>/dev/null | wc -l)" = 0 ] && break; sleep 1
  done
fi
stop_pid kube-scheduler "$S/scheduler.pid"
stop_pid kubelet "$S/kubelet.pid"
# 2. Whatever containerd still runs.
if ctr version >/dev/null 2>&1; then
  for t in $(ctr -n k8s.io tasks ls -q 2>/dev/null); do ctr -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done
  sleep 1
  for t in $(ctr -n k8s.io tasks ls -q 2>/dev/null); do ctr -n k8s.io tasks delete -f "$t" >/dev/null 2>&1; done
  for c in $(ctr -n k8s.io containers ls -q 2>/dev/null); do ctr -n k8s.io containers delete "$c" >/dev/null 2>&1; done
fi
stop_pid containerd "$S/containerd.pid"
# 3. Mounts under our state, containerd's, and CNI network namespaces (deepest first).
for m in $(awk '{print $5}' /proc/self/mountinfo | grep -E "^(/run/containerd|$S|/run/netns/cni-|/var/run/netns/cni-)" | sort -r); do
  umount "$m" 2>/dev/null || umount -l "$m"
done
rm -f /run/netns/cni-* 2>/dev/null
# 4. Bridge.
ip link show strata0 >/dev/null 2>&1 && ip link del strata0 && log "deleted bridge strata0"
# 5. cgroups the kubelet (kubepods) and containerd (k8s.io) created.
for h in /sys/fs/cgroup/*/; do
  for top in kubepods k8s.io; do [ -d "$h$top" ] && find "$h$top" -depth -type d -exec rmdir {} \; 2>/dev/null; done
done
# 6. State, and host paths that did not exist before node-up.sh.
rm -rf "$S/kubelet" "$S/containerd" "$S/containerd-opt" "$S/cni-ipam" "$S/cni-conf" "$S/kubelet-volume-plugins"
if [ -f "$S/created-paths" ]; then
  while read -r p; do [ -e "$p" ] && rm -rf "$p"; done < "$S/created-paths"
  rm -f "$S/created-paths"
fi
# 7. Sysctls the kubelet or our tuning init container changed.
if [ -f "$S/sysctl.orig" ]; then
  while IFS='=' read -r k v; do
    [ "$(sysctl -n "$k")" = "$v" ] || { sysctl -qw "$k=$v"; log "restored $k=$v"; }
  done < "$S/sysctl.orig"
  rm -f "$S/sysctl.orig"
fi
log "down"
