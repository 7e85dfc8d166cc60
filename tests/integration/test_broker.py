"""SPEC 3.4: pub/sub over WebSockets and POST /broker, against the real binary, with real
clients (python3-websockets, node's ws) and a raw socket for protocol violations."""

import asyncio
import base64
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import websockets

import harness
from ws_raw import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawWS, close_payload

NODE_DIR = Path(__file__).resolve().parent / "node"
SEED_JSON = '{"Header":{"Content-Type":"text/plain"},"Body":"aGVsbG8gd29ybGQ="}'


def url(sc, topic=None, queue=None, path="/broker"):
    q = []
    if topic is not None:
        q.append(f"topic={topic}")
    if queue is not None:
        q.append(f"queue={queue}")
    return f"ws://127.0.0.1:{sc.port}{path}" + ("?" + "&".join(q) if q else "")


def run(coro, timeout=30):
    """Runs a coroutine to completion within timeout seconds."""
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


def message(body, content_type="text/plain"):
    return {"Header": {"Content-Type": content_type}, "Body": base64.b64encode(body).decode()}


async def recv_json(ws, timeout=5):
    frame = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(frame, str), f"broker frames must be text, got {type(frame)}"
    return json.loads(frame)


async def nothing_within(ws, seconds):
    try:
        frame = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return True
    raise AssertionError(f"unexpected frame {frame!r}")


# ---- the seed and the basics ----------------------------------------------------------------


def test_seed_example(sidecar):
    """The seed's Go client: dial /broker?topic=foo, write "hello world" repeatedly, and print
    what comes back: its own messages, as text frames of exactly this JSON."""
    async def go():
        async with websockets.connect(url(sidecar, "foo")) as ws:
            for _ in range(3):
                await ws.send("hello world")
                frame = await asyncio.wait_for(ws.recv(), 5)
                assert frame == SEED_JSON
    run(go())


def test_upgrade_content_type_and_binary_frames(sidecar):
    async def go():
        hdrs = {"Content-Type": "application/octet-stream"}
        async with websockets.connect(url(sidecar, "bin"), extra_headers=hdrs) as ws:
            await ws.send(b"\x00\xff\x10")
            assert await recv_json(ws) == message(b"\x00\xff\x10", "application/octet-stream")
            await ws.send("")
            assert await recv_json(ws) == message(b"", "application/octet-stream")
    run(go())


def test_self_delivery_and_other_subscribers(sidecar):
    async def go():
        async with websockets.connect(url(sidecar, "t")) as a, \
                websockets.connect(url(sidecar, "t")) as b:
            await a.send("from a")
            assert await recv_json(a) == message(b"from a")
            assert await recv_json(b) == message(b"from a")
            await b.send("from b")
            assert await recv_json(a) == message(b"from b")
            assert await recv_json(b) == message(b"from b")
    run(go())


def test_topic_isolation(sidecar):
    async def go():
        async with websockets.connect(url(sidecar, "foo")) as foo, \
                websockets.connect(url(sidecar, "bar")) as bar, \
                websockets.connect(url(sidecar, "foo.bar")) as foobar:
            await foo.send("only foo")
            assert await recv_json(foo) == message(b"only foo")
            await nothing_within(bar, 0.5)
            await nothing_within(foobar, 0.1)
            await bar.send("only bar")
            assert await recv_json(bar) == message(b"only bar")
            await nothing_within(foo, 0.3)
    run(go())


