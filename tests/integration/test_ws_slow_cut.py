"""A WebSocket subscriber too slow for its queue is cut with 1008 (issue 13, "every connection
state a bound in time and memory"): the messages still waiting for it are dropped when it is
cut, so the close frame follows at most a few hundred KiB of output (plus what the kernel's
socket buffers already hold) instead of megabytes. A reader that stops until it is cut and then
reads at a modest pace therefore gets the 1008 close frame before the sidecar's close bound
(5 s) ends the connection, rather than an EOF without it (which is how the slow-subscriber tests
used to flake under load)."""

import select
import struct
import time

import pytest

from ws_raw import OP_CLOSE, RawWS

PACE = 64 * 1024  # bytes read per step...
STEP_S = 0.04  # ...every STEP_S: about 1.6 MB/s, a reader slower than loopback


def paced_read_close(ws, limit_s):
    """Reads ws at about PACE/STEP_S bytes/s, skipping data frames, until the server's close
    frame: returns (close code, data bytes read before it), or (None, bytes) if the
    connection ended first. Bounded by limit_s."""
    buf = bytearray(ws.buf)
    got = 0
    deadline = time.monotonic() + limit_s
    while True:
        while len(buf) >= 2:
            n, hdr = buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, hdr = struct.unpack_from("!H", buf, 2)[0], 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, hdr = struct.unpack_from("!Q", buf, 2)[0], 10
            if len(buf) < hdr + n:
                break
            if buf[0] & 0x0F == OP_CLOSE:
                return struct.unpack_from("!H", buf, hdr)[0], got
            got += n
            del buf[:hdr + n]
        left = deadline - time.monotonic()
        assert left > 0, f"neither a close frame nor the end within {limit_s}s ({got} bytes)"
        # Up to PACE bytes this step (a small receive buffer gives a few KiB per recv), then
        # a pause.
        step_end = time.monotonic() + STEP_S
        taken = 0
        while taken < PACE:
            r, _, _ = select.select([ws.sock], [], [], max(0.0, min(left, STEP_S)))
            if not r:
                break
            try:
                chunk = ws.sock.recv(PACE - taken)
            except ConnectionResetError:
                return None, got
            if not chunk:
                return None, got
            buf += chunk
            taken += len(chunk)
        time.sleep(max(0.0, step_end - time.monotonic()))


@pytest.mark.timeout_s(90)
def test_cut_subscriber_gets_1008_before_the_dropped_backlog(sidecar):
    slow = RawWS(sidecar.port, "/broker?topic=cut", rcvbuf=4096, timeout=30)
    try:
        time.sleep(0.2)
        # 200 x 64 KiB (base64 in the JSON frames: ~17 MiB): past the 8 MiB bound.
        for _ in range(200):
            assert sidecar.request("POST", "/broker?topic=cut", body=b"z" * 65536).status == 200
        sidecar.wait_stderr(r"reader too slow", timeout=10)
        code, before = paced_read_close(slow, 20)
        assert code == 1008, f"connection ended without the 1008 close after {before} bytes"
        # What came first is bounded by the backlog threshold and the kernel's buffers, not
        # by the 8 MiB queue.
        assert before < 8 * 1024 * 1024, before
    finally:
        slow.close()
    assert sidecar.request("GET", "/registry").status == 200
