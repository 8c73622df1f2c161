"""SSL listeners with real clients: confluent-kafka (librdkafka over OpenSSL) and kcat produce and consume over
TLS, trusting the broker through ssl.ca.location (librdkafka checks the broker's name, 127.0.0.1, by default), and
over mutual TLS with a client certificate; without a certificate, or with one of another CA, they are refused.
openssl s_client gets TLS 1.2 and 1.3 only, and only what ssl.enabled.protocols allows. Certificates come from the
openssl command line, made per test."""

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from kafka_util import consume_all, create_topic


@dataclass
class Pki:
    ca: str
    broker_keystore: str
    client_cert: str
    client_key: str


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def signed(d: Path, ca: str, name: str, subject: str, days: int = 2):
    """A key and a certificate signed by `ca` (in `d`), good for 127.0.0.1 as server and client (for `days`;
    negative: expired since)."""
    (d / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", subject, cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", str(days), "-extfile", f"{name}.ext", cwd=d)


def make_ca(d: Path, name: str):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}", cwd=d)


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    make_ca(d, "ca")
    signed(d, "ca", "broker", "/O=Strata Tests/CN=broker")
    signed(d, "ca", "client", "/O=Strata Tests/CN=app")
    (d / "broker-keystore.pem").write_text((d / "broker.key").read_text() + (d / "broker.pem").read_text())
    return Pki(str(d / "ca.pem"), str(d / "broker-keystore.pem"), str(d / "client.pem"), str(d / "client.key"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def produce(bootstrap, topic, n, conf):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", **conf})
    errors = []
    for i in range(n):
        p.produce(topic, key=f"k{i}", value=f"secret-{i}".encode() * 50, on_delivery=lambda e, m: e and errors.append(e))
    assert p.flush(30) == 0
    assert errors == []


def client_errors(bootstrap, conf):
    """The errors a client with `conf` reports when it cannot list the topics (its handshake or authentication
    fails)."""
    errors = []
    a = AdminClient({"bootstrap.servers": bootstrap, "error_cb": errors.append, **conf})
    with pytest.raises(KafkaException):
        a.list_topics(timeout=5)
    a.poll(1)
    return [e.str() for e in errors]


def refused(bootstrap, conf):
    """True if a client with `conf` cannot list the topics (its handshakes fail)."""
    client_errors(bootstrap, conf)
    return True


def mtls_broker(make_broker, pki):
    """A broker whose SSL listener requires client certificates of the test CA: its bootstrap, and the client
    settings of the test client certificate."""
    port = free_port()
    make_broker("--ssl.keystore.location", pki.broker_keystore, "--ssl.truststore.location", pki.ca,
                "--ssl.client.auth", "required", ssl_port=port)
    mtls = {"security.protocol": "SSL", "ssl.ca.location": pki.ca, "ssl.certificate.location": pki.client_cert,
            "ssl.key.location": pki.client_key}
    return f"127.0.0.1:{port}", mtls


def test_produce_and_consume_over_ssl_with_confluent_kafka_and_kcat(make_broker, pki, topic_name, tmp_path):
    port = free_port()
    make_broker("--ssl.keystore.location", pki.broker_keystore, ssl_port=port)
    bootstrap = f"127.0.0.1:{port}"
    ssl = {"security.protocol": "SSL", "ssl.ca.location": pki.ca}
    create_topic(bootstrap, topic_name, 2, conf=ssl)
    produce(bootstrap, topic_name, 200, ssl)
    got = consume_all(bootstrap, topic_name, 2, 200, conf=ssl)
    values = sorted(m.value() for ms in got.values() for m in ms)
    assert values == sorted(f"secret-{i}".encode() * 50 for i in range(200))

    kcat = ["kcat", "-b", bootstrap, "-X", "security.protocol=SSL", "-X", f"ssl.ca.location={pki.ca}"]
    subprocess.run(kcat + ["-P", "-t", topic_name, "-p", "0"], input=b"from-kcat\n", check=True, timeout=60)
    out = subprocess.run(kcat + ["-C", "-t", topic_name, "-p", "0", "-e", "-q", "-f", "%s\n"], capture_output=True,
                         check=True, timeout=60).stdout
    assert out.splitlines()[-1] == b"from-kcat"
    # A client that does not trust the broker's CA is refused by its own check.
    other = tmp_path / "other"
    other.mkdir()
    make_ca(other, "other")
    assert refused(bootstrap, {"security.protocol": "SSL", "ssl.ca.location": str(other / "other.pem")})


def test_mutual_tls(make_broker, pki, topic_name, tmp_path):
    bootstrap, mtls = mtls_broker(make_broker, pki)
    create_topic(bootstrap, topic_name, 1, conf=mtls)
    produce(bootstrap, topic_name, 50, mtls)
    assert len(consume_all(bootstrap, topic_name, 1, 50, conf=mtls)[0]) == 50

    assert refused(bootstrap, {"security.protocol": "SSL", "ssl.ca.location": pki.ca})
    other = tmp_path / "other"
    other.mkdir()
    make_ca(other, "other")
    signed(other, "other", "intruder", "/CN=app")
    assert refused(bootstrap, {**mtls, "ssl.certificate.location": str(other / "intruder.pem"),
                               "ssl.key.location": str(other / "intruder.key")})


def s_client(port, *args):
    """openssl s_client's handshake with 127.0.0.1:port: (succeeded, its output)."""
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args], input=b"", capture_output=True,
                         timeout=30)
    text = (out.stdout + out.stderr).decode(errors="replace")
    return out.returncode == 0 and "Cipher is (NONE)" not in text, text


