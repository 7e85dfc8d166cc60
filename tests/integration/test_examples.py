"""The README's quick start, as a new user runs it: the example services of examples/ (Python
and Node.js JSON-RPC, a Node.js HTTP app) behind the real sidecar."""

import json
import subprocess
from pathlib import Path

import pytest

from harness import HOST, can_connect, free_port, wait_until

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


def test_quick_start_http_app_behind_the_proxy(micro, example):
    port = example("node", "webapp.js")
    sc = micro("--handler=proxy", "--server_name=go.micro.srv.webapp",
               f"--server_address=127.0.0.1:{port}")
    wait_until(lambda: sc.nodes("go.micro.srv.webapp"), 10, message="webapp registered")
    r = sc.get("/webapp/hello?x=1")
    assert r.status == 200, r
    assert r.json() == {"path": "/webapp/hello?x=1", "forwardedFor": HOST}, r
