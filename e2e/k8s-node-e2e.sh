#!/usr/bin/env bash
# The whole user story on a real single-node Kubernetes built on this machine (issue: end to end):
# helm install -> LogCluster -> 3 broker pods Running on local PersistentVolumes -> a Kafka client produces
# to and consumes from them by pod IP -> live retention change -> pod loss -> rolling restart -> kill -9 of a
# broker -> scale 3 -> 4 -> 3 by reassignment -> a LogTopic created, altered, deleted -> Prometheus scrape ->
# LogUsers (SCRAM over TLS, mTLS, ACLs) -> refused scale-down -> deletion -> the machine left as it was. From step 5 to the end an idempotent acks=all
# producer and a consumer group run in the background (workload.py); no acknowledged record may be lost.
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
WL_DIR=$STATE/workload
WL_RATE=400 # records/s: moderate, the machine has 2 cores
export STATE

rm -rf "$WL_DIR" # counts of an earlier run would show in this run's step lines
T0=$(date +%s)
STEP_T=$T0
STEP_NAME="prepare"
TIMINGS=()
step() { # step NAME: closes the previous step's timing, with the workload's counts at its end
  local now counts=""; now=$(date +%s)
  [ -f "$WL_DIR/counts" ] && counts=$(tr -d '{}",' < "$WL_DIR/counts" | sed 's/: /=/g')
  TIMINGS+=("$(printf '%-62s %4ss  %s' "$STEP_NAME" $((now - STEP_T)) "$counts")")
  STEP_NAME=$1; STEP_T=$now
  log "=== $1${counts:+   [workload so far: $counts]}"
}

