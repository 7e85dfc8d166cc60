"""SPEC 12: HTTP/2 abuse, with hand-built frames and python3-h2. Rapid reset, SETTINGS, PING,
empty-DATA and CONTINUATION floods, an oversized header block, a window that never opens, an
invalid or unfinished preface: the offender is closed (GOAWAY where the protocol allows) or its
stream refused, another client is still served, and the sidecar's RSS stays bounded."""

import socket
import struct
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

import harness
from harness import HOST, AppProcess, service
from test_http2 import H2Client

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, END_HEADERS = 0x1, 0x4
# HPACK: GET, http, /, then :authority "h" (literal, incremental indexing of static name 1).
MIN_HEAD = b"\x82\x86\x84\x41\x01h"
ENHANCE_YOUR_CALM = 0xB


def frame(ftype, flags, sid, payload=b""):
    return struct.pack("!I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack("!I", sid) + payload


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def raw_conn(port, timeout=10):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.sendall(PREFACE + frame(SETTINGS, 0, 0))
    return s


def send_many(s, data, times):
    """Sends data `times` times in big writes; stops quietly when the sidecar stops taking it
    (closed, or no longer reading)."""
    batch = data * max(1, 65536 // len(data))
    per = max(1, 65536 // len(data))
    sent = 0
    s.settimeout(5)
    try:
        while sent < times:
            s.sendall(batch)
            sent += per
    except OSError:
        pass
    return sent


def outcome(s, timeout=15):
    """Reads server frames until a GOAWAY ("goaway", code) or the close ("closed", None)."""
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except OSError:
            return "closed", None
        if not chunk:
            return "closed", None
        buf += chunk
        while len(buf) >= 9:
            n = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + n:
                break
            if buf[3] == GOAWAY:
                return "goaway", int.from_bytes(buf[9 + 4:9 + 8], "big")
            buf = buf[9 + n:]
    raise AssertionError("the sidecar neither sent GOAWAY nor closed the connection")


def still_served(sc):
    """Another client gets its answer, over HTTP/2 and HTTP/1.1."""
    c = H2Client(sc.port)
    try:
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":path", "/registry"),
                                  (":authority", HOST)], end_stream=True)
        c.flush()
        resp = c.pump(lambda evs: [e for e in evs if isinstance(e, h2.events.ResponseReceived)])
        assert dict(resp[0].headers)[":status"] == "200"
    finally:
        c.close()
    assert harness.request(sc.port, "GET", "/registry").status == 200


@pytest.mark.timeout_s(120)
def test_floods_are_closed_and_others_served(micro):
    sc = micro()
    pid = sc.proc.pid
    still_served(sc)
    before = rss_kb(pid)

    # Rapid reset (CVE-2023-44487): HEADERS then RST_STREAM, stream after stream.
    s = raw_conn(sc.port)
    burst = b"".join(frame(HEADERS, END_HEADERS | END_STREAM, sid, MIN_HEAD) +
                     frame(RST_STREAM, 0, sid, struct.pack("!I", 8))
                     for sid in range(1, 2 * 4000, 2))
    try:
        s.sendall(burst)
    except OSError:
        pass
    assert outcome(s)[0] in ("goaway", "closed")
    s.close()
    still_served(sc)

    # SETTINGS flood, PING flood: the acks are never read.
    for ftype, payload in ((SETTINGS, b""), (PING, b"12345678")):
        s = raw_conn(sc.port)
        send_many(s, frame(ftype, 0, 0, payload), 100000)
        kind, code = outcome(s)
        assert kind == "closed" or code == ENHANCE_YOUR_CALM, (ftype, kind, code)
        s.close()
        still_served(sc)

    # Empty DATA frames on an open request stream.
    s = raw_conn(sc.port)
    s.sendall(frame(HEADERS, END_HEADERS, 1, b"\x83\x86\x84\x41\x01h"))  # POST /
    send_many(s, frame(DATA, 0, 1), 20000)
    kind, code = outcome(s)
    assert kind == "closed" or code == ENHANCE_YOUR_CALM, (kind, code)
    s.close()
    still_served(sc)

    # CONTINUATION flood: a header block that never ends.
    s = raw_conn(sc.port)
    s.sendall(frame(HEADERS, 0, 1, MIN_HEAD))
    send_many(s, frame(CONTINUATION, 0, 1, b"\x00\x03x-a\x01b"), 10000)
    kind, code = outcome(s)
    assert kind in ("goaway", "closed"), kind
    s.close()
    still_served(sc)

    after = rss_kb(pid)
    assert after - before < 20 * 1024, f"RSS grew from {before} kB to {after} kB"


