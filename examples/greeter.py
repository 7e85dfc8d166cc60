#!/usr/bin/env python3
"""A whole go-micro JSON-RPC service in Python's standard library: the sidecar POSTs
{"method": "Greeter.Hello", "params": [<request>], "id": n} to / and expects
{"id": n, "result": ..., "error": null}. Usage: greeter.py [PORT] (default 9090)."""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Greeter(BaseHTTPRequestHandler):
    def do_POST(self):
        call = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        request = call["params"][0] if call.get("params") else {}
        if call["method"] == "Debug.Health":  # what `micro health SERVICE` asks
            reply = {"id": call["id"], "result": {"status": "ok"}, "error": None}
        elif call["method"] == "Greeter.Hello":
            reply = {"id": call["id"], "result": {"msg": "Hello " + request.get("name", "world")},
                     "error": None}
        else:
            reply = {"id": call["id"], "result": None, "error": "unknown method " + call["method"]}
        body = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # the health check URL
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


port = int(sys.argv[1]) if len(sys.argv) > 1 else 9090
HTTPServer(("127.0.0.1", port), Greeter).serve_forever()
