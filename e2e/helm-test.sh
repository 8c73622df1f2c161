#!/usr/bin/env bash
# Checks the Helm chart: helm lint and helm template for several value sets, the rendered
# manifests (and the operator's own objects for the example LogCluster) against the Kubernetes
# schemas with kubernetes-validate --strict, then helm install into a real local kube-apiserver
# and a run of the operator under the chart's ServiceAccount, proving the RBAC rules suffice
# (and are no wider than needed) for everything the operator does.
#
# Usage: e2e/helm-test.sh       (KEEP=1 leaves the run directory)
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

T0=$(date +%s)
prepare_e2e
VALIDATE=$(ensure_kubernetes_validate)/kubernetes-validate
CHART=$REPO_DIR/charts/strata-operator
RUN=$(mktemp -d /tmp/strata-e2e-helm.XXXXXX)

stop_run_on_exit "$RUN"

succeeds() { # succeeds DESCRIPTION COMMAND...: the command exits 0 (its output goes to the log on failure)
  local desc=$1 out; shift
  if out=$("$@" 2>&1); then check "$desc" ok ok; else check "$desc" "failed: $(tail -5 <<<"$out")" ok; fi
}

log "== helm lint / template / kubernetes-validate --strict"
VARIANTS=(
  "defaults|"
  "one namespace, HA|--set watchNamespace=apps --set replicaCount=2"
  "text logs, no metrics service|--set logFormat=text --set metrics.service.enabled=false --set logLevel=debug"
)
for v in "${VARIANTS[@]}"; do
  name=${v%%|*}; read -r -a args <<<"${v#*|}"
  succeeds "helm lint ($name)" "$HELM" lint --strict "$CHART" "${args[@]}"
  "$HELM" template strata "$CHART" --namespace strata-system --include-crds "${args[@]}" > "$RUN/rendered.yaml"
  for kv in 1.25.0 1.37.0; do
    succeeds "kubernetes-validate --strict $kv ($name)" "$VALIDATE" --strict --quiet -k "$kv" "$RUN/rendered.yaml"
  done
done
fails_schema() { # fails_schema DESCRIPTION EXPECTED-MESSAGE-REGEX HELM-ARGS...: values.schema.json refuses the values
  local desc=$1 want=$2 out; shift 2
  if out=$("$HELM" "$@" 2>&1); then check "$desc" "accepted" "refused"; else check_match "$desc" "$out" "$want"; fi
}
log "== values.schema.json refuses bad values"
fails_schema "replicaCount 0" "/replicaCount': minimum" template strata "$CHART" --set replicaCount=0
fails_schema "logFormat enum" "/logFormat': value must be one of 'json', 'text'" template strata "$CHART" --set logFormat=xml
fails_schema "pull policy enum" "/image/pullPolicy'" template strata "$CHART" --set image.pullPolicy=Sometimes
fails_schema "metrics port is a port number" "/metrics/port'" template strata "$CHART" --set-string metrics.port=abc
fails_schema "metrics port range" "/metrics/port'" template strata "$CHART" --set metrics.port=70000
fails_schema "misspelt key" "additional properties 'replicaCont' not allowed" template strata "$CHART" --set replicaCont=2
fails_schema "boolean switch" "/localVolumes/enabled'" template strata "$CHART" --set localVolumes.enabled=yes
fails_schema "namespace name" "/watchNamespace'" template strata "$CHART" --set watchNamespace=Bad_NS
fails_schema "helm install refuses too" "/leaseDurationSeconds'" install strata "$CHART" --dry-run=client --set leaseDurationSeconds=-1
fails_schema "roll timeout positive" "/rollTimeoutSeconds': minimum" template strata "$CHART" --set rollTimeoutSeconds=0
"$HELM" template strata "$CHART" > "$RUN/default.yaml"
check "default: the operator's roll timeout" "$(grep -c -- '- --roll-timeout=300$' "$RUN/default.yaml")" "1"
check "default: no rights to PersistentVolumes" "$(grep -c 'persistentvolumes"' "$RUN/default.yaml" || true)" "0"
check "default: StorageClasses read-only" "$(grep -A1 'resources: \["storageclasses"\]' "$RUN/default.yaml" | grep -c 'verbs: \["get"\]')" "1"
"$HELM" template strata "$CHART" --set localVolumes.enabled=true > "$RUN/local-rbac.yaml"
check "localVolumes: PersistentVolumes managed" "$(grep -A1 'resources: \["persistentvolumes"\]' "$RUN/local-rbac.yaml" | grep -c '"create", "patch", "delete"')" "1"
"$HELM" template strata "$CHART" --namespace strata-system --set watchNamespace=apps > "$RUN/ns.yaml"
check "namespaced mode: Role in the watched namespace" \
  "$(grep -A3 '^kind: Role$' "$RUN/ns.yaml" | grep -c 'namespace: apps')" "1"
