"""Topic administration through confluent-kafka's AdminClient: create (with configs, validate-only, bad input),
describe, alter configs at run time, add partitions, delete records, delete topics, describe the cluster, and
the topic configs that change what a produce does (min.insync.replicas, compression.type, message.timestamp.type)."""

import time

import pytest
from confluent_kafka import (
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    KafkaError,
    Consumer,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from kafka_util import admin, consume_all, create_topic


def error_of(future):
    with pytest.raises(KafkaException) as e:
        future.result(30)
    return e.value.args[0].code()


def describe(a, resource):
    return a.describe_configs([resource])[resource].result(30)


def produce(bootstrap, topic, n, partition=0, size=1000):
    # One record per batch, so that small segment sizes give many segments.
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0, "batch.num.messages": 1})
    for i in range(n):
        p.produce(topic, value=b"x" * size, partition=partition)
        p.poll(0)
    assert p.flush(30) == 0


def test_create_describe_delete(broker, topic_name):
    a = admin(broker.bootstrap)
    fs = a.create_topics([NewTopic(topic_name, 3, 1, config={"retention.ms": "3600000"})])
    assert fs[topic_name].result(30) is None
    md = a.list_topics(timeout=10)
    assert len(md.topics[topic_name].partitions) == 3
    assert md.brokers[0].port == broker.port

    desc = a.describe_topics(TopicCollection([topic_name]))[topic_name].result(30)
    assert [p.id for p in desc.partitions] == [0, 1, 2]
    assert desc.partitions[0].leader.id == 0

    cfg = describe(a, ConfigResource(ResourceType.TOPIC, topic_name))
    assert cfg["retention.ms"].value == "3600000"
    assert cfg["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["cleanup.policy"].value == "delete"
    assert cfg["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value

    assert error_of(a.create_topics([NewTopic(topic_name, 1, 1)])[topic_name]) == KafkaError.TOPIC_ALREADY_EXISTS
    assert a.delete_topics([topic_name])[topic_name].result(30) is None
    assert topic_name not in a.list_topics(timeout=10).topics
    assert error_of(a.delete_topics([topic_name])[topic_name]) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_create_refuses_bad_requests(broker, topic_name):
    a = admin(broker.bootstrap)
    cases = {
        "bad/name": NewTopic("bad/name", 1, 1),
        topic_name + "-rf": NewTopic(topic_name + "-rf", 1, 3),
        topic_name + "-cfg": NewTopic(topic_name + "-cfg", 1, 1, config={"retention.ms": "soon"}),
        topic_name + "-unknown": NewTopic(topic_name + "-unknown", 1, 1, config={"no.such.config": "1"}),
        topic_name + "-compact": NewTopic(topic_name + "-compact", 1, 1, config={"cleanup.policy": "compact"}),
        topic_name + "-parts": NewTopic(topic_name + "-parts", 0, 1),
    }
    fs = a.create_topics(list(cases.values()))
    assert error_of(fs["bad/name"]) == KafkaError.TOPIC_EXCEPTION
    assert error_of(fs[topic_name + "-rf"]) == KafkaError.INVALID_REPLICATION_FACTOR
    assert error_of(fs[topic_name + "-cfg"]) == KafkaError.INVALID_CONFIG
    assert error_of(fs[topic_name + "-unknown"]) == KafkaError.INVALID_CONFIG
    assert error_of(fs[topic_name + "-compact"]) == KafkaError.INVALID_CONFIG
    assert error_of(fs[topic_name + "-parts"]) == KafkaError.INVALID_PARTITIONS
    # validate_only creates nothing
    assert a.create_topics([NewTopic(topic_name, 2, 1)], validate_only=True)[topic_name].result(30) is None
    assert topic_name not in a.list_topics(timeout=10).topics
    assert all(name not in a.list_topics(timeout=10).topics for name in cases)


def test_incremental_alter_configs_apply_at_run_time(broker, topic_name):
    a = admin(broker.bootstrap)
    create_topic(broker.bootstrap, topic_name, 1, {"segment.bytes": "16384"})
    produce(broker.bootstrap, topic_name, 300)  # ~300 KB: about 20 segments
    c = __import__("confluent_kafka").Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    assert c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10) == (0, 300)

    res = ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("retention.bytes", "50000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("file.delete.delay.ms", "0", incremental_operation=AlterConfigOpType.SET),
    ])
    assert a.incremental_alter_configs([res])[res].result(30) is None
    cfg = describe(a, ConfigResource(ResourceType.TOPIC, topic_name))
    assert cfg["retention.bytes"].value == "50000"
    assert cfg["retention.bytes"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    # The broker checks retention every 500 ms in this test: old segments go without a restart.
    deadline = time.time() + 20
    while time.time() < deadline:
        low, high = c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10, cached=False)
        if low > 0:
            break
        time.sleep(0.2)
    assert high == 300 and low > 200, (low, high)
    c.close()

    res = ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("retention.bytes", None, incremental_operation=AlterConfigOpType.DELETE),
    ])
    a.incremental_alter_configs([res])[res].result(30)
    assert describe(a, ConfigResource(ResourceType.TOPIC, topic_name))["retention.bytes"].value == "-1"

    bad = ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("max.message.bytes", "-5", incremental_operation=AlterConfigOpType.SET),
    ])
    assert error_of(a.incremental_alter_configs([bad])[bad]) == KafkaError.INVALID_CONFIG
    missing = ConfigResource(ResourceType.TOPIC, topic_name + "-missing", incremental_configs=[
        ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET),
    ])
    assert error_of(a.incremental_alter_configs([missing])[missing]) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_broker_configs(broker, topic_name):
    a = admin(broker.bootstrap)
    create_topic(broker.bootstrap, topic_name, 1)
    node = ConfigResource(ResourceType.BROKER, "0")
    cfg = describe(a, node)
    assert cfg["log.dirs"].is_read_only
    assert cfg["log.retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    alter = ConfigResource(ResourceType.BROKER, "0", incremental_configs=[
        ConfigEntry("log.retention.ms", "123456789", incremental_operation=AlterConfigOpType.SET),
    ])
    a.incremental_alter_configs([alter])[alter].result(30)
    assert describe(a, node)["log.retention.ms"].value == "123456789"
    # Topics without their own value follow the new broker default.
    topic_cfg = describe(a, ConfigResource(ResourceType.TOPIC, topic_name))
    assert topic_cfg["retention.ms"].value == "123456789"
    assert topic_cfg["retention.ms"].source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    undo = ConfigResource(ResourceType.BROKER, "0", incremental_configs=[
        ConfigEntry("log.retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
    ])
    a.incremental_alter_configs([undo])[undo].result(30)
    readonly = ConfigResource(ResourceType.BROKER, "0", incremental_configs=[
        ConfigEntry("log.dirs", "/elsewhere", incremental_operation=AlterConfigOpType.SET),
    ])
    assert error_of(a.incremental_alter_configs([readonly])[readonly]) == KafkaError.INVALID_REQUEST


def test_create_partitions_and_delete_records(broker, topic_name):
    a = admin(broker.bootstrap)
    create_topic(broker.bootstrap, topic_name, 2)
    assert a.create_partitions([NewPartitions(topic_name, 5)])[topic_name].result(30) is None
    assert len(a.list_topics(topic_name, timeout=10).topics[topic_name].partitions) == 5
    assert error_of(a.create_partitions([NewPartitions(topic_name, 3)])[topic_name]) == KafkaError.INVALID_PARTITIONS
    produce(broker.bootstrap, topic_name, 10, partition=4, size=10)
    res = a.delete_records([TopicPartition(topic_name, 4, 7)])
    assert res[TopicPartition(topic_name, 4, 7)].result(30).low_watermark == 7
    c = __import__("confluent_kafka").Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    assert c.get_watermark_offsets(TopicPartition(topic_name, 4), timeout=10, cached=False) == (7, 10)
    c.close()


def test_describe_cluster(broker):
    a = admin(broker.bootstrap)
    desc = a.describe_cluster().result(30)
    assert [n.id for n in desc.nodes] == [0]
    assert desc.controller.id == 0
    assert len(desc.cluster_id) == 22


def produce_one(bootstrap, topic, acks):
    """Produces one record without retries; returns the delivery error code (None) and the delivered message."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "retries": 0, "compression.type": "none"})
    outcome = []
    p.produce(topic, key=b"k", value=b"v" * 500, on_delivery=lambda err, msg: outcome.append((err, msg)))
    assert p.flush(30) == 0
    err, msg = outcome[0]
    return (err.code() if err else None), msg


def test_topic_configs_users_set_are_applied_and_described(broker, topic_name):
    a = admin(broker.bootstrap)
    configs = {
        "min.insync.replicas": "2",
        "compression.type": "zstd",
        "message.timestamp.type": "LogAppendTime",
        "message.timestamp.after.max.ms": "600000",
        "segment.jitter.ms": "1000",
        "unclean.leader.election.enable": "false",
        "preallocate": "true",
        "delete.retention.ms": "3600000",
    }
    assert a.create_topics([NewTopic(topic_name, 1, 1, config=configs)])[topic_name].result(30) is None
    cfg = describe(a, ConfigResource(ResourceType.TOPIC, topic_name))
    for key, value in configs.items():
        assert cfg[key].value == value, key
        assert cfg[key].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, key
    assert cfg["message.timestamp.before.max.ms"].value == str(2**63 - 1)
    assert cfg["message.downconversion.enable"].source == ConfigSource.DEFAULT_CONFIG.value

    # One replica is in sync: acks=all is refused (NOT_ENOUGH_REPLICAS), acks=1 is appended but stays invisible
    # to consumers: as in Kafka, the high watermark does not move while the ISR is below min.insync.replicas.
    err, _ = produce_one(broker.bootstrap, topic_name, "all")
    assert err == KafkaError.NOT_ENOUGH_REPLICAS
    before = int(time.time() * 1000)
    err, msg = produce_one(broker.bootstrap, topic_name, "1")
    after = int(time.time() * 1000)
    assert err is None and msg.offset() == 0
    kind, ts = msg.timestamp()
    assert kind == TIMESTAMP_LOG_APPEND_TIME and before <= ts <= after, (kind, ts, before, after)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    try:
        assert c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=30) == (0, 0)
    finally:
        c.close()

    # The stored batch is zstd (attributes' codec bits), though the producer sent it uncompressed.
    segment = broker.data_dir / f"{topic_name}-0" / "00000000000000000000.log"
    assert segment.read_bytes()[22] & 7 == 4

    # Back to Kafka's defaults at run time: acks=all works, timestamps are the producer's again.
    res = ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=[
        ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE)
        for k in ("min.insync.replicas", "message.timestamp.type", "compression.type")
    ])
    assert a.incremental_alter_configs([res])[res].result(30) is None
    err, msg = produce_one(broker.bootstrap, topic_name, "all")
    assert err is None and msg.offset() == 1
    assert msg.timestamp()[0] == TIMESTAMP_CREATE_TIME
    [m, _] = consume_all(broker.bootstrap, topic_name, 1, 2)[0]
    assert m.timestamp() == (TIMESTAMP_LOG_APPEND_TIME, ts)
    assert m.value() == b"v" * 500
    cfg = describe(a, ConfigResource(ResourceType.TOPIC, topic_name))
    assert (cfg["min.insync.replicas"].value, cfg["compression.type"].value) == ("1", "producer")

    bad = {"compression.type": "none", "message.timestamp.type": "WallClock", "min.insync.replicas": "0"}
    fs = a.create_topics([NewTopic(f"{topic_name}-{k}", 1, 1, config={k: v}) for k, v in bad.items()])
    assert all(error_of(f) == KafkaError.INVALID_CONFIG for f in fs.values())
