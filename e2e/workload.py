#!/usr/bin/env python3
"""Background workload of the real-node e2e: proves no acknowledged record is lost while the cluster is
rolled, scaled, killed and reconfigured underneath it (confluent-kafka).

    workload.py run BOOTSTRAP TOPIC DIR [RATE]   # until SIGTERM/SIGINT; exit 0 only if the verdict is clean
    workload.py self-check                       # the verdict itself must be able to fail

`run`: an idempotent acks=all producer sends RATE records/s (key and value carry a unique sequence
number) and one consumer of the fixed group `workload` (committing offsets) reads them back. Every second
DIR/counts holds the counts so far (one JSON line, replaced atomically); every client error goes to
stderr as it happens. On the signal the producer flushes, the group consumer reads on until it has seen
every acknowledged record (or 120 s pass), then a fresh consumer re-reads the whole topic: a record the
group saw early and the cluster lost later is missing there. DIR/report.json gets the verdict.
"""
import json
import os
import signal
import sys
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

GROUP = "workload"
DRAIN_SECONDS = 120
PAD = "x" * 100  # a value of realistic size, checked on read


def verdict(acked, seen, in_log, delivery_errors, fatal_errors, reordered=0, corrupt=0):
    """The final counts. `acked`: sequence numbers acknowledged; `seen`: sequence number -> times the group
    consumed it; `in_log`: sequence numbers in the topic at the end. Failures: `lost` (acknowledged, not in
    the topic at the end), `missed_by_group` (acknowledged, never delivered to the group), `non_retriable`
    (delivery reports with an error, i.e. librdkafka gave up retrying, and fatal client errors), records
    `reordered` within a partition and `corrupt` values."""
    lost = sorted(s for s in acked if s not in in_log)
    missed = sum(1 for s in acked if s not in seen)
    failures = len(lost) + missed + delivery_errors + fatal_errors + reordered + corrupt
    return {"acked": len(acked), "lost": len(lost), "lost_examples": lost[:10], "missed_by_group": missed,
            "non_retriable": delivery_errors + fatal_errors, "duplicates": sum(n - 1 for n in seen.values()),
            "reordered": reordered, "corrupt": corrupt, "ok": failures == 0}


def self_check():
    """Fabricated runs with a loss and with an error: the verdict must catch both."""
    acked = set(range(10))
    v = verdict(acked, {s: 1 for s in range(10)} | {3: 2}, set(range(8)), 0, 0)
    assert (v["lost"], v["lost_examples"], v["duplicates"], v["ok"]) == (2, [8, 9], 1, False), v
    v = verdict(acked, {s: 1 for s in range(9)}, acked, 0, 0)
    assert (v["lost"], v["missed_by_group"], v["ok"]) == (0, 1, False), v
    v = verdict(acked, {s: 1 for s in acked}, acked, 1, 0)
    assert (v["lost"], v["non_retriable"], v["ok"]) == (0, 1, False), v
    assert verdict(acked, {s: 1 for s in range(11)}, set(range(11)), 0, 0)["ok"]
    print("self-check passed: lost records, records the group missed and non-retriable errors are detected")


def note(kind, err):
    """One line per client error: its code, whether librdkafka calls it retriable or fatal."""
    print(f"{time.strftime('%H:%M:%S')} {kind}: {err.name()} retriable={err.retriable()} fatal={err.fatal()} "
          f"{err.str()}", file=sys.stderr, flush=True)


