/* Standard base64 with padding (RFC 4648 section 4). */
#include "util/base64.h"

#include <stdint.h>

#include "util/error.h"

static const char enc_table[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Reverse alphabet: 0..63 for alphabet characters, 0xff for everything else ("=" included,
 * which the decoder handles by position). */
static const uint8_t dec_table[256] = {
#define X 0xff
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  /* 0x00 */
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  /* 0x10 */
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  62, X,  X,  X,  63, /* 0x20 */
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, X,  X,  X,  X,  X,  X,  /* 0x30 */
    X,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, /* 0x40 */
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, X,  X,  X,  X,  X,  /* 0x50 */
    X,  26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, /* 0x60 */
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, X,  X,  X,  X,  X,  /* 0x70 */
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  /* 0x80 */
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  /* 0x90 */
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  /* 0xa0 */
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  /* 0xb0 */
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  /* 0xc0 */
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  /* 0xd0 */
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  /* 0xe0 */
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  /* 0xf0 */
#undef X
};

size_t mc_base64_encoded_len(size_t len)
{
    size_t groups = len / 3 + (len % 3 != 0);
    if (groups > SIZE_MAX / 4)
        return 0;
    return groups * 4;
}

size_t mc_base64_encode(char *out, const void *in, size_t len)
{
    const uint8_t *p = in;
    char *o = out;
    size_t i = 0;

    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = enc_table[v >> 18];
        *o++ = enc_table[(v >> 12) & 63];
        *o++ = enc_table[(v >> 6) & 63];
        *o++ = enc_table[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = enc_table[v >> 18];
        *o++ = enc_table[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = enc_table[v >> 18];
        *o++ = enc_table[(v >> 12) & 63];
        *o++ = enc_table[(v >> 6) & 63];
        *o++ = '=';
    }
    return (size_t)(o - out);
}

size_t mc_base64_decoded_max(size_t len)
{
    return len / 4 * 3;
}

int mc_base64_decode(void *out, size_t *out_len, const char *in, size_t len)
{
    const uint8_t *s = (const uint8_t *)in;
    uint8_t *o = out;

    if (len % 4 != 0)
        return MC_EINVAL;
    for (size_t i = 0; i < len; i += 4) {
        int last = i + 4 == len;
        /* Padding is legal only in the last group, as "xx==" or "xxx=". */
        int pad = 0;
        if (last && s[i + 3] == '=')
            pad = s[i + 2] == '=' ? 2 : 1;
        uint8_t a = dec_table[s[i]], b = dec_table[s[i + 1]];
        uint8_t c = pad == 2 ? 0 : dec_table[s[i + 2]];
        uint8_t d = pad >= 1 ? 0 : dec_table[s[i + 3]];
        if ((a | b | c | d) & 0xc0)
            return MC_EINVAL;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
        /* Non-zero discarded bits would give a second spelling of the same bytes. */
        if ((pad == 2 && (v & 0xffff)) || (pad == 1 && (v & 0xff)))
            return MC_EINVAL;
        *o++ = (uint8_t)(v >> 16);
        if (pad < 2)
            *o++ = (uint8_t)(v >> 8);
        if (pad < 1)
            *o++ = (uint8_t)v;
    }
    *out_len = (size_t)(o - (uint8_t *)out);
    return 0;
}
