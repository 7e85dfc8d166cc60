/* The upstream module: node choice without repeats, the retry rule, balancer accounting and
 * the final error mapping every caller shares, over the memory registry and a real balancer.
 * The loop is never run: its time stands still, so only deadlines of 0 expire. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "registry/registry.h"
#include "upstream/upstream.h"
#include "util/error.h"

#define SVC "go.micro.srv.foo"

static uv_loop_t loop;
static struct mc_registry *registry;
static struct mc_lb *lb;

static void registered(void *ctx, int err)
{
    (void)ctx;
    assert_int_equal(err, 0);
}

static int setup(void **state)
{
    (void)state;
    uv_loop_init(&loop);
    struct mc_registry_config cfg = {0};
    registry = mc_registry_new(&mc_registry_memory_ops, &cfg, NULL, 0);
    struct mc_service s;
    mc_service_init(&s);
    s.name = strdup(SVC);
    s.version = strdup("1");
    mc_service_add_node(&s, "a", "127.0.0.1", 9001);
    mc_service_add_node(&s, "b", "127.0.0.1", 9002);
    mc_service_add_node(&s, "c", "127.0.0.1", 9003);
    mc_registry_register(registry, &s, 0, 0, registered, NULL);
    mc_service_close(&s);
    lb = mc_lb_new(&mc_lb_roundrobin_ops, &mc_clock_monotonic, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mc_lb_free(lb);
    mc_registry_free(registry, NULL, NULL);
    uv_loop_close(&loop);
    return 0;
}

static struct mc_upstream *new_upstream(uint64_t timeout_ms, int retries)
{
    struct mc_upstream_config cfg = {.request_timeout_ms = timeout_ms, .retries = retries};
    return mc_upstream_new(&loop, registry, lb, &cfg);
}

/* Every node refusing: each is tried once (--retries=2), then one 502 names all three. */
static void test_retries_every_node_then_names_them(void **state)
{
    (void)state;
    struct mc_upstream *up = new_upstream(10000, 2);
    struct mc_upstream_try t;
    mc_upstream_try_init(&t, up, SVC, NULL, NULL, 504);
    struct mc_buf detail;
    mc_buf_init(&detail);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(mc_upstream_next(&t, &detail), 0);
        assert_int_equal(mc_upstream_failed(&t, UV_ECONNREFUSED, 1, &detail), 0);
    }
    assert_int_equal(mc_upstream_next(&t, &detail), 0);
    assert_int_equal(t.tried_count, 3);
    assert_string_not_equal(t.tried[0], t.tried[1]);
    assert_string_not_equal(t.tried[1], t.tried[2]);
    assert_string_not_equal(t.tried[0], t.tried[2]);
    assert_int_equal(mc_upstream_failed(&t, UV_ECONNREFUSED, 1, &detail), 502);
    char want[256];
    snprintf(want, sizeof want, "service %s: %s, %s, %s: connection refused", SVC, t.tried[0],
             t.tried[1], t.tried[2]);
    assert_string_equal(detail.data, want);
    mc_buf_close(&detail);
    mc_upstream_try_close(&t);
    mc_upstream_free(up);
}

/* Fewer retries than nodes: the last failure is final even though nodes are left. A failure
 * the client calls not retryable (bytes of the reply arrived) is final at once. */
static void test_retry_limits(void **state)
{
    (void)state;
    struct mc_upstream *up = new_upstream(10000, 0);
    struct mc_upstream_try t;
    struct mc_buf detail;
    mc_buf_init(&detail);
    mc_upstream_try_init(&t, up, SVC, "Foo.Bar", NULL, 408);
    assert_int_equal(mc_upstream_next(&t, &detail), 0);
    assert_int_equal(mc_upstream_failed(&t, UV_ECONNREFUSED, 1, &detail), 502);
    mc_upstream_try_close(&t);
    mc_upstream_free(up);

    up = new_upstream(10000, 2);
    mc_buf_reset(&detail);
    mc_upstream_try_init(&t, up, SVC, "Foo.Bar", NULL, 408);
    assert_int_equal(mc_upstream_next(&t, &detail), 0);
    assert_int_equal(mc_upstream_failed(&t, UV_ECONNRESET, 0, &detail), 502);
    assert_non_null(strstr(detail.data, t.tried[0]));
    /* a head refused before sending is the caller's: 400, and no retry */
    mc_upstream_try_close(&t);
    mc_buf_reset(&detail);
    mc_upstream_try_init(&t, up, SVC, "Foo.Bar", NULL, 408);
    assert_int_equal(mc_upstream_next(&t, &detail), 0);
    assert_int_equal(mc_upstream_failed(&t, MC_EHEADER, 0, &detail), 400);
    mc_upstream_try_close(&t);
    mc_upstream_free(up);
    mc_buf_close(&detail);
}

