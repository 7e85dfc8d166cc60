/* Unit tests for the pure parts of the HTTP/2 selection: the connection preface sniffed on a
 * connection's first bytes (src/http/h2), the Upgrade token match that decides h2c and which
 * upgrades a route takes (src/http/request), and the RFC 8441 form of the WebSocket handshake
 * (src/ws/handshake). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/h2.h"
#include "http/request.h"
#include "util/error.h"
#include "ws/handshake.h"

static void test_preface(void **state)
{
    (void)state;
    const char *p = MC_H2_PREFACE;
    assert_int_equal(mc_h2_preface_match(p, 24), 1);
    assert_int_equal(mc_h2_preface_match("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4", 28), 1);
    for (size_t n = 0; n < 24; n++)
        assert_int_equal(mc_h2_preface_match(p, n), 0); /* a prefix: wait for more */
    assert_int_equal(mc_h2_preface_match("GET / HTTP/1.1\r\n", 16), -1);
    assert_int_equal(mc_h2_preface_match("P", 1), 0);
    assert_int_equal(mc_h2_preface_match("POST / HTTP/1.1\r\n", 17), -1);
    assert_int_equal(mc_h2_preface_match("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", 24), -1);
}

static int upgrade_to(const char *value, const char *protocol)
{
    struct mc_http_header h[] = {{"Host", "x"}, {"upgrade", value}};
    struct mc_http_request req = {.headers = h, .header_count = value ? 2 : 1};
    return mc_http_request_upgrade_to(&req, protocol);
}

static void test_upgrade_tokens(void **state)
{
    (void)state;
    assert_true(upgrade_to("h2c", "h2c"));
    assert_true(upgrade_to("websocket", "websocket"));
    assert_true(upgrade_to("WebSocket", "websocket"));
    assert_true(upgrade_to("foo/2, h2c", "h2c"));
    assert_true(upgrade_to(" h2c ,websocket", "websocket"));
    assert_true(upgrade_to("websocket/13", "websocket"));
    assert_false(upgrade_to("h2c", "websocket"));
    assert_false(upgrade_to("h2", "h2c"));
    assert_false(upgrade_to("h2cx", "h2c"));
    assert_false(upgrade_to("", "h2c"));
    assert_false(upgrade_to(NULL, "h2c"));
}

static void test_extended_connect_handshake(void **state)
{
    (void)state;
    char accept[MC_WS_ACCEPT_LEN];
    int status = 0;
    struct mc_ws_upgrade_request r = {.method = "CONNECT", .http_major = 2, .version = "13"};
    assert_int_equal(mc_ws_check_upgrade(&r, accept, &status), 0);
    assert_int_equal(status, 200);
    assert_string_equal(accept, "");
    r.version = "8";
    assert_int_equal(mc_ws_check_upgrade(&r, accept, &status), MC_EINVAL);
    assert_int_equal(status, 426);
    r.version = NULL;
    assert_int_equal(mc_ws_check_upgrade(&r, accept, &status), MC_EINVAL);
    assert_int_equal(status, 426);
    r.version = "13";
    r.method = "GET"; /* over HTTP/2 a WebSocket is an extended CONNECT only */
    assert_int_equal(mc_ws_check_upgrade(&r, accept, &status), MC_EINVAL);
    assert_int_equal(status, 405);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_preface),
        cmocka_unit_test(test_upgrade_tokens),
        cmocka_unit_test(test_extended_connect_handshake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
