"""--registry=etcd against a real etcd (etcd_server.py): sidecars on one etcd share the registry
(discovery, calls, /registry watch streams), go-micro's key layout and leases (checked with
etcdctl), and the faults: etcd stopped, restarted, restarted with its data wiped, unreachable at
start-up; a sidecar killed (SIGKILL) or stopped (SIGTERM)."""

import json
import signal
import time

import pytest

import harness
from etcd_server import PREFIX, EtcdServer, available
from harness import node, service, wait_until
from ws_raw import OP_TEXT, RawWS

pytestmark = pytest.mark.skipif(not available(), reason="etcd-server/etcd-client not installed")

TTL = 3  # seconds: short leases keep the fault tests fast
FLAGS = (f"--register_ttl={TTL}s", "--register_interval=1s", "--drain_timeout=3s")


@pytest.fixture
def etcd(tmp_path, request):
    server = EtcdServer(tmp_path).start()
    yield server
    server.stop()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print("--- etcd log:\n" + server.log())


@pytest.fixture
def rpc_app(tmp_path):
    apps = []

    def start(name):
        app = harness.AppProcess(tmp_path, "jsonrpc_app.py", name)
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()


def etcd_sidecar(micro, etcd, *flags, **kw):
    return micro("--registry=etcd", f"--registry_address={etcd.address}", *FLAGS, *flags, **kw)


def call(sc, name, who="x"):
    body = {"service": name, "method": "Example.Call", "request": {"name": who}}
    return sc.request("POST", "/rpc", body=json.dumps(body),
                      headers={"Content-Type": "application/json"})


def node_ids(sc, name):
    return sorted(n["id"] for n in sc.nodes(name))


def sidecar_keys(etcd):
    return [k for k in etcd.keys() if k.startswith(PREFIX + "go.micro.sidecar/")]


