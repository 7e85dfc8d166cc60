"""A gRPC node that accepts TCP and never speaks HTTP/2 (issue 13, "every connection state a
bound in time and memory"): --dial_timeout covers the HTTP/2 client's connection up to the
node's first SETTINGS frame, not only the TCP connect. Past it the connection fails as a
connect failure does: the call goes to another node (or fails UNAVAILABLE when there is none)
instead of waiting for its deadline, and the connection to the silent node is closed at once
instead of after the 60 s idle close."""

import socket
import threading

import grpc
import pytest

from harness import HOST, node, service, wait_until
from test_grpc import SVC, apps, channel, hello  # noqa: F401 (apps is a fixture)


class SilentNode:
    """Accepts every connection and never writes a byte (reads and drops what comes)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((HOST, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.open = 0
        self.lock = threading.Lock()
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.open += 1
            threading.Thread(target=self._hold, args=(c,), daemon=True).start()

    def _hold(self, c):
        c.settimeout(120)
        try:
            while c.recv(65536):
                pass
        except OSError:
            pass
        finally:
            c.close()
            with self.lock:
                self.open -= 1

    def stop(self):
        self.stopping = True
        self.sock.close()


@pytest.fixture
def silent():
    n = SilentNode()
    yield n
    n.stop()


@pytest.mark.timeout_s(60)
def test_silent_node_alone_is_unavailable_not_the_deadline(micro, silent):
    sc = micro("--dial_timeout=1s", "--request_timeout=30s", "--retries=0")
    assert sc.register(service(SVC, [node("silent-node", port=silent.port)])).status == 200
    ch = channel(sc)
    try:
        with pytest.raises(grpc.RpcError) as e:
            hello(ch, timeout=20)
        # a dial failure, told as such: not DEADLINE_EXCEEDED after the call's 20 s
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE, (e.value.code(), e.value.details())
        assert silent.accepted >= 1
        # and the connection to the silent node is not kept for the 60 s idle close
        assert wait_until(lambda: silent.open == 0, 10, message="the silent node's connection closed")
    finally:
        ch.close()


@pytest.mark.timeout_s(60)
def test_silent_node_calls_go_to_a_good_node(micro, apps, silent):
    a = apps("a")
    sc = micro("--dial_timeout=1s", "--selector=roundrobin")
    assert sc.register(service(SVC, [a.node(), node("silent-node", port=silent.port)])).status == 200
    ch = channel(sc)
    try:
        for _ in range(4):
            assert hello(ch, b"x", timeout=15) == b"a:x"
        assert silent.accepted >= 1  # the silent node was tried, and its calls retried
    finally:
        ch.close()
