"""SPEC 3.1 (end): GET /registry with a WebSocket upgrade streams registry changes as text
frames {"action":"create|update|delete","service":{...}}, optionally for one service."""

import asyncio
import json
import time

import pytest
import websockets

import harness
from harness import node, service
from ws_raw import OP_TEXT, RawWS


def run(coro, timeout=30):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


async def next_event(ws, name=None, timeout=5):
    """The next event (of service `name` when given: the sidecar's own registration and
    renewals are skipped), checked for shape and key order."""
    deadline = time.monotonic() + timeout
    while True:
        frame = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
        assert isinstance(frame, str), "watch events are text frames"
        pairs = json.loads(frame, object_pairs_hook=list)
        assert [k for k, _ in pairs] == ["action", "service"], frame
        event = json.loads(frame)
        svc_keys = [k for k, _ in pairs[1][1]]
        assert svc_keys == ["name", "version", "metadata", "endpoints", "nodes"], frame
        if name is None or event["service"]["name"] == name:
            return event


async def no_event(ws, name, seconds):
    try:
        while True:
            event = await next_event(ws, None, seconds)
            assert event["service"]["name"] != name, f"unexpected event {event}"
    except asyncio.TimeoutError:
        return True


def ids(event):
    return [n["id"] for n in event["service"]["nodes"] or []]


def test_register_update_expire_deregister(sidecar):
    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{sidecar.port}/registry") as ws:
            post = lambda svc, **kw: asyncio.to_thread(sidecar.register, svc, **kw)  # noqa: E731
            r = await post(service("foo", [node("foo-1", port=9001, metadata={"k": "v"})], version="1.0"))
            assert r.status == 200, r
            ev = await next_event(ws, "foo")
            assert ev["action"] == "create"
            assert ev["service"]["name"] == "foo" and ev["service"]["version"] == "1.0"
            assert ev["service"]["nodes"] == [{"id": "foo-1", "address": "127.0.0.1", "port": 9001,
                                               "metadata": {"k": "v"}}]

            # The same node again: an update.
            assert (await post(service("foo", [node("foo-1", port=9001)], version="1.0"))).status == 200
            ev = await next_event(ws, "foo")
            assert ev["action"] == "update" and ids(ev) == ["foo-1"]

            # A node with a TTL that is not renewed: created, then deleted by expiry.
            assert (await post(service("foo", [node("foo-2", port=9002)], version="1.0"), ttl="1s")).status == 200
            ev = await next_event(ws, "foo")
            assert ev["action"] == "create" and ids(ev) == ["foo-2"]
            started = time.monotonic()
            ev = await next_event(ws, "foo", timeout=6)
            assert ev["action"] == "delete" and ids(ev) == ["foo-2"]
            assert time.monotonic() - started >= 0.5

            # Deregistration.
            r = await asyncio.to_thread(sidecar.deregister, service("foo", [node("foo-1")]))
            assert r.status == 200, r
            ev = await next_event(ws, "foo")
            assert ev["action"] == "delete" and ids(ev) == ["foo-1"]
    run(go())


def test_service_filter(sidecar):
    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{sidecar.port}/registry?service=bar") as bar, \
                websockets.connect(f"ws://127.0.0.1:{sidecar.port}/registry") as every:
            assert (await asyncio.to_thread(sidecar.register, service("foo", [node("f1")]))).status == 200
            assert (await asyncio.to_thread(sidecar.register, service("bar", [node("b1")]))).status == 200
            ev = await next_event(bar)
            assert ev["action"] == "create" and ev["service"]["name"] == "bar"
            assert (await next_event(every, "foo"))["service"]["name"] == "foo"
            assert (await next_event(every, "bar"))["service"]["name"] == "bar"
            await no_event(bar, "foo", 0.5)
    run(go())


def test_unwatch_on_close(sidecar):
    """Watchers that went away get nothing and cost nothing: many open and close, then a
    change still reaches the one left (and the sanitizer build sees no leak or stale use)."""
    for _ in range(20):
        ws = RawWS(sidecar.port, "/registry")
        ws.close()
    with RawWS(sidecar.port, "/registry?service=z") as ws:
        time.sleep(0.2)
        assert sidecar.register(service("z", [node("z1")])).status == 200
        fin, op, payload = ws.read_frame()
        assert op == OP_TEXT and json.loads(payload)["action"] == "create"


def test_watch_client_frames_are_ignored(sidecar):
    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{sidecar.port}/registry?service=q") as ws:
            await ws.send("anything")
            assert (await asyncio.to_thread(sidecar.register, service("q", [node("q1")]))).status == 200
            ev = await next_event(ws, "q")
            assert ev["action"] == "create"
    run(go())


def test_watch_needs_allowed_origin(micro):
    sc = micro("--cors=http://ok.example")
    with pytest.raises(AssertionError, match="403"):
        RawWS(sc.port, "/registry", headers={"Origin": "http://other.example"})
    # A plain GET /registry is still the list.
    assert sc.get("/registry").status == 200
    harness.wait_until(lambda: sc.nodes("go.micro.sidecar"), 5, message="sidecar registered")
