"""A gRPC node for the tests: python3-grpcio with generic handlers and bytes in and out (no
generated code). Prints its port on the first stdout line. Service go.micro.srv.greeter.Greeter:

  Hello   unary: b"<name>:" + request; initial metadata x-node=<name> and x-echo=<the call's
          x-req>; trailing metadata x-trailer=<name>
  Echo    unary: the request as it came (big messages)
  Slow    unary: sleeps float(request) seconds, then answers b"slow"
  Fail    unary: aborts with the status named by int(request)
  Count   server streaming: int(request) messages b"0", b"1", ...
  Sum     client streaming: b"<messages>:<bytes>:<sha256 of all bytes>"
  Chat    bidirectional: each message back as b"<name>:" + message
  Hang    server streaming: one message, then waits for the client to go; a cancellation is
          appended to --events as a line "cancelled <name>"

--tls CERT KEY serves TLS (h2 by ALPN) instead of h2c."""

import argparse
import hashlib
import sys
import threading
import time
from concurrent import futures

import grpc

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, default=0)
ap.add_argument("--name", default="node")
ap.add_argument("--events", default=None)
ap.add_argument("--tls", nargs=2, default=None)
args = ap.parse_args()

BIG = 64 * 1024 * 1024


def note(line):
    if args.events:
        with open(args.events, "a") as f:
            f.write(line + "\n")


def hello(req, ctx):
    md = dict(ctx.invocation_metadata())
    ctx.send_initial_metadata((("x-node", args.name), ("x-echo", md.get("x-req", ""))))
    ctx.set_trailing_metadata((("x-trailer", args.name),))
    return args.name.encode() + b":" + req


def echo(req, ctx):
    return req


def slow(req, ctx):
    time.sleep(float(req.decode() or "1"))
    return b"slow"


def fail(req, ctx):
    ctx.abort(grpc.StatusCode(next(c for c in grpc.StatusCode if c.value[0] == int(req))),
              "failed on purpose")


def count(req, ctx):
    for i in range(int(req.decode() or "0")):
        yield str(i).encode()


def total(it, ctx):
    h = hashlib.sha256()
    n = size = 0
    for m in it:
        n += 1
        size += len(m)
        h.update(m)
    return f"{n}:{size}:{h.hexdigest()}".encode()


def chat(it, ctx):
    for m in it:
        yield args.name.encode() + b":" + m


def hang(req, ctx):
    # The RPC's end is noted from its done-callback: grpc stops resuming this generator once
    # the call is cancelled, so on a busy machine a cancellation that arrives before the
    # framework asks for the next message would never reach the code after the yield. The
    # only other end is the 30 s bound below, which sets `finished` first.
    finished = threading.Event()

    def on_done():
        if not finished.is_set():
            note(f"cancelled {args.name}")
    ctx.add_callback(on_done)
    yield b"first"
    # bounded: a test that forgets to cancel does not hold the node for ever
    deadline = time.monotonic() + 30
    while ctx.is_active() and time.monotonic() < deadline:
        time.sleep(0.05)
    if ctx.is_active():
        finished.set()


handlers = {
    "Hello": grpc.unary_unary_rpc_method_handler(hello),
    "Echo": grpc.unary_unary_rpc_method_handler(echo),
    "Slow": grpc.unary_unary_rpc_method_handler(slow),
    "Fail": grpc.unary_unary_rpc_method_handler(fail),
    "Count": grpc.unary_stream_rpc_method_handler(count),
    "Sum": grpc.stream_unary_rpc_method_handler(total),
    "Chat": grpc.stream_stream_rpc_method_handler(chat),
    "Hang": grpc.unary_stream_rpc_method_handler(hang),
}
server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                     options=[("grpc.max_receive_message_length", BIG),
                              ("grpc.max_send_message_length", BIG)])
server.add_generic_rpc_handlers(
    (grpc.method_handlers_generic_handler("go.micro.srv.greeter.Greeter", handlers),))
if args.tls:
    key = open(args.tls[1], "rb").read()
    crt = open(args.tls[0], "rb").read()
    port = server.add_secure_port(f"127.0.0.1:{args.port}",
                                  grpc.ssl_server_credentials(((key, crt),)))
else:
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
server.start()
print(port, flush=True)
try:
    server.wait_for_termination()
except KeyboardInterrupt:
    pass
sys.exit(0)
