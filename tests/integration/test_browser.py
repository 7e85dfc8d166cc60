"""The broker from the client most users have: headless Chromium loads a small page
(browser/pubsub.html) from a loopback http.server; the page subscribes and publishes over
ws://127.0.0.1:<sidecar>/broker and POSTs what it saw back to that server. Bounded in time:
the test kills the browser's process group once the report arrives or after 40 s."""

import base64
import http.server
import json
import os
import queue
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import pytest

import harness

PAGE_DIR = Path(__file__).resolve().parent / "browser"
CHROMIUM = "/usr/bin/chromium"


class PageServer:
    """Serves PAGE_DIR and takes the page's POST /report, on 127.0.0.1."""

    def __init__(self):
        reports = self.reports = queue.Queue()

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(PAGE_DIR), **kw)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                reports.put(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer((harness.HOST, 0), Handler)
        self.port = self.httpd.server_address[1]
        self.origin = f"http://{harness.HOST}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def page_server():
    srv = PageServer()
    yield srv
    srv.stop()


def browse(tmp_path, url, reports, timeout=40):
    """Runs headless Chromium on url until the page reports (returned) or timeout."""
    assert os.access(CHROMIUM, os.X_OK), "headless Chromium (Debian package chromium) is required"
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    log = open(tmp_path / "chromium.log", "wb")
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}", url],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    try:
        return reports.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError("no report from the page within %ss; chromium log:\n%s"
                             % (timeout, (tmp_path / "chromium.log").read_text(errors="replace")[-3000:]))
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the browser and its helpers: our own group
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        log.close()
        shutil.rmtree(profile, ignore_errors=True)


def msg(body, content_type="text/plain"):
    return {"Header": {"Content-Type": content_type}, "Body": base64.b64encode(body).decode()}


@pytest.mark.timeout_s(60)
def test_browser_subscribes_and_publishes(micro, page_server, tmp_path):
    # Only the page's origin may upgrade, so this also proves the Origin check lets it in.
    sc = micro(f"--cors={page_server.origin}")
    report = browse(tmp_path, f"{page_server.origin}/pubsub.html?port={sc.port}", page_server.reports)
    want = [msg(f"hello {i} from a browser".encode()) for i in range(5)] + [msg(b"\x00\x01\x02\xff")]
    want.append(msg(b"posted by fetch", "text/plain;charset=UTF-8"))
    assert report["sub"] == want, report
    assert report["pub"][:6] == want[:6], report  # the publisher hears itself
    assert report["nonText"] == 0, report
    assert report["subCode"] == 1000, report
    assert "post 200" in report["events"], report


@pytest.mark.timeout_s(60)
def test_browser_from_disallowed_origin_is_refused(micro, page_server, tmp_path):
    sc = micro("--cors=http://somewhere.else.example")
    report = browse(tmp_path, f"{page_server.origin}/pubsub.html?port={sc.port}", page_server.reports)
    assert report["sub"] == [] and report["pub"] == [], report
    assert any(e.startswith("close browser 1006") for e in report["events"]), report
