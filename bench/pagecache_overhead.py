#!/usr/bin/env python3
"""Overhead of the page-cache hit measurement on fetch (benchmark, not a test).

Consumes the same 512 MiB of 64 KiB records (page cache warm) from a release broker with
metrics.pagecache.probe=true and =false, 4 rounds, the order flipped every round (whichever runs second in
a round tends to be faster on this machine), and prints best MB/s and least broker CPU per GiB for both. Usage: bench/pagecache_overhead.sh (builds the broker and rdkafka_performance first).
"""
import shutil
import sys
import tempfile
from pathlib import Path

import broker_bench as bb  # same argv: BROKER RDKAFKA LOOPBACK

SIZE, COUNT = 65536, 8192


def main():
    work = Path(tempfile.mkdtemp(prefix="strata-pcbench-"))
    try:
        data = work / "data"
        data.mkdir()
        b = bb.Broker(data)
        try:
            bb.produce(b.addr, "pc", SIZE, COUNT, 1)
        finally:
            b.stop()
        results = {True: [], False: []}
        for round in range(4):
            for probe in ((True, False) if round % 2 == 0 else (False, True)):
                b = bb.Broker(data, "--metrics.pagecache.probe", str(probe).lower())
                try:
                    bb.consume(b.addr, "pc", 1, 100)  # warm-up: connections, metadata
                    cpu0 = b.cpu_seconds()
                    _, mb = bb.consume(b.addr, "pc", 1, COUNT)
                    results[probe].append((mb, (b.cpu_seconds() - cpu0) * 2))  # 512 MiB -> per GiB
                finally:
                    b.stop()
                print(f"probe={probe}: {results[probe][-1][0]:.0f} MB/s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    on, off = (max(r[0] for r in results[p]) for p in (True, False))
    cpu_on, cpu_off = (min(r[1] for r in results[p]) for p in (True, False))
    print("| metrics.pagecache.probe | consume MB/s (best of 4) | broker CPU s per GiB (least of 4) |")
    print("|---|---|---|")
    print(f"| true (cachestat of a 64 KiB window, 1 range in 8) | {on:.0f} | {cpu_on:.2f} |")
    print(f"| false | {off:.0f} | {cpu_off:.2f} |")
    print(f"\nThroughput with the probe on is {100 * (off - on) / off:+.1f}% below off (target: less than 5% drop).")


if __name__ == "__main__":
    main()
