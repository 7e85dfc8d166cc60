"""SPEC 3.2, 3.3, 4 and 6: calls through /rpc and --handler=rpc path routing to real JSON-RPC
services (apps/jsonrpc_app.py, one process per node), error mapping, the selectors, retries on
a killed node and passive outlier ejection."""

import http.client
import json
import signal
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

from harness import (HOST, AppProcess, assert_error_json, free_port, http_req, loads_strict, node, service,
                     wait_until)

SVC = "go.micro.srv.example"


class RpcApp(AppProcess):
    """A running apps/jsonrpc_app.py node called `name`."""

    def __init__(self, tmp_path, name):
        super().__init__(tmp_path, "jsonrpc_app.py", name)

    def _ctl(self, method, path):
        conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
        try:
            conn.request(method, path)
            r = conn.getresponse()
            assert r.status == 200, r.status
            return json.loads(r.read())
        finally:
            conn.close()

    def set_mode(self, mode):
        self._ctl("POST", f"/_set?mode={mode}")

    def calls(self):
        return self._ctl("GET", "/_stats")["calls"]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=5)


@pytest.fixture
def apps(tmp_path, request):
    """Factory: apps(n) starts n JSON-RPC nodes named a, b, c, ... (all stopped at teardown)."""
    started = []

    def start(n=1, names=None):
        names = names or [chr(ord("a") + len(started) + i) for i in range(n)]
        out = [RpcApp(tmp_path, name) for name in names]
        started.extend(out)
        return out

    yield start
    for app in started:
        app.stop()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for app in started:
            print(f"--- jsonrpc_app {app.name} log:\n" + app.log_path.read_text(errors="replace"))


def register(sc, name, nodes):
    r = sc.register(service(name, [n.node() if isinstance(n, RpcApp) else n for n in nodes]))
    assert r.status == 200, r


def rpc(sc, body, headers=None, timeout=10):
    """POST /rpc with a JSON body (dict, encoded here) and the JSON content type."""
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return sc.request("POST", "/rpc", body=json.dumps(body), headers=h, timeout=timeout)


def rpc_raw(sc, text, timeout=10):
    """POST /rpc with the JSON body `text` exactly as given."""
    return sc.request("POST", "/rpc", body=text, headers={"Content-Type": "application/json"},
                      timeout=timeout)


def rpc_form(sc, fields, timeout=10):
    body = urllib.parse.urlencode(fields)
    return sc.request("POST", "/rpc", body=body, timeout=timeout,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})


def call_node(sc, name=SVC, timeout=10):
    """One Example.Call; returns the name of the node that answered (asserting a 200)."""
    r = rpc(sc, {"service": name, "method": "Example.Call", "request": {"name": "x"}},
            timeout=timeout)
    assert r.status == 200, r
    return r.json()["node"]


# ---------------------------------------------------------------------------------------------
# /rpc input forms


def test_seed_curl_example_verbatim(sidecar, apps):
    (a,) = apps(1)
    register(sidecar, SVC, [a])
    # The seed README's command, byte for byte, except for the port.
    cmd = ("curl -sS -d 'service=go.micro.srv.example' -d 'method=Example.Call' "
           "-d 'request={\"name\": \"John\"}' " f"http://127.0.0.1:{sidecar.port}/rpc")
    out = subprocess.run(["sh", "-c", cmd + " -w '\\n%{http_code} %{content_type}'"],
                         capture_output=True, timeout=10)
    assert out.returncode == 0, out
    body, status_line = out.stdout.rsplit(b"\n", 1)
    code, ctype = status_line.decode().split(" ", 1)
    assert code == "200", out
    assert ctype.split(";")[0] == "application/json", out
    # The service's bytes, not a re-encoding of them.
    assert body == b'{"msg": "Hello John", "node": "a"}', body


