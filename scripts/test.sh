#!/usr/bin/env bash
# The whole test suite (README's test command). Installs what it needs on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test (workspace)"
cargo test --workspace --locked 2>&1

echo "== monitoring assets: promtool check/test rules, dashboard structure"
command -v promtool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
promtool check rules charts/strata-operator/files/strata-rules.yml
promtool test rules monitoring/strata-rules.test.yml
python3 monitoring/check_assets.py
bash monitoring/prometheus-e2e.sh

# >>> broker: real Kafka clients against strata-broker (owner: broker) >>>
echo "== broker: confluent-kafka and kcat"
bash tests/clients/run.sh
echo "== broker: librdkafka's own test suite (tests/librdkafka/allowlist*.txt)"
bash tests/librdkafka/run.sh
echo "== broker: fuzzing smoke of request decoding"
bash fuzz/smoke.sh
# <<< broker <<<

# >>> operator: LogCluster operator against a real kube-apiserver, Helm chart (owner: operator) >>>
# Both build/cache their tools under /var/cache/strata (kube-apiserver from Debian source, helm, venv).
echo "== operator: integration test against kube-apiserver 1.20 + controller manager + etcd"
bash e2e/apiserver-test.sh
echo "== operator: Helm chart (lint, template, kubernetes-validate --strict, install, RBAC)"
bash e2e/helm-test.sh
# <<< operator <<<

echo "== end to end: a real single-node Kubernetes (kubelet + containerd) running the chart, the operator and 3 brokers"
bash e2e/k8s-node-e2e.sh