check_match "NOTES tell the user what to apply" "$("$HELM" install strata "$CHART" --dry-run=client --namespace strata-system 2>&1)" 'kind: LogCluster'
succeeds "helm lint (ServiceMonitor for the operator)" "$HELM" lint --strict "$CHART" --set metrics.serviceMonitor.enabled=true
check_match "chart ServiceMonitor renders" \
  "$("$HELM" template strata "$CHART" --set metrics.serviceMonitor.enabled=true --show-only templates/servicemonitor.yaml)" 'kind: ServiceMonitor'
"$OPERATOR" render "$E2E_DIR/examples/logcluster.yaml" > "$RUN/broker-objects.yaml"
succeeds "operator's objects for the example validate (1.25)" "$VALIDATE" --strict --quiet -k 1.25.0 "$RUN/broker-objects.yaml"
succeeds "operator's objects for the example validate (1.37)" "$VALIDATE" --strict --quiet -k 1.37.0 "$RUN/broker-objects.yaml"
check "example: three controller voters by pod DNS name" \
  "$(sed -n 's/^ *controller\.quorum\.voters=//p' "$RUN/broker-objects.yaml")" \
  "0@example-0.example-headless.default.svc:9093,1@example-1.example-headless.default.svc:9093,2@example-2.example-headless.default.svc:9093"
check "example: voter count recorded on the StatefulSet" "$(grep -c 'strata.io/controller-voters: .3.$' "$RUN/broker-objects.yaml")" "1"
check "example: controller port on the pods and the headless Service" "$(grep -c 'name: controller$' "$RUN/broker-objects.yaml")" "2"
check "example: no cluster.brokers, no shared listeners" "$(grep -c 'cluster\.brokers\|^ *listeners=PLAINTEXT' "$RUN/broker-objects.yaml" || true)" "0"
cat > "$RUN/local.yaml" <<'EOF'
apiVersion: strata.io/v1alpha1
kind: LogCluster
metadata: {name: local, namespace: apps}
spec:
  replicas: 1
  image: strata/broker:0.1.0
  storage: {size: 1Gi, local: [{node: n1, path: /mnt/d}]}
  tuning: {enabled: true}
  metrics: {serviceMonitor: true}
EOF
"$OPERATOR" render "$RUN/local.yaml" > "$RUN/local-objects.yaml"
check "local storage objects rendered" "$(grep -c '^kind: PersistentVolume$\|^kind: StorageClass$' "$RUN/local-objects.yaml")" "2"
check "one-broker cluster: one voter" "$(sed -n 's/^ *controller\.quorum\.voters=//p' "$RUN/local-objects.yaml")" "0@local-0.local-headless.apps.svc:9093"
# kubernetes-validate knows no ServiceMonitor schema; check the built-in kinds.
awk 'BEGIN{RS="---\n"} !/kind: ServiceMonitor/ && NF {printf "---\n%s", $0}' "$RUN/local-objects.yaml" > "$RUN/local-builtin.yaml"
succeeds "local storage and tuning objects validate" "$VALIDATE" --strict --quiet -k 1.25.0 "$RUN/local-builtin.yaml"

