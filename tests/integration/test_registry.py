"""SPEC 3.1: /registry: the seed README's curl commands, the exact JSON shapes, upserts,
versions, errors and TTLs."""

import json
import subprocess
import time

import pytest

import harness
from harness import assert_error_json, assert_json_exact, node, service, wait_until

# The seed README's register and deregister bodies, verbatim (tabs and newlines included).
README_BODY = """
{
\t"Name": "foo.bar",
\t"Nodes": [{
\t\t"Port": 9091,
\t\t"Address": "127.0.0.1",
\t\t"Id": "foo.bar-017da09a-734f-11e5-8136-68a86d0d36b6"
\t}]
}"""
README_NODE_ID = "foo.bar-017da09a-734f-11e5-8136-68a86d0d36b6"


def curl(*args):
    """Runs curl with the README's arguments plus only what is needed to capture the outcome;
    returns (status, content_type, body)."""
    marker = "\n__CURL__"
    res = subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "10",
         "--write-out", marker + "%{http_code} %{content_type}", *args],
        capture_output=True, timeout=15,
    )
    assert res.returncode == 0, res
    out = res.stdout.decode()
    body, _, tail = out.rpartition(marker)
    code, _, ctype = tail.partition(" ")
    return int(code), ctype, body


def test_seed_readme_curl_register_discover_deregister(sidecar):
    base = f"http://127.0.0.1:{sidecar.port}/registry"
    # Register, exactly as the README shows it.
    code, _, body = curl("-H", "Content-Type: application/json", base, "-d", README_BODY)
    assert code == 200 and body == "", (code, body)
    # Host discovery, as the README shows it (for the service just registered).
    code, ctype, body = curl(f"{base}?service=foo.bar")
    assert code == 200, (code, body)
    assert ctype.split(";")[0] == "application/json"
    svcs = harness.loads_strict(body)
    assert isinstance(svcs, list) and len(svcs) == 1, body
    assert svcs[0]["name"] == "foo.bar"
    assert svcs[0]["nodes"] == [{"id": README_NODE_ID, "address": "127.0.0.1", "port": 9091,
                                 "metadata": None}]
    # Deregister, exactly as the README shows it.
    code, _, body = curl("-X", "DELETE", "-H", "Content-Type: application/json", base, "-d", README_BODY)
    assert code == 200 and body == "", (code, body)
    code, ctype, body = curl(f"{base}?service=foo.bar")
    assert code == 404, (code, body)


def test_curl_d_form_content_type_is_still_json(sidecar):
    """`curl -d` without -H sends application/x-www-form-urlencoded: the body is JSON anyway."""
    base = f"http://127.0.0.1:{sidecar.port}/registry"
    code, _, body = curl(base, "-d", README_BODY)
    assert code == 200, (code, body)
    assert [n["id"] for n in sidecar.nodes("foo.bar")] == [README_NODE_ID]
    code, _, body = curl("-X", "DELETE", base, "-d", README_BODY)
    assert code == 200, (code, body)
    assert sidecar.nodes("foo.bar") == []


def test_get_service_exact_shape(sidecar):
    svc = service("foo", [node("foo-1", "127.0.0.1", 9090)], version="1.0")
    assert sidecar.register(svc).status == 200
    r = sidecar.lookup("foo")
    assert r.status == 200, r
    assert r.header("Content-Type", "").split(";")[0] == "application/json"
    assert_json_exact(r.json(), [{
        "name": "foo", "version": "1.0", "metadata": None, "endpoints": None,
        "nodes": [{"id": "foo-1", "address": "127.0.0.1", "port": 9090, "metadata": None}],
    }])


def test_get_service_with_metadata(sidecar):
    svc = service("meta.svc", [node("m-1", "10.0.0.7", 7000, {"zone": "a", "weight": "3"})],
                  version="2", metadata={"owner": "team"})
    assert sidecar.register(svc).status == 200
    assert_json_exact(sidecar.lookup("meta.svc").json(), [{
        "name": "meta.svc", "version": "2", "metadata": {"owner": "team"}, "endpoints": None,
        "nodes": [{"id": "m-1", "address": "10.0.0.7", "port": 7000,
                   "metadata": {"zone": "a", "weight": "3"}}],
    }])


