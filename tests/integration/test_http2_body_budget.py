"""HTTP/2 buffered request bodies share a per-connection budget (4 x --max_body_size): past it
the sidecar keeps the streams' windows shut, but one stream at a time still completes its body,
so many large concurrent uploads on one connection all finish instead of waiting on each other
until a timeout."""

import socket
import time

import h2.config
import h2.connection
import h2.events

from harness import HOST

STREAMS = 8
BODY = 250 * 1024  # each under --max_body_size=256KiB; together twice the 1 MiB budget


def test_uploads_past_the_budget_all_complete(micro):
    sc = micro("--max_body_size=256KiB")
    s = socket.create_connection((HOST, sc.port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    s.sendall(conn.data_to_send())
    ids = []
    for _ in range(STREAMS):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":path", "/registry"),
                                (":authority", "h"), ("content-type", "application/json"),
                                ("content-length", str(BODY))])
        ids.append(sid)
    s.sendall(conn.data_to_send())
    left = {sid: BODY for sid in ids}
    status = {}
    deadline = time.monotonic() + 30
    s.settimeout(0.2)
    while len(status) < STREAMS and time.monotonic() < deadline:
        for sid in ids:  # round robin, as far as each stream's window allows
            n = min(left[sid], 16384, conn.local_flow_control_window(sid)) if left[sid] else 0
            if n > 0:
                left[sid] -= n
                conn.send_data(sid, b"x" * n, end_stream=left[sid] == 0)
        s.sendall(conn.data_to_send())
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        assert data, f"connection closed; answered {status}, left {left}"
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status[ev.stream_id] = dict(ev.headers)[b":status"]
            elif isinstance(ev, h2.events.StreamReset):
                status[ev.stream_id] = b"reset"
        s.sendall(conn.data_to_send())
    s.close()
    # Every body arrived whole: each is answered for what it is (not JSON: 400), none cut
    # by a body timeout (408) or left waiting.
    assert sorted(status) == ids, f"answered {status}, still to send {left}"
    assert set(status.values()) == {b"400"}, status
