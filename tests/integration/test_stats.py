"""SPEC 3.6: /stats (only with --enable_stats: the JSON snapshot or the dashboard page) and
/metrics (always on, Prometheus text format 0.0.4), checked after known sequences of requests:
the JSON's fields and counts, promtool's lint, a real Prometheus server scraping the sidecar
and answering a query, and the dashboard rendered by headless Chromium (with
MICRO_UPDATE_SCREENSHOT=1 the screenshot is written to docs/dashboard.png)."""

import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import harness
from harness import HOST, request

CHROMIUM = "/usr/bin/chromium"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
JSON_ACCEPT = {"Accept": "application/json"}


def stats(sc, headers=JSON_ACCEPT):
    r = request(sc.port, "GET", "/stats", headers=headers)
    assert r.status == 200, r
    assert r.header("Content-Type").startswith("application/json"), r
    return r.json()


def metrics(sc):
    r = request(sc.port, "GET", "/metrics")
    assert r.status == 200, r
    assert r.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    return r.text


def sample(text, name, **labels):
    """The value of the sample `name{labels}` in a Prometheus text (None when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    line = f"{name}{{{want}}} " if labels else f"{name} "
    for ln in text.splitlines():
        if ln.startswith(line):
            return float(ln[len(line):])
    return None


def known_requests(sc, ok=5, missing=3):
    """ok GET /registry (200) and missing GET /registry?service=<unknown> (404)."""
    for _ in range(ok):
        assert request(sc.port, "GET", "/registry").status == 200
    for i in range(missing):
        assert request(sc.port, "GET", f"/registry?service=nope{i}").status == 404


class Services:
    """One apps/jsonrpc_app.py node registered under several service names."""

    def __init__(self, tmp_path, sc, names):
        self.app = harness.AppProcess(tmp_path, "jsonrpc_app.py", "stats")
        self.sc = sc
        for name in names:
            r = harness.register(sc.port, harness.service(name, [harness.node(
                f"{name}-1", port=self.app.port)]))
            assert r.status == 200, r

    def call(self, name, times=1):
        for _ in range(times):
            r = request(self.sc.port, "POST", "/rpc", headers={"Content-Type": "application/json"},
                        body=json.dumps({"service": name, "method": "Example.Call",
                                         "request": {"name": "x"}}).encode())
            assert r.status == 200, r

    def stop(self):
        self.app.stop()


@pytest.fixture
def services(tmp_path):
    made = []

    def make(sc, names):
        s = Services(tmp_path, sc, names)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def test_stats_json_counts_a_known_sequence(micro):
    sc = micro("--enable_stats")
    before = int(time.time())
    known_requests(sc, ok=5, missing=3)
    s = stats(sc)
    # the 2016 fields
    assert before - 60 <= s["started"] <= before
    assert re.fullmatch(r"\d+\.\d\dmb", s["memory"]), s["memory"]
    assert s["threads"] == 1 and s["gc_pause"] == "0.000ms"
    assert 1 <= len(s["counters"]) <= 23
    for b in s["counters"]:
        assert b["timestamp"] % 5 == 0
        assert set(b["status_codes"]) >= {"20x", "40x", "50x"}
        assert b["total_reqs"] == sum(b["status_codes"].values())
    assert sum(b["status_codes"]["20x"] for b in s["counters"]) == 5
    assert sum(b["status_codes"]["40x"] for b in s["counters"]) == 3
    assert sum(b["total_reqs"] for b in s["counters"]) == 8
    # the richer fields
    assert s["totals"]["20x"] == 5 and s["totals"]["40x"] == 3 and s["totals"]["total_reqs"] == 8
    reg = s["routes"]["registry"]
    assert reg["count"] == 8
    assert reg["status_codes"]["20x"] == 5 and reg["status_codes"]["40x"] == 3
    assert 0 <= reg["p50_ms"] <= reg["p90_ms"] <= reg["p99_ms"] <= reg["max_ms"]
    assert s["connections"] >= 1 and s["websockets"] == 0
    assert s["registry"] == {"services": 1, "nodes": 1}  # go.micro.sidecar itself
    assert s["health"] == "none"
    assert s["memory_bytes"] > 0 and s["uptime"] >= 0
    assert set(s["broker"]) == {"published", "delivered", "subscribers", "topics", "drops"}
    # the snapshot request itself is counted once it is answered
    assert stats(sc)["routes"]["other"]["count"] == 1


def test_stats_content_type_json_and_dashboard_page(micro):
    sc = micro("--enable_stats")
    r = request(sc.port, "GET", "/stats", headers={"Content-Type": "application/json"})
    assert r.status == 200 and "counters" in r.json()
    page = request(sc.port, "GET", "/stats")
    assert page.status == 200
    assert page.header("Content-Type") == "text/html; charset=utf-8"
    html = page.text
    assert html.startswith("<!doctype html>")
    # self-contained: nothing loaded from elsewhere (the machine may be offline)
    for external in ("<link", " src=", "@import", "url(", "https://"):
        assert external not in html, external
    assert "setInterval(refresh,5000)" in html


@pytest.mark.parametrize("flags", [(), ("--enable_stats=false",)])
def test_stats_is_404_without_the_flag(micro, flags):
    sc = micro(*flags)
    r = request(sc.port, "GET", "/stats", headers=JSON_ACCEPT)
    assert r.status == 404, r
    harness.assert_error_json(r, 404)
    assert request(sc.port, "GET", "/metrics").status == 200  # always on


def test_call_latency_per_service(micro, services):
    sc = micro("--enable_stats")
    svc = services(sc, ["go.micro.srv.a", "go.micro.srv.b"])
    svc.call("go.micro.srv.a", 4)
    svc.call("go.micro.srv.b", 2)
    # a name nobody registered makes no attempt: it takes no slot
    r = request(sc.port, "POST", "/rpc", headers={"Content-Type": "application/json"},
                body=b'{"service":"go.micro.srv.ghost","method":"X.Y","request":{}}')
    assert r.status == 404
    s = stats(sc)
    by = {x["name"]: x for x in s["services"]}
    assert set(by) == {"go.micro.srv.a", "go.micro.srv.b"}
    a = by["go.micro.srv.a"]
    assert a["count"] == 4 and a["failures"] == 0
    assert 0 < a["p50_ms"] <= a["p90_ms"] <= a["p99_ms"] <= a["max_ms"]
    assert by["go.micro.srv.b"]["count"] == 2
    assert s["routes"]["rpc"]["count"] == 7
    assert s["registry"]["services"] == 3 and s["registry"]["nodes"] == 3


def test_metrics_pass_promtool_and_count(micro, services):
    assert os.access(PROMTOOL, os.X_OK), "promtool (Debian package prometheus) is required"
    sc = micro()
    svc = services(sc, ['go.micro.srv.quote"d\\name'])  # one POST /registry: a 200
    known_requests(sc, ok=5, missing=3)
    svc.call('go.micro.srv.quote"d\\name', 2)
    text = metrics(sc)
    lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                          capture_output=True, timeout=30)
    assert lint.returncode == 0, lint.stdout.decode() + lint.stderr.decode() + text
    assert sample(text, "micro_http_requests_total", route="registry", code="2xx") == 6
    assert sample(text, "micro_http_requests_total", route="registry", code="4xx") == 3
    assert sample(text, "micro_http_requests_total", route="rpc", code="2xx") == 2
    assert sample(text, "micro_http_request_duration_seconds_count", route="registry") == 9
    assert sample(text, "micro_http_request_duration_seconds_bucket", route="registry",
                  le="+Inf") == 9
    name = 'go.micro.srv.quote\\"d\\\\name'  # the label value, escaped as the format says
    assert sample(text, "micro_call_duration_seconds_count", service=name) == 2
    assert sample(text, "micro_call_failures_total", service=name) == 0
    assert sample(text, "micro_process_resident_memory_bytes") > 0
    assert abs(sample(text, "micro_process_start_time_seconds") - time.time()) < 120
    assert "# TYPE micro_call_duration_seconds histogram" in text


@pytest.mark.timeout_s(120)
def test_service_series_are_bounded(micro, services):
    sc = micro("--enable_stats")
    names = [f"go.micro.srv.s{i:02d}" for i in range(70)]
    svc = services(sc, names)
    for n in names:
        svc.call(n)
    s = stats(sc)
    listed = {x["name"]: x["count"] for x in s["services"]}
    assert len(listed) == 65
    assert listed["_other"] == 6
    assert all(listed[n] == 1 for n in names[:64])
    text = metrics(sc)
    assert len(re.findall(r"^micro_call_duration_seconds_count\{", text, re.M)) == 65


@pytest.mark.timeout_s(90)
def test_prometheus_scrapes_the_sidecar(micro, tmp_path):
    assert os.access(PROMETHEUS, os.X_OK), "prometheus (Debian package prometheus) is required"
    sc = micro()
    known_requests(sc, ok=5, missing=3)
    port = harness.free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                   "scrape_configs:\n  - job_name: micro\n    static_configs:\n"
                   f"      - targets: ['{HOST}:{sc.port}']\n")
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}", f"--web.listen-address={HOST}:{port}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    query = urllib.parse.quote('micro_http_requests_total{route="registry",code="2xx"}')

    def answered():
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/api/v1/query?query={query}",
                                        timeout=2) as r:
                body = json.loads(r.read())
        except OSError:
            return None
        result = body.get("data", {}).get("result", [])
        return result[0] if result else None

    try:
        got = harness.wait_until(answered, timeout=60, interval=0.5,
                                 message="prometheus answering the query")
        assert got["metric"]["job"] == "micro"
        assert got["metric"]["instance"] == f"{HOST}:{sc.port}"
        assert float(got["value"][1]) == 5
    except AssertionError:
        print((tmp_path / "prometheus.log").read_text(errors="replace")[-3000:])
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def chromium(tmp_path, *args):
    assert os.access(CHROMIUM, os.X_OK), "headless Chromium (Debian package chromium) is required"
    profile = tmp_path / "chromium-profile"
    r = subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
                        f"--user-data-dir={profile}", "--window-size=1280,900",
                        "--virtual-time-budget=6000", *args],
                       capture_output=True, timeout=60, start_new_session=True)
    shutil.rmtree(profile, ignore_errors=True)
    return r


@pytest.mark.timeout_s(150)
def test_dashboard_renders_in_chromium(micro, services, tmp_path):
    sc = micro("--enable_stats")
    svc = services(sc, ["go.micro.srv.greeter", "go.micro.srv.orders", "go.micro.srv.users"])
    # MICRO_UPDATE_SCREENSHOT=1: traffic over a few 5 s buckets, for a screenshot worth showing
    rounds = 4 if os.environ.get("MICRO_UPDATE_SCREENSHOT") else 1
    for i in range(rounds):
        known_requests(sc, ok=4 + 3 * i, missing=1 + i % 2)
        svc.call("go.micro.srv.greeter", 6 + 2 * i)
        svc.call("go.micro.srv.orders", 3 + i)
        svc.call("go.micro.srv.users", 2)
        request(sc.port, "POST", "/broker?topic=events", body=b"hello")
        if i + 1 < rounds:
            time.sleep(5)
    s = stats(sc)
    url = f"http://{HOST}:{sc.port}/stats"
    r = chromium(tmp_path, "--dump-dom", url)
    dom = r.stdout.decode(errors="replace")
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]

    def cell(elem_id):
        m = re.search(r'id="' + re.escape(elem_id) + r'"[^>]*>([^<]*)<', dom)
        assert m, f"#{elem_id} not rendered:\n{dom[:3000]}"
        return m.group(1)

    # the page fetched the JSON and rendered its numbers
    assert cell("count-registry") == str(s["routes"]["registry"]["count"])
    assert cell("calls-go.micro.srv.greeter") == str(
        next(x["count"] for x in s["services"] if x["name"] == "go.micro.srv.greeter"))
    assert cell("services") == "4" and cell("nodes") == "4"  # three apps and the sidecar
    assert cell("published") == str(rounds)
    assert cell("memory").endswith(" MB")
    assert "connecting" not in cell("updated")
    assert dom.count("<rect") >= 1  # the status-class chart has bars

    shot = tmp_path / "dashboard.png"
    r = chromium(tmp_path, f"--screenshot={shot}", url)
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", r.stderr.decode()[-2000:]
    if os.environ.get("MICRO_UPDATE_SCREENSHOT"):
        shutil.copy(shot, Path(harness.REPO) / "docs" / "dashboard.png")