def test_header_block_past_64k_is_refused(micro):
    sc = micro()
    c = H2Client(sc.port)
    try:
        sid = c.conn.get_next_available_stream_id()
        big = [(f"x-big-{i}", ("abcdefghij" * 800)) for i in range(10)]  # 80 KB decoded
        c.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                  (":path", "/registry"), (":authority", HOST), *big],
                            end_stream=True)
        c.flush()

        def answer(evs):
            return [e for e in evs if (isinstance(e, h2.events.ResponseReceived) or
                                       isinstance(e, h2.events.StreamReset)) and e.stream_id == sid]
        got = c.pump(answer)[0]
        if isinstance(got, h2.events.ResponseReceived):
            assert dict(got.headers)[":status"] == "431"
        # The connection goes on serving.
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                  (":path", "/registry"), (":authority", HOST)], end_stream=True)
        c.flush()
        ok = c.pump(lambda evs: [e for e in evs if isinstance(e, h2.events.ResponseReceived)
                                 and e.stream_id == sid])
        assert dict(ok[0].headers)[":status"] == "200"
    finally:
        c.close()


@pytest.mark.timeout_s(60)
def test_a_window_that_never_opens_holds_one_window(micro, tmp_path):
    app = AppProcess(tmp_path, "http_app.py", "a")
    try:
        sc = micro("--handler=proxy", "--proxy_idle_timeout=3s")
        sc.register(service("go.micro.srv.foo", [app.node()]))
        pid = sc.proc.pid
        before = rss_kb(pid)
        c = H2Client(sc.port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        sid = c.conn.get_next_available_stream_id()
        # 100 MB from the node; the client never opens its window.
        c.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                  (":path", "/foo/chunked?n=10000&size=10000"),
                                  (":authority", HOST)], end_stream=True)
        c.flush()
        c.conn.acknowledge_received_data = lambda *a, **k: None  # never
        peak = before
        deadline = time.monotonic() + 30
        reset = None
        c.sock.settimeout(1)
        while time.monotonic() < deadline and not reset:
            peak = max(peak, rss_kb(pid))
            try:
                data = c.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                break
            for ev in c.conn.receive_data(data):
                if isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                    reset = ev
            c.flush()
        assert reset is not None, "the stream was never given up"
        assert peak - before < 16 * 1024, f"RSS {before} kB -> {peak} kB"
        c.close()
        still_served(sc)
    finally:
        app.stop()


def test_invalid_preface_is_closed(micro):
    sc = micro()
    # Not the preface after all: HTTP/1 sees an HTTP/2.0 request line, refuses it and closes.
    s = socket.create_connection((HOST, sc.port), timeout=10)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
    data = b""
    s.settimeout(10)
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    assert data.startswith(b"HTTP/1.1 400"), data
    s.close()
    # The preface, then a first frame that is not SETTINGS: a protocol error, GOAWAY.
    s = socket.create_connection((HOST, sc.port), timeout=10)
    s.sendall(PREFACE + frame(PING, 0, 0, b"12345678"))
    kind, code = outcome(s)
    assert kind == "closed" or code == 1, (kind, code)  # PROTOCOL_ERROR
    s.close()
    still_served(sc)


@pytest.mark.long_wait
@pytest.mark.timeout_s(40)
def test_a_preface_never_followed_by_a_request_is_closed(micro):
    sc = micro()
    s = raw_conn(sc.port)
    t0 = time.monotonic()
    kind, _ = outcome(s, timeout=25)
    assert kind in ("goaway", "closed")
    assert time.monotonic() - t0 < 25
    s.close()
    still_served(sc)


def test_max_concurrent_streams_is_128(micro):
    sc = micro()
    c = H2Client(sc.port)
    try:
        c.pump(lambda evs: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in evs))
        assert c.conn.remote_settings.max_concurrent_streams == 128
        assert c.conn.remote_settings.enable_connect_protocol == 1
    finally:
        c.close()



@pytest.mark.long_wait
@pytest.mark.timeout_s(40)
def test_a_header_block_that_never_ends_is_closed(micro):
    """HEADERS without END_HEADERS, then silence: the connection can carry nothing else until
    the block ends, so the sidecar ends the connection at the head timeout."""
    sc = micro()
    s = raw_conn(sc.port)
    s.sendall(frame(HEADERS, 0, 1, MIN_HEAD))
    kind, _ = outcome(s, timeout=25)
    assert kind in ("goaway", "closed")
    s.close()
    still_served(sc)
