"""A misbehaving HTTP/2 node (python3-h2) for the gRPC retry rules. Prints its port on the first
stdout line; appends one line "<mode> <stream id>" to --events per request it sees.

  --mode refuse   every stream is reset with REFUSED_STREAM (the node never processed it)
  --mode goaway   GOAWAY with last_stream_id 0 on the first request, then the connection closes
  --mode reset    every stream is reset with INTERNAL_ERROR (the node saw it: not retryable)
  --mode trailers a gRPC answer once the request's trailers came: HEADERS, one empty message,
                  and trailers grpc-status 0 plus x-echo-<name>: <value> for each of them
  --mode cut      HEADERS and one empty message, then the connection closes (a node that dies
                  mid-stream)"""

import argparse
import socket
import threading

import h2.config
import h2.connection
import h2.errors
import h2.events

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, default=0)
ap.add_argument("--mode", required=True)
ap.add_argument("--events", required=True)
args = ap.parse_args()


def note(line):
    with open(args.events, "a") as f:
        f.write(line + "\n")


def serve(sock):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    sock.settimeout(30)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    note(f"{args.mode} {ev.stream_id}")
                    if args.mode == "trailers":
                        pass  # answered when the request's trailers arrive
                    elif args.mode == "refuse":
                        conn.reset_stream(ev.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
                    elif args.mode == "reset":
                        conn.reset_stream(ev.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
                    elif args.mode == "cut":
                        sid = ev.stream_id
                        conn.send_headers(sid, [(":status", "200"),
                                                ("content-type", "application/grpc")])
                        conn.send_data(sid, b"\0\0\0\0\0")
                        sock.sendall(conn.data_to_send())
                        return
                    else:
                        conn.close_connection(last_stream_id=0)
                        sock.sendall(conn.data_to_send())
                        return
                elif isinstance(ev, h2.events.TrailersReceived):
                    sid = ev.stream_id
                    conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
                    conn.send_data(sid, b"\0\0\0\0\0")
                    echo = [("x-echo-" + (k.decode() if isinstance(k, bytes) else k),
                             v.decode() if isinstance(v, bytes) else v) for k, v in ev.headers]
                    conn.send_headers(sid, [("grpc-status", "0")] + echo, end_stream=True)
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
    except (OSError, h2.exceptions.ProtocolError):
        return
    finally:
        sock.close()


srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", args.port))
srv.listen(64)
print(srv.getsockname()[1], flush=True)
while True:
    s, _ = srv.accept()
    threading.Thread(target=serve, args=(s,), daemon=True).start()
