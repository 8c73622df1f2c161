#!/usr/bin/env bash
# Integration test of strata-operator against a real kube-apiserver + kube-controller-manager
# (v1.20.2, built from Debian's source package and cached) and etcd, all on 127.0.0.1.
#
# There is no kubelet or scheduler: pods stay Pending. Where the scenario needs brokers to be
# ready, this script plays the kubelet's part by writing pod status (Ready condition, pod IP,
# the tuning init container's report) through the pods/status subresource, as a kubelet would.
# Behind each "pod" IP (127.0.0.<ordinal+1>) a real strata-broker process listens, so the
# operator's admin-API calls (IncrementalAlterConfigs, Metadata) reach a real broker.
# LogTopics are checked against LogClusters of their own (one broker; three with a controller quorum
# for replication-factor changes), with the `strata` CLI.
# Not covered here (no kubelet/containers): the start script inside a container, probes,
# the tune init container on a real node; see unit tests and e2e/cluster-test.sh.
#
# Usage: e2e/apiserver-test.sh        (KEEP=1 leaves the run directory for inspection)
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

T0=$(date +%s)
prepare_e2e
(cd "$REPO_DIR" && cargo build -p strata-cli -j 2 --locked -q) # the `strata` CLI checks what LogTopics did
CLI=${CARGO_TARGET_DIR:-$REPO_DIR/target}/debug/strata
T_READY=$(date +%s)

RUN=$(mktemp -d /tmp/strata-e2e-apiserver.XXXXXX)
stop_run_on_exit "$RUN"

k() { "$KUBECTL" --kubeconfig "$RUN/kubeconfig" "$@"; }
jp() { k get "$1" "${@:3}" -o "jsonpath=$2"; }


start_operator() { # start_operator NAME: runs a replica with its own identity and metrics port
  local name=$1 port; port=$(free_port)
  KUBECONFIG=$RUN/kubeconfig POD_NAMESPACE=strata-system POD_NAME=$name RUST_LOG=info,kube=warn \
    "$OPERATOR" run --metrics-addr "127.0.0.1:$port" --lease-duration 4 --broker-timeout 2 --roll-timeout 20 \
    > "$RUN/operator-$name.log" 2>&1 &
  echo $! > "$RUN/operator-$name.pid"
  echo "$port" > "$RUN/operator-$name.port"
}
stop_operator() { stop_pid_file "$RUN/operator-$1.pid" "${2:-TERM}"; } # stop_operator NAME [SIGNAL]
operator_alive() { alive "$(cat "$RUN/operator-$1.pid")"; }
metric() { curl -s "http://127.0.0.1:$(cat "$RUN/operator-$1.port")/metrics" | awk -v m="$2" '$1 == m {print $2}'; }

