"""Standing test family "every value copied into an outbound head" (docs/design.md): every
place a client's or a node's value reaches a request the sidecar sends (the /rpc service,
method and address, JSON or form; the client headers /rpc forwards; path calls; the proxied
path, query and headers; a registration's name, id, address and metadata; the health URL; the
broker topic, which the NATS backend writes into a protocol line; etcd keys, built from the
registered name) gets CR, LF and NUL injected. A capture node records every byte it is sent:
no injected line may ever reach it, and the fields SPEC 11 names are refused with 400.

The guard test below lists the source files that start outbound calls (mc_http_call_start):
a new one fails it until its values get rows here."""

import json
import re
import socket
import subprocess
import threading
from pathlib import Path
from urllib.parse import quote

import pytest

import harness
from harness import HOST, http_req, node, service

ROOT = Path(__file__).resolve().parent.parent.parent
INJECT = "\r\nX-Injected: 1"
BAD = {"crlf": INJECT, "lf": "\nX-Injected: 1", "cr": "\rX-Injected: 1", "nul": "\x00X-Injected: 1"}

# The files that start outbound HTTP calls, and how many call sites each has. Every value
# these calls copy from a client or a node is injected by a row below; the etcd and CLI calls
# copy only values already checked at the API (registered names) or given by the operator.
OUTBOUND_SITES = {
    "src/rpc/caller.c": 1,            # /rpc and path calls: rows rpc_*, path_call
    "src/api/proxy_api.c": 1,         # the proxy: rows proxy_*
    "src/health/checker.c": 2,        # --healthcheck_url: row health_url
    "src/registry/registry_etcd.c": 2,  # keys from registered names: rows register_*
    "src/cli/session.c": 1,           # the CLI's calls to its sidecar (operator input)
    "src/cli/subscribe.c": 1,
}


def test_every_outbound_call_site_is_covered():
    found = {}
    for path in sorted((ROOT / "src").rglob("*.c")):
        rel = str(path.relative_to(ROOT))
        if rel == "src/http/client.c":
            continue  # the client itself: its head goes through http/head.c (checked below)
        n = len(re.findall(r"\bmc_http_call_start\(", path.read_text()))
        if n:
            found[rel] = n
    assert found == OUTBOUND_SITES, ("a call site was added or removed: give its values "
                                     "injection rows in this file, then update OUTBOUND_SITES")
    client = (ROOT / "src/http/client.c").read_text()
    assert "mc_http_head_request_line(" in client and "mc_http_head_append(" in client
    assert "mc_buf_append_header(" not in client, "the client must write heads through http/head.c"


