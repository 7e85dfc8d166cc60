"""SPEC 1: the command line: --help, bad flags, start-up failures, flag placement, env vars."""

import re
import socket

import pytest

import harness
from harness import HOST, free_port, run_micro

# Every sidecar flag of the SPEC 1 table: `micro sidecar --help` must list each one.
SIDECAR_FLAGS = [
    "sidecar_address", "server_name", "server_address", "server_advertise", "server_version",
    "server_metadata", "healthcheck_url", "healthcheck_interval", "healthcheck_timeout",
    "healthcheck_rise", "healthcheck_fall", "register_ttl", "register_interval", "registry",
    "registry_address", "broker", "broker_address", "selector", "handler", "namespace",
    "request_timeout", "dial_timeout", "proxy_idle_timeout", "retries", "cors", "max_connections", "max_body_size",
    "broker_max_message", "drain_timeout", "access_log", "log_level", "enable_stats",
    "enable_tls", "tls_cert_file", "tls_key_file", "tls_client_ca_file",
]


def flag_block(text, flag):
    """The help text describing --flag: its line plus continuation lines up to the next line
    that starts with another flag (works for one-line and multi-line help layouts)."""
    lines = text.splitlines()
    # Prefer the line that starts with the flag (maybe after aliases), over a mention of it
    # in another flag's description.
    own = re.compile(r"^\s*(?:--?\w+(?:=\S*)?,?\s+)*--" + re.escape(flag) + r"(?![A-Za-z0-9_])")
    anywhere = re.compile(r"--" + re.escape(flag) + r"(?![A-Za-z0-9_])")
    hits = [i for i, ln in enumerate(lines) if own.search(ln)]
    hits = hits or [i for i, ln in enumerate(lines) if anywhere.search(ln)]
    if not hits:
        raise AssertionError(f"--{flag} not in help:\n{text}")
    block = [lines[hits[0]]]
    for nxt in lines[hits[0] + 1:]:
        if re.match(r"^\s*-", nxt) or not nxt.strip():
            break
        block.append(nxt)
    return "\n".join(block)


@pytest.mark.parametrize("args", [["--help"], ["sidecar", "--help"]], ids=["global", "sidecar"])
def test_help_lists_sidecar_address_with_default_and_env(args):
    res = run_micro(args)
    assert res.rc == 0, res
    text = res.stdout + res.stderr
    block = flag_block(text, "sidecar_address")
    assert ":8081" in block, block
    assert "MICRO_SIDECAR_ADDRESS" in block, block


def test_sidecar_help_lists_every_flag_with_its_env_var():
    res = run_micro(["sidecar", "--help"])
    assert res.rc == 0, res
    text = res.stdout + res.stderr
    missing = [f for f in SIDECAR_FLAGS if not re.search(r"--" + f + r"(?![A-Za-z0-9_])", text)]
    assert not missing, f"flags missing from sidecar --help: {missing}\n{text}"
    no_env = [f for f in SIDECAR_FLAGS if "MICRO_" + f.upper() not in flag_block(text, f)]
    assert not no_env, f"flags whose env var is not shown: {no_env}\n{text}"
    # A few defaults from the SPEC table, shown beside their flag.
    for flag, default in [("register_ttl", "30s"), ("register_interval", "10s"),
                          ("healthcheck_interval", "5s"), ("drain_timeout", "5s"),
                          ("selector", "p2c"), ("namespace", "go.micro.srv")]:
        assert default in flag_block(text, flag), (flag, flag_block(text, flag))


def _addr():
    # Any case that wrongly starts a daemon must not take a well-known port.
    return f"--sidecar_address={HOST}:{free_port()}"


BAD = [
    # (id, args placed after the address flag, text the one line must contain)
    ("unknown-flag", ["sidecar", "--no_such_flag"], "no_such_flag"),
    ("unknown-flag-before-command", ["--no_such_flag", "sidecar"], "no_such_flag"),
    ("bad-duration", ["sidecar", "--register_ttl=abc"], "register_ttl"),
    ("bad-duration-unit", ["sidecar", "--healthcheck_interval=5q"], "healthcheck_interval"),
    ("missing-value", ["sidecar", "--drain_timeout"], "drain_timeout"),
    ("bad-int", ["sidecar", "--max_connections=many"], "max_connections"),
    ("bad-rise", ["sidecar", "--healthcheck_rise=two"], "healthcheck_rise"),
    ("bad-size", ["sidecar", "--max_body_size=huge"], "max_body_size"),
    ("bad-log-level", ["sidecar", "--log_level=loud"], "log_level"),
    ("bad-selector", ["sidecar", "--selector=fastest"], "selector"),
    ("bad-bool", ["sidecar", "--help=maybe"], "help"),
    ("server-name-alone", ["sidecar", "--server_name=foo"], "server_"),
    ("server-address-alone", ["sidecar", "--server_address=127.0.0.1:9090"], "server_"),
    # A bare port is the commonest slip: exit 2 with a hint, not a start-up failure (exit 1).
    ("bare-port-listen", ["sidecar", "--sidecar_address=20150"], "did you mean :20150?"),
    ("hostname-listen", ["sidecar", "--sidecar_address=example.invalid:1"], "numeric host"),
    ("listen-port-range", ["sidecar", "--sidecar_address=:70000"], "sidecar_address"),
    ("bare-port-app", ["sidecar", "--server_name=a", "--server_address=9090"],
     "did you mean :9090?"),
    ("no-port-advertise", ["sidecar", "--server_name=a", "--server_address=127.0.0.1:9090",
                           "--server_advertise=10.0.0.1"], "server_advertise"),
    ("ttl-not-longer-than-interval", ["sidecar", "--register_ttl=10s"], "--register_interval"),
    ("ttl-shorter-than-interval", ["sidecar", "--register_ttl=2s", "--register_interval=3s"],
     "--register_ttl"),
    ("bad-handler", ["sidecar", "--handler=grpc"], "handler"),
    ("bad-health-url", ["sidecar", "--server_name=a", "--server_address=127.0.0.1:9090",
                        "--healthcheck_url=ftp://x/"], "healthcheck_url"),
    ("unwritable-access-log", ["sidecar", "--access_log=/nonexistent-dir/access.log"],
     "access_log"),
    ("stray-argument", ["sidecar", "extra"], "extra"),
]


@pytest.mark.parametrize("args,needle", [(a, n) for _, a, n in BAD], ids=[i for i, _, _ in BAD])
def test_bad_flag_exits_2_with_one_line(args, needle):
    # The address goes right after `sidecar` (or first when flags precede the command).
    i = args.index("sidecar")
    full = args[: i + 1] + [_addr()] + args[i + 1:]
    res = run_micro(full, timeout=5)
    assert res.rc == 2, res
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{res.stderr}"
    assert needle in lines[0], res


def test_global_help_lists_the_commands():
    for args in (["--help"], ["help"]):
        res = run_micro(args)
        assert res.rc == 0, res
        for command in ("sidecar", "version", "help"):
            assert re.search(r"^\s+" + command + r"\s", res.stdout, re.M), (command, res.stdout)


def test_help_command_for_a_command():
    res = run_micro(["help", "sidecar"])
    assert res.rc == 0, res
    assert "Usage: micro [global flags] sidecar" in res.stdout, res
    assert "--register_ttl" in res.stdout, res
    res = run_micro(["help", "nosuch"])
    assert res.rc == 2 and "nosuch" in res.stderr, res


@pytest.mark.parametrize("args", [["--version"], ["version"], ["sidecar", "--version"]])
def test_version(args):
    res = run_micro(args)
    assert res.rc == 0, res
    assert re.fullmatch(r"micro version \d+\.\d+\.\d+\S*\n", res.stdout), res


def test_unknown_command_and_no_command_exit_2():
    res = run_micro(["sidekick"])
    assert res.rc == 2 and "sidekick" in res.stderr, res
    res = run_micro([])
    assert res.rc == 2 and "Usage" in res.stderr, res


def test_bad_env_value_exits_2():
    res = run_micro(["sidecar", _addr()], env={"MICRO_REGISTER_TTL": "abc"}, timeout=5)
    assert res.rc == 2, res
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res