CLIENT_PORT=$(free_port)
start_broker() { # as a pod of StatefulSet demo would run, with its cluster id
  start_real_broker "$RUN" "$BROKER" "$1" "$CLIENT_PORT" \
    "$(jp statefulset/demo '{.spec.template.spec.containers[0].env[?(@.name=="STRATA_CLUSTER_ID")].value}' -n e2e)"
}
stop_broker() { stop_pid_file "$RUN/broker-$1.pid"; }
dyn_applied() { jp pod/"$1" '{.metadata.annotations.strata\.io/dynamic-config-applied}' -n e2e; }
dyn_applied_both() { # both brokers carry the same applied-settings hash, different from $1
  local a b; a=$(dyn_applied demo-0); b=$(dyn_applied demo-1)
  [ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" != "$1" ]
}

cc_applied() { jp pod/"$1" '{.metadata.annotations.strata\.io/cluster-config-applied}' -n e2e; }
cc_applied_all() { # the three brokers carry the same cluster-wide settings hash, different from $1
  local a; a=$(cc_applied demo-0)
  [ -n "$a" ] && [ "$a" != "$1" ] && [ "$(cc_applied demo-1)" = "$a" ] && [ "$(cc_applied demo-2)" = "$a" ]
}
cond() { jp logcluster/"$1" "{.status.conditions[?(@.type==\"$2\")].$3}" -n e2e; }
pod_uid() { jp pod/"$1" '{.metadata.uid}' -n e2e; }
pod_revision() { jp pod/"$1" '{.metadata.labels.controller-revision-hash}' -n e2e; }
pods_named() { k get pods -n e2e -l "app.kubernetes.io/instance=$1" -o 'jsonpath={range .items[*]}{.metadata.name}{" "}{end}'; }

mark_ready() { mark_pod_ready e2e "$1"; }
all_ready() { # all_ready CLUSTER N: N pods exist and each is marked ready
  local n=0 p
  for p in $(pods_named "$1"); do
    [ "$(jp pod/"$p" '{.status.conditions[?(@.type=="Ready")].status}' -n e2e)" = True ] || mark_ready "$p"
    n=$((n + 1))
  done
  [ "$n" = "$2" ]
}

log "starting etcd + kube-apiserver + kube-controller-manager"
cp_start "$BIN_DIR" "$RUN"
T_CP=$(date +%s)

log "== CRD"
k apply -f "$REPO_DIR/crds/logclusters.strata.io.yaml" -f "$REPO_DIR/crds/logtopics.strata.io.yaml" -f "$REPO_DIR/crds/logusers.strata.io.yaml" >/dev/null
wait_until "CRD established" 30 equals True jp crd/logclusters.strata.io '{.status.conditions[?(@.type=="Established")].status}'
wait_until "LogTopic CRD established" 30 equals True jp crd/logtopics.strata.io '{.status.conditions[?(@.type=="Established")].status}'
k create namespace e2e >/dev/null
k create namespace strata-system >/dev/null

log "== schema rejects invalid resources before the operator sees them"
out=$(k apply --validate=false -f - 2>&1 <<'EOF' || true
apiVersion: strata.io/v1alpha1
kind: LogCluster
metadata: {name: broken, namespace: e2e}
spec: {replicas: 0, image: "", imagePullPolicy: Sometimes, storage: {}, retention: {cleanupPolicy: shred}, listeners: {controllerPort: 80},
  priorityClassName: "", env: [{value: x}], imagePullSecrets: [{}]}
EOF
)
check_match "schema: replicas minimum" "$out" 'spec.replicas.*greater than or equal to 1'
check_match "schema: image required non-empty" "$out" 'spec.image.*at least 1 chars'
check_match "schema: pull policy enum" "$out" 'supported values: "Always", "IfNotPresent", "Never"'
check_match "schema: storage.size required" "$out" 'spec.storage.size: Required value'
check_match "schema: cleanup policy enum (what the broker accepts)" "$out" 'cleanupPolicy: Unsupported value: "shred": supported values: "delete"([^,]|$)'
check_match "schema: priorityClassName non-empty" "$out" 'spec.priorityClassName.*at least 1 chars'
check_match "schema: env name required" "$out" 'spec.env(\[0\])?.name: Required value'
check_match "schema: imagePullSecrets name required" "$out" 'spec.imagePullSecrets(\[0\])?.name: Required value'
check_match "schema: controller port range" "$out" 'spec.listeners.controllerPort.*greater than or equal to 1024'
out=$(k apply --validate=false -f - 2>&1 <<'EOF' || true
apiVersion: strata.io/v1alpha1
kind: LogCluster
metadata: {name: broken, namespace: e2e}
spec: {image: x, storage: {size: ten gigs, local: [{node: n, path: /d, capacity: 1Gb}]}, serviceAccountName: Brokers_SA,
  listeners: {advertise: Explicit, advertisedHosts: [b example]}}
EOF
)
check_match "schema: storage.size is a quantity" "$out" 'spec.storage.size in body should match'
check_match "schema: local capacity is a quantity" "$out" 'spec.storage.local(\[0\])?.capacity in body should match'
check_match "schema: serviceAccountName is a DNS subdomain" "$out" 'spec.serviceAccountName in body should match'
check_match "schema: advertised hosts are host names" "$out" 'spec.listeners.advertisedHosts(\[0\])? in body should match'
check "rejected resource was not stored" "$(k get logclusters -n e2e -o name)" ""

log "== operator start, leader election"
start_operator op-a
wait_until "operator op-a leads" 20 grep -q "acquired leadership" "$RUN/operator-op-a.log"
start_operator op-b
wait_until "operator op-b stands by" 20 grep -q "standing by" "$RUN/operator-op-b.log"
check "lease holder" "$(jp lease/strata-operator '{.spec.holderIdentity}' -n strata-system)" "op-a"

log "== apply a LogCluster"
sed "s/@CLIENT_PORT@/$CLIENT_PORT/" "$E2E_DIR/testdata/apiserver-cluster.yaml" | k apply -f - >/dev/null
wait_until "StatefulSet created" 30 k get statefulset demo -n e2e
wait_until "status observed generation 1" 30 equals 1 jp logcluster/demo '{.status.observedGeneration}' -n e2e
check "finalizer on the LogCluster" "$(jp logcluster/demo '{.metadata.finalizers[*]}' -n e2e)" "strata.io/cleanup"
for obj in statefulset/demo service/demo-headless service/demo-bootstrap configmap/demo-config poddisruptionbudget/demo; do
  check "$obj owned by the LogCluster" \
    "$(jp "$obj" '{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}/{.metadata.ownerReferences[0].controller}' -n e2e)" \
    "LogCluster/demo/true"
  check "$obj managed by strata-operator (server-side apply)" \
    "$(jp "$obj" '{.metadata.managedFields[?(@.operation=="Apply")].manager}' -n e2e)" "strata-operator"
done
check "sts replicas" "$(jp statefulset/demo '{.spec.replicas}' -n e2e)" "2"
check "sts serviceName" "$(jp statefulset/demo '{.spec.serviceName}' -n e2e)" "demo-headless"
check "sts OnDelete updates" "$(jp statefulset/demo '{.spec.updateStrategy.type}' -n e2e)" "OnDelete"
check "sts parallel pods" "$(jp statefulset/demo '{.spec.podManagementPolicy}' -n e2e)" "Parallel"
check "sts claim class" "$(jp statefulset/demo '{.spec.volumeClaimTemplates[0].spec.storageClassName}' -n e2e)" "strata-local-e2e-demo"
check "sts claim size" "$(jp statefulset/demo '{.spec.volumeClaimTemplates[0].spec.resources.requests.storage}' -n e2e)" "1Gi"
check "broker readiness probe" "$(jp statefulset/demo '{.spec.template.spec.containers[0].readinessProbe.httpGet.path}' -n e2e)" "/readyz"
check "broker liveness probe" "$(jp statefulset/demo '{.spec.template.spec.containers[0].livenessProbe.httpGet.path}' -n e2e)" "/healthz"
check "broker read-only root fs" "$(jp statefulset/demo '{.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem}' -n e2e)" "true"
check "broker non-root" "$(jp statefulset/demo '{.spec.template.spec.securityContext.runAsNonRoot}' -n e2e)" "true"
check "advertise pod DNS" "$(jp statefulset/demo '{.spec.template.spec.containers[0].env[?(@.name=="STRATA_ADVERTISE")].value}' -n e2e)" "pod-dns"
check "controller port for the start script" "$(jp statefulset/demo '{.spec.template.spec.containers[0].env[?(@.name=="STRATA_CONTROLLER_PORT")].value}' -n e2e)" "9093"
check "container ports" "$(jp statefulset/demo '{range .spec.template.spec.containers[0].ports[*]}{.name}={.containerPort} {end}' -n e2e)" \
  "plaintext=$CLIENT_PORT metrics=9644 controller=9093 "
check "voter count recorded on the StatefulSet (min(3, replicas) at creation)" \
  "$(jp statefulset/demo '{.metadata.annotations.strata\.io/controller-voters}' -n e2e)" "2"
check "tune init container" "$(jp statefulset/demo '{.spec.template.spec.initContainers[0].command[0]} {.spec.template.spec.initContainers[0].command[3:]}' -n e2e)" \
  "/bin/sh tune --vm-swappiness 1 --vm-max-map-count 262144"
check "tune container privileged" "$(jp statefulset/demo '{.spec.template.spec.initContainers[0].securityContext.privileged}' -n e2e)" "true"
check "grace period" "$(jp statefulset/demo '{.spec.template.spec.terminationGracePeriodSeconds}' -n e2e)" "60"
HASH1=$(jp statefulset/demo '{.spec.template.metadata.annotations.strata\.io/config-hash}' -n e2e)
check_match "config hash annotation" "$HASH1" '^[0-9a-f]{16}$'
check "headless service" "$(jp service/demo-headless '{.spec.clusterIP} {.spec.publishNotReadyAddresses} {.spec.ports[*].port}' -n e2e)" "None true $CLIENT_PORT 9644 9093"
check "bootstrap service" "$(jp service/demo-bootstrap '{.spec.type} {.spec.ports[*].port}' -n e2e)" "ClusterIP $CLIENT_PORT"
props=$(jp configmap/demo-config '{.data.server\.properties}' -n e2e)
check_match "properties: retention" "$props" $'log.retention.ms=3600000\n'
VOTERS="0@demo-0.demo-headless.e2e.svc:9093,1@demo-1.demo-headless.e2e.svc:9093" # pod DNS names, controller port
check "properties: controller quorum voters" "$(sed -n 's/^controller\.quorum\.voters=//p' <<<"$props")" "$VOTERS"
check "properties: controller listener name" "$(sed -n 's/^controller\.listener\.names=//p' <<<"$props")" "CONTROLLER"
check "properties: listeners and roles are per pod (start script), cluster.brokers is gone" \
  "$(grep -c '^listeners=\|^process\.roles=\|^cluster\.brokers=' <<<"$props" || true)" "0"
script=$(jp configmap/demo-config '{.data.start\.sh}' -n e2e)
check_match "start script in ConfigMap" "$script" 'exec strata-broker --config'
check_match "start script sets the roles per pod" "$script" 'echo "process.roles=\$roles"'
check "PDB (policy/v1beta1 on 1.20)" "$(k get poddisruptionbudgets.v1beta1.policy demo -n e2e -o 'jsonpath={.spec.maxUnavailable}')" "1"
check "StorageClass" "$(jp storageclass/strata-local-e2e-demo '{.provisioner} {.volumeBindingMode} {.reclaimPolicy}')" \
  "kubernetes.io/no-provisioner WaitForFirstConsumer Retain"
check "local PVs" "$(k get pv -l app.kubernetes.io/instance=demo,strata.io/cluster-namespace=e2e -o 'jsonpath={range .items[*]}{.metadata.name}={.spec.local.path}@{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}/{.spec.capacity.storage} {end}')" \
  "strata-e2e-demo-0=/mnt/strata/disk0@node-a/1Gi strata-e2e-demo-1=/mnt/strata/disk0@node-b/2Gi "
wait_until "controller manager created 2 pods" 30 equals "demo-0 demo-1 " pods_named demo
wait_until "status lists 2 brokers" 30 equals "0 1" jp logcluster/demo '{.status.brokers[*].id}' -n e2e
check "Ready=False while pods are pending" "$(cond demo Ready status)" "False"
check "Progressing while pods are pending" "$(cond demo Progressing reason)" "WaitingForBrokers"
check "not Degraded" "$(cond demo Degraded status)" "False"
check "bootstrap servers" "$(jp logcluster/demo '{.status.bootstrapServers}' -n e2e)" "demo-bootstrap.e2e.svc:$CLIENT_PORT"
check_match "Created event" "$(k get events -n e2e --field-selector involvedObject.name=demo -o 'jsonpath={.items[*].reason}')" 'Created'

log "== brokers become ready (kubelet role played by the test, real brokers behind the pod IPs)"
for ord in 0 1 2; do start_broker $ord; done
wait_until "both pods marked ready" 20 all_ready demo 2
wait_until "Ready=True" 30 equals True cond demo Ready status
check "readyReplicas" "$(jp logcluster/demo '{.status.readyReplicas}' -n e2e)" "2"
check "Progressing=False" "$(cond demo Progressing status)" "False"
wait_until "dynamic settings applied to both brokers via the admin API" 30 dyn_applied_both ""
check_match "same settings on both" "$(dyn_applied demo-0) $(dyn_applied demo-1)" '^([0-9a-f]{16}) \1$'
check_match "ConfigApplied event" "$(k get events -n e2e -o 'jsonpath={.items[*].reason}')" 'ConfigApplied'
wait_until "replication defaults for 2 brokers applied cluster-wide" 30 bash -c "'$KUBECTL' --kubeconfig '$RUN/kubeconfig' get events -n e2e -o 'jsonpath={.items[?(@.reason==\"ClusterConfigApplied\")].message}' | grep -q 'default.replication.factor=2 through brokers'"
DYN1=$(dyn_applied demo-0)
check "status: controller voters" "$(jp logcluster/demo '{.status.controllerVoters[*]}' -n e2e)" "0 1"
check "PodDNS: voters rendered, never pushed" \
  "$(jp pod/demo-0 '{.metadata.annotations.strata\.io/controller-quorum-voters-applied}' -n e2e)" ""
check "tuning values in status" "$(jp logcluster/demo '{.status.brokers[0].tuning.vm\.max_map_count} {.status.brokers[1].tuning.vm\.swappiness}' -n e2e)" "262144 1"
check "printer columns" "$(k get logcluster demo -n e2e --no-headers | awk '{print $1, $2, $3, $4}')" "demo 2 2 demo-bootstrap.e2e.svc:$CLIENT_PORT"

log "objects created for LogCluster e2e/demo and the status it reached:"
k get logcluster,statefulset,service,configmap,poddisruptionbudget,pod,persistentvolumeclaim -n e2e -l 'app.kubernetes.io/instance=demo' >&2 || true
k get storageclass,persistentvolume -l 'app.kubernetes.io/instance=demo' >&2 || true
k get logcluster demo -n e2e -o yaml | sed -n '/^status:/,$p' >&2

log "== retention change: ConfigMap updated, pod template and pods untouched"
UID0=$(pod_uid demo-0); UID1=$(pod_uid demo-1); STS_GEN=$(jp statefulset/demo '{.metadata.generation}' -n e2e)
k patch logcluster demo -n e2e --type=merge -p '{"spec":{"retention":{"ms":7200000,"bytes":1073741824}}}' >/dev/null
wait_until "new retention in ConfigMap" 30 bash -c "'$KUBECTL' --kubeconfig '$RUN/kubeconfig' get cm demo-config -n e2e -o 'jsonpath={.data.server\.properties}' | grep -q 'log.retention.ms=7200000'"
wait_until "status caught up with generation 2" 30 equals 2 jp logcluster/demo '{.status.observedGeneration}' -n e2e
check "StatefulSet generation unchanged" "$(jp statefulset/demo '{.metadata.generation}' -n e2e)" "$STS_GEN"
check "config hash unchanged" "$(jp statefulset/demo '{.spec.template.metadata.annotations.strata\.io/config-hash}' -n e2e)" "$HASH1"
check "pods not restarted" "$(pod_uid demo-0) $(pod_uid demo-1)" "$UID0 $UID1"
wait_until "new retention applied live to both brokers" 30 dyn_applied_both "$DYN1"
check "still not restarted after the live change" "$(pod_uid demo-0) $(pod_uid demo-1)" "$UID0 $UID1"
check "Degraded=False (brokers accepted the change)" "$(cond demo Degraded status)" "False"

log "== restart-requiring change: one broker at a time"
REV1=$(pod_revision demo-0)
k patch logcluster demo -n e2e --type=merge -p '{"spec":{"config":{"num.partitions":"8"}}}' >/dev/null
wait_until "config hash changed" 30 bash -c "[ \"\$('$KUBECTL' --kubeconfig '$RUN/kubeconfig' get sts demo -n e2e -o 'jsonpath={.spec.template.metadata.annotations.strata\.io/config-hash}')\" != '$HASH1' ]"
wait_until "highest broker restarted first" 30 bash -c "[ \"\$('$KUBECTL' --kubeconfig '$RUN/kubeconfig' get pod demo-1 -n e2e -o 'jsonpath={.metadata.uid}')\" != '$UID1' ]"
sleep 3 # several reconciles happen here; broker 0 must stay up while broker 1 is not ready
check "broker 0 kept while broker 1 is not ready" "$(pod_uid demo-0)" "$UID0"
check "Progressing: rolling restart" "$(cond demo Progressing reason)" "RollingRestart"
check_match "RestartingBroker event" "$(k get events -n e2e -o 'jsonpath={.items[*].message}')" 'restarting demo-1'
# The restarted broker must be back in service before the next goes: while demo-1 stays not ready
# the roll waits, and past --roll-timeout it stops and says why.
wait_until "Degraded: RollStuck while restarted broker 1 stays not ready" 40 equals RollStuck cond demo Degraded reason
check_match "RollStuck says which broker and why" "$(cond demo Degraded message)" \
  'rolling restart stopped: broker 1 is not back in service within 20s of its restart: broker 1 is not ready'
check "broker 0 not restarted while broker 1 is not back" "$(pod_uid demo-0)" "$UID0"
check_match "RollStuck warning event" "$(k get events -n e2e -o 'jsonpath={.items[?(@.type=="Warning")].reason}')" 'RollStuck'
mark_ready demo-1
wait_until "broker 0 restarted after broker 1 was back" 30 bash -c "[ \"\$('$KUBECTL' --kubeconfig '$RUN/kubeconfig' get pod demo-0 -n e2e -o 'jsonpath={.metadata.uid}')\" != '$UID0' ]"
wait_until "both ready again" 20 all_ready demo 2
wait_until "Ready=True after the restart" 30 equals True cond demo Ready status
wait_until "Degraded cleared after the roll" 30 equals False cond demo Degraded status
check "pods run the new revision" "$(pod_revision demo-0) $(pod_revision demo-1)" \
  "$(jp statefulset/demo '{.status.updateRevision} {.status.updateRevision}' -n e2e)"
[ "$(pod_revision demo-0)" != "$REV1" ] && check "revision changed" yes yes || check "revision changed" no yes

log "== pause-reconciliation: a spec change waits until the annotation is removed"
k annotate logcluster demo -n e2e strata.io/pause-reconciliation=true >/dev/null
wait_until "ReconciliationPaused=True" 30 equals True cond demo ReconciliationPaused status
GEN_PAUSED=$(jp logcluster/demo '{.status.observedGeneration}' -n e2e)
k patch logcluster demo -n e2e --type=merge -p '{"spec":{"retention":{"ms":5400000}}}' >/dev/null
sleep 4 # several reconciles would have happened by now
check "paused: ConfigMap keeps the old retention" \
  "$(jp configmap/demo-config '{.data.server\.properties}' -n e2e | grep -c 'log.retention.ms=5400000' || true)" "0"
check "paused: observedGeneration not advanced" "$(jp logcluster/demo '{.status.observedGeneration}' -n e2e)" "$GEN_PAUSED"
check_match "paused: message names the annotation" "$(cond demo ReconciliationPaused message)" 'strata.io/pause-reconciliation'
check_match "ReconciliationPaused event" "$(k get events -n e2e -o 'jsonpath={.items[*].reason}')" 'ReconciliationPaused'
k annotate logcluster demo -n e2e strata.io/pause-reconciliation- >/dev/null
wait_until "resumed: the change made while paused is applied" 30 bash -c "'$KUBECTL' --kubeconfig '$RUN/kubeconfig' get cm demo-config -n e2e -o 'jsonpath={.data.server\.properties}' | grep -q 'log.retention.ms=5400000'"
wait_until "resumed: ReconciliationPaused condition gone" 30 equals "" cond demo ReconciliationPaused status
wait_until "resumed: observedGeneration advanced" 30 bash -c "[ \"\$('$KUBECTL' --kubeconfig '$RUN/kubeconfig' get logcluster demo -n e2e -o 'jsonpath={.status.observedGeneration}')\" -gt $GEN_PAUSED ]"

log "== manual rolling update of the cluster: acts once, one broker at a time"
UID0=$(pod_uid demo-0); UID1=$(pod_uid demo-1)
k annotate logcluster demo -n e2e strata.io/manual-rolling-update=true >/dev/null
wait_until "annotation removed once acted on" 30 equals "" jp logcluster/demo '{.metadata.annotations.strata\.io/manual-rolling-update}' -n e2e
TOKEN=$(jp statefulset/demo '{.spec.template.metadata.annotations.strata\.io/restart-token}' -n e2e)
check_match "restart token on the pod template" "$TOKEN" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T'
wait_until "status shows the manual rolling update" 30 equals "$TOKEN" jp logcluster/demo '{.status.lastManualRollingUpdate}' -n e2e
check_match "ManualRollingUpdate event" "$(k get events -n e2e -o 'jsonpath={.items[*].reason}')" 'ManualRollingUpdate'
wait_until "manual roll: broker 1 restarted first" 30 bash -c "[ \"\$('$KUBECTL' --kubeconfig '$RUN/kubeconfig' get pod demo-1 -n e2e -o 'jsonpath={.metadata.uid}')\" != '$UID1' ]"
sleep 2
check "manual roll: broker 0 kept while broker 1 is not ready" "$(pod_uid demo-0)" "$UID0"
mark_ready demo-1
wait_until "manual roll: broker 0 restarted next" 30 bash -c "[ \"\$('$KUBECTL' --kubeconfig '$RUN/kubeconfig' get pod demo-0 -n e2e -o 'jsonpath={.metadata.uid}')\" != '$UID0' ]"
wait_until "manual roll: both ready again" 20 all_ready demo 2
wait_until "manual roll: Ready=True" 30 equals True cond demo Ready status
UID0=$(pod_uid demo-0); UID1=$(pod_uid demo-1)
sleep 3
check "manual roll acted once (no second roll)" "$(pod_uid demo-0) $(pod_uid demo-1) $(jp statefulset/demo '{.spec.template.metadata.annotations.strata\.io/restart-token}' -n e2e)" "$UID0 $UID1 $TOKEN"

log "== manual rolling update of one pod"
k annotate pod demo-0 -n e2e strata.io/manual-rolling-update=true >/dev/null
wait_until "annotated broker 0 restarted" 30 bash -c "[ \"\$('$KUBECTL' --kubeconfig '$RUN/kubeconfig' get pod demo-0 -n e2e -o 'jsonpath={.metadata.uid}')\" != '$UID0' ]"
check "the new pod has no annotation (acts once)" "$(jp pod/demo-0 '{.metadata.annotations.strata\.io/manual-rolling-update}' -n e2e)" ""
check "broker 1 untouched" "$(pod_uid demo-1)" "$UID1"
wait_until "broker 0 ready again" 20 all_ready demo 2
wait_until "Ready=True after the pod's roll" 30 equals True cond demo Ready status

log "== operator-level validation: Degraded, objects untouched, operator keeps running"
k patch logcluster demo -n e2e --type=merge -p '{"spec":{"replicas":3}}' >/dev/null
wait_until "Degraded: InvalidSpec" 30 equals InvalidSpec cond demo Degraded reason
check_match "message explains" "$(cond demo Degraded message)" 'storage.local lists 2 volumes but replicas is 3'
check "StatefulSet left at 2" "$(jp statefulset/demo '{.spec.replicas}' -n e2e)" "2"
check_match "InvalidSpec warning event" "$(k get events -n e2e -o 'jsonpath={.items[?(@.type=="Warning")].reason}')" 'InvalidSpec'
k patch logcluster demo -n e2e --type=merge -p '{"spec":{"config":{"log.flush.everything":"yes"}}}' >/dev/null
wait_until "unknown config key reported" 30 bash -c "'$KUBECTL' --kubeconfig '$RUN/kubeconfig' get logcluster demo -n e2e -o 'jsonpath={.status.conditions[?(@.type==\"Degraded\")].message}' | grep -q 'log.flush.everything'"
sleep 2
if operator_alive op-a; then check "operator still running" yes yes; else check "operator still running" no yes; fi

log "== scale up (with a third local volume)"
CC1=$(cc_applied demo-0)
HASH_BEFORE_SCALE=$(jp statefulset/demo '{.spec.template.metadata.annotations.strata\.io/config-hash}' -n e2e)
k patch logcluster demo -n e2e --type=json -p '[
  {"op": "remove", "path": "/spec/config/log.flush.everything"},
  {"op": "add", "path": "/spec/storage/local/-", "value": {"node": "node-c", "path": "/mnt/strata/disk0"}}]' >/dev/null
