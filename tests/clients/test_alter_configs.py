"""The legacy AlterConfigs API through confluent-kafka's (deprecated) AdminClient.alter_configs: the given
configs replace all dynamic configs of a topic or broker; validate_only and refused changes leave them as
they were."""

import warnings

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ConfigResource, ConfigSource, ResourceType

from kafka_util import admin, create_topic

pytestmark = pytest.mark.filterwarnings("ignore:alter_configs has been deprecated:DeprecationWarning")


def alter(a, resource, **kwargs):
    return a.alter_configs([resource], **kwargs)[resource]


def error_of(future):
    with pytest.raises(KafkaException) as e:
        future.result(30)
    return e.value.args[0]


def overrides(a, topic):
    """The configs the topic has of its own."""
    res = ConfigResource(ResourceType.TOPIC, topic)
    cfg = a.describe_configs([res])[res].result(30)
    return {k: e.value for k, e in cfg.items() if e.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value}


def test_alter_configs_replaces_topic_configs(broker, topic_name):
    a = admin(broker.bootstrap)
    create_topic(broker.bootstrap, topic_name, 1, {"retention.ms": "3600000", "flush.ms": "1000"})
    assert overrides(a, topic_name) == {"retention.ms": "3600000", "flush.ms": "1000"}

    res = ConfigResource(ResourceType.TOPIC, topic_name, set_config={"retention.bytes": "1000000", "retention.ms": "7200000"})
    assert alter(a, res).result(30) is None
    assert overrides(a, topic_name) == {"retention.bytes": "1000000", "retention.ms": "7200000"}, "flush.ms is gone"

    # validate_only checks without applying; a bad value is refused with a reason, and nothing changes.
    only = ConfigResource(ResourceType.TOPIC, topic_name, set_config={"segment.bytes": "1048576"})
    assert alter(a, only, validate_only=True).result(30) is None
    bad = ConfigResource(ResourceType.TOPIC, topic_name, set_config={"segment.bytes": "1048576", "max.message.bytes": "-5"})
    e = error_of(alter(a, bad))
    assert e.code() == KafkaError.INVALID_CONFIG and "max.message.bytes" in e.str(), e
    assert overrides(a, topic_name) == {"retention.bytes": "1000000", "retention.ms": "7200000"}

    missing = ConfigResource(ResourceType.TOPIC, topic_name + "-missing", set_config={"retention.ms": "1"})
    assert error_of(alter(a, missing)).code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_alter_configs_on_the_broker(broker, topic_name):
    a = admin(broker.bootstrap)
    create_topic(broker.bootstrap, topic_name, 1)
    node = ConfigResource(ResourceType.BROKER, "0")
    try:
        res = ConfigResource(ResourceType.BROKER, "0", set_config={"log.retention.ms": "123456789"})
        assert alter(a, res).result(30) is None
        assert a.describe_configs([node])[node].result(30)["log.retention.ms"].value == "123456789"
        topic = ConfigResource(ResourceType.TOPIC, topic_name)
        assert a.describe_configs([topic])[topic].result(30)["retention.ms"].value == "123456789"
        readonly = ConfigResource(ResourceType.BROKER, "0", set_config={"log.dirs": "/elsewhere"})
        assert error_of(alter(a, readonly)).code() == KafkaError.INVALID_REQUEST
    finally:
        # An empty set restores the defaults (the broker is shared by this module's tests).
        assert alter(a, ConfigResource(ResourceType.BROKER, "0", set_config={})).result(30) is None
    assert a.describe_configs([node])[node].result(30)["log.retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
