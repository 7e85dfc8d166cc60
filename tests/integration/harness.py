"""Helpers for driving the real `micro` binary on loopback (imported by conftest and tests).

Everything here is bounded: every wait has a timeout, and nothing talks to anything but
127.0.0.1. The sidecar under test is a `Sidecar`; `conftest.py` owns starting and stopping.
"""

import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
APPS = Path(__file__).resolve().parent / "apps"

# What ASan, LSan and UBSan print when they find something; any of these fails the test.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

# The exact CORS values SPEC section 2 asks for.
CORS_METHODS = "POST, GET, OPTIONS, PUT, DELETE"
CORS_HEADERS = "Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token, Authorization"

UUID4_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def micro_bin():
    """The binary under test: $MICRO_BIN, else <repo>/build/micro."""
    return os.environ.get("MICRO_BIN") or str(REPO / "build" / "micro")


def child_env(extra=None):
    """The environment for a child `micro`: ours without any MICRO_* (so a developer's shell
    cannot change what a test means), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICRO_")}
    env.update(extra or {})
    return env


def sanitizer_reports(text):
    """The lines of `text` that carry a sanitizer report (empty list when clean)."""
    return [ln for ln in text.splitlines() if any(m in ln for m in SANITIZER_MARKERS)]


def free_port():
    """A port nobody listens on right now (the usual small race is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, interval=0.1, message="condition"):
    """Polls `predicate` until it returns a truthy value (returned) or `timeout` seconds pass
    (AssertionError naming `message` and the last value)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {last!r})")
        time.sleep(interval)


def can_connect(port, timeout=0.5):
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


class RunResult:
    def __init__(self, rc, stdout, stderr):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self):
        return f"RunResult(rc={self.rc}, stdout={self.stdout!r}, stderr={self.stderr!r})"


def run_micro(args, env=None, timeout=10):
    """Runs `micro ARGS` to completion (bounded) and returns a RunResult; a process still
    running after `timeout` is killed and fails the test, as does any sanitizer report."""
    proc = subprocess.Popen(
        [micro_bin(), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(env),
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=5)
        raise AssertionError(
            f"micro {' '.join(args)} still running after {timeout}s\n"
            f"stdout:\n{out.decode(errors='replace')}\nstderr:\n{err.decode(errors='replace')}"
        )
    res = RunResult(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))
    reports = sanitizer_reports(res.stderr)
    assert not reports, f"sanitizer report from micro {' '.join(args)}:\n{res.stderr}"
    return res


# ---------------------------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) as received
        self.body = body

    def header(self, name, default=None):
        """The first header called `name` (case-insensitive)."""
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def header_names(self):
        return [k.lower() for k, _ in self.headers]

    @property
    def text(self):
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        return loads_strict(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.headers!r} {self.body[:500]!r}>"


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"duplicate JSON keys: {keys}"
    return dict(pairs)


def loads_strict(data):
    """json.loads that keeps key order (dicts do) and refuses duplicate keys."""
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    return json.loads(data, object_pairs_hook=_no_duplicates)


def assert_json_exact(actual, expected):
    """Equal values AND equal key order at every level."""
    assert actual == expected
    assert json.dumps(actual) == json.dumps(expected), "same values, different key order"


def request(port, method, path, body=None, headers=None, timeout=10):
    """One request on a fresh connection with http.client; returns a Response."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, r.reason, r.getheaders(), data)
    finally:
        conn.close()


def assert_error_json(resp, code, reason=None, error_id=None):
    """`resp` is a sidecar error in go-micro's shape (SPEC 2): JSON content type, keys id,
    code, detail, status in that order, code equal to the HTTP status."""
    assert resp.status == code, resp
    ctype = resp.header("Content-Type", "")
    assert ctype.split(";")[0].strip().lower() == "application/json", resp
    obj = resp.json()
    assert isinstance(obj, dict), resp
    assert list(obj.keys()) == ["id", "code", "detail", "status"], resp
    assert obj["code"] == code, resp
    assert isinstance(obj["id"], str) and obj["id"].startswith("go.micro."), resp
    assert isinstance(obj["detail"], str) and obj["detail"], resp
    if reason is not None:
        assert obj["status"] == reason, resp
    if error_id is not None:
        assert obj["id"] == error_id, resp
    return obj


