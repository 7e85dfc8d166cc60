"""SPEC 10: the `micro` CLI against a running sidecar and JSON-RPC test services
(apps/jsonrpc_app.py): every command's text output line by line, --output json parsed, and
the error exits (sidecar not running, unknown service, bad JSON argument, wrong argument
counts)."""

import json
import re
import select
import signal
import subprocess

import pytest

from harness import HOST, child_env, free_port, micro_bin, node, run_micro, service
from test_rpc import apps  # noqa: F401  (the JSON-RPC node fixture)

SVC = "go.micro.srv.example"


def cli(sc, *args, timeout=15):
    """Runs `micro --proxy_address=127.0.0.1:<sidecar port> ARGS` to completion."""
    return run_micro([f"--proxy_address={HOST}:{sc.port}", *args], timeout=timeout)


def ok(res):
    assert res.rc == 0, res
    assert res.stderr == "", res
    return res.stdout


# ---- registry commands


def test_register_list_get_deregister(sidecar):
    svc = service("foo.bar", [node("foo-1", port=9091, metadata={"b": "2", "a": "1"}),
                              node("foo-22", address="10.0.0.7", port=80)], version="1.0.0")
    assert ok(cli(sidecar, "register", "service", json.dumps(svc))) == ""
    assert ok(cli(sidecar, "list", "services")).splitlines() == ["foo.bar", "go.micro.sidecar"]
    assert ok(cli(sidecar, "get", "service", "foo.bar")).splitlines() == [
        "service  foo.bar",
        "",
        "version  1.0.0",
        "",
        "Id      Address    Port  Metadata",
        "foo-1   127.0.0.1  9091  a=1,b=2",
        "foo-22  10.0.0.7   80    -",
    ]
    assert ok(cli(sidecar, "deregister", "service",
                  json.dumps({"name": "foo.bar", "nodes": [{"id": "foo-1"}]}))) == ""
    lines = ok(cli(sidecar, "get", "service", "foo.bar")).splitlines()
    assert lines[-2:] == ["Id      Address   Port  Metadata", "foo-22  10.0.0.7  80    -"]


def test_output_json_is_the_sidecars_answer(sidecar):
    svc = service("foo", [node("foo-1", port=9091)])
    assert ok(cli(sidecar, "-o", "json", "register", "service", json.dumps(svc))) in ("", "{}\n")
    listed = json.loads(ok(cli(sidecar, "list", "services", "--output=json")))
    assert sorted(s["name"] for s in listed) == ["foo", "go.micro.sidecar"]
    got = json.loads(ok(cli(sidecar, "-o", "json", "get", "service", "foo")))
    assert got == json.loads(sidecar.get("/registry?service=foo").body)
    assert got[0]["nodes"][0]["id"] == "foo-1"


def test_unknown_service_prints_the_404_detail(sidecar):
    res = cli(sidecar, "get", "service", "nope")
    assert res.rc == 1 and res.stdout == ""
    detail = json.loads(sidecar.get("/registry?service=nope").body)["detail"]
    assert res.stderr == f"micro: {detail}\n"
    res = cli(sidecar, "health", "nope")
    assert res.rc == 1 and res.stderr == f"micro: {detail}\n"


def test_bad_json_argument_is_a_usage_error(sidecar):
    for args in (["register", "service", "{bad"], ["query", SVC, "Example.Call", "{\"name\":"]):
        res = cli(sidecar, *args)
        assert res.rc == 2, res
        lines = res.stderr.splitlines()
        assert lines[0].startswith("micro: the JSON argument is not valid JSON: "), res
        assert lines[1].startswith(f"Usage: micro [global flags] {args[0]} "), res
    assert ok(cli(sidecar, "list", "services")) == "go.micro.sidecar\n"  # nothing registered


def test_registry_refusal_prints_its_detail(sidecar):
    res = cli(sidecar, "register", "service", '{"name":"x"}')
    assert res.rc == 1 and res.stdout == ""
    assert res.stderr.startswith("micro: ") and "node" in res.stderr, res


# ---- calls and health


def test_query_pretty_prints_the_result(sidecar, apps):
    (a,) = apps(1)
    sidecar.register(service(SVC, [a.node()]))
    want = ["{", '  "msg": "Hello John",', '  "node": "a"', "}"]
    for command in ("query", "call"):
        out = ok(cli(sidecar, command, SVC, "Example.Call", '{"name":"John"}'))
        assert out.splitlines() == want
    raw = ok(cli(sidecar, "-o", "json", "query", SVC, "Example.Call", '{"name":"John"}'))
    assert json.loads(raw) == {"msg": "Hello John", "node": "a"}
    # no request argument: {}
    assert json.loads(ok(cli(sidecar, "-o", "json", "call", SVC, "Example.Call")))["msg"] == \
        "Hello None"


