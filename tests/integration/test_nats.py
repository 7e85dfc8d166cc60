"""--broker=nats (SPEC 7, issue 10): sidecars on one real nats-server act as one broker.

Every test starts its own nats-server on a free loopback port (nats_server.py) and stops it by
pid; a sidecar is `micro sidecar --broker=nats --broker_address=nats://127.0.0.1:PORT`."""

import base64
import json
import signal
import time

import pytest

import harness
from nats_server import NatsServer, available, nats  # noqa: F401 (fixture)
from ws_raw import OP_CLOSE, OP_TEXT, RawWS

pytestmark = pytest.mark.skipif(not available(), reason="nats-server is not installed")


def nats_sidecar(micro, server, *flags, **kw):
    return micro("--broker=nats", f"--broker_address={server.url}", *flags, **kw)


def verbose_health(sc):
    r = sc.get("/health?verbose=1")
    return r.status, r.json()


def broker_state(sc):
    return verbose_health(sc)[1]["broker"]


def wait_broker(sc, state, timeout=15):
    harness.wait_until(lambda: broker_state(sc)["state"] == state, timeout,
                       message=f"broker state {state} on :{sc.port}")


def subscribe(sc, topic, queue=None):
    path = f"/broker?topic={topic}" + (f"&queue={queue}" if queue else "")
    return RawWS(sc.port, path)


def body_of(frame):
    fin, opcode, payload = frame
    assert fin and opcode == OP_TEXT, frame
    return base64.b64decode(json.loads(payload)["Body"])


def read_bodies(ws, n, timeout=10):
    return [body_of(ws.read_frame(timeout=timeout)) for _ in range(n)]


