#!/usr/bin/env python3
"""strata-broker benchmark (not a test): librdkafka's rdkafka_performance against a release broker on 127.0.0.1.

Measures produce and consume throughput (100 B and 1 KiB records, 1 and 8 partitions, acks=1 and acks=all),
produce latency percentiles at a fixed rate, sendfile versus copy fetch (MB/s and broker CPU), a raw loopback
sendfile baseline of this machine, and the broker's RSS while it serves more log than 64 MiB.
Usage: bench/run.sh  (builds everything, then runs this with the broker binary, the librdkafka dir and the
loopback baseline binary).
"""

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BROKER, RDKAFKA, LOOPBACK = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
PERF = str(RDKAFKA / "examples" / "rdkafka_performance")
ENV = dict(os.environ, LD_LIBRARY_PATH=f"{RDKAFKA}/src:{RDKAFKA}/src-cpp")
CLK = os.sysconf("SC_CLK_TCK")


class Broker:
    def __init__(self, data, *args):
        self.proc = subprocess.Popen(
            [BROKER, "--listeners", "PLAINTEXT://127.0.0.1:0", "--log.dirs", str(data), *args],
            stdout=subprocess.PIPE, stderr=open(Path(data).parent / "broker.log", "ab"),
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if ready else ""
        m = re.search(r"127\.0\.0\.1:(\d+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"broker did not start: {line!r}")
        self.addr = f"127.0.0.1:{m.group(1)}"

    def cpu_seconds(self):
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime

    def rss_mib(self, key="VmRSS"):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def perf(*args, timeout=600):
    out = subprocess.run([PERF, *args], env=ENV, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"rdkafka_performance {args} failed: {out.stderr[-2000:]}")
    return out.stdout + out.stderr


def produce(addr, topic, size, count, acks):
    """Topics are auto-created with the broker's num.partitions."""
    out = perf("-P", "-t", topic, "-b", addr, "-s", str(size), "-c", str(count), "-a", str(acks), "-q",
               "-X", "linger.ms=5", "-X", "batch.size=1000000", "-X", "queue.buffering.max.kbytes=1048576",
               "-X", "topic.metadata.refresh.interval.ms=1000")
    m = re.search(r"(\d+) msgs/s and ([\d.]+) MB/s", out)
    if not m:
        raise RuntimeError(f"no produce summary in: {out[-1500:]}")
    return int(m.group(1)), float(m.group(2))


def consume(addr, topic, partitions, count):
    parts = [a for p in range(partitions) for a in ("-p", str(p))]
    out = perf("-C", "-t", topic, "-b", addr, *parts, "-o", "beginning", "-c", str(count), "-q",
               "-X", "fetch.message.max.bytes=8388608", "-X", "fetch.max.bytes=67108864",
               "-X", "queued.max.messages.kbytes=262144")
    m = re.search(r"consumed in \d+ms: (\d+) msgs/s \(([\d.]+) MB/s\)", out)
    if not m:
        raise RuntimeError(f"no consume summary in: {out[-1500:]}")
    return int(m.group(1)), float(m.group(2))


def loopback_baseline(path, mode, seconds=5):
    """MB/s of streaming a cached file over loopback TCP to a reader, without a broker (broker/examples/loopback.rs)."""
    out = subprocess.run([LOOPBACK, str(path), str(seconds), mode], capture_output=True, text=True, check=True)
    return float(out.stdout)


def main():
    results = []
    work = Path(tempfile.mkdtemp(prefix="strata-bench-"))
    try:
        # Throughput matrix: one broker whose auto-created topics get the partition count under test.
        matrix = []
        for partitions in (1, 8):
            data = work / f"matrix-{partitions}" / "data"
            data.mkdir(parents=True)
            b = Broker(data, "--num.partitions", str(partitions))
            try:
                for size, count in ((100, 2_000_000), (1024, 500_000)):
                    for acks in (1, -1):
                        topic = f"t{size}-{partitions}-{acks}".replace("-1", "all")
                        p_rate, p_mb = produce(b.addr, topic, size, count, acks)
                        c_rate, c_mb = consume(b.addr, topic, partitions, count)
                        matrix.append((size, partitions, "all" if acks == -1 else "1", p_rate, p_mb, c_rate, c_mb))
                        print(matrix[-1], flush=True)
            finally:
                b.stop()

        # Latency at a fixed moderate rate.
        data = work / "latency" / "data"
        data.mkdir(parents=True)
        b = Broker(data)
        lat_file = work / "latency.txt"
        try:
            perf("-P", "-t", "lat", "-b", b.addr, "-s", "100", "-c", "20000", "-r", "2000", "-a", "-1", "-q",
                 "-l", "-A", str(lat_file), "-X", "linger.ms=0")
        finally:
            b.stop()
        lat = sorted(int(x) for x in lat_file.read_text().split())
        p50, p99 = lat[len(lat) // 2] / 1000, lat[int(len(lat) * 0.99)] / 1000

        # Fetch modes over logs larger than the RSS target: 1 GiB of 1 KiB records and 1 GiB of 64 KiB records,
        # each consumed three times per mode (best throughput, least broker CPU of the three).
        data = work / "fetch" / "data"
        data.mkdir(parents=True)
        counts = {1024: 1 << 20, 65536: 1 << 14}
        b = Broker(data)
        try:
            for size, count in counts.items():
                produce(b.addr, f"big{size}", size, count, 1)
        finally:
            b.stop()
        modes = {}
        for mode in ("sendfile", "copy"):
            b = Broker(data, "--fetch.mode", mode)
            try:
                for size, count in counts.items():
                    consume(b.addr, f"big{size}", 1, 100)  # warm-up: connections, metadata
                    runs = []
                    for _ in range(3):
                        cpu0 = b.cpu_seconds()
                        _, mb = consume(b.addr, f"big{size}", 1, count)
                        runs.append((mb, b.cpu_seconds() - cpu0))
                    best_mb, least_cpu = max(r[0] for r in runs), min(r[1] for r in runs)
                    modes[(mode, size)] = (best_mb, least_cpu, b.rss_mib(), b.rss_mib("VmHWM"))
                    print(mode, size, modes[(mode, size)], flush=True)
            finally:
                b.stop()
        segments = sorted((data / "big65536-0").glob("*.log"), key=lambda p: p.stat().st_size)
        baseline = {m: max(loopback_baseline(segments[-1], m) for _ in range(3)) for m in ("sendfile", "copy")}
        log_mib = sum(p.stat().st_size for p in data.glob("big*/*.log")) / (1 << 20)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        "| record | partitions | acks | produce msg/s | produce MB/s | consume msg/s | consume MB/s |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {s} B | {p} | {a} | {pr:,} | {pm:.1f} | {cr:,} | {cm:.1f} |" for s, p, a, pr, pm, cr, cm in matrix]
    lines += [
        "",
        f"Produce latency (100 B, 2000 msg/s, acks=all, linger.ms=0, 20000 records): p50 {p50:.2f} ms, p99 {p99:.2f} ms",
        "",
        f"Fetch from {log_mib:.0f} MiB of log in two 1 GiB partitions (one consumer, fetch.message.max.bytes=8 MiB):",
        "",
        "| fetch.mode | record | consume MB/s | broker CPU s per GiB | RSS MiB | peak RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {m} | {size // 1024} KiB | {v[0]:.0f} | {v[1]:.2f} | {v[2]:.1f} | {v[3]:.1f} |" for (m, size), v in modes.items()
    ]
    big = modes[("sendfile", 65536)][0]
    lines += [
        "",
        f"Raw loopback baseline of this machine (one segment file streamed to a reader with a 4 MiB buffer, best of 3): "
        f"sendfile {baseline['sendfile']:.0f} MB/s, pread+write {baseline['copy']:.0f} MB/s; "
        f"the broker's sendfile consume of 64 KiB records reaches {big / baseline['sendfile'] * 100:.0f}% of raw sendfile.",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