def test_list_sorted_with_nulls(sidecar):
    for name in ("zeta", "alpha", "mid.dle"):
        assert sidecar.register(service(name, [node(name + "-1")])).status == 200
    r = sidecar.get("/registry")
    assert r.status == 200, r
    assert r.header("Content-Type", "").split(";")[0] == "application/json"
    names = sorted(["zeta", "alpha", "mid.dle", "go.micro.sidecar"])
    assert_json_exact(r.json(), [{"name": n, "version": "", "metadata": None, "endpoints": None,
                                  "nodes": None} for n in names])


def test_sidecar_registers_itself(sidecar):
    r = sidecar.lookup("go.micro.sidecar")
    assert r.status == 200, r
    svcs = r.json()
    assert len(svcs) == 1 and svcs[0]["name"] == "go.micro.sidecar"
    nodes = svcs[0]["nodes"]
    assert len(nodes) == 1, nodes
    assert nodes[0]["id"].startswith("go.micro.sidecar-"), nodes
    assert nodes[0]["port"] == sidecar.port
    assert nodes[0]["address"] not in ("", "0.0.0.0", "::"), nodes


def test_put_same_as_post(sidecar):
    svc = service("put.svc", [node("p-1", "127.0.0.1", 1234)])
    r = sidecar.register(svc, method="PUT")
    assert r.status == 200 and r.body == b"", r
    assert sidecar.nodes("put.svc") == [{"id": "p-1", "address": "127.0.0.1", "port": 1234, "metadata": None}]


