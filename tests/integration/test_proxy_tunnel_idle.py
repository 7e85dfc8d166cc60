"""A proxied upgrade (WebSocket) tunnel is bounded in time: with no byte either way for
--proxy_idle_timeout the sidecar closes both ends (as nginx's proxy_read_timeout does); a
tunnel with traffic stays open however long it lives."""

import asyncio
import time

import websockets

import harness

from harness import HOST, AppProcess, service

SVC = "go.micro.srv.foo"


def start(tmp_path, micro):
    app = AppProcess(tmp_path, "http_app.py", "a")
    sc = micro("--handler=proxy", "--proxy_idle_timeout=1s")
    r = sc.register(service(SVC, [app.node()]))
    assert r.status == 200, r
    return app, sc


def tunnel(sc):
    """A WebSocket to the echo app through the sidecar's tunnel (no pings of its own)."""
    return websockets.connect(f"ws://{HOST}:{sc.port}/foo/chat/ws", open_timeout=5,
                              close_timeout=2, ping_interval=None)


async def echo(ws, text):
    await ws.send(text)
    assert await asyncio.wait_for(ws.recv(), 5) == text


def test_silent_tunnel_is_closed_after_the_idle_timeout(tmp_path, micro):
    app, sc = start(tmp_path, micro)
    try:
        async def run():
            async with tunnel(sc) as ws:
                await echo(ws, "hello")
                t0 = time.monotonic()
                try:  # nothing either way: the sidecar must close the tunnel
                    await asyncio.wait_for(ws.recv(), 10)
                    raise AssertionError("a message arrived on a silent tunnel")
                except websockets.ConnectionClosed:
                    return time.monotonic() - t0

        waited = asyncio.run(run())
        assert waited < 10, waited  # closed by the sidecar, not by the test's own bound
        assert sc.get("/foo/after").status == 200  # and it still proxies
    finally:
        app.stop()


def test_busy_tunnel_outlives_the_idle_timeout(tmp_path, micro):
    app, sc = start(tmp_path, micro)
    try:
        async def run():
            async with tunnel(sc) as ws:
                end = time.monotonic() + 3.5  # three and a half timeouts
                i = 0
                while time.monotonic() < end:
                    await echo(ws, f"m{i}")
                    i += 1
                    await asyncio.sleep(0.3)
                return i

        assert asyncio.run(run()) >= 5
    finally:
        app.stop()


def test_shutdown_with_a_tunnel_open_exits_cleanly(tmp_path, micro):
    """SIGTERM while a tunnel is open (and its idle timer running) closes both ends and
    exits 0 with nothing left (the sanitizer build reports any leak or stray handle)."""
    app, sc = start(tmp_path, micro)
    try:
        async def run():
            async with tunnel(sc) as ws:
                await echo(ws, "hello")
                assert harness.finish_sidecar(sc) == []
                try:
                    await asyncio.wait_for(ws.recv(), 5)
                except websockets.ConnectionClosed:
                    return True
                return False

        assert asyncio.run(run())
    finally:
        app.stop()
