/* A growable byte buffer, the one container for bytes being assembled (responses, JSON). */
#ifndef MC_UTIL_BUF_H
#define MC_UTIL_BUF_H

#include <stddef.h>
#include <string.h>

struct mc_buf {
    char *data; /* owned; NUL-terminated after every append when cap > 0 */
    size_t len;
    size_t cap;
};

/* Embeds an empty buffer; mc_buf_close() frees what it grew. */
void mc_buf_init(struct mc_buf *b);
void mc_buf_close(struct mc_buf *b);
void mc_buf_reserve(struct mc_buf *b, size_t extra);
/* Inline: parsers append every header name and value piece by piece, and heads are built of
 * short literals (whose strlen the compiler folds); only growing is out of line. */
static inline void mc_buf_append(struct mc_buf *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap)
        mc_buf_reserve(b, len);
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}
static inline void mc_buf_append_str(struct mc_buf *b, const char *s)
{
    mc_buf_append(b, s, strlen(s));
}
void mc_buf_appendf(struct mc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes, keeping the rest. */
void mc_buf_consume(struct mc_buf *b, size_t n);
void mc_buf_reset(struct mc_buf *b);
/* Appends "name: value\r\n" (the hot path of every HTTP head: no printf). */
void mc_buf_append_header(struct mc_buf *b, const char *name, const char *value);
/* The same with known lengths, in one reservation: inline, it is the hot path of every proxied
 * request (http/head checks the values before it writes them this way). */
static inline void mc_buf_append_header_n(struct mc_buf *b, const char *name, size_t nl,
                                          const char *value, size_t vl)
{
    mc_buf_reserve(b, nl + vl + 4);
    char *p = b->data + b->len;
    memcpy(p, name, nl);
    p += nl;
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, value, vl);
    p += vl;
    *p++ = '\r';
    *p++ = '\n';
    b->len = (size_t)(p - b->data);
    b->data[b->len] = '\0';
}
/* Appends v in decimal. */
void mc_buf_append_uint(struct mc_buf *b, unsigned long long v);
/* Appends s as the inside of a JSON string literal: quotes, backslashes and control
 * characters escaped, everything else (UTF-8 included) copied. */
void mc_buf_append_json_escaped(struct mc_buf *b, const char *s);
/* The same for s[0..len), which may hold NULs: each is escaped as \u0000, so text carried
 * with its length reaches the reader whole instead of cut short at the first NUL. */
void mc_buf_append_json_escaped_n(struct mc_buf *b, const char *s, size_t len);
/* Hands the bytes to the caller (who mc_free()s them) and leaves the buffer empty. */
char *mc_buf_steal(struct mc_buf *b, size_t *len);

#endif
