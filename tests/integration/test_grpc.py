"""gRPC through the sidecar: python3-grpcio clients call the sidecar's API port over h2c, and
the sidecar forwards each call over HTTP/2 to apps/grpc_app.py nodes registered in its
registry: unary and the three streaming kinds, one and three nodes, failover, deadlines,
cancellation, a 10 MB message, metadata and trailers, the three routing rules, a TLS node,
the sidecar's own gRPC errors, and the metrics."""

import hashlib
import os
import select
import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest

import harness
from harness import APPS, HOST, free_port, node, service, wait_until

SVC = "go.micro.srv.greeter"
PATH = "/go.micro.srv.greeter.Greeter/"
BIG = 64 * 1024 * 1024


class GrpcApp:
    """A running apps/grpc_app.py node `name` (tls: (cert, key) for a TLS node)."""

    def __init__(self, tmp_path, name, tls=None):
        self.name = name
        self.events = Path(tmp_path) / f"grpc-{name}.events"
        self.events.write_text("")
        self.log_path = Path(tmp_path) / f"grpc-{name}.log"
        self._log = open(self.log_path, "wb")
        args = ["/usr/bin/python3", str(APPS / "grpc_app.py"), "--name", name,
                "--events", str(self.events)]
        if tls:
            args += ["--tls", str(tls[0]), str(tls[1])]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._log)
        r, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline().decode() if r else ""
        if not line.strip().isdigit():
            self.stop()
            raise AssertionError(f"grpc_app did not report its port: {line!r}\n"
                                 f"{self.log_path.read_text(errors='replace')}")
        self.port = int(line)

    def node(self, metadata=None):
        return node(f"{self.name}-node", port=self.port, metadata=metadata)

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


@pytest.fixture
def apps(tmp_path, request):
    """Factory: apps(name, tls=None) starts a grpc_app node; all are stopped at teardown."""
    started = []

    def start(name, tls=None):
        a = GrpcApp(tmp_path, name, tls)
        started.append(a)
        return a

    yield start
    for a in started:
        a.stop()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for a in started:
            print(f"--- grpc_app {a.name} log:\n" + a.log_path.read_text(errors="replace"))


def channel(sc, **options):
    opts = [("grpc.max_receive_message_length", BIG), ("grpc.max_send_message_length", BIG),
            ("grpc.enable_retries", 0)]
    opts += list(options.items())
    return grpc.insecure_channel(f"{HOST}:{sc.port}", options=opts)


@pytest.fixture
def one(micro, apps):
    """A sidecar with one node of go.micro.srv.greeter; yields (sidecar, app, channel)."""
    a = apps("a")
    sc = micro()
    assert sc.register(service(SVC, [a.node()])).status == 200
    ch = channel(sc)
    yield sc, a, ch
    ch.close()


def hello(ch, body=b"hi", **kw):
    return ch.unary_unary(PATH + "Hello")(body, timeout=kw.pop("timeout", 10), **kw)


def test_unary_metadata_and_trailers_both_ways(one):
    sc, a, ch = one
    reply, call = ch.unary_unary(PATH + "Hello").with_call(
        b"hi", metadata=(("x-req", "from-client"),), timeout=10)
    assert reply == b"a:hi"
    initial = dict(call.initial_metadata())
    assert initial["x-node"] == "a"
    assert initial["x-echo"] == "from-client"  # client metadata reached the node
    assert dict(call.trailing_metadata())["x-trailer"] == "a"  # node trailers reached us
    assert call.code() == grpc.StatusCode.OK


def test_node_status_passes_through(one):
    sc, a, ch = one
    with pytest.raises(grpc.RpcError) as e:
        ch.unary_unary(PATH + "Fail")(b"7", timeout=10)  # PERMISSION_DENIED
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert e.value.details() == "failed on purpose"


def test_server_streaming(one):
    sc, a, ch = one
    got = list(ch.unary_stream(PATH + "Count")(b"50", timeout=10))
    assert got == [str(i).encode() for i in range(50)]


