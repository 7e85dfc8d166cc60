"""SPEC 5 and 3.5: registering the app, renewal, /health proxying, the health checker's
rise/fall, and the Debug.Health JSON-RPC answer."""

import http.server
import re
import threading
import time

import pytest

from harness import HOST, UUID4_RE, free_port, wait_until


def app_nodes(sc, name="foo"):
    return sc.nodes(name)


def app_flags(app):
    # With an app to register, SPEC 5 guarantees a health check at start: tests wait for it
    # so that no periodic check (interval 1m) interferes with the counted /health proxying.
    return ("--server_name=foo", f"--server_address={app.address}")


def test_app_registered_with_name_version_metadata(micro, health_app):
    sc = micro("--server_name=foo", f"--server_address={health_app.address}",
               "--server_version=1.2.3", "--server_metadata=k1=v1,k2=v2")
    wait_until(lambda: app_nodes(sc), 5, message="foo registered")
    svcs = sc.lookup("foo").json()
    assert len(svcs) == 1, svcs
    assert svcs[0]["name"] == "foo" and svcs[0]["version"] == "1.2.3"
    nodes = svcs[0]["nodes"]
    assert len(nodes) == 1, nodes
    n = nodes[0]
    assert re.fullmatch("foo-" + UUID4_RE, n["id"]), n
    assert n["address"] == "127.0.0.1" and n["port"] == health_app.port, n
    assert n["metadata"] is not None and {"k1": "v1", "k2": "v2"}.items() <= n["metadata"].items(), n


def test_two_sidecars_get_distinct_node_ids(micro, health_app):
    a = micro("--server_name=foo", f"--server_address={health_app.address}")
    b = micro("--server_name=foo", f"--server_address={health_app.address}")
    ida = wait_until(lambda: app_nodes(a), 5)[0]["id"]
    idb = wait_until(lambda: app_nodes(b), 5)[0]["id"]
    assert ida != idb


def test_server_advertise(micro):
    sc = micro("--server_name=foo", "--server_address=127.0.0.1:9090", "--server_advertise=10.1.2.3:7000")
    nodes = wait_until(lambda: app_nodes(sc), 5, message="foo registered")
    assert (nodes[0]["address"], nodes[0]["port"]) == ("10.1.2.3", 7000), nodes


def test_server_advertise_wildcard_host_is_replaced(micro):
    sc = micro("--server_name=foo", "--server_address=127.0.0.1:9090", "--server_advertise=0.0.0.0:7000")
    nodes = wait_until(lambda: app_nodes(sc), 5, message="foo registered")
    addr = nodes[0]["address"]
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", addr) and addr != "0.0.0.0", nodes
    assert nodes[0]["port"] == 7000


@pytest.mark.timeout_s(30)
def test_registration_renewed_past_ttl(micro):
    sc = micro("--server_name=foo", "--server_address=127.0.0.1:9090", "--register_ttl=2s",
               "--register_interval=1s")
    first = wait_until(lambda: app_nodes(sc), 5, message="foo registered")[0]["id"]
    t0 = time.monotonic()
    while time.monotonic() - t0 < 4.5:
        nodes = app_nodes(sc)
        assert [n["id"] for n in nodes] == [first], f"app node lost after {time.monotonic() - t0:.1f}s"
        assert sc.nodes("go.micro.sidecar"), f"sidecar node lost after {time.monotonic() - t0:.1f}s"
        time.sleep(0.25)


# ---------------------------------------------------------------------------------------------
# /health


def test_health_without_url_is_200_empty(sidecar):
    r = sidecar.get("/health")
    assert r.status == 200 and r.body == b"", r


def test_health_proxies_app(micro, health_app):
    sc = micro(f"--healthcheck_url={health_app.url}", "--healthcheck_interval=1m", *app_flags(health_app))
    health_app.wait_hits(1, 5)  # the checker's first check, at start
    before = health_app.hits()
    r = sc.get("/health")
    assert r.status == 200 and r.body == b"", r
    assert health_app.hits() > before, "/health did not ask the app"

    for status in (500, 503):
        health_app.set(status=status)
        r = sc.get("/health")
        assert r.status == status, r
        assert r.text == f"Non 200 response: {status}", r
        assert r.header("Content-Type", "").split(";")[0] == "text/plain", r

    health_app.set(status=200)
    assert sc.get("/health").status == 200


def test_health_app_down_500_with_reason(micro):
    dead = free_port()
    sc = micro(f"--healthcheck_url=http://127.0.0.1:{dead}/_status/health")
    r = sc.get("/health")
    assert r.status == 500, r
    assert r.text.strip(), "no reason given"
    assert r.header("Content-Type", "").split(";")[0] == "text/plain", r


