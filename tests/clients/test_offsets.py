"""ListOffsets: earliest, latest, by timestamp and max timestamp, through the consumer and the AdminClient."""

import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import OffsetSpec

from kafka_util import admin, create_topic

# Recent enough that the default retention (7 days) keeps the records.
BASE = int(time.time() * 1000) - 3_600_000


def test_offsets_by_timestamp(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 20})
    # Timestamps rise by 10 ms, except record 50 which carries the largest timestamp.
    for i in range(100):
        p.produce(topic_name, value=str(i).encode(), partition=0, timestamp=BASE + (10_000 if i == 50 else i * 10))
    assert p.flush(30) == 0

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    found = c.offsets_for_times([TopicPartition(topic_name, 0, BASE + 55)], timeout=10)
    assert found[0].offset == 6
    assert c.offsets_for_times([TopicPartition(topic_name, 0, BASE - 1)], timeout=10)[0].offset == 0
    assert c.offsets_for_times([TopicPartition(topic_name, 0, BASE + 20_000)], timeout=10)[0].offset == -1
    assert c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10) == (0, 100)
    c.close()

    a = admin(broker.bootstrap)
    tp = TopicPartition(topic_name, 0)
    specs = {
        "earliest": OffsetSpec.earliest(),
        "latest": OffsetSpec.latest(),
        "max": OffsetSpec.max_timestamp(),
        "ts": OffsetSpec.for_timestamp(BASE + 455),
    }
    got = {k: a.list_offsets({tp: spec})[tp].result(30) for k, spec in specs.items()}
    assert got["earliest"].offset == 0
    assert got["latest"].offset == 100
    assert (got["max"].offset, got["max"].timestamp) == (50, BASE + 10_000)
    assert (got["ts"].offset, got["ts"].timestamp) == (46, BASE + 460)