def test_json_input_request_as_object_and_as_string(sidecar, apps):
    (a,) = apps(1)
    register(sidecar, SVC, [a])
    for req in ({"name": "Obj"}, '{"name": "Str"}'):
        r = rpc(sidecar, {"service": SVC, "method": "Example.Call", "request": req},
                headers={"Content-Type": "application/json; charset=utf-8"})
        assert r.status == 200, r
        expected = req["name"] if isinstance(req, dict) else "Str"
        assert r.json() == {"msg": "Hello " + expected, "node": "a"}, r
    # The request reaches the node as params[0], unchanged.
    r = rpc(sidecar, {"service": SVC, "method": "Test.Echo", "request": {"k": [1, 2, {"z": None}]}})
    assert r.status == 200, r
    got = r.json()
    assert got["method"] == "Test.Echo" and got["params"] == [{"k": [1, 2, {"z": None}]}], got
    # An absent request is {}.
    r = rpc(sidecar, {"service": SVC, "method": "Test.Echo"})
    assert r.status == 200 and r.json()["params"] == [{}], r


def test_first_content_type_and_origin_are_read_in_any_case_and_place(sidecar, apps):
    """The codec notes these fields as the head comes in: the first of each counts, its name in
    any case, wherever it stands among the others."""
    (a,) = apps(1)
    register(sidecar, SVC, [a])
    body = json.dumps({"service": SVC, "method": "Example.Call", "request": {"name": "Case"}})
    head = [("X-First", "1"), ("content-TYPE", "application/json"), ("Content-Type", "text/plain"),
            ("X-Between", "2"), ("ORIGIN", "http://a.example"), ("Origin", "http://b.example")]
    with sidecar.raw() as c:
        assert c.send(http_req("POST", "/rpc", headers=head, body=body.encode()))
        r = c.read_response()
    assert r.status == 200 and r.json() == {"msg": "Hello Case", "node": "a"}, r
    assert r.header("Access-Control-Allow-Origin") == "http://a.example", r


def test_request_reaches_the_node_byte_for_byte(sidecar, apps):
    # Big integers (jansson alone refuses them), key order and spacing are the caller's: the
    # node sees exactly the request text inside params, whichever form carried it.
    (a,) = apps(1)
    register(sidecar, SVC, [a])
    req = '{"z": 18446744073709551616,  "a" : [1.50, 12345678901234567890123], "s":"\\u00e9"}'
    body = '{"service": "%s", "method": "Test.Body", "request": %s}' % (SVC, req)
    forms = [
        rpc_raw(sidecar, body),
        rpc(sidecar, {"service": SVC, "method": "Test.Body", "request": req}),
        rpc_form(sidecar, {"service": SVC, "method": "Test.Body", "request": req}),
    ]
    for r in forms:
        assert r.status == 200, r
        sent = r.json()
        assert sent.startswith('{"method":"Test.Body","params":[' + req + '],"id":'), sent


def test_json_keys_are_case_insensitive(sidecar, apps):
    (a,) = apps(1)
    register(sidecar, SVC, [a])
    r = rpc(sidecar, {"Service": SVC, "METHOD": "Example.Call", "ReQuEsT": {"name": "Case"}})
    assert r.status == 200, r
    assert r.json() == {"msg": "Hello Case", "node": "a"}


def test_form_fields_from_the_query_string(sidecar, apps):
    (a,) = apps(1)
    register(sidecar, SVC, [a])
    q = urllib.parse.urlencode({"service": SVC, "method": "Example.Call",
                                "request": '{"name":"Query"}'})
    r = sidecar.request("POST", "/rpc?" + q)
    assert r.status == 200, r
    assert r.json() == {"msg": "Hello Query", "node": "a"}


def test_address_calls_that_node_directly(sidecar, apps):
    a, b = apps(2)
    register(sidecar, SVC, [a])  # b is not registered anywhere
    r = rpc(sidecar, {"service": SVC, "method": "Example.Call", "address": b.address,
                      "request": {"name": "Direct"}})
    assert r.status == 200, r
    assert r.json() == {"msg": "Hello Direct", "node": "b"}
    r = rpc_form(sidecar, {"service": "not.registered.at.all", "method": "Example.Call",
                           "address": b.address, "request": '{"name":"Form"}'})
    assert r.status == 200, r
    assert r.json() == {"msg": "Hello Form", "node": "b"}
    assert a.calls() == 0 and b.calls() == 2


def test_rpc_is_post_only(sidecar):
    r = sidecar.get("/rpc")
    assert_error_json(r, 405)
    assert "POST" in (r.header("Allow") or ""), r


# ---------------------------------------------------------------------------------------------
# Results