def test_health_app_hangs_500_within_timeout(micro, health_app):
    sc = micro(f"--healthcheck_url={health_app.url}", "--healthcheck_timeout=1s", "--healthcheck_interval=1m",
               *app_flags(health_app))
    health_app.wait_hits(1, 5)
    health_app.set(hang=5)
    t0 = time.monotonic()
    r = sc.get("/health", timeout=10)
    elapsed = time.monotonic() - t0
    assert r.status == 500, r
    assert r.text.strip(), "no reason given"
    assert 0.8 <= elapsed <= 3.0, f"answered after {elapsed:.1f}s with a 1s timeout"
    # And the sidecar is not stuck behind the hanging app.
    health_app.set(hang=0)
    assert sc.get("/health").status == 200


def test_health_app_not_registered_before_passing(micro, health_app):
    health_app.set(status=500)
    sc = micro("--server_name=foo", f"--server_address={health_app.address}",
               f"--healthcheck_url={health_app.url}", "--healthcheck_interval=1s")
    health_app.wait_hits(2, 5)
    time.sleep(0.3)
    assert sc.lookup("foo").status == 404, "registered before the app ever passed"


@pytest.mark.timeout_s(60)
def test_rise_and_fall(micro, health_app):
    health_app.set(status=500)
    sc = micro("--server_name=foo", f"--server_address={health_app.address}",
               f"--healthcheck_url={health_app.url}", "--healthcheck_interval=1s",
               "--healthcheck_rise=2", "--healthcheck_fall=3")
    health_app.wait_hits(1, 5)
    time.sleep(0.3)
    assert app_nodes(sc) == [], "registered before the app first passed"

    def log_changes():
        return len(re.findall(r"(?im)^.*(health|regist).*$", sc.stderr()))

    # First pass: registered (allow the rise count before it, no more).
    h = health_app.set(status=200)
    health_app.wait_hits(h + 1, 5)
    wait_until(lambda: app_nodes(sc), 2.5, message="registration after the app first passed")
    logged = log_changes()

    # Failing: still registered after 1 and after 2 failures, gone after the 3rd.
    h = health_app.set(status=500)
    for k in (1, 2):
        health_app.wait_hits(h + k, 5)
        time.sleep(0.3)
        assert app_nodes(sc), f"deregistered after {k} failure(s) with --healthcheck_fall=3"
    health_app.wait_hits(h + 3, 5)
    wait_until(lambda: app_nodes(sc) == [], 2, message="deregistration after 3 failures")
    wait_until(lambda: log_changes() > logged, 3, message="the fall logged")
    logged = log_changes()

    # Passing again: not back after 1 success, back after 2.
    h = health_app.set(status=200)
    health_app.wait_hits(h + 1, 5)
    time.sleep(0.3)
    assert app_nodes(sc) == [], "registered again after 1 success with --healthcheck_rise=2"
    health_app.wait_hits(h + 2, 5)
    nodes = wait_until(lambda: app_nodes(sc), 2, message="registration after 2 successes")
    assert nodes[0]["port"] == health_app.port
    wait_until(lambda: log_changes() > logged, 3, message="the rise logged")


def test_debug_health_jsonrpc(sidecar):
    r = sidecar.request("POST", "/", body=b'{"method":"Debug.Health","params":[{}],"id":1}',
                        headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    assert r.header("Content-Type", "").split(";")[0] == "application/json", r
    obj = r.json()
    assert obj.get("result") == {"status": "ok"}, obj
    assert obj.get("error") is None, obj
    assert obj.get("id") == 1, obj


@pytest.mark.timeout_s(40)
def test_app_not_listening_yet_is_checked_again_sooner_than_the_interval(micro):
    """An app that starts after its sidecar is registered within a few hundred milliseconds of
    listening, not one --healthcheck_interval later, and the wait is logged once."""
    port = free_port()
    sc = micro("--server_name=late", f"--server_address=127.0.0.1:{port}",
               f"--healthcheck_url=http://127.0.0.1:{port}/_status/health",
               "--healthcheck_interval=60s")
    time.sleep(1.5)  # several early retries fail: nothing listens yet
    server = http.server.HTTPServer((HOST, port), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # The interval is 60 s: anything under 15 s can only come from the start-up retries
        # (250 ms doubling, so at most a few seconds after the app listens).
        wait_until(lambda: sc.nodes("late"), 15, message="late app registered")
    finally:
        server.shutdown()
        server.server_close()
    logs = sc.logs()
    assert logs.count("waiting for the app at") == 1, logs
    assert "health check http" not in logs, logs  # no warning per early retry


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass
