/* libFuzzer target: arbitrary HTTP/2 frames into the sidecar's real HTTP/2 codec (src/http/h2.c,
 * nghttp2's session: framing, HPACK, CONTINUATION, SETTINGS, WINDOW_UPDATE, RST_STREAM, extended
 * CONNECT into src/http/h2_tunnel.c), with the whole API behind it (memory registry and
 * broker, /rpc, path calls, the proxy, gRPC over the HTTP/2 client), over the in-memory
 * transport. The input is what a client sends after the h2c connection preface, which the
 * target prepends so that the fuzzer explores frames rather than the preface: the HTTP/1 codec
 * sees the preface and hands the connection to the HTTP/2 one, as it does for a real client.
 * Calls to nodes (HTTP/1.1 and HTTP/2) dial through the same transport and are refused. How
 * the bytes are cut into reads, whether EOF follows and the --handler are derived from the
 * input. The sidecar must answer with HTTP/2 frames (its SETTINGS first), nothing may crash
 * or leak, and everything must be released at the end. */
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

    /* One client connection, as the listener would hand it over: the preface, then the input
     * (a copy of exactly that size, so a read past it is caught). */
    uint8_t *wire = mc_malloc(MC_H2_PREFACE_LEN + size);
    memcpy(wire, MC_H2_PREFACE, MC_H2_PREFACE_LEN);
    if (size)
        memcpy(wire + MC_H2_PREFACE_LEN, data, size);
    mem_serve_script = mem_script_of(wire, MC_H2_PREFACE_LEN + size);
    mc_h1_accept(f.server, NULL);
    mem_pump(&f.loop, 200000);

    if (getenv("FUZZ_PRINT")) /* to see what a seed exercises: FUZZ_PRINT=1 fuzz_h2 FILE */
        fwrite(mem_out.data, 1, mem_out.len, stderr);
    /* The sidecar answers in HTTP/2 frames, its SETTINGS (type 4, stream 0) first. */
    if (mem_out.len > 0) {
        const uint8_t *frame = (const uint8_t *)mem_out.data;
        assert(mem_out.len >= 9 && frame[3] == 4 &&
               (frame[5] | frame[6] | frame[7] | frame[8]) == 0);
    }

    fuzz_sidecar_stop(&f);
    mc_free(wire);
    return 0;
}
