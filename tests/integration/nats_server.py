"""A real nats-server for the tests (Debian's `nats-server`), on a free loopback port.

start() launches `nats-server -a 127.0.0.1 -p PORT` and waits (bounded) until it accepts;
stop() ends it by pid (SIGTERM, then SIGKILL); restart() starts it again on the same port, so
clients reconnect to the address they were given."""

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

import harness
import urllib.request

BIN = shutil.which("nats-server") or "/usr/bin/nats-server"


def available():
    return Path(BIN).exists()


class NatsServer:
    def __init__(self, tmp_dir, port=None):
        self.port = port or harness.free_port()
        self.monitor_port = harness.free_port()  # /subsz, to know when a SUB has landed
        self.tmp_dir = Path(tmp_dir)
        self.proc = None
        self.runs = 0

    @property
    def url(self):
        return f"nats://{harness.HOST}:{self.port}"

    def log_path(self, run):
        return self.tmp_dir / f"nats-server-{self.port}-{run}.log"

    def start(self, timeout=10):
        assert self.proc is None, "nats-server already running"
        self.runs += 1
        log = open(self.log_path(self.runs), "wb")
        self.proc = subprocess.Popen([BIN, "-a", harness.HOST, "-p", str(self.port),
                                      "-m", str(self.monitor_port)],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while not harness.can_connect(self.port, timeout=0.5):
            if self.proc.poll() is not None:
                raise AssertionError(f"nats-server exited with {self.proc.returncode}:\n{self.logs()}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"nats-server not accepting on {self.port} after {timeout}s")
            time.sleep(0.05)
        # The server's own (system account) subscriptions, before any client makes one.
        harness.wait_until(self._monitor_up, timeout, message="nats-server monitor")
        self.baseline = self._subsz()
        return self

    def _monitor_up(self):
        try:
            self._subsz()
            return True
        except OSError:
            return False

    def stop(self, timeout=5):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        # Wait (bounded) until the port is free again, so a restart can bind it.
        deadline = time.monotonic() + timeout
        while harness.can_connect(self.port, timeout=0.2) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _subsz(self):
        url = f"http://{harness.HOST}:{self.monitor_port}/subsz"
        with urllib.request.urlopen(url, timeout=2) as r:
            return json.load(r)["num_subscriptions"]

    def subscriptions(self):
        """The number of client subscriptions the server holds now (its /subsz monitor,
        less the server's own)."""
        return self._subsz() - self.baseline

    def wait_subscriptions(self, n, timeout=10):
        """Waits (bounded) until the server holds exactly n client subscriptions."""
        harness.wait_until(lambda: self.subscriptions() == n, timeout,
                           message=f"nats-server to hold {n} subscriptions")

    def restart(self):
        self.stop()
        return self.start()

    def logs(self):
        return "\n".join(self.log_path(i).read_text(errors="replace")
                         for i in range(1, self.runs + 1) if self.log_path(i).exists())


@pytest.fixture
def nats(tmp_path):
    """A started NatsServer, stopped after the test."""
    if not available():
        pytest.skip("nats-server is not installed (scripts/install-deps.sh installs it)")
    server = NatsServer(tmp_path).start()
    yield server
    server.stop()
