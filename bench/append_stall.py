#!/usr/bin/env python3
"""Appends next to a bulk writer (issue 19; benchmark, not a test): a producer at cold_read.RATE records/s (one
100 B record per request, acks=1) times each request while a second producer appends GIB GiB of 1 KiB records as
fast as it can, on a fresh broker, so page-cache writeback and the file system's block reservations run during
the measurement. Several broker binaries (builds of different commits) alternate, ROUNDS times each, so the
comparison is paired. Prints p50/p99/max of the timed producer and the bulk writer's MB/s per run.
Usage: python3 bench/append_stall.py BROKER [BROKER...]
"""

import multiprocessing
import shutil
import sys
import tempfile
import time
from pathlib import Path

binaries = sys.argv[1:]
sys.argv = sys.argv[:2] + ["-", "-"]  # broker_bench's argv
import broker_bench as bb  # noqa: E402
import cold_read as cr  # noqa: E402

GIB, ROUNDS = 3, 3


def run(binary):
    bb.BROKER = binary
    work = Path(tempfile.mkdtemp(prefix="strata-appendbench-"))
    data = work / "data"
    data.mkdir()
    try:
        b = bb.Broker(data)
        try:
            ctx = multiprocessing.get_context("fork")
            stop, out = ctx.Event(), ctx.Queue()
            producer = ctx.Process(target=cr.run_producer, args=(b.addr, "live", stop, out))
            producer.start()
            time.sleep(1)
            t0 = time.monotonic()
            writer = ctx.Process(target=cr.fill, args=(b.addr, "bulk", GIB))
            writer.start()
            writer.join()
            t1 = time.monotonic()
            stop.set()
            produced = out.get()
            producer.join()
        finally:
            b.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    p50, p99, worst = cr.percentiles([lat for t, lat, _ in produced if t0 <= t <= t1])
    return p50, p99, worst, GIB * (1 << 30) / (t1 - t0) / 1e6


def main():
    print("| broker | round | producer p50 ms | p99 ms | max ms | bulk writer MB/s |")
    print("|---|---|---|---|---|---|")
    for rnd in range(ROUNDS):
        for binary in bb.rotated(binaries, rnd):
            p50, p99, worst, mb = run(binary)
            print(f"| {binary} | {rnd} | {p50:.2f} | {p99:.2f} | {worst:.1f} | {mb:.0f} |", flush=True)


if __name__ == "__main__":
    main()
