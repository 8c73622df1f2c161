#!/usr/bin/env python3
"""Cold reads against live traffic (issue 19; benchmark, not a test).

One release broker on 127.0.0.1 holds OLD_GIB GiB of 1 KiB records, written first and synced. Then, in every
round and in the same run:
  alone     a producer sends one 100 B record per Produce request (acks=1) at RATE/s, measuring each request's
            latency, and an up-to-date consumer long-polls the same partition, measuring end-to-end latency
            (from the producer's send to the consumer's receipt), for ALONE_S seconds;
  warmup    the same while a second consumer reads the whole old log from offset 0 after its segments were
            evicted from the page cache (posix_fadvise DONTNEED, per file: no root, no whole-machine cache drop),
            with fetch.warmup.enable=true;
  off       the same with fetch.warmup.enable=false (a broker restarted on the same data: the old code path);
  hot       the same second consumer reading the same log from the page cache (read once before, no eviction),
            paced at the read cap: what serving that many MB/s costs the other clients with no disk read at all,
            the floor for the two cases above.
This machine's virtual disk reads at GB/s from its host's cache, so as root the broker runs in a cgroup that caps
its reads at BENCH_READ_MBPS (default 380, the disk's write speed and the issue's reading; 0: no cap), cgroup v1
blkio or v2 io.max; without root it runs uncapped and says so.
The lagging consumer is bench/fetch_sink.py (8 MiB fetches, record bytes spliced away), so its MB/s is the
broker's and the disk's, not a Python parser's. Only the records sent while the cold read ran are counted in
the two cold cases. Prints p50/p99/max per case and round and the lagging consumer's MB/s.
Usage: bench/cold_read.sh (builds the release broker first).
"""

import multiprocessing
import os
import socket
import struct
import sys
import tempfile
import shutil
import threading
import time
from pathlib import Path

sys.argv = sys.argv[:2] + ["-", "-"]  # broker_bench's argv: only the broker binary is used here
import broker_bench as bb  # noqa: E402
import fetch_sink  # noqa: E402
from pagecache_overhead import free_port, scrape  # noqa: E402

OLD_GIB, RATE, ALONE_S, ROUNDS = 3, 2000, 8, 3
CASES = ("alone", "warmup", "off", "hot")

_CRC_TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    _CRC_TABLE.append(c)


def crc32c(data):
    c = 0xFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def varint(n):
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def record_batch(count, value_size):
    """A RecordBatch v2 of `count` records without keys; the log assigns the offsets, so one batch is sent again
    and again."""
    records = b""
    for i in range(count):
        body = b"\0" + varint(0) + varint(i) + varint(-1) + varint(value_size) + b"v" * value_size + varint(0)
        records += varint(len(body)) + body
    now = int(time.time() * 1000)
    after_crc = struct.pack(">hiqqqhii", 0, count - 1, now, now, -1, -1, -1, count) + records
    head = struct.pack(">ibI", -1, 2, crc32c(after_crc))
    return struct.pack(">qi", 0, len(head) + len(after_crc)) + head + after_crc


class Producer:
    """Produce v3 requests over one connection, pipelined: `send` does not wait, `recv` takes the next response."""

    def __init__(self, addr, topic):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.topic = topic.encode()
        self.correlation = 0

    def send(self, batch):
        self.correlation += 1
        body = struct.pack(">hhih", 0, 3, self.correlation, 5) + b"bench" + struct.pack(">hhii", -1, 1, 5000, 1)
        body += struct.pack(">h", len(self.topic)) + self.topic + struct.pack(">iii", 1, 0, len(batch)) + batch
        self.sock.sendall(struct.pack(">i", len(body)) + body)

    def read_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk
        return bytes(buf)

    def recv(self):
        """(error code, base offset) of the next response."""
        (size,) = struct.unpack(">i", self.read_exact(4))
        frame = self.read_exact(size)
        (name_len,) = struct.unpack(">h", frame[8:10])
        error, base = struct.unpack(">hq", frame[10 + name_len + 8:10 + name_len + 18])
        return error, base


