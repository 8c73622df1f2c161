"""Produce and consume through unchanged clients (confluent-kafka / librdkafka, Debian's kcat) with every
compression codec: every record arrives once, in order per partition, with keys, headers and timestamps."""

import subprocess
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka import TIMESTAMP_CREATE_TIME

from kafka_util import consume_all, create_topic

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
RECORDS = 100_000
PARTITIONS = 4


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_kafka_roundtrip(broker, topic_name, codec):
    create_topic(broker.bootstrap, topic_name, PARTITIONS)
    p = Producer({
        "bootstrap.servers": broker.bootstrap,
        "compression.type": codec,
        "acks": "all",
        "linger.ms": 5,
        # Without idempotence, retries could reorder; this test wants strict per-partition order.
        "max.in.flight.requests.per.connection": 1,
    })
    failures = []
    base_ts = int(time.time() * 1000) - RECORDS
    for i in range(RECORDS):
        while True:
            try:
                p.produce(
                    topic_name,
                    key=f"key-{i}".encode(),
                    value=f"value-{i}-".encode() * (1 + i % 7),
                    partition=i % PARTITIONS,
                    timestamp=base_ts + i,
                    headers=[("idx", str(i).encode()), ("codec", codec.encode())],
                    on_delivery=lambda err, msg: err and failures.append(err),
                )
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(60) == 0
    assert failures == []

    got = consume_all(broker.bootstrap, topic_name, PARTITIONS, RECORDS)
    seen = set()
    for partition, msgs in got.items():
        assert [m.offset() for m in msgs] == list(range(len(msgs))), "offsets are dense from 0"
        idxs = [int(dict(m.headers())["idx"]) for m in msgs]
        assert idxs == sorted(idxs), f"partition {partition} out of order"
        for m, i in zip(msgs, idxs):
            assert i % PARTITIONS == partition
            assert m.key() == f"key-{i}".encode()
            assert m.value() == f"value-{i}-".encode() * (1 + i % 7)
            assert m.timestamp() == (TIMESTAMP_CREATE_TIME, base_ts + i)
            assert dict(m.headers())["codec"] == codec.encode()
            seen.add(i)
    assert len(seen) == RECORDS


KCAT_RECORDS = 20_000


@pytest.mark.parametrize("codec", CODECS)
def test_kcat_roundtrip(broker, topic_name, codec, tmp_path):
    create_topic(broker.bootstrap, topic_name, PARTITIONS)
    lines = [f"k{i}\tvalue number {i}" for i in range(KCAT_RECORDS)]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    subprocess.run(
        ["kcat", "-P", "-b", broker.bootstrap, "-t", topic_name, "-z", codec, "-K", "\t", "-H", "src=kcat",
         "-X", "acks=all", "-l", str(tmp_path / "in.txt")],
        check=True, timeout=120,
    )
    out = subprocess.run(
        ["kcat", "-C", "-b", broker.bootstrap, "-t", topic_name, "-e", "-o", "beginning", "-q",
         "-f", "%p\t%o\t%k\t%s\t%h\t%T\n"],
        check=True, timeout=120, capture_output=True, text=True,
    ).stdout.splitlines()
    assert len(out) == KCAT_RECORDS
    by_partition = {}
    for line in out:
        p, o, k, v, h, ts = line.split("\t")
        assert v == f"value number {k[1:]}"
        assert h == "src=kcat"
        assert int(ts) > 0
        by_partition.setdefault(int(p), []).append((int(o), int(k[1:])))
    keys = sorted(i for recs in by_partition.values() for _, i in recs)
    assert keys == list(range(KCAT_RECORDS)), "every record exactly once"
    for recs in by_partition.values():
        assert [o for o, _ in recs] == list(range(len(recs)))
        assert [i for _, i in recs] == sorted(i for _, i in recs), "file order kept per partition"
