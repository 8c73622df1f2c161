#!/usr/bin/env python3
"""Restart benchmark (not a test): how long a broker takes to listen again, and its peak RSS, after SIGTERM and
after SIGKILL with thousands of small partitions, next to the time to stat every file of the data dir.

Usage: bench/restart.sh (builds the release broker and the client venv, then runs
  restart.py BROKER [BASELINE_BROKER] [--partitions 2000,5000] [--rounds 3]).
With a second broker binary (e.g. an older release), both are measured on identical data in the same run.
Every broker runs on 127.0.0.1 with its soft RLIMIT_NOFILE at the hard limit. Each partition holds three
descriptors (its active segment), so the hard limit bounds the partition count: 10,000 partitions need a hard
limit above 33,000 (this VM has 20,000, and root here cannot raise it).
"""

import argparse
import os
import re
import resource
import select
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
PER_TOPIC = 100


def limits():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


class Broker:
    """A broker process; `started_s` is the time from spawn to its listening line."""

    def __init__(self, binary, data):
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [binary, "--listeners", "PLAINTEXT://127.0.0.1:0", "--metrics.port", "0", "--log.dirs", str(data)],
            stdout=subprocess.PIPE, stderr=open(Path(data).parent / "broker.log", "ab"), preexec_fn=limits,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 600)
        line = self.proc.stdout.readline().decode() if ready else ""
        self.started_s = time.monotonic() - t0
        m = re.search(r"127\.0\.0\.1:(\d+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"broker did not start: {line!r}")
        self.addr = f"127.0.0.1:{m.group(1)}"

    def status_mib(self, key):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self, sig):
        self.proc.send_signal(sig)
        self.proc.wait(600)


def topics(partitions):
    return [f"t{i:04d}" for i in range(partitions // PER_TOPIC)]


def produce(addr, partitions, records):
    """`records` records of 90 B to every partition."""
    p = Producer({"bootstrap.servers": addr, "linger.ms": 50, "acks": 1})
    for t in topics(partitions):
        for part in range(PER_TOPIC):
            for _ in range(records):
                p.produce(t, b"x" * 90, partition=part)
        p.poll(0)
    if p.flush(120) != 0:
        raise RuntimeError("records left unsent")


def fill(binary, data, partitions):
    """Creates `partitions` partitions (topics of 100) with 5 records each, then stops cleanly."""
    b = Broker(binary, data)
    admin = AdminClient({"bootstrap.servers": b.addr})
    for f in admin.create_topics([NewTopic(t, PER_TOPIC, 1) for t in topics(partitions)], request_timeout=600).values():
        f.result()
    produce(b.addr, partitions, 5)
    b.stop(signal.SIGTERM)


def stat_all_s(data):
    t0 = time.monotonic()
    n = 0
    for root, _, files in os.walk(data):
        for f in files:
            os.stat(os.path.join(root, f))
            n += 1
    return time.monotonic() - t0, n


def restart(binary, data, after, partitions):
    """Starts the broker, writes a record to every partition, stops it with `after` (SIGTERM or SIGKILL), and
    measures the next start."""
    b = Broker(binary, data)
    produce(b.addr, partitions, 1)
    b.stop(after)
    b = Broker(binary, data)
    started, peak = b.started_s, b.status_mib("VmHWM")
    b.stop(signal.SIGTERM)
    return started, peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("broker")
    ap.add_argument("baseline", nargs="?")
    ap.add_argument("--partitions", default="2000,5000")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    binaries = [("strata", args.broker)] + ([("baseline", args.baseline)] if args.baseline else [])
    rows = []
    with tempfile.TemporaryDirectory(prefix="strata-restart-") as work:
        for n in [int(x) for x in args.partitions.split(",")]:
            for name, binary in binaries:
                data = Path(work) / f"{name}-{n}" / "data"
                data.mkdir(parents=True)
                fill(binary, data, n)
                stat_s, files = stat_all_s(data)
                for after in (signal.SIGTERM, signal.SIGKILL):
                    runs = [restart(binary, data, after, n) for _ in range(args.rounds)]
                    rows.append((n, name, after.name, files, stat_s,
                                 statistics.median(r[0] for r in runs), max(r[0] for r in runs),
                                 statistics.median(r[1] for r in runs)))
                    print(rows[-1], flush=True)
    print()
    print("| partitions | broker | stopped by | files | stat all files (baseline) | restart to listening, median (max) | peak RSS, median |")
    print("|---|---|---|---|---|---|---|")
    for n, name, after, files, stat_s, med, worst, peak in rows:
        print(f"| {n} | {name} | {after} | {files} | {stat_s:.2f} s | {med:.2f} s ({worst:.2f} s) | {peak:.1f} MiB |")


if __name__ == "__main__":
    main()
