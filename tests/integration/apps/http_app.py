#!/usr/bin/env python3
"""A plain HTTP/1.1 app for the sidecar's reverse-proxy tests (stdlib only, threaded). The
proxy forwards /<service>/<rest> unchanged, so the app decides by the LAST path segment:
  .../chunked?n=N&size=S  a chunked response of N chunks of S bytes ("0123456789" repeated),
                          no Content-Length (default 5 chunks of 10 bytes)
  .../upload              reads the request body as it streams (Content-Length or chunked)
                          without keeping it: {"bytes": n, "chunked": bool, "sha256": hex}
                          (the digest proves the bytes arrived intact and in order)
  .../early               answers 200 at once without reading the request body, then closes
  .../hang                never answers (reads the head only, holds the connection)
  .../status?code=N       a raw head "HTTP/1.1 N" with Content-Length: 5 and the 5 bytes
                          (&upgrade=1: with Upgrade: websocket and Connection: Upgrade)
                          "hello" whatever N is (a broken node: 204/304 must not carry a body,
                          a 101 nobody asked for is not an upgrade); the connection stays open
  .../ws                  a WebSocket (RFC 6455) echo: text and binary frames come back as
                          they went, pings get pongs, a close is answered and ends it
  anything else           {"node","method","target","version","headers":[[k,v],...],
                          "body_size"} as JSON with Content-Length (any method; HEAD gets
                          no body)
Prints its port on the first line of stdout, then serves until killed. Binds 127.0.0.1 only.
"""

import argparse
import base64
import hashlib
import json
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
NAME = "node"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("http_app %s: %s\n" % (NAME, fmt % args))

    # ---- request bodies, streamed

    def body_chunks(self):
        """Yields the request body in pieces, whatever its framing, never holding it whole."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                left = size
                while left:
                    piece = self.rfile.read(min(left, 1 << 16))
                    if not piece:
                        raise ConnectionError("body cut short")
                    left -= len(piece)
                    yield piece
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left:
                piece = self.rfile.read(min(left, 1 << 16))
                if not piece:
                    raise ConnectionError("body cut short")
                left -= len(piece)
                yield piece

    # ---- answers

    def _send(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _echo(self):
        size = sum(len(p) for p in self.body_chunks())
        body = json.dumps({
            "node": NAME,
            "method": self.command,
            "target": self.path,
            "version": self.request_version,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_size": size,
        }).encode()
        self._send(200, body)

    def _chunked(self, query):
        q = parse_qs(query)
        n = int(q.get("n", ["5"])[0])
        size = int(q.get("size", ["10"])[0])
        for _ in self.body_chunks():
            pass
        piece = (b"0123456789" * (size // 10 + 1))[:size]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for _ in range(n):
            self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _upload(self):
        n = 0
        h = hashlib.sha256()
        for piece in self.body_chunks():
            n += len(piece)
            h.update(piece)
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        self._send(200, json.dumps({"bytes": n, "chunked": chunked,
                                    "sha256": h.hexdigest()}).encode())

    def _early(self):
        body = b'{"early":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def _hang(self):
        time.sleep(3600)  # a daemon thread: gone with the process
        self.close_connection = True

    def _status(self, query):
        q = parse_qs(query)
        code = int(q.get("code", ["204"])[0])
        extra = b"Upgrade: websocket\r\nConnection: Upgrade\r\n" if q.get("upgrade") else b""
        for _ in self.body_chunks():
            pass
        self.wfile.write(b"HTTP/1.1 %d Whatever\r\n%sContent-Length: 5\r\n\r\nhello"
                         % (code, extra))
        self.wfile.flush()

    # ---- WebSocket echo

    def _ws_read_exact(self, n):
        data = b""
        while len(data) < n:
            piece = self.rfile.read(n - len(data))
            if not piece:
                return None
            data += piece
        return data

    def _ws_send(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([n])
        elif n < 65536:
            head += bytes([126]) + struct.pack("!H", n)
        else:
            head += bytes([127]) + struct.pack("!Q", n)
        self.wfile.write(head + payload)
        self.wfile.flush()

    def _websocket(self):
        key = self.headers.get("Sec-WebSocket-Key")
        if (self.headers.get("Upgrade") or "").lower() != "websocket" or not key:
            self._send(400, b'{"error":"not a websocket upgrade"}')
            return
        accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("X-App-Node", NAME)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        while True:
            h = self._ws_read_exact(2)
            if h is None:
                return
            opcode, n = h[0] & 0x0F, h[1] & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._ws_read_exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._ws_read_exact(8))[0]
            mask = self._ws_read_exact(4) if h[1] & 0x80 else b"\0\0\0\0"
            payload = self._ws_read_exact(n) if n else b""
            if payload is None or mask is None:
                return
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                self._ws_send(0x8, payload[:2])
                return
            if opcode == 0x9:
                self._ws_send(0xA, payload)
            elif opcode in (0x0, 0x1, 0x2):
                self._ws_send(opcode, payload)

    def _route(self):
        url = urlsplit(self.path)
        last = url.path.rstrip("/").rsplit("/", 1)[-1]
        if last == "ws":
            self._websocket()
        elif last == "chunked":
            self._chunked(url.query)
        elif last == "upload":
            self._upload()
        elif last == "early":
            self._early()
        elif last == "hang":
            self._hang()
        elif last == "status":
            self._status(url.query)
        else:
            self._echo()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _route


def main():
    global NAME
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--name", default="node")
    args = ap.parse_args()
    NAME = args.name
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
