"""SPEC 11 against hostile clients, the cases test_http_abuse.py, test_proxy_abuse.py,
test_ws_flood.py and test_garbage.py leave out: slowloris on heads and on bodies, half-closed
connections on the buffered routes and WebSockets, resets in the middle of a body and of a
response, huge header lines, a megabyte of random bytes (raw, and after a WebSocket upgrade).
Each asserts the sidecar still answers other clients, lost nothing (the canary registration
made first is intact, nothing half-sent was registered), released the connection slots, and
kept its RSS bounded."""

import json
import os
import socket
import struct
import time

import pytest

from harness import HOST, http_req, node, service, wait_until
from test_proxy import rss_kb, small_quarantine_env
from ws_raw import RawWS

CANARY = service("canary.svc", [node("canary-1", port=9999, metadata={"k": "v"})])


def setup_canary(sc):
    assert sc.register(CANARY).status == 200


def canary_intact(sc):
    r = sc.lookup("canary.svc")
    assert r.status == 200, r
    nodes = [n for v in r.json() for n in v["nodes"]]
    assert [(n["id"], n["port"], n["metadata"]) for n in nodes] == [("canary-1", 9999, {"k": "v"})]


def served(sc, timeout=5):
    try:
        return sc.get("/registry", timeout=timeout).status == 200
    except OSError:
        return False


def connect(port, timeout=10):
    s = socket.create_connection((HOST, port), timeout=timeout)
    return s


