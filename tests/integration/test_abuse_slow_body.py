"""Slow-body slowloris (issue 13, "every connection state a bound in time and memory"): a
request body is bounded as Apache's mod_reqtimeout "body=T,MinRate=R" bounds it. A client that
trickles its body (one byte every quarter second: never silent, far under the minimum rate) is
answered 408 about --body_timeout after the body began, on a buffered route (POST /registry),
on the reverse proxy's streaming path (the node connection is let go with it), and on an
HTTP/2 stream; an upload at a normal rate that lasts longer than --body_timeout is never cut.
The flags are made small here (--body_timeout=2s, --body_min_rate=500) so each case takes
seconds."""

import hashlib
import json
import select
import socket
import time

import h2.events
import pytest

from harness import HOST, http_req, node, service
from test_http2 import H2Client

SVC = "go.micro.srv.foo"
FLAGS = ("--body_timeout=2s", "--body_min_rate=500")
TRICKLE_S = 0.25  # one byte every TRICKLE_S: never silent for --body_timeout
CUT_BOUND_S = 12  # the trickle must be answered within this (the rule cuts it at ~2 s)


@pytest.fixture
def proxy(micro, app):
    """A --handler=proxy sidecar under the body rule's test flags, `app` registered as SVC."""
    sc = micro("--handler=proxy", *FLAGS)
    assert sc.register(service(SVC, [app.node()])).status == 200
    return sc


def trickle_h1(port, path, total=10000):
    """Sends a head announcing `total` body bytes, then one body byte every TRICKLE_S until the
    sidecar answers or closes; returns (everything it sent, seconds from the body's start).
    Fails if nothing came within CUT_BOUND_S."""
    s = socket.create_connection((HOST, port), timeout=10)
    try:
        s.sendall(http_req("POST", path, [("Content-Type", "application/json"),
                                          ("Content-Length", str(total))]))
        start = time.monotonic()
        got = b""
        sent = 0
        while time.monotonic() - start < CUT_BOUND_S:
            if sent < total:
                try:
                    s.sendall(b" ")
                    sent += 1
                except OSError:
                    break  # closed on us: what it said is read below
            r, _, _ = select.select([s], [], [], TRICKLE_S)
            if r:
                try:
                    piece = s.recv(65536)
                except ConnectionResetError:
                    break
                if not piece:
                    break
                got += piece
                if b"\r\n\r\n" in got:
                    break
        elapsed = time.monotonic() - start
        s.settimeout(3)
        try:
            while b"\r\n\r\n" in got and len(got) < 4096:
                piece = s.recv(65536)
                if not piece:
                    break
                got += piece
        except OSError:
            pass
        assert got or elapsed < CUT_BOUND_S, f"a trickled body still held after {CUT_BOUND_S}s"
        return got, elapsed
    finally:
        s.close()