def create_topic(addr, topic):
    """Metadata v4 with auto-creation, then produce until the partition exists: (producer, next offset)."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as s:
        name = topic.encode()
        body = struct.pack(">hhih", 3, 4, 1, 5) + b"bench" + struct.pack(">ih", 1, len(name)) + name + b"\1"
        s.sendall(struct.pack(">i", len(body)) + body)
        s.recv(1 << 16)
    p = Producer(addr, topic)
    for _ in range(100):
        p.send(record_batch(1, 100))
        error, base = p.recv()
        if error == 0:
            return p, base + 1
        time.sleep(0.05)
    raise RuntimeError(f"cannot produce to {topic}: error {error}")


def fill(addr, topic, gib):
    """GiB of 1 KiB records, ~1 MB per request, 8 requests in flight."""
    p, _ = create_topic(addr, topic)
    batch = record_batch(1000, 1024)
    n = gib * (1 << 30) // len(batch)
    for i in range(n):
        p.send(batch)
        if i >= 8:
            assert p.recv()[0] == 0
    for _ in range(min(n, 8)):
        assert p.recv()[0] == 0
    p.sock.close()
    return n * 1000


def evict(data, topic):
    for path in (Path(data) / f"{topic}-0").glob("*.log"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


class ReadCap:
    """A cgroup capping the block-device reads of the processes put in it (see the module comment)."""

    def __init__(self, data, mbps):
        self.dir = None
        if mbps <= 0 or os.geteuid() != 0:
            return
        dev = os.stat(data).st_dev
        sys_dev = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
        if (sys_dev / "partition").exists():  # throttles apply to whole disks
            sys_dev = sys_dev.resolve().parent
        disk = (sys_dev / "dev").read_text().strip()
        v1, v2 = Path("/sys/fs/cgroup/blkio"), Path("/sys/fs/cgroup")
        if v1.is_dir():
            self.dir, limit = v1 / f"strata-cold-read-{os.getpid()}", ("blkio.throttle.read_bps_device", f"{disk} {mbps * 10**6}")
        elif "io" in (v2 / "cgroup.controllers").read_text().split():
            self.dir, limit = v2 / f"strata-cold-read-{os.getpid()}", ("io.max", f"{disk} rbps={mbps * 10**6}")
        else:
            return
        self.dir.mkdir()
        (self.dir / limit[0]).write_text(limit[1])
        self.mbps = mbps

    def add(self, pid):
        if self.dir:
            (self.dir / "cgroup.procs").write_text(str(pid))

    def describe(self):
        return f"broker reads capped at {self.mbps} MB/s ({self.dir})" if self.dir else "broker reads not capped"

    def remove(self):
        if self.dir:
            self.dir.rmdir()


def run_producer(addr, topic, stop, out):
    """One record per request at RATE/s until `stop` is set: [(send time, latency s, offset)]."""
    p, _ = create_topic(addr, topic)
    batch = record_batch(1, 100)
    sent, results = [], []
    pending = threading.Semaphore(0)  # one release per request sent, and a last one at the end

    def receive():
        while True:
            pending.acquire()
            if len(results) == len(sent):
                return
            error, base = p.recv()
            assert error == 0, error
            results.append((sent[len(results)], time.monotonic() - sent[len(results)], base))

    receiver = threading.Thread(target=receive)
    receiver.start()
    start = time.monotonic()
    i = 0
    while not stop.is_set():
        due = start + i / RATE
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent.append(time.monotonic())
        p.send(batch)
        pending.release()
        i += 1
    pending.release()
    receiver.join()
    out.put(results)


def run_consumer(addr, topic, offset, stop, out):
    """Long-polls `topic` from `offset`: {offset: receipt time}."""
    sink = fetch_sink.Sink(addr)
    seen = {}
    while not stop.is_set():
        _, _, after = sink.fetch(topic, 0, offset, 1 << 20)
        now = time.monotonic()
        for o in range(offset, after):
            seen[o] = now
        offset = after
    sink.close()
    out.put(seen)


def run_reader(addr, topic, end_offset, mbps, out):
    """Reads `topic` from offset 0, at most `mbps` MB/s if given: (MB/s, bytes)."""
    if not mbps:
        out.put(fetch_sink.consume(addr, topic, end_offset))
        return
    sink = fetch_sink.Sink(addr)
    offset, total, start = 0, 0, time.monotonic()
    while offset < end_offset:
        _, n, offset = sink.fetch(topic, 0, offset, 8 << 20)
        total += n
        time.sleep(max(0.0, start + total / (mbps * 1e6) - time.monotonic()))
    sink.close()
    out.put((total / (time.monotonic() - start) / 1e6, total))


def percentiles(latencies):
    s = sorted(latencies)
    if not s:
        return (float("nan"),) * 3
    return s[len(s) // 2] * 1e3, s[int(len(s) * 0.99)] * 1e3, s[-1] * 1e3


def measure(addr, case, rnd, old_records, pace_mbps):
    """One case: (producer p50/p99/max ms, consumer e2e p50/p99/max ms, samples, cold reader MB/s or None)."""
    ctx = multiprocessing.get_context("fork")
    stop, out_p, out_c = ctx.Event(), ctx.Queue(), ctx.Queue()
    topic = f"live-{case}-{rnd}"
    p, first = create_topic(addr, topic)
    p.sock.close()
    producer = ctx.Process(target=run_producer, args=(addr, topic, stop, out_p))
    consumer = ctx.Process(target=run_consumer, args=(addr, topic, first, stop, out_c))
    producer.start()
    consumer.start()
    time.sleep(1)  # both connected and steady
    t0 = time.monotonic()
    mb = None
    if case == "alone":
        time.sleep(ALONE_S)
    else:
        out_r = ctx.Queue()
        mbps = pace_mbps if case == "hot" else None
        reader = ctx.Process(target=run_reader, args=(addr, "old", old_records, mbps, out_r))
        reader.start()
        mb, _ = out_r.get()
        reader.join()
    t1 = time.monotonic()
    stop.set()
    produced, seen = out_p.get(), out_c.get()
    producer.join()
    consumer.join()
    window = [(t, lat, off) for t, lat, off in produced if t0 <= t <= t1]
    prod = percentiles([lat for _, lat, _ in window])
    e2e = percentiles([seen[off] - t for t, _, off in window if off in seen])
    return prod, e2e, len(window), mb


def main():
    broker_bin = sys.argv[1]
    work = Path(tempfile.mkdtemp(prefix="strata-coldbench-", dir=os.environ.get("BENCH_DIR")))
    data = work / "data"
    data.mkdir()
    results = {c: [] for c in CASES}
    port = free_port()
    cap = ReadCap(data, int(os.environ.get("BENCH_READ_MBPS", "380")))
    metrics_flags = ("--metrics.port", str(port), "--metrics.bind.address", "127.0.0.1")
    try:
        b = bb.Broker(data, *metrics_flags)
        try:
            old_records = fill(b.addr, "old", OLD_GIB)
        finally:
            b.stop()
        os.sync()  # writeback of the old log must not overlap the measurements
        warmups = []
        for rnd in range(ROUNDS):
            for case in bb.rotated(list(CASES), rnd):
                flags = ("--fetch.warmup.enable", "false" if case == "off" else "true")
                if case != "hot":
                    evict(data, "old")
                b = bb.Broker(data, *flags, *metrics_flags)
                try:
                    cap.add(b.proc.pid)
                    if case == "hot":
                        fetch_sink.consume(b.addr, "old", old_records)
                    r = measure(b.addr, case, rnd, old_records, int(os.environ.get("BENCH_READ_MBPS", "380")) or 380)
                    if case == "warmup":
                        warmups.append([scrape(port, f"strata_pagecache_{m}") for m in
                                        ("cold_fetches_total", "warmup_bytes_total", "warmup_seconds_total")])
                finally:
                    b.stop()
                results[case].append(r)
                (pp50, pp99, pmax), (e50, e99, emax), n, mb = r
                print(f"round {rnd} {case}: producer p50 {pp50:.2f} p99 {pp99:.2f} max {pmax:.1f} ms; consumer e2e "
                      f"p50 {e50:.2f} p99 {e99:.2f} max {emax:.1f} ms; {n} records"
                      + (f"; lagging consumer {mb:.0f} MB/s" if mb else ""), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        cap.remove()
    print(f"{cap.describe()}; {RATE} records/s of 100 B, one per request, acks=1\n")
    print(f"| case | round | producer p50 ms | p99 ms | max ms | consumer e2e p50 ms | p99 ms | max ms | records "
          f"| lagging consumer MB/s ({OLD_GIB} GiB; evicted, except in hot) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for case in CASES:
        for rnd, ((pp50, pp99, pmax), (e50, e99, emax), n, mb) in enumerate(results[case]):
            print(f"| {case} | {rnd} | {pp50:.2f} | {pp99:.2f} | {pmax:.1f} | {e50:.2f} | {e99:.2f} | {emax:.1f} | {n} | "
                  + (f"{mb:.0f} |" if mb else "- |"))
    for cold, gib, secs in warmups:
        print(f"\nwarmup broker: {cold:.0f} cold fetches, {gib / (1 << 30):.2f} GiB warmed in {secs:.2f} s of warm-up "
              "thread time (strata_pagecache_*)")


if __name__ == "__main__":
    main()
