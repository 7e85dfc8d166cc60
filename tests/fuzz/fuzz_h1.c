/* libFuzzer target: arbitrary client bytes into the sidecar's real HTTP/1 server, with the
 * whole API behind it (memory registry and broker, /rpc, path calls, the proxy, WebSocket
 * upgrades), over the in-memory transport: pipelined requests, chunked bodies, upgrades and
 * half-closes take the real code path. Calls to nodes dial through the same transport and are
 * refused, so a run never leaves the process. The input is the byte stream a client sends; how
 * it is cut into reads, whether EOF follows and the --handler are derived from its bytes.
 * Whatever the sidecar writes back must be HTTP/1.1 responses (or a WebSocket stream after a
 * 101), nothing may crash or leak, and everything must be released at the end. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/h2.h"
#include "sidecar_harness.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

int FUZZ_ENTRY(const uint8_t *data, size_t size);

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    struct fuzz_sidecar f;
    fuzz_sidecar_start(&f, size / 7);

    /* One client connection, as the listener would hand it over. */
    mem_serve_script = mem_script_of(data, size);
    mc_h1_accept(f.server, NULL);
    mem_pump(&f.loop, 200000);

    if (getenv("FUZZ_PRINT")) /* to see what a seed exercises: FUZZ_PRINT=1 fuzz_h1 FILE */
        fprintf(stderr, "%.*s\n", (int)mem_out.len, mem_out.data);
    /* The sidecar answers HTTP/1.1 (a WebSocket stream follows a 101), or, to a connection
     * that opens with the HTTP/2 preface, HTTP/2: its SETTINGS frame comes first. */
    if (mem_out.len > 0 && mc_h2_preface_match((const char *)data, size) == 1)
        assert(mem_out.len >= 9 && (unsigned char)mem_out.data[3] == 0x4 /* SETTINGS */);
    else if (mem_out.len > 0)
        assert(mem_out.len >= 9 && memcmp(mem_out.data, "HTTP/1.1 ", 9) == 0);

    fuzz_sidecar_stop(&f);
    return 0;
}
