/* go-micro JSON-RPC codec: a request encoder and a strict, non-allocating JSON scanner that
 * validates a reply and reports where its members' values lie. Only the reply's error string
 * is decoded (it is text for a person or go-micro error JSON), the result never is. */
#include "rpc/jsonrpc.h"

#include <inttypes.h>
#include <string.h>

#include "util/alloc.h"
#include "util/error.h"

/* ---- encoding ---- */

void mc_jsonrpc_encode_request(struct mc_buf *out, const char *method, const char *params_json,
                               size_t params_len, uint64_t id)
{
    mc_buf_append_str(out, "{\"method\":\"");
    mc_buf_append_json_escaped(out, method);
    mc_buf_append_str(out, "\",\"params\":[");
    if (params_len)
        mc_buf_append(out, params_json, params_len);
    else
        mc_buf_append_str(out, "{}");
    mc_buf_append_str(out, "],\"id\":"); /* no printf: this runs for every /rpc call */
    mc_buf_append_uint(out, id);
    mc_buf_append_str(out, "}\n");
}

/* ---- scanning ---- */

struct scan {
    const char *p, *end;
    int depth;
};

/* Where a decoded string goes: a growable buffer, a fixed one (keys: longer than it is "no
 * key we know"), or nowhere (validation only). */
struct sink {
    struct mc_buf *buf;
    char *fix;
    size_t cap, len;
};

static void sink_put(struct sink *k, const char *d, size_t n)
{
    if (!k)
        return;
    if (k->buf) {
        mc_buf_append(k->buf, d, n);
        return;
    }
    if (k->len + n > k->cap) {
        k->len = k->cap + 1; /* overflowed: matches no known key */
        return;
    }
    memcpy(k->fix + k->len, d, n);
    k->len += n;
}

static void sink_put_utf8(struct sink *k, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    sink_put(k, u, n);
}

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int is_digit(const struct scan *s)
{
    return s->p < s->end && *s->p >= '0' && *s->p <= '9';
}

static int read_hex4(struct scan *s, uint32_t *out)
{
    if (s->end - s->p < 4)
        return MC_EPROTO;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = *s->p++;
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return MC_EPROTO;
    }
    *out = v;
    return 0;
}

/* Bytes that stand for themselves inside a JSON string: not '"', '\\' or a control. */
#define PLAIN16(b) 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
static const unsigned char plain[256] = {[0x20] = 1,
                                         1,
                                         0,
                                         1,
                                         1,
                                         1,
                                         1,
                                         1,
                                         1,
                                         1,
                                         1,
                                         1,
                                         1,
                                         1,
                                         1,
                                         1, /* 0x22 '"' */
                                         PLAIN16(0x30),
                                         PLAIN16(0x40),
                                         1,
                                         1,
                                         1,
                                         1,
                                         1,
                                         1,
                                         1,
                                         1,
                                         1,
                                         1,
                                         1,
                                         1,
                                         0,
                                         1,
                                         1,
                                         1, /* 0x5c '\\' */
                                         PLAIN16(0x60),
                                         PLAIN16(0x70),
                                         PLAIN16(0x80),
                                         PLAIN16(0x90),
                                         PLAIN16(0xa0),
                                         PLAIN16(0xb0),
                                         PLAIN16(0xc0),
                                         PLAIN16(0xd0),
                                         PLAIN16(0xe0),
                                         PLAIN16(0xf0)};

/* A string at s->p (which must be '"'), decoded into k (may be NULL). Raw bytes >= 0x80 are
 * passed through unchecked; lone surrogate escapes become U+FFFD, as Go's decoder does. */
