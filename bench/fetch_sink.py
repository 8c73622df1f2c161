"""A consumer for benchmarks that costs the machine almost nothing, so the broker's fetch path is what limits.

It speaks just enough of the Kafka protocol (Fetch v4, one partition) to walk a log from offset 0: the response
and batch headers are read, the record bytes are moved into /dev/null with splice(2), which over loopback hands the
kernel's pages along without copying them. A real consumer copies and parses every record, and over loopback that
work runs on the same cores as the broker, so it decides the result (see BENCHMARKS.md); this one does not.
"""

import fcntl
import os
import socket
import struct
import time

F_SETPIPE_SZ = 1031
PIPE_BYTES = 1 << 20
BATCH_HEAD = struct.Struct(">qiibiHi")  # base offset, length, leader epoch, magic, crc, attributes, last offset delta


class Sink:
    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)))
        self.pipe_r, self.pipe_w = os.pipe()
        fcntl.fcntl(self.pipe_w, F_SETPIPE_SZ, PIPE_BYTES)
        self.null = os.open("/dev/null", os.O_WRONLY)
        self.correlation = 0

    def close(self):
        self.sock.close()
        for fd in (self.pipe_r, self.pipe_w, self.null):
            os.close(fd)

    def read_exact(self, n):
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = self.sock.recv_into(view[got:])
            if k == 0:
                raise ConnectionError("broker closed the connection")
            got += k
        return bytes(buf)

    def discard(self, n):
        """Moves n bytes from the socket to /dev/null without copying them into this process."""
        while n > 0:
            k = os.splice(self.sock.fileno(), self.pipe_w, min(n, PIPE_BYTES))
            if k == 0:
                raise ConnectionError("broker closed the connection")
            n -= k
            while k > 0:
                k -= os.splice(self.pipe_r, self.null, k)

    def fetch(self, topic, partition, offset, max_bytes):
        """One Fetch v4 round trip: (high watermark, record bytes received, offset after the last whole batch)."""
        self.correlation += 1
        name = topic.encode()
        body = struct.pack(">hhih", 1, 4, self.correlation, 4) + b"sink"
        body += struct.pack(">iiiib", -1, 500, 1, max_bytes, 0)
        body += struct.pack(">ih", 1, len(name)) + name + struct.pack(">iiqi", 1, partition, offset, max_bytes)
        self.sock.sendall(struct.pack(">i", len(body)) + body)
        _size, correlation, _throttle, topics = struct.unpack(">iiii", self.read_exact(16))
        if correlation != self.correlation or topics != 1:
            raise RuntimeError(f"unexpected Fetch response: correlation {correlation}, {topics} topics")
        (name_len,) = struct.unpack(">h", self.read_exact(2))
        self.read_exact(name_len + 4)  # topic name, partition count (one, as asked)
        _p, error, hw, _lso, aborted = struct.unpack(">ihqqi", self.read_exact(26))
        if error:
            raise RuntimeError(f"Fetch error code {error}")
        if aborted > 0:
            self.read_exact(16 * aborted)
        (records,) = struct.unpack(">i", self.read_exact(4))
        left, after = max(records, 0), offset
        while left >= BATCH_HEAD.size:
            base, length, _epoch, _magic, _crc, _attrs, last_delta = BATCH_HEAD.unpack(self.read_exact(BATCH_HEAD.size))
            whole = 12 + length
            if whole > left:  # a cut-off last batch: skip it, fetch it whole next time
                self.discard(left - BATCH_HEAD.size)
                left = 0
                break
            self.discard(whole - BATCH_HEAD.size)
            left -= whole
            after = base + last_delta + 1
        self.discard(left)
        return hw, max(records, 0), after


def consume(addr, topic, end_offset, max_bytes=8 << 20):
    """Reads partition 0 of `topic` from offset 0 to `end_offset`: (MB/s of record bytes, bytes)."""
    sink = Sink(addr)
    try:
        offset, total, start = 0, 0, time.monotonic()
        while offset < end_offset:
            hw, n, after = sink.fetch(topic, 0, offset, max_bytes)
            if after == offset and hw <= offset:
                raise RuntimeError(f"{topic} ends at offset {hw}, before {end_offset}")
            total, offset = total + n, after
        return total / (time.monotonic() - start) / 1e6, total
    finally:
        sink.close()
