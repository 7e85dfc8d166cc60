"""SPEC 11: a query or form value that decodes to a NUL (%00) is refused with a 400 naming the
field. A C string ends at the NUL, so "s%00junk" would otherwise name "s"."""

import json

import pytest

from harness import assert_error_json, node, service
from ws_raw import RawWS


def test_registry_lookup_with_nul_is_400(sidecar):
    r = sidecar.register(service("s", [node("s-1")]))
    assert r.status == 200, r
    assert sidecar.get("/registry?service=s").status == 200
    r = sidecar.get("/registry?service=s%00junk")
    obj = assert_error_json(r, 400, error_id="go.micro.registry")
    assert obj["detail"] == "invalid service: contains a NUL (%00)", obj
    # Other escapes still decode: "s%20x" names "s x", which does not exist.
    assert_error_json(sidecar.get("/registry?service=s%20x"), 404)
    # A parameter whose *name* holds a NUL names nothing: the listing of every service.
    r = sidecar.get("/registry?service%00x=s")
    assert r.status == 200 and [s["name"] for s in r.json()] == sorted(
        s["name"] for s in r.json()), r


def test_registry_ttl_and_watch_with_nul_are_400(sidecar):
    body = json.dumps(service("t", [node("t-1")]))
    r = sidecar.request("POST", "/registry?ttl=30s%00", body=body,
                        headers={"Content-Type": "application/json"})
    assert_error_json(r, 400)
    assert_error_json(sidecar.get("/registry?service=t"), 404)  # nothing registered
    with pytest.raises(AssertionError, match="400"):
        RawWS(sidecar.port, "/registry?service=s%00junk")


@pytest.mark.parametrize("field", ["service", "method", "address"])
def test_rpc_form_field_with_nul_is_400(sidecar, field):
    fields = {"service": "go.micro.srv.example", "method": "Example.Call"}
    fields[field] = "x%00y"
    body = "&".join(f"{k}={v}" for k, v in fields.items())
    r = sidecar.request("POST", "/rpc", body=body,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    obj = assert_error_json(r, 400, error_id="go.micro.rpc")
    assert obj["detail"] == f"invalid {field}: contains a NUL", obj
    # The same from the query string.
    r = sidecar.request("POST", "/rpc?" + body, body="")
    assert assert_error_json(r, 400)["detail"] == f"invalid {field}: contains a NUL", r


@pytest.mark.parametrize("field", ["service", "method", "address"])
def test_rpc_json_field_with_nul_is_400(sidecar, field):
    fields = {"service": "go.micro.srv.example", "method": "Example.Call"}
    fields[field] = "x\u0000y"
    r = sidecar.request("POST", "/rpc", body=json.dumps(fields),
                        headers={"Content-Type": "application/json"})
    obj = assert_error_json(r, 400, error_id="go.micro.rpc")
    assert obj["detail"] == f"invalid {field}: contains a NUL", obj