def test_client_streaming(one):
    sc, a, ch = one
    msgs = [bytes([65 + i % 26]) * (100 + i) for i in range(40)]
    reply = ch.stream_unary(PATH + "Sum")(iter(msgs), timeout=10)
    size = sum(len(m) for m in msgs)
    assert reply == f"40:{size}:{hashlib.sha256(b''.join(msgs)).hexdigest()}".encode()


def test_bidirectional_interleaved(one):
    """Each reply is read before the next message is sent: nothing may wait for the end of
    the request stream (a buffering proxy would deadlock here)."""
    sc, a, ch = one
    import queue
    q = queue.Queue()

    def requests():
        for i in range(5):
            yield f"m{i}".encode()
            q.get(timeout=10)  # the reply to this one arrived

    replies = []
    for r in ch.stream_stream(PATH + "Chat")(requests(), timeout=15):
        replies.append(r)
        q.put(1)
    assert replies == [f"a:m{i}".encode() for i in range(5)]


def test_ten_megabyte_message_streamed(one):
    sc, a, ch = one
    big = os.urandom(10 * 1024 * 1024)
    assert ch.unary_unary(PATH + "Echo")(big, timeout=60) == big
    chunks = [big[i:i + 65536] for i in range(0, len(big), 65536)]
    reply = ch.stream_unary(PATH + "Sum")(iter(chunks), timeout=60)
    assert reply == f"{len(chunks)}:{len(big)}:{hashlib.sha256(big).hexdigest()}".encode()


def test_three_nodes_spread(micro, apps):
    nodes = [apps(n) for n in ("a", "b", "c")]
    sc = micro("--selector=roundrobin")
    assert sc.register(service(SVC, [n.node() for n in nodes])).status == 200
    ch = channel(sc)
    seen = {}
    for i in range(30):
        who = hello(ch, b"x").split(b":")[0].decode()
        seen[who] = seen.get(who, 0) + 1
    assert set(seen) == {"a", "b", "c"}, seen
    assert all(v == 10 for v in seen.values()), seen
    # streams of every kind spread too, multiplexed on the pooled connections
    for i in range(6):
        assert len(list(ch.unary_stream(PATH + "Count")(b"3", timeout=10))) == 3
    ch.close()


def test_down_node_fails_over(micro, apps):
    a = apps("a")
    dead = free_port()  # nobody listens: a connect failure, which is retried
    sc = micro("--selector=roundrobin")
    assert sc.register(service(SVC, [a.node(), node("dead-node", port=dead)])).status == 200
    ch = channel(sc)
    for i in range(10):
        assert hello(ch, b"x") == b"a:x"
    ch.close()


def test_every_node_down_is_unavailable(micro):
    sc = micro("--retries=1")
    assert sc.register(service(SVC, [node("d1", port=free_port()),
                                     node("d2", port=free_port())])).status == 200
    ch = channel(sc)
    with pytest.raises(grpc.RpcError) as e:
        hello(ch)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert SVC in e.value.details()
    ch.close()


def test_grpc_timeout_is_honoured(one):
    sc, a, ch = one
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as e:
        ch.unary_unary(PATH + "Slow")(b"5", timeout=1)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - t0 < 4.5  # bounded by the deadline, not the node
    assert hello(ch) == b"a:hi"  # the sidecar and its pooled connection go on


def test_request_timeout_bounds_calls_without_deadline(micro, apps):
    a = apps("a")
    sc = micro("--request_timeout=1s")
    assert sc.register(service(SVC, [a.node()])).status == 200
    ch = channel(sc)
    with pytest.raises(grpc.RpcError) as e:
        ch.unary_unary(PATH + "Slow")(b"5")  # no deadline: no grpc-timeout sent
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The sidecar's own answer ("deadline exceeded: ..."), or the node's "Deadline Exceeded":
    # the node was sent a grpc-timeout of what was left of --request_timeout, so on a busy
    # machine its own timer may fire first. Either way the bound is the sidecar's.
    assert "deadline exceeded" in e.value.details().lower()
    ch.close()


