"""What a sidecar holds for features it does not use: building an OpenSSL context faults in
some 3 MiB of libcrypto's and libssl's pages, so a sidecar without --enable_tls, whose
clients never call a "secure" gRPC node, must not build one (the TLS context for secure
nodes is made on the first call to one)."""
import harness

TLS_LIBS = ("/libcrypto.so", "/libssl.so")
# Linked but unused, the libraries' resident pages are what the dynamic linker touched
# (relocations and symbol tables: ~1.7 MiB here); a server or client context adds ~2.7 MiB.
UNUSED_TLS_LIBS_MAX_KIB = 2560


def tls_libs_rss_kib(pid):
    total, current = 0, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5 and ":" not in fields[0]:
                current = fields[5] if len(fields) > 5 else ""
            elif fields[0] == "Rss:" and current and any(lib in current for lib in TLS_LIBS):
                total += int(fields[1])
    return total


def test_a_plain_sidecar_builds_no_tls_context(micro):
    sc = micro()
    # answer a request first: whatever the first request path would set up is set up
    assert harness.request(sc.port, "GET", "/health").status == 200
    kib = tls_libs_rss_kib(sc.proc.pid)
    assert kib < UNUSED_TLS_LIBS_MAX_KIB, (
        f"libcrypto + libssl hold {kib} KiB resident without TLS in use: "
        "something built an OpenSSL context at start-up")
