#!/usr/bin/env python3
"""A go-micro JSON-RPC service for the sidecar's call tests (stdlib only, threaded), answering
`POST /` as the 2016 Ruby example did: {"method","params":[req],"id"} -> {"id","result","error"}.

What a call gets is decided by its method, so one process covers every reply shape:
  Example.Call   {"msg":"Hello <name>","node":"<--name>"}       (the seed's example)
  Test.Raw       result = params[0]["raw"] spliced in as raw text (byte-for-byte checks)
  Test.NoResult  no "result" key at all;  Test.NullResult  "result":null
  Test.Error     "error": params[0]["error"] (a plain string or go-micro error JSON text)
  Test.Invalid   the HTTP body is params[0]["body"] verbatim (a broken reply)
  Test.Headers   result = the request's headers as [[name, value], ...] in arrival order
  Test.Body      result = the raw HTTP request body, as a JSON string (byte-level checks)
  anything else  an echo: {"method":..., "params":..., "node":..., "headers":[[k,v],...]}
and the whole node can be switched (POST /_set?mode=...) to:
  ok (default) | hang (never answers, until switched back) | slow (answers after 0.2 s) |
  fail (every call answers the error string "node <name> failing") | close (closes the
  connection without a reply)
GET /_stats answers {"calls": n, "name": ...} (calls = JSON-RPC requests received).

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
    name = "node"
    mode = "ok"
    calls = 0


def result_reply(req_id, result_text):
    # Built by hand so that a raw result keeps its exact bytes (big integers, key order).
    return ('{"id":%s,"result":%s,"error":null}' % (json.dumps(req_id), result_text)).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("jsonrpc_app %s: %s\n" % (State.name, fmt % args))

    def _send(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if urlsplit(self.path).path == "/_stats":
            with State.lock:
                body = json.dumps({"calls": State.calls, "name": State.name, "mode": State.mode})
            self._send(200, body.encode())
            return
        self._send(404, b"not found", "text/plain")

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_POST(self):
        url = urlsplit(self.path)
        if url.path == "/_set":
            q = parse_qs(url.query)
            self._read_body()
            with State.lock:
                if "mode" in q:
                    State.mode = q["mode"][0]
            self._send(200, b"{}")
            return
        if url.path != "/":
            self._send(404, b"not found", "text/plain")
            return
        raw = self._read_body()
        with State.lock:
            State.calls += 1
            mode = State.mode
        if mode == "hang":
            # Holds the connection until the node is switched back (or the test ends).
            while State.mode == "hang":
                time.sleep(0.05)
            self.close_connection = True
            return
        if mode == "slow":
            time.sleep(0.2)
        if mode == "close":
            self.close_connection = True
            return
        req = json.loads(raw)
        req_id = req.get("id")
        if mode == "fail":
            self._send(200, json.dumps({"id": req_id, "result": None,
                                        "error": "node %s failing" % State.name}).encode())
            return
        self._send(200, self._answer(req_id, req.get("method"), req.get("params") or [None], raw))

    def _answer(self, req_id, method, params, raw):
        p = params[0] if isinstance(params[0], dict) else {}
        if method == "Example.Call":
            return result_reply(req_id, json.dumps({"msg": "Hello " + str(p.get("name")),
                                                    "node": State.name}))
        if method == "Test.Raw":
            return result_reply(req_id, p["raw"])
        if method == "Test.NoResult":
            return json.dumps({"id": req_id, "error": None}).encode()
        if method == "Test.NullResult":
            return json.dumps({"id": req_id, "result": None, "error": None}).encode()
        if method == "Test.Error":
            return json.dumps({"id": req_id, "result": None, "error": p["error"]}).encode()
        if method == "Test.Invalid":
            return p["body"].encode()
        if method == "Test.Body":
            return result_reply(req_id, json.dumps(raw.decode()))
        if method == "Test.Headers":
            return result_reply(req_id, json.dumps([[k, v] for k, v in self.headers.items()]))
        return result_reply(req_id, json.dumps({
            "method": method, "params": params, "node": State.name,
            "headers": [[k, v] for k, v in self.headers.items()]}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--name", default="node")
    args = ap.parse_args()
    State.name = args.name
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
