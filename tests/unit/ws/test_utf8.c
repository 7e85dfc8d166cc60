/* Tests for the incremental UTF-8 validator (src/ws/utf8.c): Autobahn-style vectors (case
 * 6 of the fuzzingserver suite), each fed whole, split at every byte and one byte at a
 * time, then an exhaustive comparison with a reference decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ws/utf8.h"

struct vec {
    const char *name;
    const char *bytes;
    size_t len;
    int valid;     /* whole input is complete valid UTF-8 */
    int truncated; /* not invalid, just unfinished: feed says 0, complete says 0 */
};

#define V(name, s, valid)                                                                          \
    {                                                                                              \
        name, s, sizeof(s) - 1, valid, 0                                                           \
    }
#define T(name, s)                                                                                 \
    {                                                                                              \
        name, s, sizeof(s) - 1, 0, 1                                                               \
    }

static const struct vec vecs[] = {
    V("empty", "", 1),
    V("ascii", "Hello-\x7f\x01", 1),
    V("kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 1),
    V("U+0080", "\xc2\x80", 1),
    V("U+07FF", "\xdf\xbf", 1),
    V("U+0800", "\xe0\xa0\x80", 1),
    V("U+D7FF", "\xed\x9f\xbf", 1),
    V("U+E000", "\xee\x80\x80", 1),
    V("U+FFFD", "\xef\xbf\xbd", 1),
    V("U+FFFF", "\xef\xbf\xbf", 1),
    V("U+10000", "\xf0\x90\x80\x80", 1),
    V("U+10FFFF", "\xf4\x8f\xbf\xbf", 1),
    V("emoji in text", "ok \xf0\x9f\x98\x80 ok", 1),
    V("NUL", "a\0b", 1),
    /* stray and missing continuation bytes */
    V("lone continuation 80", "\x80", 0),
    V("lone continuation bf", "a\xbf", 0),
    V("two leads", "\xc2\xc2\x80", 0),
    V("lead then ascii",
      "\xe2\x82"
      "A",
      0),
    V("4-byte lead then ascii",
      "\xf0\x9f"
      "A",
      0),
    /* overlong forms */
    V("overlong C0 80", "\xc0\x80", 0),
    V("overlong C1 BF", "\xc1\xbf", 0),
    V("overlong slash 2", "\xc0\xaf", 0),
    V("overlong E0 80 80", "\xe0\x80\x80", 0),
    V("overlong E0 9F BF", "\xe0\x9f\xbf", 0),
    V("overlong F0 80 80 80", "\xf0\x80\x80\x80", 0),
    V("overlong F0 8F BF BF", "\xf0\x8f\xbf\xbf", 0),
    V("overlong 5 bytes", "\xf8\x80\x80\x80\xaf", 0),
    /* UTF-16 surrogates */
    V("surrogate D800", "\xed\xa0\x80", 0),
    V("surrogate DBFF", "\xed\xaf\xbf", 0),
    V("surrogate DC00", "\xed\xb0\x80", 0),
    V("surrogate DFFF", "\xed\xbf\xbf", 0),
    V("surrogate pair", "\xed\xa0\x80\xed\xb0\x80", 0),
    V("autobahn 6.4.3",
      "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
      "edited",
      0),
    /* beyond U+10FFFF and bytes that never occur */
    V("U+110000", "\xf4\x90\x80\x80", 0),
    V("F5", "\xf5\x80\x80\x80", 0),
    V("F7 BF BF BF", "\xf7\xbf\xbf\xbf", 0),
    V("FE", "\xfe", 0),
    V("FF", "a\xff", 0),
    V("6-byte form", "\xfc\x84\x80\x80\x80\x80", 0),
    /* unfinished at the end: not invalid yet */
    T("truncated 2-byte", "\xc2"),
    T("truncated 3-byte", "a\xe2\x82"),
    T("truncated 4-byte", "\xf0\x9f\x98"),
    T("truncated E0", "\xe0"),
    T("truncated ED", "\xed"),
    T("truncated F4", "\xf4\x8f"),
};

/* Feeds v in pieces cut at cuts; returns the final feed result and sets *complete. */
static int feed_cuts(const struct vec *v, const size_t *cuts, size_t ncuts, int *complete)
{
    struct mc_utf8 u;
    mc_utf8_init(&u);
    int r = 0;
    size_t prev = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : v->len;
        int ri = mc_utf8_feed(&u, (const uint8_t *)v->bytes + prev, end - prev);
        if (r == 0)
            r = ri;
        else
            assert_int_equal(ri, -1); /* invalid stays invalid */
        prev = end;
    }
    *complete = mc_utf8_complete(&u);
    return r;
}