def test_unknown_service_is_unimplemented(one):
    sc, a, ch = one
    with pytest.raises(grpc.RpcError) as e:
        ch.unary_unary("/go.micro.srv.nobody.Greeter/Hello")(b"", timeout=10)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "unknown service" in e.value.details()


def test_named_service_without_node_is_unavailable(one):
    sc, a, ch = one
    with pytest.raises(grpc.RpcError) as e:
        hello(ch, metadata=(("micro-service", "go.micro.srv.missing"),))
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "go.micro.srv.missing" in e.value.details()


def test_client_cancel_reaches_the_node(one):
    sc, a, ch = one
    call = ch.unary_stream(PATH + "Hang")(b"", timeout=20)
    assert next(call) == b"first"
    call.cancel()
    wait_until(lambda: "cancelled a" in a.events.read_text(), 10,
               message="the node to see the cancellation")
    assert hello(ch) == b"a:hi"


def test_micro_service_header_routes(micro, apps):
    a = apps("a")
    sc = micro()
    # registered under a name the path does not begin with: only the header can reach it
    assert sc.register(service("greeter-by-header", [a.node()])).status == 200
    ch = channel(sc)
    with pytest.raises(grpc.RpcError) as e:
        hello(ch)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert hello(ch, metadata=(("micro-service", "greeter-by-header"),)) == b"a:hi"
    ch.close()


def test_longest_registered_prefix_wins(micro, apps):
    a, b = apps("a"), apps("b")
    sc = micro()
    assert sc.register(service("go.micro", [b.node()])).status == 200
    assert sc.register(service(SVC, [a.node()])).status == 200
    ch = channel(sc)
    assert hello(ch) == b"a:hi"
    ch.close()


def test_authority_routes(micro, apps):
    a = apps("a")
    sc = micro()
    assert sc.register(service("greeterhost", [a.node()])).status == 200
    ch = channel(sc, **{"grpc.default_authority": f"greeterhost:{sc.port}"})
    assert hello(ch) == b"a:hi"
    ch.close()


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)


def test_secure_node_over_tls(micro, apps, tmp_path):
    d = tmp_path
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.crt", "-days", "2", "-subj", "/CN=test-ca", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr",
            "-subj", "/CN=node", cwd=d)
    (d / "node.ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-set_serial", "7", "-out", "node.crt", "-days", "2", "-extfile", "node.ext", cwd=d)
    a = apps("s", tls=(d / "node.crt", d / "node.key"))
    # the sidecar trusts the test CA through OpenSSL's SSL_CERT_FILE
    sc = micro(env={"SSL_CERT_FILE": str(d / "ca.crt")})
    assert sc.register(service(SVC, [a.node(metadata={"secure": "true"})])).status == 200
    ch = channel(sc)
    assert hello(ch) == b"s:hi"
    assert list(ch.unary_stream(PATH + "Count")(b"3", timeout=10)) == [b"0", b"1", b"2"]
    ch.close()
    # without "secure" the sidecar speaks h2c to it, which the TLS node refuses
    sc2 = micro()
    assert sc2.register(service(SVC, [a.node()])).status == 200
    ch2 = channel(sc2)
    with pytest.raises(grpc.RpcError) as e:
        hello(ch2)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    ch2.close()


def test_grpc_over_http1_is_refused_clearly(one):
    sc, a, ch = one
    r = harness.request(sc.port, "POST", PATH + "Hello", body=b"\0\0\0\0\0",
                        headers={"Content-Type": "application/grpc"})
    assert r.status == 505, r
    assert "HTTP/2" in r.json()["detail"]


@pytest.mark.parametrize("handler", ["proxy", "auto"])
def test_every_handler_forwards_grpc(micro, apps, handler):
    a = apps("a")
    sc = micro(f"--handler={handler}")
    assert sc.register(service(SVC, [a.node()])).status == 200
    ch = channel(sc)
    assert hello(ch) == b"a:hi"
    assert list(ch.stream_stream(PATH + "Chat")(iter([b"1", b"2"]), timeout=10)) == [b"a:1",
                                                                                   b"a:2"]
    ch.close()


