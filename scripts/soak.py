#!/usr/bin/python3
"""The soak driver of `make soak` (see scripts/soak.sh): one sidecar on loopback, with etcd and
nats-server (or the embedded backends), three go-micro greeter nodes, two plain HTTP nodes and
two gRPC nodes (python3-grpcio, tests/integration/apps/grpc_app.py).

Phase 1: SOAK_CONNECTIONS (10,000) concurrent keep-alive connections, each answered twice.
Phase 2: SOAK_MINUTES of mixed load: /rpc calls, proxied HTTP/1 requests, proxied HTTP/2
requests (python3-h2 over h2c prior knowledge, several streams at once per connection), gRPC
calls through the sidecar (unary, server streaming, bidirectional streaming), registry reads and
writes with TTLs, SOAK_SUBSCRIBERS (200) WebSocket subscribers and a steady publisher, while a
node is killed (SIGKILL) and restarted every 30 s and etcd and nats-server are restarted once.

Every error is classified: a call failing while one of its service's nodes was down (from the
kill until the registration expired or the node was back, plus the ejection slack) is
"expected (node down)"; a registry write refused while etcd was down, or a message published
while nats-server was down, likewise; anything else is unexpected. RSS is sampled every 10 s.
At the end every registration must be back, in the sidecar and (etcd) in the store. Exit 0 only
when nothing unexpected happened, RSS stayed flat and no registration was lost. Results go to
stdout and build/soak-result.json."""

import asyncio
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import grpc  # noqa: E402
import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import websockets  # noqa: E402

from harness import HOST, can_connect, free_port  # noqa: E402

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/micro"
MINUTES = float(os.environ.get("SOAK_MINUTES", "5"))
CONNECTIONS = int(os.environ.get("SOAK_CONNECTIONS", "10000"))
SUBSCRIBERS = int(os.environ.get("SOAK_SUBSCRIBERS", "200"))
BACKENDS = os.environ.get("SOAK_BACKENDS", "etcd")
NODE_TTL = 10  # seconds: the nodes' own heartbeat registration (re-sent every 3 s)
EJECT_SLACK = 5  # seconds after a node is back or expired during which calls may still fail
PUBLISH_RATE = 20  # messages per second
GREETERS, WEBAPPS, GRPCS = 3, 2, 2
GRPC_SERVICE = "soak.grpc"  # the gRPC nodes' service, named by the micro-service header
GRPC_PATH = "/go.micro.srv.greeter.Greeter/"  # the methods grpc_app.py serves
H2_STREAMS = 4  # concurrent streams per HTTP/2 round


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- a minimal HTTP/1.1 client

