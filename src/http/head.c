/* Checked head lines: token names, values without line breaks or NULs. */
#define _GNU_SOURCE /* strchrnul: the end and the first CR in one vectorised scan */
#include "http/head.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

#include "util/alloc.h"
#include "util/error.h"

/* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" /
 * "~" / DIGIT / ALPHA. NUL is not one, so a scan over a C string stops at its end. */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

int mc_http_is_token(const char *name, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!tchar[(unsigned char)name[i]])
            return 0;
    return 1;
}

/* The length of the token at the start of s, which must be all of s: 0 when s is empty or
 * holds a byte that is not a token character. One pass, no strlen, four bytes a turn: each
 * byte is read only once the one before it proved a token character, hence not the NUL. */
static size_t token_len(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = 0;
    while (tchar[u[n]] && tchar[u[n + 1]] && tchar[u[n + 2]] && tchar[u[n + 3]])
        n += 4;
    while (tchar[u[n]])
        n++;
    return s[n] == '\0' ? n : 0;
}

int mc_http_head_request_line(struct mc_buf *b, const char *method, const char *target)
{
    size_t ml = token_len(method);
    size_t tl = strcspn(target, " \t\r\n");
    if (ml == 0 || tl == 0 || target[tl] != '\0')
        return MC_EHEADER;
    mc_buf_reserve(b, ml + tl + 11);
    char *p = b->data + b->len;
    memcpy(p, method, ml);
    p += ml;
    *p++ = ' ';
    memcpy(p, target, tl);
    p += tl;
    memcpy(p, " HTTP/1.1\r\n", 11);
    p += 11;
    b->len = (size_t)(p - b->data);
    b->data[b->len] = '\0';
    return 0;
}

int mc_http_head_append(struct mc_buf *b, const char *name, const char *value)
{
    size_t nl = token_len(name);
    /* two vectorised scans: to the first CR (or the end), then for a LF before it */
    const char *cr = strchrnul(value, '\r');
    size_t vl = (size_t)(cr - value);
    if (nl == 0 || nl > INT_MAX || *cr || memchr(value, '\n', vl))
        return MC_EHEADER;
    mc_buf_append_header_n(b, name, nl, value, vl);
    return (int)nl;
}

int mc_http_is_field_value(const char *value, size_t len)
{
    return !memchr(value, '\r', len) && !memchr(value, '\n', len) && !memchr(value, '\0', len);
}

int mc_http_head_append_n(struct mc_buf *b, const char *name, size_t name_len, const char *value,
                          size_t value_len)
{
    if (!mc_http_is_token(name, name_len) || !mc_http_is_field_value(value, value_len))
        return MC_EHEADER;
    mc_buf_append_header_n(b, name, name_len, value, value_len);
    return 0;
}

int mc_http_hop_by_hop(const char *name)
{
    /* Called for every header of every proxied request and response: every hop-by-hop name
     * starts with c, k, p, t or u, so most headers cost one test; then the length decides. */
    switch (name[0] | 0x20) {
    case 'c':
    case 'k':
    case 'p':
    case 't':
    case 'u':
        break;
    default:
        return 0;
    }
    switch (strlen(name)) {
    case 2:
        return mc_http_name_eq(name, "te", 2);
    case 7:
        return mc_http_name_eq(name, "trailer", 7) || mc_http_name_eq(name, "upgrade", 7);
    case 10:
        return mc_http_name_eq(name, "connection", 10) || mc_http_name_eq(name, "keep-alive", 10);
    case 16:
        return mc_http_name_eq(name, "proxy-connection", 16);
    case 17:
        return mc_http_name_eq(name, "transfer-encoding", 17);
    case 18:
        return mc_http_name_eq(name, "proxy-authenticate", 18);
    case 19:
        return mc_http_name_eq(name, "proxy-authorization", 19);
    default:
        return 0;
    }
}

/* Copies go into blocks of at least this many bytes, chained, never reallocated. */
#define HEADER_BLOCK_MIN 1024
struct mc_http_header_block {
    struct mc_http_header_block *next;
    size_t len, cap;
    char text[];
};

void mc_http_header_list_init(struct mc_http_header_list *l, size_t expected)
{
    memset(l, 0, sizeof *l);
    if (expected) {
        l->items = mc_malloc(expected * sizeof *l->items);
        l->cap = expected;
    }
}

void mc_http_header_list_grow(struct mc_http_header_list *l)
{
    l->cap = l->cap ? l->cap * 2 : 8;
    l->items = mc_realloc(l->items, l->cap * sizeof *l->items);
}

static const char *copy_text(struct mc_http_header_list *l, const char *s)
{
    size_t len = strlen(s) + 1;
    struct mc_http_header_block *b = l->blocks;
    if (!b || b->cap - b->len < len) {
        size_t cap = len > HEADER_BLOCK_MIN ? len : HEADER_BLOCK_MIN;
        b = mc_malloc(sizeof *b + cap);
        b->len = 0;
        b->cap = cap;
        b->next = l->blocks;
        l->blocks = b;
    }
    char *out = b->text + b->len;
    memcpy(out, s, len);
    b->len += len;
    return out;
}

void mc_http_header_list_add_copy(struct mc_http_header_list *l, const char *name,
                                  const char *value)
{
    const char *n = copy_text(l, name);
    mc_http_header_list_add(l, n, copy_text(l, value));
}

void mc_http_header_list_close(struct mc_http_header_list *l)
{
    mc_free(l->items);
    while (l->blocks) {
        struct mc_http_header_block *next = l->blocks->next;
        mc_free(l->blocks);
        l->blocks = next;
    }
    memset(l, 0, sizeof *l);
}
