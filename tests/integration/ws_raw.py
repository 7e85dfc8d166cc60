"""A raw RFC 6455 client over a plain socket, for what a well-behaved library refuses to do
(unmasked frames, bad close codes, a reader that stops reading) and for byte-exact checks.
Used by test_broker.py and test_watch.py; every wait is bounded."""

import base64
import os
import socket
import struct
import time

HOST = "127.0.0.1"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def encode_frame(opcode, payload=b"", fin=True, mask=True, rsv=0):
    """One client frame; mask=False makes the unmasked frame RFC 6455 5.1 forbids."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


class RawWS:
    """Connects and performs the opening handshake (raises AssertionError unless 101)."""

    def __init__(self, port, path, headers=None, timeout=10, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((HOST, port))
        self.timeout = timeout
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        fields = {"Host": f"{HOST}:{port}", "Upgrade": "websocket", "Connection": "Upgrade",
                  "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
        fields.update(headers or {})  # a test's own value replaces the default
        lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in fields.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                raise AssertionError(f"closed during handshake: {self.buf!r}")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status_line = head.split(b"\r\n")[0].decode()
        assert self.status_line.startswith("HTTP/1.1 101"), head

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.send(encode_frame(opcode, payload, **kw))

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"nothing more within {self.timeout}s; have {self.buf[:200]!r}")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            raise AssertionError(f"nothing more within {self.timeout}s; have {self.buf[:200]!r}")
        except ConnectionResetError:
            return False
        if not chunk:
            return False
        self.buf += chunk
        return True

    def _take(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                return None
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_frame(self, timeout=None):
        """(fin, opcode, payload) of the next server frame, or None when the connection ended.
        Server frames must be unmasked (RFC 6455 5.1): asserted."""
        deadline = time.monotonic() + (timeout or self.timeout)
        h = self._take(2, deadline)
        if h is None:
            return None
        fin, opcode = bool(h[0] & 0x80), h[0] & 0x0F
        assert not h[1] & 0x80, "server frame is masked"
        n = h[1] & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2, deadline))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8, deadline))[0]
        payload = self._take(n, deadline) if n else b""
        if payload is None:
            return None
        return fin, opcode, payload

    def read_close(self, timeout=None):
        """Skips data frames up to the server's close; returns (code, reason), or None if the
        connection ended without one. Answers with our own close, as a client should."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            f = self.read_frame(max(0.01, deadline - time.monotonic()))
            if f is None:
                return None
            if f[1] == OP_CLOSE:
                try:
                    self.send_frame(OP_CLOSE, f[2][:2])
                except OSError:
                    pass
                if len(f[2]) < 2:
                    return 1005, b""
                return struct.unpack("!H", f[2][:2])[0], f[2][2:]

    def ended(self, timeout=3):
        """True once the server has closed TCP (EOF or reset) within timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if not self._fill(deadline):
                    return True
            except AssertionError:
                return False