wait_until "StatefulSet scaled to 3" 30 equals 3 jp statefulset/demo '{.spec.replicas}' -n e2e
wait_until "Degraded cleared" 30 equals False cond demo Degraded status
wait_until "third PV" 30 equals 3 bash -c "'$KUBECTL' --kubeconfig '$RUN/kubeconfig' get pv -l app.kubernetes.io/instance=demo -o name | wc -l"
wait_until "three ready brokers" 30 all_ready demo 3
wait_until "Ready with 3" 30 equals 3 jp logcluster/demo '{.status.readyReplicas}' -n e2e
check_match "ScalingUp event" "$(k get events -n e2e -o 'jsonpath={.items[*].reason}')" 'ScalingUp'
check "scale-up keeps the voters" \
  "$(jp statefulset/demo '{.metadata.annotations.strata\.io/controller-voters}' -n e2e) $(jp logcluster/demo '{.status.controllerVoters[*]}' -n e2e)" "2 0 1"
wait_until "new replication defaults (3 brokers) applied cluster-wide through all three" 30 cc_applied_all "$CC1"
check "scale-up changes no restart-requiring setting (no roll)" \
  "$(jp statefulset/demo '{.spec.template.metadata.annotations.strata\.io/config-hash}' -n e2e)" "$HASH_BEFORE_SCALE"