class RawConn:
    """A raw client socket with an HTTP/1.x response reader, for what http.client cannot do
    (pipelining, malformed requests, slow heads, watching for the server's close)."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = b""
        self.timeout = timeout

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        """Sends all of `data`; returns False when the server already closed or reset (what a
        server does after answering a bad request it stopped reading)."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no complete response within {self.timeout}s; have {self.buf[:300]!r}")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise AssertionError(f"no complete response within {self.timeout}s; have {self.buf[:300]!r}")
        except ConnectionResetError:
            chunk = b""
            if not self.buf:
                raise AssertionError("connection reset before any response byte arrived")
        if not chunk:
            return False
        self.buf += chunk
        return True

    def _take_line(self, deadline):
        while b"\r\n" not in self.buf:
            if not self._fill(deadline):
                raise AssertionError(f"connection closed mid-response; have {self.buf[:300]!r}")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise AssertionError(f"connection closed mid-body; have {self.buf[:300]!r}")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, method="GET"):
        """Reads one response (Content-Length, chunked or close-delimited body)."""
        deadline = time.monotonic() + self.timeout
        while not self.buf:
            if not self._fill(deadline):
                raise AssertionError("connection closed before a response")
        status_line = self._take_line(deadline).decode("latin-1")
        m = re.match(r"^HTTP/(1\.[01]) (\d{3})(?: (.*))?$", status_line)
        assert m, f"bad status line {status_line!r}"
        version, status, reason = m.group(1), int(m.group(2)), m.group(3) or ""
        headers = []
        while True:
            line = self._take_line(deadline).decode("latin-1")
            if line == "":
                break
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        resp = Response(status, reason, headers, b"")
        resp.version = version
        te = (resp.header("Transfer-Encoding") or "").lower()
        cl = resp.header("Content-Length")
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return resp
        if "chunked" in te:
            body = b""
            while True:
                size = int(self._take_line(deadline).split(b";")[0], 16)
                if size == 0:
                    while self._take_line(deadline) != b"":
                        pass
                    break
                body += self._take(size, deadline)
                assert self._take_line(deadline) == b""
            resp.body = body
        elif cl is not None:
            resp.body = self._take(int(cl), deadline)
        else:
            while self._fill(deadline):
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def closed_by_peer(self, timeout=3):
        """True when the server closes (EOF or reset) within `timeout` seconds with no further
        bytes; False when it stays open. Extra bytes fail: they would be a second response."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not chunk:
                return True
            self.buf += chunk
            raise AssertionError(f"unexpected bytes after the response: {self.buf[:300]!r}")

    def readable(self, timeout):
        r, _, _ = select.select([self.sock], [], [], timeout)
        return bool(r)


def http_req(method, path, headers=None, body=b"", version="1.1"):
    """The bytes of one request; Host is added, Content-Length too when there is a body."""
    headers = list(headers or [])
    names = [k.lower() for k, _ in headers]
    if "host" not in names:
        headers.insert(0, ("Host", "127.0.0.1"))
    if body and "content-length" not in names and "transfer-encoding" not in names:
        headers.append(("Content-Length", str(len(body))))
    head = f"{method} {path} HTTP/{version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode("latin-1") + b"\r\n" + body


# ---------------------------------------------------------------------------------------------
# Registry


def register(port, service, ttl=None, method="POST", headers=None):
    path = "/registry" + (f"?ttl={ttl}" if ttl is not None else "")
    return request(port, method, path, body=service, headers=headers)


def deregister(port, service):
    return request(port, "DELETE", "/registry", body=service)


def lookup(port, name):
    """GET /registry?service=NAME -> the Response."""
    return request(port, "GET", f"/registry?service={name}")


def nodes_of(port, name):
    """Every node of service NAME across versions ([] when the service is unknown)."""
    r = lookup(port, name)
    if r.status == 404:
        return []
    assert r.status == 200, r
    out = []
    for svc in r.json():
        out.extend(svc.get("nodes") or [])
    return out


def node(node_id, address="127.0.0.1", port=9090, metadata=None):
    n = {"id": node_id, "address": address, "port": port}
    if metadata is not None:
        n["metadata"] = metadata
    return n


def service(name, nodes, version=None, metadata=None):
    s = {"name": name}
    if version is not None:
        s["version"] = version
    if metadata is not None:
        s["metadata"] = metadata
    s["nodes"] = nodes
    return s


# ---------------------------------------------------------------------------------------------
# The sidecar process


class Sidecar:
    """A running `micro` daemon started by the `micro` fixture."""

    def __init__(self, proc, port, args, stderr_path, stdout_path, expect_exit):
        self.proc = proc
        self.port = port
        self.args = args
        self.stderr_path = stderr_path
        self.stdout_path = stdout_path
        self.expect_exit = expect_exit

    # -- process

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """The exit status, or an AssertionError (with the logs) if still running after
        `timeout` seconds."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"micro still running {timeout}s later\n{self.logs()}")

    def stderr(self):
        return Path(self.stderr_path).read_text(errors="replace")

    def stdout(self):
        return Path(self.stdout_path).read_text(errors="replace")

    def logs(self):
        return f"--- micro {' '.join(self.args)}\n--- stderr:\n{self.stderr()}\n--- stdout:\n{self.stdout()}"

    def wait_stderr(self, pattern, timeout=5, flags=re.MULTILINE):
        """Waits for a regex to appear in stderr; returns the match."""
        rx = re.compile(pattern, flags)
        return wait_until(lambda: rx.search(self.stderr()), timeout, message=f"stderr to match {pattern!r}")

    # -- HTTP shortcuts

    def request(self, method, path, body=None, headers=None, timeout=10):
        return request(self.port, method, path, body=body, headers=headers, timeout=timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def raw(self, timeout=10):
        return RawConn(self.port, timeout=timeout)

    def register(self, svc, **kw):
        return register(self.port, svc, **kw)

    def deregister(self, svc):
        return deregister(self.port, svc)

    def lookup(self, name):
        return lookup(self.port, name)

    def nodes(self, name):
        return nodes_of(self.port, name)


def start_sidecar(tmp_dir, flags=(), pre=(), env=None, port=None, address=True, command=("sidecar",),
                  expect_exit=0, wait=True, wait_timeout=10):
    """Starts `micro [pre] sidecar --sidecar_address=127.0.0.1:<port> [flags]`.

    address=False leaves --sidecar_address out (the test passes it itself, before the command
    or in the environment) but `port` must still say where it will listen. With wait, returns
    once the port accepts connections (at most `wait_timeout` s, else the test fails with the
    process's stderr)."""
    port = port or free_port()
    args = [*pre, *command]
    if address:
        args.append(f"--sidecar_address={HOST}:{port}")
    args.extend(flags)
    n = len(list(Path(tmp_dir).glob("micro-*.stderr")))
    stderr_path = Path(tmp_dir) / f"micro-{n}.stderr"
    stdout_path = Path(tmp_dir) / f"micro-{n}.stdout"
    with open(stderr_path, "wb") as ef, open(stdout_path, "wb") as of:
        proc = subprocess.Popen([micro_bin(), *args], stdin=subprocess.DEVNULL, stdout=of, stderr=ef,
                                env=child_env(env))
    sc = Sidecar(proc, port, args, stderr_path, stdout_path, expect_exit)
    if wait:
        deadline = time.monotonic() + wait_timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"micro exited with status {proc.returncode} before accepting "
                                     f"connections\n{sc.logs()}")
            if can_connect(port, timeout=0.5):
                break
            if time.monotonic() >= deadline:
                raise AssertionError(f"micro not accepting on {HOST}:{port} after {wait_timeout}s\n"
                                     f"{sc.logs()}")
            time.sleep(0.05)
    return sc


