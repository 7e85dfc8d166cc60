"""Builds the fuzz_h2_client seeds in tests/data/fuzz_h2_client/ (what a node sends on one h2c
connection to the client's two streams, 1 and 3) with python3-h2:
/usr/bin/python3 tests/fuzz/seeds_h2_client.py tests/data/fuzz_h2_client"""
import os, struct, sys
import h2.config, h2.connection, h2.settings

out = sys.argv[1]

def node():
    """A node's connection that has seen the client's two requests."""
    cli = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    cli.initiate_connection()
    base = [(":scheme", "http"), (":authority", "node")]
    cli.send_headers(1, [(":method", "POST"), (":path", "/pkg.Svc/Method")] + base + [("content-type", "application/grpc")])
    cli.send_data(1, b"\0\0\0\0\3\n\1x")
    cli.send_headers(1, [("x-end", "1")], end_stream=True)
    cli.send_headers(3, [(":method", "GET"), (":path", "/b")] + base, end_stream=True)
    srv = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    srv.initiate_connection()
    srv.receive_data(cli.data_to_send())
    return srv

def save(name, srv):
    open(os.path.join(out, name), "wb").write(srv.data_to_send())

grpc_head = [(":status", "200"), ("content-type", "application/grpc")]
msg = b"\0" + struct.pack(">I", 3) + b"\n\1y"

s = node()
s.send_headers(1, grpc_head); s.send_data(1, msg); s.send_headers(1, [("grpc-status", "0")], end_stream=True)
s.send_headers(3, [(":status", "200"), ("content-length", "2")]); s.send_data(3, b"ok", end_stream=True)
save("both_complete", s)

s = node()  # a trailers-only gRPC error, a 1xx before a final head
s.send_headers(1, grpc_head + [("grpc-status", "14"), ("grpc-message", "down")], end_stream=True)
s.send_headers(3, [(":status", "103"), ("link", "</a>")]); s.send_headers(3, [(":status", "204")], end_stream=True)
save("trailers_only", s)

s = node()  # a reset, then GOAWAY below stream 3
s.send_headers(1, grpc_head); s.reset_stream(1, error_code=7)
s.close_connection(last_stream_id=1)
save("reset_goaway", s)

s = node()  # a body in many frames with window updates, PING, a SETTINGS change
s.send_headers(1, grpc_head)
for i in range(20):
    s.send_data(1, msg * 50)
s.ping(b"abcdefgh"); s.increment_flow_control_window(1 << 20)
s.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1})
s.send_headers(1, [("grpc-status", "0")], end_stream=True)
s.send_headers(3, [(":status", "500")], end_stream=True)
save("long_body", s)
