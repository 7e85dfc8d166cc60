/* Unit tests for src/api/grpc_api's pure parts: grpc-timeout parsing, grpc-message encoding
 * and the content-type test that decides what is a gRPC call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/grpc_api.h"

static void test_timeout_units(void **state)
{
    (void)state;
    assert_int_equal(mc_grpc_timeout_ms("1H"), 3600000);
    assert_int_equal(mc_grpc_timeout_ms("2M"), 120000);
    assert_int_equal(mc_grpc_timeout_ms("5S"), 5000);
    assert_int_equal(mc_grpc_timeout_ms("250m"), 250);
    assert_int_equal(mc_grpc_timeout_ms("1500u"), 2); /* rounded up */
    assert_int_equal(mc_grpc_timeout_ms("1n"), 1);    /* at least 1 ms */
    assert_int_equal(mc_grpc_timeout_ms("99999999S"), 99999999000ull);
    /* not a timeout: --request_timeout applies */
    assert_int_equal(mc_grpc_timeout_ms(""), 0);
    assert_int_equal(mc_grpc_timeout_ms("S"), 0);
    assert_int_equal(mc_grpc_timeout_ms("10"), 0);
    assert_int_equal(mc_grpc_timeout_ms("10s"), 0);        /* units are case-sensitive */
    assert_int_equal(mc_grpc_timeout_ms("123456789S"), 0); /* over 8 digits */
    assert_int_equal(mc_grpc_timeout_ms("10SS"), 0);
    assert_int_equal(mc_grpc_timeout_ms("-1S"), 0);
}

static void test_message_encoding(void **state)
{
    (void)state;
    struct mc_buf b;
    mc_buf_init(&b);
    mc_grpc_message_encode(&b, "no node: 50% \xc3\xa9\r\n");
    assert_string_equal(b.data, "no node: 50%25 %C3%A9%0D%0A");
    mc_buf_close(&b);
}

static struct mc_http_request post(const char *ct, struct mc_http_header *h)
{
    h[0] = (struct mc_http_header){"Content-Type", ct};
    return (struct mc_http_request){
        .method_bit = MC_HTTP_POST, .headers = h, .header_count = 1, .content_type = ct};
}

static void test_is_grpc(void **state)
{
    (void)state;
    struct mc_http_header h[1];
    struct mc_http_request r = post("application/grpc", h);
    assert_true(mc_http_request_is_grpc(&r));
    r = post("application/grpc+proto", h);
    assert_true(mc_http_request_is_grpc(&r));
    r = post("Application/GRPC; charset=utf-8", h);
    assert_true(mc_http_request_is_grpc(&r));
    r = post("application/grpc-web", h); /* another protocol */
    assert_false(mc_http_request_is_grpc(&r));
    r = post("application/json", h);
    assert_false(mc_http_request_is_grpc(&r));
    r = post("application/grpc", h);
    r.method_bit = MC_HTTP_GET;
    assert_false(mc_http_request_is_grpc(&r));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeout_units),
        cmocka_unit_test(test_message_encoding),
        cmocka_unit_test(test_is_grpc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
