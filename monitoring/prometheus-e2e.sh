#!/usr/bin/env bash
# End to end with a real Prometheus (Debian package): a broker on 127.0.0.1, its /healthz and /readyz, a
# scrape that must contain every metric the dashboard and alert rules use, then Prometheus scraping the
# broker while a real client (confluent-kafka) produces and consumes: bytes-in rate > 0 for the topic and
# the page-cache hit-ratio recording rule has a value. Everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v prometheus >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
VENV=$(tests/clients/venv.sh)
cargo build --locked -q -p strata-broker
BROKER=${CARGO_TARGET_DIR:-target}/debug/strata-broker
W=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$W"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PASSED=0; FAILED=0
ok() { PASSED=$((PASSED + 1)); echo "ok: $*"; }
not_ok() { FAILED=$((FAILED + 1)); echo "NOT OK: $*"; }
kafka() { "$VENV/bin/python" e2e/kafka_check.py "$@"; }

KPORT=$(free_port); MPORT=$(free_port); PPORT=$(free_port)
"$BROKER" --listeners "PLAINTEXT://127.0.0.1:$KPORT" --log.dirs "$W/data" --metrics.port "$MPORT" \
  --metrics.bind.address 127.0.0.1 --num.partitions 2 > "$W/broker.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$MPORT/readyz" >/dev/null && break; sleep 0.1; done
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/healthz")" = 200 ] && ok "/healthz 200" || not_ok "/healthz"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/readyz")" = 200 ] && ok "/readyz 200" || not_ok "/readyz"

B=127.0.0.1:$KPORT
kafka "$B" create metrics-e2e 2 >/dev/null
kafka "$B" produce metrics-e2e 5000 >/dev/null && kafka "$B" consume metrics-e2e 5000 >/dev/null && ok "client round trip" || not_ok "client round trip"
curl -s "http://127.0.0.1:$MPORT/metrics" > "$W/scrape.txt"
if python3 monitoring/check_assets.py --scrape "$W/scrape.txt"; then ok "every dashboard/rule metric is exported"; else not_ok "dashboard/rule metrics missing from the scrape"; fi
echo "--- scrape excerpt"
grep -E '^(kafka_server_brokertopicmetrics_bytesin_total|kafka_network_requestmetrics_requests_total\{request="(Produce|Fetch)"|strata_pagecache_(hit|miss)_bytes_total|strata_fetch_(sendfile|copy)_bytes_total|strata_pagecache_probe_method|strata_node_vm_swappiness|kafka_log_log_size)' "$W/scrape.txt" | head -20

cat > "$W/prometheus.yml" <<PROM
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ["$PWD/charts/strata-operator/files/strata-rules.yml"]
scrape_configs:
  - job_name: strata-brokers
    static_configs: [{targets: ["127.0.0.1:$MPORT"]}]
PROM
prometheus --config.file="$W/prometheus.yml" --storage.tsdb.path="$W/prom" --web.listen-address="127.0.0.1:$PPORT" \
  > "$W/prometheus.log" 2>&1 &
PIDS+=($!)
query() { curl -s "http://127.0.0.1:$PPORT/api/v1/query" --data-urlencode "query=$1" | python3 -c '
import json, sys
try:
    r = json.load(sys.stdin)["data"]["result"]
except ValueError:
    r = []  # Prometheus not answering yet
print(r[0]["value"][1] if r else "")'; }
for _ in $(seq 1 60); do [ "$(query up)" = 1 ] && break; sleep 0.5; done
# Traffic while Prometheus scrapes, until the rate and the hit ratio (fetched ranges are sampled, 1 in 8)
# have samples on both sides of the window.
rate=""; ratio=""
total=5000
for round in $(seq 0 11); do
  kafka "$B" produce metrics-e2e 2000 $total >/dev/null
  total=$((total + 2000))
  kafka "$B" consume metrics-e2e $total >/dev/null
  sleep 2
  rate=$(query 'rate(kafka_server_brokertopicmetrics_bytesin_total{topic="metrics-e2e"}[1m])')
  ratio=$(query 'strata:pagecache_hit_ratio:rate5m')
  python3 -c "import sys; r=float('${ratio:-nan}'); sys.exit(0 if 0 <= r <= 1 and float('${rate:-0}') > 0 else 1)" && break
done
echo "bytes-in rate (B/s): ${rate:-none}; page-cache hit ratio (recording rule): ${ratio:-none}"
python3 -c "import sys; sys.exit(0 if float('${rate:-0}') > 0 else 1)" && ok "bytes-in rate > 0 in Prometheus" || not_ok "bytes-in rate"
python3 -c "import sys; r=float('${ratio:-nan}'); sys.exit(0 if 0 <= r <= 1 else 1)" \
  && ok "hit-ratio recording rule has a value in [0, 1]" || not_ok "hit-ratio recording rule: '${ratio}'"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