@pytest.mark.parametrize("raw", [
    '12345678901234567890123',
    '{"b":12345678901234567890123,"a":-98765432109876543210.000000000000000000001}',
    '{ "z" : 1 ,  "a":[ 1.50, 2e+10, -0, "\\u00e9\\n" ] , "m" : { } }',
    '"just a string"',
    '[true,false,null]',
])
def test_result_passes_through_byte_for_byte(sidecar, apps, raw):
    (a,) = apps(1)
    register(sidecar, SVC, [a])
    r = rpc(sidecar, {"service": SVC, "method": "Test.Raw", "request": {"raw": raw}})
    assert r.status == 200, r
    assert r.header("Content-Type").split(";")[0] == "application/json"
    assert r.body == raw.encode(), r


@pytest.mark.parametrize("method", ["Test.NoResult", "Test.NullResult"])
def test_missing_or_null_result_is_empty_object(sidecar, apps, method):
    (a,) = apps(1)
    register(sidecar, SVC, [a])
    r = rpc(sidecar, {"service": SVC, "method": method})
    assert r.status == 200, r
    assert r.body == b"{}", r


# ---------------------------------------------------------------------------------------------
# Errors


def test_bad_input_is_400(sidecar, apps):
    (a,) = apps(1)
    register(sidecar, SVC, [a])
    cases = [
        (rpc(sidecar, {"method": "Example.Call"}), "invalid service"),
        (rpc(sidecar, {"service": "", "method": "Example.Call"}), "invalid service"),
        (rpc(sidecar, {"service": SVC}), "invalid method"),
        (rpc_form(sidecar, {"method": "Example.Call"}), "invalid service"),
        (rpc_form(sidecar, {"service": SVC}), "invalid method"),
        (rpc(sidecar, {"service": SVC, "method": "Example.Call", "request": "{nope"}),
         "error decoding request string"),
        (rpc_form(sidecar, {"service": SVC, "method": "Example.Call", "request": '{"a":'}),
         "error decoding request string"),
    ]
    for r, detail in cases:
        obj = assert_error_json(r, 400, "Bad Request")
        assert obj["detail"].startswith(detail), (detail, r)
    assert a.calls() == 0


def test_unknown_service_is_404_from_the_client(sidecar):
    r = rpc(sidecar, {"service": "go.micro.srv.nobody", "method": "Example.Call"})
    obj = assert_error_json(r, 404, "Not Found", error_id="go.micro.client")
    assert "not found" in obj["detail"], obj


def test_hung_node_times_out_with_408(micro, apps):
    sc = micro("--request_timeout=1s")
    (a,) = apps(1)
    register(sc, SVC, [a])
    a.set_mode("hang")
    t0 = time.monotonic()
    r = rpc(sc, {"service": SVC, "method": "Example.Call"})
    elapsed = time.monotonic() - t0
    a.set_mode("ok")
    obj = assert_error_json(r, 408, error_id="go.micro.client")
    # What timed out and which limit: the flag and its value.
    assert obj["detail"] == f"request timeout: {SVC} did not answer within --request_timeout=1s", obj
    assert 0.8 <= elapsed < 3, elapsed
    # A timeout is not retried: the request may have reached the node.
    assert a.calls() == 1
    # The sidecar is fine afterwards, and so is the node.
    assert call_node(sc) == "a"


def test_every_node_refusing_is_502(sidecar):
    ports = [free_port() for _ in range(3)]
    register(sidecar, SVC, [node(f"dead-{i}", port=p) for i, p in enumerate(ports)])
    r = rpc(sidecar, {"service": SVC, "method": "Example.Call"})
    obj = assert_error_json(r, 502, "Bad Gateway", error_id="go.micro.client")
    # Every node tried is named (the default --retries=2: all three), then the reason.
    assert obj["detail"].startswith(f"service {SVC}: "), obj
    assert obj["detail"].endswith(": connection refused"), obj
    for p in ports:
        assert f"{HOST}:{p}" in obj["detail"], obj
    # The direct form too, with no retry elsewhere.
    r = rpc(sidecar, {"service": SVC, "method": "Example.Call", "address": f"{HOST}:{ports[0]}"})
    obj = assert_error_json(r, 502, "Bad Gateway")
    assert obj["detail"] == f"service {SVC}: {HOST}:{ports[0]}: connection refused", obj
    # Each failed call and each retry left one warn line at the default level.
    logs = sidecar.stderr()
    assert logs.count("retrying on another node") == 2, logs
    assert logs.count(f"call {SVC} Example.Call: failed: service {SVC}") == 2, logs


