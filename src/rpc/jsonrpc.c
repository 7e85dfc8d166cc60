/* go-micro JSON-RPC codec: a request encoder and a strict, non-allocating JSON scanner that
 * validates a reply and reports where its members' values lie. Only the reply's error string
 * is decoded (it is text for a person or go-micro error JSON), the result never is. */
#include "rpc/jsonrpc.h"

#include <inttypes.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "util/alloc.h"
#include "util/error.h"

/* ---- encoding ---- */

/* The first byte in [p, end) that JSON text does not carry as it is (outside 0x20..0x7e, or
 * '"' or '\\'), or end: eight bytes at a time where the machine allows it (see plain_run below
 * for the trick; here bytes of 0x80 and above are flagged too, as the escaper checks their
 * UTF-8). */
static const char *verbatim_run(const char *p, const char *end)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    while (end - p >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\'), d = x ^ (ones * 0x7f);
        uint64_t hit =
            ((((x - ones * 0x20) | (q - ones) | (b - ones) | (d - ones)) & ~x) | x) & high;
        if (hit)
            return p + (__builtin_ctzll(hit) >> 3);
        p += 8;
    }
#endif
    for (; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
            break;
    }
    return p;
}

/* Writes v in decimal at p (20 bytes of room): two digits per division, from a table (this
 * runs for every call); returns the end. */
static char *put_uint(char *p, uint64_t v)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930"
                                "31323334353637383940414243444546474849505152535455565758596061"
                                "6263646566676869707172737475767778798081828384858687888990919293"
                                "949596979899";
    char digits[20];
    size_t n = sizeof digits;
    while (v >= 100) {
        size_t k = (size_t)(v % 100) * 2;
        v /= 100;
        digits[--n] = pairs[k + 1];
        digits[--n] = pairs[k];
    }
    if (v >= 10) {
        digits[--n] = pairs[v * 2 + 1];
        digits[--n] = pairs[v * 2];
    } else {
        digits[--n] = (char)('0' + v);
    }
    memcpy(p, digits + n, sizeof digits - n);
    return p + sizeof digits - n;
}

/* memcpy of a literal's bytes, its length folded by the compiler */
#define PUT_LIT(p, lit) (memcpy(p, lit, sizeof lit - 1), (p) += sizeof lit - 1)

void mc_jsonrpc_encode_request(struct mc_buf *out, const char *method, const char *params_json,
                               size_t params_len, uint64_t id)
{
    /* A method is ASCII without quotes or backslashes as a rule: copied as it is; from the
     * first byte that is not, the escaper takes over (controls, quotes, UTF-8 checks). */
    size_t ml = strlen(method);
    const char *m = verbatim_run(method, method + ml);
    size_t plain = (size_t)(m - method);
    if (!params_len) {
        params_json = "{}"; /* go-micro's empty request */
        params_len = 2;
    }
    /* one reservation: 11 + 12 + 7 + 2 bytes of framing, 20 digits at most, the rest */
    mc_buf_reserve(out, 52 + plain + params_len);
    char *p = out->data + out->len;
    PUT_LIT(p, "{\"method\":\"");
    memcpy(p, method, plain);
    p += plain;
    if (m < method + ml) {
        out->len = (size_t)(p - out->data);
        mc_buf_append_json_escaped_n(out, m, (size_t)(method + ml - m));
        mc_buf_reserve(out, 41 + params_len);
        p = out->data + out->len;
    }
    PUT_LIT(p, "\",\"params\":[");
    memcpy(p, params_json, params_len);
    p += params_len;
    PUT_LIT(p, "],\"id\":"); /* no printf: this runs for every /rpc call */
    p = put_uint(p, id);
    PUT_LIT(p, "}\n");
    out->len = (size_t)(p - out->data);
    out->data[out->len] = '\0';
}

/* ---- scanning ---- */

/* The scanner's functions take the position p and the end of the text and return the position
 * after what they consumed, or NULL when the text is not what JSON allows there: the position
 * lives in a register, never in memory. */

/* What a decoded string held besides plain text (struct sink's flags). */
#define SINK_CTL 1 /* a control character (below 0x20, or DEL) */
#define SINK_NUL 2 /* a NUL (\u0000) */