check "offsets topic replication fixed at creation (2 voters)" \
  "$(jp configmap/demo-config '{.data.server\.properties}' -n e2e | sed -n 's/^offsets\.topic\.replication\.factor=//p')" "2"
check "voters unchanged in the properties" \
  "$(jp configmap/demo-config '{.data.server\.properties}' -n e2e | sed -n 's/^controller\.quorum\.voters=//p')" "$VOTERS"

log "== restart the operator mid-way: standby takes over, converges, no duplicates"
stop_operator op-a TERM
wait_until "op-b took over" 20 grep -q "acquired leadership" "$RUN/operator-op-b.log"
check "lease holder now op-b" "$(jp lease/strata-operator '{.spec.holderIdentity}' -n strata-system)" "op-b"
check "op-b leader metric" "$(metric op-b strata_operator_leader)" "1"
k patch logcluster demo -n e2e --type=merge -p '{"spec":{"retention":{"ms":60000}}}' >/dev/null
stop_operator op-b KILL # crash: no lease release, the next replica must wait for expiry
start_operator op-c
wait_until "op-c leads after the lease expired" 30 grep -q "acquired leadership" "$RUN/operator-op-c.log"
wait_until "op-c applied the change made during the crash" 30 bash -c "'$KUBECTL' --kubeconfig '$RUN/kubeconfig' get cm demo-config -n e2e -o 'jsonpath={.data.server\.properties}' | grep -q 'log.retention.ms=60000'"
check "one StatefulSet" "$(k get statefulsets -n e2e -o name | wc -l)" "1"
check "two Services" "$(k get services -n e2e -o name | wc -l)" "2"
check "one broker ConfigMap" "$(k get configmaps -n e2e -l app.kubernetes.io/instance=demo -o name | wc -l)" "1"
check "one PDB" "$(k get poddisruptionbudgets -n e2e -o name | wc -l)" "1"
check "three PVs" "$(k get pv -o name | wc -l)" "3"
check_match "reconcile metrics" "$(metric op-c 'strata_operator_reconciliations_total{result="ok"}')" '^[1-9][0-9]*$'

