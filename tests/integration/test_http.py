"""SPEC 2 and 11: the HTTP server as a client sees it: keep-alive, pipelining, HTTP/1.0,
chunked bodies, error JSON, 404/405, CORS, and every bad-input row that applies."""

import http.client
import json
import socket
import threading
import time

import pytest

import harness
from harness import CORS_HEADERS, CORS_METHODS, assert_error_json, http_req, node, service

CANARY = service("canary.svc", [node("canary-1", "127.0.0.1", 4242)], version="1")


def plant_canary(sc):
    assert sc.register(CANARY).status == 200


def assert_still_serving(sc):
    """The sidecar still answers on a fresh connection and kept the canary registration
    (SPEC 11: nothing in the table may crash it or lose a registration)."""
    r = sc.lookup("canary.svc")
    assert r.status == 200, r
    assert [n["id"] for n in r.json()[0]["nodes"]] == ["canary-1"]
    assert sc.alive()


def reg_bytes(name, node_id="n1"):
    return json.dumps(service(name, [node(node_id)])).encode()


# ---------------------------------------------------------------------------------------------
# Connection handling


def test_keep_alive_two_requests_one_socket(sidecar):
    with sidecar.raw() as c:
        assert c.send(http_req("GET", "/registry"))
        r1 = c.read_response()
        assert r1.status == 200, r1
        assert c.send(http_req("GET", "/registry?service=go.micro.sidecar"))
        r2 = c.read_response()
        assert r2.status == 200, r2
        assert r2.json()[0]["name"] == "go.micro.sidecar"


def test_expect_100_continue_is_answered_before_the_body_and_only_when_asked(sidecar):
    """A client that asks (any case) gets "100 Continue" before it sends the body; the next
    request on the connection, which does not ask, gets its answer alone."""
    body = reg_bytes("continued.svc")
    head = http_req("POST", "/registry", headers=[("Content-Type", "application/json"),
                                                  ("Content-Length", str(len(body))),
                                                  ("EXPECT", "100-Continue")])
    with sidecar.raw() as c:
        assert c.send(head)
        interim = c.read_response()
        assert interim.status == 100, interim
        assert c.send(body)
        assert c.read_response().status == 200
        assert c.send(http_req("POST", "/registry", body=reg_bytes("after.svc")))
        assert c.read_response().status == 200
        assert c.send(http_req("GET", "/registry?service=continued.svc"))
        r = c.read_response()
    assert r.status == 200 and r.json()[0]["name"] == "continued.svc", r


def test_pipelining_three_requests_one_write(sidecar):
    reqs = (http_req("POST", "/registry", body=reg_bytes("piped.svc"))
            + http_req("GET", "/registry?service=piped.svc")
            + http_req("GET", "/nosuchpath"))
    with sidecar.raw() as c:
        assert c.send(reqs)
        r1, r2, r3 = c.read_response(), c.read_response(), c.read_response()
    assert r1.status == 200 and r1.body == b"", r1
    assert r2.status == 200, r2
    assert r2.json()[0]["nodes"][0]["id"] == "n1"
    assert_error_json(r3, 404, "Not Found")


