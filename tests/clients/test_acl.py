"""Authorization with confluent-kafka over mutual TLS: the principal is the client certificate's CN
(ssl.principal.mapping.rules), User:admin is a super user. The AdminClient creates, describes and deletes ACLs; a
user allowed to READ one topic consumes it, and is refused, with librdkafka's TopicAuthorizationFailed, when
consuming another or producing; it may not manage ACLs; the super user may do everything."""

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, ResourcePatternType,
                                   ResourceType)

from kafka_util import admin, consume_all, create_topic
from test_tls import free_port, make_ca, produce, signed

AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


@pytest.fixture
def certs(tmp_path):
    """The CA, the broker's keystore, and (certificate, key) per user."""
    d = tmp_path / "pki"
    d.mkdir()
    make_ca(d, "ca")
    for name in ("broker", "admin", "alice"):
        signed(d, "ca", name, f"/O=Strata Tests/CN={name}")
    (d / "broker-keystore.pem").write_text((d / "broker.key").read_text() + (d / "broker.pem").read_text())
    return d


def user_conf(d, name):
    return {"security.protocol": "SSL", "ssl.ca.location": str(d / "ca.pem"),
            "ssl.certificate.location": str(d / f"{name}.pem"), "ssl.key.location": str(d / f"{name}.key")}


def first_error(consumer, timeout=30):
    """The first error the consumer reports."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for m in consumer.consume(100, 1.0):
            if m.error() is not None:
                return m.error()
    return None


def test_acls_with_confluent_kafka(make_broker, certs, topic_name):
    port = free_port()
    make_broker("--ssl.keystore.location", str(certs / "broker-keystore.pem"),
                "--ssl.truststore.location", str(certs / "ca.pem"), "--ssl.client.auth", "required",
                "--ssl.principal.mapping.rules", "RULE:^CN=([^,]+),.*$/$1/,DEFAULT",
                "--authorizer.class.name", AUTHORIZER, "--super.users", "User:admin", ssl_port=port)
    bootstrap = f"127.0.0.1:{port}"
    su, alice = user_conf(certs, "admin"), user_conf(certs, "alice")
    readable, other = topic_name, topic_name + "-other"
    for t in (readable, other):
        create_topic(bootstrap, t, 1, conf=su)
        produce(bootstrap, t, 20, su)

    a = admin(bootstrap, su)
    read_topic = AclBinding(ResourceType.TOPIC, readable, ResourcePatternType.LITERAL, "User:alice", "*",
                            AclOperation.READ, AclPermissionType.ALLOW)
    read_groups = AclBinding(ResourceType.GROUP, "alice-", ResourcePatternType.PREFIXED, "User:alice", "*",
                             AclOperation.READ, AclPermissionType.ALLOW)
    for f in a.create_acls([read_topic, read_groups]).values():
        assert f.result(30) is None
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                                  AclPermissionType.ANY)
    assert sorted(a.describe_acls(everything).result(30), key=str) == sorted([read_topic, read_groups], key=str)
    by_prefix = AclBindingFilter(ResourceType.TOPIC, readable + "-x", ResourcePatternType.MATCH, None, None,
                                 AclOperation.ANY, AclPermissionType.ANY)
    assert a.describe_acls(by_prefix).result(30) == [], "a literal name matches only itself (or *)"

    # Alice reads her topic, in her group.
    got = consume_all(bootstrap, readable, 1, 20, conf={**alice, "group.id": "alice-1"})
    assert len(got[0]) == 20
    # Not the other topic (in a group she may use).
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "alice-2", "enable.auto.commit": False, **alice})
    c.subscribe([other])
    err = first_error(c)
    c.close()
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    # No writing.
    p = Producer({"bootstrap.servers": bootstrap, **alice})
    errors = []
    p.produce(readable, value=b"nope", on_delivery=lambda e, m: errors.append(e))
    p.flush(30)
    assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], errors
    # No managing ACLs.
    mine = AclBinding(ResourceType.TOPIC, other, ResourcePatternType.LITERAL, "User:alice", "*", AclOperation.READ,
                      AclPermissionType.ALLOW)
    not_admin = admin(bootstrap, alice)  # must outlive the future
    with pytest.raises(KafkaException) as refused:
        not_admin.create_acls([mine])[mine].result(30)
    assert refused.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED

    # Deleting returns what was deleted; the super user still reads everything.
    groups = AclBindingFilter(ResourceType.GROUP, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                              AclPermissionType.ANY)
    assert a.delete_acls([groups])[groups].result(30) == [read_groups]
    assert a.describe_acls(everything).result(30) == [read_topic]
    assert len(consume_all(bootstrap, other, 1, 20, conf={**su, "group.id": "any"})[0]) == 20