def test_go_micro_error_json_passes_through_with_its_code(sidecar, apps):
    (a,) = apps(1)
    register(sidecar, SVC, [a])
    err = '{"id":"go.micro.srv.example","code":403,"detail":"not yours","status":"Forbidden"}'
    r = rpc(sidecar, {"service": SVC, "method": "Test.Error", "request": {"error": err}})
    assert r.status == 403, r
    assert r.header("Content-Type").split(";")[0] == "application/json"
    assert loads_strict(r.body) == json.loads(err), r


def test_plain_error_string_is_500_error_during_request(sidecar, apps):
    (a,) = apps(1)
    register(sidecar, SVC, [a])
    r = rpc(sidecar, {"service": SVC, "method": "Test.Error", "request": {"error": "boom: it broke"}})
    obj = assert_error_json(r, 500, "Internal Server Error")
    assert obj["detail"] == "error during request: boom: it broke", obj


@pytest.mark.parametrize("body", ["this is not json", "[1,2,3]", '{"id":1,"result":', "",
                                  # JSON, but no JSON-RPC answer: a REST app's reply, or another
                                  # call's (the sidecar's first call has id 1)
                                  '{"foo":1}', '{}', '{"id":1}', '{"id":999,"result":{"a":1}}'])
def test_invalid_reply_is_502(sidecar, apps, body):
    (a,) = apps(1)
    register(sidecar, SVC, [a])
    r = rpc(sidecar, {"service": SVC, "method": "Test.Invalid", "request": {"body": body}})
    obj = assert_error_json(r, 502, "Bad Gateway")
    # The detail names the node that answered.
    assert f"from 127.0.0.1:{a.port}" in obj["detail"], obj
    # Not retried: the node answered.
    assert a.calls() == 1


@pytest.mark.parametrize("body", ['{"result":{"a":1}}', '{"id":null,"result":{"a":1}}',
                                  '{"id":1,"result":{"a":1},"error":null}'])
def test_reply_without_id_or_with_the_calls_id_is_an_answer(sidecar, apps, body):
    (a,) = apps(1)
    register(sidecar, SVC, [a])
    r = rpc(sidecar, {"service": SVC, "method": "Test.Invalid", "request": {"body": body}})
    assert r.status == 200 and r.body == b'{"a":1}', r


# ---------------------------------------------------------------------------------------------
# Load balancing and resilience (SPEC 6)


@pytest.mark.parametrize("selector", ["random", "roundrobin", "p2c"])
def test_calls_spread_over_three_nodes(micro, apps, selector):
    sc = micro(f"--selector={selector}")
    nodes = apps(3)
    register(sc, SVC, nodes)
    seq = [call_node(sc) for _ in range(60)]
    counts = {n.name: seq.count(n.name) for n in nodes}
    assert sum(counts.values()) == 60
    assert [n.calls() for n in nodes] == [counts[n.name] for n in nodes]
    if selector == "roundrobin":
        # A real rotation across calls: each window of 3 holds every node once, same order.
        assert sorted(seq[:3]) == ["a", "b", "c"], seq
        assert all(seq[i] == seq[i % 3] for i in range(60)), seq
    elif selector == "random":
        assert all(c >= 5 for c in counts.values()), counts
    else:
        # p2c: fresh nodes cost 0, so each one is tried; then latency decides.
        assert all(c >= 1 for c in counts.values()), counts


def test_p2c_steers_away_from_a_slow_node(micro, apps):
    sc = micro("--selector=p2c")
    nodes = apps(3)
    register(sc, SVC, nodes)
    nodes[2].set_mode("slow")  # 200 ms a call, the others a few ms
    seq = [call_node(sc) for _ in range(40)]
    # Uniform choice would give the slow node ~13 of 40; p2c only loses when it draws the slow
    # node twice, which it cannot (two distinct candidates), after one sample shows its cost.
    assert seq.count("c") <= 4, seq