log "== scale down: refused while partition placement cannot be verified"
for ord in 0 1 2; do stop_broker $ord; done
k patch logcluster demo -n e2e --type=merge -p '{"spec":{"replicas":2}}' >/dev/null
wait_until "ScaleDownBlocked" 30 equals ScaleDownBlocked cond demo Degraded reason
check_match "blocked message" "$(cond demo Degraded message)" 'cannot verify that brokers 2 host no partitions.*(refused|Connection).*strata.io/force-scale-down'
check "StatefulSet kept at 3" "$(jp statefulset/demo '{.spec.replicas}' -n e2e)" "3"
check_match "ScaleDownBlocked event" "$(k get events -n e2e -o 'jsonpath={.items[?(@.type=="Warning")].reason}')" 'ScaleDownBlocked'
log "== brokers back: metadata shows broker 2 hosts nothing, scale-down proceeds"
for ord in 0 1 2; do start_broker $ord; done
k annotate logcluster demo -n e2e e2e.strata.io/poke=1 >/dev/null # any change triggers a reconcile
wait_until "StatefulSet scaled to 2" 30 equals 2 jp statefulset/demo '{.spec.replicas}' -n e2e
check_match "ScalingDown event" "$(k get events -n e2e -o 'jsonpath={.items[*].reason}')" 'ScalingDown'
wait_until "broker 2 pod gone" 30 equals "demo-0 demo-1 " pods_named demo
wait_until "claim of broker 2 deleted (deleteClaim)" 30 equals "data-demo-0 data-demo-1 " \
  k get pvc -n e2e -o 'jsonpath={range .items[*]}{.metadata.name}{" "}{end}'
wait_until "Degraded cleared after scale-down" 30 equals False cond demo Degraded status
# The brokers here predate the controller quorum: they offer no UnregisterBroker, which counts as
# done (nothing registered); a quorum broker answers it (or BROKER_ID_NOT_REGISTERED).
wait_until "removed broker 2 unregistered" 30 bash -c "'$KUBECTL' --kubeconfig '$RUN/kubeconfig' get events -n e2e -o 'jsonpath={.items[?(@.reason==\"BrokersUnregistered\")].message}' | grep -q 'unregistered removed brokers 2'"
wait_until "nothing left to unregister (status)" 30 equals "" jp logcluster/demo '{.status.brokersToUnregister[*]}' -n e2e
check "nothing left to unregister (StatefulSet)" "$(jp statefulset/demo '{.metadata.annotations.strata\.io/brokers-to-unregister}' -n e2e)" ""

log "== scale-down below the voters: refused, even when forced"
k annotate logcluster demo -n e2e strata.io/force-scale-down=true >/dev/null
k patch logcluster demo -n e2e --type=merge -p '{"spec":{"replicas":1}}' >/dev/null
wait_until "ScaleDownBlocked for a voter" 30 equals ScaleDownBlocked cond demo Degraded reason
check_match "voter message" "$(cond demo Degraded message)" 'broker 1 is a controller voter.*cannot go below 2'
sleep 2
check "StatefulSet kept at 2" "$(jp statefulset/demo '{.spec.replicas}' -n e2e)" "2"
k annotate logcluster demo -n e2e strata.io/force-scale-down- >/dev/null
k patch logcluster demo -n e2e --type=merge -p '{"spec":{"replicas":2}}' >/dev/null
wait_until "Degraded cleared with replicas back at 2" 30 equals False cond demo Degraded status