log "== helm install into a real kube-apiserver"
cp_start "$BIN_DIR" "$RUN"
export KUBECONFIG=$RUN/kubeconfig
k() { "$KUBECTL" "$@"; }
jp() { k get "$1" "${@:3}" -o "jsonpath=$2"; }
succeeds "helm install (defaults: no local volumes)" "$HELM" install strata "$CHART" --namespace strata-system --create-namespace --wait=false
check "release deployed" "$("$HELM" status strata -n strata-system -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["info"]["status"])')" "deployed"
wait_until "CRD installed by the chart" 30 equals True jp crd/logclusters.strata.io '{.status.conditions[?(@.type=="Established")].status}'
wait_until "LogTopic CRD installed by the chart" 30 equals True jp crd/logtopics.strata.io '{.status.conditions[?(@.type=="Established")].status}'
wait_until "LogUser CRD installed by the chart" 30 equals True jp crd/logusers.strata.io '{.status.conditions[?(@.type=="Established")].status}'
check "operator Deployment" "$(jp deployment/strata-strata-operator '{.spec.template.spec.serviceAccountName}' -n strata-system)" "strata-strata-operator"
SA=system:serviceaccount:strata-system:strata-strata-operator
for can in "create statefulsets.apps -n apps" "patch logclusters.strata.io/status -n apps" "watch logtopics.strata.io -n apps" "patch logtopics.strata.io --subresource=status -n apps" "update logtopics.strata.io --subresource=finalizers -n apps" "watch logusers.strata.io -n apps" "patch logusers.strata.io --subresource=status -n apps" "update logusers.strata.io --subresource=finalizers -n apps" "patch persistentvolumeclaims -n apps" "get secrets -n apps" "patch secrets -n apps" "get storageclasses" "update leases.coordination.k8s.io -n strata-system"; do
  # shellcheck disable=SC2086
  check "operator may: $can" "$(k auth can-i $can --as "$SA")" "yes"
done
for cannot in "list secrets -n apps" "watch secrets -n apps" "delete secrets -n apps" "delete statefulsets.apps -n apps" "list nodes" "update logclusters.strata.io -n apps" "delete logtopics.strata.io -n apps" "delete logusers.strata.io -n apps" "update leases.coordination.k8s.io -n apps" "create persistentvolumes" "delete storageclasses"; do
  # shellcheck disable=SC2086
  check "operator may not: $cannot" "$(k auth can-i $cannot --as "$SA" 2>/dev/null || true)" "no"
done