def reset(s):
    """Closes with an RST (SO_LINGER 0), as a crashed or hostile client does."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def read_to_close(s, timeout):
    """Everything until EOF or a reset; fails after `timeout` seconds of the sidecar keeping
    the connection open."""
    deadline = time.monotonic() + timeout
    got = b""
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"connection still open after {timeout}s; got {got[:200]!r}"
        s.settimeout(left)
        try:
            piece = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return got
        if not piece:
            return got
        got += piece


def send_quietly(s, data):
    try:
        s.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        return False


def slots_free(sc, n):
    """n keep-alive connections can be held at once and each gets an answer (a slot leaked
    by an abusive client would make one of them be closed at once)."""
    socks = []
    try:
        for _ in range(n):
            s = connect(sc.port, timeout=5)
            socks.append(s)
        for s in socks:
            s.sendall(http_req("GET", "/health"))
        for s in socks:
            s.settimeout(5)
            if not s.recv(64).startswith(b"HTTP/1.1 200"):
                return False
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def registration_body(name):
    return json.dumps(service(name, [node(name + "-1")])).encode()


# ---------------------------------------------------------------------------------------------
# Slowloris


@pytest.mark.long_wait
@pytest.mark.timeout_s(60)
def test_slowloris_heads_are_cut_at_10s_and_others_are_served(micro):
    sc = micro("--max_connections=100", env=small_quarantine_env())
    setup_canary(sc)
    slow = [connect(sc.port) for _ in range(40)]
    for s in slow:
        s.sendall(b"GET /registry HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    start = time.monotonic()
    rss0 = rss_kb(sc.proc.pid)
    i = 0
    # One header byte every 0.2 s per connection: never a complete head.
    while time.monotonic() - start < 7:
        for s in slow:
            send_quietly(s, b"\r\nX-Slow: " if i % 10 == 9 else b"a")
        i += 1
        assert served(sc), "a normal client was not served during the slowloris"
        time.sleep(0.2)
    answers = [read_to_close(s, 15) for s in slow]
    elapsed = time.monotonic() - start
    for a in answers:
        assert a.startswith(b"HTTP/1.1 408 "), a[:100]
    assert elapsed < 20
    for s in slow:
        s.close()
    canary_intact(sc)
    assert rss_kb(sc.proc.pid) < rss0 + 20 * 1024
    assert wait_until(lambda: slots_free(sc, 90), 10, message="every slot back")


@pytest.mark.timeout_s(60)
@pytest.mark.parametrize("route", ["/registry", "/rpc"])
def test_slowloris_bodies_hold_only_their_slots(micro, route):
    """40 clients trickle a body that never completes (a registration, an /rpc call): the
    others are served meanwhile, nothing is registered from the partial bodies, and once the
    trickling clients go (reset), every slot is free again."""
    sc = micro("--max_connections=50", env=small_quarantine_env())
    setup_canary(sc)
    body = registration_body("partial.svc") + b" " * 100000
    slow = []
    for _ in range(40):
        s = connect(sc.port)
        s.sendall(http_req("POST", route, [("Content-Type", "application/json"),
                                           ("Content-Length", str(len(body)))])
                  + body[:200])
        slow.append(s)
    rss0 = rss_kb(sc.proc.pid)
    for k in range(15):
        for s in slow:
            send_quietly(s, body[200 + k:201 + k])
        assert served(sc), "a normal client was not served during the body slowloris"
        time.sleep(0.2)
    assert sc.lookup("partial.svc").status == 404
    assert rss_kb(sc.proc.pid) < rss0 + 20 * 1024
    for s in slow:
        reset(s)
    assert wait_until(lambda: slots_free(sc, 45), 10, message="the trickling clients' slots back")
    canary_intact(sc)
    assert sc.lookup("partial.svc").status == 404


# ---------------------------------------------------------------------------------------------
# Half-closed connections


@pytest.mark.timeout_s(60)
def test_half_closed_connections_are_answered_or_closed_in_bounded_time(micro):
    sc = micro("--max_connections=20")
    setup_canary(sc)
    # A whole request, then FIN: the answer, then the sidecar closes.
    s = connect(sc.port)
    s.sendall(http_req("GET", "/registry?service=canary.svc"))
    s.shutdown(socket.SHUT_WR)
    got = read_to_close(s, 5)
    assert got.startswith(b"HTTP/1.1 200 ") and b"canary-1" in got
    s.close()
    # Half a head, then FIN: nothing more can come, closed well before the 10 s head bound.
    s = connect(sc.port)
    s.sendall(b"GET /registry HTTP/1.1\r\nHost: x\r\n")
    s.shutdown(socket.SHUT_WR)
    t = time.monotonic()
    read_to_close(s, 12)
    s.close()
    assert time.monotonic() - t < 12
    # Half a body of a buffered route, then FIN: closed, nothing registered.
    body = registration_body("halfclosed.svc")
    s = connect(sc.port)
    s.sendall(http_req("POST", "/registry", [("Content-Type", "application/json"),
                                             ("Content-Length", str(len(body)))])
              + body[: len(body) // 2])
    s.shutdown(socket.SHUT_WR)
    read_to_close(s, 12)
    s.close()
    assert sc.lookup("halfclosed.svc").status == 404
    # A WebSocket subscriber that half-closes: the session ends, its slot is released.
    for path in ("/broker?topic=hc", "/registry"):
        ws = RawWS(sc.port, path)
        ws.sock.shutdown(socket.SHUT_WR)
        read_to_close(ws.sock, 12)
        ws.close()
    assert wait_until(lambda: slots_free(sc, 18), 10, message="every slot back")
    canary_intact(sc)


# ---------------------------------------------------------------------------------------------
# Resets by the client


@pytest.mark.timeout_s(90)
def test_client_resets_mid_body_and_mid_response(micro, app):
    """Clients that reset in the middle of the body they send (buffered routes, /rpc, the proxy)
    and in the middle of a response they receive (a proxied download, a large registry
    listing): 30 of each against 20 slots, so a leaked slot starves the next; afterwards every
    slot is free, the sidecar's descriptors are back to where they were, nothing half-sent
    was registered, and the canary is intact."""
    sc = micro("--max_connections=20", "--handler=auto", env=small_quarantine_env())
    setup_canary(sc)
    web = service("go.micro.srv.foo", [dict(app.node(), metadata={"protocol": "http"})])
    assert sc.register(web).status == 200
    for i in range(200):  # a listing of some size
        assert sc.register(service(f"filler.svc.{i}", [node(f"f{i}")])).status == 200
    fds0 = len(os.listdir(f"/proc/{sc.proc.pid}/fd"))
    rss0 = rss_kb(sc.proc.pid)
    body = registration_body("reset.svc")
    for _ in range(30):
        for route in ("/registry", "/rpc", "/foo/x/upload"):
            s = connect(sc.port)
            s.sendall(http_req("POST", route, [("Content-Type", "application/json"),
                                               ("Content-Length", str(len(body) + 5000))])
                      + body)
            time.sleep(0.002)
            reset(s)
        for path in ("/foo/x/chunked?n=2000&size=1000", "/registry"):
            s = connect(sc.port)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(http_req("GET", path))
            s.settimeout(5)
            s.recv(1000)
            reset(s)
    assert wait_until(lambda: slots_free(sc, 18), 15, message="every slot back")
    assert wait_until(lambda: len(os.listdir(f"/proc/{sc.proc.pid}/fd")) <= fds0 + 2, 15,
                      message="the descriptors back")
    assert sc.lookup("reset.svc").status == 404
    canary_intact(sc)
    assert rss_kb(sc.proc.pid) < rss0 + 30 * 1024
    assert sc.get("/foo/x/plain").status == 200


# ---------------------------------------------------------------------------------------------
# Huge headers and random bytes


@pytest.mark.timeout_s(90)
def test_huge_header_lines_are_refused_with_bounded_memory(micro):
    """20 clients at once each send a 1 MiB header line (and 20 a head of 200 headers): each
    gets 431 (or a close once the sidecar stopped reading) without the sidecar holding more
    than its head bound per connection."""
    sc = micro("--max_connections=60", "--handler=proxy", env=small_quarantine_env())
    setup_canary(sc)
    rss0 = rss_kb(sc.proc.pid)
    socks = []
    for i in range(20):
        s = connect(sc.port)
        path = "/registry" if i % 2 else "/foo/proxied"  # a buffered and a streaming route
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Huge: ".encode())
        socks.append(s)
    many = b"".join(b"X-H%d: %s\r\n" % (k, b"v" * 50) for k in range(200))
    for i in range(20):
        s = connect(sc.port)
        send_quietly(s, b"GET /registry HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
        socks.append(s)
    chunk = b"a" * 65536
    for _ in range(16):  # 1 MiB each, interleaved
        for s in socks[:20]:
            send_quietly(s, chunk)
    for s in socks:
        got = read_to_close(s, 15)
        assert got == b"" or got.startswith(b"HTTP/1.1 431 "), got[:100]
        s.close()
    assert rss_kb(sc.proc.pid) < rss0 + 40 * 1024
    assert served(sc)
    canary_intact(sc)


@pytest.mark.timeout_s(90)
def test_a_megabyte_of_random_bytes(micro):
    """1 MiB of random bytes as a request, as a chunked body, and as WebSocket frames after an
    upgrade (on /broker and the registry watch), five times each: the sidecar answers or closes,
    still serves, lost nothing, and its RSS stays bounded."""
    sc = micro(env=small_quarantine_env())
    setup_canary(sc)
    rss0 = rss_kb(sc.proc.pid)
    for _ in range(5):
        junk = os.urandom(1 << 20)
        s = connect(sc.port)
        send_quietly(s, junk)
        read_to_close(s, 15)
        s.close()
        s = connect(sc.port)
        send_quietly(s, http_req("POST", "/registry", [("Transfer-Encoding", "chunked")]) + junk)
        got = read_to_close(s, 15)
        assert got == b"" or got.startswith(b"HTTP/1.1 4"), got[:100]
        s.close()
        for path in ("/broker?topic=junk", "/registry"):
            ws = RawWS(sc.port, path)
            send_quietly(ws.sock, junk)
            read_to_close(ws.sock, 15)
            ws.close()
        assert served(sc)
    canary_intact(sc)
    assert rss_kb(sc.proc.pid) < rss0 + 30 * 1024
