"""The idempotent producer (enable.idempotence=true) while the broker restarts under it, gracefully and by a
crash: every record arrives exactly once, in order. Retried batches the broker had already stored are
recognised by their producer id and sequence numbers and not written twice."""

import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition

from kafka_util import consume_all, create_topic

PARTITIONS = 3


def test_idempotent_producer_across_broker_restarts(make_broker, topic_name):
    b = make_broker()
    create_topic(b.bootstrap, topic_name, PARTITIONS)
    failures = []
    lock = threading.Lock()

    def on_delivery(err, msg):
        if err is not None:
            with lock:
                failures.append(err)

    p = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True, "linger.ms": 5,
                  "message.timeout.ms": 120000, "reconnect.backoff.max.ms": 200, "retry.backoff.ms": 50})
    total = 60_000
    pending_at_restart = []
    for i in range(total):
        # Mid-stream, with records in flight: SIGTERM, later SIGKILL (same port and data dir).
        if i in (total // 3, 2 * total // 3):
            pending_at_restart.append(len(p))
            b.restart(hard=i != total // 3)
        if i % 1000 == 999:
            time.sleep(0.05)
        while True:
            try:
                p.produce(topic_name, value=str(i).encode(), partition=i % PARTITIONS, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(120) == 0
    assert not failures, failures[:5]
    print(f"records not yet acknowledged at the restarts: {pending_at_restart}")
    assert any(pending_at_restart), "the restarts happened with records in flight"

    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "watermarks"})
    stored = sum(c.get_watermark_offsets(TopicPartition(topic_name, q), timeout=10)[1] for q in range(PARTITIONS))
    c.close()
    assert stored == total, f"{stored - total} duplicates"
    by_partition = consume_all(b.bootstrap, topic_name, PARTITIONS, total)
    for partition, msgs in by_partition.items():
        values = [int(m.value()) for m in msgs]
        assert values == list(range(partition, total, PARTITIONS)), "no gaps, no duplicates, in order"