def steady_h1(port, path, body, rate):
    """Sends body at `rate` bytes/s (10 pieces a second); returns the raw answer."""
    s = socket.create_connection((HOST, port), timeout=10)
    try:
        s.sendall(http_req("POST", path, [("Content-Type", "application/json"),
                                          ("Content-Length", str(len(body)))]))
        step = max(1, rate // 10)
        for i in range(0, len(body), step):
            s.sendall(body[i:i + step])
            time.sleep(0.1)
        got = b""
        s.settimeout(10)
        while True:
            piece = s.recv(65536)
            if not piece:
                break
            got += piece
            head, _, rest = got.partition(b"\r\n\r\n")
            if _ and b"content-length:" in head.lower():
                n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(rest) >= n:
                    break
        return got
    finally:
        s.close()


def body_of(raw):
    return json.loads(raw.partition(b"\r\n\r\n")[2])


def test_trickled_registration_is_a_408(micro):
    sc = micro(*FLAGS)
    got, elapsed = trickle_h1(sc.port, "/registry")
    assert got.startswith(b"HTTP/1.1 408 "), (got[:300], elapsed)
    assert b"--body_min_rate=500" in got, got
    assert sc.get("/registry").status == 200  # still serving


def test_steady_registration_longer_than_the_timeout_is_served(micro):
    """About 5 s at 5 KB/s (ten times the minimum): more than --body_timeout, never cut."""
    sc = micro(*FLAGS)
    reg = json.dumps(service("steady.svc", [node("steady-1")])).encode()
    body = reg + b" " * 25000
    got = steady_h1(sc.port, "/registry", body, 5000)
    assert got.startswith(b"HTTP/1.1 200 "), got[:300]
    assert sc.lookup("steady.svc").status == 200


@pytest.mark.timeout_s(60)
def test_trickled_proxied_upload_is_a_408_and_frees_the_node(proxy):
    got, elapsed = trickle_h1(proxy.port, "/foo/x/upload")
    assert got.startswith(b"HTTP/1.1 408 "), (got[:300], elapsed)
    # the node's side of the cut upload is closed: the app saw its request end
    assert proxy.get("/foo/x/probe").status == 200


@pytest.mark.timeout_s(60)
def test_steady_proxied_upload_longer_than_the_timeout_is_served(proxy):
    body = bytes(range(256)) * 120  # 30 KB at 6 KB/s: 5 s
    got = steady_h1(proxy.port, "/foo/x/upload", body, 6000)
    assert got.startswith(b"HTTP/1.1 200 "), got[:300]
    answer = body_of(got)
    assert answer["bytes"] == len(body)
    assert answer["sha256"] == hashlib.sha256(body).hexdigest()


def trickle_h2(port, path, total=10000, authority="localhost"):
    """An HTTP/2 stream whose body trickles one byte every TRICKLE_S; returns the stream's end
    (":status" of the answer, or "reset") and the seconds from the body's start."""
    c = H2Client(port)
    try:
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"),
                                  (":authority", authority), (":path", path),
                                  ("content-type", "application/json"),
                                  ("content-length", str(total))])
        c.flush()
        start = time.monotonic()

        def ended(events):
            for ev in events:
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    return dict(ev.headers)[":status"]
                if isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                    return "reset"
            return None

        sent = 0
        while time.monotonic() - start < CUT_BOUND_S:
            if sent < total and c.conn.local_flow_control_window(sid) > 0:
                c.conn.send_data(sid, b" ")
                sent += 1
                c.flush()
            try:
                got = c.pump(ended, timeout=TRICKLE_S)
            except (AssertionError, socket.timeout):
                continue  # nothing yet
            return got, time.monotonic() - start
        raise AssertionError(f"an HTTP/2 trickled body still held after {CUT_BOUND_S}s")
    finally:
        c.close()


def test_trickled_http2_registration_is_a_408(micro):
    sc = micro(*FLAGS)
    status, elapsed = trickle_h2(sc.port, "/registry")
    assert status == "408", (status, elapsed)
    assert sc.get("/registry").status == 200


@pytest.mark.timeout_s(60)
def test_trickled_http2_proxied_upload_ends(proxy):
    status, elapsed = trickle_h2(proxy.port, "/foo/x/upload")
    assert status == "408", (status, elapsed)
    assert proxy.get("/foo/x/probe").status == 200


def test_steady_http2_upload_longer_than_the_timeout_is_served(proxy):
    body = bytes(range(256)) * 120  # 30 KB at 6 KB/s
    c = H2Client(proxy.port)
    try:
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"),
                                  (":authority", "localhost"), (":path", "/foo/x/upload"),
                                  ("content-length", str(len(body)))])
        for i in range(0, len(body), 600):  # within the initial 64 KiB window
            c.conn.send_data(sid, body[i:i + 600], end_stream=i + 600 >= len(body))
            c.flush()
            time.sleep(0.1)

        def done(events):
            return any(isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid
                       for ev in events)

        c.pump(done, timeout=10)
        status = next(dict(ev.headers)[":status"] for ev in c.events
                      if isinstance(ev, h2.events.ResponseReceived))
        data = b"".join(ev.data for ev in c.events if isinstance(ev, h2.events.DataReceived))
        assert status == "200", (status, data)
        answer = json.loads(data)
        assert answer["bytes"] == len(body)
        assert answer["sha256"] == hashlib.sha256(body).hexdigest()
    finally:
        c.close()