@pytest.mark.parametrize("style", ["title", "lower", "upper", "mixed"])
def test_case_insensitive_keys(sidecar, style):
    def k(key):
        return {"title": key.title(), "lower": key.lower(), "upper": key.upper(),
                "mixed": key[0].lower() + key[1:].upper()}[style]

    name = f"case.{style}"
    body = {k("name"): name, k("version"): "v1", "Unknown_Key": [1, 2], k("nodes"): [
        {k("id"): "c-1", k("address"): "10.1.1.1", k("port"): 80, k("metadata"): {"K": "V"}, "junk": True}]}
    r = sidecar.request("POST", "/registry", body=json.dumps(body),
                        headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    assert_json_exact(sidecar.lookup(name).json(), [{
        "name": name, "version": "v1", "metadata": None, "endpoints": None,
        "nodes": [{"id": "c-1", "address": "10.1.1.1", "port": 80, "metadata": {"K": "V"}}],
    }])


def test_upsert_by_id(sidecar):
    assert sidecar.register(service("ups", [node("u-1", "10.0.0.1", 1)])).status == 200
    assert sidecar.register(service("ups", [node("u-1", "10.0.0.2", 2)])).status == 200
    assert sidecar.nodes("ups") == [{"id": "u-1", "address": "10.0.0.2", "port": 2, "metadata": None}]
    # A second id is a second node of the same version.
    assert sidecar.register(service("ups", [node("u-2", "10.0.0.3", 3)])).status == 200
    svcs = sidecar.lookup("ups").json()
    assert len(svcs) == 1
    assert sorted(n["id"] for n in svcs[0]["nodes"]) == ["u-1", "u-2"]


def test_two_versions_two_elements(sidecar):
    assert sidecar.register(service("ver", [node("v1-a", port=1)], version="1.0")).status == 200
    assert sidecar.register(service("ver", [node("v2-a", port=2)], version="2.0")).status == 200
    svcs = sidecar.lookup("ver").json()
    assert len(svcs) == 2, svcs
    by_version = {s["version"]: [n["id"] for n in s["nodes"]] for s in svcs}
    assert by_version == {"1.0": ["v1-a"], "2.0": ["v2-a"]}
    # Still one entry in the list.
    assert [s["name"] for s in sidecar.get("/registry").json()].count("ver") == 1


def test_unknown_service_404(sidecar):
    assert_error_json(sidecar.lookup("no.such.service"), 404, "Not Found")


def test_deregister_one_node_keeps_the_other(sidecar):
    assert sidecar.register(service("dd", [node("d-1", port=1), node("d-2", port=2)])).status == 200
    r = sidecar.deregister(service("dd", [node("d-1", port=1)]))
    assert r.status == 200 and r.body == b"", r
    assert [n["id"] for n in sidecar.nodes("dd")] == ["d-2"]


def test_deregister_unknown_is_200(sidecar):
    assert sidecar.register(service("known", [node("k-1")])).status == 200
    assert sidecar.deregister(service("known", [node("k-404")])).status == 200
    assert sidecar.deregister(service("never.seen", [node("x-1")])).status == 200
    assert [n["id"] for n in sidecar.nodes("known")] == ["k-1"]
    # Twice is fine too (idempotent).
    assert sidecar.deregister(service("known", [node("k-1")])).status == 200
    assert sidecar.deregister(service("known", [node("k-1")])).status == 200
    assert sidecar.nodes("known") == []


BAD_BODIES = {
    "bad-json": b'{"name": "bad", "nodes": [',
    "not-an-object": b'["bad"]',
    "no-name": b'{"nodes": [{"id": "b-1", "address": "127.0.0.1", "port": 1}]}',
    "empty-name": b'{"name": "", "nodes": [{"id": "b-1", "address": "127.0.0.1", "port": 1}]}',
    "no-nodes": b'{"name": "bad"}',
    "empty-nodes": b'{"name": "bad", "nodes": []}',
    "node-without-id": b'{"name": "bad", "nodes": [{"address": "127.0.0.1", "port": 1}]}',
    "port-70000": b'{"name": "bad", "nodes": [{"id": "b-1", "address": "127.0.0.1", "port": 70000}]}',
    "port-negative": b'{"name": "bad", "nodes": [{"id": "b-1", "address": "127.0.0.1", "port": -1}]}',
    "port-abc": b'{"name": "bad", "nodes": [{"id": "b-1", "address": "127.0.0.1", "port": "abc"}]}',
    "empty-body": b"",
}


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize("body", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
def test_register_400(sidecar, body, method):
    r = sidecar.request(method, "/registry", body=body, headers={"Content-Type": "application/json"})
    assert_error_json(r, 400, "Bad Request")
    assert sidecar.lookup("bad").status == 404
    # Port bounds are inclusive.
    ok = service("edge", [node("e-0", port=0), node("e-65535", port=65535)])
    assert sidecar.register(ok).status == 200


def test_deregister_bad_json_400(sidecar):
    r = sidecar.request("DELETE", "/registry", body=b'{"name":')
    assert_error_json(r, 400, "Bad Request")


def test_bad_ttl_400(sidecar):
    r = sidecar.register(service("ttlbad", [node("t-1")]), ttl="soon")
    assert_error_json(r, 400, "Bad Request")
    assert sidecar.lookup("ttlbad").status == 404


@pytest.mark.timeout_s(30)
def test_ttl_expiry(sidecar):
    t0 = time.monotonic()
    assert sidecar.register(service("ttl.svc", [node("keep")])).status == 200
    assert sidecar.register(service("ttl.svc", [node("temp", port=2)]), ttl="2s").status == 200
    assert sidecar.register(service("ttl.bare", [node("bare")]), ttl="2").status == 200
    assert sorted(n["id"] for n in sidecar.nodes("ttl.svc")) == ["keep", "temp"]
    time.sleep(1.0)
    assert sorted(n["id"] for n in sidecar.nodes("ttl.svc")) == ["keep", "temp"], "expired early"
    assert [n["id"] for n in sidecar.nodes("ttl.bare")] == ["bare"], "bare-integer TTL expired early"
    wait_until(lambda: [n["id"] for n in sidecar.nodes("ttl.svc")] == ["keep"], 4.5 - (time.monotonic() - t0),
               message="TTL'd node to expire")
    wait_until(lambda: sidecar.nodes("ttl.bare") == [], 5.0 - (time.monotonic() - t0),
               message="bare-integer TTL node to expire")
    assert time.monotonic() - t0 >= 1.5


@pytest.mark.timeout_s(30)
def test_ttl_renewed_by_reregistration(sidecar):
    svc = service("renew.svc", [node("r-1")])
    t0 = time.monotonic()
    while time.monotonic() - t0 < 4.5:
        assert sidecar.register(svc, ttl="2s").status == 200
        time.sleep(0.5)
        assert [n["id"] for n in sidecar.nodes("renew.svc")] == ["r-1"], \
            f"renewed node gone after {time.monotonic() - t0:.1f}s"
        time.sleep(0.5)
    t1 = time.monotonic()
    wait_until(lambda: sidecar.nodes("renew.svc") == [], 4.5, message="node to expire once not renewed")
    assert time.monotonic() - t1 >= 0.5


# Issue 7 point 1: a registered name, version, id or address is copied into the heads of
# requests sent to nodes (X-Micro-Service, Host, ...); a control character there would let a
# registration split those heads. Refused with a 400 naming the field; nothing is stored.
CONTROL_BODIES = {
    "name-crlf": ({"name": "evil\r\nContent-Length: 0\r\n\r\nGET /x HTTP/1.1",
                   "nodes": [{"id": "e-1"}]}, "service name contains a control character"),
    "name-lf": ({"name": "evil\n", "nodes": [{"id": "e-1"}]},
                "service name contains a control character"),
    "name-nul": ({"name": "evil\u0000junk", "nodes": [{"id": "e-1"}]},
                 "service name contains a control character"),
    "name-del": ({"name": "evil\u007f", "nodes": [{"id": "e-1"}]},
                 "service name contains a control character"),
    "version-cr": ({"name": "evil", "version": "1\r", "nodes": [{"id": "e-1"}]},
                   "service version contains a control character"),
    "id-lf": ({"name": "evil", "nodes": [{"id": "e-1"}, {"id": "e-2\nX: y"}]},
              "nodes[1]: node id contains a control character"),
    "address-crlf": ({"name": "evil", "nodes": [{"id": "e-1", "address": "h\r\nX: y"}]},
                     "nodes[0]: node address contains a control character"),
}


@pytest.mark.parametrize("case", list(CONTROL_BODIES))
def test_control_characters_refused(sidecar, case):
    body, detail = CONTROL_BODIES[case]
    r = sidecar.register(body)
    obj = assert_error_json(r, 400, "Bad Request", error_id="go.micro.registry")
    assert obj["detail"] == detail, obj
    # Nothing at all was stored: not the bad node, not its good sibling, not the name.
    names = [s["name"] for s in sidecar.get("/registry").json()]
    assert names == ["go.micro.sidecar"], names
    assert sidecar.lookup("evil").status == 404
    # Deregistering with such a body is refused the same way.
    assert_error_json(sidecar.deregister(body), 400, "Bad Request")


@pytest.mark.parametrize("address,port,stored", [
    ("127.0.0.1:20001", None, ("127.0.0.1", 20001)),
    ("127.0.0.1:20001", 20001, ("127.0.0.1", 20001)),
    ("[::1]:20001", None, ("::1", 20001)),
    ("::1", 20001, ("::1", 20001)),  # a bare IPv6 address is not host:port
])
def test_address_with_its_port_is_stored_split(sidecar, address, port, stored):
    n = {"id": "n1", "address": address}
    if port is not None:
        n["port"] = port
    r = sidecar.register({"name": "split", "nodes": [n]})
    assert r.status == 200, r
    (got,) = sidecar.nodes("split")
    assert (got["address"], got["port"]) == stored, got


def test_address_with_another_port_is_400(sidecar):
    r = sidecar.register({"name": "split", "nodes": [
        {"id": "n1", "address": "127.0.0.1:20001", "port": 20002}]})
    obj = assert_error_json(r, 400, "Bad Request", error_id="go.micro.registry")
    assert '"port"' in obj["detail"] and "127.0.0.1:20001" in obj["detail"], obj
    assert sidecar.lookup("split").status == 404
