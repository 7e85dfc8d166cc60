"""SPEC 8 and 9: TLS and mTLS on the API port (--enable_tls, --tls_cert_file, --tls_key_file,
--tls_client_ca_file), with certificates made by `openssl` at run time: HTTPS through curl and
python's ssl, WSS through python3-websockets, client certificates, plain HTTP on the TLS port,
every bad-file exit, SIGHUP rotation, and sslscan's view of the protocol policy."""

import asyncio
import base64
import json
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import websockets

import harness
from harness import HOST, AppProcess, free_port, run_micro, service, wait_until

SVC = "go.micro.srv.example"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
            f"{name}.crt", "-days", "2", "-subj", f"/CN={name}", cwd=d)


def make_cert(d, ca, name, serial, ext):
    """A certificate `name`.crt/.key signed by `ca`, with this serial and extension line."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
            f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    (Path(d) / f"{name}.ext").write_text(ext + "\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-set_serial", str(serial), "-out", f"{name}.crt", "-days", "2", "-extfile",
            f"{name}.ext", cwd=d)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A CA; two server certificates for 127.0.0.1 (serials 1001 and 1002, for rotation); a
    client certificate of that CA and one of a foreign CA."""
    d = tmp_path_factory.mktemp("certs")
    make_ca(d, "ca")
    make_ca(d, "foreign")
    server_ext = "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"
    make_cert(d, "ca", "server", 1001, server_ext)
    make_cert(d, "ca", "server2", 1002, server_ext)
    make_cert(d, "ca", "client", 2001, "extendedKeyUsage=clientAuth")
    make_cert(d, "foreign", "intruder", 3001, "extendedKeyUsage=clientAuth")
    return d


def tls_flags(certs, client_ca=False):
    f = ["--enable_tls", f"--tls_cert_file={certs / 'server.crt'}",
         f"--tls_key_file={certs / 'server.key'}"]
    if client_ca:
        f.append(f"--tls_client_ca_file={certs / 'ca.crt'}")
    return f


def client_ctx(certs, cert=None, max_version=None):
    ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    ctx.set_alpn_protocols(["http/1.1"])
    if cert:
        ctx.load_cert_chain(str(certs / f"{cert}.crt"), str(certs / f"{cert}.key"))
    if max_version:
        ctx.maximum_version = max_version
    return ctx