def finish_sidecar(sc, term_timeout=15):
    """Stops `sc` if still running (SIGTERM, bounded wait, then SIGKILL) and returns a list of
    problems: wrong exit status, a hang, a sanitizer report."""
    problems = []
    if sc.alive():
        sc.signal(signal.SIGTERM)
        try:
            sc.proc.wait(timeout=term_timeout)
        except subprocess.TimeoutExpired:
            sc.proc.kill()
            sc.proc.wait(timeout=5)
            problems.append(f"micro did not exit within {term_timeout}s of SIGTERM (killed)")
    rc = sc.proc.returncode
    if sc.expect_exit is not None and rc != sc.expect_exit and not problems:
        problems.append(f"micro exited with status {rc}, expected {sc.expect_exit}")
    reports = sanitizer_reports(sc.stderr())
    if reports:
        problems.append("sanitizer report in micro's stderr: " + reports[0])
    return problems


# ---------------------------------------------------------------------------------------------
# The controllable app (apps/health_app.py)


class AppProcess:
    """A test app (tests/integration/apps/SCRIPT) started on a free port, which it prints on its
    first stdout line; its stderr goes to a log in tmp_dir. Every wait is bounded."""

    def __init__(self, tmp_dir, script, name=None):
        args = ["/usr/bin/python3", str(APPS / script), "--port", "0"]
        if name is not None:
            args += ["--name", name]
        self.name = name
        stem = script.rsplit(".", 1)[0]
        self.log_path = Path(tmp_dir) / (f"{stem}-{name}.log" if name else f"{stem}.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._log)
        r, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline().decode() if r else ""
        if not line.strip().isdigit():
            self.stop()
            raise AssertionError(f"{script} did not report its port: {line!r}\n"
                                 f"{self.log_path.read_text(errors='replace')}")
        self.port = int(line)
        self.address = f"{HOST}:{self.port}"

    def node(self):
        return node(f"{self.name}-node", port=self.port)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc.stdout.close()
        self._log.close()


class HealthApp(AppProcess):
    """A running apps/health_app.py: GET /_status/health answers `status` (after `hang`
    seconds); set() switches both and returns the hit count at the instant of the switch."""

    def __init__(self, tmp_dir):
        super().__init__(tmp_dir, "health_app.py")
        self.url = f"http://{HOST}:{self.port}/_status/health"

    def _call(self, method, path):
        r = request(self.port, method, path, timeout=5)
        assert r.status == 200, r
        return r.json()

    def set(self, status=None, hang=None):
        q = []
        if status is not None:
            q.append(f"status={status}")
        if hang is not None:
            q.append(f"hang={hang}")
        return self._call("POST", "/_set?" + "&".join(q))["hits"]

    def hits(self):
        return self._call("GET", "/_hits")["hits"]

    def wait_hits(self, n, timeout):
        return wait_until(lambda: self.hits() >= n, timeout, interval=0.05, message=f"{n} health checks")