def watch_events(ws, name, timeout=10):
    """Reads watch frames until one concerns service `name`; returns it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = ws.read_frame(timeout=max(0.1, deadline - time.monotonic()))
        assert frame is not None, "watch stream ended"
        assert frame[1] == OP_TEXT
        event = json.loads(frame[2])
        if event["service"]["name"] == name:
            return event
    raise AssertionError(f"no watch event for {name} within {timeout}s")


def test_three_sidecars_share_one_registry(micro, etcd, rpc_app):
    scs = [etcd_sidecar(micro, etcd) for _ in range(3)]
    watchers = [RawWS(sc.port, "/registry") for sc in scs]
    try:
        app = rpc_app("alpha")
        r = scs[0].register(service("greeter", [node("greeter-1", port=app.port)]))
        assert r.status == 200, r
        # Discovered and called through the other two.
        for sc in scs[1:]:
            wait_until(lambda: node_ids(sc, "greeter") == ["greeter-1"], 5,
                       message="greeter on another sidecar")
            res = call(sc, "greeter")
            assert res.status == 200, res
            assert res.json()["node"] == "alpha"
        # Every watch stream saw the registration made on one sidecar.
        for ws in watchers:
            ev = watch_events(ws, "greeter")
            assert ev["action"] == "create" and ev["service"]["nodes"][0]["id"] == "greeter-1"
        # And one made on another.
        assert scs[2].register(service("other", [node("o-1")])).status == 200
        for ws in watchers:
            assert watch_events(ws, "other")["action"] == "create"
    finally:
        for ws in watchers:
            ws.close()

    # go-micro's layout: one key per node holding its service with that one node, on the
    # registering sidecar's lease; one lease per sidecar.
    keys = etcd.keys()
    kv = keys[PREFIX + "greeter/greeter-1"]
    assert kv["value"]["name"] == "greeter"
    assert [n["id"] for n in kv["value"]["nodes"]] == ["greeter-1"]
    assert len(sidecar_keys(etcd)) == 3
    assert len(etcd.leases()) == 3
    remaining, granted = etcd.ttl(kv["lease"])
    assert granted == TTL and 0 < remaining <= TTL
    # Deregistration deletes the key at once, everywhere.
    assert scs[1].deregister(service("greeter", [node("greeter-1")])).status == 200
    assert PREFIX + "greeter/greeter-1" not in etcd.keys()
    for sc in scs:
        wait_until(lambda: sc.lookup("greeter").status == 404, 5, message="greeter gone")


def test_ttl_registration_gets_its_own_lease(micro, etcd):
    sc = etcd_sidecar(micro, etcd)
    # The sidecar listens before its etcd session is up (writes are 503 until then, by design):
    # its own key in etcd says the session and its lease exist.
    wait_until(lambda: sidecar_keys(etcd), 10, message="the sidecar's session with etcd")
    assert sc.register(service("short", [node("s-1")]), ttl="4s").status == 200
    kv = etcd.keys()[PREFIX + "short/s-1"]
    _, granted = etcd.ttl(kv["lease"])
    assert granted == 4
    sidecar_lease = etcd.keys()[sidecar_keys(etcd)[0]]["lease"]
    assert kv["lease"] != sidecar_lease
    # Not kept alive by the sidecar: gone after its TTL, while the sidecar's nodes stay.
    wait_until(lambda: PREFIX + "short/s-1" not in etcd.keys(), 10, message="short expired")
    wait_until(lambda: sc.lookup("short").status == 404, 5, message="short left the view")
    assert sidecar_keys(etcd)


def test_etcd_down_view_kept_writes_503_then_wiped_store_refilled(micro, etcd, rpc_app):
    a, b = etcd_sidecar(micro, etcd), etcd_sidecar(micro, etcd)
    app = rpc_app("beta")
    assert a.register(service("greeter", [node("g-1", port=app.port)])).status == 200
    wait_until(lambda: node_ids(b, "greeter") == ["g-1"], 5, message="greeter on b")
    before = sorted(etcd.keys())
    assert len(before) == 3  # two sidecars and greeter

    etcd.stop()
    a.wait_stderr(r"registry etcd: retrying", 10)
    b.wait_stderr(r"registry etcd: retrying", 10)
    # Reads and calls keep coming from the view.
    assert node_ids(b, "greeter") == ["g-1"]
    res = call(b, "greeter")
    assert res.status == 200 and res.json()["node"] == "beta", res
    # Writes are refused, never silently dropped.
    r = b.register(service("late", [node("l-1")]))
    harness.assert_error_json(r, 503, error_id="go.micro.registry")
    r = b.deregister(service("greeter", [node("g-1")]))
    harness.assert_error_json(r, 503, error_id="go.micro.registry")

    # Back with its data folder wiped: every sidecar's registrations return by themselves
    # within one TTL.
    etcd.restart(wipe=True)
    wait_until(lambda: sorted(etcd.keys()) == before, TTL + 5, message="keys re-put")
    assert len(etcd.leases()) == 2
    # The watch follows the new store: a new registration reaches the other sidecar.
    assert a.register(service("after", [node("af-1")])).status == 200
    wait_until(lambda: node_ids(b, "after") == ["af-1"], 5, message="after on b")


def test_etcd_restart_resumes_the_watch(micro, etcd):
    a, b = etcd_sidecar(micro, etcd), etcd_sidecar(micro, etcd)
    assert a.register(service("one", [node("1")])).status == 200
    wait_until(lambda: node_ids(b, "one") == ["1"], 5, message="one on b")
    etcd.restart()
    wait_until(lambda: a.register(service("two", [node("2")])).status == 200, TTL + 5,
               message="writes accepted again")
    wait_until(lambda: node_ids(b, "two") == ["2"], 5, message="two on b")
    assert node_ids(b, "one") == ["1"]


def test_killed_sidecar_leaves_nothing_after_its_ttl(micro, etcd):
    a, b = etcd_sidecar(micro, etcd), etcd_sidecar(micro, etcd)
    assert a.register(service("orphan", [node("o-1")])).status == 200
    wait_until(lambda: node_ids(b, "orphan") == ["o-1"], 5, message="orphan on b")
    a.signal(signal.SIGKILL)
    a.wait_exit(5)
    a.expect_exit = None
    wait_until(lambda: b.lookup("orphan").status == 404, TTL + 4, message="orphan expired")
    assert len(sidecar_keys(etcd)) == 1


def test_stopped_sidecar_deletes_its_keys_at_once(micro, etcd):
    a, b = etcd_sidecar(micro, etcd), etcd_sidecar(micro, etcd)
    assert a.register(service("leaving", [node("lv-1")])).status == 200
    assert len(sidecar_keys(etcd)) == 2
    a.signal(signal.SIGTERM)
    assert a.wait_exit(10) == 0
    keys = etcd.keys()
    assert PREFIX + "leaving/lv-1" not in keys
    assert len(sidecar_keys(etcd)) == 1
    wait_until(lambda: b.lookup("leaving").status == 404, 3, message="leaving gone from b")


def test_etcd_unreachable_at_start_up(micro, tmp_path):
    etcd = EtcdServer(tmp_path)  # ports chosen, not started
    try:
        sc = etcd_sidecar(micro, etcd, "--server_name=app", "--server_address=127.0.0.1:9999")
        sc.wait_stderr(r"registry etcd: retrying", 5)
        assert sc.get("/registry").status == 200  # serving its (empty) view
        etcd.start()
        wait_until(lambda: len(etcd.keys()) == 2, TTL + 5, message="sidecar and app registered")
        wait_until(lambda: sc.nodes("app"), 5, message="app in the view")
    finally:
        etcd.stop()


def test_etcd_flags(micro):
    r = harness.run_micro(["sidecar", "--registry=etcd"])
    assert r.rc == 2 and "--registry_address" in r.stderr, r
    r = harness.run_micro(["sidecar", "--registry=etcd", "--registry_address=127.0.0.1"])
    assert r.rc == 2 and "--registry_address" in r.stderr, r