class Conn:
    """One keep-alive connection; request() sends one request and reads its whole answer."""

    def __init__(self, reader, writer):
        self.r, self.w = reader, writer

    @classmethod
    async def open(cls, port, timeout=10):
        r, w = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
        return cls(r, w)

    async def request(self, method, path, body=b"", headers=None, timeout=15):
        head = f"{method} {path} HTTP/1.1\r\nHost: soak\r\n"
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n"
        if body or method in ("POST", "PUT", "DELETE"):
            head += f"Content-Length: {len(body)}\r\n"
        self.w.write(head.encode() + b"\r\n" + body)
        return await asyncio.wait_for(self._response(), timeout)

    async def _response(self):
        line = await self.r.readline()
        if not line:
            raise ConnectionError("closed before the answer")
        status = int(line.split()[1])
        length, chunked, close = None, False, False
        while True:
            h = await self.r.readline()
            if h in (b"\r\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            k, v = k.strip().lower(), v.strip()
            if k == "content-length":
                length = int(v)
            elif k == "transfer-encoding" and "chunked" in v.lower():
                chunked = True
            elif k == "connection" and v.lower() == "close":
                close = True
        if chunked:
            body = b""
            while True:
                size = int((await self.r.readline()).split(b";")[0], 16)
                if size == 0:
                    while (await self.r.readline()) not in (b"\r\n", b""):
                        pass
                    break
                body += await self.r.readexactly(size + 2)
                body = body[:-2]
        elif length is not None:
            body = await self.r.readexactly(length)
        else:
            body = await self.r.read()
            close = True
        if close:
            self.close()
        return status, body, close

    def close(self):
        try:
            self.w.close()
        except Exception:
            pass


class Client:
    """A keep-alive connection that reopens itself after a close."""

    def __init__(self, port):
        self.port, self.conn = port, None

    async def request(self, *a, **kw):
        if self.conn is None:
            self.conn = await Conn.open(self.port)
        try:
            status, body, closed = await self.conn.request(*a, **kw)
        except Exception:
            self.conn.close()
            self.conn = None
            raise
        if closed:
            self.conn = None
        return status, body


# ---------------------------------------------------------------- processes

class Proc:
    def __init__(self, name, argv, port):
        self.name, self.argv, self.port, self.p = name, argv, port, None

    def start(self, wait=10):
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, cwd=ROOT)
        deadline = time.monotonic() + wait
        while not can_connect(self.port):
            if time.monotonic() > deadline or self.p.poll() is not None:
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.05)

    def kill(self):
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
            self.p.wait(timeout=10)
        self.p = None

    @property
    def up(self):
        return self.p is not None and self.p.poll() is None


class Stats:
    def __init__(self):
        self.ok = {}
        self.expected = {}
        self.unexpected = {}
        self.samples = []  # unexpected examples
        self.expected_samples = {}  # kind -> the first few expected errors
        self.reasons = {}  # "kind: reason" -> count, every error (expected or not)
        self.lock = threading.Lock()  # the HTTP/2 and gRPC clients run in threads

    def count(self, table, kind, n=1):
        table[kind] = table.get(kind, 0) + n

    def good(self, kind):
        with self.lock:
            self.count(self.ok, kind)

    def bad(self, kind, why, expected, t0=None):
        """why: what failed; t0: the run's start (monotonic), to log when it failed."""
        with self.lock:
            self.count(self.expected if expected else self.unexpected, kind)
            self.count(self.reasons, f"{kind}: {reason_of(why)}")
            if t0 is not None:
                why = f"at {time.monotonic() - t0:.1f}s {why}"
            if expected and len(self.expected_samples.setdefault(kind, [])) < 5:
                self.expected_samples[kind].append(why[:200])
            if not expected and len(self.samples) < 30:
                self.samples.append(f"{kind}: {why}")


def reason_of(why):
    """An error's class for the report: the status and the sidecar's detail without the node's
    address and port, or the exception's type."""
    why = re.sub(r"127\.0\.0\.1:\d+", "<node>", why)
    why = re.sub(r"\b(greeter|webapp|grpc)-\d\b", "<id>", why)
    why = re.sub(r"\d+ ms|\d+(\.\d+)? s\b", "<t>", why)
    return why[:120]


