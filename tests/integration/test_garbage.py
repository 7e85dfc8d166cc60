"""SPEC 11's last line: nothing malformed may crash the sidecar, leak memory or lose a
registration. Seeded mutations of valid requests (HTTP heads, JSON bodies, WebSocket
upgrades) are thrown at one sidecar over fresh connections; afterwards it must still answer
and still hold the registration made before. The harness fails the test on any sanitizer
report in the sidecar's stderr (make test runs this suite under ASan+UBSan too)."""

import random
import socket

from harness import HOST, node, service

SEEDS = [
    b"GET /registry?service=canary.svc HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /registry HTTP/1.1\r\nHost: x\r\nContent-Length: 62\r\n\r\n"
    b'{"name":"g","nodes":[{"id":"g1","address":"127.0.0.1","port":1}]}',
    b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 47\r\n\r\n"
    b'{"service":"g","method":"G.Call","request":{}}',
    b"POST /registry HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\n{\"nam\r\n0\r\n\r\n",
    b"GET /broker?topic=t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    b"\x81\x85\x01\x02\x03\x04ignore",
    b"DELETE /registry HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\n"
    b'{"name":"g","nodes":[{"id":1}]}',
    b"GET /foo/bar HTTP/1.0\r\n\r\n",
]
INTERESTING = [b"\r\n", b"\x00", b"\xff", b":", b" ", b"{", b"}", b'"', b"%", b"\\",
               b"99999999999999999999", b"-1", b"chunked", b"\r\n\r\n"]


def mutate(rng, data):
    data = bytearray(data)
    head_end = data.find(b"\r\n\r\n") + 4
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        op = rng.randrange(4)
        # half the mutations land after the head, where the JSON and frames are
        if rng.random() < 0.5 and head_end < len(data):
            pos = rng.randrange(head_end, len(data) + 1)
        else:
            pos = rng.randrange(len(data) + 1)
        if op == 0 and data:  # flip a byte
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:  # insert something with meaning
            data[pos:pos] = rng.choice(INTERESTING)
        elif op == 2 and data:  # delete a run
            del data[pos:pos + rng.randint(1, 8)]
        else:  # duplicate a run
            data[pos:pos] = data[pos:pos + rng.randint(1, 16)]
    return bytes(data)


def throw(port, payload):
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.settimeout(0.5)
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
        except OSError:
            pass  # a reset or a timeout is a fine answer to garbage


def test_mutated_requests_do_not_hurt(micro):
    sc = micro("--max_body_size=4KiB", "--request_timeout=200ms", "--dial_timeout=100ms")
    canary = service("canary.svc", [node("c1", port=7000)])
    assert sc.register(canary).status == 200
    rng = random.Random(20261128)
    for _ in range(600):
        throw(sc.port, mutate(rng, rng.choice(SEEDS)))
    r = sc.get("/registry?service=canary.svc")
    assert r.status == 200, r
    assert r.json()[0]["nodes"][0]["id"] == "c1"
