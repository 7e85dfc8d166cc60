"""SPEC 12: HTTP/2 on the API port, on the same listener as HTTP/1.1. h2c with prior knowledge
(curl --http2-prior-knowledge, nghttp), h2c by Upgrade (curl --http2), h2 by ALPN over TLS:
every route family answers with the same status and body as over HTTP/1.1; the proxy streams
large bodies both ways; an Upgrade the sidecar does not take is ignored; WebSockets run over
an extended CONNECT (RFC 8441, driven with python3-h2)."""

import base64
import hashlib
import json
import socket
import subprocess
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

import harness
from harness import HOST, AppProcess, node, service, wait_until
from test_tls import certs, tls_flags  # noqa: F401 (the certificate fixture)
from ws_raw import OP_TEXT, encode_frame

SVC = "go.micro.srv.foo"

MODES = {
    "h1": ["--http1.1"],
    "prior": ["--http2-prior-knowledge"],
    "upgrade": ["--http2"],
}


def curl(port, mode, method, path, body=None, extra=(), scheme="http"):
    """(status, http_version, body bytes) of one request with curl in `mode`."""
    verb = ["--head"] if method == "HEAD" else ["-X", method]
    args = ["curl", "-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code} %{http_version}",
            *verb, *MODES[mode], *extra]
    if body is not None:
        args += ["--data-binary", "@-", "-H", "Content-Type: application/json"]
    args.append(f"{scheme}://{HOST}:{port}{path}")
    r = subprocess.run(args, input=body if body is not None else b"", capture_output=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    out, _, tail = r.stdout.rpartition(b"\n")
    status, version = tail.decode().split()
    return int(status), version, out


def nghttp(port, path, method="GET", body_file=None):
    """(status, body) of one request with nghttp (h2c, prior knowledge)."""
    args = ["nghttp", "-v", "-t", "20"]
    if method != "GET":
        args += ["-H", f":method: {method}"]
    if body_file:
        args += ["-d", str(body_file)]
    args.append(f"http://{HOST}:{port}{path}")
    r = subprocess.run(args, capture_output=True, timeout=30)
    text = r.stdout.decode(errors="replace")
    status = None
    for line in text.splitlines():
        if ":status:" in line and "recv" in line:
            status = int(line.rsplit(":", 1)[1])
    # With -v the body is printed after the frames; ask again without -v for it.
    args.remove("-v")
    body = subprocess.run(args, capture_output=True, timeout=30).stdout
    return status, body


# ---- every route family, the same answer over both protocols ----


@pytest.mark.parametrize("mode", ["prior", "upgrade"])
def test_route_families_answer_as_over_http11(micro, mode):
    sc = micro("--max_body_size=1k", "--enable_stats")
    port = sc.port
    reg = json.dumps(service("go.micro.srv.h2", [node("n1", port=9999)])).encode()

    def both(method, path, body=None, compare_body=True):
        s1, v1, b1 = curl(port, "h1", method, path, body)
        s2, v2, b2 = curl(port, mode, method, path, body)
        # curl upgrades only a request without a body; the sidecar takes only those
        upgraded = "2" if mode == "prior" or body is None else "1.1"
        assert v1 == "1.1" and v2 == upgraded, (method, path, v1, v2)
        assert s1 == s2, (method, path, s1, s2, b1, b2)
        if compare_body and method != "HEAD":
            assert b1 == b2, (method, path, b1, b2)
        return s2, b2

    assert both("POST", "/registry", reg)[0] == 200
    status, body = both("GET", "/registry")
    assert status == 200 and b"go.micro.srv.h2" in body
    assert both("GET", "/registry?service=go.micro.srv.h2")[0] == 200
    assert both("GET", "/registry?service=go.micro.srv.none")[0] == 404
    assert both("POST", "/broker?topic=h2", b"hello")[0] == 200
    assert both("GET", "/health")[0] in (200, 404, 500, 503)
    assert both("GET", "/stats", compare_body=False)[0] == 200
    assert both("GET", "/metrics", compare_body=False)[0] == 200
    assert both("GET", "/nothing/here")[0] == 404
    assert both("PATCH", "/registry")[0] == 405
    assert both("POST", "/registry", b"x" * 4096)[0] == 413
    assert both("POST", "/rpc", b'{"service":"go.micro.srv.none","method":"A.B"}')[0] == 404
    assert both("DELETE", "/registry", reg)[0] == 200
    assert both("HEAD", "/registry")[0] == 200


def test_nghttp_client(micro, tmp_path):
    sc = micro()
    f = tmp_path / "svc.json"
    f.write_text(json.dumps(service("go.micro.srv.ng", [node("n1", port=9999)])))
    status, _ = nghttp(sc.port, "/registry", "POST", f)
    assert status == 200
    status, body = nghttp(sc.port, "/registry?service=go.micro.srv.ng")
    assert status == 200, body
    assert json.loads(body)[0]["nodes"][0]["id"] == "n1"
    status, body = nghttp(sc.port, "/nothing")
    assert status == 404 and json.loads(body)["code"] == 404


def test_path_calls_with_handler_rpc(micro, tmp_path):
    a = AppProcess(tmp_path, "jsonrpc_app.py", "r1")
    try:
        sc = micro("--handler=rpc")
        sc.register(service("go.micro.srv.greeter", [a.node()]))
        body = b'{"name":"h2"}'
        s1, _, b1 = curl(sc.port, "h1", "POST", "/greeter/example/call", body)
        s2, v2, b2 = curl(sc.port, "prior", "POST", "/greeter/example/call", body)
        assert v2 == "2" and s1 == s2 == 200, (s1, s2, b1, b2)
        assert json.loads(b2)["msg"] == "Hello h2"
        assert json.loads(b1) == json.loads(b2)
        rpc = json.dumps({"service": "go.micro.srv.greeter", "method": "Example.Call",
                          "request": {"name": "h2"}}).encode()
        s1, _, b1 = curl(sc.port, "h1", "POST", "/rpc", rpc)
        s2, _, b2 = curl(sc.port, "prior", "POST", "/rpc", rpc)
        assert s1 == s2 == 200 and json.loads(b1) == json.loads(b2)
    finally:
        a.stop()


# ---- the proxy streams over HTTP/2 ----


def test_proxy_over_h2(micro, app, tmp_path):
    sc = micro("--handler=proxy")
    sc.register(service(SVC, [app.node()]))
    status, version, body = curl(sc.port, "prior", "GET", "/foo/bar?x=1")
    assert status == 200 and version == "2"
    seen = json.loads(body)
    assert seen["method"] == "GET" and seen["target"] == "/foo/bar?x=1"
    assert seen["version"] == "HTTP/1.1"  # the node is reached over HTTP/1.1
    names = {k.lower(): v for k, v in seen["headers"]}
    assert names["x-forwarded-for"] == "127.0.0.1"
    assert names["host"].startswith("127.0.0.1")
    # A chunked answer of the node streams as DATA frames.
    status, _, body = curl(sc.port, "prior", "GET", "/foo/chunked?n=50&size=1000")
    assert status == 200 and body == (b"0123456789" * 100) * 50
    # Unknown service: the proxy's own 404 as over HTTP/1.1.
    s1, _, b1 = curl(sc.port, "h1", "GET", "/nosuch/x")
    s2, _, b2 = curl(sc.port, "prior", "GET", "/nosuch/x")
    assert s1 == s2 and b1 == b2


@pytest.mark.timeout_s(90)
def test_proxy_streams_large_bodies_both_ways(micro, app, tmp_path):
    sc = micro("--handler=proxy")
    sc.register(service(SVC, [app.node()]))
    total = 32 * 1024 * 1024
    block = hashlib.sha256(b"seed").digest() * 2048
    f = tmp_path / "big"
    with open(f, "wb") as out:
        for _ in range(total // len(block)):
            out.write(block)
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    r = subprocess.run(["curl", "-sS", "--max-time", "60", "--http2-prior-knowledge",
                        "--data-binary", f"@{f}", f"http://{HOST}:{sc.port}/foo/big/upload"],
                       capture_output=True, timeout=80)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["bytes"] == total and got["sha256"] == digest, got
    # Download: 20 MB chunked from the node, counted and checked.
    n, size = 2000, 10000
    r = subprocess.run(["curl", "-sS", "--max-time", "60", "--http2-prior-knowledge",
                        f"http://{HOST}:{sc.port}/foo/chunked?n={n}&size={size}"],
                       capture_output=True, timeout=80)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == n * size
    assert r.stdout == (b"0123456789" * (size // 10)) * n


# ---- selection: Upgrade, ALPN, and upgrades not taken ----


def test_upgrade_h2c_on_registry_is_taken(micro, tmp_path):
    log = tmp_path / "access.log"
    sc = micro(f"--access_log={log}", "--enable_stats")
    status, version, body = curl(sc.port, "upgrade", "GET", "/registry")
    assert status == 200 and version == "2", body
    assert b"go.micro.sidecar" in body
    # One request: logged and counted once, as HTTP/2 (its 101 is the codec's hand-over).
    stats = json.loads(harness.request(sc.port, "GET", "/stats",
                                       headers={"Accept": "application/json"}).body)
    protocols = stats["protocols"]
    assert protocols.get("HTTP/1.1", 0) == 0 and protocols["HTTP/2"] == 1, protocols
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "/stats" not in log.read_text():
        time.sleep(0.05)
    lines = [ln for ln in log.read_text().splitlines() if "/registry" in ln]
    assert len(lines) == 1 and " 200 " in lines[0], lines


def test_an_upgrade_not_taken_is_ignored(micro):
    sc = micro()
    for path in ("/registry", "/broker?topic=x"):
        method = "GET" if path == "/registry" else "POST"
        body = b"hi" if method == "POST" else None
        # h2c over a request with a body is not taken: served over HTTP/1.1.
        headers = {"Upgrade": "foo/1", "Connection": "Upgrade"}
        r = harness.request(sc.port, method, path, body=body, headers=headers)
        assert r.status == 200, (path, r.status, r.body)
    # A POST with a body and Upgrade: h2c is answered over HTTP/1.1 (no 101).
    r = harness.request(sc.port, "POST", "/broker?topic=x", body=b"hi",
                        headers={"Upgrade": "h2c", "Connection": "Upgrade, HTTP2-Settings",
                                 "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA"})
    assert r.status == 200, r


def test_h2_by_alpn_over_tls(micro, certs):  # noqa: F811
    sc = micro(*tls_flags(certs))
    extra = ["--cacert", str(certs / "ca.crt")]
    s2, v2, b2 = curl(sc.port, "upgrade", "GET", "/registry", extra=extra, scheme="https")
    s1, v1, b1 = curl(sc.port, "h1", "GET", "/registry", extra=extra, scheme="https")
    assert (s2, v2) == (200, "2") and (s1, v1) == (200, "1.1")
    assert b1 == b2
    reg = json.dumps(service("go.micro.srv.tls2", [node("n1", port=9999)])).encode()
    assert curl(sc.port, "upgrade", "POST", "/registry", reg, extra=extra, scheme="https")[0] == 200
    s, _, b = curl(sc.port, "upgrade", "GET", "/registry?service=go.micro.srv.tls2", extra=extra,
                   scheme="https")
    assert s == 200 and json.loads(b)[0]["nodes"][0]["id"] == "n1"


def test_access_log_names_http2(micro, tmp_path):
    log = tmp_path / "access.log"
    sc = micro(f"--access_log={log}")
    curl(sc.port, "prior", "GET", "/registry")
    wait_until(lambda: log.exists() and "HTTP/2.0" in log.read_text(), 5,
               message="an HTTP/2.0 access log line")
    line = [ln for ln in log.read_text().splitlines() if "HTTP/2.0" in ln][0]
    assert '"GET /registry HTTP/2.0" 200' in line


# ---- WebSockets over HTTP/2 (RFC 8441) ----


class H2Client:
    """A python3-h2 client on a plain socket (prior knowledge); every wait is bounded."""

    def __init__(self, port, settings=None, timeout=10):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.flush()
        self.events = []

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self, until, timeout=10):
        """Reads and handles events until until(events) is truthy; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            got = until(self.events)
            if got:
                return got
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out; events: {self.events[-10:]}")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            for ev in self.conn.receive_data(data):
                self.events.append(ev)
                if isinstance(ev, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            self.flush()

    def close(self):
        self.sock.close()


def ws_frames(buf):
    """Complete server frames (opcode, payload) at the start of buf, and the rest."""
    out = []
    while len(buf) >= 2:
        n = buf[1] & 0x7F
        off = 2
        if n == 126:
            if len(buf) < 4:
                break
            n, off = int.from_bytes(buf[2:4], "big"), 4
        elif n == 127:
            if len(buf) < 10:
                break
            n, off = int.from_bytes(buf[2:10], "big"), 10
        if len(buf) < off + n:
            break
        out.append((buf[0] & 0x0F, buf[off:off + n]))
        buf = buf[off + n:]
    return out, buf


def body_of(payload):
    """The message body of a /broker delivery ({"Header":..,"Body":base64})."""
    return base64.b64decode(json.loads(payload)["Body"])


def test_websocket_over_extended_connect(micro):
    sc = micro()
    c = H2Client(sc.port)
    try:
        c.pump(lambda evs: any(isinstance(e, h2.events.RemoteSettingsChanged) and
                               h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL in e.changed_settings
                               for e in evs))
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "CONNECT"), (":protocol", "websocket"),
                                  (":scheme", "http"), (":path", "/broker?topic=h2ws"),
                                  (":authority", f"{HOST}:{sc.port}"),
                                  ("sec-websocket-version", "13")])
        c.flush()
        resp = c.pump(lambda evs: [e for e in evs if isinstance(e, h2.events.ResponseReceived)
                                   and e.stream_id == sid])
        status = dict(resp[0].headers)[":status"]
        assert status == "200", resp[0].headers
        # Publish over HTTP/1.1; the subscriber on the HTTP/2 stream receives it.
        def published():
            r = harness.request(sc.port, "POST", "/broker?topic=h2ws", body=b"over h2")
            return r.status == 200
        wait_until(published, 5, message="publish")
        def got_message(evs):
            data = b"".join(e.data for e in evs
                            if isinstance(e, h2.events.DataReceived) and e.stream_id == sid)
            frames, _ = ws_frames(data)
            return [f for f in frames if f[0] == OP_TEXT or f[0] == 0x2]

        frames = c.pump(got_message)
        assert body_of(frames[0][1]) == b"over h2"
        # A frame from the client is published to the topic as well.
        c.conn.send_data(sid, encode_frame(OP_TEXT, b"from the client"))
        c.flush()
        c.pump(lambda evs: len(got_message(evs)) >= 2)
        assert body_of(got_message(c.events)[1][1]) == b"from the client"
        # A close frame ends the session and the stream.
        c.conn.send_data(sid, encode_frame(0x8, b"\x03\xe8"))
        c.flush()
        c.pump(lambda evs: any(isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset))
                               and e.stream_id == sid for e in evs))
    finally:
        c.close()
    # The connection-level state is released: the sidecar still answers.
    assert harness.request(sc.port, "GET", "/registry").status == 200


def test_registry_watch_over_extended_connect(micro):
    sc = micro()
    c = H2Client(sc.port)
    try:
        c.pump(lambda evs: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in evs))
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "CONNECT"), (":protocol", "websocket"),
                                  (":scheme", "http"), (":path", "/registry"),
                                  (":authority", f"{HOST}:{sc.port}"),
                                  ("sec-websocket-version", "13")])
        c.flush()
        resp = c.pump(lambda evs: [e for e in evs if isinstance(e, h2.events.ResponseReceived)])
        assert dict(resp[0].headers)[":status"] == "200"
        sc.register(service("go.micro.srv.watched", [node("w1", port=9999)]))

        def change(evs):
            data = b"".join(e.data for e in evs if isinstance(e, h2.events.DataReceived))
            frames, _ = ws_frames(data)
            return [f for f in frames if b"go.micro.srv.watched" in f[1]]

        assert c.pump(change)
    finally:
        c.close()


def test_plain_connect_without_protocol_is_not_a_websocket(micro):
    sc = micro()
    c = H2Client(sc.port)
    try:
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":path", "/broker"),
                                  (":authority", HOST)], end_stream=True)
        c.flush()
        resp = c.pump(lambda evs: [e for e in evs if isinstance(e, h2.events.ResponseReceived)])
        assert dict(resp[0].headers)[":status"] == "400"
    finally:
        c.close()


def test_drain_at_shutdown_sends_goaway(micro):
    sc = micro()
    c = H2Client(sc.port)
    try:
        c.pump(lambda evs: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in evs))
        sc.signal()
        ev = c.pump(lambda evs: [e for e in evs if isinstance(e, h2.events.ConnectionTerminated)])
        assert ev[0].error_code == 0
    finally:
        c.close()
    assert sc.wait_exit(15) == 0


def test_max_connections_counts_http2_connections(micro):
    sc = micro("--max_connections=2")

    def served_client():
        """An HTTP/2 connection that got an answer (the start-up probe's connection may still
        hold a slot for a moment: retried)."""
        c = None
        try:
            c = H2Client(sc.port)
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                      (":path", "/registry"), (":authority", HOST)],
                                end_stream=True)
            c.flush()
            c.pump(lambda evs: [e for e in evs if isinstance(e, h2.events.ResponseReceived)])
            return c
        except OSError:
            if c:
                c.close()
            return None

    held = []
    try:
        for _ in range(2):
            held.append(wait_until(served_client, 10, message="an HTTP/2 connection served"))
        # A third connection is over the limit: closed at once.
        s = socket.create_connection((HOST, sc.port), timeout=10)
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0")
        s.settimeout(10)
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            data = b""
        assert data == b"", data
        s.close()
    finally:
        for c in held:
            c.close()

    def served_again():
        """The sidecar frees a slot when it reads the close, a moment after ours: until then a
        new connection is still over the limit and reset, which is "not yet"."""
        try:
            return harness.request(sc.port, "GET", "/registry").status == 200
        except OSError:
            return False

    wait_until(served_again, 10, message="served again once the HTTP/2 connections are gone")


def test_websocket_over_extended_connect_through_the_proxy(micro, app):
    """The proxy forwards an extended CONNECT as the HTTP/1.1 upgrade the node speaks, and
    relays the frames both ways once the node has switched."""
    sc = micro("--handler=proxy")
    sc.register(service(SVC, [app.node()]))
    c = H2Client(sc.port)
    try:
        c.pump(lambda evs: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in evs))
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "CONNECT"), (":protocol", "websocket"),
                                  (":scheme", "http"), (":path", "/foo/ws"),
                                  (":authority", f"{HOST}:{sc.port}"),
                                  ("sec-websocket-version", "13")])
        c.flush()
        resp = c.pump(lambda evs: [e for e in evs if isinstance(e, h2.events.ResponseReceived)])
        assert dict(resp[0].headers)[":status"] == "200", resp[0].headers
        c.conn.send_data(sid, encode_frame(OP_TEXT, b"echo over h2"))
        c.flush()

        def echoed(evs):
            data = b"".join(e.data for e in evs
                            if isinstance(e, h2.events.DataReceived) and e.stream_id == sid)
            frames, _ = ws_frames(data)
            return [f for f in frames if f[0] == OP_TEXT]

        assert c.pump(echoed)[0][1] == b"echo over h2"
    finally:
        c.close()
