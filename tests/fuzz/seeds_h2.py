"""Builds the fuzz_h2 seeds in tests/data/fuzz_h2/ (what a client sends after the connection
preface, which the target prepends) with python3-h2: /usr/bin/python3 tests/fuzz/seeds_h2.py
tests/data/fuzz_h2"""
import json, os, struct, sys
import h2.config, h2.connection, h2.settings

out = sys.argv[1]

def client():
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    c.initiate_connection()
    # The server's SETTINGS (extended CONNECT on), as the sidecar sends them.
    srv = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    srv.local_settings = h2.settings.Settings(client=False, initial_values={h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1})
    srv.initiate_connection()
    c.receive_data(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[:0] + srv.data_to_send())
    return c

def save(name, c):
    data = c.data_to_send()
    assert data.startswith(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    open(os.path.join(out, name), "wb").write(data[24:])

def hdrs(method, path, extra=()):
    return [(":method", method), (":scheme", "http"), (":authority", "localhost"), (":path", path)] + list(extra)

c = client(); c.send_headers(1, hdrs("GET", "/health"), end_stream=True); save("get_health", c)
c = client(); c.send_headers(1, hdrs("GET", "/registry"), end_stream=True)
c.send_headers(3, hdrs("GET", "/stats", [("accept", "application/json")]), end_stream=True); save("get_two_streams", c)

body = json.dumps({"service": "go.micro.srv.foo", "method": "Foo.Bar", "request": {"a": 1}}).encode()
c = client(); c.send_headers(1, hdrs("POST", "/rpc", [("content-type", "application/json"), ("content-length", str(len(body)))]))
c.send_data(1, body[:10]); c.send_data(1, body[10:], end_stream=True); save("post_rpc", c)

reg = json.dumps({"name": "go.micro.srv.foo", "nodes": [{"id": "foo-1", "address": "127.0.0.1", "port": 9}]}).encode()
c = client(); c.send_headers(1, hdrs("POST", "/registry", [("content-type", "application/json")]))
c.send_data(1, reg, end_stream=True)
c.send_headers(3, hdrs("POST", "/foo/bar", [("content-type", "application/json")]))
c.send_data(3, b"{}", end_stream=True); save("register_then_path_call", c)

# Extended CONNECT (RFC 8441): a WebSocket to the broker, one masked text frame, then a close.
c = client(); c.send_headers(1, hdrs("CONNECT", "/broker?topic=t", [(":protocol", "websocket"), ("sec-websocket-version", "13")]))
mask = b"\x01\x02\x03\x04"
def wsframe(op, payload):
    return bytes([0x80 | op, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
c.send_data(1, wsframe(1, b"hello")); c.send_data(1, wsframe(8, b"\x03\xe8"), end_stream=True); save("connect_websocket", c)

# A request with trailers.
c = client(); c.send_headers(1, hdrs("POST", "/rpc", [("content-type", "application/json"), ("te", "trailers")]))
c.send_data(1, body); c.send_headers(1, [("x-checksum", "abc")], end_stream=True); save("post_trailers", c)

# gRPC: register a node, then a gRPC-typed POST (length-prefixed message, grpc-timeout, metadata).
msg = b"\x00" + struct.pack(">I", 3) + b"\x0a\x01x"
c = client(); c.send_headers(1, hdrs("POST", "/registry", [("content-type", "application/json")]))
c.send_data(1, reg, end_stream=True)
c.send_headers(3, hdrs("POST", "/go.micro.srv.foo.Foo/Bar", [("content-type", "application/grpc"), ("te", "trailers"),
               ("grpc-timeout", "2S"), ("micro-service", "go.micro.srv.foo"), ("x-meta", "v")]))
c.send_data(3, msg, end_stream=True); save("grpc_post", c)
c = client(); c.send_headers(1, hdrs("POST", "/foo.Bar/Baz", [("content-type", "application/grpc+proto"), ("te", "trailers")]))
c.send_data(1, msg); c.reset_stream(1); save("grpc_post_reset", c)

# CONTINUATION: a head larger than one frame.
x, big = 12345, []
for _ in range(20000):  # incompressible by HPACK's Huffman code: more than one frame
    x = (x * 1103515245 + 12345) % 2**31
    big.append("!#$%&*+-.^_|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[x % 48])
c = client(); c.send_headers(1, hdrs("GET", "/health", [("x-big", "".join(big))]), end_stream=True); save("continuation", c)

# Control frames: PING, WINDOW_UPDATE, a SETTINGS change, PRIORITY, RST_STREAM, GOAWAY.
c = client(); c.ping(b"12345678"); c.increment_flow_control_window(65536)
c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000, h2.settings.SettingCodes.MAX_FRAME_SIZE: 20000})
c.send_headers(1, hdrs("POST", "/registry", [("content-type", "application/json")]))
c.increment_flow_control_window(100, stream_id=1); c.prioritize(1, weight=20)
c.reset_stream(1, error_code=8)
c.send_headers(3, hdrs("GET", "/health"), end_stream=True)
c.close_connection(); save("control_frames", c)
