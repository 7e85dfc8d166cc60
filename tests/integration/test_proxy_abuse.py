"""--handler=proxy against hostile clients and broken nodes (issue 7, points 2, 6 and 11):
clients that half-close, stall or vanish mid-upload must not keep their connection slot or
file descriptor; a node's 204/304 reaches the client without a body; a 101 nobody asked for
is a 502, not a tunnel; a WebSocket tunnel open at shutdown is closed and freed (exit 0, no
sanitizer report)."""

import base64
import os
import signal
import socket
import time

import pytest

from harness import HOST, assert_error_json, http_req, service, wait_until

SVC = "go.micro.srv.foo"
MAX_CONNECTIONS = 20
CLIENTS = MAX_CONNECTIONS + 4  # more than the slots: any leak starves the next client


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def served(sc):
    """True when a plain proxied request gets its answer (False while every slot is taken:
    the sidecar closes a connection over --max_connections at once)."""
    try:
        return sc.get("/foo/probe", timeout=3).status == 200
    except OSError:
        return False


def read_to_close(sock, timeout):
    """Everything the sidecar sends until it closes (EOF or reset); fails if it stays open
    longer than `timeout` seconds."""
    deadline = time.monotonic() + timeout
    got = b""
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"connection still open after {timeout}s; got {got[:200]!r}"
        sock.settimeout(remaining)
        try:
            piece = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return got
        if not piece:
            return got
        got += piece


def send_quietly(sock, data):
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # one of the connections over the limit, closed at once


# kind -> (path, sidecar flags): each leaves the request body unfinished (1000 bytes announced,
# 10 sent) in its own way.
#   half-close: the client shuts down its sending side and waits for an answer
#   stall:      the node answers at once; the client never sends the rest and never closes
#   vanish:     the client closes its socket; the node never answers
KINDS = {
    "half-close": ("/foo/x/upload", ("--request_timeout=1s",)),
    "stall": ("/foo/x/early", ()),
    "vanish": ("/foo/x/hang", ("--request_timeout=30s",)),
}


@pytest.mark.timeout_s(60)
@pytest.mark.parametrize("kind", list(KINDS))
def test_unfinished_uploads_release_slots_and_fds(micro, app, kind):
    path, flags = KINDS[kind]
    sc = micro("--handler=proxy", f"--max_connections={MAX_CONNECTIONS}", *flags)
    assert sc.register(service(SVC, [app.node()])).status == 200
    assert served(sc)  # pools a node connection: the steady state the count is taken in
    pid = sc.proc.pid
    baseline = fd_count(pid)
    head = http_req("POST", path, headers=[("Content-Length", "1000")]) + b"x" * 10
    socks = []
    try:
        for _ in range(CLIENTS):
            s = socket.create_connection((HOST, sc.port), timeout=10)
            socks.append(s)
            send_quietly(s, head)
        time.sleep(0.3)  # let the sidecar read every head and start every call
        for s in socks:
            if kind == "half-close":
                try:
                    s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            elif kind == "vanish":
                s.close()
        if kind != "vanish":
            # The sidecar ends every one of them (an early answer first, for "stall").
            for s in socks:
                got = read_to_close(s, 15)
                if kind == "stall" and got:
                    assert got.startswith(b"HTTP/1.1 200"), got
        wait_until(lambda: served(sc), 15, message="a normal request to be served")
        wait_until(lambda: fd_count(pid) <= baseline, 15,
                   message=f"the sidecar's fds to return to {baseline}")
    finally:
        for s in socks:
            s.close()
    assert sc.alive()


# ---- point 6: status codes that frame no body


@pytest.fixture
def proxy(micro, app):
    sc = micro("--handler=proxy")
    assert sc.register(service(SVC, [app.node()])).status == 200
    return sc


@pytest.mark.parametrize("code", [204, 304])
def test_bodiless_status_is_forwarded_without_body(proxy, code):
    # The node sends "Content-Length: 5" and "hello" with it: the client gets neither, and
    # the node connection that carried the stray bytes is not reused (the next answers are
    # clean).
    with proxy.raw() as c:
        for i in range(3):
            c.send(http_req("GET", f"/foo/x/status?code={code}"))
            r = c.read_response()  # reads no body for a 204/304, so stray bytes stay in buf
            assert r.status == code, r
            assert r.header("Content-Length") is None, r
            assert r.header("Transfer-Encoding") is None, r
            c.send(http_req("GET", f"/foo/after/{i}"))
            r = c.read_response()  # a "hello" before it would break the status line
            assert r.status == 200 and r.json()["target"] == f"/foo/after/{i}", r
        assert not c.closed_by_peer(timeout=0.3)


@pytest.mark.parametrize("upgrade", [0, 1])
def test_unsolicited_101_is_a_502(proxy, upgrade):
    # A 101 to a request that did not ask to upgrade, with or without Upgrade/Connection
    # headers, is a broken node: no tunnel, no 101 passed on.
    target = "/foo/x/status?code=101"
    if upgrade:
        target += "&upgrade=1"
    with proxy.raw() as c:
        c.send(http_req("GET", target))
        r = c.read_response()
        assert_error_json(r, 502, "Bad Gateway")
    assert proxy.get("/foo/after").status == 200


# ---- point 11: tunnels at shutdown


def test_websocket_tunnel_open_at_shutdown_is_closed(micro, app):
    sc = micro("--handler=proxy")
    assert sc.register(service(SVC, [app.node()])).status == 200
    key = base64.b64encode(os.urandom(16)).decode()
    sock = socket.create_connection((HOST, sc.port), timeout=10)
    try:
        sock.sendall(http_req("GET", "/foo/chat/ws", headers=[
            ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")]))
        head = b""
        while b"\r\n\r\n" not in head:
            piece = sock.recv(4096)
            assert piece, head
            head += piece
        assert head.startswith(b"HTTP/1.1 101"), head
        # One masked text frame "hi" and its echo: the tunnel is up both ways.
        mask = b"\x01\x02\x03\x04"
        sock.sendall(b"\x81\x82" + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(b"hi")))
        echo = head.split(b"\r\n\r\n", 1)[1]
        while len(echo) < 4:
            piece = sock.recv(4096)
            assert piece, echo
            echo += piece
        assert echo[:4] == b"\x81\x02hi", echo
        sc.signal(signal.SIGTERM)
        assert sc.wait_exit(10) == 0  # the teardown fails on any sanitizer report
        read_to_close(sock, 5)
    finally:
        sock.close()


@pytest.mark.timeout_s(60)
def test_download_to_a_client_that_stopped_reading_is_dropped(micro, app):
    """A client reads the head of a big proxied download and then never reads again: the proxy
    pauses the node once the client's output is over the high-water mark, and when none of it
    drains for --proxy_idle_timeout the client's connection is closed and the node call
    cancelled (before, the paused download held both connections for ever)."""
    sc = micro("--handler=proxy", "--proxy_idle_timeout=1s")
    assert sc.register(service(SVC, [app.node()])).status == 200
    pid = sc.proc.pid
    base = fd_count(pid)
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.settimeout(10)
    c.connect((HOST, sc.port))
    try:
        # 2000 chunks of 64 KiB: far more than the socket buffers and the high-water mark
        c.sendall(http_req("GET", "/foo/x/chunked?n=2000&size=65536"))
        head = c.recv(4096)
        assert head.startswith(b"HTTP/1.1 200"), head
        # The head came: the client's connection and the node call are open now; before the
        # bound they stayed open for ever.
        wait_until(lambda: fd_count(pid) <= base, 20,
                   message="the stuck client's connection and its node call closed")
        assert served(sc)
    finally:
        c.close()