/* Where a decoded string goes: a growable buffer, a fixed one (keys: longer than it is "no
 * key we know"), or nowhere (validation only). flags gathers SINK_* for what was decoded. */
struct sink {
    struct mc_buf *buf;
    char *fix;
    size_t cap, len;
    int flags;
};

static inline void sink_put(struct sink *k, const char *d, size_t n)
{
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
        if (cp < 0x20 || cp == 0x7f)
            k->flags |= cp ? SINK_CTL : SINK_CTL | SINK_NUL;
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

/* JSON's four whitespace bytes, skipped from p. */
static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

/* Compact JSON (the rule) has no whitespace between tokens: one compare decides that a byte
 * is none, and the loop runs only when it may be. */
static inline const char *ws(const char *p, const char *end)
{
    return p < end && (unsigned char)*p <= ' ' ? skip_ws(p, end) : p;
}

/* Four hex digits at p (end - p >= 4 checked by the caller) into *out. */
static int read_hex4(const char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
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

/* Bytes that stand for themselves inside a JSON string and need no look: not '"', '\\', a
 * control or DEL (DEL is valid JSON text, but a decoded name must say it holds one). */
#define PLAIN16(b) 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
static const unsigned char plain[256] = {[0x20] = 1,
                                         1,
                                         0 /* '"' */,
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
                                         1,
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
                                         0 /* '\\' */,
                                         1,
                                         1,
                                         1,
                                         PLAIN16(0x60),
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
                                         1,
                                         1,
                                         1,
                                         0 /* DEL */,
                                         PLAIN16(0x80),
                                         PLAIN16(0x90),
                                         PLAIN16(0xa0),
                                         PLAIN16(0xb0),
                                         PLAIN16(0xc0),
                                         PLAIN16(0xd0),
                                         PLAIN16(0xe0),
                                         PLAIN16(0xf0)};

/* The first byte in [p, end) that is not plain, or end: every key and string goes through
 * here. Sixteen bytes at a time with SSE2 (x86-64 always has it), then eight at a time where
 * the machine allows it: a byte is flagged when it is below 0x20 or equal to '"', '\\' or DEL,
 * each test the classic "has a zero byte" trick, whose lowest flagged byte is exact (a borrow
 * only carries upward from a true hit); bytes of 0x80 and above are never flagged (~x clears
 * them), as they are plain. */
static inline const char *plain_run(const char *p, const char *end)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
    const __m128i del = _mm_set1_epi8(0x7f), ctl = _mm_set1_epi8(0x1f);
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* max(x, 0x1f) == 0x1f: x is at most 0x1f, unsigned */
        __m128i hit = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, bslash)),
            _mm_or_si128(_mm_cmpeq_epi8(x, del), _mm_cmpeq_epi8(_mm_max_epu8(x, ctl), ctl)));
        int mask = _mm_movemask_epi8(hit);
        if (mask)
            return p + __builtin_ctz((unsigned)mask);
        p += 16;
    }
#endif
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    while (end - p >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\'), d = x ^ (ones * 0x7f);
        uint64_t hit = ((x - ones * 0x20) | (q - ones) | (b - ones) | (d - ones)) & ~x & high;
        if (hit)
            return p + (__builtin_ctzll(hit) >> 3);
        p += 8;
    }
#endif
    while (p < end && plain[(unsigned char)*p])
        p++;
    return p;
}

/* The escape after a backslash at p (end - p >= 1 checked: p is the byte after '\\') into
 * k; returns the byte after it, or NULL when it is not a valid escape. Lone surrogate escapes
 * become U+FFFD, as Go's decoder does. */
