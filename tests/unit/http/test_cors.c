/* Unit tests for src/http/cors: the --cors list, which origins it allows, and the response
 * fields an allowed origin earns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/cors.h"
#include "util/error.h"

static void test_parse_and_allow(void **state)
{
    (void)state;
    struct mc_cors c;
    assert_int_equal(mc_cors_parse(&c, " https://a.example , http://b.example:8080,,"), 0);
    assert_int_equal(c.count, 2);
    assert_false(c.any);
    assert_true(mc_cors_allowed(&c, "https://a.example"));
    assert_true(mc_cors_allowed(&c, "http://b.example:8080"));
    assert_false(mc_cors_allowed(&c, "http://b.example"));
    assert_false(mc_cors_allowed(&c, "https://a.example "));
    assert_true(mc_cors_allowed(&c, NULL)); /* no Origin: not a browser's cross-origin call */
    mc_cors_close(&c);

    assert_int_equal(mc_cors_parse(&c, "*"), 0);
    assert_true(c.any);
    assert_true(mc_cors_allowed(&c, "http://anything"));
    mc_cors_close(&c);

    assert_int_equal(mc_cors_parse(&c, NULL), 0);
    assert_false(mc_cors_allowed(&c, "http://a"));
    assert_false(mc_cors_allowed(NULL, "http://a"));
    assert_true(mc_cors_allowed(NULL, NULL));
    mc_cors_close(&c);

    /* a control character or a space inside an origin: refused, nothing kept */
    assert_int_equal(mc_cors_parse(&c, "http://a, http://b c"), MC_EINVAL);
    assert_int_equal(c.count, 0);
    assert_int_equal(mc_cors_parse(&c, "http://a\r\nX: y"), MC_EINVAL);
    assert_int_equal(c.count, 0);
}

static void test_headers(void **state)
{
    (void)state;
    struct mc_cors c;
    assert_int_equal(mc_cors_parse(&c, "http://ok"), 0);
    struct mc_http_header h[MC_CORS_MAX_HEADERS];
    assert_int_equal(mc_cors_headers(&c, NULL, h), 0);
    assert_int_equal(mc_cors_headers(&c, "http://other", h), 0);
    assert_int_equal(mc_cors_headers(&c, "http://ok", h), 4);
    assert_string_equal(h[0].name, "Access-Control-Allow-Origin");
    assert_string_equal(h[0].value, "http://ok");
    assert_string_equal(h[1].value, "true");
    assert_string_equal(h[2].value, "POST, GET, OPTIONS, PUT, DELETE");
    assert_string_equal(h[3].value, "Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token, "
                                    "Authorization");
    mc_cors_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_allow),
        cmocka_unit_test(test_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
