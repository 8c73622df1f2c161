#!/usr/bin/env bash
# Replication soak: runs broker/tests/replication_faults.rs (three brokers; a killed leader, a paused zombie
# leader, a leader cut off by iptables, a killed active controller, rolling restarts, and the unclean-election
# control run; as root, with iptables installed) TRIALS times (default 20), each run with its
# own fault seed (STRATA_FAULT_SEED, which the test reads), and reports the passes and failures with their
# seeds, so that a failure can be replayed with STRATA_FAULT_SEED=<seed>.
#
# Usage: bench/replication_soak.sh [TEST FILTER...]      e.g. TRIALS=50 bench/replication_soak.sh zombie
# Each run's output goes to $SOAK_DIR/run-<n>-seed-<seed>.log (default: a new directory under /tmp); a failed
# run also keeps its brokers' logs and data in the /tmp directory its output names. A run takes about 3-4
# minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${TRIALS:-20}
out=${SOAK_DIR:-$(mktemp -d /tmp/replication-soak.XXXXXX)}
mkdir -p "$out"
cargo test -p strata-broker --test replication_faults --locked --no-run

passed=0
failed=()
for n in $(seq 1 "$trials"); do
    seed=$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')
    log="$out/run-$n-seed-$seed.log"
    started=$SECONDS
    if STRATA_FAULT_SEED=$seed cargo test -q -p strata-broker --test replication_faults --locked -- --nocapture "$@" >"$log" 2>&1; then
        passed=$((passed + 1))
        verdict=pass
    else
        failed+=("$seed")
        verdict="FAIL ($(grep -m1 -E 'panicked at|^error' -A1 "$log" | tail -1 | cut -c1-160))"
    fi
    echo "run $n/$trials seed $seed: $verdict in $((SECONDS - started))s; $(grep -hE '^(killed leader|paused leader|rolling restart): ' "$log" | sed -E 's/: ([0-9]+ trials).*: ([0-9]+ records acknowledged).*/: \1, \2/' | paste -sd';' -)"
done
echo "$passed passed, ${#failed[@]} failed"
if [ ${#failed[@]} -gt 0 ]; then
    echo "failing seeds: ${failed[*]} (logs in $out)"
    exit 1
fi
