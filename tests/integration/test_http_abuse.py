"""SPEC 11 against a hostile client: framing the sidecar must refuse (chunk data not followed
by CRLF, HTTP/1.1 without exactly one Host) and a pipelining client that never reads its
answers (memory stays bounded, other clients are served)."""

import json
import select
import socket
import struct
import time

import pytest

import harness
from harness import http_req, node, service


def chunked(body, sep=b"\r\n"):
    """One chunk carrying body, followed by `sep` where CRLF belongs, then the last chunk."""
    return b"%x\r\n" % len(body) + body + sep + b"0\r\n\r\n"


# ---------------------------------------------------------------------------------------------
# Framing (issue 7 points 7 and 8)


@pytest.mark.parametrize("sep", [b"XX", b"\rX", b"\nX"], ids=["XX", "CR-X", "LF-X"])
def test_chunk_data_not_followed_by_crlf_is_400(sidecar, sep):
    body = json.dumps(service("smuggled.svc", [node("s1")])).encode()
    raw = http_req("POST", "/registry", [("Transfer-Encoding", "chunked"),
                                         ("Content-Type", "application/json")], chunked(body, sep))
    with sidecar.raw() as c:
        c.send(raw)
        r = c.read_response()
        assert r.status == 400, r
        harness.assert_error_json(r, 400)
        assert c.closed_by_peer(3)
    assert sidecar.lookup("smuggled.svc").status == 404


def test_chunked_with_extensions_still_registers(sidecar):
    body = json.dumps(service("ext.svc", [node("e1")])).encode()
    raw = (b"%x;name=value\r\n" % 10 + body[:10] + b"\r\n" + b"%x;flag\r\n" % (len(body) - 10) +
           body[10:] + b"\r\n0\r\nX-Trailer: t\r\n\r\n")
    with sidecar.raw() as c:
        c.send(http_req("POST", "/registry", [("Transfer-Encoding", "chunked")], raw))
        assert c.read_response().status == 200
    assert sidecar.lookup("ext.svc").status == 200


HOST_CASES = {
    "missing": (b"GET /health HTTP/1.1\r\n\r\n", "missing Host header"),
    "two": (b"GET /health HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", "more than one Host header"),
    "two-cases": (b"GET /health HTTP/1.1\r\nhost: a\r\nX-A: 1\r\nHOST: b\r\n\r\n",
                  "more than one Host header"),
}


@pytest.mark.parametrize("raw,detail", list(HOST_CASES.values()), ids=list(HOST_CASES))
def test_http11_host_not_exactly_one_is_400(sidecar, raw, detail):
    with sidecar.raw() as c:
        c.send(raw)
        r = c.read_response()
        harness.assert_error_json(r, 400)
        assert r.json()["detail"] == detail
        assert c.closed_by_peer(3)


def test_http10_without_host_is_served(sidecar):
    with sidecar.raw() as c:
        c.send(b"GET /health HTTP/1.0\r\n\r\n")
        assert c.read_response().status == 200


# ---------------------------------------------------------------------------------------------
# A pipelining client that never reads (issue 7 point 3)

RSS_BOUND = 64 * 1024 * 1024  # growth; the unbounded server grows by 100-200 MiB


