"""Controller quorum benchmark: three voters on 127.0.0.1 (metadata log fsynced on every append).

Reports, next to this machine's fdatasync latency measured in the same run (the floor of a durable append):
- topic creations per second through the quorum, sequential and with 8 concurrent clients;
- p50/p99 from CreateTopics sent (through a broker that is not the active controller) to the topic visible in
  Metadata on all three brokers;
- leader failover: kill -9 of the active controller to the next acknowledged CreateTopics (3 rounds).

Usage: python bench/quorum.py BROKER_BINARY STRATA_CLI [TOPICS]
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka.admin import AdminClient, NewTopic


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p / 100))]


def fdatasync_ms(directory, n=200):
    path = os.path.join(directory, "fsync-probe")
    out = []
    with open(path, "wb") as f:
        for _ in range(n):
            f.write(b"x" * 4096)
            t = time.perf_counter()
            os.fdatasync(f.fileno())
            out.append((time.perf_counter() - t) * 1000)
    os.remove(path)
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Quorum:
    def __init__(self, binary, cli, root):
        self.binary, self.cli, self.root = binary, cli, root
        self.cports = [free_port() for _ in range(3)]
        self.ports = [free_port() for _ in range(3)]
        self.voters = ",".join(f"{i}@127.0.0.1:{p}" for i, p in enumerate(self.cports))
        self.procs = [None] * 3

    def start(self, i):
        args = [self.binary, "--node.id", str(i), "--cluster.id", "bench", "--controller.quorum.voters", self.voters,
                "--listeners", f"PLAINTEXT://127.0.0.1:{self.ports[i]},CONTROLLER://127.0.0.1:{self.cports[i]}",
                "--log.dirs", os.path.join(self.root, f"data{i}"), "--metrics.port", "0"]
        log = open(os.path.join(self.root, f"broker{i}.log"), "ab")
        self.procs[i] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)

    def admin(self, i):
        return AdminClient({"bootstrap.servers": f"127.0.0.1:{self.ports[i]}"})

    def leader(self):
        """The quorum's leader, from DescribeQuorum (the strata CLI): clients are told another controller id."""
        for i in range(3):
            if self.procs[i] is None:
                continue
            out = subprocess.run([self.cli, "--brokers", f"127.0.0.1:{self.ports[i]}", "cluster", "info", "--format", "json"],
                                 capture_output=True, timeout=30)
            if out.returncode == 0:
                quorum = json.loads(out.stdout).get("quorum") or {}
                if quorum.get("leader_id", -1) >= 0:
                    return quorum["leader_id"]
        return -1

    def stop_all(self):
        for p in self.procs:
            if p is not None:
                p.kill()
                p.wait()


def create(admin, name, timeout=30):
    admin.create_topics([NewTopic(name, 1, 1)], operation_timeout=timeout)[name].result(timeout)


def visible_everywhere(q, name, deadline):
    admins = [q.admin(i) for i in range(3) if q.procs[i] is not None]
    while time.time() < deadline:
        if all(name in a.list_topics(topic=name, timeout=5).topics and
               a.list_topics(topic=name, timeout=5).topics[name].error is None for a in admins):
            return True
        time.sleep(0.001)
    return False


def main():
    binary, cli = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as root:
        sync = fdatasync_ms(root)
        q = Quorum(binary, cli, root)
        for i in range(3):
            q.start(i)
        try:
            deadline = time.time() + 60
            while q.leader() < 0:
                assert time.time() < deadline, "no controller"
                time.sleep(0.2)
            time.sleep(2)
            leader = q.leader()
            via = next(i for i in range(3) if i != leader)
            a = q.admin(via)
            # Sequential: CreateTopics through a broker that passes it on, then visible on all three.
            lat = []
            t0 = time.time()
            for k in range(n):
                name = f"seq-{k}"
                t = time.perf_counter()
                create(a, name)
                assert visible_everywhere(q, name, time.time() + 30), name
                lat.append((time.perf_counter() - t) * 1000)
            seq_rate = n / (time.time() - t0)
            # 8 concurrent clients, creation acknowledged (answered by the broker that took it).
            done = []

            def worker(w):
                ad = q.admin(w % 3)
                for k in range(n // 8):
                    create(ad, f"par-{w}-{k}")
                    done.append(1)
            t0 = time.time()
            ts = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            par_rate = len(done) / (time.time() - t0)
            # Failover, three rounds: kill -9 the active controller, create through a survivor until acknowledged.
            failovers = []
            for r in range(3):
                leader = q.leader()
                survivor = next(i for i in range(3) if i != leader)
                q.procs[leader].send_signal(signal.SIGKILL)
                q.procs[leader].wait()
                killed = time.perf_counter()
                q.procs[leader] = None
                k = 0
                while True:
                    try:
                        # A new client each time: librdkafka keeps sending admin requests to the controller it
                        # knew (the killed one) until its metadata refreshes.
                        create(q.admin(survivor), f"fo-{r}-{k}", timeout=10)
                        break
                    except Exception:
                        k += 1
                failovers.append((time.perf_counter() - killed) * 1000)
                q.start(leader)
                time.sleep(3)
        finally:
            q.stop_all()
    print(f"fdatasync (4 KiB, same disk): p50 {pct(sync, 50):.2f} ms, p99 {pct(sync, 99):.2f} ms")
    print(f"sequential CreateTopics through a non-controller broker, visible on all 3: {seq_rate:.1f} topics/s, "
          f"p50 {pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms (n={n})")
    print(f"8 concurrent clients: {par_rate:.1f} topics/s acknowledged")
    print("failover, kill -9 of the active controller to the next acknowledged CreateTopics: "
          + ", ".join(f"{f:.0f} ms" for f in failovers))


if __name__ == "__main__":
    main()
