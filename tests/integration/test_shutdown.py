"""SPEC 9 and the access log: SIGTERM/SIGINT deregister, drain and exit 0; a second signal
exits at once; --access_log writes combined-log-format lines."""

import http.client
import re
import signal
import threading
import time

import pytest

import harness
from harness import wait_until

# Combined log format: host ident user [time] "request" status bytes "referer" "user-agent".
CLF_TIME = r"\[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\]"


def clf(method, path, status, referer="-", agent=r'[^"]*', upstream="-"):
    """The combined log format, then the node that answered and the time taken."""
    return re.compile(r"^127\.0\.0\.1 \S+ \S+ " + CLF_TIME + r' "' + method + " " + re.escape(path)
                      + r' HTTP/1\.[01]" ' + str(status) + r' (\d+|-) "' + referer + r'" "' + agent
                      + r'" upstream=' + upstream + r" duration=\d+ms$")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_deregisters_and_exits_0(micro, sig):
    sc = micro("--server_name=foo", "--server_address=127.0.0.1:9090")
    node_id = wait_until(lambda: sc.nodes("foo"), 5, message="foo registered")[0]["id"]
    sc.signal(sig)
    assert sc.wait_exit(10) == 0, sc.logs()
    log = sc.stderr()
    lines = [ln for ln in log.splitlines() if re.search(r"(?i)deregist", ln)]
    assert any(node_id in ln or "foo" in ln for ln in lines), f"no deregistration of {node_id} logged:\n{log}"


def test_sighup_is_logged_and_ignored(micro):
    """SIGHUP is not a shutdown (its default action would kill the sidecar without draining
    or deregistering): it is logged, the sidecar keeps serving with its registration, and a
    later SIGTERM still shuts down cleanly."""
    sc = micro("--server_name=foo", "--server_address=127.0.0.1:9090")
    node_id = wait_until(lambda: sc.nodes("foo"), 5, message="foo registered")[0]["id"]
    sc.signal(signal.SIGHUP)
    sc.wait_stderr(r"SIGHUP received: nothing to reload \(TLS is off\)")
    assert sc.alive(), sc.logs()
    assert sc.get("/health").status == 200
    assert [n["id"] for n in sc.nodes("foo")] == [node_id]
    sc.signal(signal.SIGTERM)
    assert sc.wait_exit(10) == 0, sc.logs()
    lines = [ln for ln in sc.stderr().splitlines() if re.search(r"(?i)deregist", ln)]
    assert any(node_id in ln or "foo" in ln for ln in lines), sc.logs()


def _hanging_health(micro, health_app, hang, *flags):
    """A sidecar whose /health proxies to an app that hangs `hang` seconds, and a thread
    with a /health request in flight (the app has received it). Returns (sc, result, thread)."""
    sc = micro(f"--healthcheck_url={health_app.url}", "--healthcheck_interval=1m",
               "--healthcheck_timeout=30s", "--server_name=foo", f"--server_address={health_app.address}",
               *flags)
    health_app.wait_hits(1, 5)  # the checker's first check, before the app starts hanging
    h = health_app.set(hang=hang)
    result = {}

    def call():
        try:
            result["resp"] = sc.get("/health", timeout=30)
        except Exception as e:  # reported by the test
            result["error"] = e

    t = threading.Thread(target=call, daemon=True)
    t.start()
    health_app.wait_hits(h + 1, 5)
    return sc, result, t


@pytest.mark.timeout_s(40)
def test_request_in_flight_completes(micro, health_app):
    sc, result, t = _hanging_health(micro, health_app, 2)
    t0 = time.monotonic()
    sc.signal(signal.SIGTERM)
    time.sleep(0.3)
    # Stopped accepting: a new connection is refused, or closed without a 200.
    try:
        late = harness.request(sc.port, "GET", "/registry", timeout=2).status
    except (OSError, http.client.HTTPException):
        late = None
    assert late != 200, "still serving new requests after SIGTERM"
    t.join(10)
    assert "resp" in result, f"request in flight failed: {result.get('error')!r}\n{sc.logs()}"
    assert result["resp"].status == 200, result["resp"]
    assert sc.wait_exit(10) == 0
    assert time.monotonic() - t0 >= 1.0, "exited before the request in flight finished"


