/* The registry's JSON mapping: request bodies in, go-micro-shaped JSON out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "registry/service.h"
#include "util/error.h"

static json_t *load(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr); /* as the API parses */
    assert_non_null(j);
    return j;
}

/* Parses text; returns the result code and leaves err filled. */
static int parse(const char *text, unsigned flags, struct mc_service *out, char *err, size_t errlen)
{
    json_t *j = load(text);
    int rc = mc_service_from_json(j, flags, out, err, errlen);
    json_decref(j);
    return rc;
}

static char *dump(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_non_null(s);
    json_decref(j);
    return s;
}

static void expect_json(const struct mc_service *s, int include_nodes, const char *want)
{
    char *got = dump(mc_service_to_json(s, include_nodes));
    assert_string_equal(got, want);
    free(got);
}

static void test_seed_readme_body(void **state)
{
    (void)state;
    struct mc_service s;
    char err[128];
    int rc = parse("{\"Name\":\"foo.bar\",\"Nodes\":[{\"Port\":9091,\"Address\":\"127.0.0.1\","
                   "\"Id\":\"foo.bar-017da09a\"}]}",
                   MC_SERVICE_REQUIRE_NODES, &s, err, sizeof(err));
    assert_int_equal(rc, 0);
    assert_string_equal(s.name, "foo.bar");
    assert_non_null(s.version);
    assert_string_equal(s.version, "");
    assert_null(s.metadata);
    assert_null(s.endpoints);
    assert_int_equal(s.node_count, 1);
    assert_string_equal(s.nodes[0].id, "foo.bar-017da09a");
    assert_string_equal(s.nodes[0].address, "127.0.0.1");
    assert_int_equal(s.nodes[0].port, 9091);
    assert_null(s.nodes[0].metadata);
    assert_int_equal(s.nodes[0].expires_at_ms, 0);
    mc_service_close(&s);
}

static void test_keys_case_insensitive_and_unknown_ignored(void **state)
{
    (void)state;
    const char *bodies[] = {
        "{\"name\":\"svc\",\"version\":\"1\",\"nodes\":[{\"id\":\"n\",\"address\":\"h\","
        "\"port\":1,\"metadata\":{\"k\":\"v\"}}],\"metadata\":{\"a\":\"b\"},\"endpoints\":[1]}",
        "{\"NAME\":\"svc\",\"VERSION\":\"1\",\"NODES\":[{\"ID\":\"n\",\"ADDRESS\":\"h\","
        "\"PORT\":1,\"METADATA\":{\"k\":\"v\"}}],\"METADATA\":{\"a\":\"b\"},\"ENDPOINTS\":[1]}",
        "{\"Name\":\"svc\",\"Version\":\"1\",\"Nodes\":[{\"Id\":\"n\",\"Address\":\"h\","
        "\"Port\":1,\"Metadata\":{\"k\":\"v\"},\"Extra\":true}],\"Metadata\":{\"a\":\"b\"},"
        "\"Endpoints\":[1],\"unknown\":{\"x\":[1,2]},\"nAmEs\":7}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct mc_service s;
        char err[128] = "";
        assert_int_equal(parse(bodies[i], MC_SERVICE_REQUIRE_NODES, &s, err, sizeof(err)), 0);
        expect_json(&s, 1,
                    "{\"name\":\"svc\",\"version\":\"1\",\"metadata\":{\"a\":\"b\"},"
                    "\"endpoints\":[1],\"nodes\":[{\"id\":\"n\",\"address\":\"h\",\"port\":1,"
                    "\"metadata\":{\"k\":\"v\"}}]}");
        mc_service_close(&s);
    }
}

/* Go's decoder assigns the field once per matching key, so the last spelling wins. */
static void test_duplicate_key_last_wins(void **state)
{
    (void)state;
    struct mc_service s;
    assert_int_equal(parse("{\"name\":\"first\",\"Name\":\"second\"}", 0, &s, NULL, 0), 0);
    assert_string_equal(s.name, "second");
    mc_service_close(&s);
}

static void test_null_means_absent(void **state)
{
    (void)state;
    struct mc_service s;
    assert_int_equal(parse("{\"name\":\"x\",\"version\":null,\"metadata\":null,\"endpoints\":null,"
                           "\"nodes\":[{\"id\":\"a\",\"address\":null,\"port\":null,"
                           "\"metadata\":null}]}",
                           MC_SERVICE_REQUIRE_NODES, &s, NULL, 0),
                     0);
    expect_json(&s, 1,
                "{\"name\":\"x\",\"version\":\"\",\"metadata\":null,\"endpoints\":null,"
                "\"nodes\":[{\"id\":\"a\",\"address\":\"\",\"port\":0,\"metadata\":null}]}");
    mc_service_close(&s);
}

