"""SPEC 11 against a hostile client: framing the sidecar must refuse (chunk data not followed
by CRLF, HTTP/1.1 without exactly one Host) and a pipelining client that never reads its
answers (memory stays bounded, other clients are served)."""

import json

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