@pytest.mark.timeout_s(40)
def test_drain_timeout_bounds_shutdown(micro, health_app):
    sc, result, t = _hanging_health(micro, health_app, 20, "--drain_timeout=1s")
    t0 = time.monotonic()
    sc.signal(signal.SIGTERM)
    assert sc.wait_exit(6) == 0
    assert time.monotonic() - t0 < 5


@pytest.mark.timeout_s(40)
def test_second_signal_exits_at_once(micro, health_app):
    sc, result, t = _hanging_health(micro, health_app, 20, "--drain_timeout=30s")
    sc.expect_exit = None  # a forced exit's status is not specified
    sc.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert sc.alive(), "exited at once on the first signal while a request was in flight"
    t0 = time.monotonic()
    sc.signal(signal.SIGINT)
    sc.wait_exit(3)
    assert time.monotonic() - t0 < 2.5


def test_access_log_stderr(micro):
    sc = micro("--access_log=-")
    assert sc.get("/registry").status == 200
    assert sc.get("/nosuchpath").status == 404
    assert sc.request("GET", "/health", headers={"Referer": "http://ref.example/x",
                                                 "User-Agent": "itest/1.0"}).status == 200
    svc = harness.service("logged.svc", [harness.node("l-1")])
    assert sc.register(svc).status == 200
    expected = [clf("GET", "/registry", 200), clf("GET", "/nosuchpath", 404),
                clf("GET", "/health", 200, re.escape("http://ref.example/x"), re.escape("itest/1.0")),
                clf("POST", "/registry", 200)]

    def counts():
        lines = sc.stderr().splitlines()
        return [sum(1 for ln in lines if rx.match(ln)) for rx in expected]

    wait_until(lambda: counts() == [1, 1, 1, 1], 5, message="one access-log line per request")


def test_access_log_file(micro, tmp_path):
    path = tmp_path / "access.log"
    sc = micro(f"--access_log={path}")
    assert sc.get("/registry?service=go.micro.sidecar").status == 200
    assert sc.request("DELETE", "/registry", body=b'{"name":').status == 400

    def lines():
        return path.read_text().splitlines() if path.exists() else []

    wait_until(lambda: len(lines()) >= 2, 5, message="two lines in the access log file")
    got = lines()
    assert len(got) == 2, got
    assert clf("GET", "/registry?service=go.micro.sidecar", 200).match(got[0]), got
    assert clf("DELETE", "/registry", 400).match(got[1]), got
    assert not any(clf("GET", "/registry?service=go.micro.sidecar", 200).match(ln)
                   for ln in sc.stderr().splitlines()), "access log also went to stderr"


def test_access_log_names_the_upstream_node(micro, tmp_path):
    """A proxied request's line ends with the node that answered it and the time taken; the
    sidecar's own answers say upstream=-."""
    app = harness.AppProcess(tmp_path, "http_app.py", "a")
    try:
        sc = micro("--handler=proxy", "--access_log=-")
        n = app.node()
        assert sc.register(harness.service("go.micro.srv.foo", [n])).status == 200
        assert sc.get("/foo/x?y=1").status == 200
        assert sc.get("/nosuchservice/x").status in (404, 502, 503)
        node = re.escape(f"{n['address']}:{n['port']}")
        proxied = clf("GET", "/foo/x?y=1", 200, upstream=node)
        wait_until(lambda: any(proxied.match(ln) for ln in sc.stderr().splitlines()), 5,
                   message="the proxied request's access-log line with upstream=" + node)
        own = clf("POST", "/registry", 200)
        assert any(own.match(ln) for ln in sc.stderr().splitlines()), sc.stderr()
    finally:
        app.stop()