def test_killed_node_costs_no_failed_call(micro, apps):
    sc = micro("--selector=roundrobin")
    nodes = apps(3)
    register(sc, SVC, nodes)
    seen = []
    for i in range(30):
        if i == 10:
            nodes[1].kill()  # its pooled keep-alive connection dies with it
        seen.append(call_node(sc))
    assert "b" in seen[:10] and "b" not in seen[10:], seen
    assert set(seen[10:]) == {"a", "c"}, seen
    # The registration is the registry's business, not the caller's: b is still listed.
    ids = sorted(n["id"] for n in sc.nodes(SVC))
    assert ids == ["a-node", "b-node", "c-node"], ids


def test_connect_failure_is_retried_on_another_node(micro, apps):
    # Two dead nodes and one live one: with --retries=2 every call must land on the live one.
    sc = micro("--selector=roundrobin", "--retries=2")
    (a,) = apps(1)
    register(sc, SVC, [node("dead-1", port=free_port()), a, node("dead-2", port=free_port())])
    assert [call_node(sc) for _ in range(6)] == ["a"] * 6


def test_failing_node_is_ejected_after_five_failures(micro, apps):
    sc = micro("--selector=roundrobin")
    nodes = apps(3)
    register(sc, SVC, nodes)
    nodes[2].set_mode("fail")
    statuses = []
    for _ in range(15):
        r = rpc(sc, {"service": SVC, "method": "Example.Call", "request": {"name": "x"}})
        statuses.append(r.status)
    # Round robin sends every third call to c: 5 failures (500 error during request).
    assert statuses.count(500) == 5, statuses
    assert nodes[2].calls() == 5
    # Now ejected: the next calls all succeed and c receives none of them.
    after = [call_node(sc) for _ in range(12)]
    assert set(after) == {"a", "b"}, after
    assert nodes[2].calls() == 5
    # The ejection left one warn line naming the node, the service and the span.
    logs = sc.stderr()
    line = f"node 127.0.0.1:{nodes[2].port} of {SVC} ejected for 30s after 5 consecutive failures"
    assert logs.count(line) == 1, logs


# ---------------------------------------------------------------------------------------------
# Headers to the service (SPEC 4)


def test_callers_headers_reach_the_service_minus_hop_by_hop(sidecar, apps):
    (a,) = apps(1)
    register(sidecar, SVC, [a])
    r = rpc(sidecar, {"service": SVC, "method": "Test.Headers"}, headers={
        "X-Request-Id": "rid-42",
        "Authorization": "Bearer tok",
        "Keep-Alive": "timeout=5",
        "TE": "trailers",
        "Proxy-Authorization": "Basic eA==",
        "Upgrade": "h2c",
        "X-Micro-Service": "spoofed",
    })
    assert r.status == 200, r
    headers = r.json()
    names = [k.lower() for k, _ in headers]
    got = {k.lower(): v for k, v in headers}
    assert got["x-request-id"] == "rid-42" and got["authorization"] == "Bearer tok", headers
    for hop in ("keep-alive", "te", "proxy-authorization", "upgrade", "transfer-encoding"):
        assert hop not in names, headers
    assert got["content-type"] == "application/json", headers
    assert names.count("x-micro-service") == 1 and got["x-micro-service"] == SVC, headers
    assert got["x-micro-method"] == "Test.Headers", headers


# ---------------------------------------------------------------------------------------------
# Path routing (SPEC 3.3)


@pytest.mark.parametrize("path,svc,method", [
    ("/foo/bar", "go.micro.srv.foo", "Foo.Bar"),
    ("/foo/bar/baz", "go.micro.srv.foo", "Bar.Baz"),
    ("/v1/foo/bar", "go.micro.srv.v1.foo", "Foo.Bar"),
])
def test_path_routing_maps_to_service_and_method(sidecar, apps, path, svc, method):
    (a,) = apps(1)
    register(sidecar, svc, [a])
    r = sidecar.request("POST", path, body='{"n": 12345678901234567890123}',
                        headers={"Content-Type": "application/json", "X-Trace": "t1"})
    assert r.status == 200, r
    got = r.json()
    assert got["method"] == method, got
    assert got["params"] == [{"n": 12345678901234567890123}], got
    hdrs = {k.lower(): v for k, v in got["headers"]}
    assert hdrs["x-micro-service"] == svc and hdrs["x-micro-method"] == method, got
    assert hdrs["x-trace"] == "t1", got