static void check(const struct vec *v, const size_t *cuts, size_t ncuts, const char *mode)
{
    int complete;
    int r = feed_cuts(v, cuts, ncuts, &complete);
    int want_r = (v->valid || v->truncated) ? 0 : -1;
    if (r != want_r || complete != v->valid)
        fail_msg("%s (%s): feed %d (want %d), complete %d (want %d)", v->name, mode, r, want_r,
                 complete, v->valid);
}

static void test_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++) {
        const struct vec *v = &vecs[i];
        check(v, NULL, 0, "whole");
        for (size_t cut = 0; cut <= v->len; cut++)
            check(v, &cut, 1, "split");
        size_t cuts[64];
        assert_true(v->len < 64);
        for (size_t k = 0; k < v->len; k++)
            cuts[k] = k;
        check(v, cuts, v->len, "byte at a time");
        assert_int_equal(mc_utf8_valid((const uint8_t *)v->bytes, v->len), v->valid);
    }
}

static void test_invalid_is_sticky(void **state)
{
    (void)state;
    struct mc_utf8 u;
    mc_utf8_init(&u);
    assert_int_equal(mc_utf8_feed(&u, (const uint8_t *)"\xff", 1), -1);
    assert_int_equal(mc_utf8_feed(&u, (const uint8_t *)"abc", 3), -1);
    assert_int_equal(mc_utf8_complete(&u), 0);
    mc_utf8_init(&u);
    assert_int_equal(mc_utf8_feed(&u, (const uint8_t *)"abc", 3), 0);
    assert_int_equal(mc_utf8_feed(&u, NULL, 0), 0);
    assert_int_equal(mc_utf8_complete(&u), 1);
}

/* A reference written the other way round: decode the code point, then judge it. Returns
 * 1 if p[0..n) is exactly one well-formed UTF-8 character. */
static int ref_one_char(const uint8_t *p, size_t n)
{
    size_t need;
    uint32_t cp;
    if (p[0] < 0x80) {
        need = 1;
        cp = p[0];
    } else if ((p[0] & 0xE0) == 0xC0) {
        need = 2;
        cp = p[0] & 0x1F;
    } else if ((p[0] & 0xF0) == 0xE0) {
        need = 3;
        cp = p[0] & 0x0F;
    } else if ((p[0] & 0xF8) == 0xF0) {
        need = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (n != need)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return 1;
}

/* Every 1-, 2- and 3-byte sequence: valid exactly when it is one well-formed character, or
 * a concatenation of them (checked via the 1-byte and 2-byte results). */
static void test_exhaustive_short(void **state)
{
    (void)state;
    uint8_t b[3];
    int valid1[256];
    for (unsigned a = 0; a < 256; a++) {
        b[0] = (uint8_t)a;
        valid1[a] = ref_one_char(b, 1);
        assert_int_equal(mc_utf8_valid(b, 1), valid1[a]);
    }
    static int valid2[256][256];
    for (unsigned a = 0; a < 256; a++) {
        for (unsigned c = 0; c < 256; c++) {
            b[0] = (uint8_t)a;
            b[1] = (uint8_t)c;
            valid2[a][c] = ref_one_char(b, 2) || (valid1[a] && valid1[c]);
            if (mc_utf8_valid(b, 2) != valid2[a][c])
                fail_msg("%02x %02x", a, c);
        }
    }
    for (unsigned a = 0; a < 256; a++) {
        for (unsigned c = 0; c < 256; c++) {
            for (unsigned d = 0; d < 256; d++) {
                b[0] = (uint8_t)a;
                b[1] = (uint8_t)c;
                b[2] = (uint8_t)d;
                int want = ref_one_char(b, 3) || (valid1[a] && valid2[c][d]) ||
                           (valid2[a][c] && valid1[d]);
                if (mc_utf8_valid(b, 3) != want)
                    fail_msg("%02x %02x %02x", a, c, d);
            }
        }
    }
}

/* Every code point, encoded: valid unless it is a surrogate. */
static void test_every_code_point(void **state)
{
    (void)state;
    uint8_t b[4];
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        size_t n;
        if (cp < 0x80) {
            b[0] = (uint8_t)cp;
            n = 1;
        } else if (cp < 0x800) {
            b[0] = (uint8_t)(0xC0 | (cp >> 6));
            b[1] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 2;
        } else if (cp < 0x10000) {
            b[0] = (uint8_t)(0xE0 | (cp >> 12));
            b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            b[2] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 3;
        } else {
            b[0] = (uint8_t)(0xF0 | (cp >> 18));
            b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
            b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            b[3] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 4;
        }
        int want = !(cp >= 0xD800 && cp <= 0xDFFF);
        if (mc_utf8_valid(b, n) != want)
            fail_msg("U+%04X", (unsigned)cp);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_invalid_is_sticky),
        cmocka_unit_test(test_exhaustive_short),
        cmocka_unit_test(test_every_code_point),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