def test_queue_group_beside_plain_subscriber(sidecar):
    """Each message to exactly one member of group q (round robin), while the plain
    subscriber and a second group each get everything."""
    n = 30

    async def go():
        members = [await websockets.connect(url(sidecar, "jobs", "q")) for _ in range(3)]
        other = await websockets.connect(url(sidecar, "jobs", "other"))
        plain = await websockets.connect(url(sidecar, "jobs"))
        try:
            for i in range(n):
                r = await asyncio.to_thread(sidecar.request, "POST", "/broker?topic=jobs",
                                            body=f"job-{i}".encode(), headers={"Content-Type": "text/plain"})
                assert r.status == 200, r
            got_plain = [await recv_json(plain) for _ in range(n)]
            assert [base64.b64decode(m["Body"]).decode() for m in got_plain] == [f"job-{i}" for i in range(n)]
            got_other = [await recv_json(other) for _ in range(n)]
            assert got_other == got_plain
            per_member = []
            for m in members:
                bodies = []
                while True:
                    try:
                        bodies.append(base64.b64decode((await recv_json(m, 0.5))["Body"]).decode())
                    except asyncio.TimeoutError:
                        break
                per_member.append(bodies)
            everything = sorted(b for bodies in per_member for b in bodies)
            assert everything == sorted(f"job-{i}" for i in range(n)), per_member
            assert [len(b) for b in per_member] == [n // 3] * 3, per_member
        finally:
            for ws in [*members, other, plain]:
                await ws.close()
    run(go())


def test_queue_group_member_leaving(sidecar):
    """A member that leaves stops getting its share; the rest of the group gets everything."""
    async def go():
        a = await websockets.connect(url(sidecar, "w", "g"))
        b = await websockets.connect(url(sidecar, "w", "g"))
        await b.close()
        await asyncio.sleep(0.2)
        for i in range(5):
            r = await asyncio.to_thread(sidecar.request, "POST", "/broker?topic=w", body=f"{i}".encode())
            assert r.status == 200
        got = [base64.b64decode((await recv_json(a))["Body"]) for _ in range(5)]
        assert got == [b"0", b"1", b"2", b"3", b"4"]
        await a.close()
    run(go())


# ---- POST /broker -----------------------------------------------------------------------------


def test_post_publishes_body_with_micro_headers(sidecar):
    async def go():
        async with websockets.connect(url(sidecar, "news")) as ws:
            body = b'{"a":1}\x00\xfe'
            r = await asyncio.to_thread(sidecar.request, "POST", "/broker?topic=news", body=body,
                                        headers={"Content-Type": "application/json", "X-Micro-Id": "42",
                                                 "x-micro-trace-id": "abc", "X-Other": "dropped"})
            assert r.status == 200, r
            got = await recv_json(ws)
            assert got["Body"] == base64.b64encode(body).decode()
            assert got["Header"] == {"Content-Type": "application/json", "X-Micro-Id": "42",
                                     "X-Micro-Trace-Id": "abc"}
            assert list(got.keys()) == ["Header", "Body"]
    run(go())


def test_post_errors(micro):
    sc = micro("--broker_max_message=1024")
    harness.assert_error_json(sc.request("POST", "/broker", body=b"x"), 400)
    harness.assert_error_json(sc.request("POST", "/broker?topic=", body=b"x"), 400)
    harness.assert_error_json(sc.request("POST", "/broker?topic=big", body=b"x" * 1025), 413)
    assert sc.request("POST", "/broker?topic=big", body=b"x" * 1024).status == 200
    assert sc.request("POST", "/broker?topic=nobody", body=b"").status == 200


# ---- the upgrade ------------------------------------------------------------------------------


def test_no_topic_no_upgrade_bad_handshake(sidecar):
    harness.assert_error_json(sidecar.get("/broker?topic=foo"), 400)  # no upgrade
    with pytest.raises(AssertionError, match="400"):
        RawWS(sidecar.port, "/broker")
    with pytest.raises(AssertionError, match="400"):
        RawWS(sidecar.port, "/broker?topic=")
    with pytest.raises(AssertionError, match="426"):
        RawWS(sidecar.port, "/broker?topic=foo", headers={"Sec-WebSocket-Version": "8"})
    # The version header must come with the 426 (RFC 6455 4.4).
    with sidecar.raw() as c:
        c.send(b"GET /broker?topic=foo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 7\r\n\r\n")
        r = c.read_response()
        assert r.status == 426 and r.header("Sec-WebSocket-Version") == "13", r
    with sidecar.raw() as c:
        c.send(b"GET /broker?topic=foo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n")
        harness.assert_error_json(c.read_response(), 400)


def test_accept_key_is_rfc6455(sidecar):
    with sidecar.raw() as c:
        c.send(b"GET /broker?topic=foo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        r = c.read_response()
        assert r.status == 101, r
        assert r.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_origin_checked_against_cors(micro):
    sc = micro("--cors=http://good.example")
    with pytest.raises(AssertionError, match="403"):
        RawWS(sc.port, "/broker?topic=foo", headers={"Origin": "http://evil.example"})
    with pytest.raises(AssertionError, match="403"):
        RawWS(sc.port, "/registry", headers={"Origin": "http://evil.example"})
    with RawWS(sc.port, "/broker?topic=foo", headers={"Origin": "http://good.example"}) as ws:
        ws.send_frame(OP_TEXT, b"hi")
        assert json.loads(ws.read_frame()[2]) == message(b"hi")


def test_frames_after_the_head_are_published(sidecar):
    """Bytes that arrive with the upgrade request (client did not wait for the 101)."""
    from ws_raw import encode_frame
    with sidecar.raw() as c:
        c.send(b"GET /broker?topic=early HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
               + encode_frame(OP_TEXT, b"early bird"))
        data = b""
        deadline = time.monotonic() + 5
        while SEED_JSON[:10].encode() not in data or not data.endswith(b"}"):
            c.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data += c.sock.recv(65536)
        assert data.split(b"\r\n\r\n", 1)[1][2:] == json.dumps(message(b"early bird"), separators=(",", ":")).encode()


# ---- RFC 6455 framing through the whole stack ---------------------------------------------------


def test_fragments_with_interleaved_ping(sidecar):
    with RawWS(sidecar.port, "/broker?topic=frag") as ws:
        text = "héllo wörld".encode()
        ws.send_frame(OP_TEXT, text[:2], fin=False)  # splits the é across fragments
        ws.send_frame(OP_PING, b"p1")
        ws.send_frame(OP_CONT, text[2:8], fin=False)
        ws.send_frame(OP_CONT, text[8:], fin=True)
        fin, op, payload = ws.read_frame()
        assert (fin, op, payload) == (True, OP_PONG, b"p1")
        fin, op, payload = ws.read_frame()
        assert fin and op == OP_TEXT
        assert json.loads(payload) == message(text)
        ws.send_frame(OP_CLOSE, close_payload(1000))
        assert ws.read_close() == (1000, b"")
        assert ws.ended()


@pytest.mark.parametrize("name,frames,code", [
    ("unmasked", [dict(opcode=OP_TEXT, payload=b"hi", mask=False)], 1002),
    ("bad_utf8", [dict(opcode=OP_TEXT, payload=b"ok \xff")], 1007),
    ("bad_utf8_across_fragments", [dict(opcode=OP_TEXT, payload=b"\xe2\x82", fin=False),
                                   dict(opcode=OP_CONT, payload=b"A")], 1007),
    ("bad_close_code", [dict(opcode=OP_CLOSE, payload=close_payload(1005))], 1002),
    ("bad_close_code_999", [dict(opcode=OP_CLOSE, payload=close_payload(999))], 1002),
    ("bad_opcode", [dict(opcode=0x3, payload=b"")], 1002),
    ("oversized_ping", [dict(opcode=OP_PING, payload=b"x" * 126)], 1002),
    ("fragmented_ping", [dict(opcode=OP_PING, payload=b"x", fin=False)], 1002),
    ("continuation_first", [dict(opcode=OP_CONT, payload=b"x")], 1002),
    ("rsv_bits", [dict(opcode=OP_TEXT, payload=b"x", rsv=4)], 1002),
    ("too_big", [dict(opcode=OP_BINARY, payload=b"x" * 1025)], 1009),
    ("too_big_in_fragments", [dict(opcode=OP_BINARY, payload=b"x" * 600, fin=False),
                              dict(opcode=OP_CONT, payload=b"x" * 600)], 1009),
])
def test_protocol_error_close_codes(micro, name, frames, code):
    sc = micro("--broker_max_message=1024")
    with RawWS(sc.port, "/broker?topic=err") as ws:
        for f in frames:
            ws.send_frame(**f)
        got = ws.read_close()
        assert got is not None and got[0] == code, (name, got)
        assert ws.ended(), "the server must close TCP after the close handshake"
    # The sidecar is still serving.
    with RawWS(sc.port, "/broker?topic=err") as ws:
        ws.send_frame(OP_TEXT, b"x" * 1024)
        assert json.loads(ws.read_frame()[2]) == message(b"x" * 1024)


def test_too_big_with_a_library_client(micro):
    sc = micro("--broker_max_message=1000")

    async def go():
        async with websockets.connect(url(sc, "big")) as ws:
            await ws.send("y" * 1000)
            assert await recv_json(ws) == message(b"y" * 1000)
            await ws.send("y" * 1001)
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 5)
            assert info.value.code == 1009
    run(go())


def test_client_close_handshake(sidecar):
    async def go():
        ws = await websockets.connect(url(sidecar, "bye"))
        await ws.close(code=4000, reason="done")
        assert ws.close_code == 4000
    run(go())


# ---- scale and backpressure ---------------------------------------------------------------------


@pytest.mark.timeout_s(120)
def test_100_subscribers_1000_messages_in_order(sidecar):
    subs, n = 100, 1000

    async def reader(ws, out):
        for _ in range(n):
            out.append(base64.b64decode(json.loads(await ws.recv())["Body"]))

    async def go():
        conns = [await websockets.connect(url(sidecar, "fan")) for _ in range(subs)]
        pub = await websockets.connect(url(sidecar, "fan"))
        got = [[] for _ in conns]
        own = []
        tasks = [asyncio.create_task(reader(ws, out)) for ws, out in zip(conns, got)]
        tasks.append(asyncio.create_task(reader(pub, own)))
        started = time.monotonic()
        for i in range(n):
            await pub.send(f"m{i:04d}")
        await asyncio.wait_for(asyncio.gather(*tasks), 90)
        elapsed = time.monotonic() - started
        want = [f"m{i:04d}".encode() for i in range(n)]
        for out in got + [own]:
            assert out == want
        for ws in conns + [pub]:
            await ws.close()
        return elapsed

    elapsed = run(go(), timeout=110)
    print(f"100 x 1000 delivered in {elapsed:.2f}s")


@pytest.mark.timeout_s(90)
def test_slow_reader_cut_with_1008_others_unharmed(sidecar):
    """A subscriber that stops reading is closed with 1008 once its queue passes 8 MiB; the
    publisher and the other subscribers never wait for it and get everything."""
    size, count = 64 * 1024, 400  # 25 MiB: past the 8 MiB bound plus any socket buffers
    slow = RawWS(sidecar.port, "/broker?topic=flood", rcvbuf=4096)

    async def reader(ws, out):
        for _ in range(count):
            out.append(json.loads(await ws.recv())["Body"])

    async def go():
        fast = [await websockets.connect(url(sidecar, "flood"), max_size=2 ** 21) for _ in range(3)]
        pub = await websockets.connect(url(sidecar, "flood"), max_size=2 ** 21)
        got = [[] for _ in range(4)]
        tasks = [asyncio.create_task(reader(ws, out)) for ws, out in zip(fast + [pub], got)]
        started = time.monotonic()
        for i in range(count):
            await pub.send(bytes([i % 256]) * size)
            if i % 16 == 15:
                # Readers that keep up: these Python clients share one process with the
                # publisher, so it lets them catch up (1 MiB at a time) instead of outrunning
                # them past the bound too. The slow reader never catches up.
                while min(len(out) for out in got) < i - 16:
                    await asyncio.sleep(0.005)
        publish_time = time.monotonic() - started
        # The slow reader now reads: whatever was queued for it, then the 1008 close.
        closing = asyncio.create_task(asyncio.to_thread(slow.read_close, 20))
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        want = [base64.b64encode(bytes([i % 256]) * size).decode() for i in range(count)]
        for out in got:
            assert out == want
        for ws in fast + [pub]:
            await ws.close()
        return await closing, publish_time

    (close, publish_time) = run(go(), timeout=80)
    slow.close()
    assert close is not None and close[0] == 1008, close
    assert publish_time < 30
    sidecar.wait_stderr(r"too slow")


def test_slow_watchers_do_not_block_post(sidecar):
    """POST returns at once even when a subscriber never reads."""
    slow = RawWS(sidecar.port, "/broker?topic=p", rcvbuf=4096)
    started = time.monotonic()
    for _ in range(200):
        assert sidecar.request("POST", "/broker?topic=p", body=b"z" * 65536).status == 200
    assert time.monotonic() - started < 20
    assert slow.read_close(10)[0] == 1008
    slow.close()


# ---- shutdown -----------------------------------------------------------------------------------


def test_sigterm_closes_sessions_with_1001(sidecar):
    broker = RawWS(sidecar.port, "/broker?topic=x")
    watch = RawWS(sidecar.port, "/registry")
    broker.send_frame(OP_TEXT, b"before")
    assert json.loads(broker.read_frame()[2]) == message(b"before")
    sidecar.signal()
    assert broker.read_close(5)[0] == 1001
    code = None
    while True:  # the watch stream first sees the sidecar deregister itself
        f = watch.read_frame(5)
        assert f is not None
        if f[1] == OP_CLOSE:
            code = int.from_bytes(f[2][:2], "big")
            watch.send_frame(OP_CLOSE, f[2][:2])
            break
    assert code == 1001
    assert sidecar.wait_exit(10) == 0
    broker.close()
    watch.close()


def test_sigterm_with_silent_client_is_bounded(sidecar):
    """A client that never answers our close does not hold up the exit past the bound."""
    ws = RawWS(sidecar.port, "/broker?topic=x")
    started = time.monotonic()
    sidecar.signal()
    assert sidecar.wait_exit(10) == 0
    assert time.monotonic() - started < 5
    ws.close()


# ---- node's ws ---------------------------------------------------------------------------------


def test_node_ws_client(sidecar):
    node = shutil.which("node")
    assert node, "node is required"
    if not (NODE_DIR / "node_modules" / "ws").is_dir():
        pytest.fail(f"node's ws is not installed: run npm ci --prefix {NODE_DIR}")
    out = subprocess.run([node, str(NODE_DIR / "pubsub.js"), str(sidecar.port)], capture_output=True,
                         timeout=30, text=True)
    assert out.returncode == 0, out.stderr + out.stdout
    lines = [json.loads(ln) for ln in out.stdout.splitlines() if ln.strip()]
    assert lines == [message(b"hello from node", "application/json")] * 3 + [message(b"\x01\x02\x03", "application/json")]


# ---- NUL in the topic (SPEC 11) ---------------------------------------------------------------


def test_topic_with_nul_is_400_and_reaches_no_one(sidecar):
    """topic=a%00zzz once reached the subscribers of "a": the NUL cut it short."""
    async def go():
        async with websockets.connect(url(sidecar, "a")) as ws:
            r = await asyncio.to_thread(sidecar.request, "POST", "/broker?topic=a%00zzz",
                                        body=b"smuggled")
            obj = harness.assert_error_json(r, 400, error_id="go.micro.broker")
            assert obj["detail"] == "invalid topic: contains a NUL (%00)", obj
            # The next message to "a" is the first one the subscriber sees.
            r = await asyncio.to_thread(sidecar.request, "POST", "/broker?topic=a", body=b"good")
            assert r.status == 200, r
            got = await recv_json(ws)
            assert got["Body"] == base64.b64encode(b"good").decode(), got
    run(go())
    # Subscribing is refused the same way, and a queue name too.
    with pytest.raises(AssertionError, match="400"):
        RawWS(sidecar.port, "/broker?topic=a%00zzz")
    with pytest.raises(AssertionError, match="400"):
        RawWS(sidecar.port, "/broker?topic=a&queue=q%00x")
