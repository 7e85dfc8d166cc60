"""Standing test family "every connection state is bounded in time and memory"
(docs/design.md): one row per state a connection can sit in on the API listener: waiting for a
head, for a body, idle between keep-alive requests, a WebSocket session whose peer went quiet,
a graceful close whose peer never reads (the linger), a body still coming after an early
answer, a proxied request whose node never answers. All rows run at once against one sidecar,
several connections each; each must be closed within its bound (the constant in the source,
read from it, plus a margin), and the sidecar's RSS must stay bounded while they are held.

The guard test parses every connection-state time bound defined in src/ (..._TIMEOUT_MS,
..._LINGER_MS, ..._IDLE_MS, ..._CLOSE_MS): a new one fails it until it gets a row here. Rows
whose bound is over 15 s run in the normal pass only (the sanitizer pass runs the short ones:
the wait is wall time, the same under ASan, and CI's budget is wall time)."""

import os
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
    return out


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
}
# Bounds that are not a connection state of the API listener, and why.
NOT_ROWS = {
    "MC_WS_HUB_CLOSE_BOUND_MS": "the shutdown's wait for every session (test_shutdown.py)",
}


def test_every_state_bound_has_a_row():
    found = set(constants())
    covered = {c for cs in ROWS.values() for c in cs} | set(NOT_ROWS)
    assert found == covered, ("a connection-state bound was added or removed: give it a row in "
                              f"this file (found {sorted(found)}, rows cover {sorted(covered)})")


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


@pytest.mark.timeout_s(150)
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

        held = {row: [open_row(row) for _ in range(PER_ROW)] for row in rows}
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
            results.setdefault(row, []).append(wait_closed(s, limit[row] + MARGIN_S))

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
