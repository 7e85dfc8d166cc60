"""The TLS transport's memory: the clean pages of libcrypto and libssl that start-up and
handshakes fault in are dropped from the sidecar's mappings after a quiet period (and after
start-up and each SIGHUP reload), and come back when used: the sidecar goes on serving TLS,
resumption and reloads included, after every drop."""

import signal
from pathlib import Path

from harness import wait_until
from test_tls import certs, client_ctx, https, tls_flags  # noqa: F401 (certs: a fixture)


def tls_library_clean_rss_kb(pid):
    """RSS (KiB) of the sidecar's mappings of libcrypto and libssl that were never written (no
    anonymous page, not writable): the pages the transport may drop."""
    total, candidate = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:
            path = fields[5] if len(fields) > 5 else ""
            candidate = fields[1][1] == "-" and ("/libcrypto.so" in path or "/libssl.so" in path)
            rss = 0
        elif candidate and fields[0] == "Rss:":
            rss = int(fields[1])
        elif candidate and fields[0] == "Anonymous:":
            if int(fields[1]) == 0:
                total += rss
            candidate = False
    return total


def test_tls_library_pages_dropped_when_quiet_and_back_when_used(micro, certs):  # noqa: F811
    sc = micro(*tls_flags(certs))
    pid = sc.proc.pid
    ctx = client_ctx(certs)
    status, _, first = https(sc.port, ctx)
    assert status == 200
    assert https(sc.port, ctx, session=first["session"])[0] == 200
    busy = tls_library_clean_rss_kb(pid)
    assert busy > 512, busy  # handshakes ran OpenSSL's code: its pages are mapped

    # A trim period (10 s) with connections, then one without: the pages go.
    wait_until(lambda: tls_library_clean_rss_kb(pid) < busy // 2, 40,
               message=f"the TLS libraries' pages dropped (from {busy} KiB)")

    # They come back from the page cache as they are used: a full handshake, a resumed one.
    status, _, again = https(sc.port, ctx)
    assert status == 200
    status, _, resumed = https(sc.port, ctx, session=again["session"])
    assert status == 200 and resumed["reused"]
    assert tls_library_clean_rss_kb(pid) > 0

    # A reload builds a new context (and drops the pages again); the next handshake serves.
    sc.signal(signal.SIGHUP)
    wait_until(lambda: "reloaded" in sc.stderr(), 10, message="the reload")
    assert https(sc.port, ctx)[0] == 200
    assert sc.alive()
