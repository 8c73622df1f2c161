#!/usr/bin/env python3
"""strata-broker benchmark (not a test): librdkafka's rdkafka_performance against a release broker on 127.0.0.1.

Measures produce and consume throughput (100 B and 1 KiB records, 1 and 8 partitions, acks=1 and acks=all),
produce latency percentiles at a fixed rate, sendfile versus copy fetch (MB/s and broker CPU, with a real consumer
and with one that costs next to nothing), raw loopback sendfile and copy baselines of this machine, and the
broker's RSS while it serves more log than 64 MiB.
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

import fetch_sink

BROKER, RDKAFKA, LOOPBACK = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
PERF = str(RDKAFKA / "examples" / "rdkafka_performance")
ENV = dict(os.environ, LD_LIBRARY_PATH=f"{RDKAFKA}/src:{RDKAFKA}/src-cpp")
CLK = os.sysconf("SC_CLK_TCK")


class Broker:
    def __init__(self, data, *args, listeners="PLAINTEXT://127.0.0.1:0"):
        """`addr` is the first listener's address (the one the broker prints first)."""
        self.proc = subprocess.Popen(
            [BROKER, "--listeners", listeners, "--log.dirs", str(data), *args],
            stdout=subprocess.PIPE, stderr=open(Path(data).parent / "broker.log", "ab"),
            # No metrics endpoint unless args ask (flags win): brokers side by side would all bind 9644.
            env=dict(os.environ, STRATA_METRICS_PORT="0"),
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


def produce(addr, topic, size, count, acks, *extra):
    """Topics are auto-created with the broker's num.partitions; `extra`: more rdkafka_performance arguments."""
    out = perf("-P", "-t", topic, "-b", addr, "-s", str(size), "-c", str(count), "-a", str(acks), "-q",
               "-X", "linger.ms=5", "-X", "batch.size=1000000", "-X", "queue.buffering.max.kbytes=1048576",
               "-X", "topic.metadata.refresh.interval.ms=1000", *extra)
    m = re.search(r"(\d+) msgs/s and ([\d.]+) MB/s", out)
    if not m:
        raise RuntimeError(f"no produce summary in: {out[-1500:]}")
    return int(m.group(1)), float(m.group(2))


def consume(addr, topic, partitions, count, *extra):
    parts = [a for p in range(partitions) for a in ("-p", str(p))]
    out = perf("-C", "-t", topic, "-b", addr, *parts, "-o", "beginning", "-c", str(count), "-q",
               "-X", "fetch.message.max.bytes=8388608", "-X", "fetch.max.bytes=67108864",
               "-X", "queued.max.messages.kbytes=262144", *extra)
    m = re.search(r"consumed in \d+ms: (\d+) msgs/s \(([\d.]+) MB/s\)", out)
    if not m:
        raise RuntimeError(f"no consume summary in: {out[-1500:]}")
    return int(m.group(1)), float(m.group(2))


def loopback_baseline(path, mode, reader, seconds):
    """Streams a cached file over loopback TCP without a broker (broker/examples/loopback.rs), to a reader that
    reads into a buffer or splices into /dev/null: (MB/s, sender CPU seconds per GiB)."""
    out = subprocess.run([LOOPBACK, str(path), str(seconds), mode, reader], capture_output=True, text=True, check=True)
    mb, cpu = out.stdout.split()
    return float(mb), float(cpu)


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
        for name in sides:
            shutil.copytree(src, work / name / "data")
        os.sync()  # the copies' writeback would otherwise still be running during the first measured rounds
        for name, flags in sides.items():
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


CONSUMERS = ("rdkafka", "sink")  # rdkafka_performance; bench/fetch_sink.py (splices record bytes away)
RAW_READERS = {"rdkafka": "read", "sink": "splice"}  # the raw baseline's reader that stands for each consumer


def fetch_modes(work):
    """Brokers in every fetch mode side by side on copies of one log, each consumed by both consumers in rotated
    order, with the raw loopback baselines in the same rounds (so slow phases of the machine hit every side alike)."""
    topics = {f"big{size}": (size, count) for size, count in FETCH_COUNTS.items()}
    with brokers_on_copies(work, topics, {m: ("--fetch.mode", m) for m in FETCH_MODES}) as brokers:
        segment = max((work / "sendfile" / "data" / "big65536-0").glob("*.log"), key=lambda p: p.stat().st_size)
        modes = {(m, size, c): dict(mb=[], cpu=[], machine=0.0, gib=0.0)
                 for c in CONSUMERS for m in FETCH_MODES for size in FETCH_COUNTS}
        raw = {(m, r): dict(mb=[], cpu=[], machine=0.0, gib=0.0) for r in RAW_READERS.values() for m in FETCH_MODES}
        sides = [("broker", key) for key in modes] + [("raw", key) for key in raw]
        for rnd in range(FETCH_ROUNDS):
            for kind, key in rotated(sides, rnd):
                machine0 = machine_cpu_seconds()
                if kind == "raw":
                    v = raw[key]
                    mb, cpu = loopback_baseline(segment, *key, seconds=2)
                    gib = mb * 1e6 * 2 / (1 << 30)
                else:
                    (m, size, c), v, b = key, modes[key], brokers[key[0]]
                    cpu0 = b.cpu_seconds()
                    if c == "sink":
                        mb, _ = fetch_sink.consume(b.addr, f"big{size}", FETCH_COUNTS[size])
                    else:
                        _, mb = consume(b.addr, f"big{size}", 1, FETCH_COUNTS[size])
                    gib = size * FETCH_COUNTS[size] / (1 << 30)
                    cpu = (b.cpu_seconds() - cpu0) / gib
                v["machine"] += machine_cpu_seconds() - machine0
                v["gib"] += gib
                v["mb"].append(mb)
                v["cpu"].append(cpu)
            print(f"fetch round {rnd}: " + ", ".join(f"{'/'.join(map(str, k))} {v['mb'][-1]:.0f}"
                                                     for k, v in [*modes.items(), *raw.items()]), flush=True)
        for (m, size, c), v in modes.items():
            v["rss"], v["hwm"] = brokers[m].rss_mib(), brokers[m].rss_mib("VmHWM")
        log_mib = sum(p.stat().st_size for p in (work / FETCH_MODES[0] / "data").glob("big*/*.log")) / (1 << 20)
        return modes, raw, log_mib


def paired(a, b):
    """Median of the per-round ratios a/b: both were measured in the same round, next to each other."""
    return median(x / y for x, y in zip(a, b))


def fetch_report(modes, raw, log_mib):
    lines = [
        f"Fetch modes side by side: one broker per fetch.mode, each on its own copy of the same {log_mib:.0f} MiB of log "
        "(1 GiB of 1 KiB records, 1 GiB of 64 KiB records, one partition each, page cache warm), read by two "
        "consumers in turn: rdkafka_performance (fetch.message.max.bytes=8 MiB) and bench/fetch_sink.py (8 MiB "
        "fetches, record bytes spliced into /dev/null so the consumer is not the bottleneck; it counts batch bytes, "
        "about 1% more than the payload rdkafka_performance counts); "
        f"{FETCH_ROUNDS} rounds, the order rotated every round, raw loopback baselines (no broker: the same segment "
        "file streamed to a reader that reads into a 4 MiB buffer or splices into /dev/null) in the same rounds. "
        "Broker CPU is the broker process's (for the raw baselines: the sending thread's); machine CPU is all CPU "
        "time of the machine (broker, consumer and kernel) during the run.",
        "",
        "| consumer | fetch.mode | record | consume MB/s (median) | min..max | broker CPU s per GiB (median) | "
        "machine CPU s per GiB | RSS MiB | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (m, size, c), v in modes.items():
        lines.append(f"| {c} | {m} | {size // 1024} KiB | {median(v['mb']):.0f} | {min(v['mb']):.0f}..{max(v['mb']):.0f} | "
                     f"{median(v['cpu']):.2f} | {v['machine'] / v['gib']:.2f} | {v['rss']:.1f} | {v['hwm']:.1f} |")
    lines += ["", "| raw loopback | reader | MB/s (median) | min..max | sender CPU s per GiB (median) | machine CPU s per GiB |",
              "|---|---|---|---|---|---|"]
    for (m, r), v in raw.items():
        lines.append(f"| {m} | {r} | {median(v['mb']):.0f} | {min(v['mb']):.0f}..{max(v['mb']):.0f} | "
                     f"{median(v['cpu']):.2f} | {v['machine'] / v['gib']:.2f} |")
    lines += ["", "Paired per-round ratios, median (MB/s; CPU is broker CPU per GiB, lower is better):", ""]
    for c in CONSUMERS:
        r = RAW_READERS[c]
        sf_raw, copy_raw = raw[("sendfile", r)], raw[("copy", r)]
        parts = [f"broker sendfile (64 KiB) / raw sendfile {paired(modes[('sendfile', 65536, c)]['mb'], sf_raw['mb']):.2f}"]
        for size in FETCH_COUNTS:
            sf, cp = modes[("sendfile", size, c)], modes[("copy", size, c)]
            parts.append(f"sendfile / copy {size // 1024} KiB: MB/s {paired(sf['mb'], cp['mb']):.2f}, "
                         f"CPU {paired(sf['cpu'], cp['cpu']):.2f}")
        parts.append(f"raw sendfile / raw copy: MB/s {paired(sf_raw['mb'], copy_raw['mb']):.2f}, "
                     f"sender CPU {paired(sf_raw['cpu'], copy_raw['cpu']):.2f}")
        lines.append(f"- {c}: " + "; ".join(parts) + ".")
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