log "== a second cluster that keeps its data; ServiceMonitor only where the CRD exists; pod extras; expandable storage"
k apply -f - >/dev/null <<'EOF'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: e2e-expandable}
provisioner: e2e.strata.io/none
allowVolumeExpansion: true
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: e2e-brokers}
value: 1000
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: e2e-broker, namespace: e2e}
---
apiVersion: strata.io/v1alpha1
kind: LogCluster
metadata: {name: keep, namespace: e2e}
spec:
  replicas: 1
  image: strata/broker:e2e
  storage: {size: 1Gi, storageClassName: e2e-expandable}
  podDisruptionBudget: {enabled: false}
  metrics: {serviceMonitor: true}
  listeners: {advertise: PodIP}
  priorityClassName: e2e-brokers
  serviceAccountName: e2e-broker
  imagePullSecrets: [{name: e2e-registry}]
  env: [{name: TZ, value: UTC}, {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]
  config: {num.partitions: 4, auto.create.topics.enable: false, broker.rack: zone-a}
EOF
wait_until "keep: StatefulSet" 30 k get statefulset keep -n e2e
check "keep: one voter" "$(jp statefulset/keep '{.metadata.annotations.strata\.io/controller-voters}' -n e2e)" "1"
check "keep: advertise pod IP" "$(jp statefulset/keep '{.spec.template.spec.containers[0].env[?(@.name=="STRATA_ADVERTISE")].value}' -n e2e)" "pod-ip"
check "keep: PodIP voters rendered with DNS placeholders until pushed" \
  "$(jp configmap/keep-config '{.data.server\.properties}' -n e2e | sed -n 's/^controller\.quorum\.voters=//p')" "0@keep-0.keep-headless.e2e.svc:9093"
wait_until "keep: claim created" 30 k get pvc data-keep-0 -n e2e
check "keep: no PDB" "$(k get poddisruptionbudgets -n e2e -o name | wc -l)" "1"
wait_until "keep: Degraded, ServiceMonitor CRD missing" 30 equals MissingAPI cond keep Degraded reason
k apply -f "$E2E_DIR/testdata/servicemonitor-crd.yaml" >/dev/null
wait_until "ServiceMonitor CRD established" 30 equals True jp crd/servicemonitors.monitoring.coreos.com '{.status.conditions[?(@.type=="Established")].status}'
k annotate logcluster keep -n e2e e2e.strata.io/poke=1 >/dev/null
wait_until "keep: ServiceMonitor created" 30 k get servicemonitors.monitoring.coreos.com keep -n e2e
check "ServiceMonitor owned and selecting the headless Service" \
  "$(jp servicemonitors.monitoring.coreos.com/keep '{.metadata.ownerReferences[0].name} {.spec.selector.matchLabels.strata\.io/service} {.spec.endpoints[0].port}' -n e2e)" "keep headless metrics"
wait_until "keep: Degraded cleared" 30 equals False cond keep Degraded status
check "keep: pod extras" "$(jp statefulset/keep '{.spec.template.spec.priorityClassName} {.spec.template.spec.serviceAccountName} {.spec.template.spec.imagePullSecrets[0].name}' -n e2e)" \
  "e2e-brokers e2e-broker e2e-registry"
check "keep: extra env after the operator's" \
  "$(jp statefulset/keep '{.spec.template.spec.containers[0].env[-2:].name} {.spec.template.spec.containers[0].env[?(@.name=="NODE")].valueFrom.fieldRef.fieldPath}' -n e2e)" "TZ NODE spec.nodeName"
check "keep: typed config values rendered as Kafka strings" \
  "$(jp configmap/keep-config '{.data.server\.properties}' -n e2e | grep -E '^(num.partitions|auto.create.topics.enable|broker.rack)=' | tr '\n' ' ')" \
  "auto.create.topics.enable=false broker.rack=zone-a num.partitions=4 "
wait_until "keep: pod created (PriorityClass and ServiceAccount admitted)" 30 k get pod keep-0 -n e2e
k patch logcluster keep -n e2e --type=merge -p '{"spec":{"env":[{"name":"STRATA_LOG_RETENTION_MS","value":"1"}]}}' >/dev/null
wait_until "keep: operator-owned env refused" 30 equals InvalidSpec cond keep Degraded reason
check_match "keep: env message" "$(cond keep Degraded message)" 'env "STRATA_LOG_RETENTION_MS" is set by the operator'
check "keep: template keeps its env" "$(jp statefulset/keep '{.spec.template.spec.containers[0].env[-1:].name}' -n e2e)" "NODE"
k patch logcluster keep -n e2e --type=json -p '[{"op": "remove", "path": "/spec/env"}]' >/dev/null

log "== storage growth: claims patched where the class allows it, templates kept, never blocking"
# No PV binder runs here: the test binds the claim as that controller would.
k patch pvc data-keep-0 -n e2e --subresource=status --type=merge -p '{"status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}}' >/dev/null
k annotate logcluster keep -n e2e e2e.strata.io/poke=2 --overwrite >/dev/null # claims are not watched
wait_until "keep: StorageResized=True at the requested size" 30 equals AtRequestedSize cond keep StorageResized reason
k patch logcluster keep -n e2e --type=merge -p '{"spec":{"storage":{"size":"2Gi"}}}' >/dev/null
wait_until "keep: claim grown to 2Gi" 30 equals 2Gi jp pvc/data-keep-0 '{.spec.resources.requests.storage}' -n e2e
check "keep: claim template unchanged (immutable)" "$(jp statefulset/keep '{.spec.volumeClaimTemplates[0].spec.resources.requests.storage}' -n e2e)" "1Gi"
wait_until "keep: Resizing until the volume is expanded" 30 equals Resizing cond keep StorageResized reason
check "keep: not Degraded by a resize" "$(cond keep Degraded status)" "False"
check_match "ResizingClaim event" "$(k get events -n e2e -o 'jsonpath={.items[*].reason}')" 'ResizingClaim'
k patch logcluster keep -n e2e --type=merge -p '{"spec":{"storage":{"size":"1Gi"}, "retention":{"ms":1234567}}}' >/dev/null
wait_until "keep: shrink refused in the status" 30 equals ShrinkNotSupported cond keep StorageResized reason
check_match "keep: shrink message" "$(cond keep StorageResized message)" 'data-keep-0 has 2Gi; volumes cannot shrink'
wait_until "keep: the rest is reconciled alongside (retention)" 30 bash -c "'$KUBECTL' --kubeconfig '$RUN/kubeconfig' get cm keep-config -n e2e -o 'jsonpath={.data.server\.properties}' | grep -q 'log.retention.ms=1234567'"
check "keep: claim still 2Gi" "$(jp pvc/data-keep-0 '{.spec.resources.requests.storage}' -n e2e)" "2Gi"
k patch logcluster keep -n e2e --type=merge -p '{"spec":{"storage":{"size":"2Gi"}}}' >/dev/null
wait_until "keep: back at the claim's size" 30 equals Resizing cond keep StorageResized reason
k patch logcluster keep -n e2e --type=merge -p '{"spec":{"metrics":{"serviceMonitor":false}}}' >/dev/null
wait_until "keep: ServiceMonitor removed when disabled" 30 equals "" k get servicemonitors.monitoring.coreos.com -n e2e -o name

log "== LogTopic: topics of a one-broker LogCluster (a real broker behind the pod IP)"
k create namespace topics >/dev/null
topics_cluster() { # topics_cluster NAME REPLICAS CLIENT_PORT: a LogCluster in namespace topics
  k apply -f - >/dev/null <<EOF
apiVersion: strata.io/v1alpha1
kind: LogCluster
metadata: {name: $1, namespace: topics}
spec:
  replicas: $2
  image: strata/broker:e2e
  storage: {size: 1Gi, deleteClaim: true}
  podDisruptionBudget: {enabled: false}
  listeners: {clientPort: $3}
EOF
}
TOPIC_PORT=$(free_port)
topics_cluster topics 1 "$TOPIC_PORT"
wait_until "topics: pod created" 30 k get pod topics-0 -n topics
start_topic_broker() { # the broker standing in for pod topics-0 (127.0.0.1, its own port and directory)
  start_real_broker "$RUN/topics" "$BROKER" 0 "$TOPIC_PORT"
  mv "$RUN/topics/broker-0.pid" "$RUN/topics-broker.pid" # where the exit trap stops it
}
start_topic_broker
mark_pod_ready topics topics-0
strata() { "$CLI" --brokers "127.0.0.1:$TOPIC_PORT" --format json "$@"; }
# topic_fact TOPIC EXPR: a Python expression over the CLI's JSON description `t` of TOPIC.
topic_fact() { strata topic describe "$1" | python3 -c "import json,sys; t=json.load(sys.stdin)[0]; c={e['name']: e for e in t['configs']}; print($2)"; }
topic_names() { strata topic list | python3 -c "import json,sys; print(' '.join(sorted(t['name'] for t in json.load(sys.stdin))))"; }
tcond() { jp logtopic/"$1" "{.status.conditions[?(@.type==\"Ready\")].$2}" -n topics; }
override() { topic_fact "$1" "c['$2']['value'] if c['$2']['source'] == 'DYNAMIC_TOPIC_CONFIG' else 'default'"; }

out=$(k apply --validate=false -f - 2>&1 <<'EOF' || true
apiVersion: strata.io/v1alpha1
kind: LogTopic
metadata: {name: broken, namespace: topics}
spec: {topicName: "bad/name", partitions: 0, replicas: 0, deletionPolicy: Shred}
EOF
)
check_match "LogTopic schema: cluster required" "$out" 'spec.cluster: Required value'
check_match "LogTopic schema: topic name pattern" "$out" 'spec.topicName.*should match'
check_match "LogTopic schema: partitions minimum" "$out" 'spec.partitions.*greater than or equal to 1'
check_match "LogTopic schema: deletion policy enum" "$out" 'supported values: "Delete", "Retain"'
check "rejected LogTopic not stored" "$(k get logtopics -n topics -o name)" ""

strata topic create client-made -p 1 >/dev/null
k apply -f - >/dev/null <<'EOF'
apiVersion: strata.io/v1alpha1
kind: LogTopic
metadata: {name: orders, namespace: topics}
spec:
  cluster: topics
  partitions: 2
  replicas: 1
  config: {retention.ms: 3600000, message.timestamp.type: LogAppendTime, preallocate: false}
EOF
wait_until "orders: Ready" 30 equals True tcond orders status
check "orders: finalizer" "$(jp logtopic/orders '{.metadata.finalizers[*]}' -n topics)" "strata.io/topic"
check "orders: status topicId is Kafka's" "$(jp logtopic/orders '{.status.topicId}' -n topics)" "$(topic_fact orders "t['id']")"
check "orders: status partitions, replicas, generation" "$(jp logtopic/orders '{.status.partitions} {.status.replicas} {.status.observedGeneration}' -n topics)" "2 1 1"
check "orders: 2 partitions in Kafka" "$(topic_fact orders "len(t['partitions'])")" "2"
check "orders: typed config values as Kafka strings" \
  "$(override orders retention.ms) $(override orders message.timestamp.type) $(override orders preallocate)" "3600000 LogAppendTime false"
check "printer columns" "$(k get logtopic orders -n topics --no-headers | awk '{print $1, $2, $3, $4, $5, $6}')" "orders topics orders 2 1 True"
strata topic alter-config orders --set segment.ms=600000 >/dev/null # an override the operator did not set

log "== LogTopic: config edited (set, changed, removed) and partitions up, live"
k patch logtopic orders -n topics --type=json -p '[
  {"op": "replace", "path": "/spec/partitions", "value": 4},
  {"op": "replace", "path": "/spec/config/retention.ms", "value": 7200000},
  {"op": "remove", "path": "/spec/config/message.timestamp.type"},
  {"op": "add", "path": "/spec/config/max.message.bytes", "value": 2097152}]' >/dev/null