/* A node named by the caller is tried alone, never retried, and named in the error. */
static void test_direct_address(void **state)
{
    (void)state;
    struct mc_upstream *up = new_upstream(10000, 2);
    struct mc_upstream_try t;
    struct mc_buf detail;
    mc_buf_init(&detail);
    mc_upstream_try_init(&t, up, SVC, "Foo.Bar", "127.0.0.1:1", 408);
    assert_int_equal(mc_upstream_next(&t, &detail), 0);
    assert_string_equal(t.node, "127.0.0.1:1");
    assert_int_equal(mc_upstream_failed(&t, UV_ECONNREFUSED, 1, &detail), 502);
    assert_string_equal(detail.data, "service " SVC ": 127.0.0.1:1: connection refused");
    mc_upstream_try_close(&t);
    mc_upstream_free(up);
    mc_buf_close(&detail);
}

/* No such service: 404; a deadline already passed: the try's own timeout status, naming the
 * flag that set it. */
static void test_not_found_and_timeout(void **state)
{
    (void)state;
    struct mc_upstream *up = new_upstream(10000, 2);
    struct mc_upstream_try t;
    struct mc_buf detail;
    mc_buf_init(&detail);
    mc_upstream_try_init(&t, up, "go.micro.srv.nobody", NULL, NULL, 504);
    assert_int_equal(mc_upstream_next(&t, &detail), 404);
    assert_string_equal(detail.data, "service go.micro.srv.nobody: not found");
    mc_upstream_try_close(&t);
    mc_upstream_free(up);

    up = new_upstream(0, 2);
    mc_buf_reset(&detail);
    mc_upstream_try_init(&t, up, SVC, NULL, NULL, 504);
    assert_int_equal(mc_upstream_next(&t, &detail), 504);
    assert_non_null(strstr(detail.data, "request timeout: " SVC " did not answer within "
                                        "--request_timeout="));
    mc_upstream_try_close(&t);
    mc_upstream_free(up);
    mc_buf_close(&detail);
}

struct fake_clock {
    uint64_t now;
};

static uint64_t fake_now(void *ctx)
{
    return ((struct fake_clock *)ctx)->now;
}

static void register_node(struct mc_registry *r, const char *id, int port, uint64_t ttl_ms)
{
    struct mc_service s;
    mc_service_init(&s);
    s.name = strdup(SVC);
    s.version = strdup("1");
    mc_service_add_node(&s, id, "127.0.0.1", port);
    mc_registry_register(r, &s, ttl_ms, 0, registered, NULL);
    mc_service_close(&s);
}

/* The address list is kept while the registry is unchanged, and read again after a change or
 * once one of its nodes has expired (on the registry's clock, a fake one here). */