def test_http10_closes_after_response(sidecar):
    with sidecar.raw() as c:
        assert c.send(b"GET /registry HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        assert "chunked" not in (r.header("Transfer-Encoding") or "").lower()
        assert isinstance(r.json(), list)
        assert c.closed_by_peer(3), "HTTP/1.0 connection left open without keep-alive"


def test_http10_keep_alive_when_asked(sidecar):
    with sidecar.raw() as c:
        for _ in range(2):
            assert c.send(b"GET /registry HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            r = c.read_response()
            assert r.status == 200, r
            assert r.header("Content-Length") is not None, "HTTP/1.0 keep-alive needs a length"
        assert not c.closed_by_peer(0.5)


def test_connection_close_is_honoured(sidecar):
    with sidecar.raw() as c:
        assert c.send(http_req("GET", "/registry", [("Connection", "close")]))
        assert c.read_response().status == 200
        assert c.closed_by_peer(3)


def test_chunked_request_body_registers(sidecar):
    body = reg_bytes("chunked.svc", "c1")
    parts = [body[:7], body[7:20], body[20:]]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    with sidecar.raw() as c:
        assert c.send(http_req("POST", "/registry", [("Transfer-Encoding", "chunked"),
                                                     ("Content-Type", "application/json")]))
        time.sleep(0.1)  # the body arrives in a later read than the head
        assert c.send(chunked)
        r = c.read_response()
        assert r.status == 200, r
    assert [n["id"] for n in sidecar.nodes("chunked.svc")] == ["c1"]


# ---------------------------------------------------------------------------------------------
# Errors, methods, CORS


def test_unknown_path_404_error_json(sidecar):
    # A path that cannot name a call (an empty method part) is the sidecar's own 404.
    r = sidecar.get("/nosuchpath/-")
    obj = assert_error_json(r, 404, "Not Found", "go.micro.sidecar")
    assert list(obj) == ["id", "code", "detail", "status"]
    # Under --handler=rpc any other path names a call (/foo -> go.micro.srv.foo Foo.Call): a
    # service nobody registered is the client's 404 (SPEC 3.2), in the same error shape.
    r = sidecar.get("/nosuchpath")
    obj = assert_error_json(r, 404, "Not Found", "go.micro.client")
    assert list(obj) == ["id", "code", "detail", "status"]


def test_wrong_method_405_with_allow(sidecar):
    r = sidecar.request("PATCH", "/registry", body=b"{}")
    assert_error_json(r, 405, "Method Not Allowed")
    allow = {m.strip() for m in (r.header("Allow") or "").split(",")}
    assert {"GET", "POST", "PUT", "DELETE"} <= allow, r


def test_cors_any_origin_by_default(sidecar):
    origin = "http://app.example"
    r = sidecar.get("/registry", headers={"Origin": origin})
    assert r.status == 200
    assert r.header("Access-Control-Allow-Origin") == origin
    assert r.header("Access-Control-Allow-Credentials") == "true"
    assert r.header("Access-Control-Allow-Methods") == CORS_METHODS
    assert r.header("Access-Control-Allow-Headers") == CORS_HEADERS


@pytest.mark.parametrize("path", ["/registry", "/health", "/rpc", "/broker", "/nosuchpath", "/foo/bar", "/"])
def test_options_any_route_200_empty(sidecar, path):
    origin = "http://app.example"
    r = sidecar.request("OPTIONS", path, headers={"Origin": origin,
                                                  "Access-Control-Request-Method": "POST"})
    assert r.status == 200, r
    assert r.body == b""
    assert r.header("Access-Control-Allow-Origin") == origin
    assert r.header("Access-Control-Allow-Methods") == CORS_METHODS
    assert r.header("Access-Control-Allow-Headers") == CORS_HEADERS
    assert r.header("Access-Control-Allow-Credentials") == "true"


def test_cors_allow_list(micro):
    sc = micro("--cors=http://a.example,http://c.example")
    for ok in ("http://a.example", "http://c.example"):
        r = sc.get("/registry", headers={"Origin": ok})
        assert r.status == 200
        assert r.header("Access-Control-Allow-Origin") == ok
        assert r.header("Access-Control-Allow-Credentials") == "true"
    for method in ("GET", "OPTIONS"):
        r = sc.request(method, "/registry", headers={"Origin": "http://b.example"})
        leaked = [h for h in r.header_names() if h.startswith("access-control-")]
        assert not leaked, (method, r)


def test_cors_single_origin_flag(micro):
    sc = micro("--cors=http://a.example")
    assert sc.get("/health", headers={"Origin": "http://a.example"}).header(
        "Access-Control-Allow-Origin") == "http://a.example"
    r = sc.get("/health", headers={"Origin": "http://b.example"})
    assert not [h for h in r.header_names() if h.startswith("access-control-")], r


# ---------------------------------------------------------------------------------------------
# SPEC 11: bad input and limits. Each test plants a registration first and checks it after.

MALFORMED = {
    "garbage-request-line": b"GARBAGE\r\n\r\n",
    "no-version": b"GET /registry\r\n\r\n",
    "header-without-colon": b"GET /registry HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
    "bad-content-length": b"POST /registry HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "space-in-header-name": b"GET /registry HTTP/1.1\r\nHo st: x\r\n\r\n",
}


@pytest.mark.parametrize("raw", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_request_400_and_close(sidecar, raw):
    plant_canary(sidecar)
    with sidecar.raw() as c:
        c.send(raw)
        r = c.read_response()
        assert r.status == 400, r
        assert c.closed_by_peer(3), "connection not closed after a malformed request"
    assert_still_serving(sidecar)


def test_head_over_64k_431_and_close(sidecar):
    plant_canary(sidecar)
    # 70 headers of ~1000 bytes: every line is short, the head as a whole is ~70 KiB.
    headers = [(f"X-Fill-{i}", "a" * 1000) for i in range(70)]
    with sidecar.raw() as c:
        c.send(http_req("GET", "/registry", headers))
        r = c.read_response()
        assert r.status == 431, r
        assert c.closed_by_peer(3)
    assert_still_serving(sidecar)


def test_head_just_under_64k_is_fine(sidecar):
    headers = [(f"X-Fill-{i}", "a" * 1000) for i in range(60)]
    with sidecar.raw() as c:
        c.send(http_req("GET", "/registry", headers))
        assert c.read_response().status == 200


def test_header_line_over_8k_431_and_close(sidecar):
    plant_canary(sidecar)
    with sidecar.raw() as c:
        c.send(http_req("GET", "/registry", [("X-Big", "b" * 9000)]))
        r = c.read_response()
        assert r.status == 431, r
        assert c.closed_by_peer(3)
    assert_still_serving(sidecar)


def test_body_over_max_body_size_413_and_close(micro):
    sc = micro("--max_body_size=1KiB")
    plant_canary(sc)
    # Under the limit still works (the limit is not off by a factor).
    small = service("small.svc", [node("s1", metadata={"pad": "x" * 800})])
    assert len(json.dumps(small)) < 1024
    assert sc.register(small).status == 200
    big = json.dumps(service("big.svc", [node("b1", metadata={"pad": "x" * 2000})])).encode()
    with sc.raw() as c:
        c.send(http_req("POST", "/registry", [("Content-Type", "application/json")], body=big))
        r = c.read_response()
        assert r.status == 413, r
        # the detail names the flag and its value, as the user set it
        assert r.json()["detail"] == "request body over --max_body_size=1KiB", r
        assert c.closed_by_peer(3)
    assert sc.lookup("big.svc").status == 404
    assert_still_serving(sc)


def test_chunked_body_over_max_body_size_413(micro):
    sc = micro("--max_body_size=1KiB")
    plant_canary(sc)
    chunk = b"x" * 600
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
    with sc.raw() as c:
        c.send(http_req("POST", "/registry", [("Transfer-Encoding", "chunked")]) + body)
        r = c.read_response()
        assert r.status == 413, r
        assert r.json()["detail"] == "request body over --max_body_size=1KiB", r
        assert c.closed_by_peer(3)
    assert_still_serving(sc)


@pytest.mark.long_wait
@pytest.mark.timeout_s(40)
def test_slow_head_408_after_10s(sidecar):
    """A head trickled one byte every half second is never complete: 408 at ~10 s (the limit
    is on the whole head, not on idle time between bytes), and others are served meanwhile."""
    plant_canary(sidecar)
    head = b"GET /registry HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"z" * 100
    with sidecar.raw(timeout=20) as c:
        start = time.monotonic()
        checked_others = False
        for byte in head:
            if c.readable(0.5):
                break  # the sidecar answered (and should be closing): stop writing
            if not c.send(bytes([byte])):
                break
            if not checked_others and time.monotonic() - start > 2:
                assert harness.request(sidecar.port, "GET", "/health").status == 200
                checked_others = True
            if time.monotonic() - start > 16:
                break
        r = c.read_response()
        elapsed = time.monotonic() - start
        assert r.status == 408, r
        assert r.json()["detail"] == "request head not complete within 10s", r
        assert 9 <= elapsed <= 14, f"408 after {elapsed:.1f}s, expected ~10s"
        assert c.closed_by_peer(3)
    assert_still_serving(sidecar)


def test_content_length_and_transfer_encoding_400(sidecar):
    plant_canary(sidecar)
    body = reg_bytes("smuggled.svc")
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    with sidecar.raw() as c:
        c.send(http_req("POST", "/registry", [("Content-Length", str(len(chunked))),
                                              ("Transfer-Encoding", "chunked")], body=chunked))
        r = c.read_response()
        assert r.status == 400, r
        assert c.closed_by_peer(3)
    assert sidecar.lookup("smuggled.svc").status == 404
    assert_still_serving(sidecar)


def test_max_connections(micro):
    sc = micro("--max_connections=5")
    plant_canary(sc)
    time.sleep(0.3)  # let the canary's connection be fully closed on the sidecar's side
    conns = [sc.raw(timeout=5) for _ in range(5)]
    try:
        # Each of the five is accepted and served (and stays open: keep-alive).
        for c in conns:
            assert c.send(http_req("GET", "/health"))
            assert c.read_response().status == 200
        with sc.raw(timeout=5) as sixth:
            sixth.send(http_req("GET", "/health"))
            closed = False
            deadline = time.monotonic() + 3
            # Closed at once: EOF or reset, possibly after a short refusal response.
            while time.monotonic() < deadline:
                sixth.sock.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    data = sixth.sock.recv(65536)
                except socket.timeout:
                    break
                except ConnectionResetError:
                    closed = True
                    break
                if not data:
                    closed = True
                    break
                assert not data.startswith(b"HTTP/1.1 200") and not data.startswith(b"HTTP/1.0 200"), data
            assert closed, "the 6th connection was not closed"
        # The first five still get answers.
        for c in conns:
            assert c.send(http_req("GET", "/registry?service=canary.svc"))
            assert c.read_response().status == 200
    finally:
        for c in conns:
            c.close()
    # Slots free up again once connections close.
    harness.wait_until(lambda: _served(sc), 5, message="a new connection served after others closed")
    assert_still_serving(sc)


def _served(sc):
    try:
        return sc.get("/health", timeout=2).status == 200
    except (OSError, http.client.HTTPException):
        return False


@pytest.mark.parametrize("body", [b'{"name":', b"not json", b'{"name":"x","nodes":[{"id":"a",}]}',
                                  b"\xff\xfe"],
                         ids=["truncated", "not-json", "trailing-comma", "bad-utf8"])
def test_malformed_json_400_error_json(sidecar, body):
    plant_canary(sidecar)
    r = sidecar.request("POST", "/registry", body=body, headers={"Content-Type": "application/json"})
    assert_error_json(r, 400, "Bad Request")
    assert_still_serving(sidecar)


def test_everything_bad_in_a_row_then_still_serving(micro):
    """The bad-input table replayed on one sidecar; it must keep serving and keep its
    registrations, and (teardown) exit 0 without a sanitizer report."""
    sc = micro("--max_body_size=1KiB")
    plant_canary(sc)
    bads = list(MALFORMED.values()) + [
        http_req("GET", "/registry", [(f"X-F{i}", "a" * 1000) for i in range(70)]),
        http_req("GET", "/registry", [("X-Big", "b" * 9000)]),
        http_req("POST", "/registry", body=b"x" * 4000),
        http_req("POST", "/registry", [("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
                 body=b"0\r\n\r\n"),
        http_req("POST", "/registry", body=b'{"name":'),
    ]
    for raw in bads:
        with sc.raw() as c:
            c.send(raw)
            r = c.read_response()
            assert 400 <= r.status < 500, (raw[:80], r)
    # A client that connects and leaves without a byte, and one that leaves mid-head.
    socket.create_connection((harness.HOST, sc.port), timeout=2).close()
    with sc.raw() as c:
        c.send(b"GET /regi")
    assert_still_serving(sc)


def test_concurrent_clients(sidecar):
    """Twenty threads registering and reading at once all succeed (no lost writes)."""
    errors = []

    def worker(i):
        try:
            for j in range(5):
                svc = service(f"conc.svc{i}", [node(f"n{j}", port=1000 + j)])
                r = harness.register(sidecar.port, svc)
                assert r.status == 200, r
            assert len(harness.nodes_of(sidecar.port, f"conc.svc{i}")) == 5
        except Exception as e:  # collected and reported by the main thread
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    names = [s["name"] for s in sidecar.get("/registry").json()]
    assert sum(1 for n in names if n.startswith("conc.svc")) == 20