cleanup() {
  local rc=$?
  set +e
  if [ $rc -ne 0 ] && [ -n "${KUBECONFIG:-}" ]; then
    log "--- diagnostics (exit $rc)"
    k get logcluster,sts,pods,pvc,pv -A -o wide >&2
    k get logcluster "$LC" -n "$NS" -o yaml 2>/dev/null | sed -n '/^status:/,$p' >&2
    k logs -n "$OP_NS" deploy/strata-strata-operator --tail=40 >&2
    for p in 0 1 2 3; do k logs -n "$NS" "$LC-$p" -c broker --tail=15 2>/dev/null >&2; done
    tail -20 "$STATE/logs/kubelet.log" >&2
    [ -f "$WL_DIR/workload.log" ] && { log "--- workload (counts: $(cat "$WL_DIR/counts" 2>/dev/null))"; grep -v '^%' "$WL_DIR/workload.log" | tail -20 >&2; }
  fi
  for f in workload watch; do [ -f "$STATE/$f.pid" ] && stop_pid_file "$STATE/$f.pid"; done
  [ -n "${KUBECONFIG:-}" ] && save_logs
  if [ "${KEEP:-0}" = 1 ]; then log "KEEP=1: cluster left running (KUBECONFIG=$RUN/kubeconfig)"; return; fi
  [ -f "$STATE/prometheus.pid" ] && stop_pid_file "$STATE/prometheus.pid"
  KUBECTL=$KUBECTL "$E2E_DIR/node/node-down.sh"
  cp_stop "$RUN"
  ip link show strata0 >/dev/null 2>&1 && ip link del strata0
  rm -rf "$STATE/pv" "$STATE/prometheus" "$STATE/images"
  log "torn down (workload records in $WL_DIR, operator and broker logs in $STATE/logs)"
}
trap cleanup EXIT
# The operator's and brokers' logs, kept in $STATE/logs for a look after the teardown (a pod's, while it exists).
save_logs() {
  local p; mkdir -p "$STATE/logs"
  k logs -n "$OP_NS" deploy/strata-strata-operator > "$STATE/logs/operator.log" 2>&1 || true
  for p in $LC-0 $LC-1 $LC-2 $LC-3; do
    if k get pod "$p" -n "$NS" >/dev/null 2>&1; then k logs -n "$NS" "$p" -c broker > "$STATE/logs/$p.log" 2>&1 || true; fi
  done
}

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
STRATA=$TARGET/release/strata
kafka() { "$VENV/bin/python" "$E2E_DIR/kafka_check.py" "$@"; }
jpy() { "$VENV/bin/python" -c "import json,sys; d=json.load(sys.stdin); print($1)"; } # jpy EXPR: EXPR of the JSON d on stdin
# Brokers by pod IP: the host has no cluster DNS, and pod IPs change when pods are recreated.
pod_ips() { k get pods -n $NS -l app.kubernetes.io/instance=$LC -o jsonpath='{range .items[*]}{.status.podIP}{"\n"}{end}' | awk 'NF {printf "%s%s:9092", sep, $1; sep=","}'; }
lc_cond() { k get logcluster $LC -n $NS -o jsonpath="{.status.conditions[?(@.type==\"$1\")].$2}"; } # lc_cond TYPE FIELD
pod_ready() { [ "$(k get pod "$1" -n $NS -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; }
# Every partition of the topics with 3 replicas, all in sync (__consumer_offsets too: its factor is the
# 3 voters; a reassignment in flight shows as 4 replicas).
in_sync() { local b t; b=$(pod_ips); for t in "$@"; do [ "$(kafka "$b" leaders "$t" | awk '{print $3 "/" $4}' | sort -u)" = 3/3 ] || return 1; done; }
# Replicas per broker of a topic ("broker:count ..."), from the replica lists of its partitions.
replica_counts() { kafka "$(pod_ips)" leaders "$1" | awk '{n = split($5, r, ","); for (i = 1; i <= n; i++) c[r[i]]++}
  END {for (b in c) printf "%s:%d\n", b, c[b]}' | sort | tr '\n' ' '; }
broker_ids() { "$STRATA" --brokers "$(pod_ips)" --format json cluster info | jpy '" ".join(str(b["id"]) for b in sorted(d["brokers"], key=lambda b: b["id"]))'; }
# Counts of the background workload so far (its counts file, rewritten every second).
wl_count() { jpy "d['$1']" < "$WL_DIR/counts"; }
# The workload still gets records acknowledged and consumed (e.g. after every broker got a new IP).
wl_grew() { [ "$(wl_count acked)" -gt "$1" ] && [ "$(wl_count consumed)" -gt "$2" ]; }
wl_flowing() {
  local a c; a=$(wl_count acked); c=$(wl_count consumed)
  wait_until "workload: records still acknowledged and consumed (beyond $a/$c)" 60 wl_grew "$a" "$c"
}

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
check "the chart installed the three CRDs" "$(k get crd -o name | grep -c 'logclusters.strata.io\|logtopics.strata.io\|logusers.strata.io')" 3

local_volumes() { # local_volumes N: the storage.local list of N brokers, as JSON
  local i sep=""; printf '['
  for i in $(seq 0 $(($1 - 1))); do printf '%s{"node": "strata-e2e-node", "path": "%s/pv/broker-%s"}' "$sep" "$STATE" "$i"; sep=", "; done
  printf ']'
}
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
  # Secured: the plaintext listener the steps' clients use (User:ANONYMOUS, a super user), SCRAM over TLS and
  # mTLS for the LogUsers of step 13; brokers, the quorum and the operator talk over the brokers' own mTLS listener.
  listeners:
    advertise: PodIP
    clients:
      - {name: plain, port: 9092}
      - {name: scram, port: 9094, tls: true, authentication: scram-sha-512}
      - {name: mtls, port: 9095, tls: true, authentication: tls}
  authorization: {type: simple, superUsers: ["User:ANONYMOUS"]}
  storage:
    size: 1Gi
    deleteClaim: true
    local: $(local_volumes 3)
  retention: {ms: 3600000, bytes: 104857600, segmentBytes: 16777216}
  config: {num.partitions: "3"}
  tuning: {enabled: true, vmSwappiness: 1}
  rebalancing: {throttleBytesPerSecond: 1048576} # slow enough to see replicas move in steps 10-11
YAML

step "3. Ready with 3 brokers on local PVs, tuning reported"
wait_until "LogCluster Ready" 300 equals True lc_cond Ready status || die "LogCluster did not become Ready"
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

step "5. background workload: idempotent acks=all producer ($WL_RATE/s) and a consumer group"
# The checker must be able to fail: its verdict is run on fabricated losses and errors first.
check "workload self-check (a loss and an error are reported)" \
  "$("$VENV/bin/python" "$E2E_DIR/workload.py" self-check >&2 && echo passed)" passed
kafka "$BOOTSTRAP" create workload 6
check "topic workload: 3 in-sync replicas per partition" "$(in_sync workload && echo yes)" yes
rm -rf "$WL_DIR"; mkdir -p "$WL_DIR"
# Bootstrap: every pod IP now. They all change in the roll (step 8); librdkafka follows the brokers'
# new addresses through metadata, which wl_flowing checks after each step.
"$VENV/bin/python" "$E2E_DIR/workload.py" run "$BOOTSTRAP" workload "$WL_DIR" $WL_RATE \
  > "$WL_DIR/report.out" 2> "$WL_DIR/workload.log" &
echo $! > "$STATE/workload.pid"
wait_until "workload acknowledged and consumed its first records" 60 wl_grew 0 0

step "6. retention change: applied live, no pod restarts"
uids() { k get pods -n $NS -l app.kubernetes.io/instance=$LC -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.uid} {end}'; }
before=$(uids)
k patch logcluster $LC -n $NS --type=merge -p '{"spec":{"retention":{"ms":7200000}}}' >/dev/null
for i in 0 1 2; do
  ip=$(k get pod "$LC-$i" -n $NS -o jsonpath='{.status.podIP}')
  wait_until "broker $i reports log.retention.ms=7200000" 90 \
    bash -c "[ \"\$('$VENV/bin/python' '$E2E_DIR/kafka_check.py' $ip:9092 describe-broker $i log.retention.ms)\" = 7200000 ]"
done
check "no pod restarted" "$(uids)" "$before"
wl_flowing

step "7. delete one broker pod: back on the same PV, its records intact"
pv1=$(k get pvc data-$LC-1 -n $NS -o jsonpath='{.spec.volumeName}')
uid1=$(k get pod $LC-1 -n $NS -o jsonpath='{.metadata.uid}')
k delete pod $LC-1 -n $NS --wait=true >/dev/null
recreated() { [ "$(k get pod "$1" -n $NS -o jsonpath='{.metadata.uid}')" != "$2" ] && pod_ready "$1"; }
wait_until "pod $LC-1 recreated and Ready" 180 recreated $LC-1 "$uid1"
check "same PV after re-creation" "$(k get pvc data-$LC-1 -n $NS -o jsonpath='{.spec.volumeName}')" "$pv1"
BOOTSTRAP=$(pod_ips)
check "all records readable after the pod came back" "$(kafka "$BOOTSTRAP" consume e2e $RECORDS)" $RECORDS
wait_until "all partitions back to 3 in-sync replicas" 120 in_sync e2e workload __consumer_offsets
wl_flowing

step "8. static setting change: operator rolls pods one at a time"
ips_before=$(pod_ips)
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
ips_after=$(pod_ips)
log "pod IPs before the roll: $ips_before; after: $ips_after"
check "no pod IP of before the roll is left (the workload's bootstrap list is all stale)" \
  "$(comm -12 <(tr ',' '\n' <<< "$ips_before" | sort) <(tr ',' '\n' <<< "$ips_after" | sort))" ""
wait_until "all partitions back to 3 in-sync replicas" 120 in_sync e2e workload __consumer_offsets
wl_flowing

step "9. kill -9 of a broker process: the kubelet restarts it in the same pod"
BOOTSTRAP=$(pod_ips)
victim=$LC-$(kafka "$BOOTSTRAP" leaders workload | awk '$1 == 0 {print $2}') # leads partition 0 of the workload
uid=$(k get pod "$victim" -n $NS -o jsonpath='{.metadata.uid}')
restarts=$(k get pod "$victim" -n $NS -o jsonpath='{.status.containerStatuses[?(@.name=="broker")].restartCount}')
cid=$(k get pod "$victim" -n $NS -o jsonpath='{.status.containerStatuses[?(@.name=="broker")].containerID}')
pid=$(ctr -n k8s.io tasks ls | awk -v id="${cid#containerd://}" '$1 == id {print $2}')
[ -n "$pid" ] || die "no containerd task for the broker container of $victim ($cid)"
check "the container's main process is the broker (the start script execs it)" "$(cat "/proc/$pid/comm" 2>/dev/null)" strata-broker
log "kill -9 $pid: the broker of $victim (leader of workload partition 0)"
kill -9 "$pid"
restarted() { [ "$(k get pod "$victim" -n $NS -o jsonpath='{.status.containerStatuses[?(@.name=="broker")].restartCount}')" -gt "$restarts" ] && pod_ready "$victim"; }
wait_until "$victim restarted by the kubelet and Ready" 180 restarted
check "same pod (not recreated)" "$(k get pod "$victim" -n $NS -o jsonpath='{.metadata.uid}')" "$uid"
check "the old broker process is gone" "$([ -d "/proc/$pid" ] && echo alive || echo gone)" gone
wait_until "all partitions back to 3 in-sync replicas" 180 in_sync e2e workload __consumer_offsets
wait_until "cluster health: no offline, under-replicated or under-min-ISR partition, no fenced broker" 60 \
  "$STRATA" --brokers "$(pod_ips)" cluster health
wl_flowing

# Polls until COMMAND succeeds, noting every Progressing condition of the LogCluster meanwhile (in
# PROGRESS_SEEN, as status/reason): a watch, so a short-lived one is not missed between polls.
# track_until DESCRIPTION SECONDS COMMAND...
track_until() {
  local desc=$1 secs=$2 rc=0; shift 2
  "$KUBECTL" get logcluster $LC -n $NS -w -o jsonpath='{.status.conditions[?(@.type=="Progressing")].status}/{.status.conditions[?(@.type=="Progressing")].reason}: {.status.conditions[?(@.type=="Progressing")].message}{"\n"}' \
    > "$STATE/progressing.log" 2>/dev/null &
  echo $! > "$STATE/watch.pid"
  wait_until "$desc" "$secs" "$@" || rc=$?
  stop_pid_file "$STATE/watch.pid"
  uniq "$STATE/progressing.log" | while read -r line; do log "Progressing: $line"; done
  PROGRESS_SEEN=$(cut -d: -f1 "$STATE/progressing.log" | uniq | tr '\n' ' ')
  return $rc
}
# The operator's events about the LogCluster since the step began, with their times (what happened when).
lc_events() {
  local since; since=$(date -u -d "@$STEP_T" +%Y-%m-%dT%H:%M:%S)
  k get events -n $NS --field-selector involvedObject.kind=LogCluster \
    -o jsonpath='{range .items[*]}{.eventTime}{.lastTimestamp} {.reason}: {.message}{"\n"}{end}' |
    sort | awk -v s="$since" '$1 >= s' | while read -r line; do log "event: $line"; done
}
# The LogCluster's conditions describe the current spec: Ready True, nothing Progressing.
settled() {
  [ "$(lc_cond Ready observedGeneration)" = "$(k get logcluster $LC -n $NS -o jsonpath='{.metadata.generation}')" ] &&
    [ "$(lc_cond Ready status)" = True ] && [ "$(lc_cond Progressing status)" != True ]
}
# Every broker of 0..N-1 holds a fair share of the topic's 6 x 3 replicas: 18/N rounded down or up.
fair_share() { # fair_share N TOPIC
  local i lo=$((18 / $1)) hi=$(((18 + $1 - 1) / $1)) got
  got=$(replica_counts "$2")
  for i in $(seq 0 $(($1 - 1))); do [[ " $got" =~ \ $i:($lo|$hi)\  ]] || return 1; done
  [ "$(wc -w <<< "$got")" = "$1" ]
}
scaled_up() { [ "$(k get sts $LC -n $NS -o jsonpath='{.status.readyReplicas}')" = 4 ] && settled && fair_share 4 e2e && in_sync e2e workload __consumer_offsets; }

# Once nothing moves, the operator has removed the throttles it set: its record on the StatefulSet, the
# topics' throttled-replica lists and the brokers' rates.
throttles_cleared() {
  [ -z "$(k get sts $LC -n $NS -o jsonpath='{.metadata.annotations.strata\.io/throttled-topics}')" ] &&
    [ "$("$STRATA" --brokers "$(pod_ips)" --format json topic describe e2e workload |
      jpy 'sorted({c["name"] for t in d for c in t["configs"] if "throttled" in c["name"] and c["source"] != "DEFAULT_CONFIG"})')" = "[]" ] &&
    [ "$(kafka "$(pod_ips)" describe-broker 0 leader.replication.throttled.rate)" != 1048576 ]
}
step "10. scale 3 -> 4: the operator moves replicas onto the new broker"
install -d -o 10001 -g 10001 "$STATE/pv/broker-3"
# The new broker needs its own local volume (validation: one storage.local entry per broker).
k patch logcluster $LC -n $NS --type=merge -p "{\"spec\":{\"replicas\":4,\"storage\":{\"local\":$(local_volumes 4)}}}" >/dev/null
track_until "4 brokers, replicas rebalanced (e2e: 4 or 5 per broker), all in sync, LogCluster Ready" 600 scaled_up
lc_events
check_match "Progressing True/Rebalancing reported while replicas moved" "$PROGRESS_SEEN" "True/Rebalancing"
log "replicas per broker: e2e: $(replica_counts e2e); workload: $(replica_counts workload)"
check "broker 3 registered" "$(broker_ids)" "0 1 2 3"
check "PVC data-$LC-3 bound to the 4th local volume" \
  "$(k get pv "$(k get pvc data-$LC-3 -n $NS -o jsonpath='{.spec.volumeName}')" -o jsonpath='{.spec.local.path}')" "$STATE/pv/broker-3"
check "workload's replicas fairly spread too" "$(fair_share 4 workload && echo yes)" yes
wait_until "replication throttles removed after the rebalance" 60 throttles_cleared
wl_flowing

no_replica_on() { kafka "$(pod_ips)" leaders "$1" | awk -v b="$2" '{n = split($5, r, ","); for (i = 1; i <= n; i++) if (r[i] == b) exit 1}'; }
scaled_down() {
  [ "$(k get sts $LC -n $NS -o jsonpath='{.spec.replicas}')" = 3 ] && ! k get pod $LC-3 -n $NS >/dev/null 2>&1 &&
    ! k get pvc data-$LC-3 -n $NS >/dev/null 2>&1 && [ "$(broker_ids)" = "0 1 2" ] && settled && in_sync e2e workload __consumer_offsets
}
step "11. scale 4 -> 3: the operator drains broker 3, then removes it"
k patch logcluster $LC -n $NS --type=merge -p '{"spec":{"replicas":3}}' >/dev/null
track_until "3 brokers: $LC-3 and its claim gone, broker 3 unregistered, all in sync, LogCluster Ready" 600 scaled_down
lc_events
check_match "Progressing True/Draining reported while replicas left broker 3" "$PROGRESS_SEEN" "True/Draining"
check "no ScaleDownBlocked warning during the drain" \
  "$(k get events -n $NS --field-selector involvedObject.kind=LogCluster,reason=ScaleDownBlocked -o name | wc -l)" 0
for t in e2e workload __consumer_offsets; do
  check "no replica of $t on broker 3" "$(no_replica_on "$t" 3 && echo none)" none
done
log "replicas per broker: e2e: $(replica_counts e2e); workload: $(replica_counts workload)"
wait_until "replication throttles removed after the drain" 60 throttles_cleared
wl_flowing

lt_get() { k get logtopic orders -n $NS -o jsonpath="$1"; }
lt_ready() { # lt_ready GENERATION: the LogTopic's status describes that generation and is Ready
  [ "$(lt_get '{.status.observedGeneration}')" = "$1" ] && [ "$(lt_get '{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}
# The topic as the brokers describe it: id, partitions, replication factor, retention.ms.
topic_facts() {
  "$STRATA" --brokers "$(pod_ips)" --format json topic describe "$1" |
    jpy '" ".join(map(str, [d[0]["id"], len(d[0]["partitions"]), len(d[0]["partitions"][0]["replicas"]),
      {c["name"]: c["value"] for c in d[0]["configs"]}["retention.ms"]]))'
}
topic_listed() { "$STRATA" --brokers "$(pod_ips)" --format json topic list | jpy "'$1' in [t['name'] for t in d]"; }
step "12. LogTopic: created, altered live (config, partitions), deleted"
cat <<YAML | k apply -f - >/dev/null
apiVersion: strata.io/v1alpha1
kind: LogTopic
metadata: {name: orders, namespace: $NS}
spec:
  cluster: $LC
  topicName: orders.v1
  partitions: 3
  replicas: 3
  config: {retention.ms: 3600000, min.insync.replicas: 2}
YAML
wait_until "LogTopic orders Ready for generation 1" 120 lt_ready 1
id=$(lt_get '{.status.topicId}')
check_match "status: topic id" "$id" '^[A-Za-z0-9_-]{22}$|^[0-9a-f-]{36}$'
check "status: topic, partitions, replicas" "$(lt_get '{.status.topicName} {.status.partitions} {.status.replicas}')" "orders.v1 3 3"
check "the brokers have orders.v1: id, 3 partitions, factor 3, retention.ms" "$(topic_facts orders.v1)" "$id 3 3 3600000"
k patch logtopic orders -n $NS --type=merge -p '{"spec":{"partitions":6,"config":{"retention.ms":7200000}}}' >/dev/null
wait_until "LogTopic orders Ready for generation 2" 120 lt_ready 2
check "status: 6 partitions, same topic id" "$(lt_get '{.status.partitions} {.status.topicId}')" "6 $id"
check "the brokers: same id, 6 partitions, factor 3, retention.ms changed live" "$(topic_facts orders.v1)" "$id 6 3 7200000"
wait_until "orders.v1: 3 in-sync replicas per partition" 60 in_sync orders.v1
k delete logtopic orders -n $NS --wait=true --timeout=120s >/dev/null
check "LogTopic gone (its finalizer deleted the topic first)" "$(k get logtopic -n $NS -o name)" ""
wait_until "topic orders.v1 deleted on the brokers" 60 equals False topic_listed orders.v1
wl_flowing

step "13. LogUsers: SCRAM-SHA-512 and certificate users with ACLs, over TLS"
check "secrets: the cluster CA certificate for clients" "$(k get secret $LC-cluster-ca-cert -n $NS -o jsonpath='{.data.ca\.crt}' | base64 -d | head -1)" \
  "-----BEGIN CERTIFICATE-----"
kafka "$BOOTSTRAP" create secure-a 3
kafka "$BOOTSTRAP" create secure-b 3
cat <<YAML | k apply -f - >/dev/null
apiVersion: strata.io/v1alpha1
kind: LogUser
metadata: {name: alice, namespace: $NS}
spec:
  cluster: $LC
  authentication: {type: scram-sha-512}
  authorization:
    type: simple
    acls:
      - {resource: {type: topic, name: secure-a}, operations: [Write, Describe]}
      - {resource: {type: group, name: e2e-, patternType: prefix}, operations: [Read]}
---
apiVersion: strata.io/v1alpha1
kind: LogUser
metadata: {name: bob, namespace: $NS}
spec:
  cluster: $LC
  authentication: {type: tls}
  authorization:
    type: simple
    acls:
      - {resource: {type: topic, name: secure-, patternType: prefix}, operations: [Read, Describe]}
      - {resource: {type: group, name: e2e-, patternType: prefix}, operations: [Read]}
YAML
lu_ready() { [ "$(k get loguser "$1" -n $NS -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]; }
wait_until "LogUser alice Ready" 120 lu_ready alice
wait_until "LogUser bob Ready" 120 lu_ready bob
check "status: alice's principal and Secret" "$(k get loguser alice -n $NS -o jsonpath='{.status.username} {.status.secret}')" "User:alice alice"
check "LogCluster status: how clients reach the scram listener" \
  "$(k get logcluster $LC -n $NS -o jsonpath='{.status.listeners[1].bootstrapServers} {.status.listeners[1].securityProtocol} {.status.listeners[1].saslMechanism} {.status.listeners[1].caCertificateSecret}')" \
  "$LC-bootstrap.$NS.svc:9094 SASL_SSL SCRAM-SHA-512 $LC-cluster-ca-cert"
secret() { k get secret "$1" -n $NS -o jsonpath="{.data.${2//./\\.}}" | base64 -d; }
SEC=$STATE/security; mkdir -p "$SEC"
secret $LC-cluster-ca-cert ca.crt > "$SEC/ca.crt"
secret bob user.crt > "$SEC/bob.crt"; secret bob user.key > "$SEC/bob.key"
# Clients reach pod IPs, which the broker certificates do not name: the chain to the cluster CA is checked.
tls_conf="ssl.ca.location=$SEC/ca.crt
ssl.endpoint.identification.algorithm=none"
printf '%s\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=alice\nsasl.password=%s\n' "$tls_conf" \
  "$(secret alice password)" > "$SEC/alice.properties"
printf '%s\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=alice\nsasl.password=wrong\n' "$tls_conf" \
  > "$SEC/alice-wrong.properties"
printf '%s\nsecurity.protocol=SSL\nssl.certificate.location=%s\nssl.key.location=%s\n' "$tls_conf" "$SEC/bob.crt" "$SEC/bob.key" \
  > "$SEC/bob.properties"
check_match "the Secret's sasl.jaas.config names alice" "$(secret alice sasl.jaas.config)" 'ScramLoginModule required username="alice" password="[A-Za-z0-9]{32}";'
ip0=$(k get pod "$LC-0" -n $NS -o jsonpath='{.status.podIP}')
as() { KAFKA_CONFIG="$SEC/$1.properties" "$VENV/bin/python" "$E2E_DIR/kafka_check.py" "$2" try "${@:3}"; }
# The credential and the ACLs reach every broker through the metadata log: the first answers may predate them.
wait_until "alice (SCRAM-SHA-512 over TLS) writes to secure-a" 60 equals 1 as alice "$ip0:9094" produce secure-a
check "alice may not write to secure-b" "$(as alice "$ip0:9094" produce secure-b)" TOPIC_AUTHORIZATION_FAILED
check "alice may not read secure-a" "$(as alice "$ip0:9094" consume secure-a)" TOPIC_AUTHORIZATION_FAILED
check "a wrong password is refused" "$(as alice-wrong "$ip0:9094" produce secure-a)" _AUTHENTICATION
check "bob (client certificate) reads alice's record" "$(as bob "$ip0:9095" consume secure-a)" 1
check "bob may not write" "$(as bob "$ip0:9095" produce secure-a)" TOPIC_AUTHORIZATION_FAILED
k delete loguser alice -n $NS --wait=true --timeout=60s >/dev/null
wait_until "alice's Secret went with her (garbage-collected)" 60 equals "" k get secret alice -n $NS -o name --ignore-not-found
wait_until "alice's credential is gone from the cluster" 60 equals _AUTHENTICATION as alice "$ip0:9094" produce secure-a
# Certificate rotation without restarts: the broker certificates are re-issued (new keys, same CA) and the brokers
# serve them from the refreshed Secret volume.
served() { openssl s_client -connect "$ip0:9094" </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 2>/dev/null; }
cert_changed() { local f; f=$(served); [ -n "$f" ] && [ "$f" != "$before" ]; }
before=$(served)
uid0=$(k get pod "$LC-0" -n $NS -o jsonpath='{.metadata.uid}')
check_match "broker 0 serves a certificate" "$before" "Fingerprint="
k delete secret "$LC-broker-certs" -n $NS >/dev/null
k annotate logcluster $LC -n $NS strata.io/e2e-touch="$(date +%s)" --overwrite >/dev/null # a reconcile now
wait_until "the operator re-issued the broker certificates" 60 equals "$LC-broker-certs" k get secret "$LC-broker-certs" -n $NS -o 'jsonpath={.metadata.name}'
wait_until "broker 0 serves its new certificate" 180 cert_changed
check "broker 0 was not restarted" "$(k get pod "$LC-0" -n $NS -o jsonpath='{.metadata.uid}')" "$uid0"
check "bob still reads over mTLS (the CA did not change)" "$(as bob "$ip0:9095" consume secure-a)" 1
wl_flowing

step "14. Prometheus scrapes the broker pods by IP"
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

step "15. scale down to 2 refused: 3 controller voters and replication factor 3"
k patch logcluster $LC -n $NS --type=merge -p '{"spec":{"replicas":2}}' >/dev/null
wait_until "scale-down refused with a condition" 60 bash -c \
  "$KUBECTL get logcluster $LC -n $NS -o jsonpath='{.status.conditions[?(@.type==\"Degraded\")].reason}' | grep -q ScaleDownBlocked"
log "condition: $(lc_cond Degraded message)"
check "still 3 broker pods" "$(k get sts $LC -n $NS -o jsonpath='{.spec.replicas}')" 3
wl_flowing

step "16. stop the workload: every acknowledged record still in the topic and seen by the group"
wl_pid=$(cat "$STATE/workload.pid")
kill -TERM "$wl_pid"
wl_rc=0; wait "$wl_pid" || wl_rc=$?
rm -f "$STATE/workload.pid"
report=$(cat "$WL_DIR/report.out")
log "workload report: $report"
wl() { jpy "d['$1']" <<< "$report"; }
check_match "records acknowledged" "$(wl acked)" '^[1-9][0-9]{3,}$'
check "acknowledged records lost (not in the topic at the end)" "$(wl lost)" 0
check "acknowledged records the consumer group never got" "$(wl missed_by_group)" 0
check "non-retriable client errors (failed deliveries, fatal errors)" "$(wl non_retriable)" 0
check "records out of order within a partition" "$(wl reordered)" 0
check "every record produced got a delivery report" "$(wl unreported)" 0
check "workload exit status" "$wl_rc" 0
log "consumer duplicates (redelivered after rebalances, allowed): $(wl duplicates); transient client errors, retried by librdkafka: $(wl transient_errors)"
log "client errors by code: $(grep -o 'error: [A-Z_]*' "$WL_DIR/workload.log" | sort | uniq -c | tr -s ' ' | tr '\n' ';')"

step "17. delete the LogCluster: everything garbage-collected"
save_logs
k delete logcluster $LC -n $NS --wait=true --timeout=180s >/dev/null
wait_until "StatefulSet, Services, ConfigMap and PDB garbage-collected" 120 bash -c \
  "[ -z \"\$($KUBECTL get sts,svc,cm,pdb -n $NS -l app.kubernetes.io/instance=$LC -o name 2>/dev/null)\" ]"
wait_until "claims and local PVs removed (deleteClaim: true)" 120 bash -c \
  "[ -z \"\$($KUBECTL get pvc -n $NS -o name)\" ] && [ -z \"\$($KUBECTL get pv -o name)\" ]"

step "18. teardown"
trap - EXIT
cleanup
step "done"
printf '%s\n' "${TIMINGS[@]}" >&2
log "total $(( $(date +%s) - T0 ))s"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