wait_until "orders: generation 2 observed" 30 equals 2 jp logtopic/orders '{.status.observedGeneration}' -n topics
wait_until "orders: Ready again" 30 equals True tcond orders status
check "orders: 4 partitions in Kafka" "$(topic_fact orders "len(t['partitions'])")" "4"
check "orders: configs changed, removed key back to default" \
  "$(override orders retention.ms) $(override orders max.message.bytes) $(override orders message.timestamp.type)" "7200000 2097152 default"
check "orders: the override set with the CLI is left alone" "$(override orders segment.ms)" "600000"
check "orders: managed keys" "$(jp logtopic/orders '{.status.managedConfig[*]}' -n topics)" "max.message.bytes preallocate retention.ms"
events=$(k get events -n topics -o 'jsonpath={.items[*].reason}')
for reason in TopicCreated ConfigChanged PartitionsAdded; do check_match "orders: $reason event" "$events" "$reason"; done

log "== LogTopic: refusals, nothing applied half-way"
k patch logtopic orders -n topics --type=merge -p '{"spec":{"partitions":1,"config":{"retention.ms":1000}}}' >/dev/null
wait_until "orders: PartitionsDecrease" 30 equals PartitionsDecrease tcond orders reason
check "orders: Ready False" "$(tcond orders status)" "False"
check_match "orders: message" "$(tcond orders message)" 'has 4 partitions.*nothing was changed'
check "orders: partitions and config untouched" "$(topic_fact orders "len(t['partitions'])") $(override orders retention.ms)" "4 7200000"
k patch logtopic orders -n topics --type=merge -p '{"spec":{"partitions":4,"replicas":2}}' >/dev/null
wait_until "orders: ReplicasAboveBrokers" 30 equals ReplicasAboveBrokers tcond orders reason
check "orders: config still untouched" "$(override orders retention.ms)" "7200000"
k patch logtopic orders -n topics --type=merge -p '{"spec":{"replicas":1,"config":{"no.such.config":1}}}' >/dev/null
wait_until "orders: unknown config key refused by the broker" 30 equals InvalidConfig tcond orders reason
check_match "orders: the broker's message" "$(tcond orders message)" 'INVALID_CONFIG.*no.such.config'
check "orders: retention not changed with it" "$(override orders retention.ms)" "7200000"
events=$(k get events -n topics -o 'jsonpath={.items[?(@.type=="Warning")].reason}')
for reason in PartitionsDecrease ReplicasAboveBrokers InvalidConfig; do check_match "orders: $reason warning event" "$events" "$reason"; done
k patch logtopic orders -n topics --type=json -p '[{"op": "remove", "path": "/spec/config/no.such.config"}]' >/dev/null
wait_until "orders: Ready after the fix" 30 equals True tcond orders status
check "orders: retention applied with the fix" "$(override orders retention.ms)" "1000"
k patch logtopic orders -n topics --type=merge -p '{"spec":{"topicName":"orders2"}}' >/dev/null
wait_until "orders: renaming refused" 30 equals TopicMoved tcond orders reason
k patch logtopic orders -n topics --type=json -p '[{"op": "remove", "path": "/spec/topicName"}]' >/dev/null
wait_until "orders: Ready with its name back" 30 equals True tcond orders status
k apply -f - >/dev/null <<'EOF'
apiVersion: strata.io/v1alpha1
kind: LogTopic
metadata: {name: orders-twin, namespace: topics}
spec: {cluster: topics, topicName: orders, partitions: 1}
EOF
wait_until "orders-twin: ResourceConflict" 30 equals ResourceConflict tcond orders-twin reason
k delete logtopic orders-twin -n topics >/dev/null
check "orders survives the twin's deletion" "$(topic_fact orders "len(t['partitions'])")" "4"