class Soak:
    def __init__(self, tmp):
        self.tmp = tmp
        self.stats = Stats()
        self.down = {}  # node name -> (down since, back at or None)
        self.windows = []  # (kind, start, end): outages of a node, etcd, nats
        self.stop = False
        self.rss = []
        self.published = {}  # seq -> time published (acknowledged 200)
        self.received = {}  # subscriber index -> set of seqs
        self.sub_ready = 0
        self.t0 = time.monotonic()  # the start of phase 2: errors and events are timed from it

    # -- outages
    def outage_covers(self, kinds, t):
        return any(k in kinds and s - 1 <= t <= (e if e else time.monotonic()) + EJECT_SLACK
                   for k, s, e in self.windows)

    def open_window(self, kind):
        self.windows.append([kind, time.monotonic(), None])
        return self.windows[-1]

    # -- setup
    def start_all(self):
        self.etcd = self.nats = None
        args = [BIN, "sidecar", f"--sidecar_address={HOST}:{free_port()}", "--handler=auto",
                f"--max_connections={CONNECTIONS + 2000}", "--log_level=warn",
                "--register_ttl=15s", "--register_interval=5s"]
        if BACKENDS == "etcd":
            import etcd_server
            import nats_server
            self.etcd = etcd_server.EtcdServer(self.tmp).start()
            self.nats = nats_server.NatsServer(self.tmp).start()
            args += ["--registry=etcd", f"--registry_address={self.etcd.address}",
                     "--broker=nats", f"--broker_address={self.nats.url}"]
        self.port = int(args[2].rsplit(":", 1)[1])
        self.sidecar = Proc("sidecar", args, self.port)
        self.sidecar.start()
        self.nodes = []
        for i in range(GREETERS):
            p = free_port()
            self.nodes.append(("go.micro.srv.greeter", f"greeter-{i}",
                               Proc(f"greeter-{i}", [sys.executable, "examples/greeter.py", str(p)], p), {}))
        for i in range(WEBAPPS):
            p = free_port()
            self.nodes.append(("go.micro.srv.webapp", f"webapp-{i}",
                               Proc(f"webapp-{i}", ["node", "examples/webapp.js", str(p)], p),
                               {"protocol": "http"}))
        for i in range(GRPCS):
            p = free_port()
            argv = [sys.executable, "tests/integration/apps/grpc_app.py", "--port", str(p),
                    "--name", f"grpc-{i}"]
            self.nodes.append((GRPC_SERVICE, f"grpc-{i}", Proc(f"grpc-{i}", argv, p), {}))
        for _, _, proc, _ in self.nodes:
            proc.start()
        # Kills take the kinds in turn (greeter, webapp, gRPC, greeter, ...): each is hit early.
        by_kind = [[n for n in self.nodes if n[0] == svc] for svc in
                   ("go.micro.srv.greeter", "go.micro.srv.webapp", GRPC_SERVICE)]
        self.kill_order = [group[r % len(group)] for r in range(6) for group in by_kind]

    def stop_all(self):
        for _, _, proc, _ in self.nodes:
            proc.kill()
        if self.sidecar.up:
            self.sidecar.p.send_signal(signal.SIGTERM)
            try:
                self.sidecar.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.sidecar.kill()
        if self.nats:
            self.nats.stop()
        if self.etcd:
            self.etcd.stop()

    def rss_kb(self):
        try:
            for line in open(f"/proc/{self.sidecar.p.pid}/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    # -- phase 1
    async def many_connections(self):
        log(f"phase 1: {CONNECTIONS} concurrent keep-alive connections")
        rss0 = self.rss_kb()
        sem = asyncio.Semaphore(400)
        conns, errors = [], []

        async def one(i):
            async with sem:
                try:
                    c = await Conn.open(self.port)
                    st, _, _ = await c.request("GET", "/health")
                    if st != 200:
                        raise RuntimeError(f"status {st}")
                    conns.append(c)
                except Exception as e:  # noqa: BLE001
                    errors.append(f"open/first request: {e!r}")

        t0 = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(CONNECTIONS)))
        opened = time.monotonic() - t0
        rss_held = self.rss_kb()
        # A second request on every held connection: all still open, all served.
        second_ok = 0

        async def again(c):
            nonlocal second_ok
            async with sem:
                try:
                    st, _, _ = await c.request("GET", "/registry")
                    if st == 200:
                        second_ok += 1
                    else:
                        errors.append(f"second request: status {st}")
                except Exception as e:  # noqa: BLE001
                    errors.append(f"second request: {e!r}")

        await asyncio.gather(*(again(c) for c in conns))
        for c in conns:
            c.close()
        await asyncio.sleep(3)
        rss_after = self.rss_kb()
        self.phase1 = {"connections": CONNECTIONS, "held": len(conns), "second_ok": second_ok,
                       "errors": len(errors), "open_seconds": round(opened, 1),
                       "rss_before_kb": rss0, "rss_held_kb": rss_held, "rss_after_kb": rss_after}
        for e in errors[:10]:
            self.stats.samples.append("phase 1: " + e)
        log(f"phase 1: held {len(conns)}/{CONNECTIONS} (opened in {opened:.1f} s), second request "
            f"ok on {second_ok}, {len(errors)} errors; RSS {rss0} -> {rss_held} -> {rss_after} kB")

    # -- phase 2 workers
    async def node_keeper(self):
        """Each live node heartbeats its registration (TTL NODE_TTL), as an app would."""
        client = Client(self.port)
        while not self.stop:
            for name, nid, proc, meta in self.nodes:
                if not proc.up:
                    continue
                body = json.dumps({"name": name, "nodes": [{"id": nid, "address": HOST,
                                                            "port": proc.port, "metadata": meta}],
                                   "ttl": NODE_TTL}).encode()
                await self.call(client, "register node", "POST", "/registry", body,
                                {"Content-Type": "application/json"}, kinds=("etcd",))
            await asyncio.sleep(3)

    async def call(self, client, kind, method, path, body=b"", headers=None, kinds=(), want=200):
        t = time.monotonic()
        try:
            st, data = await client.request(method, path, body, headers)
        except Exception as e:  # noqa: BLE001
            self.stats.bad(kind, repr(e), self.outage_covers(kinds, t), self.t0)
            return None
        if st != want:
            self.stats.bad(kind, f"{st} {data[:200]!r}", self.outage_covers(kinds, t), self.t0)
            return None
        self.stats.good(kind)
        return data

    async def rpc_worker(self, n):
        client = Client(self.port)
        i = 0
        while not self.stop:
            i += 1
            body = json.dumps({"service": "go.micro.srv.greeter", "method": "Greeter.Hello",
                               "request": {"name": f"w{n}-{i}"}}).encode()
            data = await self.call(client, "rpc", "POST", "/rpc", body,
                                   {"Content-Type": "application/json"},
                                   kinds=("go.micro.srv.greeter", "etcd"))
            if data is not None and json.loads(data).get("msg") != f"Hello w{n}-{i}":
                self.stats.bad("rpc", f"wrong answer {data[:100]!r}", False)
            await asyncio.sleep(0.005)

    async def proxy_worker(self, n):
        client = Client(self.port)
        i = 0
        while not self.stop:
            i += 1
            data = await self.call(client, "proxy", "GET", f"/webapp/soak/{n}?i={i}",
                                   kinds=("go.micro.srv.webapp", "etcd"))
            if data is not None and json.loads(data).get("path") != f"/webapp/soak/{n}?i={i}":
                self.stats.bad("proxy", f"wrong answer {data[:100]!r}", False)
            await asyncio.sleep(0.005)

    async def registry_worker(self):
        """20 services of one node each with a TTL, re-registered every 4 s; one churned; reads."""
        client = Client(self.port)
        names = [f"soak.svc.{i}" for i in range(20)]
        k = 0
        while not self.stop:
            k += 1
            for i, name in enumerate(names):
                body = json.dumps({"name": name, "version": "1", "nodes": [
                    {"id": f"{name}-n", "address": HOST, "port": 10000 + i}], "ttl": 20}).encode()
                await self.call(client, "registry write", "POST", "/registry", body,
                                {"Content-Type": "application/json"}, kinds=("etcd",))
            churn = json.dumps({"name": "soak.churn", "nodes": [{"id": f"c{k}", "address": HOST,
                                                                 "port": 1}]}).encode()
            await self.call(client, "registry write", "POST", "/registry", churn,
                            {"Content-Type": "application/json"}, kinds=("etcd",))
            await self.call(client, "registry write", "DELETE", "/registry", churn,
                            {"Content-Type": "application/json"}, kinds=("etcd",))
            for _ in range(40):
                name = random.choice(names)
                data = await self.call(client, "registry read", "GET", f"/registry?service={name}",
                                       kinds=("etcd",))
                if data is not None and not json.loads(data)[0]["nodes"]:
                    self.stats.bad("registry read", f"{name} without nodes", False)
                await self.call(client, "registry read", "GET", "/registry", kinds=())
                await asyncio.sleep(0.05)

    async def subscriber(self, idx):
        got = self.received.setdefault(idx, set())
        url = f"ws://{HOST}:{self.port}/broker?topic=soak"
        first = True
        while not self.stop:
            try:
                async with websockets.connect(url, open_timeout=10, max_queue=None,
                                              ping_interval=None) as ws:
                    if first:
                        self.sub_ready += 1
                        first = False
                    while not self.stop:
                        try:
                            msg = await asyncio.wait_for(ws.recv(), 1)
                        except asyncio.TimeoutError:
                            continue
                        body = json.loads(msg)
                        import base64
                        got.add(json.loads(base64.b64decode(body["Body"]))["seq"])
            except Exception as e:  # noqa: BLE001
                if self.stop:
                    break
                self.stats.bad("subscriber", f"dropped: {e!r}", self.outage_covers(("nats",), time.monotonic()))
                await asyncio.sleep(0.5)

    async def publisher(self):
        client = Client(self.port)
        seq = 0
        while not self.stop:
            seq += 1
            t = time.monotonic()
            data = await self.call(client, "publish", "POST", "/broker?topic=soak",
                                   json.dumps({"seq": seq}).encode(), kinds=("nats",))
            if data is not None:
                self.published[seq] = t
            await asyncio.sleep(1 / PUBLISH_RATE)

    # -- HTTP/2 and gRPC clients: blocking libraries, so each runs in a thread of its own

    def h2_open(self):
        sock = socket.create_connection((HOST, self.port), timeout=10)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                    header_encoding="utf-8"))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        return sock, conn

    def h2_round(self, sock, conn, paths):
        """Sends one GET per path on concurrent streams of one connection and reads every
        answer: {stream id: (status, body) or an error string}. Raises on a connection error
        (every stream still open is then lost with it)."""
        want = {}
        for path in paths:
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                    (":authority", "soak"), (":path", path)], end_stream=True)
            want[sid] = [None, b""]
        sock.sendall(conn.data_to_send())
        done = {}
        deadline = time.monotonic() + 15
        while len(done) < len(want):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(want) - len(done)} streams unanswered after 15 s")
            sock.settimeout(left)
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("the sidecar closed the HTTP/2 connection")
            for ev in conn.receive_data(data):
                sid = getattr(ev, "stream_id", None)
                if isinstance(ev, h2.events.ResponseReceived):
                    want[sid][0] = int(dict(ev.headers)[":status"])
                elif isinstance(ev, h2.events.DataReceived):
                    want[sid][1] += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, h2.events.StreamEnded):
                    done[sid] = tuple(want[sid])
                elif isinstance(ev, h2.events.StreamReset):
                    done[sid] = f"stream reset by the sidecar (error {ev.error_code})"
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    raise ConnectionError(f"GOAWAY {ev.error_code}")
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
        return done

    def h2_worker(self, n):
        """Proxied HTTP/2 requests to the webapp nodes: rounds of H2_STREAMS concurrent GETs on
        one h2c (prior knowledge) connection, reopened after a connection error."""
        kinds = ("go.micro.srv.webapp", "etcd")
        sock = conn = None
        i = 0
        while not self.stop:
            paths = []
            for _ in range(H2_STREAMS):
                i += 1
                paths.append(f"/webapp/h2/{n}?i={i}")
            t = time.monotonic()
            try:
                if sock is None:
                    sock, conn = self.h2_open()
                answers = self.h2_round(sock, conn, paths)
            except Exception as e:  # noqa: BLE001
                for _ in paths:
                    self.stats.bad("proxy h2", repr(e), self.outage_covers(kinds, t), self.t0)
                if sock:
                    sock.close()
                sock = conn = None
                time.sleep(0.1)
                continue
            for sid, path in zip(sorted(answers), paths):
                a = answers[sid]
                if isinstance(a, str):
                    self.stats.bad("proxy h2", a, self.outage_covers(kinds, t), self.t0)
                elif a[0] != 200:
                    self.stats.bad("proxy h2", f"{a[0]} {a[1][:200]!r}",
                                   self.outage_covers(kinds, t), self.t0)
                elif json.loads(a[1]).get("path") != path:
                    self.stats.bad("proxy h2", f"wrong answer {a[1][:100]!r}", False, self.t0)
                else:
                    self.stats.good("proxy h2")
            time.sleep(0.005)
        if sock:
            sock.close()

    def grpc_failed(self, kind, e, t):
        """A failed gRPC call: expected only as UNAVAILABLE (the node was gone and not yet
        ejected, or it died under the call) while a gRPC node was down or etcd was."""
        code = e.code() if isinstance(e, grpc.RpcError) else None
        why = f"{code.name if code else ''} {e.details() if code else repr(e)}"
        expected = (code == grpc.StatusCode.UNAVAILABLE and
                    self.outage_covers((GRPC_SERVICE, "etcd"), t))
        self.stats.bad(kind, why, expected, self.t0)

    def grpc_worker(self, mode):
        """gRPC calls through the sidecar, one after another: unary (Hello), server streaming
        (Count: 20 messages) or bidirectional streaming (Chat: 10 messages), each checked."""
        md = (("micro-service", GRPC_SERVICE),)
        kind = f"grpc {mode}"
        with grpc.insecure_channel(f"{HOST}:{self.port}") as ch:
            hello = ch.unary_unary(GRPC_PATH + "Hello")
            count = ch.unary_stream(GRPC_PATH + "Count")
            chat = ch.stream_stream(GRPC_PATH + "Chat")
            i = 0
            while not self.stop:
                i += 1
                t = time.monotonic()
                try:
                    if mode == "unary":
                        req = f"u{i}".encode()
                        got = hello(req, metadata=md + (("x-req", str(i)),), timeout=10)
                        good = got.startswith(b"grpc-") and got.endswith(b":" + req)
                    elif mode == "server stream":
                        got = list(count(b"20", metadata=md, timeout=10))
                        good = got == [str(k).encode() for k in range(20)]
                    else:
                        msgs = [f"b{i}.{k}".encode() for k in range(10)]
                        got = list(chat(iter(msgs), metadata=md, timeout=10))
                        node = got[0].split(b":")[0] if got else b""
                        good = got == [node + b":" + m for m in msgs] and node.startswith(b"grpc-")
                except Exception as e:  # noqa: BLE001
                    self.grpc_failed(kind, e, t)
                    time.sleep(0.05)
                    continue
                if good:
                    self.stats.good(kind)
                else:
                    self.stats.bad(kind, f"wrong answer {got!r}"[:200], False, self.t0)
                time.sleep(0.005)

    async def rss_sampler(self):
        t0 = time.monotonic()
        while not self.stop:
            self.rss.append((round(time.monotonic() - t0), self.rss_kb()))
            await asyncio.sleep(10)

    async def chaos(self, duration):
        """A node killed every 30 s (greeter, webapp, gRPC in turn) and restarted 10 s later;
        etcd restarted at 40 % of the run and nats-server at 70 % (each down for 5 s)."""
        t0 = self.t0
        events = []
        k = 0
        next_kill = 20
        etcd_at, nats_at = 0.4 * duration, 0.7 * duration
        while not self.stop:
            now = time.monotonic() - t0
            if now >= next_kill and now < duration - 25:
                name, nid, proc, _ = self.kill_order[k % len(self.kill_order)]
                k += 1
                w = self.open_window(name)
                proc.kill()
                events.append(f"{now:.0f}s kill {nid}")
                await asyncio.sleep(10)
                await asyncio.get_running_loop().run_in_executor(None, proc.start)
                w[2] = time.monotonic()
                events.append(f"{time.monotonic() - t0:.0f}s restart {nid}")
                next_kill += 30
                continue
            if self.etcd and etcd_at and now >= etcd_at:
                etcd_at = 0
                w = self.open_window("etcd")
                await asyncio.get_running_loop().run_in_executor(None, self.etcd.stop)
                events.append(f"{now:.0f}s etcd stopped")
                await asyncio.sleep(5)
                await asyncio.get_running_loop().run_in_executor(None, self.etcd.start)
                w[2] = time.monotonic() + 10  # the sidecar's session: backoff, then re-put
                events.append(f"{time.monotonic() - t0:.0f}s etcd started")
                continue
            if self.nats and nats_at and now >= nats_at:
                nats_at = 0
                w = self.open_window("nats")
                await asyncio.get_running_loop().run_in_executor(None, self.nats.stop)
                events.append(f"{now:.0f}s nats-server stopped")
                await asyncio.sleep(5)
                await asyncio.get_running_loop().run_in_executor(None, self.nats.start)
                w[2] = time.monotonic() + 5  # the NATS client's reconnect wait
                events.append(f"{time.monotonic() - t0:.0f}s nats-server started")
                continue
            await asyncio.sleep(0.5)
        self.events = events

    async def mixed(self):
        duration = MINUTES * 60
        self.t0 = time.monotonic()
        log(f"phase 2: {MINUTES:g} min of mixed load ({SUBSCRIBERS} subscribers, backends {BACKENDS})")
        tasks = [asyncio.create_task(self.node_keeper())]
        await asyncio.sleep(1)
        tasks += [asyncio.create_task(self.subscriber(i)) for i in range(SUBSCRIBERS)]
        for _ in range(100):
            if self.sub_ready >= SUBSCRIBERS:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)  # the subscriptions reach the broker
        tasks += [asyncio.create_task(self.rpc_worker(i)) for i in range(4)]
        tasks += [asyncio.create_task(self.proxy_worker(i)) for i in range(2)]
        threads = [threading.Thread(target=self.h2_worker, args=(i,), daemon=True)
                   for i in range(2)]
        threads += [threading.Thread(target=self.grpc_worker, args=(m,), daemon=True)
                    for m in ("unary", "server stream", "bidi stream")]
        for th in threads:
            th.start()
        tasks += [asyncio.create_task(self.registry_worker()), asyncio.create_task(self.publisher()),
                  asyncio.create_task(self.rss_sampler()), asyncio.create_task(self.chaos(duration))]
        t0 = time.monotonic()
        while time.monotonic() - t0 < duration:
            await asyncio.sleep(5)
            if not self.sidecar.up:
                self.stats.bad("sidecar", "the sidecar exited", False)
                break
        self.stop = True
        await asyncio.sleep(2)  # in-flight messages arrive
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for th in threads:  # each call is bounded by its 10-15 s timeout
            await asyncio.get_running_loop().run_in_executor(None, th.join, 30)

    # -- the end
    async def check_registrations(self):
        """Every node registration back and correct (address, port, metadata; no node the soak
        did not register), in the sidecar's view and (etcd) in the store."""
        client = Client(self.port)
        lost = []
        await asyncio.sleep(4)  # the last heartbeats and re-puts land
        for name in sorted({n[0] for n in self.nodes}):
            st, body = await client.request("GET", f"/registry?service={name}")
            got = {n["id"]: n for v in (json.loads(body) if st == 200 else []) for n in v["nodes"]}
            mine = {nid: (proc, meta) for svc, nid, proc, meta in self.nodes if svc == name}
            for nid in set(got) - set(mine):
                lost.append(f"{name}/{nid}: a node nobody registered")
            for nid, (proc, meta) in mine.items():
                n = got.get(nid)
                if n is None:
                    lost.append(f"{name}/{nid} missing from the sidecar")
                elif (n.get("address"), n.get("port")) not in ((HOST, proc.port),
                                                                (f"{HOST}:{proc.port}", None),
                                                                (f"{HOST}:{proc.port}", 0)):
                    lost.append(f"{name}/{nid} has address {n.get('address')} port {n.get('port')}")
                elif any((n.get("metadata") or {}).get(k) != v for k, v in meta.items()):
                    lost.append(f"{name}/{nid} has metadata {n.get('metadata')}")
        for i in range(20):
            name = f"soak.svc.{i}"
            st, body = await client.request("GET", f"/registry?service={name}")
            if st != 200:
                lost.append(f"{name} missing from the sidecar ({st})")
        if self.etcd:
            keys = await asyncio.get_running_loop().run_in_executor(None, self.etcd.keys)
            for name, nid, _, _ in self.nodes:
                if f"/micro/registry/{name}/{nid}" not in keys:
                    lost.append(f"{name}/{nid} missing from etcd")
            for i in range(20):
                if f"/micro/registry/soak.svc.{i}/soak.svc.{i}-n" not in keys:
                    lost.append(f"soak.svc.{i} missing from etcd")
        return lost

    def lost_messages(self):
        """Acknowledged publishes a live subscriber never got, outside a nats outage."""
        lost = 0
        last = max(self.published) if self.published else 0
        for seq, t in self.published.items():
            if seq > last - PUBLISH_RATE * 2 or self.outage_covers(("nats",), t):
                continue  # the tail may be in flight; an outage may drop messages
            for got in self.received.values():
                if seq not in got:
                    lost += 1
        return lost