def https(port, ctx, method="GET", path="/health", body=None, headers=None, session=None):
    """One request over a fresh TLS connection: (status, body bytes, the ssl socket's facts)."""
    raw = socket.create_connection((HOST, port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname=HOST, session=session)
    try:
        data = body.encode() if isinstance(body, str) else (body or b"")
        head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n"
        head += f"Content-Length: {len(data)}\r\n"
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n"
        s.sendall(head.encode() + b"\r\n" + data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        status = int(out.split(b" ", 2)[1])
        facts = {"alpn": s.selected_alpn_protocol(), "version": s.version(),
                 "reused": s.session_reused, "session": s.session,
                 "cert": s.getpeercert(binary_form=True)}
        return status, out.split(b"\r\n\r\n", 1)[1], facts
    finally:
        s.close()


def curl(*args, timeout=20):
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True,
                          text=True, timeout=timeout)


def der(path):
    return ssl.PEM_cert_to_DER_cert(Path(path).read_text())


# ---- HTTPS, WSS, the protocol ----


def test_curl_over_https(micro, certs, tmp_path):
    sc = micro(*tls_flags(certs))
    base = f"https://{HOST}:{sc.port}"
    r = curl("--cacert", str(certs / "ca.crt"), "-w", "%{http_code} %{http_version}", base + "/health")
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("200 2"), r.stdout  # curl offers h2 by ALPN, and gets it
    body = json.dumps(service("go.micro.srv.tls", [harness.node("n1", port=9999)]))
    r = curl("--cacert", str(certs / "ca.crt"), "-X", "POST", "-H", "Content-Type: application/json",
             "-d", body, "-w", "%{http_code}", base + "/registry")
    assert r.returncode == 0 and r.stdout.endswith("200"), (r.stdout, r.stderr)
    r = curl("--cacert", str(certs / "ca.crt"), base + "/registry?service=go.micro.srv.tls")
    assert json.loads(r.stdout)[0]["nodes"][0]["id"] == "n1"
    # Without the CA the certificate is not trusted: the client refuses it.
    assert curl(base + "/health").returncode != 0


def test_rpc_through_https_to_a_jsonrpc_app(micro, certs, tmp_path):
    app = AppProcess(tmp_path, "jsonrpc_app.py", "a")
    try:
        sc = micro(*tls_flags(certs))
        ctx = client_ctx(certs)
        status, _, _ = https(sc.port, ctx, "POST", "/registry",
                             json.dumps(service(SVC, [app.node()])),
                             {"Content-Type": "application/json"})
        assert status == 200
        req = {"service": SVC, "method": "Example.Call", "request": {"name": "tls"}}
        r = curl("--cacert", str(certs / "ca.crt"), "-H", "Content-Type: application/json", "-d",
                 json.dumps(req), f"https://{HOST}:{sc.port}/rpc")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["node"] == "a", r.stdout
    finally:
        app.stop()


def test_proxy_over_https_says_so_to_the_app(micro, certs, tmp_path):
    """--handler=proxy behind TLS: the app hears X-Forwarded-Proto: https (it was told http)."""
    app = AppProcess(tmp_path, "http_app.py", "a")
    try:
        sc = micro("--handler=proxy", *tls_flags(certs))
        ctx = client_ctx(certs)
        svc = service("go.micro.srv.web", [app.node()])
        assert https(sc.port, ctx, "POST", "/registry", json.dumps(svc),
                     {"Content-Type": "application/json"})[0] == 200
        status, body, _ = https(sc.port, ctx, path="/web/hello")
        assert status == 200, body
        headers = {k.lower(): v for k, v in json.loads(body)["headers"]}
        assert headers["x-forwarded-proto"] == "https", headers
    finally:
        app.stop()


def test_python_ssl_versions_alpn_and_resumption(micro, certs):
    sc = micro(*tls_flags(certs))
    status, _, facts = https(sc.port, client_ctx(certs))
    assert status == 200
    assert facts["alpn"] == "http/1.1"
    assert facts["version"] == "TLSv1.3"
    assert facts["cert"] == der(certs / "server.crt")
    # TLS 1.2 is served, and a session resumes from its ticket.
    ctx12 = client_ctx(certs, max_version=ssl.TLSVersion.TLSv1_2)
    status, _, first = https(sc.port, ctx12)
    assert status == 200 and first["version"] == "TLSv1.2" and not first["reused"]
    status, _, again = https(sc.port, ctx12, session=first["session"])
    assert status == 200 and again["reused"]
    # TLS 1.3 resumes too (the ticket arrives after the handshake, read with the answer).
    ctx13 = client_ctx(certs)
    _, _, first = https(sc.port, ctx13)
    _, _, again = https(sc.port, ctx13, session=first["session"])
    assert again["reused"]


def test_tls_11_refused(micro, certs):
    sc = micro(*tls_flags(certs))
    r = subprocess.run(["openssl", "s_client", "-connect", f"{HOST}:{sc.port}", "-tls1_1"],
                       input="", capture_output=True, text=True, timeout=20)
    assert r.returncode != 0
    assert "Cipher is (NONE)" in r.stdout, r.stdout  # no session was agreed


def test_self_node_is_marked_secure(micro, certs):
    sc = micro(*tls_flags(certs))
    _, body, _ = https(sc.port, client_ctx(certs), path="/registry?service=go.micro.sidecar")
    node = json.loads(body)[0]["nodes"][0]
    assert node["metadata"] == {"secure": "true"}


def test_wss_broker_subscribe_and_publish(micro, certs):
    sc = micro(*tls_flags(certs))
    ctx = client_ctx(certs)

    async def go():
        async with websockets.connect(f"wss://{HOST}:{sc.port}/broker?topic=t", ssl=ctx) as ws:
            await ws.send("over wss")
            got = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert base64.b64decode(got["Body"]) == b"over wss"
            # A publish over https reaches the wss subscriber; a large one crosses many records.
            big = "x" * 200000
            for msg in ("from https", big):
                status, _, _ = await asyncio.get_running_loop().run_in_executor(
                    None, lambda m=msg: https(sc.port, ctx, "POST", "/broker?topic=t", m))
                assert status == 200
                got = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert base64.b64decode(got["Body"]) == msg.encode()

    asyncio.run(asyncio.wait_for(go(), 30))


def test_environment_variables_turn_tls_on(micro, certs):
    sc = micro(env={"MICRO_ENABLE_TLS": "true", "MICRO_TLS_CERT_FILE": str(certs / "server.crt"),
                    "MICRO_TLS_KEY_FILE": str(certs / "server.key")})
    assert https(sc.port, client_ctx(certs))[0] == 200


def test_seed_form_flags_before_the_command(micro, certs):
    sc = micro(pre=tls_flags(certs))
    assert https(sc.port, client_ctx(certs))[0] == 200


# ---- mTLS ----


def test_client_certificate_accepted_missing_or_foreign_refused(micro, certs):
    sc = micro(*tls_flags(certs, client_ca=True))
    base = f"https://{HOST}:{sc.port}/health"
    ca = ["--cacert", str(certs / "ca.crt")]
    r = curl(*ca, "--cert", str(certs / "client.crt"), "--key", str(certs / "client.key"),
             "-w", "%{http_code}", base)
    assert r.returncode == 0 and r.stdout.endswith("200"), (r.stdout, r.stderr)
    assert https(sc.port, client_ctx(certs, cert="client"))[0] == 200
    r = curl(*ca, "-w", "%{http_code}", base)
    assert r.returncode != 0 and "200" not in r.stdout
    r = curl(*ca, "--cert", str(certs / "intruder.crt"), "--key", str(certs / "intruder.key"),
             "-w", "%{http_code}", base)
    assert r.returncode != 0 and "200" not in r.stdout
    for cert in (None, "intruder"):
        with pytest.raises((ssl.SSLError, ConnectionError, IndexError, ValueError)):
            https(sc.port, client_ctx(certs, cert=cert))
    # The sidecar keeps serving after the refusals.
    assert https(sc.port, client_ctx(certs, cert="client"))[0] == 200


# ---- plain HTTP and silent clients on the TLS port ----


def read_until_closed(s, bound):
    """Everything s receives until the peer closes it; fails after bound seconds."""
    s.settimeout(bound)
    out = b""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk
    raise AssertionError(f"not closed within {bound}s: {out!r}")


def test_plain_http_on_the_tls_port_gets_400_or_close(micro, certs):
    sc = micro(*tls_flags(certs))
    with socket.create_connection((HOST, sc.port), timeout=10) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        out = read_until_closed(s, 15)
    assert out == b"" or out.startswith(b"HTTP/1.1 400 "), out
    r = curl("-w", "%{http_code}", f"http://{HOST}:{sc.port}/health")
    assert r.stdout.endswith("400") or r.returncode != 0, r
    assert https(sc.port, client_ctx(certs))[0] == 200


@pytest.mark.long_wait
@pytest.mark.timeout_s(60)
def test_a_silent_client_is_closed_by_the_handshake_bound(micro, certs):
    sc = micro(*tls_flags(certs))
    with socket.create_connection((HOST, sc.port), timeout=10) as s:
        read_until_closed(s, 25)
    # A half-finished handshake (a ClientHello and nothing more) is bounded too.
    with socket.create_connection((HOST, sc.port), timeout=10) as raw:
        obj_in, obj_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        sslobj = client_ctx(certs).wrap_bio(obj_in, obj_out, server_hostname=HOST)
        with pytest.raises(ssl.SSLWantReadError):
            sslobj.do_handshake()
        raw.sendall(obj_out.read())
        read_until_closed(raw, 25)


# ---- bad files ----


def bad_file_cases(certs, tmp):
    empty = tmp / "empty.pem"
    empty.write_text("")
    garbage = tmp / "garbage.pem"
    garbage.write_text("this is not a certificate\n")
    cert, key = str(certs / "server.crt"), str(certs / "server.key")
    return [
        # (flags, the flag and file the message must name)
        ([f"--tls_cert_file={tmp / 'missing.crt'}", f"--tls_key_file={key}"],
         "tls_cert_file", str(tmp / "missing.crt")),
        ([f"--tls_cert_file={cert}", f"--tls_key_file={tmp / 'missing.key'}"],
         "tls_key_file", str(tmp / "missing.key")),
        ([f"--tls_cert_file={tmp}", f"--tls_key_file={key}"], "tls_cert_file", str(tmp)),
        ([f"--tls_cert_file={empty}", f"--tls_key_file={key}"], "tls_cert_file", str(empty)),
        ([f"--tls_cert_file={cert}", f"--tls_key_file={empty}"], "tls_key_file", str(empty)),
        ([f"--tls_cert_file={garbage}", f"--tls_key_file={key}"], "tls_cert_file", str(garbage)),
        ([f"--tls_cert_file={cert}", f"--tls_key_file={garbage}"], "tls_key_file", str(garbage)),
        # A key the certificate was not made with.
        ([f"--tls_cert_file={cert}", f"--tls_key_file={certs / 'server2.key'}"], "tls_key_file",
         str(certs / "server2.key")),
        # The key file given as the certificate: not a certificate.
        ([f"--tls_cert_file={key}", f"--tls_key_file={key}"], "tls_cert_file", key),
        ([f"--tls_cert_file={cert}", f"--tls_key_file={key}",
          f"--tls_client_ca_file={garbage}"], "tls_client_ca_file", str(garbage)),
        ([f"--tls_cert_file={cert}", f"--tls_key_file={key}",
          f"--tls_client_ca_file={tmp / 'nope.crt'}"], "tls_client_ca_file", str(tmp / "nope.crt")),
    ]


def test_every_bad_file_exits_2_naming_it(certs, tmp_path):
    for flags, flag, path in bad_file_cases(certs, tmp_path):
        port = free_port()
        r = run_micro(["sidecar", f"--sidecar_address={HOST}:{port}", "--enable_tls", *flags])
        assert r.rc == 2, (flags, r)
        assert f"--{flag}" in r.stderr and path in r.stderr, (flags, r.stderr)
        assert "registered" not in r.stderr and "listening" not in r.stderr, r.stderr


def test_enable_tls_needs_both_files(certs):
    for flags in ([], [f"--tls_cert_file={certs / 'server.crt'}"],
                  [f"--tls_key_file={certs / 'server.key'}"]):
        r = run_micro(["sidecar", f"--sidecar_address={HOST}:{free_port()}", "--enable_tls", *flags])
        assert r.rc == 2, (flags, r)
        assert "--enable_tls requires --tls_cert_file and --tls_key_file" in r.stderr, r.stderr


# ---- SIGHUP rotation ----


def test_sighup_rotates_the_certificate_and_keeps_it_on_a_bad_pair(micro, certs, tmp_path):
    cert, key = tmp_path / "live.crt", tmp_path / "live.key"
    shutil.copy(certs / "server.crt", cert)
    shutil.copy(certs / "server.key", key)
    sc = micro("--enable_tls", f"--tls_cert_file={cert}", f"--tls_key_file={key}")
    ctx = client_ctx(certs)
    assert https(sc.port, ctx)[2]["cert"] == der(certs / "server.crt")
    # A connection opened before the reload keeps working after it.
    early = ctx.wrap_socket(socket.create_connection((HOST, sc.port), timeout=10),
                            server_hostname=HOST)
    shutil.copy(certs / "server2.crt", cert)
    shutil.copy(certs / "server2.key", key)
    sc.signal(signal.SIGHUP)
    new = der(certs / "server2.crt")
    wait_until(lambda: https(sc.port, ctx)[2]["cert"] == new, 10, message="the new certificate")
    early.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert read_until_closed(early, 10).startswith(b"HTTP/1.1 200 ")
    early.close()
    # A bad pair (a certificate with another's key) is refused; the last good one stays.
    shutil.copy(certs / "server.crt", cert)
    sc.signal(signal.SIGHUP)
    wait_until(lambda: "TLS reload failed" in sc.stderr(), 10, message="the reload failure")
    assert "tls_key_file" in sc.stderr()
    status, _, facts = https(sc.port, ctx)
    assert status == 200 and facts["cert"] == new
    assert sc.alive()


# ---- the CLI over https:// ----


def cli(sc, certs, *args, cert="client", ca="ca"):
    flags = [f"--proxy_address=https://{HOST}:{sc.port}"]
    if ca:
        flags.append(f"--tls_ca_file={certs / (ca + '.crt')}")
    if cert:
        flags += [f"--tls_cert_file={certs / (cert + '.crt')}",
                  f"--tls_key_file={certs / (cert + '.key')}"]
    return run_micro([*flags, *args], timeout=20)


def test_cli_over_https_with_a_client_certificate(micro, certs, tmp_path):
    sc = micro(*tls_flags(certs, client_ca=True))
    r = cli(sc, certs, "list", "services")
    assert r.rc == 0 and r.stdout.splitlines() == ["go.micro.sidecar"], r
    body = json.dumps(service("go.micro.srv.cli", [harness.node("c1", port=9998)]))
    assert cli(sc, certs, "register", "service", body).rc == 0
    r = cli(sc, certs, "-o", "json", "get", "service", "go.micro.srv.cli")
    assert r.rc == 0 and json.loads(r.stdout)[0]["nodes"][0]["id"] == "c1", r
    # subscribe (a WebSocket over TLS) sees a publish made over https.
    sub = subprocess.Popen([harness.micro_bin(), f"--proxy_address=https://{HOST}:{sc.port}",
                            f"--tls_ca_file={certs / 'ca.crt'}",
                            f"--tls_cert_file={certs / 'client.crt'}",
                            f"--tls_key_file={certs / 'client.key'}", "subscribe", "news",
                            "--count", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=harness.child_env())
    try:
        # Published until the subscriber (joined at some point) has its one message and exits.
        def published_and_received():
            r = https(sc.port, client_ctx(certs, cert="client"), "POST", "/broker?topic=news",
                      "ping")
            assert r[0] == 200
            return sub.poll() is not None

        wait_until(published_and_received, 15, interval=0.3, message="the subscriber's message")
        out, err = sub.communicate(timeout=10)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.communicate()
    assert sub.returncode == 0, err
    assert out.splitlines()[0] == "ping", out


def test_cli_https_refusals_say_why(micro, certs):
    sc = micro(*tls_flags(certs, client_ca=True))
    for kw in ({"cert": None}, {"cert": "intruder"}, {"ca": "foreign"}):
        r = cli(sc, certs, "list", "services", **kw)
        assert r.rc == 1, (kw, r)
        assert f"TLS with the sidecar at {HOST}:{sc.port} failed" in r.stderr, (kw, r.stderr)
    r = cli(sc, certs, "list", "services", ca="missing")
    assert r.rc == 1 and "--tls_ca_file" in r.stderr and "missing.crt" in r.stderr, r
    r = run_micro([f"--proxy_address=https://{HOST}:{sc.port}",
                   f"--tls_cert_file={certs / 'client.crt'}", "list", "services"])
    assert r.rc == 1 and "needs both --tls_cert_file and --tls_key_file" in r.stderr, r
    # Plain http:// to the TLS port: the 400 names the problem.
    r = run_micro([f"--proxy_address=http://{HOST}:{sc.port}", "list", "services"], timeout=20)
    assert r.rc == 1, r


# ---- sslscan ----


@pytest.mark.timeout_s(180)
def test_sslscan_sees_only_tls12_13_strong_ciphers(micro, certs):
    if not shutil.which("sslscan"):
        pytest.fail("sslscan is not installed (scripts/install-deps.sh installs it)")
    sc = micro(*tls_flags(certs))
    r = subprocess.run(["sslscan", "--no-colour", f"{HOST}:{sc.port}"], capture_output=True,
                       text=True, timeout=150)
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    for proto in ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"):
        assert f"{proto}     disabled" in out or f"{proto}   disabled" in out, out
    assert "TLSv1.2   enabled" in out and "TLSv1.3   enabled" in out, out
    ciphers = [l for l in out.splitlines() if l.startswith(("Preferred", "Accepted"))]
    assert ciphers, out
    for line in ciphers:
        name = line.split()[4]
        for weak in ("RC4", "DES", "NULL", "EXP", "MD5", "CBC", "SHA1", "anon", "PSK"):
            assert weak not in name, line
        if "TLSv1.2" in line:
            assert "GCM" in name or "CHACHA20" in name, line
        if name.endswith("-SHA"):  # CBC with SHA-1 MACs
            raise AssertionError(line)
    assert "Insecure session renegotiation supported" not in out, out
    assert "Compression enabled" not in out, out
    assert "Session renegotiation not supported" in out or "Secure session renegotiation" in out
