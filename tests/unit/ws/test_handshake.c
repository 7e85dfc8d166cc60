/* Tests for the opening handshake (src/ws/handshake.c): the RFC 6455 accept-key example,
 * key validation, upgrade checks and the 101 response bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/buf.h"
#include "util/error.h"
#include "ws/handshake.h"

static const char rfc_key[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char rfc_accept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

static void test_accept_key_rfc_example(void **state)
{
    (void)state;
    char out[MC_WS_ACCEPT_LEN];
    assert_int_equal(mc_ws_accept_key(rfc_key, strlen(rfc_key), out), 0);
    assert_string_equal(out, rfc_accept);
    /* Another key, checked against `printf '%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11' KEY |
     * openssl sha1 -binary | base64`. */
    assert_int_equal(mc_ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", 24, out), 0);
    assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

static void test_accept_key_invalid(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "dGhlIHNhbXBsZSBub25jZQ=",   /* 23 */
        "dGhlIHNhbXBsZSBub25jZQ===", /* 25 */
        "dGhlIHNhbXBsZSBub25jZQAA",  /* no padding: 18 bytes */
        "dGhlIHNhbXBsZSBub25jZ===",  /* 3 '=': not 16 bytes */
        "dGhlIHNhbXBsZSBub25jZ!==",  /* not base64 */
        "dGhlIHNhb=BsZSBub25jZQ==",  /* padding inside */
        "dGhlIHNhbXBsZSBub25jZQ=A",  /* padding then data */
        "dGhlIHNhbXBsZSBub25jZ Q==", /* space inside, 25 */
        "dGhlIHNhbXBs-SBub25jZQ==",  /* base64url is not base64 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char out[MC_WS_ACCEPT_LEN] = "untouched";
        assert_int_equal(mc_ws_accept_key(bad[i], strlen(bad[i]), out), MC_EINVAL);
        assert_string_equal(out, "untouched");
    }
    char out[MC_WS_ACCEPT_LEN];
    assert_int_equal(mc_ws_accept_key(NULL, 0, out), MC_EINVAL);
    /* len counts: the same key with a shorter len is refused. */
    assert_int_equal(mc_ws_accept_key(rfc_key, 23, out), MC_EINVAL);
}

static void test_is_upgrade(void **state)
{
    (void)state;
    assert_int_equal(mc_ws_is_upgrade("websocket", "Upgrade"), 1);
    assert_int_equal(mc_ws_is_upgrade("WebSocket", "upgrade"), 1);
    assert_int_equal(mc_ws_is_upgrade("h2c, websocket", "keep-alive, Upgrade"), 1);
    assert_int_equal(mc_ws_is_upgrade(" websocket ", " keep-alive ,\tUPGRADE\t"), 1);
    assert_int_equal(mc_ws_is_upgrade("websocketx", "Upgrade"), 0);
    assert_int_equal(mc_ws_is_upgrade("websocket", "upgrade2"), 0);
    assert_int_equal(mc_ws_is_upgrade("websocket", "keep-alive"), 0);
    assert_int_equal(mc_ws_is_upgrade("h2c", "Upgrade"), 0);
    assert_int_equal(mc_ws_is_upgrade(NULL, "Upgrade"), 0);
    assert_int_equal(mc_ws_is_upgrade("websocket", NULL), 0);
    assert_int_equal(mc_ws_is_upgrade("", ""), 0);
    assert_int_equal(mc_ws_is_upgrade(",,", ","), 0);
}

static struct mc_ws_upgrade_request good_request(void)
{
    struct mc_ws_upgrade_request r = {
        .method = "GET",
        .http_major = 1,
        .http_minor = 1,
        .upgrade = "websocket",
        .connection = "Upgrade",
        .version = "13",
        .key = rfc_key,
    };
    return r;
}

static int check(const struct mc_ws_upgrade_request *r, char accept[MC_WS_ACCEPT_LEN])
{
    int status = 0;
    int rc = mc_ws_check_upgrade(r, accept, &status);
    assert_int_equal(rc, status == 101 ? 0 : MC_EINVAL);
    return status;
}

static void test_check_upgrade(void **state)
{
    (void)state;
    char accept[MC_WS_ACCEPT_LEN];
    struct mc_ws_upgrade_request r = good_request();
    assert_int_equal(check(&r, accept), 101);
    assert_string_equal(accept, rfc_accept);

    r = good_request();
    r.key = "  dGhlIHNhbXBsZSBub25jZQ== "; /* optional whitespace around the value */
    assert_int_equal(check(&r, accept), 101);
    assert_string_equal(accept, rfc_accept);
    r = good_request();
    r.version = " 13 ";
    assert_int_equal(check(&r, accept), 101);
    r = good_request();
    r.http_minor = 2; /* any later 1.x */
    assert_int_equal(check(&r, accept), 101);

    r = good_request();
    r.method = "POST";
    assert_int_equal(check(&r, accept), 405);
    r.method = NULL;
    assert_int_equal(check(&r, accept), 405);
    r = good_request();
    r.http_minor = 0;
    assert_int_equal(check(&r, accept), 400);
    r = good_request();
    r.upgrade = NULL;
    assert_int_equal(check(&r, accept), 400);
    r = good_request();
    r.upgrade = "h2c";
    assert_int_equal(check(&r, accept), 400);
    r = good_request();
    r.connection = "keep-alive";
    assert_int_equal(check(&r, accept), 400);
    r = good_request();
    r.version = "8";
    assert_int_equal(check(&r, accept), 426);
    r.version = NULL;
    assert_int_equal(check(&r, accept), 426);
    r.version = "13, 8";
    assert_int_equal(check(&r, accept), 426);
    r.version = "130";
    assert_int_equal(check(&r, accept), 426);
    r = good_request();
    r.key = NULL;
    assert_int_equal(check(&r, accept), 400);
    r.key = "short==";
    assert_int_equal(check(&r, accept), 400);
    r.key = "";
    assert_int_equal(check(&r, accept), 400);
}

static void test_version_header(void **state)
{
    (void)state;
    assert_string_equal(MC_WS_VERSION_HEADER, "Sec-WebSocket-Version: 13\r\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key_rfc_example),
        cmocka_unit_test(test_accept_key_invalid),
        cmocka_unit_test(test_is_upgrade),
        cmocka_unit_test(test_check_upgrade),
        cmocka_unit_test(test_version_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
