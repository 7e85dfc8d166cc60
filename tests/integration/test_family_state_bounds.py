"""Standing test family "every connection state is bounded in time and memory"
(docs/design.md): one row per state a connection can sit in on the API listener: waiting for a
head, for a body, idle between keep-alive requests, a WebSocket session whose peer went quiet,
a graceful close whose peer never reads (the linger), a body still coming after an early
answer, a proxied request whose node never answers. All rows run at once against one sidecar,
several connections each; each must be closed within its bound (the constant in the source,
read from it, plus a margin), and the sidecar's RSS must stay bounded while they are held.

HTTP/2, gRPC and TLS have their rows too: a preface never followed by a request, a header
block that stalls (no END_HEADERS), an idle connection with no stream, a request body that
stops, a body still coming after an early answer (h2c and h2 over TLS), a gRPC call whose node
never answers (the grpc-timeout / --request_timeout deadline) and the HTTP/2 client's idle
connection to that node, and a TLS handshake that stops.

The guard test parses every connection-state time bound defined in src/ (..._TIMEOUT_MS,
..._LINGER_MS, ..._IDLE_MS, ..._CLOSE_MS), and in the HTTP/2, gRPC and TLS files every ..._MS
constant whatever its prefix and every literal default of a ..._timeout_ms field, and refuses
a timer started there with a literal delay: a new one fails it until it gets a row here. Rows
whose bound is over 15 s run in the normal pass only (the sanitizer pass runs the short ones:
the wait is wall time, the same under ASan, and CI's budget is wall time)."""

import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import harness
from harness import HOST, AppProcess, http_req, node, service
from test_proxy import rss_kb, small_quarantine_env
from ws_raw import RawWS

ROOT = Path(__file__).resolve().parent.parent.parent
PER_ROW = 5  # connections held in each state
MARGIN_S = 6  # on top of each bound: timer granularity, a busy machine


def constants():
    """{name: milliseconds} of every connection-state bound #defined in src/."""
    out = {}
    rx = re.compile(r"#define\s+((?:MC|HC)_\w*(?:TIMEOUT|LINGER|IDLE|CLOSE)\w*_MS)\s+(\d+)")
    for path in (ROOT / "src").rglob("*.[ch]"):
        for name, value in rx.findall(path.read_text()):
            out[name] = int(value)
    for rel in H2_FILES:
        text = (ROOT / rel).read_text()
        for name, value in re.findall(r"#define\s+(\w+_MS)\s+(\d+)", text):
            out[name] = int(value)
        for field, value in re.findall(r"\b(\w*timeout_ms)\s*=\s*(\d+)\s*;", text):
            if int(value):
                out[f"{Path(rel).name}:{field}"] = int(value)
    return out


# The HTTP/2, gRPC and TLS sources: every time bound in them, whatever its name, has a row.
H2_FILES = ["src/http/h2.c", "src/http/h2.h", "src/http/h2_client.c", "src/http/h2_client.h",
            "src/http/h2_tunnel.c", "src/http/h2_tunnel.h", "src/api/grpc_api.c",
            "src/api/grpc_api.h", "src/net/tls.c", "src/net/tls.h"]