def collect(wss, n, timeout=15):
    """Bodies received over several WebSockets until n arrived or timeout (bounded)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        for ws in wss:
            try:  # small frames on loopback arrive whole: a timeout never splits one
                got.append(body_of(ws.read_frame(timeout=0.2)))
            except AssertionError:
                pass
    return got


def publish(sc, topic, body):
    return sc.request("POST", f"/broker?topic={topic}", body=body,
                      headers={"Content-Type": "text/plain"})


def test_publish_reaches_subscribers_on_other_sidecars(micro, nats):
    a, b, c = (nats_sidecar(micro, nats) for _ in range(3))
    for sc in (a, b, c):
        wait_broker(sc, "connected")
    with subscribe(b, "fleet") as wb, subscribe(c, "fleet") as wc, subscribe(c, "fleet") as wc2:
        # Two local subscribers on c share one NATS subscription.
        nats.wait_subscriptions(2)
        r = publish(a, "fleet", b"over http")
        assert r.status == 200, r
        for ws in (wb, wc, wc2):
            frame = ws.read_frame(timeout=10)
            msg = json.loads(frame[2])
            assert msg == {"Header": {"Content-Type": "text/plain"},
                           "Body": base64.b64encode(b"over http").decode()}
        # A WebSocket publisher on a: its frame goes out through NATS too.
        with subscribe(a, "fleet") as wa:
            nats.wait_subscriptions(3)
            wa.send_frame(OP_TEXT, b"over ws")
            for ws in (wa, wb, wc, wc2):
                assert body_of(ws.read_frame(timeout=10)) == b"over ws"
    # The last local subscriber gone, so is the sidecar's NATS subscription.
    nats.wait_subscriptions(0)


def test_queue_group_over_two_sidecars_gets_each_message_once(micro, nats):
    a, b, c = (nats_sidecar(micro, nats) for _ in range(3))
    for sc in (a, b, c):
        wait_broker(sc, "connected")
    n = 40
    with subscribe(b, "jobs", "workers") as wb, subscribe(c, "jobs", "workers") as wc, \
            subscribe(c, "jobs", "workers") as wc2, subscribe(b, "jobs") as plain:
        nats.wait_subscriptions(3)  # b: group + plain, c: group
        for i in range(n):
            assert publish(a, "jobs", f"job-{i}".encode()).status == 200
        # The plain subscriber sees all; the group members, between them, each exactly once.
        assert read_bodies(plain, n) == [f"job-{i}".encode() for i in range(n)]
        got = collect([wb, wc, wc2], n)
        assert sorted(got) == sorted(f"job-{i}".encode() for i in range(n))
        assert len(set(got)) == n


@pytest.mark.timeout_s(120)
def test_nats_restart_resubscribes(micro, tmp_path):
    server = NatsServer(tmp_path).start()
    try:
        a, b, c = (nats_sidecar(micro, server) for _ in range(3))
        for sc in (a, b, c):
            wait_broker(sc, "connected")
        with subscribe(b, "news") as wb, subscribe(c, "news") as wc, \
                subscribe(b, "work", "q") as qb, subscribe(c, "work", "q") as qc:
            server.wait_subscriptions(4)
            server.stop()
            for sc in (a, b, c):
                wait_broker(sc, "retrying")
            st = broker_state(a)
            assert st["error"] and st["since"].endswith("Z"), st

            # While NATS is away a publish is refused where the publisher sees it.
            r = publish(a, "news", b"lost?")
            harness.assert_error_json(r, 503, error_id="go.micro.broker")
            assert "nats" in r.json()["detail"]

            server.start()
            for sc in (a, b, c):
                wait_broker(sc, "connected")
            server.wait_subscriptions(4)  # resubscribed by themselves, queue groups too
            assert publish(a, "news", b"after").status == 200
            assert body_of(wb.read_frame(timeout=10)) == b"after"
            assert body_of(wc.read_frame(timeout=10)) == b"after"
            for i in range(6):
                assert publish(a, "work", f"w{i}".encode()).status == 200
            seen = collect([qb, qc], 6)
            assert sorted(seen) == sorted(f"w{i}".encode() for i in range(6))
    finally:
        server.stop()


def test_websocket_publisher_gets_1013_while_nats_is_away(micro, tmp_path):
    server = NatsServer(tmp_path).start()
    try:
        a = nats_sidecar(micro, server)
        wait_broker(a, "connected")
        with subscribe(a, "t") as wa:
            server.wait_subscriptions(1)
            server.stop()
            wait_broker(a, "retrying")
            wa.send_frame(OP_TEXT, b"nobody hears this")
            code, reason = wa.read_close(timeout=10)
            assert code == 1013
            assert b"try again later" in reason
        a.wait_stderr(r"closing the publisher with 1013")
    finally:
        server.stop()


@pytest.mark.timeout_s(120)
def test_sidecar_starts_while_nats_is_down(micro, tmp_path):
    server = NatsServer(tmp_path)  # not started: nothing listens on its port yet
    a = nats_sidecar(micro, server)
    status, body = verbose_health(a)
    assert status == 200  # plain /health's meaning: the app's health
    assert body["app"]["status"] == 200
    assert body["registry"] == {"backend": "memory", "state": "connected"}
    assert body["broker"]["backend"] == "nats"
    assert body["broker"]["state"] == "retrying"
    assert body["broker"]["error"]
    assert body["broker"]["since"].endswith("Z")
    assert a.get("/health").status == 200 and a.get("/health").body == b""
    harness.assert_error_json(publish(a, "t", b"x"), 503, error_id="go.micro.broker")
    with subscribe(a, "t") as wa:  # a subscription made while away is sent on connect
        try:
            server.start()
            wait_broker(a, "connected")
            server.wait_subscriptions(1)
            assert publish(a, "t", b"now").status == 200
            assert body_of(wa.read_frame(timeout=10)) == b"now"
        finally:
            server.stop()
    a.wait_stderr(r"broker nats: retrying")
    a.wait_stderr(r"broker nats: connected")


def test_sigterm_is_clean_with_subscribers(micro, nats):
    a = nats_sidecar(micro, nats)
    b = nats_sidecar(micro, nats)
    wait_broker(a, "connected")
    subs = [subscribe(a, "bye"), subscribe(a, "bye", "g"), subscribe(b, "bye")]
    nats.wait_subscriptions(3)
    assert publish(b, "bye", b"x").status == 200
    assert body_of(subs[0].read_frame(timeout=10)) == b"x"
    a.signal(signal.SIGTERM)
    assert subs[0].read_close(timeout=10)[0] == 1001
    assert a.wait_exit(15) == 0
    assert not harness.sanitizer_reports(a.stderr())
    nats.wait_subscriptions(1)  # only b's is left
    for ws in subs:
        ws.close()


def test_flags(micro):
    r = harness.run_micro(["sidecar", "--broker=nats"])
    assert r.rc == 2
    assert "--broker=nats requires --broker_address" in r.stderr
    r = harness.run_micro(["sidecar", "--broker=nats", "--broker_address=127.0.0.1:4222"])
    assert r.rc == 2
    assert 'invalid value "127.0.0.1:4222" for flag --broker_address' in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = harness.run_micro(["sidecar", "--broker=nats"],
                          env={"MICRO_BROKER_ADDRESS": "nats://127.0.0.1:4222,nats://x"})
    assert r.rc == 2 and '"nats://x"' in r.stderr


def test_verbose_health_keeps_the_apps_status_code(micro, health_app, tmp_path):
    """NATS down and the app down are told apart; the code is still the app's (SPEC 3.5)."""
    server = NatsServer(tmp_path)  # never started
    sc = nats_sidecar(micro, server, f"--healthcheck_url={health_app.url}")
    status, body = verbose_health(sc)
    assert status == 200
    assert body["app"] == {"status": 200, "state": "healthy", "healthcheck_url": health_app.url}
    assert body["broker"]["state"] == "retrying"
    health_app.set(status=503)
    status, body = verbose_health(sc)
    assert status == 503 and sc.get("/health").status == 503
    assert body["app"]["state"] == "unhealthy"
    assert body["app"]["error"] == "Non 200 response: 503"
    assert body["broker"]["backend"] == "nats" and body["broker"]["state"] == "retrying"
    assert sc.get("/health?verbose=0").body == b"Non 200 response: 503"


def test_frame_over_nats_max_payload_closes_the_publisher(micro, nats):
    """Under --broker_max_message (1 MiB) but over nats-server's max_payload (1 MB) once in its
    JSON envelope: POST gets 413, a WebSocket publisher a close 1009; neither is dropped
    without a word."""
    a = nats_sidecar(micro, nats)
    wait_broker(a, "connected")
    body = b"x" * (900 * 1024)
    r = publish(a, "big", body)
    harness.assert_error_json(r, 413, error_id="go.micro.broker")
    with subscribe(a, "big") as wa:
        wa.send_frame(OP_TEXT, body)
        code, reason = wa.read_close(timeout=10)
        assert code == 1009 and b"too large" in reason