static const char *scan_escape(const char *p, const char *end, struct sink *k)
{
    char ch;
    switch (*p++) {
    case '"':
        ch = '"';
        break;
    case '\\':
        ch = '\\';
        break;
    case '/':
        ch = '/';
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
        if (end - p < 4 || read_hex4(p, &cp))
            return NULL;
        p += 4;
        if (cp >= 0xd800 && cp < 0xdc00) {
            if (end - p >= 2 && p[0] == '\\' && p[1] == 'u') {
                if (end - p < 6 || read_hex4(p + 2, &lo))
                    return NULL;
                if (lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    p += 6;
                } else {
                    cp = 0xfffd; /* the next escape is read on its own */
                }
            } else {
                cp = 0xfffd;
            }
        } else if (cp >= 0xdc00 && cp < 0xe000) {
            cp = 0xfffd;
        }
        if (k)
            sink_put_utf8(k, cp);
        return p;
    }
    default:
        return NULL;
    }
    if (k) {
        if ((unsigned char)ch < 0x20)
            k->flags |= SINK_CTL;
        sink_put(k, &ch, 1);
    }
    return p;
}

/* A string at p (which must be '"'), decoded into k (may be NULL); returns the byte after its
 * closing quote. Raw bytes >= 0x80 are passed through unchecked. */
static const char *scan_string(const char *p, const char *end, struct sink *k)
{
    if (p >= end || *p != '"')
        return NULL;
    p++;
    for (;;) {
        const char *run = p;
        p = plain_run(p, end);
        if (k && p > run)
            sink_put(k, run, (size_t)(p - run));
        if (p >= end)
            return NULL;
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p + 1;
        if (c < 0x20)
            return NULL;
        if (c == 0x7f) {
            if (k) {
                k->flags |= SINK_CTL;
                sink_put(k, p, 1);
            }
            p++;
            continue;
        }
        /* c == '\\' */
        if (++p >= end || !(p = scan_escape(p, end, k)))
            return NULL;
    }
}

/* A string only validated: the common one (no escape, no DEL) in one run, inline. */
static inline const char *skip_string(const char *p, const char *end)
{
    const char *q = plain_run(p + 1, end);
    if (q < end && *q == '"')
        return q + 1;
    return scan_string(p, end, NULL);
}

/* RFC 8259 number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int digit_at(const char *p, const char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

static const char *scan_number(const char *p, const char *end)
{
    if (p < end && *p == '-')
        p++;
    if (!digit_at(p, end))
        return NULL;
    if (*p == '0')
        p++;
    else
        while (digit_at(p, end))
            p++;
    if (p < end && *p == '.') {
        p++;
        if (!digit_at(p, end))
            return NULL;
        while (digit_at(p, end))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!digit_at(p, end))
            return NULL;
        while (digit_at(p, end))
            p++;
    }
    return p;
}

/* word is a literal of n bytes: the compare is inlined, no call */
static inline const char *scan_literal_n(const char *p, const char *end, const char *word, size_t n)
{
    if ((size_t)(end - p) < n || memcmp(p, word, n) != 0)
        return NULL;
    return p + n;
}
#define scan_literal(p, end, word) scan_literal_n(p, end, word, sizeof word - 1)

static const char *scan_value(const char *p, const char *end, int depth);

/* After an object member or array element (whitespace allowed before and after): ',' (another
 * follows: *more = 1) or the closing character (*more = 0); NULL for anything else. */
static inline const char *scan_next_item(const char *p, const char *end, char close, int *more)
{
    if (p < end && *p != ',' && *p != close)
        p = skip_ws(p, end); /* only then: compact JSON has the byte at once */
    if (p < end && *p == ',') {
        *more = 1;
        p++;
        /* the next key or element starts at once in compact JSON */
        return p < end && *p != '"' ? skip_ws(p, end) : p;
    }
    if (p < end && *p == close) {
        *more = 0;
        return p + 1;
    }
    return NULL;
}

/* ':' after a key, whitespace allowed around it: returns the value's first byte. */
static inline const char *scan_colon(const char *p, const char *end)
{
    if (p < end && *p != ':')
        p = skip_ws(p, end);
    if (p >= end || *p != ':')
        return NULL;
    return ws(p + 1, end);
}

