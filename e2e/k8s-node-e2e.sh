#!/usr/bin/env bash
# The whole user story on a real single-node Kubernetes built on this machine (issue: end to end):
# helm install -> LogCluster -> 3 broker pods Running on local PersistentVolumes -> a Kafka client produces
# to and consumes from them by pod IP -> live retention change -> pod loss -> rolling restart -> Prometheus
# scrape -> refused scale-down -> deletion -> the machine left as it was.
#
# Needs root. Builds and caches kube-apiserver/controller-manager (build-kube-apiserver.sh) and
# kubelet/kube-scheduler (node/build-node.sh) under $STRATA_CACHE; first run ~20 min, cached ~4 min.
# Usage: e2e/k8s-node-e2e.sh      (KEEP=1 leaves everything running for inspection)
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
[ "$(id -u)" = 0 ] || die "must run as root (containerd, kubelet, network setup)"

STATE=/tmp/strata-e2e-node
RUN=$STATE/cp
NS=strata
OP_NS=strata-system
LC=e2e
RECORDS=100000
BRIDGE_IP=10.244.77.1
export STATE

T0=$(date +%s)
STEP_T=$T0
STEP_NAME="prepare"
TIMINGS=()
step() { # step NAME: closes the previous step's timing
  local now; now=$(date +%s)
  TIMINGS+=("$(printf '%-58s %4ss' "$STEP_NAME" $((now - STEP_T)))")
  STEP_NAME=$1; STEP_T=$now
  log "=== $1"
}

cleanup() {
  local rc=$?
  set +e
  if [ $rc -ne 0 ] && [ -n "${KUBECONFIG:-}" ]; then
    log "--- diagnostics (exit $rc)"
    k get logcluster,sts,pods,pvc,pv -A -o wide >&2
    k get logcluster "$LC" -n "$NS" -o yaml 2>/dev/null | sed -n '/^status:/,$p' >&2
    k logs -n "$OP_NS" deploy/strata-strata-operator --tail=40 >&2
    for p in 0 1 2; do k logs -n "$NS" "$LC-$p" -c broker --tail=15 >&2; done
    tail -20 "$STATE/logs/kubelet.log" >&2
  fi
  if [ "${KEEP:-0}" = 1 ]; then log "KEEP=1: cluster left running (KUBECONFIG=$RUN/kubeconfig)"; return; fi
  [ -f "$STATE/prometheus.pid" ] && stop_pid_file "$STATE/prometheus.pid"
  KUBECTL=$KUBECTL "$E2E_DIR/node/node-down.sh"
  cp_stop "$RUN"
  ip link show strata0 >/dev/null 2>&1 && ip link del strata0
  rm -rf "$STATE/pv" "$STATE/prometheus" "$STATE/images"
  log "torn down"
}
trap cleanup EXIT

k() { "$KUBECTL" "$@"; }

# --- prepare: binaries, images, client
ensure_base_tools
BIN_DIR=$("$E2E_DIR/build-kube-apiserver.sh")
NODE_BIN=$("$E2E_DIR/node/build-node.sh")
TOOLS=$(ensure_helm)
HELM=$TOOLS/helm
KUBECTL=$TOOLS/kubectl
command -v prometheus >/dev/null || apt_install prometheus
VENV=$("$REPO_DIR/tests/clients/venv.sh")
TARGET=${CARGO_TARGET_DIR:-$REPO_DIR/target}
(cd "$REPO_DIR" && cargo build --release --locked -q -p strata-broker -p strata-cli -p strata-operator)
TAG=e2e
mkdir -p "$STATE/images"
STRATA_BIN_DIR=$TARGET/release STRATA_IMAGE_TAG=$TAG "$REPO_DIR/docker/build-oci-images.sh" "$STATE/images"
"$E2E_DIR/node/build-pause-image.sh" "$NODE_BIN/pause" "$STATE/images/pause.oci.tar"
kafka() { "$VENV/bin/python" "$E2E_DIR/kafka_check.py" "$@"; }