class CaptureNode:
    """Records every byte any connection sends it; answers each request head with a JSON-RPC
    reply (good enough for /rpc, the proxy and a health check)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.data = bytearray()
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        c.settimeout(5)
        body = b'{"id":1,"result":{},"error":null}'
        try:
            buf = b""
            while True:
                piece = c.recv(65536)
                if not piece:
                    break
                with self.lock:
                    self.data += piece
                buf += piece
                while b"\r\n\r\n" in buf:
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    m = re.search(rb"(?i)content-length: *(\d+)", head)
                    need = int(m.group(1)) if m else 0
                    while len(buf) < need:
                        more = c.recv(65536)
                        if not more:
                            break
                        with self.lock:
                            self.data += more
                        buf += more
                    buf = buf[need:]
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\n\r\n" % len(body) + body)
        except OSError:
            pass
        c.close()

    def received(self):
        with self.lock:
            return bytes(self.data)

    def injected(self):
        """Whether any injected header line reached the node (after CRLF, a bare LF or CR)."""
        d = self.received()
        return any(sep + b"X-Injected" in d for sep in (b"\r\n", b"\n", b"\r")) or b"\x00" in d

    def close(self):
        self.sock.close()


@pytest.fixture
def cap():
    c = CaptureNode()
    yield c
    c.close()


def register_cap(sc, cap, name="go.micro.srv.cap"):
    svc = service(name, [node("cap-1", port=cap.port, metadata={"protocol": "http"})])
    assert sc.register(svc).status == 200


def rpc_json(sc, **fields):
    body = {"service": "go.micro.srv.cap", "method": "Cap.Call", "request": {}}
    body.update(fields)
    return sc.request("POST", "/rpc", body=json.dumps(body),
                      headers={"Content-Type": "application/json"})


def rpc_form(sc, **fields):
    values = {"service": "go.micro.srv.cap", "method": "Cap.Call", "request": "{}"}
    values.update(fields)
    body = "&".join(f"{k}={quote(v, safe='')}" for k, v in values.items())
    return sc.request("POST", "/rpc", body=body,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})


def raw(sc, data):
    """Sends raw bytes; returns the status of the answer (None when closed without one)."""
    with sc.raw() as c:
        c.send(data)
        try:
            return c.read_response().status
        except (AssertionError, OSError):
            return None


@pytest.mark.timeout_s(120)
@pytest.mark.parametrize("bad", list(BAD))
def test_values_copied_into_outbound_heads(micro, cap, bad):
    v = BAD[bad]
    sc = micro("--handler=auto")
    register_cap(sc, cap)
    port = cap.port
    baseline = len(cap.received())
    assert rpc_json(sc).status == 200  # the capture node answers: the path is live
    assert len(cap.received()) > baseline

    rows = {}
    # /rpc, JSON: service, method, address (SPEC 11: 400 naming the field, nothing sent)
    rows["rpc_json_service"] = rpc_json(sc, service="go.micro.srv.cap" + v).status
    rows["rpc_json_method"] = rpc_json(sc, method="Cap.Call" + v).status
    rows["rpc_json_address"] = rpc_json(sc, address=f"{HOST}:{port}" + v).status
    # /rpc, form fields (the urlencoded body decodes CR, LF, NUL)
    rows["rpc_form_service"] = rpc_form(sc, service="go.micro.srv.cap" + v).status
    rows["rpc_form_method"] = rpc_form(sc, method="Cap.Call" + v).status
    rows["rpc_form_address"] = rpc_form(sc, address=f"{HOST}:{port}" + v).status
    # /rpc forwards the client's headers: a bad value is refused by the parser (a CRLF in a
    # raw head is just the next header line, which the client may send anyway: not a row)
    raw_rows = bad != "crlf"
    if raw_rows:
        rows["rpc_header"] = raw(sc, http_req("POST", "/rpc", [
            ("Content-Type", "application/json"), ("X-Forward-Me", "a" + v)],
            json.dumps({"service": "go.micro.srv.cap", "method": "Cap.Call"}).encode()))
    # the registration: name, id and address reach Host lines and etcd keys
    for field in ("name", "id", "address"):
        svc = service("go.micro.srv.cap2", [node("cap2-1", port=port)])
        if field == "name":
            svc["name"] += v
        else:
            svc["nodes"][0][field] = (HOST if field == "address" else "cap2-1") + v
        rows[f"register_{field}"] = sc.register(svc).status
    # metadata is stored as data, never written into a head: the calls below must stay clean
    meta = service("go.micro.srv.cap", [node("cap-1", port=port, metadata={"protocol": "http",
                                                                         "x": "y" + v})])
    sc.register(meta)
    # the broker topic (the NATS backend writes it into a PUB/SUB line)
    rows["broker_topic"] = sc.request("POST", "/broker?topic=" + quote("t" + v, safe=""),
                                      body="x").status
    # path calls and the proxy: encoded in the target (passed on encoded), raw (refused)
    enc = quote(v, safe="")
    for name, target in (("path_call", f"/cap/call{enc}"), ("proxy_path", f"/cap/x{enc}?q={enc}")):
        r = sc.request("POST", target, body="{}")
        rows[name] = r.status
    if raw_rows:
        rows["proxy_raw_target"] = raw(sc, f"GET /cap/x{v} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        rows["proxy_header"] = raw(sc, http_req("GET", "/cap/x", [("X-Forward-Me", "a" + v)]))

    refused = {k: s for k, s in rows.items()
               if k.startswith(("rpc_", "register_", "broker_", "proxy_raw", "proxy_header"))}
    for k, s in refused.items():
        # a raw CR/LF in a head is either a 400 or (the parser's choice) the close of the
        # connection; everything else is a 400 naming the field
        assert s == 400 or (s is None and k in ("rpc_header", "proxy_raw_target", "proxy_header")), (k, s)
    assert not cap.injected(), cap.received()[-2000:]
    assert sc.lookup("go.micro.srv.cap2").status == 404  # no bad registration was stored


@pytest.mark.parametrize("bad", ["crlf", "lf", "cr"])
def test_health_url_with_a_control_character_is_refused(cap, bad):
    """The health URL is copied into the checker's request line: a CR or LF in it is refused
    at start-up (exit 2 naming the flag), and nothing reaches the app."""
    url = f"http://127.0.0.1:{cap.port}/health" + BAD[bad]
    r = subprocess.run([harness.micro_bin(), "sidecar", f"--sidecar_address={HOST}:{harness.free_port()}",
                        "--server_name=go.micro.srv.h", f"--server_address=127.0.0.1:{cap.port}",
                        f"--healthcheck_url={url}"],
                       capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r
    assert "--healthcheck_url" in r.stderr
    assert cap.received() == b""


# ---------- HTTP/2 and gRPC ----------
# The files that start outbound HTTP/2 streams (mc_h2_call_start), and how many call sites each
# has. Every value such a stream copies from a client (path, metadata, micro-service,
# grpc-timeout) is injected by test_values_over_http2_copied_into_outbound_heads.
OUTBOUND_H2_SITES = {
    "src/api/grpc_api.c": 1,  # gRPC proxying: rows grpc_*
}


def test_every_outbound_http2_call_site_is_covered():
    found = {}
    for path in sorted((ROOT / "src").rglob("*.c")):
        rel = str(path.relative_to(ROOT))
        if rel == "src/http/h2_client.c":
            continue  # the client itself: it refuses bad names and values (checked below)
        n = len(re.findall(r"\bmc_h2_call_start\(", path.read_text()))
        if n:
            found[rel] = n
    assert found == OUTBOUND_H2_SITES, ("an HTTP/2 call site was added or removed: give its "
                                        "values injection rows here, then update OUTBOUND_H2_SITES")
    client = (ROOT / "src/http/h2_client.c").read_text()
    assert "MC_EHEADER" in client and "mc_http_" in client  # names and values checked


class CaptureH2Node:
    """A gRPC node (h2c) that validates nothing and records every header block it is sent;
    answers each stream with grpc-status 0."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.headers = []  # [(name, value)] bytes, of every block
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        import h2.config
        import h2.connection
        import h2.events
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, validate_inbound_headers=False, normalize_inbound_headers=False,
            header_encoding=None))
        conn.initiate_connection()
        c.settimeout(10)
        try:
            c.sendall(conn.data_to_send())
            while True:
                data = c.recv(65536)
                if not data:
                    break
                for ev in conn.receive_data(data):
                    if isinstance(ev, (h2.events.RequestReceived, h2.events.TrailersReceived)):
                        with self.lock:
                            self.headers += [(bytes(n), bytes(v)) for n, v in ev.headers]
                    if isinstance(ev, h2.events.StreamEnded):
                        conn.send_headers(ev.stream_id, [(":status", "200"),
                                                         ("content-type", "application/grpc")])
                        conn.send_headers(ev.stream_id, [("grpc-status", "0")], end_stream=True)
                    if isinstance(ev, h2.events.DataReceived):
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                c.sendall(conn.data_to_send())
        except Exception:
            pass
        c.close()

    def injected(self):
        with self.lock:
            return [(n, v) for n, v in self.headers
                    if b"x-injected" in n.lower() or any(ch in n + v for ch in (b"\r", b"\n", b"\0"))]

    def close(self):
        self.sock.close()


