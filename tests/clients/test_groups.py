"""Consumer groups with real clients: confluent-kafka consumers joining and leaving while records flow (manual
and auto commit, eager and cooperative assignors), static membership, committed offsets across broker restarts,
kcat's balanced consumer and a kafkajs consumer group."""

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from kafka_util import admin, create_topic

PARTITIONS = 6
HERE = Path(__file__).resolve().parent
# A short initial rebalance delay keeps the tests quick while still exercising it.
GROUP_ARGS = ("--group.initial.rebalance.delay.ms", "300")


def produce(bootstrap, topic, values, pace=None):
    """Produces `values` round-robin over the partitions; with `pace` (records, seconds), sleeps in between."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    for i, v in enumerate(values):
        while True:
            try:
                p.produce(topic, value=v, partition=i % PARTITIONS)
                break
            except BufferError:
                p.poll(0.1)
        if pace and i % pace[0] == pace[0] - 1:
            p.poll(0)
            time.sleep(pace[1])
    assert p.flush(60) == 0


def end_offsets(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)]
    finally:
        c.close()


def committed(bootstrap, group, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        return [tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)]
    finally:
        c.close()


def describe_group(bootstrap, group):
    a = admin(bootstrap)  # must outlive the future
    return a.describe_consumer_groups([group])[group].result(10)


class GroupConsumer(threading.Thread):
    """A subscribed consumer on its own thread, recording every value it receives, until stopped."""

    def __init__(self, bootstrap, group, topic, consumed, manual_commit, strategy, **extra):
        super().__init__(daemon=True)
        self.consumed = consumed
        self.manual_commit = manual_commit
        self.topic = topic
        self.stop_event = threading.Event()
        self.commit_failures = 0
        self.received = 0
        self.error = None
        self.conf = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": not manual_commit,
            "auto.commit.interval.ms": 200,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            "partition.assignment.strategy": strategy,
            **extra,
        }

    def run(self):
        c = Consumer(self.conf)
        try:
            c.subscribe([self.topic])
            while not self.stop_event.is_set():
                msgs = c.consume(500, 0.2)
                for m in msgs:
                    if m.error():
                        raise KafkaException(m.error())
                    self.consumed.append(m.value())
                    self.received += 1
                if self.manual_commit and msgs:
                    try:
                        c.commit(asynchronous=False)
                    except KafkaException:
                        # A rebalance in progress: the records are consumed again by the next owner.
                        self.commit_failures += 1
            if self.manual_commit:
                try:
                    c.commit(asynchronous=False)
                except KafkaException:
                    pass  # nothing assigned, or nothing new
        except Exception as e:  # reported by stop()
            self.error = e
        finally:
            c.close()  # commits (auto commit) and leaves the group

    def stop(self):
        self.stop_event.set()
        self.join(30)
        assert not self.is_alive()
        assert self.error is None, self.error


@pytest.mark.parametrize("manual_commit,strategy", [(True, "range,roundrobin"), (False, "cooperative-sticky")])
def test_consumers_join_and_leave_while_consuming(make_broker, topic_name, manual_commit, strategy):
    b = make_broker(*GROUP_ARGS)
    create_topic(b.bootstrap, topic_name, PARTITIONS)
    group = f"churn-{topic_name}"
    total = 30_000
    values = [f"v{i}".encode() for i in range(total)]
    consumed = []
    consumers = []

    def start():
        c = GroupConsumer(b.bootstrap, group, topic_name, consumed, manual_commit, strategy)
        c.start()
        consumers.append(c)
        return c

    first, second = start(), start()
    time.sleep(1.5)
    producer = threading.Thread(target=produce, args=(b.bootstrap, topic_name, values, (1000, 0.25)), daemon=True)
    producer.start()
    time.sleep(1.5)
    third = start()  # joins during consumption
    time.sleep(2)
    first.stop()  # leaves during consumption
    time.sleep(1.5)
    start()
    producer.join(120)
    deadline = time.time() + 90
    while time.time() < deadline and len(set(consumed)) < total:
        time.sleep(0.2)
    for c in [second, third] + consumers[3:]:
        c.stop()

    unique = set(consumed)
    duplicates = len(consumed) - len(unique)
    failures = sum(c.commit_failures for c in consumers)
    print(f"consumed {len(consumed)} records, {len(unique)} distinct, {duplicates} duplicates, "
          f"{failures} commits refused during rebalances; per consumer: {[c.received for c in consumers]}")
    assert sum(c.received > 0 for c in consumers) >= 3, "the work was shared"
    assert unique == set(values), f"missing {len(set(values) - unique)} records"
    # At-least-once: a rebalance may hand a partition over before its last records were committed, so a new
    # owner sees them again; never more than a small part of the stream.
    assert duplicates < total // 5
    # Everything consumed was committed by the time the consumers closed.
    assert committed(b.bootstrap, group, topic_name) == end_offsets(b.bootstrap, topic_name)
    groups = describe_group(b.bootstrap, group)
    assert groups.state.name == "EMPTY" and not groups.members


def test_static_member_rejoins_without_a_rebalance(make_broker, topic_name):
    b = make_broker(*GROUP_ARGS)
    create_topic(b.bootstrap, topic_name, PARTITIONS)
    group = f"static-{topic_name}"
    events = {"s1": [], "s2": []}

    def member(instance):
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "group.instance.id": instance,
                      "session.timeout.ms": 30000, "heartbeat.interval.ms": 500, "auto.offset.reset": "earliest"})

        def on_assign(_, partitions):
            events[instance].append(("assign", sorted(p.partition for p in partitions)))

        def on_revoke(_, partitions):
            events[instance].append(("revoke", sorted(p.partition for p in partitions)))

        c.subscribe([topic_name], on_assign=on_assign, on_revoke=on_revoke)
        return c

    def poll_for(consumers, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            for c in consumers:
                c.poll(0.1)

    def poll_until(consumers, done, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline and not done():
            for c in consumers:
                c.poll(0.1)
        assert done(), events

    def assigned(instance):
        return [e[1] for e in events[instance] if e[0] == "assign"]

    s1, s2 = member("s1"), member("s2")
    poll_until([s1, s2], lambda: assigned("s1") and assigned("s2")
               and sorted(assigned("s1")[-1] + assigned("s2")[-1]) == list(range(PARTITIONS)))
    # Let any rebalance caused by the second member settle before the restart.
    poll_for([s1, s2], 2)
    before = {"s1": assigned("s1")[-1], "s2": assigned("s2")[-1]}
    s1_events = len(events["s1"])
    s2.close()  # a static member does not leave the group on close
    events["s2"].clear()
    s2 = member("s2")
    poll_until([s1, s2], lambda: bool(assigned("s2")))
    poll_for([s1, s2], 1)
    assert assigned("s2")[-1] == before["s2"], "the restarted member got its partitions back"
    assert len(events["s1"]) == s1_events, f"the other member saw a rebalance: {events['s1'][s1_events:]}"
    desc = describe_group(b.bootstrap, group)
    assert desc.state.name == "STABLE"
    assert sorted(m.group_instance_id for m in desc.members) == ["s1", "s2"]
    s1.close()
    s2.close()


def test_committed_offsets_survive_broker_restarts(make_broker, topic_name):
    b = make_broker(*GROUP_ARGS)
    create_topic(b.bootstrap, topic_name, PARTITIONS)
    group = f"restart-{topic_name}"
    produce(b.bootstrap, topic_name, [f"old-{i}".encode() for i in range(1200)])
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic_name])
    n, deadline = 0, time.time() + 60
    while n < 1200 and time.time() < deadline:
        n += len([m for m in c.consume(1000, 0.5) if m.error() is None])
    assert n == 1200
    c.commit(asynchronous=False)
    c.close()
    before = committed(b.bootstrap, group, topic_name)
    assert sum(before) == 1200

    b.restart()  # SIGTERM
    assert committed(b.bootstrap, group, topic_name) == before
    b.restart(hard=True)  # SIGKILL: no clean shutdown
    assert committed(b.bootstrap, group, topic_name) == before

    produce(b.bootstrap, topic_name, [f"new-{i}".encode() for i in range(60)])
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "auto.offset.reset": "earliest"})
    c.subscribe([topic_name])
    got, deadline = [], time.time() + 60
    while len(got) < 60 and time.time() < deadline:
        got += [m.value() for m in c.consume(100, 0.5) if m.error() is None]
    time.sleep(1)
    got += [m.value() for m in c.consume(100, 0.5) if m.error() is None]
    c.close()
    assert sorted(got) == sorted(f"new-{i}".encode() for i in range(60)), "resumed at the committed offsets"


def read_lines_until(paths, expected, timeout):
    """Distinct lines of the files, once they hold `expected` of them (or at the timeout)."""
    deadline = time.time() + timeout
    while True:
        lines = [ln for p in paths if p.exists() for ln in p.read_text().splitlines() if ln]
        if len(set(lines)) >= expected or time.time() > deadline:
            return lines


def test_kcat_balanced_consumers(make_broker, topic_name, tmp_path):
    b = make_broker(*GROUP_ARGS)
    create_topic(b.bootstrap, topic_name, PARTITIONS)
    group = f"kcat-{topic_name}"
    values = [f"k-{i}" for i in range(600)]
    produce(b.bootstrap, topic_name, [v.encode() for v in values])
    kcat = ["kcat", "-b", b.bootstrap, "-G", group, "-X", "auto.offset.reset=earliest", "-u", "-q", "-f", "%s\n", topic_name]
    outs = [tmp_path / f"kcat{i}.out" for i in range(2)]
    procs = [subprocess.Popen(kcat, stdout=open(o, "w"), stderr=subprocess.DEVNULL) for o in outs]
    try:
        lines = read_lines_until(outs, len(values), 60)
        # Both members hold partitions once the group has settled.
        deadline = time.time() + 30
        while True:
            desc = describe_group(b.bootstrap, group)
            owned = [sorted(tp.partition for tp in m.assignment.topic_partitions) for m in desc.members]
            if (len(owned) == 2 and all(owned)) or time.time() > deadline:
                break
            time.sleep(0.2)
        assert desc.state.name == "STABLE" and len(owned) == 2 and all(owned), owned
        assert sorted(owned[0] + owned[1]) == list(range(PARTITIONS))
    finally:
        for p in procs:
            p.terminate()  # kcat commits its offsets as it closes
        for p in procs:
            p.wait(30)
    assert set(lines) == set(values)
    assert committed(b.bootstrap, group, topic_name) == end_offsets(b.bootstrap, topic_name)

    # A new member of the group starts from the committed offsets.
    produce(b.bootstrap, topic_name, [f"later-{i}".encode() for i in range(12)])
    out = subprocess.run(kcat[:1] + ["-c", "12"] + kcat[1:], capture_output=True, text=True, timeout=60)
    assert sorted(out.stdout.split()) == sorted(f"later-{i}" for i in range(12)), out.stderr


def test_kafkajs_consumer_group(make_broker, topic_name, kafkajs):
    b = make_broker(*GROUP_ARGS)
    create_topic(b.bootstrap, topic_name, PARTITIONS)
    group = f"kafkajs-{topic_name}"
    values = [f"js-{i}" for i in range(3000)]
    produce(b.bootstrap, topic_name, [v.encode() for v in values])
    out = subprocess.run(["node", str(HERE / "node" / "kafkajs_group.js"), b.bootstrap, topic_name, group, str(len(values))],
                         capture_output=True, text=True, timeout=180, env={**os.environ, "NODE_PATH": kafkajs})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(result)
    assert result["unique"] == len(values)
    a0, a1 = result["assignments"]
    assert a0 and a1 and sorted(a0 + a1) == list(range(PARTITIONS)), "two balanced members"
    assert committed(b.bootstrap, group, topic_name) == end_offsets(b.bootstrap, topic_name)