# The operator binary, authenticated as the chart's ServiceAccount (1.20 still issues token Secrets).
wait_until "ServiceAccount token issued" 30 bash -c "[ -n \"\$('$KUBECTL' get sa strata-strata-operator -n strata-system -o 'jsonpath={.secrets[0].name}')\" ]"
TOKEN=$(k get secret "$(jp sa/strata-strata-operator '{.secrets[0].name}' -n strata-system)" -n strata-system -o 'jsonpath={.data.token}' | base64 -d)
sed "s/token: admin-token/token: $TOKEN/" "$RUN/kubeconfig" > "$RUN/sa-kubeconfig"
run_operator_as_sa() { # run_operator_as_sa NAME [ARGS...]
  local name=$1; shift
  KUBECONFIG=$RUN/sa-kubeconfig POD_NAMESPACE=strata-system POD_NAME=$name RUST_LOG=info,kube=warn \
    "$OPERATOR" run --metrics-addr "127.0.0.1:$(free_port)" --lease-name strata-strata-operator --lease-duration 4 --broker-timeout 2 "$@" \
    > "$RUN/operator-$name.log" 2>&1 &
  echo $! > "$RUN/operator-$name.pid"
  wait_until "operator $name leads" 20 grep -q "acquired leadership" "$RUN/operator-$name.log"
}
lifecycle() { # lifecycle NAME: every API call the operator makes, under the ServiceAccount's rights
  local lc=$1 port; port=$(free_port)
  start_real_broker "$RUN" "$BROKER" 0 "$port"
  k apply -f - >/dev/null <<EOF
apiVersion: strata.io/v1alpha1
kind: LogCluster
metadata: {name: $lc, namespace: apps}
spec:
  replicas: 1
  image: strata/broker:e2e
  listeners: {clientPort: $port} # PodDNS: voters rendered, not pushed (the brokers here predate the quorum)
  storage: {size: 1Gi, deleteClaim: true, local: [{node: n1, path: /mnt/$lc}]}
  retention: {ms: 60000}
EOF
  wait_until "$lc: StatefulSet, Services, ConfigMap, PDB" 30 k get statefulset/$lc service/$lc-headless service/$lc-bootstrap configmap/$lc-config poddisruptionbudget/$lc -n apps
  wait_until "$lc: StorageClass and PV" 30 k get storageclass/strata-local-apps-$lc pv/strata-apps-$lc-0
  wait_until "$lc: status written" 30 equals False jp logcluster/$lc '{.status.conditions[?(@.type=="Degraded")].status}' -n apps
  wait_until "$lc: pod created" 30 k get pod $lc-0 -n apps
  mark_pod_ready apps $lc-0
  wait_until "$lc: dynamic settings applied to the real broker, pod annotated" 30 \
    bash -c "[ -n \"\$('$KUBECTL' get pod $lc-0 -n apps -o 'jsonpath={.metadata.annotations.strata\.io/dynamic-config-applied}')\" ]"
  wait_until "$lc: Ready" 30 equals True jp logcluster/$lc '{.status.conditions[?(@.type=="Ready")].status}' -n apps
  local uid; uid=$(jp pod/$lc-0 '{.metadata.uid}' -n apps)
  k patch logcluster $lc -n apps --type=merge -p '{"spec":{"config":{"num.partitions":"3"}}}' >/dev/null
  wait_until "$lc: pod restarted for a static change" 30 bash -c "[ \"\$('$KUBECTL' get pod $lc-0 -n apps -o 'jsonpath={.metadata.uid}')\" != '$uid' ]"
  k delete logcluster $lc -n apps --wait=false >/dev/null
  wait_until "$lc: deleted through the finalizer" 60 equals "" k get logclusters -n apps -o name
  wait_until "$lc: claims, PV and StorageClass removed" 60 equals "" k get pvc -n apps -o name
  wait_until "$lc: PV removed" 60 equals "" k get pv,storageclass -o name
  stop_pid_file "$RUN/broker-0.pid"
  check "$lc: no forbidden API calls" "$(grep -ci 'forbidden' "$RUN/operator-$2.log" || true)" "0"
}
succeeds "helm upgrade with local volumes" "$HELM" upgrade strata "$CHART" --namespace strata-system --set localVolumes.enabled=true --wait=false
for can in "create persistentvolumes" "delete storageclasses"; do
  # shellcheck disable=SC2086
  check "localVolumes: operator may: $can" "$(k auth can-i $can --as "$SA")" "yes"
done
k create namespace apps >/dev/null
run_operator_as_sa cluster-wide
lifecycle all-ns cluster-wide
stop_pid_file "$RUN/operator-cluster-wide.pid"

log "== watchNamespace: Role-only rights in one namespace"
succeeds "helm upgrade to one watched namespace" "$HELM" upgrade strata "$CHART" --namespace strata-system --set watchNamespace=apps --set localVolumes.enabled=true --wait=false
check "no longer cluster-wide" "$(k auth can-i list statefulsets.apps -n other --as "$SA" 2>/dev/null || true)" "no"
check "rights in the watched namespace" "$(k auth can-i create statefulsets.apps -n apps --as "$SA")" "yes"
run_operator_as_sa one-ns --namespace apps
lifecycle one-ns one-ns
stop_pid_file "$RUN/operator-one-ns.pid"

succeeds "helm uninstall" "$HELM" uninstall strata --namespace strata-system
wait_until "RBAC removed" 30 equals "" k get clusterrole strata-strata-operator -o name --ignore-not-found
check "CRD kept (Helm never deletes CRDs)" "$(k get crd logclusters.strata.io -o name)" "customresourcedefinition.apiextensions.k8s.io/logclusters.strata.io"

log "timing: $(( $(date +%s) - T0 ))s"
echo "helm-test: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
