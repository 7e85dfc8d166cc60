/* Outbound HTTP/1.1 head lines, checked: every request head the sidecar sends to a node is
 * written here, so a value that came from a client, a registration or a service can never
 * end a line early (CR, LF) and start a second request, nor be cut short by a NUL. I/O-free;
 * the checks are single scans over the bytes being copied anyway. */
#ifndef MC_HTTP_HEAD_H
#define MC_HTTP_HEAD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http/server.h" /* struct mc_http_header */
#include "util/buf.h"

/* Whether name[0..len) is a non-empty token (RFC 9110 5.6.2), the only shape a field name or
 * a method may have. */
int mc_http_is_token(const char *name, size_t len);

/* Whether value[0..len) may be sent as a field value: no CR, LF or NUL (the HTTP/1.1 head
 * writer below and the HTTP/2 client's header blocks apply the same rule). */
int mc_http_is_field_value(const char *value, size_t len);

/* Appends "<method> <target> HTTP/1.1\r\n" to b. method must be a token; target must be
 * non-empty and hold no CR, LF, NUL, space or tab. Returns 0, or MC_EHEADER with b unchanged. */
int mc_http_head_request_line(struct mc_buf *b, const char *method, const char *target);

/* Appends "<name>: <value>\r\n" to b. name must be a token; value must hold no CR or LF (its
 * NUL ends it). Returns the length of name (> 0: callers classify headers by it without
 * another strlen), or MC_EHEADER with b unchanged. */
int mc_http_head_append(struct mc_buf *b, const char *name, const char *value);

/* mc_http_head_append for counted strings: name[0..name_len) must be a token and
 * value[0..value_len) may hold no CR, LF or NUL. Returns 0, or MC_EHEADER with b unchanged. */
int mc_http_head_append_n(struct mc_buf *b, const char *name, size_t name_len, const char *value,
                          size_t value_len);

/* Whether name[0..len) is lower (a lower-case literal of that length) but for ASCII case. For
 * token names only (every header name llhttp or mc_http_is_token let through): OR-ing 0x20
 * maps no token character but A-Z onto another token character. Inline and without a call:
 * the proxy compares names this way several times per request. */
static inline int mc_http_name_eq(const char *name, const char *lower, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)(name[i] | 0x20) != (unsigned char)lower[i])
            return 0;
    return 1;
}

/* mc_http_name_eq a word at a time, the last word overlapping, for a name whose length is
 * known to be len (>= 8): it reads all len bytes, so never a shorter name. For names compared
 * for every header of every call. */
static inline int mc_http_name_eq_words(const char *name, const char *lower, size_t len)
{
    uint64_t x, y;
    for (size_t i = 0; i + 8 < len; i += 8) {
        memcpy(&x, name + i, 8);
        memcpy(&y, lower + i, 8);
        if ((x | 0x2020202020202020u) != y)
            return 0;
    }
    memcpy(&x, name + len - 8, 8);
    memcpy(&y, lower + len - 8, 8);
    return (x | 0x2020202020202020u) == y;
}

/* Whether the NUL-terminated token name is lower but for ASCII case (len: lower's length).
 * Never reads past name's NUL: a NUL differs from every letter even with 0x20 set. */
static inline int mc_http_name_is(const char *name, const char *lower, size_t len)
{
    return mc_http_name_eq(name, lower, len) && name[len] == '\0';
}

/* Whether header name is hop-by-hop (never forwarded, RFC 9110 7.6.1). */
int mc_http_hop_by_hop(const char *name);

/* The one collector of headers to send (what mc_http_head_append later writes, checked): an
 * ordered array of name/value pairs. Borrowed pairs (mc_http_header_list_add) point at storage
 * that must outlive the list; copied ones (mc_http_header_list_add_copy) live in text blocks the
 * list owns, which never move, so every pointer handed out stays valid until close. */
struct mc_http_header_block;
struct mc_http_header_list {
    struct mc_http_header *items;
    size_t count, cap;
    struct mc_http_header_block *blocks; /* copies */
};
/* An empty list with room for expected pairs (one allocation when the guess holds). */
void mc_http_header_list_init(struct mc_http_header_list *l, size_t expected);
/* Grows the array (the slow path of mc_http_header_list_add). */
void mc_http_header_list_grow(struct mc_http_header_list *l);
/* Inline: the proxy adds every forwarded header through it. */
static inline void mc_http_header_list_add(struct mc_http_header_list *l, const char *name,
                                           const char *value)
{
    if (l->count == l->cap)
        mc_http_header_list_grow(l);
    l->items[l->count].name = name;
    l->items[l->count].value = value;
    l->count++;
}
void mc_http_header_list_add_copy(struct mc_http_header_list *l, const char *name,
                                  const char *value);
/* Frees the array and the copies (borrowed strings are untouched). Idempotent. */
void mc_http_header_list_close(struct mc_http_header_list *l);

#endif