/* An object at p ('{') nested depth deep (the top object is 1), its members only validated. */
static const char *scan_object(const char *p, const char *end, int depth)
{
    if (depth > MC_JSONRPC_MAX_DEPTH)
        return NULL;
    p = ws(p + 1, end);
    if (p < end && *p == '}')
        return p + 1;
    for (int more = 1; more;) {
        if (p >= end || *p != '"' || !(p = skip_string(p, end)) || !(p = scan_colon(p, end)) ||
            !(p = scan_value(p, end, depth)) || !(p = scan_next_item(p, end, '}', &more)))
            return NULL;
    }
    return p;
}

static const char *scan_array(const char *p, const char *end, int depth)
{
    if (depth > MC_JSONRPC_MAX_DEPTH)
        return NULL;
    p = ws(p + 1, end);
    if (p < end && *p == ']')
        return p + 1;
    for (int more = 1; more;) {
        if (!(p = scan_value(p, end, depth)) || !(p = scan_next_item(p, end, ']', &more)))
            return NULL;
    }
    return p;
}

/* A value at p inside a container depth deep. */
static const char *scan_value(const char *p, const char *end, int depth)
{
    if (p >= end)
        return NULL;
    switch (*p) {
    case '{':
        return scan_object(p, end, depth + 1);
    case '[':
        return scan_array(p, end, depth + 1);
    case '"':
        return skip_string(p, end);
    case 't':
        return scan_literal(p, end, "true");
    case 'f':
        return scan_literal(p, end, "false");
    case 'n':
        return scan_literal(p, end, "null");
    default:
        return scan_number(p, end);
    }
}

/* ---- the top object, member by member ----
 * A document is exactly one object, surrounding whitespace allowed. Its members are walked by
 * the decoder that reads them (no callback): doc_open, then per member doc_key and the value
 * (the decoder's to consume), then doc_next; doc_close checks that nothing follows. */

/* Returns the first key's position with *more = 1, or the position after "{}" with *more 0. */
static const char *doc_open(const char *p, const char *end, int *more)
{
    p = ws(p, end);
    if (p >= end || *p != '{')
        return NULL;
    p = ws(p + 1, end);
    *more = !(p < end && *p == '}');
    return *more ? p : p + 1;
}

/* A key at p and its ':': *key and *len view its bytes in the body when it holds no escape
 * (the rule), else it is decoded into buf[0..cap) (a longer one gets *len cap + 1, which
 * matches no key we know). Returns the value's first byte. */
static inline const char *doc_key(const char *p, const char *end, char *buf, size_t cap,
                                  const char **key, size_t *len)
{
    if (p >= end || *p != '"')
        return NULL;
    const char *q = plain_run(p + 1, end);
    if (q < end && *q == '"') {
        *key = p + 1;
        *len = (size_t)(q - p - 1);
        p = q + 1;
    } else {
        struct sink k = {NULL, buf, cap, 0, 0};
        p = scan_string(p, end, &k);
        *key = buf;
        *len = k.len;
        if (!p)
            return NULL;
    }
    return scan_colon(p, end);
}

static inline const char *doc_next(const char *p, const char *end, int *more)
{
    return scan_next_item(p, end, '}', more);
}

/* Whether only whitespace follows the top object. */
static int doc_close(const char *p, const char *end)
{
    return ws(p, end) == end;
}

/* Keys match case-insensitively, as Go's encoding/json matches struct fields. name is
 * lowercase letters, len of them: OR-ing 0x20 folds exactly the letters of key onto them
 * (and never turns another byte into a letter of name). Compared a word at a time, two
 * overlapping words covering the key (keys are short: 16 bytes at most here). */