def test_query_error_prints_the_services_detail(sidecar, apps):
    (a,) = apps(1)
    sidecar.register(service(SVC, [a.node()]))
    res = cli(sidecar, "query", SVC, "Test.Error", '{"error":"out of cheese"}')
    assert res.rc == 1 and res.stdout == "", res
    assert res.stderr == "micro: error during request: out of cheese\n", res  # /rpc detail
    res = cli(sidecar, "query", "go.micro.srv.nobody", "X.Y")
    assert res.rc == 1 and res.stderr.startswith("micro: "), res


def test_health_rows_per_node(sidecar, apps):
    a, b = apps(2)
    b.set_mode("fail")
    sidecar.register(service(SVC, [a.node(), b.node()]))
    # The sidecar's own node answers Debug.Health with {"status":"ok"}.
    lines = ok(cli(sidecar, "health", "go.micro.sidecar")).splitlines()
    assert len(lines) == 1
    assert re.fullmatch(rf"go\.micro\.sidecar-[0-9a-f-]+  {HOST}:{sidecar.port}  ok", lines[0])
    res = cli(sidecar, "health", SVC)
    assert res.rc == 1, res  # a node failed
    lines = res.stdout.splitlines()
    assert len(lines) == 2, res
    by_node = {ln.split()[0]: ln for ln in lines}
    addr_a, addr_b = f"{HOST}:{a.port}", f"{HOST}:{b.port}"
    # aligned: the status column starts at the same offset on both rows
    assert lines[0].index(addr_a if lines[0].startswith("a-") else addr_b) == \
        lines[1].index(addr_b if lines[0].startswith("a-") else addr_a)
    assert by_node["b-node"].endswith(f"{addr_b}  error during request: node b failing"), res
    assert by_node["a-node"].startswith(f"a-node  {addr_a}  "), res  # the echo's result
    rows = json.loads(cli(sidecar, "-o", "json", "health", SVC).stdout)
    rows = {r["node"]: r for r in rows}
    assert rows["b-node"]["status"] == "error during request: node b failing" and "error" in rows["b-node"]
    assert rows["a-node"]["address"] == addr_a and "result" in rows["a-node"]


# ---- pub/sub


class Subscriber:
    """`micro subscribe ...` in the background; ready once it says so on stderr."""

    def __init__(self, sc, *args):
        self.proc = subprocess.Popen(
            [micro_bin(), f"--proxy_address={HOST}:{sc.port}", "subscribe", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=child_env())
        r, _, _ = select.select([self.proc.stderr], [], [], 10)
        line = self.proc.stderr.readline().decode() if r else ""
        assert line.startswith("micro: subscribed to "), line

    def finish(self, timeout=10):
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out.decode(), err.decode()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=5)


def test_publish_reaches_subscribe_with_count(sidecar):
    sub = Subscriber(sidecar, "news", "--count", "2")
    try:
        assert ok(cli(sidecar, "publish", "news", "hello world")) == ""
        assert ok(cli(sidecar, "publish", "other", "not for us")) == ""
        assert ok(cli(sidecar, "publish", "news", "second")) == ""
        rc, out, err = sub.finish()
    finally:
        sub.kill()
    assert rc == 0, err
    assert out.splitlines() == ["hello world", "second"]


def test_subscribe_json_and_sigint(sidecar):
    sub = Subscriber(sidecar, "news", "-o", "json")
    try:
        assert ok(cli(sidecar, "publish", "news", "x y")) == ""
        line = sub.proc.stdout.readline().decode()
        msg = json.loads(line)
        assert msg["Body"] == "eCB5"  # base64 of "x y"
        sub.proc.send_signal(signal.SIGINT)
        rc, out, err = sub.finish()
    finally:
        sub.kill()
    assert rc == 0 and out == "", (rc, out, err)


def test_subscribe_queue_splits_messages(sidecar):
    """Two members of one queue group get each message once between them; a plain
    subscriber gets every message."""
    q1 = Subscriber(sidecar, "jobs", "--queue", "workers", "--count", "4")
    q2 = Subscriber(sidecar, "jobs", "--queue=workers", "--count", "4")
    everyone = Subscriber(sidecar, "jobs", "--count", "4")
    try:
        for i in range(4):
            assert ok(cli(sidecar, "publish", "jobs", f"job {i}")) == ""
        rc, out, err = everyone.finish()
        assert rc == 0 and out.splitlines() == [f"job {i}" for i in range(4)], err
        for q in (q1, q2):
            q.proc.send_signal(signal.SIGINT)
        got = []
        for q in (q1, q2):
            rc, out, err = q.finish()
            assert rc == 0, err
            got += out.splitlines()
        assert sorted(got) == [f"job {i}" for i in range(4)]
    finally:
        for s in (q1, q2, everyone):
            s.kill()


