/* Unit tests for src/stats/stats and prometheus: the 5 s buckets, the bounded service slots,
 * the JSON snapshot's counts and the Prometheus text (names, HELP/TYPE, labels, escapes). */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stats/stats.h"
#include "util/alloc.h"

/* Loop time 1000 ms is unix time 1700000002.000: the first bucket starts at ...000 and ends
 * 3 s later (loop 4000). */
#define T0 1000
#define UNIX0 1700000002000ull

static struct mc_stats *fresh(void)
{
    struct mc_stats *s = mc_malloc(sizeof *s);
    mc_stats_init(s, NULL, T0, UNIX0);
    return s;
}

static void test_buckets_roll_every_5s(void **state)
{
    (void)state;
    struct mc_stats *s = fresh();
    for (int i = 0; i < 5; i++)
        mc_stats_record_request(s, MC_STATS_ROUTE_REGISTRY, 200, T0 + 10, 500);
    for (int i = 0; i < 3; i++)
        mc_stats_record_request(s, MC_STATS_ROUTE_REGISTRY, 404, T0 + 2999, 500);
    mc_stats_record_request(s, MC_STATS_ROUTE_RPC, 502, T0 + 3000, 500); /* next bucket */
    json_t *j = mc_stats_json(s, T0 + 3001);
    json_t *counters = json_object_get(j, "counters");
    assert_int_equal(json_array_size(counters), 2);
    json_t *b0 = json_array_get(counters, 0), *b1 = json_array_get(counters, 1);
    assert_int_equal(json_integer_value(json_object_get(b0, "timestamp")), 1700000000);
    assert_int_equal(json_integer_value(json_object_get(b1, "timestamp")), 1700000005);
    json_t *c0 = json_object_get(b0, "status_codes");
    assert_int_equal(json_integer_value(json_object_get(c0, "20x")), 5);
    assert_int_equal(json_integer_value(json_object_get(c0, "40x")), 3);
    assert_int_equal(json_integer_value(json_object_get(b0, "total_reqs")), 8);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(b1, "status_codes"), "50x")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "started")), 1700000002);
    json_t *reg = json_object_get(json_object_get(j, "routes"), "registry");
    assert_int_equal(json_integer_value(json_object_get(reg, "count")), 8);
    json_decref(j);

    /* a long silence: empty buckets, never more than 23 kept, the newest last */
    j = mc_stats_json(s, T0 + 3000 + 60 * 60 * 1000);
    counters = json_object_get(j, "counters");
    assert_int_equal(json_array_size(counters), MC_STATS_BUCKETS);
    int64_t prev = 0;
    for (size_t i = 0; i < MC_STATS_BUCKETS; i++) {
        json_t *b = json_array_get(counters, i);
        int64_t ts = json_integer_value(json_object_get(b, "timestamp"));
        assert_int_equal(json_integer_value(json_object_get(b, "total_reqs")), 0);
        if (i)
            assert_int_equal(ts - prev, 5);
        prev = ts;
    }
    assert_int_equal(prev, 1700000005 + 3600);
    json_decref(j);
    mc_free(s);
}

static void test_service_slots_are_bounded(void **state)
{
    (void)state;
    struct mc_stats *s = fresh();
    char name[64];
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 100; i++) {
            snprintf(name, sizeof name, "svc-%d", i);
            mc_stats_call_done(s, name, 1000 + (uint64_t)i, i % 10 != 0);
        }
    assert_int_equal(s->service_count, MC_STATS_MAX_SERVICES);
    assert_ptr_equal(mc_stats_service(s, "svc-3"), &s->services[3]);
    assert_int_equal(s->services[3].latency.count, 2);
    assert_int_equal(s->services[0].failures, 2);
    struct mc_stats_service *other = mc_stats_service(s, "svc-99");
    assert_ptr_equal(other, &s->services[MC_STATS_MAX_SERVICES]);
    assert_string_equal(other->name, "_other");
    assert_int_equal(other->latency.count, 2 * (100 - MC_STATS_MAX_SERVICES));
    char longname[MC_STATS_SERVICE_NAME_MAX + 1];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_ptr_equal(mc_stats_service(s, longname), other);
    mc_free(s);
}

static int count_lines(const char *text, const char *prefix)
{
    int n = 0;
    size_t len = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        n += strncmp(p, prefix, len) == 0;
    return n;
}