#define FOLD_AT(bits, a, b, off)                                                                   \
    do {                                                                                           \
        uint##bits##_t x, y;                                                                       \
        memcpy(&x, (a) + (off), sizeof x);                                                         \
        memcpy(&y, (b) + (off), sizeof y);                                                         \
        if ((x | (uint##bits##_t)0x2020202020202020u) != y)                                        \
            return 0;                                                                              \
    } while (0)
static inline int key_is(const char *key, size_t key_len, const char *name, size_t len)
{
    if (key_len != len)
        return 0;
    if (len >= 8) {
        size_t i = 0;
        for (; i + 8 < len; i += 8)
            FOLD_AT(64, key, name, i);
        FOLD_AT(64, key, name, len - 8);
    } else if (len >= 4) {
        FOLD_AT(32, key, name, 0);
        FOLD_AT(32, key, name, len - 4);
    } else if (len >= 2) {
        FOLD_AT(16, key, name, 0);
        FOLD_AT(16, key, name, len - 2);
    } else if (len == 1) {
        FOLD_AT(8, key, name, 0);
    }
    return 1;
}

/* An unsigned integer value (digits only, as Go's uint64/int32 decoding requires) into *v;
 * NULL if it is another kind of number or does not fit. */
static const char *scan_uint(const char *p, const char *end, uint64_t *v)
{
    if (p >= end || *p < '0' || *p > '9')
        return NULL;
    uint64_t n = 0;
    if (*p == '0') {
        p++; /* no leading zeros in JSON: "01" ends after the 0 (and fails after it) */
    } else {
        /* 19 digits always fit (10^19 - 1 < 2^64): the overflow check is for a 20th only */
        const char *safe = end - p > 19 ? p + 19 : end;
        while (p < safe && *p >= '0' && *p <= '9')
            n = n * 10 + (unsigned)(*p++ - '0');
        while (p < end && *p >= '0' && *p <= '9') {
            unsigned d = (unsigned)(*p - '0');
            if (n > UINT64_MAX / 10 || (n == UINT64_MAX / 10 && d > UINT64_MAX % 10))
                return NULL;
            n = n * 10 + d;
            p++;
        }
    }
    /* a fraction or an exponent makes another kind of number */
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E'))
        return NULL;
    *v = n;
    return p;
}

/* ---- replies ---- */

/* One member of a reply, its value at p: returns the position after it. */
static const char *reply_member(const char *body, const char *p, const char *end, const char *key,
                                size_t key_len, struct mc_jsonrpc_reply *out)
{
    switch (key_len) {
    case 6:
        if (key_is(key, key_len, "result", 6)) {
            const char *start = p;
            if (!(p = scan_value(p, end, 1)))
                return NULL;
            size_t n = (size_t)(p - start);
            out->has_result = 1;
            out->result_null = n == 4 && memcmp(start, "null", 4) == 0;
            out->result_start = (size_t)(start - body);
            out->result_len = out->result_null ? 0 : n;
            return p;
        }
        break;
    case 5:
        if (key_is(key, key_len, "error", 5)) {
            mc_free(out->error);
            out->error = NULL;
            out->error_len = 0;
            out->has_error = 1;
            if (p < end && *p == 'n')
                return scan_literal(p, end, "null");
            struct mc_buf text;
            mc_buf_init(&text);
            struct sink k = {&text, NULL, 0, 0, 0};
            if (!(p = scan_string(p, end, &k))) {
                mc_buf_close(&text);
                return NULL;
            }
            out->error = mc_buf_steal(&text, &out->error_len);
            return p;
        }
        break;
    case 2:
        if (key_is(key, key_len, "id", 2)) {
            out->has_id = 0;
            if (p < end && *p == 'n')
                return scan_literal(p, end, "null");
            if (!(p = scan_uint(p, end, &out->id)))
                return NULL;
            out->has_id = 1;
            return p;
        }
        break;
    default:
        break;
    }
    return scan_value(p, end, 1);
}

/* One member of mc_json_members' object, its value at p. */
static const char *members_member(const char *body, const char *p, const char *end, const char *key,
                                  size_t key_len, struct mc_json_member *members, size_t count)
{
    const char *start = p;
    struct mc_json_member *m = NULL;
    /* the first letter rules out the other names before any compare */
    unsigned char first = key_len ? (unsigned char)key[0] | 0x20 : 0;
    for (size_t i = 0; i < count && !m; i++)
        if ((unsigned char)members[i].key[0] == first &&
            key_is(key, key_len, members[i].key, members[i].key_len))
            m = &members[i];
    if (!m)
        return scan_value(p, end, 1);
    m->decoded = m->ctl = 0;
    if (m->buf && m->cap && p < end && *p == '"') {
        /* decoded in this pass: the names are not scanned a second time; the rule (no
         * escape, no DEL, fits) is one run and one copy */
        const char *q = plain_run(p + 1, end);
        size_t n = (size_t)(q - p - 1);
        if (q < end && *q == '"' && n < m->cap) {
            memcpy(m->buf, p + 1, n);
            m->buf[n] = '\0';
            m->decoded = 1;
            m->decoded_len = n;
            m->found = 1;
            m->start = (size_t)(start - body);
            m->len = n + 2;
            return q + 1;
        }
        struct sink k = {NULL, m->buf, m->cap - 1, 0, 0};
        p = scan_string(p, end, &k);
        if (p && k.len <= k.cap && !(k.flags & SINK_NUL)) {
            m->buf[k.len] = '\0';
            m->decoded = 1;
            m->decoded_len = k.len;
            m->ctl = (k.flags & SINK_CTL) != 0;
        }
    } else {
        p = scan_value(p, end, 1);
    }
    if (!p)
        return NULL;
    m->found = 1; /* the last one wins, as Go's decoder does */
    m->start = (size_t)(start - body);
    m->len = (size_t)(p - start);
    return p;
}

int mc_json_members(const char *body, size_t len, struct mc_json_member *members, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        members[i].found = members[i].decoded = members[i].ctl = 0;
        if (!members[i].key_len)
            members[i].key_len = strlen(members[i].key);
    }
    const char *p = body, *end = body + len;
    int more;
    p = doc_open(p, end, &more);
    while (p && more) {
        char buf[16];
        const char *key = NULL;
        size_t key_len = 0;
        if (!(p = doc_key(p, end, buf, sizeof buf, &key, &key_len)) ||
            !(p = members_member(body, p, end, key, key_len, members, count)))
            break;
        p = doc_next(p, end, &more);
    }
    return p && doc_close(p, end) ? 0 : MC_EPROTO;
}

char *mc_json_string_decode(const char *text, size_t len)
{
    if (len == 0 || *text != '"')
        return NULL;
    struct mc_buf out;
    mc_buf_init(&out);
    struct sink k = {&out, NULL, 0, 0, 0};
    const char *p = scan_string(text, text + len, &k);
    if (!p || p != text + len || (k.flags & SINK_NUL)) {
        mc_buf_close(&out);
        return NULL;
    }
    return mc_buf_steal(&out, NULL);
}

int mc_jsonrpc_decode_reply(const char *body, size_t len, struct mc_jsonrpc_reply *out)
{
    memset(out, 0, sizeof *out);
    const char *p = body, *end = body + len;
    int more;
    p = doc_open(p, end, &more);
    while (p && more) {
        char buf[16];
        const char *key = NULL;
        size_t key_len = 0;
        if (!(p = doc_key(p, end, buf, sizeof buf, &key, &key_len)) ||
            !(p = reply_member(body, p, end, key, key_len, out)))
            break;
        p = doc_next(p, end, &more);
    }
    if (!p || !doc_close(p, end)) {
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
    if (reply->error)
        mc_free(reply->error);
    memset(reply, 0, sizeof *reply);
}

/* ---- go-micro error JSON ---- */

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
    int has_code = 0;
    uint64_t code = 0;
    const char *p = err, *end = err + len;
    int more;
    p = doc_open(p, end, &more);
    while (p && more) {
        char buf[16];
        const char *key = NULL;
        size_t key_len = 0;
        if (!(p = doc_key(p, end, buf, sizeof buf, &key, &key_len)))
            break;
        if (key_is(key, key_len, "code", 4)) {
            has_code = 0;
            if (!(p = scan_uint(p, end, &code)))
                break;
            has_code = 1;
        } else if (key_is(key, key_len, "id", 2) || key_is(key, key_len, "detail", 6) ||
                   key_is(key, key_len, "status", 6)) {
            p = p < end && *p == 'n' ? scan_literal(p, end, "null") : scan_string(p, end, NULL);
        } else {
            p = scan_value(p, end, 1);
        }
        if (!p)
            break;
        p = doc_next(p, end, &more);
    }
    if (!p || !doc_close(p, end) || !has_code)
        return 0;
    *status = mc_jsonrpc_error_status(code);
    return 1;
}
