#!/usr/bin/python3
"""bench/hold_conns.py PORT COUNT [SECONDS]: opens COUNT keep-alive connections to
127.0.0.1:PORT, sends one GET /health on each and reads its answer, prints "ready N" once
every connection has been answered, then holds them open (idle) until stdin closes or SECONDS
[600] pass. Used by bench/scale.sh to measure what an idle keep-alive connection costs the
sidecar. Exits 1 if any connection fails or goes unanswered within 60 s."""
import asyncio
import sys

REQUEST = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n"


async def one(port, held):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
    held.append(writer)


async def main():
    port, count = int(sys.argv[1]), int(sys.argv[2])
    hold = float(sys.argv[3]) if len(sys.argv) > 3 else 600
    held = []
    # Opened in batches so the listener's backlog never overflows.
    for start in range(0, count, 500):
        batch = [one(port, held) for _ in range(start, min(count, start + 500))]
        await asyncio.wait_for(asyncio.gather(*batch), 60)
    print("ready", len(held), flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    try:
        await asyncio.wait_for(stdin_closed, hold)
    except asyncio.TimeoutError:
        pass
    for w in held:
        w.close()


try:
    asyncio.run(main())
except Exception as e:  # one line for the bench log, not a traceback
    print("hold_conns: %s" % (e or type(e).__name__), file=sys.stderr)
    sys.exit(1)
