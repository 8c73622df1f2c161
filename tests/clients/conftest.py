"""Fixtures for the real-client tests: a strata-broker child process on 127.0.0.1 with a temporary data dir."""

import os
import re
import select
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BINARY = os.environ.get("STRATA_BROKER_BIN", str(REPO / "target" / "debug" / "strata-broker"))
LISTENING = re.compile(r"strata-broker listening on PLAINTEXT://127\.0\.0\.1:(\d+)")


class Broker:
    """One broker process; `restart` keeps the data dir and the port, so clients reconnect to it."""

    def __init__(self, data_dir: Path, log_path: Path, extra_args=(), controller_port=None, ssl_port=None,
                 extra_listeners=()):
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra_args = list(extra_args)
        self.port = 0
        # A controller quorum voter also listens for the quorum's messages (a fixed port the others know).
        self.controller_port = controller_port
        # An SSL listener besides the PLAINTEXT one (its TLS settings are in extra_args).
        self.ssl_port = ssl_port
        # More NAME://HOST:PORT listeners (SASL_PLAINTEXT, SASL_SSL; their settings are in extra_args).
        self.extra_listeners = list(extra_listeners)
        self.proc = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=30):
        listeners = f"PLAINTEXT://127.0.0.1:{self.port}"
        if self.controller_port:
            listeners += f",CONTROLLER://127.0.0.1:{self.controller_port}"
        if self.ssl_port:
            listeners += f",SSL://127.0.0.1:{self.ssl_port}"
        listeners = ",".join([listeners, *self.extra_listeners])
        args = [BINARY, "--listeners", listeners, "--log.dirs", str(self.data_dir)]
        log = open(self.log_path, "ab")
        # No metrics endpoint (flags win over the environment): several brokers would all bind the default 9644.
        env = dict(os.environ, STRATA_METRICS_PORT="0")
        self.proc = subprocess.Popen(args + self.extra_args, stdout=subprocess.PIPE, stderr=log, env=env)
        deadline = time.time() + timeout
        line = b""
        while time.time() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                m = LISTENING.search(line.decode())
                if m:
                    self.port = int(m.group(1))
                    return self
            if self.proc.poll() is not None:
                break
        self.kill()
        raise RuntimeError(f"broker did not start: {line!r}; log: {self.log_path.read_text()[-2000:]}")

    def stop(self, timeout=30):
        """SIGTERM and wait for the graceful shutdown; returns the exit code."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        self.proc = None
        return code

    def kill(self):
        """SIGKILL: a crash, no clean shutdown."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self, hard=False):
        self.kill() if hard else self.stop()
        return self.start()


@pytest.fixture
def make_broker(tmp_path):
    brokers = []

    def make(*extra_args, controller_port=None, ssl_port=None, extra_listeners=()):
        b = Broker(
            tmp_path / f"data{len(brokers)}", tmp_path / f"broker{len(brokers)}.log", extra_args, controller_port, ssl_port,
            extra_listeners,
        )
        brokers.append(b)
        return b.start()

    yield make
    for b in brokers:
        b.kill()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("broker")
    b = Broker(tmp / "data", tmp / "broker.log", ["--log.retention.check.interval.ms", "500"]).start()
    yield b
    b.kill()


@pytest.fixture
def topic_name():
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def kafkajs():
    """NODE_PATH with kafkajs installed (pinned, cached outside the repo)."""
    out = subprocess.run(["bash", str(Path(__file__).parent / "node" / "install.sh")], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    return str(Path(out.stdout.strip()) / "node_modules")
