#!/usr/bin/env python3
"""Security benchmark (not a test): produce and fetch throughput and broker CPU per GiB over SASL_SSL
(SCRAM-SHA-512, TLS 1.3) versus PLAINTEXT, on one release broker with both listeners, same run, rounds in
alternating order (machines are noisy: compare the paired per-round ratios). Fetches over TLS go through the
copy path (user-space TLS cannot sendfile; this kernel has no kTLS module).
Usage: bench/security.sh   (ROUNDS=5 COUNT=400000 by default)
"""

import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median

sys.argv = sys.argv[:3] + ["-"]  # broker_bench's argv: BROKER RDKAFKA (no loopback binary here)
import broker_bench as bb  # noqa: E402

import os  # noqa: E402

ROUNDS, SIZE, COUNT = int(os.environ.get("ROUNDS", 5)), 1024, int(os.environ.get("COUNT", 400_000))
ADMIN_JAAS = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="bench" password="bench-secret";'


def pki(d: Path):
    """A CA and the broker's keystore for 127.0.0.1 (openssl)."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key",
        "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench-ca")
    (d / "b.ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "b.key", "-out", "b.csr",
        "-subj", "/CN=broker")
    run("x509", "-req", "-in", "b.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "b.pem",
        "-days", "2", "-extfile", "b.ext")
    (d / "keystore.pem").write_text((d / "b.key").read_text() + (d / "b.pem").read_text())
    return d / "ca.pem", d / "keystore.pem"


def main():
    work = Path(tempfile.mkdtemp(prefix="strata-security-bench-"))
    ca, keystore = pki(work)
    (work / "data").mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        sasl_port = s.getsockname()[1]
    b = bb.Broker(work / "data", "--ssl.keystore.location", str(keystore), "--sasl.jaas.config", ADMIN_JAAS,
                  "--num.partitions", "1",
                  listeners=f"PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:{sasl_port}")
    sides = {
        "PLAINTEXT": (b.addr, []),
        "SASL_SSL": (f"127.0.0.1:{sasl_port}", ["-X", "security.protocol=SASL_SSL", "-X", f"ssl.ca.location={ca}",
                                               "-X", "sasl.mechanism=SCRAM-SHA-512", "-X", "sasl.username=bench",
                                               "-X", "sasl.password=bench-secret"]),
    }
    gib = SIZE * COUNT / 2**30
    results = {side: {"produce": [], "consume": []} for side in sides}
    try:
        for rnd in range(ROUNDS):
            order = list(sides) if rnd % 2 == 0 else list(reversed(sides))
            for side in order:
                addr, extra = sides[side]
                topic = f"{side.lower()}-{rnd}"
                cpu0 = b.cpu_seconds()
                _, p_mb = bb.produce(addr, topic, SIZE, COUNT, 1, *extra)
                cpu1 = b.cpu_seconds()
                _, c_mb = bb.consume(addr, topic, 1, COUNT, *extra)
                cpu2 = b.cpu_seconds()
                results[side]["produce"].append((p_mb, (cpu1 - cpu0) / gib))
                results[side]["consume"].append((c_mb, (cpu2 - cpu1) / gib))
                print(rnd, side, f"produce {p_mb:.0f} MB/s {(cpu1 - cpu0) / gib:.2f} s/GiB,",
                      f"consume {c_mb:.0f} MB/s {(cpu2 - cpu1) / gib:.2f} s/GiB", flush=True)
        rss = b.rss_mib()
    finally:
        b.stop()
    print(f"\n{ROUNDS} rounds, {COUNT:,} records of {SIZE} B per side and round (acks=1, 1 partition), broker RSS "
          f"{rss:.1f} MiB at the end\n")
    print("| listener | produce MB/s (median) | broker CPU s/GiB | consume MB/s (median) | broker CPU s/GiB |")
    print("|---|---|---|---|---|")
    for side, r in results.items():
        p, c = r["produce"], r["consume"]
        print(f"| {side} | {median(x[0] for x in p):.0f} | {median(x[1] for x in p):.2f} | "
              f"{median(x[0] for x in c):.0f} | {median(x[1] for x in c):.2f} |")
    ratio = lambda op, i: median(s[i] / pl[i] for s, pl in zip(results["SASL_SSL"][op], results["PLAINTEXT"][op]))  # noqa: E731
    print(f"\nPaired per-round ratios SASL_SSL / PLAINTEXT (median): produce MB/s {ratio('produce', 0):.2f}, "
          f"CPU/GiB {ratio('produce', 1):.2f}; consume MB/s {ratio('consume', 0):.2f}, CPU/GiB {ratio('consume', 1):.2f}")


if __name__ == "__main__":
    main()