log "== LogTopic: deletion (finalizer, policy, unreachable cluster)"
k apply -f - >/dev/null <<'EOF'
apiVersion: strata.io/v1alpha1
kind: LogTopic
metadata: {name: kept, namespace: topics}
spec: {cluster: topics, deletionPolicy: Retain}
EOF
wait_until "kept: Ready" 30 equals True tcond kept status
k delete logtopic kept -n topics >/dev/null
check "kept: Kafka topic retained" "$(topic_names)" "client-made kept orders"
stop_pid_file "$RUN/topics-broker.pid"
k delete logtopic orders -n topics --wait=false >/dev/null
wait_until "orders: deletion failing while the broker is down" 30 equals DeletionFailed tcond orders reason
sleep 3
check "orders: finalizer kept while unreachable" "$(jp logtopic/orders '{.metadata.finalizers[*]}' -n topics)" "strata.io/topic"
start_topic_broker
wait_until "orders: deleted once the broker is back (back-off retry)" 60 equals "" k get logtopics -n topics -o name
check "Kafka topic orders deleted; the client's topic and the retained one left alone" "$(topic_names)" "client-made kept"
k delete logcluster topics -n topics >/dev/null

log "== LogTopic: replication factor changed by reassignment (three brokers with a controller quorum)"
RF_PORT=$(free_port); RF_CTRL=$(free_port)
topics_cluster rf 3 "$RF_PORT"
wait_until "rf: three pods created" 30 equals "rf-0 rf-1 rf-2 " bash -c "'$KUBECTL' --kubeconfig '$RUN/kubeconfig' get pods -n topics -l app.kubernetes.io/instance=rf -o 'jsonpath={range .items[*]}{.metadata.name}{\" \"}{end}'"
RF_VOTERS=0@127.0.0.1:$RF_CTRL,1@127.0.0.2:$RF_CTRL,2@127.0.0.3:$RF_CTRL
for ord in 0 1 2; do # brokers standing in for pods rf-<ord>, one quorum
  dir=$RUN/rf-$ord; mkdir -p "$dir/logs"
  printf 'node.id=%s\ncluster.id=rf\ncontroller.quorum.voters=%s\nlisteners=PLAINTEXT://127.0.0.%s:%s,CONTROLLER://127.0.0.%s:%s\nlog.dirs=%s/logs\nmetrics.port=0\n' \
    "$ord" "$RF_VOTERS" $((ord + 1)) "$RF_PORT" $((ord + 1)) "$RF_CTRL" "$dir" > "$dir/server.properties"
  "$BROKER" --config "$dir/server.properties" > "$dir.log" 2>&1 &
  echo $! > "$RUN/rf-broker-$ord.pid"
  mark_pod_ready topics "rf-$ord"
done
rf() { "$CLI" --brokers "127.0.0.1:$RF_PORT" --format json "$@"; }
rf_replicas() { rf topic describe wide | python3 -c "import json,sys; print(' '.join(','.join(map(str, p['replicas'])) for p in json.load(sys.stdin)[0]['partitions']))"; }
wait_until "rf: three brokers registered" 60 equals 3 bash -c "'$CLI' --brokers 127.0.0.1:$RF_PORT --format json cluster info | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[\"brokers\"]))'"
k apply -f - >/dev/null <<'EOF'
apiVersion: strata.io/v1alpha1
kind: LogTopic
metadata: {name: wide, namespace: topics}
spec: {cluster: rf, partitions: 3, replicas: 1}
EOF
wait_until "wide: Ready with replication factor 1" 60 equals "True 1" jp logtopic/wide '{.status.conditions[0].status} {.status.replicas}' -n topics
LEADERS=$(rf_replicas)
REASONS=""
ready_with_factor() { # ready_with_factor N: Ready with N replicas; records the Ready reasons seen meanwhile
  local r; r=$(jp logtopic/wide '{.status.conditions[0].reason}:{.status.reassigningPartitions[*]}' -n topics)
  case " $REASONS " in *" $r "*) ;; *) REASONS="$REASONS $r" ;; esac
  [ "$(jp logtopic/wide '{.status.conditions[0].status} {.status.replicas}' -n topics)" = "True $1" ]
}
k patch logtopic wide -n topics --type=merge -p '{"spec":{"replicas":3}}' >/dev/null
wait_until "wide: Ready with replication factor 3" 60 ready_with_factor 3
check_match "wide: Ready False, reason Reassigning, with the partitions moving, meanwhile" "$REASONS" 'Reassigning:[0-2]'
check_match "wide: ReassignmentStarted event" "$(k get events -n topics -o 'jsonpath={.items[*].reason}')" 'ReassignmentStarted'
now=$(rf_replicas)
check "wide: three replicas per partition, each on another broker" \
  "$(tr ' ' '\n' <<<"$now" | python3 -c 'import sys; print(all(len(set(l.split(","))) == 3 for l in sys.stdin.read().split()))')" "True"
check "wide: preferred leaders kept" "$(for r in $now; do printf '%s ' "${r%%,*}"; done)" "$(for r in $LEADERS; do printf '%s ' "$r"; done)"
k patch logtopic wide -n topics --type=merge -p '{"spec":{"replicas":2}}' >/dev/null
wait_until "wide: Ready with replication factor 2" 60 ready_with_factor 2
check "wide: every broker holds two replicas" \
  "$(rf_replicas | tr ' ,' '\n\n' | sort | uniq -c | awk '{print $1}' | sort -u | tr '\n' ' ')" "2 "
k delete logtopic wide -n topics >/dev/null
check "wide: Kafka topic deleted" "$(rf topic list | python3 -c 'import json,sys; print([t["name"] for t in json.load(sys.stdin)])')" "[]"
for ord in 0 1 2; do stop_pid_file "$RUN/rf-broker-$ord.pid"; done
k delete logcluster rf -n topics >/dev/null

log "== delete: garbage collection, finalizer, claim policy"
k delete logcluster demo keep -n e2e --wait=false >/dev/null
wait_until "LogClusters gone (finalizer done)" 60 equals "" k get logclusters -n e2e -o name
wait_until "owned objects garbage-collected" 60 equals "" k get statefulsets,configmaps,poddisruptionbudgets -n e2e -l app.kubernetes.io/managed-by=strata-operator -o name
wait_until "services garbage-collected" 60 equals "" k get services -n e2e -o name
wait_until "demo: claims deleted" 60 equals "data-keep-0" k get pvc -n e2e -o 'jsonpath={.items[*].metadata.name}'
wait_until "demo: local PVs deleted" 60 equals "" k get pv -l app.kubernetes.io/instance=demo -o name
wait_until "demo: StorageClass deleted" 60 equals "" k get storageclass -l app.kubernetes.io/instance=demo -o name
check_match "VolumesRetained event for keep" "$(k get events -n e2e -o 'jsonpath={.items[*].reason}')" 'VolumesRetained'
if operator_alive op-c; then check "operator ran throughout" yes yes; else check "operator ran throughout" no yes; fi
check "no reconcile panics or crashes" "$(grep -c -i 'panicked' "$RUN"/operator-*.log | awk -F: '{s+=$2} END {print s+0}')" "0"

T_END=$(date +%s)
log "timings: tools+build $((T_READY - T0))s, control plane $((T_CP - T_READY))s, scenario $((T_END - T_CP))s, total $((T_END - T0))s"
echo "apiserver-test: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