# state -> the constants that bound it (the sum is the bound), and whether it is a row below.
ROWS = {
    "head": ["MC_HTTP_HEAD_TIMEOUT_MS"],
    "body": ["MC_HTTP_BODY_TIMEOUT_MS"],
    "idle": ["MC_HTTP_IDLE_TIMEOUT_MS"],
    "websocket": ["MC_WS_SESSION_IDLE_MS", "MC_WS_SESSION_CLOSE_MS"],
    "linger": ["MC_CONN_LINGER_MS"],
    "discard": ["HC_DISCARD_TIMEOUT_MS"],
    "upstream": [],  # --request_timeout (a flag: 3 s here)
    "tls_handshake": ["MC_TLS_HANDSHAKE_TIMEOUT_MS"],  # on a second, TLS sidecar
    # HTTP/2 (src/http/h2.c reuses the HTTP/1 bounds for its states)
    "h2_preface": ["MC_HTTP_HEAD_TIMEOUT_MS"],  # preface + SETTINGS, never a request
    "h2_header_stall": ["MC_HTTP_HEAD_TIMEOUT_MS"],  # HEADERS without END_HEADERS
    "h2_idle": ["MC_HTTP_IDLE_TIMEOUT_MS"],  # one request answered, then no stream
    "h2_body": ["MC_HTTP_BODY_TIMEOUT_MS"],  # a request body that stops: the stream ends
    "h2_discard": ["H2_DISCARD_TIMEOUT_MS"],  # answered early, the body stops: RST_STREAM
    "tls_h2_preface": ["MC_HTTP_HEAD_TIMEOUT_MS"],  # h2 by ALPN, then no request
    # gRPC: the node never answers; the call ends at --request_timeout (3 s here), then the
    # HTTP/2 client's connection to the node, left without streams, closes when idle
    "grpc_upstream": [],
    "h2_client_idle": ["h2_client.c:idle_timeout_ms"],
}
# Bounds that are not a connection state of the API listener, and why.
NOT_ROWS = {
    "MC_WS_HUB_CLOSE_BOUND_MS": "the shutdown's wait for every session (test_shutdown.py)",
    # The sidecar sets it from --dial_timeout; a loopback dial cannot be held half-open, and
    # a node that accepts and never sends its SETTINGS is test_grpc_silent_node.py.
    "h2_client.c:connect_timeout_ms": "the HTTP/2 client's dial bound (--dial_timeout)",
}
# Rows whose end is the end of one stream (stream 1), not of the connection, and the frame
# types that end it (END_STREAM on HEADERS/DATA counts for every row but h2_discard).
STREAM_ROWS = {"h2_body": (0, 1, 3), "h2_discard": (3,), "grpc_upstream": (0, 1, 3)}


def test_every_state_bound_has_a_row():
    found = set(constants())
    covered = {c for cs in ROWS.values() for c in cs} | set(NOT_ROWS)
    assert found == covered, ("a connection-state bound was added or removed: give it a row in "
                              f"this file (found {sorted(found)}, rows cover {sorted(covered)})")


def test_no_timer_with_a_literal_delay_in_the_h2_files():
    """A timer in the HTTP/2, gRPC and TLS files runs for a named bound (a constant or a
    config field the guard above sees), never for a number written at the call."""
    for rel in H2_FILES:
        text = (ROOT / rel).read_text()
        for call in re.findall(r"uv_timer_start\([^;]*;", text):
            args = [a.strip() for a in call[len("uv_timer_start("):-2].split(",")]
            assert not re.fullmatch(r"[1-9]\d*", args[2]), (rel, call)


def h2_client(port, ssl_ctx=None):
    """A socket that has sent the h2c preface and SETTINGS (h2 by ALPN over TLS with
    ssl_ctx), and the H2Connection that frames its requests."""
    import h2.config
    import h2.connection
    s = socket.create_connection((HOST, port), timeout=10)
    if ssl_ctx:
        s = ssl_ctx.wrap_socket(s, server_hostname="127.0.0.1")
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    s.sendall(c.data_to_send())
    return s, c


def h2_head(method, path, extra=()):
    return [(":method", method), (":scheme", "http"), (":authority", "localhost"),
            (":path", path)] + list(extra)


def wait_stream_end(s, limit, ends):
    """Seconds until stream 1 ends on s (a frame of a type in `ends`: END_STREAM on HEADERS
    or DATA when 0/1 are in it, RST_STREAM when 3 is) or the connection closes; None if not
    within `limit` seconds."""
    start, buf = time.monotonic(), b""
    while True:
        left = start + limit - time.monotonic()
        if left <= 0:
            return None
        s.settimeout(left)
        try:
            piece = s.recv(65536)
        except socket.timeout:
            return None
        except OSError:
            return time.monotonic() - start
        if not piece:
            return time.monotonic() - start
        buf += piece
        while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
            n, ftype, flags = int.from_bytes(buf[:3], "big"), buf[3], buf[4]
            sid = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
            buf = buf[9 + n:]
            if sid == 1 and ftype in ends and (ftype == 3 or flags & 1):
                return time.monotonic() - start
            if ftype == 7:  # GOAWAY: the connection ends
                return time.monotonic() - start


