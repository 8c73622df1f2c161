#!/usr/bin/env python3
"""Overhead of the page-cache hit measurement on fetch (benchmark, not a test).

Three release brokers run side by side on three copies of the same log (2 GiB of 64 KiB records, page cache
warm): one with metrics.pagecache.probe=true, two with =false (the second one is a control: it differs from
the first in nothing, so the spread between those two is this machine's noise floor). rdkafka_performance
consumes the whole log from each in turn, ROUNDS times, the order rotated every round. Each round gives paired
ratios (probe on / off, control / off), so slow phases of this shared machine hit all sides of a round alike.
Prints per-run MB/s, the median paired ratios with their ranges, and broker CPU per GiB over all runs. The
probing broker also reports the time it spent in probes (strata_pagecache_probe_seconds_total): that share of
its CPU time is the probe's cost measured directly, which this noisy machine's end-to-end numbers cannot
resolve below a few percent.
Usage: bench/pagecache_overhead.sh (builds the broker and rdkafka_performance first).
"""
import re
import shutil
import socket
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

import broker_bench as bb  # same argv: BROKER RDKAFKA LOOPBACK

SIZE, COUNT, ROUNDS = 65536, 32768, 30
SIDES = {"on": "true", "off": "false", "control": "false"}  # side -> metrics.pagecache.probe


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return sum(float(m) for m in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def main():
    work = Path(tempfile.mkdtemp(prefix="strata-pcbench-"))
    metrics_port = free_port()
    sides = {
        side: ("--metrics.pagecache.probe", probe, "--metrics.port", str(metrics_port if side == "on" else 0),
               "--metrics.bind.address", "127.0.0.1")
        for side, probe in SIDES.items()
    }
    try:
        with bb.brokers_on_copies(work, {"pc": (SIZE, COUNT)}, sides) as brokers:
            runs = {side: [] for side in SIDES}
            cpu = dict.fromkeys(SIDES, 0.0)
            for rnd in range(ROUNDS):
                for side in bb.rotated(list(SIDES), rnd):
                    b = brokers[side]
                    cpu0 = b.cpu_seconds()
                    _, mb = bb.consume(b.addr, "pc", 1, COUNT)
                    cpu[side] += b.cpu_seconds() - cpu0
                    runs[side].append(mb)
                print(f"round {rnd}: " + ", ".join(f"{s} {runs[s][-1]:.0f} MB/s" for s in SIDES), file=sys.stderr, flush=True)
            probe_seconds = scrape(metrics_port, "strata_pagecache_probe_seconds_total")
            sampled = scrape(metrics_port, "strata_pagecache_(?:hit|miss)_bytes_total")
            probe_cpu_share = probe_seconds / brokers["on"].cpu_seconds()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    gib = ROUNDS * SIZE * COUNT / (1 << 30)
    print(f"| broker | metrics.pagecache.probe | median MB/s ({ROUNDS} runs of 2 GiB) | min..max MB/s | broker CPU s per GiB (all runs) |")
    print("|---|---|---|---|---|")
    for side, probe in SIDES.items():
        r = runs[side]
        print(f"| {side} | {probe} | {statistics.median(r):.0f} | {min(r):.0f}..{max(r):.0f} | {cpu[side] / gib:.3f} |")

    def paired(side):
        ratios = sorted(a / b for a, b in zip(runs[side], runs["off"]))
        return statistics.median(ratios), ratios[len(ratios) // 4], ratios[3 * len(ratios) // 4]

    (on, on_q1, on_q3), (ctl, ctl_q1, ctl_q3) = paired("on"), paired("control")
    print(f"\nPaired throughput ratio per round, median (interquartile range): on/off {on:.3f} ({on_q1:.3f}..{on_q3:.3f}), "
          f"control/off {ctl:.3f} ({ctl_q1:.3f}..{ctl_q3:.3f}). Fetch throughput with the probe on changes by "
          f"{100 * (on - 1):+.1f}% at the median (target: no drop of 5% or more); the identical control by "
          f"{100 * (ctl - 1):+.1f}%. Broker CPU per GiB on/off {cpu['on'] / cpu['off']:.3f}, control/off "
          f"{cpu['control'] / cpu['off']:.3f}.")
    print(f"\nMeasured in the probing broker: {probe_seconds * 1e3:.2f} ms spent in probes (covering {sampled / (1 << 30):.1f} "
          f"GiB of sampled ranges) = {100 * probe_cpu_share:.3f}% of its CPU time over its whole life (warm-up and "
          f"all {ROUNDS} runs).")


if __name__ == "__main__":
    main()