static void test_prometheus_text(void **state)
{
    (void)state;
    struct mc_stats *s = fresh();
    for (int i = 0; i < 5; i++)
        mc_stats_record_request(s, MC_STATS_ROUTE_PROXY, 200, T0, 1500);
    mc_stats_record_request(s, MC_STATS_ROUTE_PROXY, 503, T0, 250000);
    mc_stats_call_done(s, "a\"b\\c\nd", 1500, 1);
    mc_stats_call_done(s, "a\"b\\c\nd", 3000000, 0);
    struct mc_buf out;
    mc_buf_init(&out);
    mc_stats_prometheus(s, T0 + 12000, &out);
    mc_buf_append(&out, "", 1);
    const char *t = out.data;
    assert_non_null(strstr(t, "# TYPE micro_http_requests_total counter\n"));
    assert_non_null(strstr(t, "micro_http_requests_total{route=\"proxy\",code=\"2xx\"} 5\n"));
    assert_non_null(strstr(t, "micro_http_requests_total{route=\"proxy\",code=\"5xx\"} 1\n"));
    assert_non_null(strstr(t, "# TYPE micro_http_request_duration_seconds histogram\n"));
    assert_non_null(
        strstr(t, "micro_http_request_duration_seconds_bucket{route=\"proxy\",le=\"0.001\"} 0\n"));
    assert_non_null(
        strstr(t, "micro_http_request_duration_seconds_bucket{route=\"proxy\",le=\"0.002\"} 5\n"));
    assert_non_null(
        strstr(t, "micro_http_request_duration_seconds_bucket{route=\"proxy\",le=\"0.2\"} 5\n"));
    assert_non_null(
        strstr(t, "micro_http_request_duration_seconds_bucket{route=\"proxy\",le=\"0.5\"} 6\n"));
    assert_non_null(
        strstr(t, "micro_http_request_duration_seconds_bucket{route=\"proxy\",le=\"+Inf\"} 6\n"));
    assert_non_null(
        strstr(t, "micro_http_request_duration_seconds_sum{route=\"proxy\"} 0.257500\n"));
    assert_non_null(strstr(t, "micro_http_request_duration_seconds_count{route=\"proxy\"} 6\n"));
    /* label values escaped: backslash, quote, newline */
    assert_non_null(
        strstr(t, "micro_call_duration_seconds_count{service=\"a\\\"b\\\\c\\nd\"} 2\n"));
    assert_non_null(strstr(t, "micro_call_failures_total{service=\"a\\\"b\\\\c\\nd\"} 1\n"));
    assert_non_null(strstr(t, "micro_process_start_time_seconds 1700000002\n"));
    assert_non_null(strstr(t, "micro_uptime_seconds 12\n"));
    /* every family has one HELP and one TYPE line, and every line is a comment or a sample */
    assert_int_equal(count_lines(t, "# HELP "), count_lines(t, "# TYPE "));
    assert_int_equal(count_lines(t, "# HELP micro_"), count_lines(t, "# HELP "));
    assert_int_equal(count_lines(t, "micro_http_requests_total{"),
                     MC_STATS_ROUTES * MC_STATS_CLASSES);
    assert_int_equal(count_lines(t, "micro_http_request_duration_seconds_bucket{"),
                     MC_STATS_ROUTES * 19);
    assert_int_equal(t[strlen(t) - 1], '\n');
    mc_buf_close(&out);
    mc_free(s);
}

static void test_grpc_calls_are_bounded(void **state)
{
    (void)state;
    struct mc_stats *s = fresh();
    mc_stats_grpc_call(s, "go.micro.srv.a", "/go.micro.srv.a.A/M", 0);
    mc_stats_grpc_call(s, "go.micro.srv.a", "/go.micro.srv.a.A/M", 0);
    mc_stats_grpc_call(s, "go.micro.srv.a", "/go.micro.srv.a.A/M", 14);
    mc_stats_grpc_call(s, "go.micro.srv.a", "/go.micro.srv.a.A/M", 99); /* out of range: 2 */
    mc_stats_grpc_call(s, NULL, "/nobody/X", 12);                       /* unknown: pooled */
    assert_int_equal(s->grpc_count, 1);
    assert_int_equal(s->grpc[0].codes[0], 2);
    assert_int_equal(s->grpc[0].codes[14], 1);
    assert_int_equal(s->grpc[0].codes[2], 1);
    assert_int_equal(s->grpc[MC_STATS_MAX_GRPC].codes[12], 1);
    char method[64];
    for (int i = 0; i < 3 * MC_STATS_MAX_GRPC; i++) {
        snprintf(method, sizeof method, "/go.micro.srv.a.A/M%d", i);
        mc_stats_grpc_call(s, "go.micro.srv.a", method, 0);
    }
    assert_int_equal(s->grpc_count, MC_STATS_MAX_GRPC); /* the rest went to the pool */
    assert_int_equal(s->grpc[MC_STATS_MAX_GRPC].codes[0], 2 * MC_STATS_MAX_GRPC + 1);
    /* a name past the bound is pooled rather than cut */
    char longname[MC_STATS_GRPC_NAME_MAX + 8];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    mc_stats_grpc_call(s, longname, "/m", 5);
    assert_int_equal(s->grpc[MC_STATS_MAX_GRPC].codes[5], 1);
    struct mc_buf out;
    mc_buf_init(&out);
    mc_stats_prometheus(s, T0 + 10, &out);
    assert_non_null(strstr(out.data, "micro_grpc_calls_total{service=\"go.micro.srv.a\",method=\"/"
                                     "go.micro.srv.a.A/M\",grpc_status=\"0\"} 2\n"));
    assert_non_null(strstr(out.data, "micro_grpc_calls_total{service=\"_other\",method=\"_"
                                     "other\",grpc_status=\"12\"} 1\n"));
    assert_non_null(
        strstr(out.data, "micro_http_requests_by_protocol_total{protocol=\"HTTP/2\"} 0\n"));
    mc_buf_close(&out);
    json_t *j = mc_stats_json(s, T0 + 10);
    assert_int_equal(json_array_size(json_object_get(j, "grpc")), MC_STATS_MAX_GRPC + 1);
    json_decref(j);
    mc_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_roll_every_5s),
        cmocka_unit_test(test_service_slots_are_bounded),
        cmocka_unit_test(test_prometheus_text),
        cmocka_unit_test(test_grpc_calls_are_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
