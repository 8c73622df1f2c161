#!/usr/bin/env bash
# The whole test suite (README's test command). Installs what it needs on a fresh machine. Prints each stage's
# duration at the end (also when a stage fails), so growth is visible.
set -euo pipefail
cd "$(dirname "$0")/.."

durations=()
started=$SECONDS
running=""
report() {
    local rc=$?
    echo
    echo "== stage durations"
    for d in "${durations[@]}"; do echo "$d"; done
    [ -z "$running" ] || printf '%6ds  %s (failed)\n' $((SECONDS - running_t0)) "$running"
    printf '%6ds  total%s\n' $((SECONDS - started)) "$([ "$rc" = 0 ] || echo " (failed: exit $rc)")"
}
trap report EXIT

# stage NAME COMMAND...: runs one stage and records how long it took.
stage() {
    running=$1 running_t0=$SECONDS
    shift
    echo "== $running"
    "$@"
    durations+=("$(printf '%6ds  %s' $((SECONDS - running_t0)) "$running")")
    running=""
}

monitoring() {
    command -v promtool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
    promtool check rules charts/strata-operator/files/strata-rules.yml
    promtool test rules monitoring/strata-rules.test.yml
    python3 monitoring/check_assets.py
    bash monitoring/prometheus-e2e.sh
}

stage "cargo fmt --check" cargo fmt --all --check
stage "cargo clippy (all targets, -D warnings)" cargo clippy --workspace --all-targets --locked -- -D warnings
# The replication fault tests cut brokers apart with iptables (on loopback addresses of their own).
command -v iptables >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null; }
stage "cargo test (workspace)" cargo test --workspace --locked
stage "monitoring assets: promtool check/test rules, dashboard structure, real Prometheus" monitoring

# >>> broker: real Kafka clients against strata-broker (owner: broker) >>>
stage "broker: confluent-kafka and kcat" bash tests/clients/run.sh
stage "broker: librdkafka's own test suite (tests/librdkafka/allowlist*.txt)" bash tests/librdkafka/run.sh
stage "broker: fuzzing smoke of request decoding" bash fuzz/smoke.sh
# <<< broker <<<

# >>> operator: LogCluster operator against a real kube-apiserver, Helm chart (owner: operator) >>>
# Both build/cache their tools under /var/cache/strata (kube-apiserver from Debian source, helm, venv).
stage "operator: integration test against kube-apiserver 1.20 + controller manager + etcd" bash e2e/apiserver-test.sh
stage "operator: Helm chart (lint, template, kubernetes-validate --strict, install, RBAC)" bash e2e/helm-test.sh
# <<< operator <<<

stage "end to end: a real single-node Kubernetes (kubelet + containerd) running the chart, the operator and 3 brokers" \
    bash e2e/k8s-node-e2e.sh