static void test_nodes_optional_without_flag(void **state)
{
    (void)state;
    struct mc_service s;
    assert_int_equal(parse("{\"name\":\"x\"}", 0, &s, NULL, 0), 0);
    assert_int_equal(s.node_count, 0);
    expect_json(&s, 1,
                "{\"name\":\"x\",\"version\":\"\",\"metadata\":null,\"endpoints\":null,"
                "\"nodes\":null}");
    mc_service_close(&s);
}

struct bad_case {
    const char *body;
    const char *detail;
};

static void test_every_400_case(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"[]", "request body must be a JSON object"},
        {"\"foo\"", "request body must be a JSON object"},
        {"null", "request body must be a JSON object"},
        {"42", "request body must be a JSON object"},
        {"{}", "service name is required"},
        {"{\"name\":null,\"nodes\":[{\"id\":\"a\"}]}", "service name is required"},
        {"{\"name\":\"\",\"nodes\":[{\"id\":\"a\"}]}", "service name is required"},
        {"{\"name\":7,\"nodes\":[{\"id\":\"a\"}]}", "service name must be a string"},
        {"{\"name\":[\"x\"],\"nodes\":[{\"id\":\"a\"}]}", "service name must be a string"},
        {"{\"name\":\"x\",\"version\":1,\"nodes\":[{\"id\":\"a\"}]}",
         "service version must be a string"},
        {"{\"name\":\"x\"}", "service has no nodes: at least one node is required"},
        {"{\"name\":\"x\",\"nodes\":null}", "service has no nodes: at least one node is required"},
        {"{\"name\":\"x\",\"nodes\":[]}", "service has no nodes: at least one node is required"},
        {"{\"name\":\"x\",\"nodes\":{\"id\":\"a\"}}", "service nodes must be an array"},
        {"{\"name\":\"x\",\"nodes\":[\"a\"]}", "nodes[0] must be an object"},
        {"{\"name\":\"x\",\"nodes\":[{\"id\":\"a\"},null]}", "nodes[1] must be an object"},
        {"{\"name\":\"x\",\"nodes\":[{\"address\":\"h\",\"port\":1}]}",
         "nodes[0]: node id is required"},
        {"{\"name\":\"x\",\"nodes\":[{\"id\":\"\"}]}", "nodes[0]: node id is required"},
        {"{\"name\":\"x\",\"nodes\":[{\"id\":null}]}", "nodes[0]: node id is required"},
        {"{\"name\":\"x\",\"nodes\":[{\"id\":5}]}", "nodes[0]: node id must be a string"},
        {"{\"name\":\"x\",\"nodes\":[{\"id\":\"a\",\"address\":1}]}",
         "nodes[0]: node address must be a string"},
        {"{\"name\":\"x\",\"nodes\":[{\"id\":\"a\",\"port\":65536}]}",
         "nodes[0]: node port must be an integer in 0..65535"},
        {"{\"name\":\"x\",\"nodes\":[{\"id\":\"a\",\"port\":-1}]}",
         "nodes[0]: node port must be an integer in 0..65535"},
        {"{\"name\":\"x\",\"nodes\":[{\"id\":\"a\",\"port\":4294967297}]}",
         "nodes[0]: node port must be an integer in 0..65535"},
        {"{\"name\":\"x\",\"nodes\":[{\"id\":\"a\",\"port\":9223372036854775807}]}",
         "nodes[0]: node port must be an integer in 0..65535"},
        {"{\"name\":\"x\",\"nodes\":[{\"id\":\"a\",\"port\":80.5}]}",
         "nodes[0]: node port must be an integer in 0..65535"},
        {"{\"name\":\"x\",\"nodes\":[{\"id\":\"a\",\"port\":true}]}",
         "nodes[0]: node port must be an integer in 0..65535"},
        {"{\"name\":\"x\",\"nodes\":[{\"id\":\"a\",\"port\":\"http\"}]}",
         "nodes[0]: node port must be an integer in 0..65535"},
        {"{\"name\":\"x\",\"nodes\":[{\"id\":\"a\",\"port\":\"\"}]}",
         "nodes[0]: node port must be an integer in 0..65535"},
        {"{\"name\":\"x\",\"nodes\":[{\"id\":\"a\",\"port\":\"65536\"}]}",
         "nodes[0]: node port must be an integer in 0..65535"},
        {"{\"name\":\"x\",\"nodes\":[{\"id\":\"a\",\"port\":\"123456\"}]}",
         "nodes[0]: node port must be an integer in 0..65535"},
        {"{\"name\":\"x\",\"nodes\":[{\"id\":\"a\",\"port\":\"-80\"}]}",
         "nodes[0]: node port must be an integer in 0..65535"},
        {"{\"name\":\"x\",\"nodes\":[{\"id\":\"a\",\"port\":\" 80\"}]}",
         "nodes[0]: node port must be an integer in 0..65535"},
        {"{\"name\":\"x\",\"nodes\":[{\"id\":\"a\",\"metadata\":[]}]}",
         "nodes[0]: node metadata must be an object"},
        {"{\"name\":\"x\",\"nodes\":[{\"id\":\"a\",\"metadata\":{\"k\":1}}]}",
         "nodes[0]: node metadata values must be strings"},
        {"{\"name\":\"x\",\"metadata\":\"k=v\",\"nodes\":[{\"id\":\"a\"}]}",
         "service metadata must be an object"},
        {"{\"name\":\"x\",\"metadata\":{\"k\":\"v\",\"n\":null},\"nodes\":[{\"id\":\"a\"}]}",
         "service metadata values must be strings"},
        /* Control characters would split the heads these values are copied into. */
        {"{\"name\":\"x\\r\\nContent-Length: 0\",\"nodes\":[{\"id\":\"a\"}]}",
         "service name contains a control character"},
        {"{\"name\":\"x\\n\",\"nodes\":[{\"id\":\"a\"}]}",
         "service name contains a control character"},
        {"{\"name\":\"x\\u0000junk\",\"nodes\":[{\"id\":\"a\"}]}",
         "service name contains a control character"},
        {"{\"name\":\"x\\u007f\",\"nodes\":[{\"id\":\"a\"}]}",
         "service name contains a control character"},
        {"{\"name\":\"x\\t\",\"nodes\":[{\"id\":\"a\"}]}",
         "service name contains a control character"},
        {"{\"name\":\"x\",\"version\":\"1\\r\",\"nodes\":[{\"id\":\"a\"}]}",
         "service version contains a control character"},
        {"{\"name\":\"x\",\"nodes\":[{\"id\":\"a\"},{\"id\":\"b\\u001f\"}]}",
         "nodes[1]: node id contains a control character"},
        {"{\"name\":\"x\",\"nodes\":[{\"id\":\"a\",\"address\":\"h\\r\\nX: y\"}]}",
         "nodes[0]: node address contains a control character"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mc_service s;
        char err[128] = "unset";
        int rc = parse(cases[i].body, MC_SERVICE_REQUIRE_NODES, &s, err, sizeof(err));
        if (rc != MC_EINVAL || strcmp(err, cases[i].detail) != 0)
            fail_msg("body %s: rc %d, detail \"%s\", want \"%s\"", cases[i].body, rc, err,
                     cases[i].detail);
        /* Nothing left to free on failure. */
        assert_null(s.name);
        assert_null(s.nodes);
        assert_int_equal(s.node_count, 0);
        assert_null(s.metadata);
        mc_service_close(&s);
    }
}