static int scan_string(struct scan *s, struct sink *k)
{
    if (s->p >= s->end || *s->p != '"')
        return MC_EPROTO;
    s->p++;
    while (s->p < s->end) {
        unsigned char c = (unsigned char)*s->p;
        if (c == '"') {
            s->p++;
            return 0;
        }
        if (c < 0x20)
            return MC_EPROTO;
        if (c != '\\') {
            /* a run of plain bytes, on a local pointer (s->p would be stored back per byte) */
            const char *run = s->p, *p = run, *end = s->end;
            while (p < end && plain[(unsigned char)*p])
                p++;
            s->p = p;
            sink_put(k, run, (size_t)(p - run));
            continue;
        }
        if (++s->p >= s->end)
            return MC_EPROTO;
        char e = *s->p++;
        char ch;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            ch = e;
            break;
        case 'b':
            ch = '\b';
            break;
        case 'f':
            ch = '\f';
            break;
        case 'n':
            ch = '\n';
            break;
        case 'r':
            ch = '\r';
            break;
        case 't':
            ch = '\t';
            break;
        case 'u': {
            uint32_t cp, lo;
            if (read_hex4(s, &cp))
                return MC_EPROTO;
            if (cp >= 0xd800 && cp < 0xdc00) {
                struct scan peek = *s;
                if (peek.end - peek.p >= 2 && peek.p[0] == '\\' && peek.p[1] == 'u') {
                    peek.p += 2;
                    if (read_hex4(&peek, &lo))
                        return MC_EPROTO;
                    if (lo >= 0xdc00 && lo < 0xe000) {
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                        *s = peek;
                    } else {
                        cp = 0xfffd;
                    }
                } else {
                    cp = 0xfffd;
                }
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                cp = 0xfffd;
            }
            sink_put_utf8(k, cp);
            continue;
        }
        default:
            return MC_EPROTO;
        }
        sink_put(k, &ch, 1);
    }
    return MC_EPROTO;
}

/* RFC 8259 number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int scan_number(struct scan *s)
{
    if (s->p < s->end && *s->p == '-')
        s->p++;
    if (!is_digit(s))
        return MC_EPROTO;
    if (*s->p == '0')
        s->p++;
    else
        while (is_digit(s))
            s->p++;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!is_digit(s))
            return MC_EPROTO;
        while (is_digit(s))
            s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (!is_digit(s))
            return MC_EPROTO;
        while (is_digit(s))
            s->p++;
    }
    return 0;
}

static int scan_literal(struct scan *s, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return MC_EPROTO;
    s->p += n;
    return 0;
}

/* Called with s->p at a member's value, which it must consume. */
typedef int (*member_fn)(void *ctx, struct scan *s, const char *key, size_t key_len);

static int scan_value(struct scan *s);

/* After an object member or array element: ',' (another follows: returns 1) or the closing
 * character (the container ends: returns 0); anything else is MC_EPROTO. */
static int scan_next_item(struct scan *s, char close)
{
    skip_ws(s);
    if (s->p < s->end && *s->p == ',') {
        s->p++;
        skip_ws(s);
        return 1;
    }
    if (s->p < s->end && *s->p == close) {
        s->p++;
        s->depth--;
        return 0;
    }
    return MC_EPROTO;
}

static int scan_object(struct scan *s, member_fn on_member, void *ctx)
{
    if (++s->depth > MC_JSONRPC_MAX_DEPTH)
        return MC_EPROTO;
    s->p++; /* '{' */
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        s->depth--;
        return 0;
    }
    for (;;) {
        char key[16];
        struct sink k = {NULL, key, sizeof key, 0};
        int rc = scan_string(s, &k);
        if (rc)
            return rc;
        skip_ws(s);
        if (s->p >= s->end || *s->p != ':')
            return MC_EPROTO;
        s->p++;
        skip_ws(s);
        rc = on_member ? on_member(ctx, s, key, k.len) : scan_value(s);
        if (rc)
            return rc;
        rc = scan_next_item(s, '}');
        if (rc <= 0)
            return rc;
    }
}

static int scan_array(struct scan *s)
{
    if (++s->depth > MC_JSONRPC_MAX_DEPTH)
        return MC_EPROTO;
    s->p++; /* '[' */
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        s->depth--;
        return 0;
    }
    for (;;) {
        int rc = scan_value(s);
        if (rc)
            return rc;
        rc = scan_next_item(s, ']');
        if (rc <= 0)
            return rc;
    }
}