def test_port_in_use_exits_1_with_reason():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind((HOST, 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        res = run_micro(["sidecar", f"--sidecar_address={HOST}:{port}"], timeout=10)
    assert res.rc == 1, res
    assert re.search(r"(?i)in use|EADDRINUSE", res.stderr), res


def _self_port(sc):
    """The port of the sidecar's own go.micro.sidecar node."""
    nodes = sc.nodes("go.micro.sidecar")
    assert nodes, "sidecar did not register itself"
    return nodes[0]["port"]


def test_address_flag_before_command(micro):
    port = free_port()
    sc = micro(pre=[f"--sidecar_address={HOST}:{port}"], address=False, port=port)
    assert sc.get("/health").status == 200
    assert _self_port(sc) == port


def test_flag_value_as_separate_argument(micro):
    port = free_port()
    sc = micro("--sidecar_address", f"{HOST}:{port}", address=False, port=port)
    assert sc.get("/health").status == 200


def test_address_alias(micro):
    port = free_port()
    sc = micro(f"--address={HOST}:{port}", address=False, port=port)
    assert sc.get("/health").status == 200


def test_env_sidecar_address(micro):
    port = free_port()
    sc = micro(address=False, port=port, env={"MICRO_SIDECAR_ADDRESS": f"{HOST}:{port}"})
    assert sc.get("/health").status == 200
    assert _self_port(sc) == port


def test_command_line_beats_env(micro):
    env_port, cli_port = free_port(), free_port()
    sc = micro(port=cli_port, env={"MICRO_SIDECAR_ADDRESS": f"{HOST}:{env_port}"})
    assert sc.get("/health").status == 200
    assert not harness.can_connect(env_port), "also listening on the env var's address"
    assert _self_port(sc) == cli_port


def test_env_for_other_flags_and_command_line_wins(micro):
    env = {"MICRO_SERVER_NAME": "envapp", "MICRO_SERVER_ADDRESS": "127.0.0.1:9999"}
    sc = micro(env=env)
    harness.wait_until(lambda: sc.nodes("envapp"), 5, message="envapp registered")
    sc2 = micro("--server_name=cliapp", env=env)
    harness.wait_until(lambda: sc2.nodes("cliapp"), 5, message="cliapp registered")
    assert sc2.lookup("envapp").status == 404


def test_durations_go_syntax_and_bare_seconds(micro):
    sc = micro("--register_ttl=1m30s", "--register_interval=10", "--drain_timeout=500ms",
               "--healthcheck_interval=1m", "--healthcheck_timeout=1500ms")
    assert sc.get("/health").status == 200


def test_boolean_flag_forms():
    """--flag, --flag=true and --flag=1 set a boolean; --flag=false clears it; a boolean never
    eats the next argument (here the command)."""
    for form in (["--help", "sidecar"], ["sidecar", "--help=true"], ["sidecar", "--help=1"]):
        r = run_micro(form)
        assert r.rc == 0, (form, r.stderr)
        assert "--sidecar_address" in r.stdout, form
    r = run_micro(["--help=false"])
    assert r.rc == 2 and "Usage" in (r.stdout + r.stderr)


def test_readme_flag_table_is_the_help_output():
    """The README's flag table is `micro sidecar --help`'s flag lines, verbatim."""
    import pathlib
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("<!-- flags:begin -->", 1)[1].split("<!-- flags:end -->", 1)[0]
    documented = [l for l in block.splitlines() if l.startswith("  --")]
    res = run_micro(["sidecar", "--help"])
    helped = [l for l in res.stdout.splitlines() if l.startswith("  --")]
    assert documented == helped


def test_man_page_lists_every_flag_and_command():
    """micro man writes micro(1) from the same tables as --help (make install installs it)."""
    res = run_micro(["man"])
    assert res.rc == 0, res
    page = res.stdout
    assert page.startswith(".TH MICRO 1 "), page[:80]
    helped = run_micro(["sidecar", "--help"]).stdout
    flags = re.findall(r"^  --(\w+)", helped, re.M)
    assert flags, helped
    for flag in flags:
        assert ".BR \\-\\-" + flag in page, flag
    for command in ("sidecar", "version", "help", "man"):
        assert f".TP\n.B {command}\n" in page, command
