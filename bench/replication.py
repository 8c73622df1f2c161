"""Replication benchmark (issue 14): three release brokers on 127.0.0.1, each a controller quorum voter, with
their /metrics endpoints on free ports and default timeouts (broker.session.timeout.ms 9000).

Reports, all measured in this run:
- produce throughput (rdkafka_performance, linger.ms=5) of RF=3 acks=all (min.insync.replicas=2) against RF=1
  acks=1, and RF=3 acks=1 (the same replication without the producer waiting for it), 1 KiB and 100 B records,
  topics of 3 partitions (leaders on all three brokers); the six cases in rotated order every round, `sync`
  between runs so that no run pays for the previous one's writeback; medians and the median of the per-round
  RF3/RF1 ratios;
- bytes the leaders served with sendfile and with copy (`strata_fetch_sendfile_bytes_total`,
  `strata_fetch_copy_bytes_total`) during each produce run until the followers caught up, next to the bytes
  produce requests appended to the leaders' logs (`kafka_server_brokertopicmetrics_bytesin_total`); no consumer
  runs then, so what is fetched is replication;
- broker CPU seconds (utime+stime of the three processes) and client CPU seconds per GiB produced;
- produce latency p50/p99 (`strata perf produce`: librdkafka with linger.ms=0, each record due on a fixed
  schedule and its latency counted from then, so a stall cannot hide as a lower send rate), RF=3 acks=all and RF=1
  acks=1, at half the peak of RF=3 acks=all (the median of its throughput runs), and at 2000 msg/s;
- failover: kill -9 (and SIGTERM: controlled shutdown) of a partition's leader, alternately not and also the
  active controller, while an idempotent acks=all producer (confluent-kafka) sends to it; time from the signal
  to the first acknowledgement of a record sent after it, and the longest wait of such a record; the broker is
  restarted and the ISRs full (preferred leaders elected back) before the next round;
- RSS of the brokers, and the load of the machine (what other processes used while this ran).

Usage: bench/replication.sh [ROUNDS]   (builds everything, then runs this with the venv's Python:
python bench/replication.py BROKER_BINARY LIBRDKAFKA_DIR [ROUNDS]; BENCH_DIR: where the temp dir goes)
"""

import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from statistics import median

from confluent_kafka import ElectionType, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BROKER, RDKAFKA = sys.argv[1], Path(sys.argv[2])
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 5
PERF = str(RDKAFKA / "examples" / "rdkafka_performance")
STRATA = str(Path(BROKER).parent / "strata")  # the CLI, built beside the broker
ENV = dict(os.environ, LD_LIBRARY_PATH=f"{RDKAFKA}/src:{RDKAFKA}/src-cpp")
CLK = os.sysconf("SC_CLK_TCK")
GIB = 1 << 30

PARTITIONS = 3
COUNTS = {1024: 1_000_000, 100: 4_000_000}  # records per throughput run: 1 GB / 400 MB of payload
# Every topic keeps at most about this much per partition (checked every 5 s, deleted 1 s later), so that the
# run does not fill the shared disk (a round writes about 10 GB over all replicas; at most about 10 GB stay).
RETENTION = {"retention.bytes": str(256 << 20), "segment.bytes": str(32 << 20), "file.delete.delay.ms": "1000"}
# (replication factor, acks, record size). RF=3 acks=1 replicates the same bytes without the producer waiting for
# it: next to RF=3 acks=all it tells the cost of replicating from the cost of waiting for it.
CASES = [(rf, acks, size) for size in COUNTS for rf, acks in ((3, -1), (1, 1), (3, 1))]
LATENCY_CASES = [c for c in CASES if c[:2] in ((3, -1), (1, 1))]
LATENCY_SECONDS = 8
LATENCY_ROUNDS = 2
REFERENCE_RATE = 2000  # msg/s of 100 B records: latency at a light load, next to the half-of-peak runs
# More latency runs of 1 KiB records at these msg/s (LATENCY_RATES=30000,60000), to see where the tail starts.
EXTRA_RATES = [int(r) for r in os.environ.get("LATENCY_RATES", "").split(",") if r.strip()]
KILL_ROUNDS = int(os.environ.get("KILL_ROUNDS", 4))  # alternately a leader that is not the active controller, and one that is
TERM_ROUNDS = int(os.environ.get("TERM_ROUNDS", 3))
PROBE_INTERVAL = 0.002  # the failover producer sends a record every 2 ms


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, timeout=60, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(interval)


