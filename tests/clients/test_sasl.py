"""SASL listeners with real clients: confluent-kafka (librdkafka) and kcat authenticate with SCRAM-SHA-512 over
SASL_SSL and with PLAIN over SASL_PLAINTEXT, as users created with AdminClient.alter_user_scram_credentials (by
the static user of sasl.jaas.config) and described with describe_user_scram_credentials; a wrong password and an
unknown user fail with the broker's message on the client side."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialDeletion,
                                   UserScramCredentialUpsertion)

from kafka_util import consume_all, create_topic
from test_tls import client_errors, free_port, pki, produce  # noqa: F401 (pki is a fixture)

ADMIN_JAAS = ('org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" '
              'password="admin-secret";')
FAILED = "Authentication failed during authentication due to invalid credentials with SASL mechanism"


@pytest.fixture
def sasl_broker(make_broker, pki):  # noqa: F811
    """A broker with SASL_PLAINTEXT and SASL_SSL listeners (PLAIN and SCRAM-SHA-512): their bootstraps."""
    plain_port, ssl_port = free_port(), free_port()
    make_broker("--ssl.keystore.location", pki.broker_keystore, "--sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-512",
                "--sasl.jaas.config", ADMIN_JAAS,
                extra_listeners=[f"SASL_PLAINTEXT://127.0.0.1:{plain_port}", f"SASL_SSL://127.0.0.1:{ssl_port}"])
    return f"127.0.0.1:{plain_port}", f"127.0.0.1:{ssl_port}"


def scram_ssl(pki_, user, password):
    return {"security.protocol": "SASL_SSL", "ssl.ca.location": pki_.ca, "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": user, "sasl.password": password}


def plain(user, password):
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.username": user,
            "sasl.password": password}


def create_user(bootstrap, conf, user, password):
    a = AdminClient({"bootstrap.servers": bootstrap, **conf})
    upserts = [UserScramCredentialUpsertion(user, ScramCredentialInfo(m, i), password.encode())
               for m, i in ((ScramMechanism.SCRAM_SHA_256, 4096), (ScramMechanism.SCRAM_SHA_512, 8192))]
    for f in a.alter_user_scram_credentials(upserts).values():
        f.result(30)
    return a


def test_scram_over_sasl_ssl_and_plain_over_sasl_plaintext(sasl_broker, pki, topic_name):  # noqa: F811
    plain_bootstrap, ssl_bootstrap = sasl_broker
    a = create_user(ssl_bootstrap, scram_ssl(pki, "admin", "admin-secret"), "alice", "wonderland")
    described = a.describe_user_scram_credentials(["alice"])["alice"].result(30)
    infos = sorted((i.mechanism, i.iterations) for i in described.scram_credential_infos)
    assert infos == [(ScramMechanism.SCRAM_SHA_256, 4096), (ScramMechanism.SCRAM_SHA_512, 8192)]
    with pytest.raises(KafkaException, match="RESOURCE_NOT_FOUND"):
        a.describe_user_scram_credentials(["nobody"])["nobody"].result(30)

    alice = scram_ssl(pki, "alice", "wonderland")
    create_topic(ssl_bootstrap, topic_name, 2, conf=alice)
    produce(ssl_bootstrap, topic_name, 100, alice)
    assert sum(len(ms) for ms in consume_all(ssl_bootstrap, topic_name, 2, 100, conf=alice).values()) == 100
    # PLAIN checks the password against the same SCRAM credentials.
    produce(plain_bootstrap, topic_name, 50, plain("alice", "wonderland"))
    assert sum(len(ms) for ms in consume_all(plain_bootstrap, topic_name, 2, 150, conf=plain("alice", "wonderland")).values()) == 150

    # Deleting the user's credentials refuses it from then on.
    for f in a.alter_user_scram_credentials([UserScramCredentialDeletion("alice", m) for m in
                                             (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)]).values():
        f.result(30)
    assert auth_errors(ssl_bootstrap, alice)


def auth_errors(bootstrap, conf):
    """The errors a client with `conf` reports when its authentication fails."""
    messages = client_errors(bootstrap, conf)
    assert any(FAILED in m for m in messages), messages
    return messages


def test_wrong_password_and_unknown_user_fail_with_a_clear_error(sasl_broker, pki):  # noqa: F811
    plain_bootstrap, ssl_bootstrap = sasl_broker
    create_user(ssl_bootstrap, scram_ssl(pki, "admin", "admin-secret"), "bob", "right")
    for conf in (scram_ssl(pki, "bob", "wrong"), scram_ssl(pki, "mallory", "x")):
        messages = auth_errors(ssl_bootstrap, conf)
        assert any("SCRAM-SHA-512" in m for m in messages), messages
    for conf in (plain("bob", "wrong"), plain("mallory", "x")):
        messages = auth_errors(plain_bootstrap, conf)
        assert any(f"{FAILED} PLAIN" in m for m in messages), messages


def test_kcat_over_sasl_ssl_with_scram_sha_512(sasl_broker, pki, topic_name):  # noqa: F811
    _, ssl_bootstrap = sasl_broker
    admin = scram_ssl(pki, "admin", "admin-secret")
    create_user(ssl_bootstrap, admin, "kc", "kc-pass")
    create_topic(ssl_bootstrap, topic_name, 1, conf=admin)
    kcat = ["kcat", "-b", ssl_bootstrap]
    for k, v in scram_ssl(pki, "kc", "kc-pass").items():
        kcat += ["-X", f"{k}={v}"]
    subprocess.run(kcat + ["-P", "-t", topic_name, "-p", "0"], input=b"from-kcat\n", check=True, timeout=60)
    out = subprocess.run(kcat + ["-C", "-t", topic_name, "-p", "0", "-e", "-q", "-f", "%s\n"], capture_output=True,
                         check=True, timeout=60).stdout
    assert out.splitlines() == [b"from-kcat"]
    wrong = subprocess.run(kcat[:3] + sum((["-X", f"{k}={v}"] for k, v in scram_ssl(pki, "kc", "nope").items()), [])
                           + ["-L", "-m", "5"], capture_output=True, timeout=60)
    assert wrong.returncode != 0
    assert FAILED in wrong.stderr.decode(errors="replace"), wrong.stderr


def kafkajs_run(node_path, bootstrap, topic, count, ca, *auth):
    out = subprocess.run(["node", str(Path(__file__).parent / "node" / "kafkajs_secure.js"), bootstrap, topic, str(count), ca,
                          *auth], capture_output=True, text=True, timeout=180, env={**os.environ, "NODE_PATH": node_path})
    return out.returncode, json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def test_kafkajs_over_sasl_ssl_with_scram_sha_512(sasl_broker, pki, topic_name, kafkajs):  # noqa: F811
    _, ssl_bootstrap = sasl_broker
    admin = scram_ssl(pki, "admin", "admin-secret")
    create_user(ssl_bootstrap, admin, "js", "js-pass")
    create_topic(ssl_bootstrap, topic_name, 2, conf=admin)
    rc, result, err = kafkajs_run(kafkajs, ssl_bootstrap, topic_name, 200, pki.ca, "sasl", "scram-sha-512", "js", "js-pass")
    assert rc == 0, (result, err[-2000:])
    assert result == {"produced": 200, "consumed": 200}
    rc, result, _ = kafkajs_run(kafkajs, ssl_bootstrap, topic_name, 1, pki.ca, "sasl", "scram-sha-512", "js", "wrong")
    assert rc == 1 and result["error"] == "KafkaJSSASLAuthenticationError", result
    assert FAILED in result["message"], result
