/* Test helpers shared by the ws unit tests: build masked client frames and describe the
 * server frames a codec wrote, so expectations read as short strings. */
#ifndef MC_TESTS_WS_FRAMES_H
#define MC_TESTS_WS_FRAMES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util/buf.h"

static const uint8_t test_mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Appends one client frame: first byte b0 (FIN/RSV/opcode), payload p[0..n), masked with
 * test_mask_key unless unmasked. */
static inline void test_frame(struct mc_buf *b, uint8_t b0, int unmasked, const uint8_t *p,
                              size_t n)
{
    uint8_t h[14];
    size_t hl = 0;
    uint8_t m = unmasked ? 0 : 0x80;
    h[hl++] = b0;
    if (n < 126) {
        h[hl++] = (uint8_t)(m | n);
    } else if (n <= 0xFFFF) {
        h[hl++] = m | 126;
        h[hl++] = (uint8_t)(n >> 8);
        h[hl++] = (uint8_t)n;
    } else {
        h[hl++] = m | 127;
        for (int i = 0; i < 8; i++)
            h[hl++] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
    }
    if (!unmasked) {
        memcpy(h + hl, test_mask_key, 4);
        hl += 4;
    }
    mc_buf_append(b, h, hl);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = unmasked ? p[i] : (uint8_t)(p[i] ^ test_mask_key[i % 4]);
        mc_buf_append(b, &c, 1);
    }
}

static inline void test_hex(struct mc_buf *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mc_buf_appendf(out, "%02x", p[i]);
}

/* Describes the server frames in wire[0..n) into out, one "op:payload;" per frame: close as
 * "8:code:reason;" (or "8:;" when empty), others with the payload in hex, payloads over 32
 * bytes as "#len". Returns 0, or -1 if a frame is masked, has RSV bits, lacks FIN, or is
 * truncated (servers must send none of those here). */
static inline int test_describe_frames(struct mc_buf *out, const uint8_t *wire, size_t n)
{
    size_t off = 0;
    while (off < n) {
        if (n - off < 2)
            return -1;
        uint8_t b0 = wire[off], b1 = wire[off + 1];
        if ((b0 & 0xF0) != 0x80 || (b1 & 0x80) != 0)
            return -1;
        uint64_t len = b1 & 0x7F;
        size_t hl = 2;
        if (len == 126) {
            if (n - off < 4)
                return -1;
            len = ((uint64_t)wire[off + 2] << 8) | wire[off + 3];
            hl = 4;
        } else if (len == 127) {
            if (n - off < 10)
                return -1;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | wire[off + 2 + i];
            hl = 10;
        }
        if (n - off - hl < len)
            return -1;
        const uint8_t *p = wire + off + hl;
        int op = b0 & 0x0F;
        mc_buf_appendf(out, "%X:", op);
        if (op == 0x8 && len >= 2) {
            mc_buf_appendf(out, "%u:", (unsigned)((p[0] << 8) | p[1]));
            mc_buf_append(out, p + 2, (size_t)len - 2);
        } else if (len > 32) {
            mc_buf_appendf(out, "#%llu", (unsigned long long)len);
        } else {
            test_hex(out, p, (size_t)len);
        }
        mc_buf_append_str(out, ";");
        off += hl + (size_t)len;
    }
    return 0;
}

#endif