def topic_name(rf, size):
    return f"rf{rf}-{size}"


def label(case):
    rf, acks, size = case
    return f"RF{rf} acks={'all' if acks == -1 else acks} {size} B"


# ---------------------------------------------------------------------------------------------------------------
# The machine


def machine_cpu_seconds():
    """Busy CPU time of the whole machine (every state but idle and iowait), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK


def own_cpu_seconds():
    """CPU time of this process (the admin clients and the failover producer run in it)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def busiest_processes(n=4):
    out = subprocess.run(["ps", "-eo", "pcpu,etimes,comm", "--sort=-pcpu", "--no-headers"], capture_output=True, text=True)
    return "; ".join(" ".join(line.split()) for line in out.stdout.splitlines()[:n])


def load_note(when):
    one, five, fifteen = os.getloadavg()
    line = f"{when}: load average {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs); busiest: {busiest_processes()}"
    print(line, flush=True)
    return line


# ---------------------------------------------------------------------------------------------------------------
# The cluster


class Cluster:
    """Three broker,controller nodes on fixed free ports of 127.0.0.1 (a restarted node is where it was)."""

    def __init__(self, root):
        self.root = root
        self.ports = [free_port() for _ in range(3)]
        self.cports = [free_port() for _ in range(3)]
        self.mports = [free_port() for _ in range(3)]
        self.voters = ",".join(f"{i}@127.0.0.1:{p}" for i, p in enumerate(self.cports))
        self.bootstrap = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        self.procs = [None] * 3
        self.cpu_done = [0.0] * 3  # CPU seconds of processes of this node that have exited
        self.exited = [None] * 3  # when a signalled process exited (monotonic)

    def start(self, i):
        args = [BROKER, "--node.id", str(i), "--cluster.id", "bench-replication",
                "--controller.quorum.voters", self.voters,
                "--listeners", f"PLAINTEXT://127.0.0.1:{self.ports[i]},CONTROLLER://127.0.0.1:{self.cports[i]}",
                "--log.dirs", os.path.join(self.root, f"data{i}"),
                "--metrics.port", str(self.mports[i]), "--metrics.bind.address", "127.0.0.1",
                "--log.retention.check.interval.ms", "5000"]
        log = open(os.path.join(self.root, f"broker{i}.log"), "ab")
        self.procs[i] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)

    def signal(self, i, sig):
        """Sends `sig` to node i; returns when it was sent (monotonic). A thread notes when the process exits."""
        self.cpu_done[i] += self.cpu_seconds_of(i)  # its last reading: /proc/PID goes away with it
        proc, self.exited[i] = self.procs[i], None
        proc.send_signal(sig)
        at = time.monotonic()

        def wait():
            proc.wait()
            self.exited[i] = time.monotonic()
        threading.Thread(target=wait, daemon=True).start()
        return at

    def reap(self, i, timeout=60):
        """Waits for node i (signalled) to exit; returns when it did (monotonic)."""
        exited = wait_for(f"broker {i} to exit", lambda: self.exited[i], timeout=timeout, interval=0.01)
        self.procs[i] = None
        return exited

    def stop_all(self):
        for p in self.procs:
            if p is not None:
                p.kill()
                p.wait()

    def cpu_seconds_of(self, i):
        fields = Path(f"/proc/{self.procs[i].pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime

    def cpu_seconds(self):
        """utime+stime of the three brokers (running processes only)."""
        return sum(self.cpu_seconds_of(i) for i in range(3) if self.procs[i] is not None)

    def memory_mib(self, i, key):
        for line in Path(f"/proc/{self.procs[i].pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def metrics(self, i):
        """Node i's /metrics as {(name, labels): value}."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.mports[i]}/metrics", timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            m = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$", line)
            if m:
                out[(m.group(1), m.group(2) or "")] = float(m.group(3))
        return out

    def metric(self, i, name, label=""):
        """Sum of the series of `name` on node i whose labels contain `label`."""
        return sum(v for (n, labels), v in self.metrics(i).items() if n == name and label in labels)

    def active_controller(self):
        for i in range(3):
            if self.procs[i] is not None:
                try:
                    if self.metric(i, "kafka_controller_kafkacontroller_activecontrollercount") == 1:
                        return i
                except OSError:
                    pass
        return -1

    def ready(self):
        """Three brokers registered and unfenced, as the active controller counts them."""
        c = self.active_controller()
        return c >= 0 and self.metric(c, "kafka_controller_kafkacontroller_activebrokercount") == 3

    def admin(self):
        return AdminClient({"bootstrap.servers": self.bootstrap})


def partitions_of(admin, topic):
    """{partition: (leader, replicas, isr)} from Metadata."""
    md = admin.list_topics(topic=topic, timeout=10).topics.get(topic)
    if md is None or md.error is not None:
        return {}
    return {p.id: (p.leader, list(p.replicas), list(p.isrs)) for p in md.partitions.values()}


def in_sync(cluster, admin, topics, preferred=False):
    """Every partition of `topics` has a leader (its preferred one if asked) and all its replicas in the ISR, in
    Metadata and in every leader's own view (its under-replicated partitions metric)."""
    try:
        return in_sync_now(cluster, admin, topics, preferred)
    except (OSError, KafkaException):
        return False  # a broker still starting


def in_sync_now(cluster, admin, topics, preferred):
    for t in topics:
        parts = partitions_of(admin, t)
        if len(parts) != PARTITIONS:
            return False
        for leader, replicas, isr in parts.values():
            if leader < 0 or sorted(isr) != sorted(replicas) or (preferred and leader != replicas[0]):
                return False
    return all(cluster.metric(i, "kafka_server_replicamanager_underreplicatedpartitions") == 0 for i in range(3))


def create_topics(cluster, admin):
    topics = [NewTopic(topic_name(rf, size), PARTITIONS, rf,
                       config={**RETENTION, "min.insync.replicas": "2"} if rf == 3 else RETENTION)
              for rf, size in sorted({(rf, size) for rf, _, size in CASES})]
    topics.append(NewTopic("failover", PARTITIONS, 3, config={"min.insync.replicas": "2"}))
    for f in admin.create_topics(topics, operation_timeout=30).values():
        f.result(60)
    names = [t.topic for t in topics]
    wait_for("topics in sync", lambda: in_sync(cluster, admin, names))
    for t in names:
        print(f"{t}: leaders " + ", ".join(f"p{p}->{l} isr {isr}" for p, (l, _, isr) in sorted(partitions_of(admin, t).items())),
              flush=True)
    return names


# ---------------------------------------------------------------------------------------------------------------
# Throughput and latency (rdkafka_performance)


CLIENT_CPU = [0.0]  # CPU seconds of the rdkafka_performance runs


def children_cpu_seconds():
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def perf(*args, timeout=300):
    before = children_cpu_seconds()
    out = subprocess.run([PERF, *args], env=ENV, capture_output=True, text=True, timeout=timeout)
    CLIENT_CPU[0] += children_cpu_seconds() - before
    if out.returncode != 0:
        raise RuntimeError(f"rdkafka_performance {args} failed: {out.stderr[-2000:]}")
    return out.stdout + out.stderr


def produce(cluster, topic, size, count, acks_, *extra):
    out = perf("-P", "-t", topic, "-b", cluster.bootstrap, "-s", str(size), "-c", str(count), "-a", str(acks_), "-q",
               *extra)
    m = re.search(r"\d+ delivered \(offset -?\d+, (\d+) failed\) in \d+ms: (\d+) msgs/s and ([\d.]+) MB/s", out)
    if not m:
        raise RuntimeError(f"no produce summary in: {out[-1500:]}")
    if int(m.group(1)):
        raise RuntimeError(f"{m.group(1)} records failed: {out[-1500:]}")
    return int(m.group(2)), float(m.group(3))


def counters(cluster, topic):
    """Counters summed over the brokers: bytes served by Fetch with sendfile and with copy, bytes produce requests
    appended to `topic` (on its leaders), broker CPU; and the machine's CPU and the time."""
    s = c = log = 0.0
    for i in range(3):
        m = cluster.metrics(i)
        s += sum(v for (n, _), v in m.items() if n == "strata_fetch_sendfile_bytes_total")
        c += sum(v for (n, _), v in m.items() if n == "strata_fetch_copy_bytes_total")
        log += m.get(("kafka_server_brokertopicmetrics_bytesin_total", f'{{topic="{topic}"}}'), 0.0)
    return dict(sendfile=s, copy=c, log=log, cpu=cluster.cpu_seconds(), machine=machine_cpu_seconds(), wall=time.monotonic())


def caught_up(cluster, topic):
    """Every replica of every partition of `topic` has the same log end offset (kafka_log_log_logendoffset)."""
    ends = {}
    for i in range(3):
        for (n, labels), v in cluster.metrics(i).items():
            if n == "kafka_log_log_logendoffset" and f'topic="{topic}"' in labels:
                ends.setdefault(labels, set()).add(v)
    return len(ends) == PARTITIONS and all(len(v) == 1 for v in ends.values())


def throughput_run(cluster, rf, acks, size):
    """One rdkafka_performance run; the counters are read once the followers have everything (with acks=1 they
    still fetch after the producer is done), so CPU and bytes served cover all the replication of the run."""
    topic = topic_name(rf, size)
    os.sync()  # the previous run's writeback must not land in this one
    before = counters(cluster, topic)
    client0 = CLIENT_CPU[0]
    rate, mb = produce(cluster, topic, size, COUNTS[size], acks,
                       "-X", "linger.ms=5", "-X", "batch.size=1000000", "-X", "queue.buffering.max.kbytes=1048576")
    wait_for(f"the followers of {topic}", lambda: caught_up(cluster, topic), timeout=60, interval=0.05)
    after = counters(cluster, topic)
    delta = {k: after[k] - before[k] for k in before}
    gib = size * COUNTS[size] / GIB
    client = CLIENT_CPU[0] - client0
    return dict(rate=rate, mb=mb, leader_log=delta["log"], sendfile=delta["sendfile"], copy=delta["copy"],
                cpu_per_gib=delta["cpu"] / gib, client_per_gib=client / gib,
                others=(delta["machine"] - delta["cpu"] - client) / delta["wall"])


def rotated(items, rnd):
    k = rnd % len(items)
    return items[k:] + items[:k]


def throughput(cluster):
    results = {case: [] for case in CASES}
    for rnd in range(ROUNDS):
        for case in rotated(CASES, rnd):
            results[case].append(throughput_run(cluster, *case))
        print(f"throughput round {rnd}: " + ", ".join(
            f"{label(case)} {v[-1]['rate']:,} msg/s" for case, v in results.items()), flush=True)
    return results


def latency_run(cluster, rf, acks, size, rate):
    """One run of `strata perf produce` at `rate` for LATENCY_SECONDS: its achieved msg/s, failed records and
    latency percentiles (ms, from each record's scheduled time)."""
    args = [STRATA, "--brokers", cluster.bootstrap, "--format", "json", "perf", "produce", topic_name(rf, size),
            "-n", str(rate * LATENCY_SECONDS), "-s", str(size), "-r", str(rate), "--acks", str(acks)]
    before = children_cpu_seconds()
    out = subprocess.run(args, capture_output=True, text=True, timeout=LATENCY_SECONDS * 4 + 60)
    CLIENT_CPU[0] += children_cpu_seconds() - before
    if not out.stdout.strip():
        raise RuntimeError(f"strata perf produce failed: {out.stderr[-1500:]}")
    r = json.loads(out.stdout)
    return dict(rate=r["records_per_sec"], failed=r["failed"], **r["latency_ms"])


def latency(cluster, rates):
    """Per (case, rate): one result per round, over LATENCY_ROUNDS rotated rounds. The rates: half the RF3
    acks=all peak of the size, and REFERENCE_RATE (100 B), a load this machine carries with room to spare."""
    runs = [(*case, rates[case[2]]) for case in LATENCY_CASES]
    runs += [(rf, acks, 100, REFERENCE_RATE) for rf, acks in ((3, -1), (1, 1))]
    runs += [(rf, acks, 1024, rate) for rate in EXTRA_RATES for rf, acks in ((3, -1), (1, 1))]
    results = {run: [] for run in runs}
    for rnd in range(LATENCY_ROUNDS):
        for run in rotated(runs, rnd):
            os.sync()
            results[run].append(latency_run(cluster, *run))
        print(f"latency round {rnd}: " + ", ".join(
            f"{label(run[:3])} at {run[3]:,}/s p99 {v[-1]['p99']:.2f} ms" for run, v in results.items()), flush=True)
    return results


# ---------------------------------------------------------------------------------------------------------------
# Failover


class Prober:
    """An idempotent acks=all producer sending a record to one partition every PROBE_INTERVAL, on its own thread;
    keeps (sent, acknowledged or failed, error) of every record."""

    def __init__(self, cluster, topic, partition):
        self.producer = Producer({"bootstrap.servers": cluster.bootstrap, "enable.idempotence": True, "acks": "all",
                                  "linger.ms": 0})
        self.topic, self.partition = topic, partition
        self.outcomes = []
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        next_send = time.monotonic()
        while self.running:
            sent = time.monotonic()
            try:
                self.producer.produce(self.topic, b"x" * 100, partition=self.partition,
                                      on_delivery=lambda err, msg, sent=sent: self.outcomes.append((sent, time.monotonic(), err)))
            except BufferError:
                pass
            next_send += PROBE_INTERVAL
            while self.running and time.monotonic() < next_send:
                self.producer.poll(max(0.0, next_send - time.monotonic()))

    def first_ack_after(self, t):
        acked = [done for sent, done, err in list(self.outcomes) if sent > t and err is None]
        return min(acked) if acked else None

    def longest_wait_after(self, t):
        """The longest send-to-acknowledgement time of the records sent after `t`."""
        return max(done - sent for sent, done, err in list(self.outcomes) if sent > t and err is None)

    def errors(self):
        return sum(1 for _, _, err in list(self.outcomes) if err is not None)

    def stop(self):
        self.running = False
        self.thread.join()
        self.producer.flush(30)


def pick_partition(admin, controller, want_controller):
    """A partition of "failover" whose leader is (or is not) the active controller, if there is one."""
    parts = partitions_of(admin, "failover")
    match = [p for p, (leader, _, _) in sorted(parts.items()) if (leader == controller) == want_controller]
    p = match[0] if match else min(parts)
    return p, parts[p][0]


def heal(cluster, admin, node, topics):
    """Restarts `node`, waits for every ISR to be full, moves leaderships back to the preferred replicas.
    Returns the seconds from the restart to full ISRs."""
    started = time.monotonic()
    cluster.start(node)
    wait_for("ISR full after the restart", lambda: in_sync(cluster, admin, topics), timeout=120, interval=0.2)
    healed = time.monotonic() - started
    tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
    admin.elect_leaders(ElectionType.PREFERRED, tps).result(30)  # per-partition "not needed" errors are fine
    wait_for("preferred leaders", lambda: in_sync(cluster, admin, topics, preferred=True), timeout=60, interval=0.2)
    return healed


def failover_round(cluster, admin, topics, sig, want_controller):
    """One fault: the prober runs until the signalled broker has exited and a record sent after that was
    acknowledged too (with SIGTERM the old leader still acknowledges while its leaderships move), plus 1 s."""
    controller = cluster.active_controller()
    partition, leader = pick_partition(admin, controller, want_controller)
    prober = Prober(cluster, "failover", partition)
    try:
        wait_for("the prober's first acknowledgements", lambda: prober.first_ack_after(0) is not None, timeout=30)
        time.sleep(1)
        at = cluster.signal(leader, sig)
        first = wait_for("an acknowledgement after the fault", lambda: prober.first_ack_after(at), timeout=120, interval=0.005)
        exited = cluster.reap(leader)
        wait_for("an acknowledgement after the exit", lambda: prober.first_ack_after(exited), timeout=120, interval=0.005)
        time.sleep(1)
    finally:
        prober.stop()
    healed = heal(cluster, admin, leader, topics)
    return dict(partition=partition, leader=leader, was_controller=leader == controller, ms=(first - at) * 1000,
                stall_ms=prober.longest_wait_after(at) * 1000, exit_s=exited - at, errors=prober.errors(),
                healed=healed)


def failovers(cluster, admin, topics):
    out = []
    for sig, rounds in ((signal.SIGKILL, KILL_ROUNDS), (signal.SIGTERM, TERM_ROUNDS)):
        for rnd in range(rounds):
            r = failover_round(cluster, admin, topics, sig, want_controller=rnd % 2 == 1)
            r["signal"] = "kill -9" if sig == signal.SIGKILL else "SIGTERM"
            out.append(r)
            print(f"failover {r['signal']} of broker {r['leader']} (leader of failover-{r['partition']}"
                  f"{', the active controller' if r['was_controller'] else ''}): {r['ms']:.0f} ms, longest wait "
                  f"{r['stall_ms']:.0f} ms, exited after {r['exit_s']:.1f} s, {r['errors']} failed deliveries, "
                  f"ISR full {r['healed']:.1f} s after the restart", flush=True)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Report


def rss_line(cluster, when):
    parts = [f"broker {i} {cluster.memory_mib(i, 'VmRSS'):.1f} MiB (peak {cluster.memory_mib(i, 'VmHWM'):.1f})"
             for i in range(3)]
    return f"{when}: " + ", ".join(parts)


def throughput_table(results):
    lines = [f"Throughput: {ROUNDS} rounds, the six cases in rotated order; medians (min..max) over the rounds. "
             "Rest of the machine: CPU time not used by the brokers or the client during the run (other processes, "
             "interrupts), in cores.", "",
             "| record | replication | acks | produce msg/s | MB/s | appended to leaders, MB | served with sendfile, MB "
             "| with copy, MB | sendfile / appended | broker CPU s per GiB | client CPU s per GiB | rest of the machine, cores |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (rf, acks, size), runs in results.items():
        rates = [r["rate"] for r in runs]

        def med(key, scale=1.0, fmt=".1f"):
            return f"{median(r[key] for r in runs) / scale:{fmt}}"
        lines.append(
            f"| {size} B | RF={rf} | {'all' if acks == -1 else acks} | {median(rates):,.0f} ({min(rates):,}..{max(rates):,}) | "
            f"{med('mb')} | {med('leader_log', 1e6)} | {med('sendfile', 1e6)} | {max(r['copy'] for r in runs) / 1e6:.1f} | "
            f"{median(r['sendfile'] / r['leader_log'] for r in runs):.2f} | {med('cpu_per_gib', fmt='.2f')} | "
            f"{med('client_per_gib', fmt='.2f')} | {med('others', fmt='.2f')} |")
    lines.append("")
    for size in COUNTS:
        rf3, rf1, rf3_acks1 = results[(3, -1, size)], results[(1, 1, size)], results[(3, 1, size)]
        ratio = median(a["rate"] / b["rate"] for a, b in zip(rf3, rf1))
        cpu = median(a["cpu_per_gib"] / b["cpu_per_gib"] for a, b in zip(rf3, rf1))
        lines.append(f"- {size} B: RF3/RF1 throughput {ratio:.2f} (median of the per-round ratios; target >= 0.5: "
                     f"{'met' if ratio >= 0.5 else 'MISSED'}); RF3/RF1 broker CPU per GiB {cpu:.2f}; RF3 acks=all / RF3 acks=1 throughput "
                     f"{median(a['rate'] / b['rate'] for a, b in zip(rf3, rf3_acks1)):.2f}")
    return lines


def latency_table(results):
    lines = ["| record | replication | acks | target msg/s | achieved msg/s per run | failed | p50 ms | p99 ms | "
             "p99 per run | p99.9 ms | max ms |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (rf, acks, size, rate), runs in results.items():
        lines.append(f"| {size} B | RF={rf} | {'all' if acks == -1 else acks} | {rate:,} | "
                     f"{', '.join(format(r['rate'], ',.0f') for r in runs)} | {sum(r['failed'] for r in runs)} | "
                     f"{median(r['p50'] for r in runs):.2f} | {median(r['p99'] for r in runs):.2f} | "
                     f"{', '.join(format(r['p99'], '.2f') for r in runs)} | {median(r['p999'] for r in runs):.2f} | "
                     f"{max(r['max'] for r in runs):.1f} |")
    lines.append("")
    for (rf, acks, size, rate), runs in results.items():
        if (rf, acks) == (3, -1) and rate != REFERENCE_RATE and rate not in EXTRA_RATES:
            p99 = median(r["p99"] for r in runs)
            lines.append(f"- {size} B RF3 acks=all at half the peak ({rate:,} msg/s): p99 {p99:.2f} ms (median of the "
                         f"runs; target <= 5 ms: {'met' if p99 <= 5 else 'MISSED'})")
    return lines


def failover_table(rounds):
    lines = ["| signal | broker (leader of) | was the active controller | signal to first ack of a record sent after it "
             "| longest send-to-ack of records sent after it | signal to process exit | failed deliveries "
             "| restart to full ISR |", "|---|---|---|---|---|---|---|---|"]
    for r in rounds:
        lines.append(f"| {r['signal']} | {r['leader']} (failover-{r['partition']}) | {'yes' if r['was_controller'] else 'no'} "
                     f"| {r['ms']:.0f} ms | {r['stall_ms']:.0f} ms | {r['exit_s']:.1f} s | {r['errors']} | {r['healed']:.1f} s |")
    for sig in ("kill -9", "SIGTERM"):
        ms = [r["ms"] for r in rounds if r["signal"] == sig]
        lines.append(f"- {sig}: signal to first ack median {median(ms):.0f} ms, max {max(ms):.0f} ms (target < 10 s: "
                     f"{'met' if max(ms) < 10_000 else 'MISSED'})")
    return lines


def report(tp, peaks, lat, fo, rss, loads, contention):
    lines = [*loads, contention, "", *throughput_table(tp), "",
             f"Latency (strata perf produce -r RATE, librdkafka linger.ms=0, latency from each record's scheduled "
             f"time, {LATENCY_SECONDS} s per run; {LATENCY_ROUNDS} rounds rotated; RATE = half the median RF3 "
             f"acks=all throughput ({', '.join(f'{s} B: {p:,}' for s, p in peaks.items())} msg/s), and "
             f"{REFERENCE_RATE:,} msg/s of 100 B):", "",
             *latency_table(lat), "", *failover_table(fo), "", *rss]
    print("\n".join(lines))


def run(cluster):
    for i in range(3):
        cluster.start(i)
    admin = cluster.admin()
    wait_for("three brokers in service", cluster.ready)
    topics = create_topics(cluster, admin)
    tp = throughput(cluster)
    peaks = {size: round(median(r["rate"] for r in tp[(3, -1, size)])) for size in COUNTS}
    lat = latency(cluster, {size: peak // 2 for size, peak in peaks.items()})
    rss = [rss_line(cluster, "RSS after throughput and latency (the original processes)")]
    fo = failovers(cluster, admin, topics)
    rss.append(rss_line(cluster, "RSS at the end (each broker was restarted during the failover rounds)"))
    return tp, peaks, lat, fo, rss


def main():
    loads = [load_note("start")]
    machine0, own0, wall0 = machine_cpu_seconds(), own_cpu_seconds(), time.monotonic()
    with tempfile.TemporaryDirectory(prefix="strata-replication-", dir=os.environ.get("BENCH_DIR")) as root:
        cluster = Cluster(root)
        try:
            tp, peaks, lat, fo, rss = run(cluster)
            brokers = cluster.cpu_seconds() + sum(cluster.cpu_done)
        except BaseException:
            for i in range(3):
                tail = Path(root, f"broker{i}.log").read_text(errors="replace").splitlines()[-15:]
                print(f"--- broker{i}.log (last lines)\n" + "\n".join(tail), file=sys.stderr)
            raise
        finally:
            cluster.stop_all()
    wall = time.monotonic() - wall0
    ours = own_cpu_seconds() - own0 + CLIENT_CPU[0]
    others = machine_cpu_seconds() - machine0 - brokers - ours
    loads.append(load_note("end"))
    contention = (f"Run took {wall:.0f} s; CPU used: brokers {brokers:.0f} s, clients and this script "
                  f"{ours:.0f} s, other processes {max(0.0, others):.0f} s "
                  f"({max(0.0, others) / wall:.2f} cores on average)")
    report(tp, peaks, lat, fo, rss, loads, contention)


if __name__ == "__main__":
    main()