# ---- errors and usage


def test_sidecar_not_running():
    port = free_port()
    res = run_micro([f"--proxy_address={HOST}:{port}", "list", "services"])
    assert res.rc == 1 and res.stdout == ""
    assert res.stderr == (f"micro: cannot reach the sidecar at {HOST}:{port} (connection refused): "
                          "is micro sidecar running? (--proxy_address)\n")
    # the default address, named as such, and http:// accepted
    res = run_micro(["publish", "t", "m"], env={"MICRO_PROXY_ADDRESS": f"http://{HOST}:{port}"})
    assert res.rc == 1 and f"{HOST}:{port}" in res.stderr
    res = run_micro([f"--proxy_address={HOST}:{port}", "subscribe", "t"])
    assert res.rc == 1 and "connection refused" in res.stderr


# https:// (TLS and client certificates) is tested in test_tls.py, with its certificates.


@pytest.mark.parametrize("args,usage", [
    (["list"], "list services"),
    (["list", "services", "extra"], "list services"),
    (["list", "nodes"], "list services"),
    (["get", "service"], "get service NAME"),
    (["register", "service"], "register service JSON"),
    (["query", SVC], "query SERVICE METHOD [JSON]"),
    (["call", SVC, "A.B", "{}", "x"], "call SERVICE METHOD [JSON]"),
    (["health"], "health SERVICE"),
    (["publish", "t"], "publish TOPIC MESSAGE"),
    (["subscribe"], "subscribe TOPIC [--queue Q] [--count N]"),
])
def test_wrong_arguments_exit_2_with_the_usage(args, usage):
    res = run_micro(["--proxy_address=127.0.0.1:1", *args])
    assert res.rc == 2, res
    assert res.stdout == ""
    assert res.stderr.splitlines()[-1] == f"Usage: micro [global flags] {usage} [flags]", res


@pytest.mark.parametrize("form", [["help", "subscribe"], ["subscribe", "--help"]])
def test_command_help_shows_usage_and_its_flags(form):
    res = run_micro(form)
    assert res.rc == 0, res
    text = res.stdout
    assert text.startswith("Usage: micro [global flags] subscribe TOPIC [--queue Q] [--count N]")
    flags = re.findall(r"^  --(\w+)", text, re.M)
    for f in ("proxy_address", "output", "request_timeout", "queue", "count", "help"):
        assert f in flags, f
    assert "register_ttl" not in flags and "sidecar_address" not in flags
    get = run_micro(["get", "--help"]).stdout
    assert get.startswith("Usage: micro [global flags] get service NAME [flags]")
    assert "--proxy_address" in get and "--queue" not in get
    sidecar = run_micro(["sidecar", "--help"]).stdout
    assert "--proxy_address" not in sidecar and "--register_ttl" in sidecar


def test_global_help_lists_the_cli_commands():
    text = run_micro(["--help"]).stdout
    for usage in ("list services", "get service NAME", "register service JSON",
                  "deregister service JSON", "query SERVICE METHOD [JSON]",
                  "call SERVICE METHOD [JSON]", "health SERVICE", "publish TOPIC MESSAGE",
                  "subscribe TOPIC [--queue Q] [--count N]"):
        assert re.search(r"^  " + re.escape(usage) + r"  ", text, re.M), usage


def test_readme_cli_flag_table_is_the_help_output():
    """The README's CLI flag table is `micro subscribe --help`'s flag lines, verbatim (the
    sidecar's table is checked by test_flags.py)."""
    import pathlib
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("<!-- cli-flags:begin -->", 1)[1].split("<!-- cli-flags:end -->", 1)[0]
    documented = [ln for ln in block.splitlines() if ln.startswith("  --")]
    helped = [ln for ln in run_micro(["subscribe", "--help"]).stdout.splitlines()
              if ln.startswith("  --")]
    assert documented and documented == helped


def test_cli_ignores_a_sidecars_environment(sidecar):
    """Run where a sidecar's MICRO_* variables are set (a pod, a unit), the CLI does not apply
    the daemon's cross-flag rules."""
    res = run_micro(["list", "services", f"--proxy_address=127.0.0.1:{sidecar.port}"],
                    env={"MICRO_SERVER_NAME": "half-configured", "MICRO_REGISTER_TTL": "1s"})
    assert res.rc == 0, res
    assert "go.micro.sidecar" in res.stdout.split(), res