def test_metrics_by_protocol_and_grpc_status(one):
    sc, a, ch = one
    for _ in range(3):
        hello(ch)
    with pytest.raises(grpc.RpcError):
        ch.unary_unary(PATH + "Fail")(b"5", timeout=10)  # NOT_FOUND
    with pytest.raises(grpc.RpcError):
        ch.unary_unary("/go.micro.srv.nobody.X/Y")(b"", timeout=10)
    # methods past the cap fold into _other: the label set stays bounded
    for i in range(70):
        with pytest.raises(grpc.RpcError):
            ch.unary_unary(f"{PATH}Missing{i}")(b"", timeout=10)
    text = harness.request(sc.port, "GET", "/metrics").body.decode()
    lines = [ln for ln in text.splitlines() if ln.startswith("micro_grpc_calls_total{")]
    assert (f'micro_grpc_calls_total{{service="{SVC}",method="{PATH}Hello",grpc_status="0"}} 3'
            in lines), lines
    assert f'micro_grpc_calls_total{{service="{SVC}",method="{PATH}Fail",grpc_status="5"}} 1' \
        in lines
    other = [ln for ln in lines if 'service="_other"' in ln]
    assert any('grpc_status="12"' in ln for ln in other), lines  # unknown service + overflow
    assert len({ln.split(",grpc_status")[0] for ln in lines}) <= 65
    h2 = [ln for ln in text.splitlines()
          if ln.startswith('micro_http_requests_by_protocol_total{protocol="HTTP/2"}')]
    assert h2 and int(h2[0].split()[-1]) >= 75, h2


class H2Node:
    """A running apps/h2_node.py in `mode` (refuse, goaway, reset)."""

    def __init__(self, tmp_path, mode):
        self.events = Path(tmp_path) / f"h2node-{mode}.events"
        self.events.write_text("")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", str(APPS / "h2_node.py"), "--mode", mode, "--events",
             str(self.events)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL)
        r, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline().decode() if r else ""
        assert line.strip().isdigit(), line
        self.port = int(line)

    def seen(self):
        return len(self.events.read_text().splitlines())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=5)
        self.proc.stdout.close()


@pytest.fixture
def h2nodes(tmp_path):
    started = []

    def start(mode):
        n = H2Node(tmp_path, mode)
        started.append(n)
        return n

    yield start
    for n in started:
        n.stop()


@pytest.mark.parametrize("mode", ["refuse", "goaway"])
def test_stream_the_node_never_saw_is_retried(micro, apps, h2nodes, mode):
    """REFUSED_STREAM, or a GOAWAY whose last stream id is below the stream: the node provably
    never processed it, so it goes to another node and every call succeeds."""
    a = apps("a")
    bad = h2nodes(mode)
    sc = micro("--selector=roundrobin")
    assert sc.register(service(SVC, [a.node(), node("bad-node", port=bad.port)])).status == 200
    ch = channel(sc)
    for i in range(6):
        assert hello(ch, b"x") == b"a:x"
    assert bad.seen() >= 2  # the bad node was tried, and its refusals retried
    ch.close()


def test_node_dying_mid_stream_is_unavailable(micro, h2nodes):
    """A node that answered part of a stream and then went away: the client gets UNAVAILABLE
    with a message naming the node (trailers), not a reset it would read as INTERNAL."""
    cut = h2nodes("cut")
    sc = micro()
    assert sc.register(service(SVC, [node("cut-node", port=cut.port)])).status == 200
    ch = channel(sc)
    call = ch.unary_stream(PATH + "Count")(b"", timeout=10)
    with pytest.raises(grpc.RpcError) as e:
        for _ in call:
            pass
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value
    assert f"127.0.0.1:{cut.port}" in e.value.details()
    ch.close()