static void test_address_list_kept_until_the_view_changes(void **state)
{
    (void)state;
    struct fake_clock fc = {1000000};
    const struct mc_clock clock = {fake_now, &fc};
    struct mc_registry_config rcfg = {.clock = &clock};
    struct mc_registry *r = mc_registry_new(&mc_registry_memory_ops, &rcfg, NULL, 0);
    register_node(r, "a", 9001, 0);
    register_node(r, "b", 9002, 0);
    register_node(r, "c", 9003, 0);
    struct mc_upstream_config cfg = {.request_timeout_ms = 10000, .retries = 2};
    struct mc_upstream *up = mc_upstream_new(&loop, r, lb, &cfg);
    size_t n;
    uint64_t id1, id2;
    const char *const *addrs = mc_upstream_addresses(up, SVC, &n, &id1);
    assert_int_equal(n, 3);
    assert_string_equal(addrs[0], "127.0.0.1:9001");
    mc_upstream_addresses(up, SVC, &n, &id2);
    assert_true(id1 == id2); /* unchanged: the same list */

    register_node(r, "d", 9004, 0);
    addrs = mc_upstream_addresses(up, SVC, &n, &id2);
    assert_int_equal(n, 4);
    assert_true(id2 != id1);
    assert_string_equal(addrs[3], "127.0.0.1:9004");

    /* a node with a TTL: the list lasts until its expiry */
    register_node(r, "e", 9005, 1000);
    addrs = mc_upstream_addresses(up, SVC, &n, &id1);
    assert_int_equal(n, 5);
    fc.now += 999;
    mc_upstream_addresses(up, SVC, &n, &id2);
    assert_int_equal(n, 5);
    assert_true(id2 == id1);
    fc.now += 1;
    addrs = mc_upstream_addresses(up, SVC, &n, &id2);
    assert_int_equal(n, 4);
    assert_true(id2 != id1);
    for (size_t i = 0; i < n; i++)
        assert_string_not_equal(addrs[i], "127.0.0.1:9005");

    /* more services than the cache holds: each still answers its own nodes */
    for (int i = 0; i < MC_UPSTREAM_LIST_CACHE + 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "other.%d", i);
        mc_upstream_addresses(up, name, &n, NULL);
        assert_int_equal(n, 0);
    }
    mc_upstream_addresses(up, SVC, &n, NULL);
    assert_int_equal(n, 4);
    mc_upstream_free(up);
    mc_registry_free(r, NULL, NULL);
}

/* More attempts than the try's inline room, and addresses longer than its inline text: the
 * tried list moves to the heap and keeps every node in order, distinct, named in the error;
 * closing frees it (the sanitized build and memcheck would see a leak or a bad free). */
static void test_tried_list_past_inline_room(void **state)
{
    (void)state;
    struct mc_service s;
    mc_service_init(&s);
    s.name = strdup("go.micro.srv.many");
    s.version = strdup("1");
    char host[80];
    for (int i = 0; i < 8; i++) {
        char id[16];
        snprintf(id, sizeof id, "n%d", i);
        /* the first ones short, the later ones long (over the inline text between them) */
        snprintf(host, sizeof host,
                 i < 3 ? "127.0.0.%d" : "node-%d.a-rather-long-host-name.example", i + 1);
        mc_service_add_node(&s, id, host, 9000 + i);
    }
    mc_registry_register(registry, &s, 0, 0, registered, NULL);
    mc_service_close(&s);

    struct mc_upstream *up = new_upstream(10000, 7);
    struct mc_upstream_try t;
    mc_upstream_try_init(&t, up, "go.micro.srv.many", NULL, NULL, 504);
    struct mc_buf detail;
    mc_buf_init(&detail);
    for (int i = 0; i < 7; i++) {
        assert_int_equal(mc_upstream_next(&t, &detail), 0);
        assert_ptr_equal(t.node, t.tried[t.tried_count - 1]);
        assert_int_equal(mc_upstream_failed(&t, UV_ECONNREFUSED, 1, &detail), 0);
    }
    assert_int_equal(mc_upstream_next(&t, &detail), 0);
    assert_int_equal(t.tried_count, 8);
    assert_true(t.tried != t.tried_inline);
    for (size_t i = 0; i < 8; i++)
        for (size_t j = i + 1; j < 8; j++)
            assert_string_not_equal(t.tried[i], t.tried[j]);
    assert_int_equal(mc_upstream_failed(&t, UV_ECONNREFUSED, 1, &detail), 502);
    for (size_t i = 0; i < 8; i++)
        assert_non_null(strstr(detail.data, t.tried[i]));
    /* every node tried: a ninth attempt has none left */
    mc_buf_reset(&detail);
    mc_upstream_try_close(&t);
    assert_null(t.tried);
    assert_null(t.node);
    mc_upstream_try_close(&t); /* idempotent */
    mc_buf_close(&detail);
    mc_upstream_free(up);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_retries_every_node_then_names_them, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tried_list_past_inline_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_address_list_kept_until_the_view_changes, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
