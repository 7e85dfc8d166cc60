/* Unit tests for src/cli/format: the CLI's tables, metadata, `get service` page and query
 * escaping, byte for byte (SPEC 10's output is a contract scripts read). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "cli/format.h"

static void test_table_aligns_columns_without_trailing_blanks(void **state)
{
    (void)state;
    const char *cells[] = {"Id",
                           "Address",
                           "Port",
                           "Metadata", /* header */
                           "a-very-long-id",
                           "10.0.0.1",
                           "9090",
                           "k=v", /* widest id */
                           "b",
                           "127.0.0.1",
                           "80",
                           "", /* empty last cell */
                           "c",
                           NULL,
                           "65535",
                           "x=1,y=2"};
    struct mc_buf out;
    mc_buf_init(&out);
    mc_cli_table(&out, cells, 4, 4);
    assert_string_equal(out.data, "Id              Address    Port   Metadata\n"
                                  "a-very-long-id  10.0.0.1   9090   k=v\n"
                                  "b               127.0.0.1  80\n"
                                  "c                          65535  x=1,y=2\n");
    mc_buf_close(&out);
}

static void test_table_of_nothing_is_nothing(void **state)
{
    (void)state;
    struct mc_buf out;
    mc_buf_init(&out);
    mc_cli_table(&out, NULL, 0, 3);
    assert_int_equal(out.len, 0);
    const char *one[] = {"only"};
    mc_cli_table(&out, one, 1, 1);
    assert_string_equal(out.data, "only\n");
    mc_buf_close(&out);
}

static void check_metadata(const char *json, const char *want)
{
    json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
    struct mc_buf out;
    mc_buf_init(&out);
    mc_cli_metadata(&out, v);
    assert_string_equal(out.data, want);
    mc_buf_close(&out);
    json_decref(v);
}

static void test_metadata_is_sorted_key_value_pairs(void **state)
{
    (void)state;
    check_metadata("{\"protocol\":\"http\",\"b\":\"2\",\"a\":\"1\"}", "a=1,b=2,protocol=http");
    check_metadata("{}", "-");
    check_metadata("null", "-");
    check_metadata("[1]", "-");
    check_metadata("{\"n\":5,\"s\":\"x\"}", "n=5,s=x");
}

static void test_service_page(void **state)
{
    (void)state;
    json_t *v = json_loads(
        "[{\"name\":\"foo\",\"version\":\"1.0\",\"nodes\":["
        "{\"id\":\"foo-1\",\"address\":\"127.0.0.1\",\"port\":9091,\"metadata\":{\"b\":\"2\","
        "\"a\":\"1\"}},{\"id\":\"foo-22\",\"address\":\"::1\",\"port\":80,\"metadata\":null}]},"
        "{\"name\":\"foo\",\"version\":\"\",\"nodes\":[]}]",
        0, NULL);
    assert_non_null(v);
    struct mc_buf out;
    mc_buf_init(&out);
    mc_cli_service_page(&out, "foo", v);
    assert_string_equal(out.data, "service  foo\n"
                                  "\n"
                                  "version  1.0\n"
                                  "\n"
                                  "Id      Address    Port  Metadata\n"
                                  "foo-1   127.0.0.1  9091  a=1,b=2\n"
                                  "foo-22  ::1        80    -\n"
                                  "\n"
                                  "version  -\n"
                                  "\n"
                                  "Id  Address  Port  Metadata\n");
    mc_buf_close(&out);
    json_decref(v);
}

static void test_query_escape_and_node_address(void **state)
{
    (void)state;
    struct mc_buf out;
    mc_buf_init(&out);
    mc_cli_query_escape(&out, "a b&c=d/é~_.-");
    assert_string_equal(out.data, "a%20b%26c%3Dd%2F%C3%A9~_.-");
    mc_buf_reset(&out);
    mc_cli_node_address(&out, "::1", 9090);
    assert_string_equal(out.data, "[::1]:9090");
    mc_buf_reset(&out);
    mc_cli_node_address(&out, "10.0.0.1", 80);
    assert_string_equal(out.data, "10.0.0.1:80");
    mc_buf_close(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_aligns_columns_without_trailing_blanks),
        cmocka_unit_test(test_table_of_nothing_is_nothing),
        cmocka_unit_test(test_metadata_is_sorted_key_value_pairs),
        cmocka_unit_test(test_service_page),
        cmocka_unit_test(test_query_escape_and_node_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
