#!/usr/bin/env bash
# End-to-end check on a real Kubernetes cluster (kind, or any cluster in KUBECONFIG): install the
# chart, create the example LogCluster, wait until it is Ready, produce and consume through a
# Kafka client pod, and check broker and operator metrics. Cleans up unless KEEP=1.
#
# Needs kubectl and helm on PATH, and the two images where the cluster can pull them:
#   docker build -f docker/operator.Dockerfile -t strata/operator:dev .
#   docker build -f docker/broker.Dockerfile   -t strata/broker:dev .
#   kind load docker-image strata/operator:dev strata/broker:dev     # for kind
# Settings (environment): OPERATOR_IMAGE, BROKER_IMAGE (defaults above), NAMESPACE (strata-e2e),
# REPLICAS (3), KCAT_IMAGE (edenhill/kcat:1.7.1), TIMEOUT seconds (600), TUNING (false; true
# runs the privileged sysctl init container, which changes the nodes' vm.* settings).
set -euo pipefail
cd "$(dirname "$0")/.."

OPERATOR_IMAGE=${OPERATOR_IMAGE:-strata/operator:dev}
BROKER_IMAGE=${BROKER_IMAGE:-strata/broker:dev}
NS=${NAMESPACE:-strata-e2e}
REPLICAS=${REPLICAS:-3}
KCAT_IMAGE=${KCAT_IMAGE:-edenhill/kcat:1.7.1}
TIMEOUT=${TIMEOUT:-600}
TUNING=${TUNING:-false}
RELEASE=strata-e2e
MESSAGES=100

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
for tool in kubectl helm; do command -v "$tool" >/dev/null || die "$tool is not on PATH"; done
kubectl version >/dev/null || die "no cluster reachable with the current KUBECONFIG"

cleanup() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    log "--- diagnostics"
    kubectl get logcluster,statefulset,pods,pvc -n "$NS" -o wide >&2 || true
    kubectl describe logcluster example -n "$NS" >&2 || true
    kubectl logs -n "$NS" deploy/$RELEASE-strata-operator --tail=50 >&2 || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then log "kept namespace $NS and release $RELEASE"; return; fi
  kubectl delete logcluster example -n "$NS" --ignore-not-found --timeout=120s >/dev/null || true
  helm uninstall "$RELEASE" -n "$NS" >/dev/null 2>&1 || true
  kubectl delete namespace "$NS" --ignore-not-found --wait=false >/dev/null || true
}
trap cleanup EXIT

log "installing the chart ($OPERATOR_IMAGE)"
helm upgrade --install "$RELEASE" charts/strata-operator -n "$NS" --create-namespace \
  --set image.repository="${OPERATOR_IMAGE%:*}" --set image.tag="${OPERATOR_IMAGE##*:}" \
  --set watchNamespace="$NS" --set logFormat=text --wait --timeout "${TIMEOUT}s"

log "creating LogCluster example ($REPLICAS x $BROKER_IMAGE)"
sed -e "s|^  replicas: 3|  replicas: $REPLICAS|" -e "s|^  image: .*|  image: $BROKER_IMAGE|" \
    -e "s|^    size: 20Gi|    size: 1Gi|" -e "s|^    enabled: true|    enabled: $TUNING|" \
    -e "s|^    deleteClaim: false|    deleteClaim: true|" e2e/examples/logcluster.yaml \
  | kubectl apply -n "$NS" -f -
kubectl wait logcluster/example -n "$NS" --for=condition=Ready --timeout="${TIMEOUT}s"
kubectl get logcluster example -n "$NS"
BOOTSTRAP=$(kubectl get logcluster example -n "$NS" -o 'jsonpath={.status.bootstrapServers}')
[ -n "$BOOTSTRAP" ] || die "no bootstrap servers in the status"

log "producing and consuming $MESSAGES messages via $BOOTSTRAP"
kubectl run kcat -n "$NS" --image="$KCAT_IMAGE" --restart=Never --command -- sh -c "
  set -e
  seq 1 $MESSAGES | kcat -b $BOOTSTRAP -t e2e -P
  kcat -b $BOOTSTRAP -t e2e -C -o beginning -c $MESSAGES -e -q | wc -l" >/dev/null
kubectl wait pod/kcat -n "$NS" --for=jsonpath='{.status.phase}'=Succeeded --timeout="${TIMEOUT}s"
got=$(kubectl logs kcat -n "$NS" | tail -1 | tr -d ' ')
kubectl delete pod kcat -n "$NS" --wait=false >/dev/null
[ "$got" = "$MESSAGES" ] || die "consumed $got of $MESSAGES messages"
log "ok: $got messages round-tripped"

log "checking metrics through the apiserver proxy"
broker_metrics=$(kubectl get --raw "/api/v1/namespaces/$NS/pods/example-0:9644/proxy/metrics")
grep -q '^strata_' <<<"$broker_metrics" || die "broker /metrics has no strata_ series"
op_pod=$(kubectl get pods -n "$NS" -l app.kubernetes.io/name=strata-operator -o 'jsonpath={.items[0].metadata.name}')
op_metrics=$(kubectl get --raw "/api/v1/namespaces/$NS/pods/$op_pod:8080/proxy/metrics")
grep -q '^strata_operator_reconciliations_total{result="ok"}' <<<"$op_metrics" || die "operator metrics missing"
grep -q '^strata_operator_leader 1' <<<"$op_metrics" || die "operator is not leader"

log "status:"
kubectl get logcluster example -n "$NS" -o yaml | sed -n '/^status:/,$p'
echo "cluster-test: 1 passed, 0 failed"