def rss_bytes(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def wait_idle(pid, quiet=0.6, timeout=40):
    """Returns once the process used no CPU for `quiet` seconds (it has done whatever the
    requests it read make it do), or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last, since = cpu_ticks(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = cpu_ticks(pid)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def send_without_reading(port, data, timeout=10):
    """Sends as much of data as the sidecar takes (it may stop reading) and returns the socket,
    whose answers are never read."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    sent, deadline = 0, time.monotonic() + timeout
    while sent < len(data) and time.monotonic() < deadline:
        try:
            sent += s.send(data[sent:sent + 65536])
        except BlockingIOError:
            if not select.select([], [s], [], 1.0)[1]:
                break  # the sidecar stopped reading: what a bounded server does
    return s


PIPELINES = {
    # GET /registry with many services registered: ~25 KB per answer, 100 MB unbounded.
    "registry-list": (4000, "/registry", [service(f"svc.{i:04d}", [node(f"n{i}")])
                                          for i in range(300)]),
    # one service with big nodes: ~500 KB per answer, 200 MB unbounded.
    "large-answers": (400, "/registry?service=big.svc",
                      [service("big.svc", [node(f"big-{i:05d}", "127.0.0.1", 10000 + i,
                                                metadata={"k": "v" * 400})
                                           for i in range(1000)])]),
}


@pytest.mark.timeout_s(150)
@pytest.mark.parametrize("count,path,services", list(PIPELINES.values()), ids=list(PIPELINES))
def test_pipelining_client_that_never_reads_is_bounded(sidecar, count, path, services):
    for svc in services:
        assert sidecar.register(svc).status == 200
    answer = sidecar.get(path)
    assert answer.status == 200 and len(answer.body) > 20000, len(answer.body)
    pid = sidecar.proc.pid
    wait_idle(pid)
    before = rss_bytes(pid)
    conn = send_without_reading(sidecar.port, http_req("GET", path) * count)
    try:
        # Another client is served while the pipeline is stuck (a bounded wait, not a timing).
        assert sidecar.get("/health", timeout=5).status == 200
        wait_idle(pid)
        grown = rss_bytes(pid) - before
        print(f"RSS before {before >> 20} MiB, grown by {grown >> 20} MiB")
        assert grown < RSS_BOUND, f"RSS grew by {grown >> 20} MiB after {count} pipelined {path}"
        assert sidecar.get("/health", timeout=5).status == 200
    finally:
        conn.close()
    assert sidecar.alive()


def test_reset_by_a_client_it_stopped_reading_frees_its_slot(micro):
    """The sidecar stopped reading the pipelining client; when that client resets, its slot is
    released at once (not at the 75 s idle timeout)."""
    sc = micro("--max_connections=2")
    big = service("big.svc", [node(f"big-{i:05d}", metadata={"k": "v" * 400}) for i in range(1000)])
    assert sc.register(big).status == 200
    conn = send_without_reading(sc.port, http_req("GET", "/registry?service=big.svc") * 50)
    wait_idle(sc.proc.pid)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()  # a reset: the client is gone

    def two_served():
        with sc.raw(timeout=2) as a, sc.raw(timeout=2) as b:
            a.send(http_req("GET", "/health"))
            b.send(http_req("GET", "/health"))
            try:
                return a.read_response().status == 200 and b.read_response().status == 200
            except AssertionError:
                return False  # a connection over the limit is closed at once

    harness.wait_until(two_served, 10, message="two connections served after the reset")


def fd_count(pid):
    import os
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.long_wait
@pytest.mark.timeout_s(60)
def test_close_after_an_answer_the_client_never_reads_is_bounded(micro):
    """A client asks with Connection: close and never reads: the sidecar closes after writing
    the answer (10 MB: more than the kernel's socket buffers take), and since that write never
    completes, the close waits at most the linger bound (10 s) before the connection and its
    queued output are dropped."""
    sc = micro()
    for b in range(3):
        big = service("big.svc", [node(f"big-{b}-{i:05d}", metadata={"k": "v" * 400})
                                  for i in range(7000)])
        assert sc.register(big).status == 200
    pid = sc.proc.pid
    wait_idle(pid)
    base = fd_count(pid)
    req = http_req("GET", "/registry?service=big.svc", headers=[("Connection", "close")])
    conns = [send_without_reading(sc.port, req) for _ in range(2)]
    try:
        wait_idle(pid)
        assert fd_count(pid) == base + 2  # both answers stuck
        harness.wait_until(lambda: fd_count(pid) <= base, 25,
                           message="the two stuck connections closed by the sidecar")
        assert sc.get("/health", timeout=5).status == 200
    finally:
        for c in conns:
            c.close()
