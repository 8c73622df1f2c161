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
from contextlib import contextmanager
from statistics import median
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


def loopback_baseline(path, mode, seconds):
    """MB/s of streaming a cached file over loopback TCP to a reader, without a broker (broker/examples/loopback.rs)."""
    out = subprocess.run([LOOPBACK, str(path), str(seconds), mode], capture_output=True, text=True, check=True)
    return float(out.stdout)


FETCH_MODES = ("sendfile", "copy")
FETCH_ROUNDS = 7
FETCH_COUNTS = {1024: 1 << 20, 65536: 1 << 14}  # record size -> records: 1 GiB each


def machine_cpu_seconds():
    """CPU time of the whole machine (every state but idle and iowait), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK


@contextmanager
def brokers_on_copies(work, topics, sides):
    """One broker per side (name -> its extra flags), each on its own copy of one log holding `topics` (name ->
    (record size, count)) and warmed up (page cache of its copy, connections); all stopped on exit. The copies
    are made the same way: how a file was written decides the size of its page-cache folios, which changes
    sendfile's cost more than most settings do."""
    src = work / "source" / "data"
    src.mkdir(parents=True)
    b = Broker(src)
    try:
        for topic, (size, count) in topics.items():
            produce(b.addr, topic, size, count, 1)
    finally:
        b.stop()
    brokers = {}
    try:
        for name, flags in sides.items():
            shutil.copytree(src, work / name / "data")
            brokers[name] = Broker(work / name / "data", *flags)
            for topic, (_, count) in topics.items():
                consume(brokers[name].addr, topic, 1, count)
        shutil.rmtree(src.parent)
        yield brokers
    finally:
        for b in brokers.values():
            b.stop()


def rotated(items, rnd):
    """`items` in the order of round `rnd`: each round starts one later, so no side is always first."""
    k = rnd % len(items)
    return items[k:] + items[:k]


def fetch_modes(work):
    """Brokers in every fetch mode side by side on copies of one log, consumed in rotated order, with the raw
    loopback baselines in the same rounds (so slow phases of the machine hit every side alike)."""
    topics = {f"big{size}": (size, count) for size, count in FETCH_COUNTS.items()}
    with brokers_on_copies(work, topics, {m: ("--fetch.mode", m) for m in FETCH_MODES}) as brokers:
        segment = max((work / "sendfile" / "data" / "big65536-0").glob("*.log"), key=lambda p: p.stat().st_size)
        modes = {(m, size): dict(mb=[], cpu=0.0, machine=0.0, gib=0.0) for m in FETCH_MODES for size in FETCH_COUNTS}
        raw = {m: dict(mb=[], machine=0.0, gib=0.0) for m in FETCH_MODES}
        sides = [("broker", m, size) for m in FETCH_MODES for size in FETCH_COUNTS] + [("raw", m, 0) for m in raw]
        for rnd in range(FETCH_ROUNDS):
            for kind, m, size in rotated(sides, rnd):
                machine0 = machine_cpu_seconds()
                if kind == "raw":
                    mb = loopback_baseline(segment, m, seconds=2)
                    v = raw[m]
                    v["gib"] += mb * 1e6 * 2 / (1 << 30)
                else:
                    v, b = modes[(m, size)], brokers[m]
                    cpu0 = b.cpu_seconds()
                    _, mb = consume(b.addr, f"big{size}", 1, FETCH_COUNTS[size])
                    v["cpu"] += b.cpu_seconds() - cpu0
                    v["gib"] += size * FETCH_COUNTS[size] / (1 << 30)
                v["machine"] += machine_cpu_seconds() - machine0
                v["mb"].append(mb)
            print(f"fetch round {rnd}: " + ", ".join(f"{m} {size}: {v['mb'][-1]:.0f}" for (m, size), v in modes.items())
                  + ", " + ", ".join(f"raw {m}: {v['mb'][-1]:.0f}" for m, v in raw.items()), flush=True)
        for (m, size), v in modes.items():
            v["rss"], v["hwm"] = brokers[m].rss_mib(), brokers[m].rss_mib("VmHWM")
        log_mib = sum(p.stat().st_size for p in (work / FETCH_MODES[0] / "data").glob("big*/*.log")) / (1 << 20)
        return modes, raw, log_mib


def fetch_report(modes, raw, log_mib):
    lines = [
        f"Fetch modes side by side: one broker per fetch.mode, each on its own copy of the same {log_mib:.0f} MiB of log "
        f"(1 GiB of 1 KiB records, 1 GiB of 64 KiB records, one partition each, page cache warm), one consumer "
        f"(fetch.message.max.bytes=8 MiB); {FETCH_ROUNDS} rounds, the order rotated every round, raw loopback "
        "baselines (no broker: the same segment file streamed to a reader with a 4 MiB buffer) in the same rounds. "
        "Machine CPU is all CPU time of the machine (broker, consumer and kernel) during the run.",
        "",
        "| fetch.mode | record | consume MB/s (median) | min..max | broker CPU s per GiB | machine CPU s per GiB | RSS MiB | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (m, size), v in modes.items():
        lines.append(f"| {m} | {size // 1024} KiB | {median(v['mb']):.0f} | {min(v['mb']):.0f}..{max(v['mb']):.0f} | "
                     f"{v['cpu'] / v['gib']:.2f} | {v['machine'] / v['gib']:.2f} | {v['rss']:.1f} | {v['hwm']:.1f} |")
    lines += ["", "| raw loopback | MB/s (median) | min..max | machine CPU s per GiB |", "|---|---|---|---|"]
    for m, v in raw.items():
        lines.append(f"| {m} | {median(v['mb']):.0f} | {min(v['mb']):.0f}..{max(v['mb']):.0f} | {v['machine'] / v['gib']:.2f} |")

    def paired(a, b):
        return median(x / y for x, y in zip(a, b))

    big = {m: modes[(m, 65536)]["mb"] for m in FETCH_MODES}
    lines += [
        "",
        "Paired per-round ratios (64 KiB records), median: broker sendfile / raw sendfile "
        f"{paired(big['sendfile'], raw['sendfile']['mb']):.2f}; broker sendfile / broker copy "
        f"{paired(big['sendfile'], big['copy']):.2f}; raw sendfile / raw copy "
        f"{paired(raw['sendfile']['mb'], raw['copy']['mb']):.2f}.",
    ]
    return lines


def main():
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

        modes, raw, log_mib = fetch_modes(work)
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
    ]
    lines += fetch_report(modes, raw, log_mib)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
