"""Small helpers shared by the client tests."""

import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def admin(bootstrap, conf=None):
    return AdminClient({"bootstrap.servers": bootstrap, **(conf or {})})


def create_topic(bootstrap, name, partitions, config=None, conf=None):
    a = admin(bootstrap, conf)  # must outlive the future
    a.create_topics([NewTopic(name, partitions, 1, config=config or {})])[name].result(30)


def consume_all(bootstrap, topic, partitions, expected, timeout=120, conf=None):
    """Every record of `topic` from the beginning, by partition, until `expected` records arrived; `conf`: more
    client settings (security.protocol, ...)."""
    # Groups are not supported yet: assign partitions explicitly and never commit.
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False, **(conf or {})})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out = {p: [] for p in range(partitions)}
    n, deadline = 0, time.time() + timeout
    try:
        while n < expected and time.time() < deadline:
            for m in c.consume(10000, 1.0):
                assert m.error() is None, m.error()
                out[m.partition()].append(m)
                n += 1
    finally:
        c.close()
    assert n == expected, f"consumed {n} of {expected} records"
    return out