static int scan_value(struct scan *s)
{
    if (s->p >= s->end)
        return MC_EPROTO;
    switch (*s->p) {
    case '{':
        return scan_object(s, NULL, NULL);
    case '[':
        return scan_array(s);
    case '"':
        return scan_string(s, NULL);
    case 't':
        return scan_literal(s, "true");
    case 'f':
        return scan_literal(s, "false");
    case 'n':
        return scan_literal(s, "null");
    default:
        return scan_number(s);
    }
}

/* Scans text[0..len) as exactly one JSON object, surrounding whitespace allowed. */
static int scan_document(const char *text, size_t len, member_fn on_member, void *ctx)
{
    struct scan s = {text, text + len, 0};
    skip_ws(&s);
    if (s.p >= s.end || *s.p != '{')
        return MC_EPROTO;
    int rc = scan_object(&s, on_member, ctx);
    if (rc)
        return rc;
    skip_ws(&s);
    return s.p == s.end ? 0 : MC_EPROTO;
}

/* Keys match case-insensitively, as Go's encoding/json matches struct fields. */
static int key_is(const char *key, size_t key_len, const char *name)
{
    /* name is lowercase letters: OR-ing 0x20 folds exactly the letters of key onto them */
    for (size_t i = 0; i < key_len; i++)
        if (!name[i] || ((unsigned char)key[i] | 0x20) != (unsigned char)name[i])
            return 0;
    return name[key_len] == '\0';
}

/* An unsigned integer value (digits only, as Go's uint64/int32 decoding requires) into *v;
 * MC_EPROTO if it is another kind of number or does not fit. */
static int scan_uint(struct scan *s, uint64_t *v)
{
    const char *start = s->p;
    if (!is_digit(s))
        return MC_EPROTO;
    int rc = scan_number(s);
    if (rc)
        return rc;
    uint64_t n = 0;
    for (const char *q = start; q < s->p; q++) {
        if (*q < '0' || *q > '9')
            return MC_EPROTO;
        uint64_t d = (uint64_t)(*q - '0');
        if (n > (UINT64_MAX - d) / 10)
            return MC_EPROTO;
        n = n * 10 + d;
    }
    *v = n;
    return 0;
}

/* ---- replies ---- */

struct reply_ctx {
    const char *body;
    struct mc_jsonrpc_reply *out;
};

static int reply_member(void *ctx, struct scan *s, const char *key, size_t key_len)
{
    struct reply_ctx *rc = ctx;
    struct mc_jsonrpc_reply *out = rc->out;
    if (key_is(key, key_len, "result")) {
        const char *start = s->p;
        int err = scan_value(s);
        if (err)
            return err;
        size_t n = (size_t)(s->p - start);
        out->has_result = 1;
        out->result_null = n == 4 && memcmp(start, "null", 4) == 0;
        out->result_start = (size_t)(start - rc->body);
        out->result_len = out->result_null ? 0 : n;
        return 0;
    }
    if (key_is(key, key_len, "error")) {
        mc_free(out->error);
        out->error = NULL;
        out->error_len = 0;
        out->has_error = 1;
        if (s->p < s->end && *s->p == 'n')
            return scan_literal(s, "null");
        struct mc_buf text;
        mc_buf_init(&text);
        struct sink k = {&text, NULL, 0, 0};
        int err = scan_string(s, &k);
        if (err) {
            mc_buf_close(&text);
            return err;
        }
        out->error = mc_buf_steal(&text, &out->error_len);
        return 0;
    }
    if (key_is(key, key_len, "id")) {
        out->has_id = 0;
        if (s->p < s->end && *s->p == 'n')
            return scan_literal(s, "null");
        int err = scan_uint(s, &out->id);
        if (err)
            return err;
        out->has_id = 1;
        return 0;
    }
    return scan_value(s);
}

struct members_ctx {
    const char *body;
    struct mc_json_member *members;
    size_t count;
};