def test_only_tls_1_2_and_1_3_and_as_ssl_enabled_protocols_says(make_broker, pki):
    port = free_port()
    make_broker("--ssl.keystore.location", pki.broker_keystore, ssl_port=port)
    for version in ("-tls1_2", "-tls1_3"):
        ok, text = s_client(port, version, "-CAfile", pki.ca)
        assert ok and f"New, TLSv1.{version[-1]}" in text, text
        assert "Verify return code: 0 (ok)" in text, text
    # SECLEVEL=0 lets this OpenSSL offer TLS 1.0 and 1.1 at all: the broker refuses them with an alert.
    for version in ("-tls1_1", "-tls1"):
        ok, text = s_client(port, version, "-cipher", "DEFAULT@SECLEVEL=0")
        assert not ok and "SSL alert number" in text, text

    only13 = free_port()
    make_broker("--ssl.keystore.location", pki.broker_keystore, "--ssl.enabled.protocols", "TLSv1.3", ssl_port=only13)
    assert s_client(only13, "-tls1_3", "-CAfile", pki.ca)[0]
    ok, text = s_client(only13, "-tls1_2", "-CAfile", pki.ca)
    assert not ok, text


def test_kafkajs_over_mutual_tls(make_broker, pki, topic_name, kafkajs):
    from test_sasl import kafkajs_run
    bootstrap, mtls = mtls_broker(make_broker, pki)
    create_topic(bootstrap, topic_name, 2, conf=mtls)
    rc, result, err = kafkajs_run(kafkajs, bootstrap, topic_name, 100, pki.ca, "cert", pki.client_cert, pki.client_key)
    assert rc == 0, (result, err[-2000:])
    assert result == {"produced": 100, "consumed": 100}
    # Without a client certificate the broker refuses the handshake: kafkajs says so instead of hanging.
    rc, result, _ = kafkajs_run(kafkajs, bootstrap, topic_name, 1, pki.ca)
    assert rc == 1 and result["error"], result


def test_expired_certificates_fail_with_a_clear_error(make_broker, pki):
    d = Path(pki.ca).parent
    signed(d, "ca", "expired", "/O=Strata Tests/CN=app", days=-1)
    (d / "expired-keystore.pem").write_text((d / "expired.key").read_text() + (d / "expired.pem").read_text())
    # The broker's certificate expired: the client says so.
    port = free_port()
    make_broker("--ssl.keystore.location", str(d / "expired-keystore.pem"), ssl_port=port)
    errors = " | ".join(client_errors(f"127.0.0.1:{port}", {"security.protocol": "SSL", "ssl.ca.location": pki.ca}))
    # librdkafka names the failed check, not the reason (OpenSSL's verify result says "expired").
    assert "certificate verify failed" in errors, errors
    # The client's certificate expired: the broker refuses it with TLS's certificate_expired alert.
    bootstrap, mtls = mtls_broker(make_broker, pki)
    errors = " | ".join(client_errors(bootstrap, {**mtls, "ssl.certificate.location": str(d / "expired.pem"),
                                                  "ssl.key.location": str(d / "expired.key")}))
    assert "expired" in errors, errors