step "1. cluster up (bridge, control plane, node), helm install"
"$E2E_DIR/node/bridge-up.sh"
mkdir -p "$RUN"
CP_ADDRESS=$BRIDGE_IP WITH_NODE=1 cp_start "$BIN_DIR" "$RUN"
export KUBECONFIG=$RUN/kubeconfig
API_PORT=$(sed -n 's|.*server: "https://[^:]*:\([0-9]*\)".*|\1|p' "$KUBECONFIG")
KUBECTL=$KUBECTL "$E2E_DIR/node/node-up.sh" "$NODE_BIN" \
  "$STATE/images/pause.oci.tar=local.test/pause" \
  "$STATE/images/strata-broker.oci.tar=docker.io/strata/broker" \
  "$STATE/images/strata-operator.oci.tar=docker.io/strata/operator"
"$HELM" install strata "$REPO_DIR/charts/strata-operator" -n "$OP_NS" --create-namespace \
  --set image.tag=$TAG --set image.pullPolicy=Never --set logFormat=text --set localVolumes.enabled=true \
  --set apiServer.host=$BRIDGE_IP --set apiServer.port="$API_PORT" --wait --timeout 180s
check "operator pod runs in the cluster" "$(k get pods -n "$OP_NS" -o jsonpath='{.items[0].status.phase}')" Running

step "2. local volumes and a 3-broker LogCluster (retention, tuning)"
k create namespace "$NS" >/dev/null
for i in 0 1 2; do install -d -o 10001 -g 10001 "$STATE/pv/broker-$i"; done
cat <<YAML | k apply -f - >/dev/null
apiVersion: strata.io/v1alpha1
kind: LogCluster
metadata: {name: $LC, namespace: $NS}
spec:
  replicas: 3
  image: strata/broker:$TAG
  imagePullPolicy: Never
  terminationGracePeriodSeconds: 10
  resources: {requests: {cpu: 50m, memory: 64Mi}, limits: {memory: 512Mi}}
  listeners: {advertise: PodIP}
  storage:
    size: 1Gi
    deleteClaim: true
    local:
      - {node: strata-e2e-node, path: $STATE/pv/broker-0}
      - {node: strata-e2e-node, path: $STATE/pv/broker-1}
      - {node: strata-e2e-node, path: $STATE/pv/broker-2}
  retention: {ms: 3600000, bytes: 104857600, segmentBytes: 16777216}
  config: {num.partitions: "3"}
  tuning: {enabled: true, vmSwappiness: 1}
YAML

step "3. Ready with 3 brokers on local PVs, tuning reported"
wait_until "LogCluster Ready" 300 bash -c "[ \"\$($KUBECTL get logcluster $LC -n $NS -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}')\" = True ]" \
  || die "LogCluster did not become Ready"
check "3 ready brokers" "$(k get logcluster $LC -n $NS -o jsonpath='{.status.readyReplicas}')" 3
for i in 0 1 2; do
  pvc=data-$LC-$i
  check "PVC $pvc bound" "$(k get pvc "$pvc" -n $NS -o jsonpath='{.status.phase}')" Bound
  pv=$(k get pvc "$pvc" -n $NS -o jsonpath='{.spec.volumeName}')
  check_match "PVC $pvc is on a local PV" "$(k get pv "$pv" -o jsonpath='{.spec.local.path}')" "^$STATE/pv/broker-[0-2]$"
done
check "tuning reported vm.swappiness in the status" \
  "$(k get logcluster $LC -n $NS -o jsonpath='{.status.brokers[0].tuning.vm\.swappiness}')" 1
check "the node really has vm.swappiness=1" "$(sysctl -n vm.swappiness)" 1
orig=$(sed -n 's/^vm.swappiness=//p' "$STATE/sysctl.orig")
sysctl -qw vm.swappiness="$orig"
log "restored vm.swappiness=$orig"