def test_path_routing_uses_namespace(micro, apps):
    sc = micro("--namespace=com.example.api")
    (a,) = apps(1)
    register(sc, "com.example.api.foo", [a])
    r = sc.request("POST", "/foo/bar", body="{}", headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    assert r.json()["method"] == "Foo.Bar"
    # Errors as /rpc: nothing registered under the default namespace.
    r = sc.request("POST", "/other/call", body="{}")
    assert_error_json(r, 404, error_id="go.micro.client")


def test_path_routing_errors_as_rpc(sidecar, apps):
    (a,) = apps(1)
    register(sidecar, "go.micro.srv.foo", [a])
    r = sidecar.request("POST", "/foo/bar", body="{not json")
    assert_error_json(r, 400)
    r = sidecar.request("POST", "/nobody/call", body="{}")
    assert_error_json(r, 404, error_id="go.micro.client")
    assert a.calls() == 0


# ---------------------------------------------------------------------------------------------
# Header injection toward nodes (SPEC 11): nothing with a control character reaches a node


class RecordingNode:
    """A JSON-RPC node on a raw socket that records every byte it receives, so a test sees what
    went over the wire (an HTTP library would hide a second, injected request). It answers each
    request it can frame (head + Content-Length body) with {"result":{"ok":true}}."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.received = bytearray()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        pending = b""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                with self.lock:
                    self.received += data
                pending += data
                while b"\r\n\r\n" in pending:
                    head, rest = pending.split(b"\r\n\r\n", 1)
                    n = 0
                    for line in head.split(b"\r\n")[1:]:
                        k, _, v = line.partition(b":")
                        if k.strip().lower() == b"content-length":
                            n = int(v.strip())
                    if len(rest) < n:
                        break
                    pending = rest[n:]
                    body = b'{"id":1,"result":{"ok":true},"error":null}'
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    def data(self):
        with self.lock:
            return bytes(self.received)

    def close(self):
        self.sock.close()


@pytest.fixture
def recording_node():
    n = RecordingNode()
    yield n
    n.close()


SMUGGLE = "X\r\nContent-Length: 0\r\n\r\nGET /evil"


def assert_node_saw_only_the_good_call(sc, rec):
    # A good call afterwards, on the same pooled path: once it is answered, anything an earlier
    # call had sent would have been received before it.
    r = rpc(sc, {"service": SVC, "method": "Good.Call"})
    assert r.status == 200, r
    data = rec.data()
    assert data.count(b"HTTP/1.1\r\n") == 1, data
    assert b"evil" not in data and b"X-Micro-Method: Good.Call\r\n" in data, data


def test_rpc_method_with_crlf_is_400_and_nothing_reaches_the_node(sidecar, recording_node):
    register(sidecar, SVC, [node("rec-1", port=recording_node.port)])
    r = rpc(sidecar, {"service": SVC, "method": SMUGGLE})
    obj = assert_error_json(r, 400, "Bad Request", error_id="go.micro.rpc")
    assert obj["detail"] == "invalid method: contains a control character", obj
    assert recording_node.data() == b""
    # The form input, and a control character in the other fields.
    r = rpc_form(sidecar, {"service": SVC, "method": SMUGGLE})
    assert_error_json(r, 400)
    assert r.json()["detail"] == "invalid method: contains a control character", r
    r = rpc(sidecar, {"service": SVC + "\r\nX: y", "method": "A.B"})
    assert r.json()["detail"] == "invalid service: contains a control character", r
    r = rpc(sidecar, {"service": SVC, "method": "A.B\x7f"})
    assert r.json()["detail"] == "invalid method: contains a control character", r
    r = rpc(sidecar, {"service": SVC, "method": "A.B", "address": f"{HOST}:1\n"})
    assert_error_json(r, 400)
    assert r.json()["detail"] == "invalid address: contains a control character", r
    assert recording_node.data() == b""
    # The JSON decoder tells clean names from others as it decodes them: every way a control
    # character can get into a decoded name (an escape, \u007f, a raw DEL), in a short name
    # (decoded on the stack) and in a long one (decoded on its own), is still refused.
    long_method = "A." + "b" * 200
    for field, value in [("method", "A.B\\u007f"), ("method", "A.B\\u000d"),
                         ("method", "A.B\\t"), ("service", SVC + "\\u0001"),
                         ("address", HOST + ":1\\u007F"), ("method", long_method + "\\n"),
                         ("method", long_method + "\x7f"), ("service", "s" * 300 + "\\u0000x")]:
        body = {"service": f'"{SVC}"', "method": '"A.B"'}
        body[field] = f'"{value}"'
        text = "{" + ",".join(f'"{k}":{v}' for k, v in body.items()) + "}"
        r = rpc_raw(sidecar, text)
        assert_error_json(r, 400)
        detail = r.json()["detail"]
        assert detail in (f"invalid {field}: contains a control character",
                          f"invalid {field}: contains a NUL"), (text, detail)
    assert recording_node.data() == b""
    assert_node_saw_only_the_good_call(sidecar, recording_node)


# ---------------------------------------------------------------------------------------------
# Statuses a node names, NULs in its error string


@pytest.mark.parametrize("code,status", [
    (101, 500), (100, 500), (204, 500), (205, 500), (304, 500), (99, 500), (600, 500), (0, 500),
    (200, 200), (302, 302), (418, 418), (599, 599),
])
def test_error_code_becomes_a_framable_status(sidecar, apps, code, status):
    """A node's error code 101/204/304 once became that status line with a body after it: the
    next response on the connection was misparsed. Now every answer is a well-framed one."""
    (a,) = apps(1)
    register(sidecar, SVC, [a])
    err = json.dumps({"id": "go.micro.srv.example", "code": code, "detail": "d", "status": "s"})
    body = json.dumps({"service": SVC, "method": "Test.Error", "request": {"error": err}})
    with sidecar.raw() as c:
        req = (f"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n{body}").encode()
        # Two on one connection: the second answer must parse after the first.
        c.send(req + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response("POST")
        assert r.status == status, r
        assert json.loads(r.body) == json.loads(err), r
        r2 = c.read_response()
        assert r2.status == 200, r2


def test_error_string_with_nul_is_carried_whole(sidecar, apps):
    """ "boom\u0000hidden" once became "boom": the error string is carried with its length."""
    (a,) = apps(1)
    register(sidecar, SVC, [a])
    r = rpc(sidecar, {"service": SVC, "method": "Test.Error", "request": {"error": "boom\u0000hidden"}})
    obj = assert_error_json(r, 500, "Internal Server Error")
    assert obj["detail"] == "error during request: boom\u0000hidden", obj
    assert b"boom\\u0000hidden" in r.body, r


@pytest.mark.parametrize("ctype", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_json_body_without_json_content_type_says_so(sidecar, ctype):
    headers = {"Content-Type": ctype} if ctype else {}
    r = sidecar.request("POST", "/rpc", body=b' {"service":"x","method":"A.B"}', headers=headers)
    obj = assert_error_json(r, 400, "Bad Request", error_id="go.micro.rpc")
    assert obj["detail"].startswith("invalid service: the body looks like JSON"), obj
    assert "send Content-Type: application/json" in obj["detail"], obj
    assert (f'"{ctype}"' if ctype else "missing") in obj["detail"], obj


def test_access_log_names_the_node_called(micro, apps):
    """/rpc reports the node it used through the request: the access-log line ends with
    upstream=<that node> (and upstream=- when no node was tried)."""
    sc = micro("--access_log=-")
    (a,) = apps(1)
    register(sc, SVC, [a])
    assert rpc(sc, {"service": SVC, "method": "Test.Echo", "request": {}}).status == 200
    assert rpc(sc, {"service": "go.micro.srv.none", "method": "X.Y"}).status == 404
    node = f"upstream={a.node()['address']}:{a.node()['port']} duration="

    def lines():
        return [ln for ln in sc.stderr().splitlines() if '"POST /rpc HTTP/1.1"' in ln]
    got = wait_until(lambda: len(lines()) >= 2 and lines(), 5, message="two /rpc log lines")
    assert node in got[0], got
    assert " 404 " in got[1] and "upstream=- duration=" in got[1], got
