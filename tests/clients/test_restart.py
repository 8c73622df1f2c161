"""Broker restarts keep every acknowledged record: a crash (SIGKILL) in the middle of producing, and a graceful
SIGTERM that leaves the clean-shutdown marker."""

import threading
import time

from confluent_kafka import Producer

from kafka_util import consume_all, create_topic

PARTITIONS = 4


def test_crash_mid_produce_keeps_acked_records(make_broker, topic_name):
    b = make_broker()
    create_topic(b.bootstrap, topic_name, PARTITIONS)
    acked = {}
    lock = threading.Lock()

    def on_delivery(err, msg):
        if err is None:
            with lock:
                acked[(msg.partition(), msg.offset())] = msg.value()

    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 2, "message.timeout.ms": 60000,
                  "reconnect.backoff.max.ms": 200})
    total = 60_000
    for i in range(total):
        if i == total // 2:
            p.flush(30)
            b.restart(hard=True)  # same port and data dir: the producer reconnects
        while True:
            try:
                p.produce(topic_name, value=f"rec-{i}".encode(), partition=i % PARTITIONS, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(60) == 0
    assert len(acked) >= total // 2, "the records acked before the crash at least"

    got = consume_all(b.bootstrap, topic_name, PARTITIONS, len(acked))
    stored = {(part, m.offset()): m.value() for part, msgs in got.items() for m in msgs}
    missing = [k for k, v in acked.items() if stored.get(k) != v]
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:5]}"


def test_graceful_shutdown_writes_clean_marker_and_reloads(make_broker, topic_name):
    b = make_broker()
    create_topic(b.bootstrap, topic_name, 2)
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
    for i in range(1000):
        p.produce(topic_name, value=str(i).encode(), partition=i % 2)
    assert p.flush(30) == 0
    start = time.time()
    assert b.stop() == 0
    assert time.time() - start < 15
    assert (b.data_dir / ".kafka_cleanshutdown").exists()
    b.start()
    got = consume_all(b.bootstrap, topic_name, 2, 1000)
    assert sorted(int(m.value()) for msgs in got.values() for m in msgs) == list(range(1000))
