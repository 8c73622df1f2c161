#!/usr/bin/env bash
# Bring up the single node of the e2e cluster on this machine: a private bridge (pods + node IP),
# containerd (Debian, by hand), the local images, kubelet and kube-scheduler v1.20.2, against the apiserver in
# $KUBECONFIG. Records every host sysctl and path it changes so node-down.sh can restore them.
# Usage: e2e/node/node-up.sh BIN_DIR ARCHIVE=IMAGE_NAME...   (root; one node per machine: fixed paths and ports)
#   e.g. images/strata-broker.oci.tar=docker.io/strata/broker (the tag comes from the archive)
# Env: STATE (default /tmp/strata-e2e-node), KUBECTL, KUBECONFIG (required).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$1; shift
S=${STATE:-/tmp/strata-e2e-node}
KUBECTL=${KUBECTL:-kubectl}
: "${KUBECONFIG:?KUBECONFIG must point at the e2e apiserver}"
NODE_NAME=strata-e2e-node
NODE_IP=172.30.255.1 # the kubelet refuses a loopback node IP; this /32 lives on our bridge, pods have no route to it
SOCK=/run/containerd/containerd.sock
mkdir -p "$S/logs"
log() { printf '[%s] node: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# The brokers' volumes (3 x 1Gi), the images and the logs need a few GiB; without them the kubelet evicts every
# pod and the run fails much later with pods that never start.
free_mib=$(df -Pm "$S" | awk 'NR==2 {print $4}')
if [ "$free_mib" -lt 3072 ]; then
  log "only ${free_mib} MiB free on $(df -P "$S" | awk 'NR==2 {print $6}'); the node needs at least 3072 MiB"
  exit 1
fi

# 0. What the kubelet rewrites on the host, to restore later.
[ -f "$S/sysctl.orig" ] || for k in vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops \
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes vm.swappiness vm.dirty_ratio vm.dirty_background_ratio \
  vm.max_map_count; do echo "$k=$(sysctl -n $k)"; done > "$S/sysctl.orig"
touch "$S/created-paths"
for p in /run/containerd /var/lib/kubelet /var/lib/cni /var/log/pods /var/log/containers /run/netns; do
  [ -e "$p" ] || grep -qx "$p" "$S/created-paths" || echo "$p" >> "$S/created-paths"
done

# 1. Bridge: pods on 10.244.77.0/24 without a gateway (no forwarding, no NAT); the host's 10.244.77.1 lets
#    the host reach pods and pods reach the apiserver bound there.
"$HERE/bridge-up.sh"

# 2. containerd with our config.
[ -S "$SOCK" ] && { log "ERROR: $SOCK exists: another containerd is running"; exit 1; }
mkdir -p "$S/cni-conf"
sed "s|STATE|$S|g" "$HERE/etc/containerd.toml" > "$S/containerd.toml"
sed "s|STATE|$S|g" "$HERE/etc/cni/net.d/10-strata-bridge.conflist" > "$S/cni-conf/10-strata-bridge.conflist"
sed "s|STATE|$S|g" "$HERE/etc/kubelet-config.yaml" > "$S/kubelet-config.yaml"
: > "$S/resolv.conf"
containerd --config "$S/containerd.toml" > "$S/logs/containerd.log" 2>&1 &
echo $! > "$S/containerd.pid"
for _ in $(seq 1 100); do ctr version >/dev/null 2>&1 && break; sleep 0.1; done
ctr version >/dev/null

# 3. Images: no registry, archives imported into the CRI namespace.
for image in "$@"; do
  ctr -n k8s.io images import --snapshotter overlayfs --base-name "${image#*=}" "${image%%=*}" >/dev/null
done
log "images: $(ctr -n k8s.io images ls -q | grep -v '^sha256:' | tr '\n' ' ')"

# 4. kubelet. AWS_EC2_METADATA_DISABLED: kubelet 1.20's ECR credential provider would otherwise probe the
#    cloud metadata address at startup.
"$KUBECTL" delete node "$NODE_NAME" --ignore-not-found --wait=true >/dev/null
AWS_EC2_METADATA_DISABLED=true "$BIN/kubelet" --config="$S/kubelet-config.yaml" --kubeconfig="$KUBECONFIG" \
  --container-runtime=remote --container-runtime-endpoint="unix://$SOCK" --runtime-request-timeout=2m \
  --root-dir="$S/kubelet" --cert-dir="$S/kubelet/pki" \
  --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --address="$NODE_IP" --v=1 > "$S/logs/kubelet.log" 2>&1 &
echo $! > "$S/kubelet.pid"
"$BIN/kube-scheduler" --kubeconfig="$KUBECONFIG" --leader-elect=false --port=0 --secure-port=0 \
  > "$S/logs/scheduler.log" 2>&1 &
echo $! > "$S/scheduler.pid"

# 5. Ready and untainted.
for _ in $(seq 1 240); do
  st=$("$KUBECTL" get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.spec.taints}' 2>/dev/null || true)
  case "$st" in "True "|True) log "node $NODE_NAME Ready"; exit 0 ;; esac
  kill -0 "$(cat "$S/kubelet.pid")" 2>/dev/null || { tail -30 "$S/logs/kubelet.log" >&2; log "kubelet died"; exit 1; }
  sleep 0.5
done
log "node not Ready after 120 s: $st"; exit 1