class SilentNode:
    """A gRPC node that accepts connections and reads forever, never answering."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    def accept(self):
        self.sock.settimeout(10)
        c, _ = self.sock.accept()
        return c


def is_sanitized():
    return b"__asan_init" in Path(harness.micro_bin()).read_bytes()


def wait_closed(s, limit):
    """Seconds until the sidecar closes s (EOF or reset), reading whatever it sends; None if
    still open after `limit` seconds."""
    start = time.monotonic()
    while True:
        left = start + limit - time.monotonic()
        if left <= 0:
            return None
        s.settimeout(left)
        try:
            if not s.recv(65536):
                return time.monotonic() - start
        except socket.timeout:
            return None
        except OSError:
            return time.monotonic() - start


@pytest.mark.long_wait
@pytest.mark.timeout_s(180)
def test_every_connection_state_closes_within_its_bound(micro, tmp_path):
    bounds = constants()
    app = AppProcess(tmp_path, "http_app.py", "a")
    try:
        sc = micro("--handler=auto", "--request_timeout=3s", "--max_connections=200",
                   env=small_quarantine_env())
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        "tls.key", "-out", "tls.crt", "-days", "2", "-subj", "/CN=127.0.0.1"],
                       cwd=tmp_path, check=True, capture_output=True, timeout=60)
        tls = micro("--enable_tls", f"--tls_cert_file={tmp_path / 'tls.crt'}",
                    f"--tls_key_file={tmp_path / 'tls.key'}")
        web = service("go.micro.srv.foo", [dict(app.node(), metadata={"protocol": "http"})])
        assert sc.register(web).status == 200
        for i in range(300):  # a listing of ~30 KB for the linger row
            assert sc.register(service(f"linger.svc.{i}", [node(f"l{i}" + "x" * 60)])).status == 200
        limit = {row: sum(bounds[c] for c in cs) / 1000 for row, cs in ROWS.items()}
        limit["upstream"] = 3.0
        limit["grpc_upstream"] = 3.0
        limit["h2_client_idle"] += 3.0  # from the call's deadline on
        long_rows = {r for r, b in limit.items() if b > 15}
        rows = [r for r in ROWS if not (is_sanitized() and r in long_rows)]
        rss0 = rss_kb(sc.proc.pid)

        def open_row(row):
            """A connection put into the state of row; returns the socket (or a RawWS)."""
            s = socket.create_connection((HOST, sc.port), timeout=10)
            if row == "head":
                s.sendall(b"GET /registry HTTP/1.1\r\nHost: x\r\nX-Partial: ")
            elif row == "body":
                s.sendall(http_req("POST", "/registry", [("Content-Length", "100000")]) + b"{")
            elif row == "idle":
                s.sendall(http_req("GET", "/health"))
                s.settimeout(5)
                assert s.recv(4096).startswith(b"HTTP/1.1 200")
            elif row == "websocket":
                s.close()
                ws = RawWS(sc.port, "/broker?topic=bounded")
                return ws.sock  # never answers a ping, never sends
            elif row == "linger":
                s.close()
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
                s.connect((HOST, sc.port))
                s.sendall(http_req("GET", "/registry", [("Connection", "close")]))
            elif row == "discard":
                # The node answers before the body (proxied), then the body stops coming.
                s.sendall(http_req("POST", "/foo/x/early", [("Content-Length", "100000")]) + b"x")
            elif row == "upstream":
                # Connection: close, so the end of the wait (a 504) is seen as the close
                s.sendall(http_req("GET", "/foo/x/hang", [("Connection", "close")]))
            elif row == "tls_handshake":
                s.close()
                s = socket.create_connection((HOST, tls.port), timeout=10)
                s.sendall(b"\x16\x03\x01")  # the start of a ClientHello, then nothing
            return s

        import ssl
        alpn = ssl.create_default_context()
        alpn.check_hostname = False
        alpn.verify_mode = ssl.CERT_NONE
        alpn.set_alpn_protocols(["h2"])
        keep = []  # client sockets of the h2_client_idle rows, closed at the end
        silent = [SilentNode() for _ in range(PER_ROW)]
        for i, n in enumerate(silent):
            assert sc.register(service(f"silent.svc{i}", [node(f"s{i}", port=n.port)])).status == 200
        grpc_head = [("content-type", "application/grpc"), ("te", "trailers")]
        message = b"\0\0\0\0\0"

        def open_h2_row(row, i):
            if row == "h2_client_idle":
                # The call gets its deadline (grpc_upstream); what is watched here is the
                # sidecar's connection to the node, which has no stream from then on.
                s, c = h2_client(sc.port)
                c.send_headers(1, h2_head("POST", f"/silent.svc{i}.S/M", grpc_head))
                c.send_data(1, message, end_stream=True)
                s.sendall(c.data_to_send())
                keep.append(s)
                return silent[i].accept()
            s, c = h2_client(tls.port if row == "tls_h2_preface" else sc.port,
                             alpn if row == "tls_h2_preface" else None)
            if row == "tls_h2_preface":
                assert s.selected_alpn_protocol() == "h2"
            elif row == "h2_header_stall":
                c.send_headers(1, h2_head("GET", "/health"), end_stream=True)
                frame = bytearray(c.data_to_send())
                assert frame[3] == 1  # one HEADERS frame: take END_HEADERS off it
                frame[4] &= ~0x4
                s.sendall(bytes(frame))
            elif row == "h2_idle":
                c.send_headers(1, h2_head("GET", "/health"), end_stream=True)
                s.sendall(c.data_to_send())
                assert wait_stream_end(s, 10, (0, 1, 3)) is not None
            elif row == "h2_body":
                c.send_headers(1, h2_head("POST", "/registry", [("content-length", "100000")]))
                c.send_data(1, b"{")
                s.sendall(c.data_to_send())
            elif row == "h2_discard":
                c.send_headers(1, h2_head("POST", "/foo/x/early", [("content-length", "100000")]))
                c.send_data(1, b"x")
                s.sendall(c.data_to_send())
            elif row == "grpc_upstream":
                c.send_headers(1, h2_head("POST", f"/silent.svc{i}.S/M", grpc_head))
                c.send_data(1, message, end_stream=True)
                s.sendall(c.data_to_send())
            return s

        held = {}
        for row in rows:
            if row in ROWS and (row.startswith(("h2_", "tls_h2")) or row == "grpc_upstream"):
                held[row] = [open_h2_row(row, i) for i in range(PER_ROW)]
            else:
                held[row] = [open_row(row) for _ in range(PER_ROW)]
        time.sleep(1)
        rss_held = rss_kb(sc.proc.pid)
        results = {}

        def watch(row, s):
            if row == "linger":
                # The client never reads: the sidecar's side goes once the linger ends. Seen
                # from here only by reading, which would drain it; so wait the bound, then
                # read: what is left must end at once (the sidecar dropped it).
                time.sleep(limit[row] + MARGIN_S)
                t = wait_closed(s, 5)
                results.setdefault(row, []).append(None if t is None else limit[row] + MARGIN_S)
                return
            if row in STREAM_ROWS:
                t = wait_stream_end(s, limit[row] + MARGIN_S, STREAM_ROWS[row])
            else:
                t = wait_closed(s, limit[row] + MARGIN_S)
            results.setdefault(row, []).append(t)

        threads = [threading.Thread(target=watch, args=(row, s)) for row in rows for s in held[row]]
        for t in threads:
            t.start()
        # Meanwhile the sidecar serves others.
        assert sc.get("/health").status == 200
        for t in threads:
            t.join(timeout=max(limit.values()) + 2 * MARGIN_S + 10)
        for row in rows:
            for s in held[row]:
                s.close()
        for s in keep:
            s.close()
        for n in silent:
            n.sock.close()
        print({r: [None if t is None else round(t, 1) for t in ts] for r, ts in results.items()})
        for row in rows:
            times = results.get(row, [])
            assert len(times) == PER_ROW and all(t is not None for t in times), (
                f"{row}: not closed within {limit[row]} s + {MARGIN_S} s: {times}")
        # Holding 5 connections in each state costs little memory.
        assert rss_held - rss0 < 20 * 1024, (rss0, rss_held)
        assert sc.get("/health").status == 200
    finally:
        app.stop()