static int members_member(void *ctx, struct scan *s, const char *key, size_t key_len)
{
    struct members_ctx *c = ctx;
    const char *start = s->p;
    struct mc_json_member *m = NULL;
    for (size_t i = 0; i < c->count && !m; i++)
        if (key_is(key, key_len, c->members[i].key))
            m = &c->members[i];
    if (!m)
        return scan_value(s);
    int err;
    m->decoded = 0;
    if (m->buf && m->cap && s->p < s->end && *s->p == '"') {
        /* decoded in this pass: the names are not scanned a second time */
        struct sink k = {NULL, m->buf, m->cap - 1, 0};
        err = scan_string(s, &k);
        if (!err && k.len <= k.cap && !memchr(m->buf, '\0', k.len)) {
            m->buf[k.len] = '\0';
            m->decoded = 1;
        }
    } else {
        err = scan_value(s);
    }
    if (err)
        return err;
    m->found = 1; /* the last one wins, as Go's decoder does */
    m->start = (size_t)(start - c->body);
    m->len = (size_t)(s->p - start);
    return 0;
}

int mc_json_members(const char *body, size_t len, struct mc_json_member *members, size_t count)
{
    for (size_t i = 0; i < count; i++)
        members[i].found = members[i].decoded = 0;
    struct members_ctx ctx = {body, members, count};
    return scan_document(body, len, members_member, &ctx) ? MC_EPROTO : 0;
}

char *mc_json_string_decode(const char *text, size_t len)
{
    struct scan s = {text, text + len, 0};
    if (len == 0 || *text != '"')
        return NULL;
    struct mc_buf out;
    mc_buf_init(&out);
    struct sink k = {&out, NULL, 0, 0};
    if (scan_string(&s, &k) || s.p != s.end || (out.len && memchr(out.data, '\0', out.len))) {
        mc_buf_close(&out);
        return NULL;
    }
    return mc_buf_steal(&out, NULL);
}

int mc_jsonrpc_decode_reply(const char *body, size_t len, struct mc_jsonrpc_reply *out)
{
    memset(out, 0, sizeof *out);
    struct reply_ctx ctx = {body, out};
    int rc = scan_document(body, len, reply_member, &ctx);
    if (rc) {
        mc_jsonrpc_reply_close(out);
        return MC_EPROTO;
    }
    return 0;
}

int mc_jsonrpc_reply_answers(const struct mc_jsonrpc_reply *reply, uint64_t id, const char **why)
{
    if (!reply->has_result && !reply->has_error) {
        *why = "neither \"result\" nor \"error\" in it";
        return 0;
    }
    if (reply->has_id && reply->id != id) {
        *why = "its \"id\" is not the request's";
        return 0;
    }
    return 1;
}

void mc_jsonrpc_reply_close(struct mc_jsonrpc_reply *reply)
{
    mc_free(reply->error);
    memset(reply, 0, sizeof *reply);
}

/* ---- go-micro error JSON ---- */

struct micro_error_ctx {
    int has_code;
    uint64_t code;
};

static int micro_error_member(void *ctx, struct scan *s, const char *key, size_t key_len)
{
    struct micro_error_ctx *me = ctx;
    if (key_is(key, key_len, "code")) {
        me->has_code = 0;
        if (scan_uint(s, &me->code))
            return MC_EPROTO;
        me->has_code = 1;
        return 0;
    }
    if (key_is(key, key_len, "id") || key_is(key, key_len, "detail") ||
        key_is(key, key_len, "status")) {
        if (s->p < s->end && *s->p == 'n')
            return scan_literal(s, "null");
        return scan_string(s, NULL);
    }
    return scan_value(s);
}

int mc_jsonrpc_error_status(uint64_t code)
{
    /* 1xx would announce another response (101: another protocol), 204, 205 and 304 a
     * response without a body: each would frame the error JSON that follows as garbage for
     * the client's next response. Anything outside 200..599 is no status at all. */
    if (code < 200 || code > 599 || code == 204 || code == 205 || code == 304)
        return 500;
    return (int)code;
}

int mc_jsonrpc_micro_error(const char *err, size_t len, int *status)
{
    struct micro_error_ctx me = {0, 0};
    if (scan_document(err, len, micro_error_member, &me) || !me.has_code)
        return 0;
    *status = mc_jsonrpc_error_status(me.code);
    return 1;
}
