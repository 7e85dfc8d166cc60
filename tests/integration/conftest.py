"""Fixtures for the integration suite: the real `micro` binary ($MICRO_BIN, default
build/micro) on a free loopback port, and a controllable app for health checks.

`make test` runs this suite twice, the second time against the sanitizer build, so every
sidecar a test starts is checked on teardown for a clean exit and a clean stderr.
"""

import os
import signal

import pytest

import harness

DEFAULT_TEST_TIMEOUT = 90


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout_s(n): fail the test if it runs longer than n seconds")
    config.addinivalue_line(
        "markers", "long_wait: waits out a fixed bound of 10 s or more, with little CPU (make test runs "
        "these in the background, beside memcheck and the fuzz smoke)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Kept on the item so fixture teardowns know whether to print the sidecar's logs.
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


class TestTimeout(Exception):
    pass


@pytest.fixture(autouse=True)
def _bounded(request):
    """No test may hang the CI: SIGALRM fails it after its timeout_s (default 90 s)."""
    marker = request.node.get_closest_marker("timeout_s")
    limit = marker.args[0] if marker else DEFAULT_TEST_TIMEOUT

    def on_alarm(signum, frame):
        raise TestTimeout(f"test exceeded {limit}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session", autouse=True)
def _binary_exists():
    path = harness.micro_bin()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.exit(f"micro binary not found at {path} (build it with make, or set MICRO_BIN)", returncode=3)


@pytest.fixture
def micro(tmp_path, request):
    """Factory: micro(*flags, pre=(), env=None, port=None, address=True, expect_exit=0,
    wait=True) starts `micro [pre] sidecar --sidecar_address=127.0.0.1:<port> [flags]` and
    returns a harness.Sidecar once it accepts connections (10 s bound).

    Teardown sends SIGTERM to any sidecar still running, waits (bounded), and fails the test
    if it exited with another status than expect_exit (None: not checked), hung, or printed a
    sanitizer report. On failure the sidecars' logs are printed."""
    started = []

    def start(*flags, **kw):
        sc = harness.start_sidecar(tmp_path, flags=flags, **kw)
        started.append(sc)
        return sc

    yield start

    problems = []
    for sc in started:
        problems.extend(harness.finish_sidecar(sc))
    failed = getattr(request.node, "rep_call", None)
    if problems or (failed is not None and failed.failed):
        for sc in started:
            print(sc.logs())
    if problems:
        pytest.fail("; ".join(problems))


@pytest.fixture
def sidecar(micro):
    """One sidecar with the default flags."""
    return micro()


@pytest.fixture
def health_app(tmp_path, request):
    """A running apps/health_app.py (harness.HealthApp)."""
    app = harness.HealthApp(tmp_path)
    yield app
    app.stop()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print("--- health_app log:\n" + app.log_path.read_text(errors="replace"))


@pytest.fixture
def app(tmp_path, request):
    """A running apps/http_app.py node "a" (the plain HTTP app behind --handler=proxy); its
    log is printed when the test failed."""
    a = harness.AppProcess(tmp_path, "http_app.py", "a")
    yield a
    a.stop()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print("--- http_app log:\n" + a.log_path.read_text(errors="replace"))