static void test_error_buffer_truncated_and_optional(void **state)
{
    (void)state;
    struct mc_service s;
    char err[8];
    assert_int_equal(parse("{}", 0, &s, err, sizeof(err)), MC_EINVAL);
    assert_string_equal(err, "service");
    assert_int_equal(parse("{}", 0, &s, NULL, 0), MC_EINVAL);
    assert_int_equal(mc_service_from_json(NULL, 0, &s, err, sizeof(err)), MC_EINVAL);
}

static void test_ports(void **state)
{
    (void)state;
    static const struct {
        const char *port;
        int want;
    } cases[] = {
        {"0", 0},          {"1", 1},     {"65535", 65535},     {"\"9091\"", 9091},
        {"\"00080\"", 80}, {"\"0\"", 0}, {"\"65535\"", 65535},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[128];
        snprintf(body, sizeof(body), "{\"name\":\"x\",\"nodes\":[{\"id\":\"a\",\"port\":%s}]}",
                 cases[i].port);
        struct mc_service s;
        char err[128] = "";
        assert_int_equal(parse(body, MC_SERVICE_REQUIRE_NODES, &s, err, sizeof(err)), 0);
        assert_int_equal(s.nodes[0].port, cases[i].want);
        mc_service_close(&s);
    }
}

static void test_output_key_order(void **state)
{
    (void)state;
    /* Keys deliberately given in another order and case: the output order is fixed. */
    struct mc_service s;
    assert_int_equal(parse("{\"Nodes\":[{\"Metadata\":null,\"Port\":9090,\"Address\":\"127.0.0.1\","
                           "\"Id\":\"a\"}],\"Version\":\"1.0\",\"Name\":\"foo\"}",
                           MC_SERVICE_REQUIRE_NODES, &s, NULL, 0),
                     0);
    expect_json(&s, 1,
                "{\"name\":\"foo\",\"version\":\"1.0\",\"metadata\":null,\"endpoints\":null,"
                "\"nodes\":[{\"id\":\"a\",\"address\":\"127.0.0.1\",\"port\":9090,"
                "\"metadata\":null}]}");
    expect_json(&s, 0,
                "{\"name\":\"foo\",\"version\":\"1.0\",\"metadata\":null,\"endpoints\":null,"
                "\"nodes\":null}");
    mc_service_close(&s);
}

