/* Unit tests for src/http/errors: go-micro's error JSON (escaping, NULs kept, the reason
 * phrase), and mc_http_respond_error through a fake codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/errors.h"

static void test_json(void **state)
{
    (void)state;
    struct mc_buf b;
    mc_buf_init(&b);
    mc_http_error_json(&b, "go.micro.client", 500, "boom \"quoted\"\n");
    assert_string_equal(b.data, "{\"id\":\"go.micro.client\",\"code\":500,\"detail\":\"boom "
                                "\\\"quoted\\\"\\n\",\"status\":\"Internal Server Error\"}");
    mc_buf_reset(&b);
    mc_http_error_json(&b, "x", 499, NULL);
    assert_string_equal(b.data,
                        "{\"id\":\"x\",\"code\":499,\"detail\":\"\",\"status\":\"Unknown\"}");
    mc_buf_reset(&b);
    mc_http_error_json_n(&b, "x", 400, "a\0b", 3);
    assert_string_equal(
        b.data, "{\"id\":\"x\",\"code\":400,\"detail\":\"a\\u0000b\",\"status\":\"Bad Request\"}");
    mc_buf_close(&b);
    assert_string_equal(mc_http_reason(413), "Request Entity Too Large");
    assert_string_equal(mc_http_reason(408), "Request Timeout");
}

static int got_status;
static char got_type[32], got_body[256];

static void fake_respond(struct mc_http_request *req, int status, const char *content_type,
                         const struct mc_http_header *extra, size_t extra_count, const void *body,
                         size_t len)
{
    (void)req;
    (void)extra;
    assert_int_equal(extra_count, 0);
    got_status = status;
    snprintf(got_type, sizeof got_type, "%s", content_type);
    snprintf(got_body, sizeof got_body, "%.*s", (int)len, (const char *)body);
}

static void test_respond_error(void **state)
{
    (void)state;
    static const struct mc_http_stream_ops ops = {.respond = fake_respond};
    struct mc_http_request req = {.ops = &ops};
    mc_http_respond_error(&req, 413, "go.micro.sidecar", "request body over --max_body_size=4MiB");
    assert_int_equal(got_status, 413);
    assert_string_equal(got_type, "application/json");
    assert_string_equal(got_body, "{\"id\":\"go.micro.sidecar\",\"code\":413,\"detail\":\"request "
                                  "body over --max_body_size=4MiB\",\"status\":\"Request Entity "
                                  "Too Large\"}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_respond_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
