"""SPEC 11 from the node's side: nodes that reset before answering, in the middle of their
answer or in the middle of the request the sidecar uploads, that answer a status line outside
100-599 (fuzz_client's finding: "HTTP/1.1 1 OK"), or a megabyte of random bytes. Through the
proxy and through /rpc, the client gets an error (a 5xx, or a proxied response cut short and
its connection closed, never a hang or a reused half-answered connection); the sidecar keeps
serving, its slots and descriptors come back, and the canary registration is intact."""

import json
import os
import socket
import struct
import threading
import time

import pytest

from harness import HOST, http_req, node, service, wait_until
from test_abuse_clients import canary_intact, read_to_close, served, setup_canary, slots_free
from test_proxy import rss_kb, small_quarantine_env


def _reset(s):
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


class BadNode:
    """A node on a loopback port that reads a request head and then misbehaves as `kind`."""

    def __init__(self, kind):
        self.kind = kind
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        c.settimeout(10)
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                piece = c.recv(65536)
                if not piece:
                    return c.close()
                data += piece
            k = self.kind
            if k == "reset-before-answer":
                return _reset(c)
            if k == "reset-mid-response":
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 100000\r\n\r\n" + b"{" * 10)
                time.sleep(0.05)
                return _reset(c)
            if k == "reset-mid-request":
                c.recv(100)
                return _reset(c)
            if k == "status-one":
                c.sendall(b"HTTP/1.1 1 OK\r\nContent-Length: 2\r\n\r\nhi")
                time.sleep(0.2)
                return c.close()
            if k == "random-megabyte":
                try:
                    c.sendall(os.urandom(1 << 20))
                except OSError:
                    pass
                return c.close()
        except OSError:
            pass
        c.close()

    def stop(self):
        self.stopped = True
        self.sock.close()


KINDS = ["reset-before-answer", "reset-mid-response", "reset-mid-request", "status-one",
         "random-megabyte"]


@pytest.fixture
def nodes():
    made = {k: BadNode(k) for k in KINDS}
    yield made
    for n in made.values():
        n.stop()


def register_bad(sc, nodes):
    for k, n in nodes.items():
        svc = service(f"go.micro.srv.{k}", [node(f"{k}-1", port=n.port,
                                                  metadata={"protocol": "http"})])
        assert sc.register(svc).status == 200


def upload(port, path, size):
    """Sends a request with a `size`-byte body (tolerating the sidecar closing first) and
    returns what came back before the close."""
    s = socket.create_connection((HOST, port), timeout=10)
    try:
        s.sendall(http_req("POST", path, [("Content-Length", str(size))]))
        chunk = b"u" * 65536
        left = size
        while left > 0:
            s.sendall(chunk[:left])
            left -= len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return s


@pytest.mark.timeout_s(120)
@pytest.mark.parametrize("kind", KINDS)
def test_misbehaving_node_through_the_proxy(micro, nodes, kind):
    sc = micro("--handler=auto", "--max_connections=20", "--request_timeout=5s",
               env=small_quarantine_env())
    setup_canary(sc)
    register_bad(sc, nodes)
    fds0 = len(os.listdir(f"/proc/{sc.proc.pid}/fd"))
    rss0 = rss_kb(sc.proc.pid)
    for _ in range(25):  # more than the slots: a leak would starve the next
        if kind == "reset-mid-request":
            s = upload(sc.port, f"/{kind}/up", 4 << 20)
        else:
            s = socket.create_connection((HOST, sc.port), timeout=10)
            s.sendall(http_req("GET", f"/{kind}/x"))
        got = read_to_close(s, 15) if kind == "reset-mid-response" else s.recv(65536)
        s.close()
        status = int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.1 ") else None
        if kind == "reset-mid-response":
            # The head went out before the node failed: the answer is cut short and closed.
            assert status == 200 and len(got.split(b"\r\n\r\n", 1)[1]) < 100000, got[:200]
        else:
            assert got == b"" and kind == "reset-mid-request" or status in (502, 503), got[:200]
    assert served(sc)
    assert wait_until(lambda: slots_free(sc, 18), 15, message="every slot back")
    assert wait_until(lambda: len(os.listdir(f"/proc/{sc.proc.pid}/fd")) <= fds0 + 2, 15,
                      message="the descriptors back")
    assert rss_kb(sc.proc.pid) < rss0 + 30 * 1024
    canary_intact(sc)


@pytest.mark.timeout_s(120)
@pytest.mark.parametrize("kind", KINDS)
def test_misbehaving_node_through_rpc(micro, nodes, kind):
    sc = micro("--max_connections=20", "--request_timeout=5s", env=small_quarantine_env())
    setup_canary(sc)
    register_bad(sc, nodes)
    rss0 = rss_kb(sc.proc.pid)
    big = "x" * (1 << 20) if kind == "reset-mid-request" else ""
    for _ in range(25):
        body = json.dumps({"service": f"go.micro.srv.{kind}", "method": "Bad.Call",
                           "request": {"pad": big}})
        r = sc.request("POST", "/rpc", body=body, headers={"Content-Type": "application/json"},
                       timeout=15)
        assert 500 <= r.status <= 599, r
        assert r.json()["code"] == r.status
    assert served(sc)
    assert wait_until(lambda: slots_free(sc, 18), 15, message="every slot back")
    assert rss_kb(sc.proc.pid) < rss0 + 30 * 1024
    canary_intact(sc)
