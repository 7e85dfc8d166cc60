"""WebSocket floods beyond test_ws_flood.py's ping flood: a publisher flooding /broker with
messages while subscribers read (they keep up, in order) and one never reads (cut with 1008
at the outbound bound, not grown without limit); and a churn of hundreds of sessions opened
and dropped (reset, or closed mid-handshake) on /broker and the registry watch. The sidecar
still answers, lost nothing, its session count returns to zero and its RSS stays bounded."""

import base64
import json
import socket
import struct
import threading
import time

import pytest

from harness import HOST, wait_until
from test_abuse_clients import canary_intact, reset, served, setup_canary
from test_proxy import rss_kb, small_quarantine_env
from ws_raw import OP_TEXT, RawWS, encode_frame


def stats(sc):
    return sc.get("/stats", headers={"Accept": "application/json"}).json()


def websockets_now(sc):
    s = stats(sc)
    return s.get("websockets", s.get("gauges", {}).get("websockets"))


class Drain(threading.Thread):
    """Reads a RawWS's frames in the background (its own parse over one buffer: RawWS's
    per-frame slicing is too slow to keep up with a flood), recording the text messages'
    sequence numbers."""

    def __init__(self, ws):
        super().__init__(daemon=True)
        self.ws, self.seqs, self.stop, self.ended = ws, [], False, False

    def run(self):
        buf, pos = bytearray(ws_leftover(self.ws)), 0
        self.ws.sock.settimeout(1)
        while not self.stop:
            try:
                piece = self.ws.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError:
                break
            if not piece:
                break
            buf += piece
            while len(buf) - pos >= 2:
                n, hdr = buf[pos + 1] & 0x7F, 2
                if n == 126:
                    if len(buf) - pos < 4:
                        break
                    n, hdr = struct.unpack_from("!H", buf, pos + 2)[0], 4
                elif n == 127:
                    if len(buf) - pos < 10:
                        break
                    n, hdr = struct.unpack_from("!Q", buf, pos + 2)[0], 10
                if len(buf) - pos < hdr + n:
                    break
                if buf[pos] & 0x0F == OP_TEXT:
                    body = json.loads(bytes(buf[pos + hdr:pos + hdr + n]))
                    self.seqs.append(int(base64.b64decode(body["Body"]).split(b":")[0]))
                pos += hdr + n
            if pos > (1 << 20):
                del buf[:pos]
                pos = 0
        self.ended = True


def ws_leftover(ws):
    data, ws.buf = ws.buf, b""
    return data


@pytest.mark.timeout_s(120)
def test_publish_flood_with_readers_and_a_reader_that_never_reads(micro):
    sc = micro("--enable_stats", env=small_quarantine_env())
    setup_canary(sc)
    path = "/broker?topic=flood"
    readers = [RawWS(sc.port, path, timeout=30) for _ in range(5)]
    drains = [Drain(ws) for ws in readers]
    for d in drains:
        d.start()
    stuck = RawWS(sc.port, path, rcvbuf=4096, timeout=30)
    publisher = RawWS(sc.port, path, timeout=30)
    pub_drain = Drain(publisher)  # it is subscribed too: it must read its own copies
    pub_drain.start()
    time.sleep(0.3)
    rss0 = rss_kb(sc.proc.pid)
    pad = b"p" * 1000
    n = 20000  # 20 MB through each reader: more than the 8 MiB outbound bound of `stuck`
    # As fast as the readers take it (a batch ahead at most): the one that never reads falls
    # behind by the whole flood.
    step = 500
    for start in range(0, n, step):
        publisher.send(b"".join(encode_frame(OP_TEXT, b"%d:" % i + pad)
                                for i in range(start, start + step)))
        assert wait_until(lambda: all(len(d.seqs) >= start for d in drains), 30,
                          message="the readers keep up")
    assert served(sc)
    assert wait_until(lambda: all(len(d.seqs) >= n for d in drains), 60,
                      message="every reader got every message")
    for d in drains:
        assert d.seqs[:n] == list(range(n)), "a reader lost or reordered messages"
    # The reader that never reads was cut at its bound (1008), not kept growing.
    assert stuck.read_close(timeout=30)[0] == 1008
    stuck.close()
    assert rss_kb(sc.proc.pid) < rss0 + 48 * 1024
    for d in drains + [pub_drain]:
        d.stop = True
    for ws in readers + [publisher]:
        ws.close()
    assert wait_until(lambda: websockets_now(sc) == 0, 15, message="every session gone")
    canary_intact(sc)


@pytest.mark.timeout_s(120)
def test_session_churn_returns_to_zero(micro):
    sc = micro("--enable_stats", env=small_quarantine_env())
    setup_canary(sc)
    for path in ("/broker?topic=churn", "/registry"):  # warm-up: the allocator's steady state
        RawWS(sc.port, path).close()
    rss0 = rss_kb(sc.proc.pid)
    for i in range(300):
        path = "/broker?topic=churn" if i % 2 else "/registry"
        if i % 3 == 0:
            # Dropped in the middle of the handshake.
            s = socket.create_connection((HOST, sc.port), timeout=5)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n".encode())
            reset(s)
            continue
        ws = RawWS(sc.port, path)
        ws.send(encode_frame(OP_TEXT, b"hello"))
        if i % 3 == 1:
            reset(ws.sock)
        else:
            ws.close()
    assert served(sc)
    assert wait_until(lambda: websockets_now(sc) == 0, 20, message="every session gone")
    assert rss_kb(sc.proc.pid) < rss0 + 16 * 1024
    canary_intact(sc)
