/* Growable byte buffer. */
#include "util/buf.h"

/* GCC 12 with -fsanitize=undefined sees a NULL path into fmt that cannot happen and reports
 * -Wformat-truncation; the size probe below is the intended use of vsnprintf. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/alloc.h"

void mc_buf_init(struct mc_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void mc_buf_close(struct mc_buf *b)
{
    mc_free(b->data);
    mc_buf_init(b);
}

void mc_buf_reserve(struct mc_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    b->data = mc_realloc(b->data, cap);
    b->cap = cap;
}

void mc_buf_appendf(struct mc_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    mc_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void mc_buf_consume(struct mc_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = '\0';
}

void mc_buf_reset(struct mc_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

char *mc_buf_steal(struct mc_buf *b, size_t *len)
{
    char *d = b->data;
    if (len)
        *len = b->len;
    if (!d)
        d = mc_strdup("");
    mc_buf_init(b);
    return d;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one (overlong forms,
 * surrogates and code points past U+10FFFF included) or it does not fit in avail (>= 1). */
static size_t utf8_seq_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* past U+10FFFF */
    } else {
        return 0;
    }
    if (len > avail || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

void mc_buf_append_json_escaped(struct mc_buf *out, const char *str)
{
    mc_buf_append_json_escaped_n(out, str, strlen(str));
}

void mc_buf_append_json_escaped_n(struct mc_buf *out, const char *str, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    const unsigned char *end = s + len;
    const unsigned char *run = s;
    while (s < end) {
        unsigned char c = *s;
        const char *esc = NULL;
        char u[7];
        size_t skip = 1;
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            if (c < 0x20) {
                memcpy(u, "\\u00", 4);
                u[4] = hex[c >> 4];
                u[5] = hex[c & 15];
                u[6] = '\0';
                esc = u;
            } else if (c >= 0x80 && (skip = utf8_seq_len(s, (size_t)(end - s))) == 0) {
                /* one invalid byte, one replacement character, as Go's encoder does: the
                 * JSON stays valid UTF-8 (a WebSocket text frame must be) */
                esc = "\\ufffd";
                skip = 1;
            }
        }
        if (!esc) {
            s += skip;
            continue;
        }
        mc_buf_append(out, run, (size_t)(s - run));
        mc_buf_append_str(out, esc);
        s += skip;
        run = s;
    }
    mc_buf_append(out, run, (size_t)(s - run));
}

void mc_buf_append_header(struct mc_buf *b, const char *name, const char *value)
{
    mc_buf_append_header_n(b, name, strlen(name), value, strlen(value));
}

void mc_buf_append_uint(struct mc_buf *b, unsigned long long v)
{
    char digits[24];
    size_t n = sizeof digits;
    do {
        digits[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    mc_buf_append(b, digits + n, sizeof digits - n);
}
