/* Unit tests for src/http/head: the checked writer of outbound head lines refuses anything
 * that could end a line early or cut a value short, and leaves the buffer untouched then. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <stdio.h>

#include "http/head.h"
#include "http/server.h"
#include "util/error.h"

static void test_header_lines(void **state)
{
    (void)state;
    struct mc_buf b;
    mc_buf_init(&b);
    /* the name's length on success */
    assert_int_equal(mc_http_head_append(&b, "X-Micro-Method", "Foo.Bar"), 14);
    assert_int_equal(mc_http_head_append(&b, "Empty", ""), 5);
    assert_int_equal(mc_http_head_append(&b, "!#$%&'*+-.^_`|~09az", "a\tb \x80\xff;:,"), 19);
    assert_int_equal(mc_http_head_append_n(&b, "Name", 4, "v", 1), 0);
    assert_string_equal(b.data, "X-Micro-Method: Foo.Bar\r\nEmpty: \r\n"
                                "!#$%&'*+-.^_`|~09az: a\tb \x80\xff;:,\r\nName: v\r\n");
    mc_buf_close(&b);
}

static void test_refused_values(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "X\r\nContent-Length: 0\r\n\r\nGET /evil", "a\rb", "a\nb", "\r", "\n", "trailing\r\n",
    };
    struct mc_buf b;
    mc_buf_init(&b);
    mc_buf_append_str(&b, "kept");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(mc_http_head_append(&b, "X-Micro-Method", bad[i]), MC_EHEADER);
        assert_int_equal(mc_http_head_append_n(&b, "X-Micro-Method", 14, bad[i], strlen(bad[i])),
                         MC_EHEADER);
    }
    /* A NUL inside a counted value would cut it short in any C string it lands in. */
    assert_int_equal(mc_http_head_append_n(&b, "X", 1, "a\0b", 3), MC_EHEADER);
    assert_string_equal(b.data, "kept");
    assert_int_equal(b.len, 4);
    mc_buf_close(&b);
}

static void test_refused_names(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "X Y", "X:Y", "X\r\nY", "X\n", "(X)", "X\"", "X/Y", "\x7f", "\x01", "\xc3\xa9", "X@",
    };
    struct mc_buf b;
    mc_buf_init(&b);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(mc_http_head_append(&b, bad[i], "v"), MC_EHEADER);
        assert_int_equal(mc_http_head_append_n(&b, bad[i], strlen(bad[i]), "v", 1), MC_EHEADER);
        assert_false(mc_http_is_token(bad[i], strlen(bad[i])));
    }
    assert_int_equal(mc_http_head_append_n(&b, "A\0B", 3, "v", 1), MC_EHEADER);
    assert_int_equal(b.len, 0);
    mc_buf_close(&b);
}

static void test_request_line(void **state)
{
    (void)state;
    struct mc_buf b;
    mc_buf_init(&b);
    assert_int_equal(mc_http_head_request_line(&b, "POST", "/"), 0);
    assert_int_equal(mc_http_head_request_line(&b, "GET", "/a/b?c=d%0D%0A&e"), 0);
    assert_string_equal(b.data, "POST / HTTP/1.1\r\nGET /a/b?c=d%0D%0A&e HTTP/1.1\r\n");
    size_t len = b.len;
    static const struct {
        const char *method, *target;
    } bad[] = {
        {"", "/"},          {"GE T", "/"},         {"GET\r\n", "/"},
        {"GET", ""},        {"GET", "/ HTTP/1.0"}, {"GET", "/\r\nX: y"},
        {"GET", "/\nX: y"}, {"GET", "/\t"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mc_http_head_request_line(&b, bad[i].method, bad[i].target), MC_EHEADER);
    assert_int_equal(b.len, len);
    mc_buf_close(&b);
}

/* The collector: borrowed pairs are kept as given, copies outlive their source and stay put
 * while many more are added (more than one text block), and hop-by-hop names are known. */
static void test_header_list(void **state)
{
    (void)state;
    struct mc_http_header_list l;
    mc_http_header_list_init(&l, 2);
    const char *borrowed = "Content-Type";
    mc_http_header_list_add(&l, borrowed, "application/json");
    char name[32], value[600];
    memset(value, 'v', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "X-H%d", i);
        mc_http_header_list_add_copy(&l, name, value);
    }
    snprintf(name, sizeof name, "gone"); /* the source changes: the copies do not */
    assert_int_equal(l.count, 21);
    assert_ptr_equal(l.items[0].name, borrowed);
    assert_string_equal(l.items[1].name, "X-H0");
    assert_string_equal(l.items[20].name, "X-H19");
    assert_string_equal(l.items[20].value, value);
    assert_string_equal(l.items[1].value, value);
    mc_http_header_list_close(&l);
    mc_http_header_list_close(&l); /* idempotent */
    assert_true(mc_http_hop_by_hop("connection"));
    assert_true(mc_http_hop_by_hop("Transfer-Encoding"));
    assert_false(mc_http_hop_by_hop("Content-Type"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_lines),  cmocka_unit_test(test_refused_values),
        cmocka_unit_test(test_refused_names), cmocka_unit_test(test_request_line),
        cmocka_unit_test(test_header_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
