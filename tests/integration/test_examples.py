"""The README's quick start, as a new user runs it: the example services of examples/ (Python
and Node.js JSON-RPC, a Node.js HTTP app) behind the real sidecar."""

import json
import subprocess
from pathlib import Path

import pytest

from harness import HOST, assert_error_json, can_connect, free_port, run_micro, wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def example(tmp_path):
    """Factory: example(argv0, script) starts examples/<script> on a free port and returns it."""
    procs = []

    def start(interpreter, script):
        port = free_port()
        log = open(tmp_path / f"{script}.log", "wb")
        procs.append((subprocess.Popen([interpreter, str(EXAMPLES / script), str(port)],
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=log), log))
        wait_until(lambda: can_connect(port), 10, message=f"{script} listening")
        return port

    yield start
    for proc, log in procs:
        proc.terminate()
        proc.wait(timeout=5)
        log.close()


def call(sc, name):
    r = sc.request("POST", "/rpc", body=json.dumps(
        {"service": "go.micro.srv.greeter", "method": "Greeter.Hello", "request": {"name": name}}),
        headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    return r.json()["msg"]


def test_quick_start_python_and_node_greeters(micro, example):
    py = example("/usr/bin/python3", "greeter.py")
    js = example("node", "greeter.js")
    # roundrobin: the default p2c may rightly keep choosing the faster of two idle nodes.
    sc = micro("--selector=roundrobin", "--server_name=go.micro.srv.greeter",
               f"--server_address=127.0.0.1:{py}",
               f"--healthcheck_url=http://127.0.0.1:{py}/health")
    wait_until(lambda: sc.nodes("go.micro.srv.greeter"), 10, message="greeter registered")
    assert call(sc, "John") == "Hello John"
    r = sc.request("POST", "/greeter/hello", body=b'{"name":"Ann"}')
    assert r.status == 200 and r.json() == {"msg": "Hello Ann"}, r

    r = sc.register({"name": "go.micro.srv.greeter",
                     "nodes": [{"id": "greeter-js-1", "address": "127.0.0.1", "port": js}]})
    assert r.status == 200, r
    seen = {call(sc, "John") for _ in range(4)}
    assert seen == {"Hello John", "Hello John from node"}, seen
    # Both answer Debug.Health, so `micro health` reports each node ok.
    res = run_micro(["health", "go.micro.srv.greeter", f"--proxy_address=127.0.0.1:{sc.port}"])
    assert res.rc == 0, res
    rows = sorted(line.split()[1:] for line in res.stdout.splitlines())
    assert rows == sorted([[f"127.0.0.1:{py}", "ok"], [f"127.0.0.1:{js}", "ok"]]), res


def test_quick_start_http_app_behind_the_proxy(micro, example):
    port = example("node", "webapp.js")
    sc = micro("--handler=proxy", "--server_name=go.micro.srv.webapp",
               f"--server_address=127.0.0.1:{port}")
    wait_until(lambda: sc.nodes("go.micro.srv.webapp"), 10, message="webapp registered")
    r = sc.get("/webapp/hello?x=1")
    assert r.status == 200, r
    assert r.json() == {"path": "/webapp/hello?x=1", "forwardedFor": HOST}, r


def test_one_sidecar_both_kinds_of_app_with_handler_auto(micro, example):
    rpc_port = example("/usr/bin/python3", "greeter.py")
    web_port = example("node", "webapp.js")
    sc = micro("--handler=auto", "--max_body_size=200")
    assert sc.register({"name": "go.micro.srv.greeter", "nodes": [
        {"id": "g1", "address": "127.0.0.1", "port": rpc_port}]}).status == 200
    assert sc.register({"name": "go.micro.srv.webapp", "nodes": [
        {"id": "w1", "address": "127.0.0.1", "port": web_port,
         "metadata": {"protocol": "http"}}]}).status == 200
    # protocol=http: proxied, path and query unchanged
    r = sc.get("/webapp/any/path?q=1")
    assert r.status == 200 and r.json()["path"] == "/webapp/any/path?q=1", r
    # anything else: the JSON-RPC path call, with its body
    r = sc.request("POST", "/greeter/hello", body=b'{"name":"Auto"}')
    assert r.status == 200 and r.json() == {"msg": "Hello Auto"}, r
    # the path call's body is bounded as a buffered route's is
    r = sc.request("POST", "/greeter/hello", body=b'{"name":"' + b"x" * 300 + b'"}')
    obj = assert_error_json(r, 413)
    assert obj["detail"] == "request body over --max_body_size=200B", obj
    # an unknown service is the path call's 404
    assert sc.request("POST", "/nosuch/call", body=b"{}").status == 404