class Workload:
    def __init__(self, bootstrap, topic, out_dir, rate):
        self.bootstrap, self.topic, self.out_dir, self.rate = bootstrap, topic, out_dir, rate
        self.lock = threading.Lock()
        self.acked, self.seen = set(), {}
        self.sent = self.delivery_errors = self.fatal_errors = self.transient_errors = 0
        self.reordered = self.corrupt = 0
        self.last = {}  # partition -> (offset, seq) of the last record the group read, for the order check
        self.stopping = threading.Event()
        self.flushed = threading.Event()
        self.producer = Producer(self.config({"enable.idempotence": True, "acks": "all", "linger.ms": 5}))

    def config(self, extra):
        return {"bootstrap.servers": self.bootstrap, "error_cb": self.on_error} | extra

    def on_error(self, err):
        # Broker-down and connection errors arrive here too; librdkafka retries those itself.
        note("client error", err)
        with self.lock:
            if err.fatal():
                self.fatal_errors += 1
            else:
                self.transient_errors += 1

    def on_delivery(self, err, msg):
        with self.lock:
            if err is None:
                self.acked.add(int(msg.key()))
            else:
                self.delivery_errors += 1
        if err is not None:
            note(f"delivery of {msg.key().decode()} failed", err)

    def produce(self):
        start = time.monotonic()
        while not self.stopping.is_set():
            due = int((time.monotonic() - start) * self.rate)
            while self.sent < due:
                seq = str(self.sent)
                try:
                    self.producer.produce(self.topic, key=seq, value=f"{seq}:{PAD}", on_delivery=self.on_delivery)
                except BufferError:
                    break  # the queue is full (brokers unreachable for long): try again on the next tick
                self.sent += 1
            self.producer.poll(0.01)
        # Every record gets its delivery report: success, or an error after message.timeout.ms.
        while self.producer.flush(5) > 0:
            pass

    def check(self, m):
        """The record's sequence number, or None (counted) if its value is not what was sent."""
        seq = int(m.key())
        if m.value().decode() == f"{seq}:{PAD}":
            return seq
        print(f"record {seq} at {m.partition()}/{m.offset()} has value {m.value()[:40]!r}", file=sys.stderr)
        with self.lock:
            self.corrupt += 1
        return None

    def consume(self):
        """The consumer group, until the producer has flushed and every acknowledged record arrived."""
        consumer = Consumer(self.config({"group.id": GROUP, "auto.offset.reset": "earliest",
                                          "enable.auto.commit": True, "auto.commit.interval.ms": 1000}))
        consumer.subscribe([self.topic])
        deadline = None
        while True:
            if self.flushed.is_set():
                deadline = deadline or time.monotonic() + DRAIN_SECONDS
                with self.lock:
                    if all(s in self.seen for s in self.acked) or time.monotonic() > deadline:
                        break
            for m in consumer.consume(500, timeout=0.5):
                if m.error():
                    note("consumer error", m.error())
                    with self.lock:
                        self.fatal_errors += m.error().fatal()
                    continue
                seq = self.check(m)
                if seq is None:
                    continue
                with self.lock:
                    self.seen[seq] = self.seen.get(seq, 0) + 1
                    off, last_seq = self.last.get(m.partition(), (-1, -1))
                    # A later offset in a partition carries a later sequence number (the idempotent producer
                    # keeps order); an offset going back is a re-read after a rebalance.
                    if m.offset() > off and seq < last_seq:
                        self.reordered += 1
                    self.last[m.partition()] = (m.offset(), seq)
        consumer.close()  # commits the final offsets and leaves the group

    def read_all(self):
        """Sequence numbers in the whole topic now, read by a fresh consumer up to each high watermark."""
        # Bootstrap from the brokers the producer knows now: the addresses given at the start may all be gone
        # (pods recreated with new IPs); the long-lived clients followed the moves through metadata.
        brokers = self.producer.list_topics(timeout=30).brokers.values()
        c = Consumer(self.config({"bootstrap.servers": ",".join(f"{b.host}:{b.port}" for b in brokers),
                                   "group.id": f"{GROUP}-verify", "enable.auto.commit": False}))
        parts = c.list_topics(self.topic, timeout=30).topics[self.topic].partitions
        ends = {p: c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=30)[1] for p in parts}
        c.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in parts])
        in_log, todo = set(), {p for p, end in ends.items() if end > 0}
        deadline = time.monotonic() + DRAIN_SECONDS
        while todo and time.monotonic() < deadline:
            for m in c.consume(1000, timeout=0.5):
                if m.error():
                    note("verify consumer error", m.error())
                    continue
                seq = self.check(m)
                if seq is not None:
                    in_log.add(seq)
                if m.offset() >= ends[m.partition()] - 1:
                    todo.discard(m.partition())
        c.close()
        if todo:
            print(f"re-read incomplete: partitions {sorted(todo)} not read to their end", file=sys.stderr)
        return in_log

    def counts(self):
        with self.lock:
            return {"sent": self.sent, "acked": len(self.acked), "consumed": len(self.seen),
                    "delivery_errors": self.delivery_errors, "fatal_errors": self.fatal_errors,
                    "transient_errors": self.transient_errors}

    def write(self, name, data):
        tmp = os.path.join(self.out_dir, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps(data) + "\n")
        os.replace(tmp, os.path.join(self.out_dir, name))

    def run(self):
        threads = [threading.Thread(target=f, daemon=True) for f in (self.consume, self.produce)]
        for t in threads:
            t.start()
        while not self.stopping.wait(1.0):
            self.write("counts", self.counts())
        print(f"{time.strftime('%H:%M:%S')} stopping: {self.counts()}", file=sys.stderr, flush=True)
        threads[1].join()
        self.flushed.set()
        threads[0].join()
        in_log = self.read_all()
        with self.lock:
            report = verdict(self.acked, self.seen, in_log, self.delivery_errors, self.fatal_errors,
                             self.reordered, self.corrupt)
        counts = self.counts()
        # The flush waited for every delivery report, so this is 0 unless it gave up.
        unreported = counts["sent"] - counts["acked"] - counts["delivery_errors"]
        report |= counts | {"in_topic": len(in_log), "unreported": unreported, "ok": report["ok"] and not unreported}
        self.write("counts", counts)
        self.write("report.json", report)
        print(json.dumps(report))
        return report["ok"]


def main():
    if sys.argv[1:] == ["self-check"]:
        return self_check()
    cmd, bootstrap, topic, out_dir, *rate = sys.argv[1:]
    if cmd != "run":
        sys.exit(__doc__)
    w = Workload(bootstrap, topic, out_dir, int(rate[0]) if rate else 400)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: w.stopping.set())
    sys.exit(0 if w.run() else 1)


if __name__ == "__main__":
    main()