step "4. topic replicated over 3 brokers (the operator's defaults); produce and consume $RECORDS records by pod IP"
pod_ips() { k get pods -n $NS -l app.kubernetes.io/instance=$LC -o jsonpath='{range .items[*]}{.status.podIP}:9092,{end}' | sed 's/,$//'; }
BOOTSTRAP=$(pod_ips)
log "bootstrap: $BOOTSTRAP"
# The operator's replication defaults for three brokers, set cluster-wide through the admin API.
ip0=$(k get pod "$LC-0" -n $NS -o jsonpath='{.status.podIP}')
wait_until "brokers have the operator's replication defaults (factor 3, min.insync 2)" 90 bash -c \
  "[ \"\$('$VENV/bin/python' '$E2E_DIR/kafka_check.py' $ip0:9092 describe-broker 0 default.replication.factor)\" = 3 ] &&
   [ \"\$('$VENV/bin/python' '$E2E_DIR/kafka_check.py' $ip0:9092 describe-broker 0 min.insync.replicas)\" = 2 ]"
kafka "$BOOTSTRAP" create e2e 6
check "partitions spread over the 3 brokers" "$(kafka "$BOOTSTRAP" leaders e2e | awk '{print $2}' | sort -u | tr '\n' ' ')" "0 1 2 "
check "every partition on 3 brokers, all in sync" "$(kafka "$BOOTSTRAP" leaders e2e | awk '{print $3 "/" $4}' | sort -u | tr '\n' ' ')" "3/3 "
check "produced" "$(kafka "$BOOTSTRAP" produce e2e $RECORDS)" $RECORDS
check "consumed every record once" "$(kafka "$BOOTSTRAP" consume e2e $RECORDS)" $RECORDS

step "5. retention change: applied live, no pod restarts"
uids() { k get pods -n $NS -l app.kubernetes.io/instance=$LC -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.uid} {end}'; }
before=$(uids)
k patch logcluster $LC -n $NS --type=merge -p '{"spec":{"retention":{"ms":7200000}}}' >/dev/null
for i in 0 1 2; do
  ip=$(k get pod "$LC-$i" -n $NS -o jsonpath='{.status.podIP}')
  wait_until "broker $i reports log.retention.ms=7200000" 90 \
    bash -c "[ \"\$('$VENV/bin/python' '$E2E_DIR/kafka_check.py' $ip:9092 describe-broker $i log.retention.ms)\" = 7200000 ]"
done
check "no pod restarted" "$(uids)" "$before"

step "6. delete one broker pod: back on the same PV, its records intact"
pv1=$(k get pvc data-$LC-1 -n $NS -o jsonpath='{.spec.volumeName}')
uid1=$(k get pod $LC-1 -n $NS -o jsonpath='{.metadata.uid}')
k delete pod $LC-1 -n $NS --wait=true >/dev/null
wait_until "pod $LC-1 recreated and Ready" 180 bash -c \
  "[ \"\$($KUBECTL get pod $LC-1 -n $NS -o jsonpath='{.metadata.uid} {.status.conditions[?(@.type==\"Ready\")].status}')\" != '$uid1 True' ] && [ \"\$($KUBECTL get pod $LC-1 -n $NS -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}')\" = True ]"
check "same PV after re-creation" "$(k get pvc data-$LC-1 -n $NS -o jsonpath='{.spec.volumeName}')" "$pv1"
BOOTSTRAP=$(pod_ips)
check "all records readable after the pod came back" "$(kafka "$BOOTSTRAP" consume e2e $RECORDS)" $RECORDS

step "7. static setting change: operator rolls pods one at a time"
k patch logcluster $LC -n $NS --type=merge -p '{"spec":{"config":{"num.partitions":"4"}}}' >/dev/null
declare -A first_uid
for i in 0 1 2; do first_uid[$i]=$(k get pod $LC-$i -n $NS -o jsonpath='{.metadata.uid}'); done
sequence=()
max_down=0
end=$(( $(date +%s) + 420 ))
while [ "$(date +%s)" -lt "$end" ]; do
  replaced=0; down=0
  for i in 0 1 2; do
    st=$(k get pod $LC-$i -n $NS -o jsonpath='{.metadata.uid} {.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || echo "gone")
    uid=${st%% *}; ready=${st##* }
    [ "$ready" = True ] || down=$((down + 1))
    if [ "$uid" != "${first_uid[$i]}" ] && [ "$ready" = True ]; then replaced=$((replaced + 1))
      [[ " ${sequence[*]} " == *" $LC-$i "* ]] || { sequence+=("$LC-$i"); log "restarted and ready: $LC-$i (+$(( $(date +%s) - STEP_T ))s)"; }
    fi
  done
  [ $down -gt $max_down ] && max_down=$down
  [ $replaced = 3 ] && break
  sleep 1
done
check "all 3 pods restarted" "${#sequence[@]}" 3
check "never more than one broker down" "$max_down" 1
log "restart sequence: ${sequence[*]}"

step "8. Prometheus scrapes the broker pods by IP"
BOOTSTRAP=$(pod_ips)
mkdir -p "$STATE/prometheus"
PROM_PORT=$(free_port)
targets=$(k get pods -n $NS -l app.kubernetes.io/instance=$LC -o jsonpath='{range .items[*]}"{.status.podIP}:9644",{end}' | sed 's/,$//')
cat > "$STATE/prometheus/prometheus.yml" <<PROM
global: {scrape_interval: 2s, evaluation_interval: 2s}
rule_files: ["$REPO_DIR/charts/strata-operator/files/strata-rules.yml"]
scrape_configs:
  - job_name: strata-brokers
    static_configs: [{targets: [$targets]}]
PROM
prometheus --config.file="$STATE/prometheus/prometheus.yml" --storage.tsdb.path="$STATE/prometheus/data" \
  --web.listen-address=127.0.0.1:$PROM_PORT > "$STATE/prometheus/prometheus.log" 2>&1 &
echo $! > "$STATE/prometheus.pid"
check "produced while scraping" "$(kafka "$BOOTSTRAP" produce e2e 20000)" 20000
promq() { curl -s "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" | "$VENV/bin/python" -c \
  'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "none")'; }
wait_until "Prometheus sees 3 brokers up" 60 bash -c "[ \"\$(curl -s 'http://127.0.0.1:$PROM_PORT/api/v1/query?query=sum(up)' | grep -o '\"3\"')\" = '\"3\"' ]"
wait_until "bytes-in for topic e2e visible in Prometheus" 60 bash -c \
  "curl -s 'http://127.0.0.1:$PROM_PORT/api/v1/query' --data-urlencode 'query=sum(kafka_server_brokertopicmetrics_bytesin_total{topic=\"e2e\"}) > 0' | grep -q '\"value\"'"
log "bytes in for e2e: $(promq 'sum(kafka_server_brokertopicmetrics_bytesin_total{topic="e2e"})')"

step "9. scale down refused while brokers hold partitions; delete the LogCluster"
k patch logcluster $LC -n $NS --type=merge -p '{"spec":{"replicas":2}}' >/dev/null
wait_until "scale-down refused with a condition" 60 bash -c \
  "$KUBECTL get logcluster $LC -n $NS -o jsonpath='{.status.conditions[?(@.type==\"Degraded\")].reason}' | grep -q ScaleDownBlocked"
log "condition: $(k get logcluster $LC -n $NS -o jsonpath='{.status.conditions[?(@.type=="Degraded")].message}')"
check "still 3 broker pods" "$(k get sts $LC -n $NS -o jsonpath='{.spec.replicas}')" 3
k delete logcluster $LC -n $NS --wait=true --timeout=180s >/dev/null
wait_until "StatefulSet, Services, ConfigMap and PDB garbage-collected" 120 bash -c \
  "[ -z \"\$($KUBECTL get sts,svc,cm,pdb -n $NS -l app.kubernetes.io/instance=$LC -o name 2>/dev/null)\" ]"
wait_until "claims and local PVs removed (deleteClaim: true)" 120 bash -c \
  "[ -z \"\$($KUBECTL get pvc -n $NS -o name)\" ] && [ -z \"\$($KUBECTL get pv -o name)\" ]"

step "10. teardown"
trap - EXIT
cleanup
step "done"
printf '%s\n' "${TIMINGS[@]}" >&2
log "total $(( $(date +%s) - T0 ))s"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