def test_stream_the_node_saw_is_not_retried(micro, apps, h2nodes):
    """A node that resets a stream it received (INTERNAL_ERROR) may have acted on it: the call
    fails (INTERNAL, as gRPC clients map that reset) instead of running twice."""
    a = apps("a")
    bad = h2nodes("reset")
    sc = micro("--selector=roundrobin")
    assert sc.register(service(SVC, [a.node(), node("bad-node", port=bad.port)])).status == 200
    ch = channel(sc)
    codes = []
    for i in range(4):
        try:
            hello(ch, b"x")
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as e:
            codes.append(e.code())
    failed = [c for c in codes if c != grpc.StatusCode.OK]
    assert failed and all(c == grpc.StatusCode.INTERNAL for c in failed), codes
    assert len(failed) == bad.seen()  # each stream the bad node saw failed once, no retry
    ch.close()


def test_http2_client_reaches_http1_app_through_proxy(micro, tmp_path):
    """Not gRPC: an HTTP/2 request on a --handler=proxy path goes to the HTTP/1.1 app over the
    HTTP/1.1 pool, with a Host taken from :authority and the body streamed."""
    import json as _json
    app = harness.AppProcess(tmp_path, "http_app.py", "h")
    try:
        sc = micro("--handler=proxy")
        assert sc.register(service("go.micro.srv.foo", [app.node()])).status == 200
        body = tmp_path / "body.bin"
        body.write_bytes(b"x" * 300000)
        r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-X", "POST",
                            "-H", "X-Test: Yes", "--data-binary", f"@{body}",
                            f"http://{HOST}:{sc.port}/foo/echo?q=1"],
                           capture_output=True, timeout=20)
        assert r.returncode == 0, r.stderr
        seen = _json.loads(r.stdout)
        assert seen["version"] == "HTTP/1.1" and seen["target"] == "/foo/echo?q=1"
        hdrs = {k.lower(): v for k, v in seen["headers"]}
        assert hdrs["host"] == f"{HOST}:{sc.port}"
        assert hdrs["x-test"] == "Yes"
        assert seen["body_size"] == 300000
    finally:
        app.stop()


def test_shutdown_with_calls_in_flight(micro, apps):
    """SIGTERM while a server stream is open and pooled connections idle: the sidecar ends the
    call (the node sees the cancellation), frees its HTTP/2 client and exits cleanly (no
    sanitizer report: the fixture checks)."""
    a = apps("a")
    sc = micro("--drain_timeout=1s")
    assert sc.register(service(SVC, [a.node()])).status == 200
    ch = channel(sc)
    assert hello(ch) == b"a:hi"
    call = ch.unary_stream(PATH + "Hang")(b"", timeout=30)
    assert next(call) == b"first"
    sc.proc.send_signal(signal.SIGTERM)
    sc.proc.wait(timeout=15)
    wait_until(lambda: "cancelled a" in a.events.read_text(), 10,
               message="the node to see the cancellation")
    call.cancel()
    ch.close()


def test_request_trailers_reach_the_node(micro, h2nodes):
    """Trailers both ways: a client's request trailers (raw HTTP/2 with python3-h2: gRPC
    libraries send none) reach the node, whose trailers come back."""
    import socket as _socket

    import h2.config
    import h2.connection
    import h2.events
    n = h2nodes("trailers")
    sc = micro()
    assert sc.register(service(SVC, [node("t-node", port=n.port)])).status == 200
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    s = _socket.create_connection((HOST, sc.port), timeout=10)
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"),
                            (":authority", f"{HOST}:{sc.port}"), (":path", PATH + "Hello"),
                            ("content-type", "application/grpc"), ("te", "trailers")])
    conn.send_data(sid, b"\0\0\0\0\2hi")
    conn.send_headers(sid, [("x-client-trailer", "from-client")], end_stream=True)
    s.sendall(conn.data_to_send())
    trailers, status, ended = None, None, False
    deadline = time.monotonic() + 10
    while not ended and time.monotonic() < deadline:
        data = s.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status = dict(ev.headers)[b":status"]
            elif isinstance(ev, h2.events.TrailersReceived):
                trailers = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                ended = True
        s.sendall(conn.data_to_send())
    s.close()
    assert status == b"200"
    assert trailers is not None and trailers[b"grpc-status"] == b"0", trailers
    assert trailers[b"x-echo-x-client-trailer"] == b"from-client", trailers
