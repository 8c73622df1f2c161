#!/usr/bin/env python3
"""Kafka-client steps of the Kubernetes e2e scenario (confluent-kafka, from the host to pod IPs).

    kafka_check.py BOOTSTRAP create TOPIC PARTITIONS
    kafka_check.py BOOTSTRAP produce TOPIC COUNT [START]  # keys k<i>, values v<i> for i from START (0); prints acked count
    kafka_check.py BOOTSTRAP consume TOPIC COUNT          # reads everything back: keys k0..k<COUNT-1>, each once
    kafka_check.py BOOTSTRAP leaders TOPIC                # partition, leader, #replicas, #in sync, replica ids
    kafka_check.py BOOTSTRAP describe-broker NODE KEY     # a broker config value (DescribeConfigs)
    kafka_check.py BOOTSTRAP try produce|consume TOPIC    # one attempt: prints the count, or the error's name

KAFKA_CONFIG=FILE adds client properties (key=value lines: security.protocol, sasl.*, ssl.*) to every client.
"""
import os
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic


def settings(bootstrap, **extra):
    conf = {"bootstrap.servers": bootstrap}
    if os.environ.get("KAFKA_CONFIG"):
        with open(os.environ["KAFKA_CONFIG"]) as f:
            for line in f:
                if "=" in line and not line.lstrip().startswith("#"):
                    k, v = line.split("=", 1)
                    conf[k.strip()] = v.strip()
    conf.update(extra)
    return conf


def admin(bootstrap):
    return AdminClient(settings(bootstrap))


def create(bootstrap, topic, partitions, replicas=-1):
    """The topic, with `replicas` replicas per partition (-1: the cluster's default.replication.factor)."""
    client = admin(bootstrap)  # must outlive its futures
    futures = client.create_topics([NewTopic(topic, int(partitions), int(replicas))], operation_timeout=30)
    futures[topic].result(timeout=60)
    print(f"created {topic} with {partitions} partitions")


def produce(bootstrap, topic, count, start=0):
    count, start = int(count), int(start)
    acked = [0]
    errors = []

    def on_delivery(err, msg):
        if err:
            errors.append(err)
        else:
            acked[0] += 1

    p = Producer(settings(bootstrap, **{"acks": "all", "linger.ms": 5, "compression.type": "lz4",
                                        "enable.idempotence": False}))
    for i in range(start, start + count):
        while True:
            try:
                p.produce(topic, key=f"k{i}", value=f"v{i}", on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    p.flush(120)
    if errors or acked[0] != count:
        sys.exit(f"produced {acked[0]}/{count}, errors: {errors[:5]}")
    print(acked[0])


def consume(bootstrap, topic, count):
    count = int(count)
    md = admin(bootstrap).list_topics(topic, timeout=30)
    parts = [TopicPartition(topic, p, 0) for p in md.topics[topic].partitions]
    c = Consumer(settings(bootstrap, **{"group.id": f"e2e-{time.time()}", "enable.auto.commit": False,
                                        "auto.offset.reset": "earliest"}))
    c.assign(parts)
    seen = {}
    deadline = time.time() + 180
    while len(seen) < count and time.time() < deadline:
        for m in c.consume(1000, timeout=1.0):
            if m.error():
                raise KafkaException(m.error())
            k = m.key().decode()
            if m.value().decode() != "v" + k[1:]:
                sys.exit(f"record {k} has value {m.value()!r}")
            seen[k] = seen.get(k, 0) + 1
    if seen:
        c.commit(asynchronous=False)  # committed offsets: the broker reports this group's lag
    c.close()
    missing = [i for i in range(count) if f"k{i}" not in seen]
    dups = sum(n - 1 for n in seen.values())
    if missing or dups:
        sys.exit(f"consumed {len(seen)} distinct of {count}: {len(missing)} missing (e.g. {missing[:5]}), {dups} duplicates")
    print(len(seen))


def leaders(bootstrap, topic):
    """Per partition: its leader, how many replicas it has, how many are in sync, and the replicas."""
    md = admin(bootstrap).list_topics(topic, timeout=30)
    for p, meta in sorted(md.topics[topic].partitions.items()):
        print(p, meta.leader, len(meta.replicas), len(meta.isrs), ",".join(map(str, meta.replicas)))


def describe_broker(bootstrap, node, key):
    res = ConfigResource(ConfigResource.Type.BROKER, str(node))
    client = admin(bootstrap)  # must outlive its futures
    configs = client.describe_configs([res])[res].result(timeout=30)
    print(configs[key].value)


def attempt(bootstrap, action, topic):
    """One produce (a record) or consume (from the start, in group e2e-<topic>) that must answer
    within 30 s: prints the records written or read, or the name of the first error (a refused
    authentication, a denied topic)."""
    errors = []
    conf = settings(bootstrap, **{"error_cb": errors.append, "socket.timeout.ms": 10000})
    if action == "produce":
        conf.update({"message.timeout.ms": 30000, "enable.idempotence": False, "acks": "all"})
        p = Producer(conf)
        delivered = []
        p.produce(topic, key="k", value="v", on_delivery=lambda err, msg: delivered.append(err))
        deadline = time.time() + 35
        while not delivered and not errors and time.time() < deadline:
            p.poll(0.2)
        err = (delivered[0] if delivered else None) or (errors[0] if errors else None)
        print(err.name() if err else 1)
        return
    c = Consumer(dict(conf, **{"group.id": f"e2e-{topic}", "auto.offset.reset": "earliest", "enable.auto.commit": False}))
    c.subscribe([topic])
    read, deadline = 0, time.time() + 30
    while not errors and time.time() < deadline:
        msgs = c.consume(100, timeout=1.0)
        bad = [m.error() for m in msgs if m.error() and m.error().code() != -191]  # -191: end of partition
        if bad:
            errors.append(bad[0])
            break
        read += sum(1 for m in msgs if not m.error())
        if read:
            break
    c.close()
    print(errors[0].name() if errors else read)


if __name__ == "__main__":
    bootstrap, cmd, *args = sys.argv[1:]
    {"create": create, "produce": produce, "consume": consume, "leaders": leaders,
     "describe-broker": describe_broker, "try": attempt}[cmd](bootstrap, *args)
