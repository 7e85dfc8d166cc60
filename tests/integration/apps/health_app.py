#!/usr/bin/env python3
"""A small controllable app for the sidecar's health-check tests (stdlib only, threaded).

  GET  /_status/health        answers the current status (body "ok" on 200, "app says no"
                              otherwise), after sleeping `hang` seconds; counts every hit
  POST /_set?status=N&hang=S  switches status and/or hang; answers {"hits": n} where n is the
                              hit count at the instant of the switch (hits after it see the
                              new setting, so a test can tell which checks saw what)
  GET  /_hits                 {"hits": n, "status": N, "hang": S}
  POST /                      a go-micro JSON-RPC endpoint answering Debug.Health with
                              {"status": "ok"} (so the app looks like a service too)

Prints its port on the first line of stdout, then serves until killed. Binds 127.0.0.1 only.
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class State:
    lock = threading.Lock()
    status = 200
    hang = 0.0
    hits = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("health_app: %s - %s\n" % (self.address_string(), fmt % args))

    def _reply(self, status, body=b"", ctype="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj):
        self._reply(200, json.dumps(obj).encode(), "application/json")

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/_status/health":
            with State.lock:
                State.hits += 1
                status, hang = State.status, State.hang
            if hang > 0:
                time.sleep(hang)
            self._reply(status, b"ok" if status == 200 else b"app says no")
        elif url.path == "/_hits":
            with State.lock:
                self._json({"hits": State.hits, "status": State.status, "hang": State.hang})
        else:
            self._reply(404, b"not found")

    def do_POST(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if url.path == "/_set":
            q = parse_qs(url.query)
            with State.lock:
                if "status" in q:
                    State.status = int(q["status"][0])
                if "hang" in q:
                    State.hang = float(q["hang"][0])
                hits = State.hits
            self._json({"hits": hits})
        elif url.path == "/":
            try:
                req = json.loads(body)
            except ValueError:
                self._reply(400, b"bad json")
                return
            if req.get("method") == "Debug.Health":
                self._json({"id": req.get("id"), "result": {"status": "ok"}, "error": None})
            else:
                self._json({"id": req.get("id"), "result": None, "error": "unknown method"})
        else:
            self._reply(404, b"not found")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # The sidecar hangs up on a hanging check when its timeout fires: not an error here.
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--status", type=int, default=200)
    args = ap.parse_args()
    State.status = args.status
    srv = Server(("127.0.0.1", args.port), Handler)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