static void test_endpoints_pass_through(void **state)
{
    (void)state;
    const char *endpoints = "[{\"name\":\"Greeter.Hello\",\"request\":{\"name\":\"Request\","
                            "\"type\":\"Request\",\"values\":null},\"metadata\":{\"stream\":"
                            "\"false\"}}]";
    char body[512];
    snprintf(body, sizeof(body), "{\"name\":\"g\",\"endpoints\":%s,\"nodes\":[{\"id\":\"a\"}]}",
             endpoints);
    struct mc_service s;
    assert_int_equal(parse(body, MC_SERVICE_REQUIRE_NODES, &s, NULL, 0), 0);
    char *got = dump(json_incref(s.endpoints));
    assert_string_equal(got, endpoints);
    free(got);
    mc_service_close(&s);
}

static void test_duplicate_node_ids_are_one_node(void **state)
{
    (void)state;
    struct mc_service s;
    assert_int_equal(parse("{\"name\":\"x\",\"nodes\":[{\"id\":\"a\",\"port\":1},{\"id\":\"b\","
                           "\"port\":2},{\"id\":\"a\",\"port\":3,\"address\":\"h\"}]}",
                           MC_SERVICE_REQUIRE_NODES, &s, NULL, 0),
                     0);
    assert_int_equal(s.node_count, 2);
    assert_string_equal(s.nodes[0].id, "a");
    assert_int_equal(s.nodes[0].port, 3);
    assert_string_equal(s.nodes[0].address, "h");
    assert_string_equal(s.nodes[1].id, "b");
    mc_service_close(&s);
}

/* Many ids, each given three times interleaved with metadata on the middle one: one node per
 * id, at its first position, with the last values (the middle one's metadata is gone). */
static void test_merge_duplicate_nodes_many(void **state)
{
    (void)state;
    enum { IDS = 5000 };
    struct mc_service s;
    mc_service_init(&s);
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < IDS; i++) {
            char id[16];
            snprintf(id, sizeof id, "n%d", i);
            struct mc_node *n = mc_service_add_node(&s, id, round == 2 ? "last" : "h", round);
            if (round == 1)
                n->metadata = json_pack("{ss}", "k", "v");
        }
    mc_service_merge_duplicate_nodes(&s);
    assert_int_equal(s.node_count, IDS);
    for (int i = 0; i < IDS; i++) {
        char id[16];
        snprintf(id, sizeof id, "n%d", i);
        assert_string_equal(s.nodes[i].id, id);
        assert_string_equal(s.nodes[i].address, "last");
        assert_int_equal(s.nodes[i].port, 2);
        assert_null(s.nodes[i].metadata);
    }
    mc_service_close(&s);
    /* Nothing to merge, and an empty service, are left alone. */
    mc_service_init(&s);
    mc_service_merge_duplicate_nodes(&s);
    mc_service_add_node(&s, "a", "h", 1);
    mc_service_add_node(&s, "b", "h", 2);
    mc_service_merge_duplicate_nodes(&s);
    assert_int_equal(s.node_count, 2);
    assert_string_equal(s.nodes[1].id, "b");
    mc_service_close(&s);
}

