/* Unit tests for src/util/base64: RFC 4648 vectors, round trips, strict rejection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/base64.h"
#include "util/error.h"

/* RFC 4648 section 10. */
static const struct {
    const char *plain;
    const char *encoded;
} vectors[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

static void test_rfc4648_encode(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        char out[16];
        size_t plen = strlen(vectors[i].plain);
        size_t n = mc_base64_encode(out, vectors[i].plain, plen);
        assert_int_equal(n, strlen(vectors[i].encoded));
        assert_int_equal(n, mc_base64_encoded_len(plen));
        assert_memory_equal(out, vectors[i].encoded, n);
    }
}

static void test_rfc4648_decode(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        uint8_t out[16];
        size_t elen = strlen(vectors[i].encoded);
        size_t n = 999;
        assert_int_equal(mc_base64_decode(out, &n, vectors[i].encoded, elen), 0);
        assert_int_equal(n, strlen(vectors[i].plain));
        assert_true(n <= mc_base64_decoded_max(elen));
        assert_memory_equal(out, vectors[i].plain, n);
    }
}

static void test_known_body(void **state)
{
    (void)state;
    char out[32];
    size_t n = mc_base64_encode(out, "hello world", 11);
    assert_int_equal(n, 16);
    assert_memory_equal(out, "aGVsbG8gd29ybGQ=", 16);
    /* Bytes that use the two non-alphanumeric characters of the standard alphabet. */
    const uint8_t hi[] = {0xfb, 0xff, 0xbf};
    n = mc_base64_encode(out, hi, sizeof(hi));
    assert_int_equal(n, 4);
    assert_memory_equal(out, "+/+/", 4);
}

/* Every length 0..64, with every byte value appearing, survives encode then decode. */
static void test_round_trip_lengths(void **state)
{
    (void)state;
    uint8_t in[64] = {0}, back[64 + 3];
    char enc[96];
    for (size_t len = 0; len <= 64; len++) {
        for (size_t i = 0; i < len; i++)
            in[i] = (uint8_t)(i * 37 + len * 11 + 0x80);
        size_t n = mc_base64_encode(enc, in, len);
        assert_int_equal(n, mc_base64_encoded_len(len));
        assert_int_equal(n % 4, 0);
        size_t m = 0;
        assert_int_equal(mc_base64_decode(back, &m, enc, n), 0);
        assert_int_equal(m, len);
        if (len)
            assert_memory_equal(back, in, len);
    }
    /* All 256 byte values at once. */
    uint8_t all[256], all_back[256];
    char all_enc[344];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    size_t n = mc_base64_encode(all_enc, all, sizeof(all));
    assert_int_equal(n, 344);
    size_t m = 0;
    assert_int_equal(mc_base64_decode(all_back, &m, all_enc, n), 0);
    assert_int_equal(m, 256);
    assert_memory_equal(all_back, all, 256);
}

static void test_decode_rejects(void **state)
{
    (void)state;
    static const char *bad[] = {
        "Zg",       /* not a multiple of 4 */
        "Zg=",      /* idem */
        "Zm9vY",    /* idem */
        "Zm9v\n",   /* whitespace */
        "Zm 9",     /* space inside */
        "Zm9-",     /* URL-safe alphabet is not the standard one */
        "Zm9_",     /* idem */
        "====",     /* padding only */
        "Z===",     /* three padding characters */
        "Zg==Zm9v", /* padding before the end */
        "Zm=v",     /* "=" then data */
        "Zh==",     /* discarded bits not zero */
        "Zm9=",     /* idem (one "=") */
        "Zm9v\x80\x80\x80\x80",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t out[16];
        size_t n = 12345;
        assert_int_equal(mc_base64_decode(out, &n, bad[i], strlen(bad[i])), MC_EINVAL);
        assert_int_equal(n, 12345);
    }
    /* An embedded NUL is just another byte outside the alphabet. */
    uint8_t out[8];
    size_t n = 7;
    assert_int_equal(mc_base64_decode(out, &n, "Zm\0v", 4), MC_EINVAL);
}

static void test_lengths_overflow(void **state)
{
    (void)state;
    assert_int_equal(mc_base64_encoded_len(0), 0);
    assert_int_equal(mc_base64_encoded_len(1), 4);
    assert_int_equal(mc_base64_encoded_len(3), 4);
    assert_int_equal(mc_base64_encoded_len(4), 8);
    assert_int_equal(mc_base64_encoded_len(SIZE_MAX), 0);
    assert_int_equal(mc_base64_decoded_max(8), 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_encode), cmocka_unit_test(test_rfc4648_decode),
        cmocka_unit_test(test_known_body),     cmocka_unit_test(test_round_trip_lengths),
        cmocka_unit_test(test_decode_rejects), cmocka_unit_test(test_lengths_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
