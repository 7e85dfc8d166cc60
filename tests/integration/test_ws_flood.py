"""SPEC 11: a WebSocket client that floods pings and never reads keeps the sidecar's memory
bounded (pongs count toward the 8 MiB outbound bound and only the latest ping is answered),
on /broker and on the /registry watch, and the sidecar goes on serving others."""

import os
import socket
import time

import pytest

import harness
from test_proxy import rss_kb, small_quarantine_env
from ws_raw import OP_PING, OP_PONG, RawWS

FLOOD_BYTES = 200 * 1024 * 1024
PING_PAYLOAD = 125  # the largest a control frame may carry


def masked_ping(payload):
    key = os.urandom(4)
    return (bytes([0x80 | OP_PING, 0x80 | len(payload)]) + key
            + bytes(b ^ key[i % 4] for i, b in enumerate(payload)))


def health_ok(port):
    """/health on a fresh connection answers 200 within 5 s."""
    return harness.request(port, "GET", "/health", timeout=5).status == 200


@pytest.mark.timeout_s(150)
@pytest.mark.parametrize("path", ["/broker?topic=flood", "/registry"], ids=["broker", "watch"])
def test_ping_flood_without_reading_keeps_rss_bounded(micro, path):
    sc = micro(env=small_quarantine_env())
    pid = sc.proc.pid
    # A small receive buffer so the sidecar's output backs up at once.
    ws = RawWS(sc.port, path, rcvbuf=4096, timeout=30)
    try:
        # Warm up the paths (codec, session, allocator) so the baseline is the steady state.
        ws.send(masked_ping(b"warm") * 1000)
        assert health_ok(sc.port)
        before = rss_kb(pid)
        peak = before
        chunk = masked_ping(b"p" * PING_PAYLOAD) * 8192  # ~1 MiB of pings
        sent = 0
        t0 = time.monotonic()
        stopped = None
        while sent < FLOOD_BYTES:
            try:
                ws.send(chunk)
            except (socket.timeout, OSError) as e:
                # The sidecar stopped reading or closed: also a bounded answer.
                stopped = e
                break
            sent += len(chunk)
            if sent % (16 * len(chunk)) == 0:
                peak = max(peak, rss_kb(pid))
            assert time.monotonic() - t0 < 110, f"flood too slow ({sent} bytes sent)"
        # Another client is served while the flooder is still connected and not reading.
        assert health_ok(sc.port)
        assert sc.alive(), sc.logs()
        after = rss_kb(pid)
        peak = max(peak, after, rss_kb(pid, "VmHWM"))  # the kernel's own peak, between samples
        grown_mb = (peak - before) / 1024
        print(f"sent {sent} bytes ({stopped!r}); RSS {before} kB -> peak {peak} kB, after {after} kB")
        assert grown_mb < 32, f"RSS grew by {grown_mb:.1f} MB ({before} kB -> peak {peak} kB)"
        if stopped is None:
            # Still open: the latest ping is answered once the client reads (RFC 6455 5.5.3).
            last = b"last-" + b"x" * (PING_PAYLOAD - 5)
            ws.send(masked_ping(last))
            want = bytes([0x80 | OP_PONG, len(last)]) + last
            got = bytearray()
            deadline = time.monotonic() + 30
            ws.sock.settimeout(5)
            while want not in got[-(1 << 21):]:
                assert time.monotonic() < deadline, "no pong for the last ping"
                data = ws.sock.recv(1 << 20)
                assert data, "closed before the last ping was answered"
                got += data
                del got[: max(0, len(got) - (1 << 21))]
    finally:
        ws.close()
    assert health_ok(sc.port)