async def main():
    with tempfile.TemporaryDirectory(prefix="micro-soak-") as tmp:
        s = Soak(tmp)
        s.start_all()
        try:
            await s.many_connections()
            await s.mixed()
            lost_regs = await s.check_registrations()
        finally:
            s.stop_all()
    lost_msgs = s.lost_messages()
    warm = [kb for t, kb in s.rss if t >= 60] or [kb for _, kb in s.rss]
    growth = (max(warm[-3:]) - warm[0]) if warm else 0
    rss_flat = growth <= max(8192, warm[0] // 4) if warm else False
    result = {"minutes": MINUTES, "backends": BACKENDS, "phase1": s.phase1,
              "ok": s.stats.ok, "expected_errors": s.stats.expected,
              "unexpected_errors": s.stats.unexpected, "unexpected_samples": s.stats.samples,
              "expected_samples": s.stats.expected_samples, "error_reasons": s.stats.reasons,
              "published": len(s.published), "subscribers": SUBSCRIBERS,
              "messages_lost": lost_msgs, "rss_kb": s.rss, "rss_growth_kb": growth,
              "events": getattr(s, "events", []), "registrations_lost": lost_regs}
    out = ROOT / "build" / "soak-result.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    log("events: " + "; ".join(result["events"]))
    log(f"ok: {s.stats.ok}")
    log(f"expected errors (node, etcd or nats down): {s.stats.expected}")
    for kind, whys in s.stats.expected_samples.items():
        log(f"  expected {kind}, e.g.: {whys[0]}")
    log("errors by reason (expected and unexpected):")
    for why, n in sorted(s.stats.reasons.items()):
        log(f"  {n:6d}  {why}")
    log(f"unexpected errors: {s.stats.unexpected}")
    for line in s.stats.samples:
        log("  " + line)
    log(f"messages: {len(s.published)} published x {SUBSCRIBERS} subscribers, {lost_msgs} lost")
    log("RSS (s, kB): " + " ".join(f"{t}:{kb}" for t, kb in s.rss))
    log(f"RSS growth after warm-up: {growth} kB ({'flat' if rss_flat else 'GROWING'})")
    log(f"registrations lost: {lost_regs or 'none'}")
    bad = (sum(s.stats.unexpected.values()) or lost_msgs or lost_regs or not rss_flat
           or s.phase1["held"] != CONNECTIONS or s.phase1["second_ok"] != CONNECTIONS)
    log("FAILED" if bad else "passed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