def h2_send(port, headers, body=b"", trailers=None):
    """One request over h2c with no validation of what is sent; returns (status, grpc-status)
    of the answer, "reset" when the stream or connection was refused."""
    import h2.config
    import h2.connection
    import h2.events
    conn = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False,
        validate_inbound_headers=False, header_encoding=None))
    conn.initiate_connection()
    s = socket.create_connection((HOST, port), timeout=10)
    try:
        conn.send_headers(1, headers, end_stream=not body and not trailers)
        if body:
            conn.send_data(1, body, end_stream=not trailers)
        if trailers:
            conn.send_headers(1, trailers, end_stream=True)
        s.sendall(conn.data_to_send())
        status = grpc = None
        while True:
            data = s.recv(65536)
            if not data:
                return "reset"
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    hd = dict(ev.headers)
                    status = int(hd[b":status"])
                    grpc = hd.get(b"grpc-status")
                if isinstance(ev, h2.events.TrailersReceived):
                    grpc = dict(ev.headers).get(b"grpc-status", grpc)
                if isinstance(ev, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                    return "reset"
                if isinstance(ev, h2.events.StreamEnded):
                    return status, grpc
            s.sendall(conn.data_to_send())
    except OSError:
        return "reset"
    finally:
        s.close()


@pytest.mark.timeout_s(120)
@pytest.mark.parametrize("bad", list(BAD) + ["space", "high"])
def test_values_over_http2_copied_into_outbound_heads(micro, cap, bad):
    """Values that arrive over HTTP/2 (header values, :path, gRPC metadata, micro-service,
    grpc-timeout, trailers) reaching the HTTP/1.1 proxy pool (the capture node) and the
    HTTP/2 client to a gRPC node (the HTTP/2 capture node): none reaches either as an
    injected line or header, and a request line the capture node reads is always well formed.
    "space" and "high" are bytes nghttp2 lets through in some places (a space, 0x80-0xff)."""
    v = {"space": " X-Injected: 1", "high": "\x80\xffX-Injected: 1"}.get(bad, BAD.get(bad))
    vb = v.encode("latin-1")
    sc = micro("--handler=auto")
    register_cap(sc, cap)
    g = CaptureH2Node()
    try:
        assert sc.register(service("go.micro.srv.gcap", [node("g-1", port=g.port)])).status == 200
        base = [(b":scheme", b"http"), (b":authority", b"localhost")]
        grpc = [(b"content-type", b"application/grpc"), (b"te", b"trailers")]
        msg = b"\0\0\0\0\0"
        # the live paths first: both capture nodes are reached
        assert h2_send(sc.port, [(b":method", b"GET"), (b":path", b"/cap/x")] + base)[0] == 200
        assert h2_send(sc.port, [(b":method", b"POST"), (b":path", b"/go.micro.srv.gcap.S/M")]
                       + base + grpc, msg) == (200, b"0")
        nh = len(g.headers)
        assert nh > 0 and len(cap.received()) > 0
        rows = {}
        # the HTTP/1.1 proxy pool: a header value, the :path raw and encoded, a trailer
        rows["proxy_header"] = h2_send(sc.port, [(b":method", b"GET"), (b":path", b"/cap/x")]
                                       + base + [(b"x-forward-me", b"a" + vb)])
        rows["proxy_path_raw"] = h2_send(sc.port, [(b":method", b"GET"),
                                                   (b":path", b"/cap/x" + vb)] + base)
        enc = quote(v, safe="").encode()
        rows["proxy_path_encoded"] = h2_send(sc.port, [(b":method", b"GET"),
                                                       (b":path", b"/cap/x" + enc + b"?q=" + enc)]
                                             + base)
        rows["proxy_authority"] = h2_send(sc.port, [(b":method", b"GET"), (b":path", b"/cap/x"),
                                                    (b":scheme", b"http"),
                                                    (b":authority", b"localhost" + vb)])
        rows["proxy_trailer"] = h2_send(sc.port, [(b":method", b"POST"), (b":path", b"/cap/x")]
                                        + base, b"{}", [(b"x-trailer", b"a" + vb)])
        # the HTTP/2 client to the gRPC node: metadata, micro-service, grpc-timeout, :path
        gpath = [(b":method", b"POST"), (b":path", b"/go.micro.srv.gcap.S/M")]
        rows["grpc_metadata"] = h2_send(sc.port, gpath + base + grpc + [(b"x-meta", b"a" + vb)], msg)
        rows["grpc_micro_service"] = h2_send(sc.port, gpath + base + grpc
                                             + [(b"micro-service", b"go.micro.srv.gcap" + vb)], msg)
        rows["grpc_timeout"] = h2_send(sc.port, gpath + base + grpc + [(b"grpc-timeout", b"5S" + vb)], msg)
        rows["grpc_path"] = h2_send(sc.port, [(b":method", b"POST"),
                                              (b":path", b"/go.micro.srv.gcap.S/M" + vb)] + base + grpc, msg)
        rows["grpc_trailer"] = h2_send(sc.port, gpath + base + grpc, msg, [(b"x-end", b"a" + vb)])
        print(rows)
        assert not cap.injected(), cap.received()[-2000:]
        assert not g.injected(), g.injected()
        # every request line the HTTP/1.1 capture node read is well formed
        for line in re.findall(rb"(?:^|\r\n\r\n)([^\r\n]*) HTTP/1\.1\r\n", cap.received()):
            assert re.fullmatch(rb"[A-Z]+ /[\x21-\x7e]*", line), line
        assert sc.get("/health").status == 200  # and the sidecar still answers
    finally:
        g.close()