static void test_control_char_predicate(void **state)
{
    (void)state;
    assert_int_equal(mc_service_has_control_char("go.micro.srv.foo-1:8080 /~", 26), 0);
    assert_int_equal(mc_service_has_control_char("", 0), 0);
    /* UTF-8 above 0x7f is text, not control. */
    assert_int_equal(mc_service_has_control_char("caf\xc3\xa9", 5), 0);
    const char bad[] = {'\r', '\n', '\0', '\t', 0x01, 0x1f, 0x7f};
    for (size_t i = 0; i < sizeof bad; i++) {
        char text[4] = {'a', bad[i], 'b', 0};
        assert_int_equal(mc_service_has_control_char(text, 3), 1);
    }
    /* Only the n bytes given are looked at. */
    assert_int_equal(mc_service_has_control_char("ab\n", 2), 0);
}

static void test_copy_is_deep(void **state)
{
    (void)state;
    struct mc_service s, c;
    assert_int_equal(parse("{\"name\":\"x\",\"metadata\":{\"a\":\"b\"},\"nodes\":[{\"id\":\"a\","
                           "\"metadata\":{\"k\":\"v\"}}]}",
                           MC_SERVICE_REQUIRE_NODES, &s, NULL, 0),
                     0);
    s.nodes[0].expires_at_ms = 42;
    mc_service_copy(&c, &s);
    json_object_set_new(s.metadata, "a", json_string("changed"));
    json_object_set_new(s.nodes[0].metadata, "k", json_string("changed"));
    mc_service_close(&s);
    assert_int_equal(c.nodes[0].expires_at_ms, 42);
    expect_json(
        &c, 1,
        "{\"name\":\"x\",\"version\":\"\",\"metadata\":{\"a\":\"b\"},\"endpoints\":null,"
        "\"nodes\":[{\"id\":\"a\",\"address\":\"\",\"port\":0,\"metadata\":{\"k\":\"v\"}}]}");
    mc_service_close(&c);
    mc_service_close(&c); /* twice is harmless */
}

static void test_to_json_is_a_copy_and_tolerates_null_fields(void **state)
{
    (void)state;
    struct mc_service s;
    mc_service_init(&s);
    s.name = strdup("hand-built");
    s.metadata = json_pack("{s:s}", "a", "b");
    struct mc_node *n = mc_service_add_node(&s, "n1", NULL, 7);
    assert_string_equal(n->address, "");
    json_t *j = mc_service_to_json(&s, 1);
    json_object_set_new(json_object_get(j, "metadata"), "a", json_string("changed"));
    json_decref(j);
    assert_string_equal(json_string_value(json_object_get(s.metadata, "a")), "b");
    /* version NULL reads as "". */
    expect_json(&s, 1,
                "{\"name\":\"hand-built\",\"version\":\"\",\"metadata\":{\"a\":\"b\"},"
                "\"endpoints\":null,\"nodes\":[{\"id\":\"n1\",\"address\":\"\",\"port\":7,"
                "\"metadata\":null}]}");
    mc_service_close(&s);
}

static void test_non_utf8_hand_built_name(void **state)
{
    (void)state;
    struct mc_service s;
    mc_service_init(&s);
    s.name = strdup("bad\xff"
                    "name");
    expect_json(&s, 0,
                "{\"name\":\"bad?name\",\"version\":\"\",\"metadata\":null,\"endpoints\":null,"
                "\"nodes\":null}");
    mc_service_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_readme_body),
        cmocka_unit_test(test_keys_case_insensitive_and_unknown_ignored),
        cmocka_unit_test(test_duplicate_key_last_wins),
        cmocka_unit_test(test_null_means_absent),
        cmocka_unit_test(test_nodes_optional_without_flag),
        cmocka_unit_test(test_every_400_case),
        cmocka_unit_test(test_error_buffer_truncated_and_optional),
        cmocka_unit_test(test_ports),
        cmocka_unit_test(test_output_key_order),
        cmocka_unit_test(test_endpoints_pass_through),
        cmocka_unit_test(test_duplicate_node_ids_are_one_node),
        cmocka_unit_test(test_merge_duplicate_nodes_many),
        cmocka_unit_test(test_control_char_predicate),
        cmocka_unit_test(test_copy_is_deep),
        cmocka_unit_test(test_to_json_is_a_copy_and_tolerates_null_fields),
        cmocka_unit_test(test_non_utf8_hand_built_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
