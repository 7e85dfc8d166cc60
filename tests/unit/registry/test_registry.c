/* The registry's local view, memory backend, TTLs and watches, on a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "registry/registry.h"
#include "util/alloc.h"
#include "util/error.h"

static uint64_t fake_now;

static uint64_t fake_now_ms(void *ctx)
{
    return *(uint64_t *)ctx;
}

static const struct mc_clock fake_clock = {fake_now_ms, &fake_now};

static int setup(void **state)
{
    fake_now = 1000;
    struct mc_registry_config cfg = {.clock = &fake_clock};
    *state = mc_registry_new(&mc_registry_memory_ops, &cfg, NULL, 0);
    return 0;
}

static int teardown(void **state)
{
    mc_registry_free(*state, NULL, NULL);
    return 0;
}

/* The memory backend completes every write through its callback before returning: these
 * wrappers check that it did (exactly once) and hand back the result. */
struct outcome {
    int calls;
    int err;
};

static void record_write(void *ctx, int err)
{
    struct outcome *o = ctx;
    o->calls++;
    o->err = err;
}

static int register_now(struct mc_registry *r, const struct mc_service *s, uint64_t ttl)
{
    struct outcome o = {0};
    mc_registry_register(r, s, ttl, 0, record_write, &o);
    assert_int_equal(o.calls, 1);
    return o.err;
}

static int deregister_now(struct mc_registry *r, const struct mc_service *s)
{
    struct outcome o = {0};
    mc_registry_deregister(r, s, record_write, &o);
    assert_int_equal(o.calls, 1);
    return o.err;
}

/* A one-node service (name, version, id, address, port). */
static void make(struct mc_service *s, const char *name, const char *version, const char *id,
                 const char *address, int port)
{
    mc_service_init(s);
    s->name = strdup(name);
    s->version = strdup(version);
    mc_service_add_node(s, id, address, port);
}

static void reg(struct mc_registry *r, const char *name, const char *version, const char *id,
                const char *address, int port, uint64_t ttl)
{
    struct mc_service s;
    make(&s, name, version, id, address, port);
    assert_int_equal(register_now(r, &s, ttl), 0);
    mc_service_close(&s);
}

static int dereg(struct mc_registry *r, const char *name, const char *id)
{
    struct mc_service s;
    make(&s, name, "", id, "", 0);
    int rc = deregister_now(r, &s);
    mc_service_close(&s);
    return rc;
}

static char *dump(json_t *j)
{
    if (!j)
        return NULL;
    char *s = json_dumps(j, JSON_COMPACT);
    assert_non_null(s);
    json_decref(j);
    return s;
}

static void expect_get(struct mc_registry *r, const char *name, const char *want)
{
    char *got = dump(mc_registry_get_json(r, name));
    if (!want) {
        if (got)
            fail_msg("get %s: got %s, want NULL", name ? name : "(null)", got);
        return;
    }
    if (!got)
        fail_msg("get %s: got NULL, want %s", name ? name : "(null)", want);
    assert_string_equal(got, want);
    free(got);
}

static void expect_list(struct mc_registry *r, const char *want)
{
    char *got = dump(mc_registry_list_json(r));
    assert_string_equal(got, want);
    free(got);
}

/* Records every event as "action <service JSON>". */
struct recorder {
    int count;
    char *events[32];
    struct mc_registry *r;
    int unwatch_id; /* unwatched from inside the callback when > 0 */
};

static void record(void *ctx, enum mc_registry_action action, const struct mc_service *svc)
{
    struct recorder *rec = ctx;
    char *j = dump(mc_service_to_json(svc, 1));
    assert_true(rec->count < 32);
    size_t len = strlen(j) + 16;
    rec->events[rec->count] = malloc(len);
    snprintf(rec->events[rec->count], len, "%s %s", mc_registry_action_name(action), j);
    rec->count++;
    free(j);
    if (rec->unwatch_id > 0) {
        mc_registry_unwatch(rec->r, rec->unwatch_id);
        rec->unwatch_id = 0;
    }
}

static void recorder_close(struct recorder *rec)
{
    for (int i = 0; i < rec->count; i++)
        free(rec->events[i]);
    rec->count = 0;
}

#define NODE(id, addr, port)                                                                       \
    "{\"id\":\"" id "\",\"address\":\"" addr "\",\"port\":" #port ",\"metadata\":null}"
#define SVC(name, version, nodes)                                                                  \
    "{\"name\":\"" name "\",\"version\":\"" version "\",\"metadata\":null,\"endpoints\":null,"     \
    "\"nodes\":" nodes "}"

static void test_register_then_get(void **state)
{
    struct mc_registry *r = *state;
    expect_get(r, "foo", NULL);
    reg(r, "foo", "1.0", "a", "127.0.0.1", 9090, 0);
    expect_get(r, "foo", "[" SVC("foo", "1.0", "[" NODE("a", "127.0.0.1", 9090) "]") "]");
    expect_get(r, "fo", NULL);
    expect_get(r, "foo2", NULL);
    expect_get(r, NULL, NULL);
}

static void test_metadata_and_endpoints_kept(void **state)
{
    struct mc_registry *r = *state;
    json_t *body = json_loads("{\"Name\":\"m\",\"Metadata\":{\"a\":\"b\"},\"Endpoints\":[{\"name\":"
                              "\"E\"}],\"Nodes\":[{\"Id\":\"n\",\"Port\":\"9091\",\"Metadata\":"
                              "{\"k\":\"v\"}}]}",
                              0, NULL);
    struct mc_service s;
    assert_int_equal(mc_service_from_json(body, MC_SERVICE_REQUIRE_NODES, &s, NULL, 0), 0);
    json_decref(body);
    assert_int_equal(register_now(r, &s, 0), 0);
    mc_service_close(&s);
    expect_get(r, "m",
               "[{\"name\":\"m\",\"version\":\"\",\"metadata\":{\"a\":\"b\"},\"endpoints\":"
               "[{\"name\":\"E\"}],\"nodes\":[{\"id\":\"n\",\"address\":\"\",\"port\":9091,"
               "\"metadata\":{\"k\":\"v\"}}]}]");
    /* The list shows names only, whatever the service carries. */
    expect_list(r, "[" SVC("m", "", "null") "]");
}

static void test_list_sorted_with_nulls(void **state)
{
    struct mc_registry *r = *state;
    expect_list(r, "[]");
    reg(r, "zeta", "", "z1", "h", 1, 0);
    reg(r, "alpha", "2.0", "a1", "h", 1, 0);
    reg(r, "mid", "2.0", "m2", "h", 1, 0);
    reg(r, "mid", "1.0", "m1", "h", 1, 0);
    reg(r, "Zulu", "", "Z1", "h", 1, 0); /* byte order: upper case sorts first */
    expect_list(r, "[" SVC("Zulu", "", "null") "," SVC("alpha", "", "null") "," SVC(
                       "mid", "", "null") "," SVC("zeta", "", "null") "]");
}

static void test_upsert_by_id(void **state)
{
    struct mc_registry *r = *state;
    reg(r, "foo", "", "a", "127.0.0.1", 9090, 0);
    reg(r, "foo", "", "a", "10.0.0.2", 9191, 0);
    expect_get(r, "foo", "[" SVC("foo", "", "[" NODE("a", "10.0.0.2", 9191) "]") "]");
    reg(r, "foo", "", "b", "10.0.0.3", 1, 0);
    expect_get(
        r, "foo",
        "[" SVC("foo", "", "[" NODE("a", "10.0.0.2", 9191) "," NODE("b", "10.0.0.3", 1) "]") "]");
    const struct mc_service *v[4];
    assert_int_equal(mc_registry_lookup(r, "foo", v, 4), 1);
    assert_int_equal(v[0]->node_count, 2);
}

static void test_two_versions(void **state)
{
    struct mc_registry *r = *state;
    reg(r, "foo", "2.0", "b", "h", 2, 0);
    reg(r, "foo", "1.0", "a", "h", 1, 0);
    reg(r, "foobar", "1.0", "x", "h", 3, 0); /* a longer name sorting right after */
    expect_get(r, "foo",
               "[" SVC("foo", "1.0", "[" NODE("a", "h", 1) "]") "," SVC(
                   "foo", "2.0", "[" NODE("b", "h", 2) "]") "]");
    const struct mc_service *v[4];
    assert_int_equal(mc_registry_lookup(r, "foo", v, 4), 2);
    assert_string_equal(v[0]->version, "1.0");
    assert_string_equal(v[1]->version, "2.0");
    assert_int_equal(mc_registry_lookup(r, "foo", v, 1), 1);
    assert_string_equal(v[0]->version, "1.0");
    assert_int_equal(mc_registry_lookup(r, "nope", v, 4), 0);
    assert_int_equal(mc_registry_lookup(r, "foo", v, 0), 0);
    expect_list(r, "[" SVC("foo", "", "null") "," SVC("foobar", "", "null") "]");
}

static void test_node_moves_between_versions(void **state)
{
    struct mc_registry *r = *state;
    struct recorder rec = {0};
    mc_registry_watch(r, NULL, record, &rec);
    reg(r, "foo", "1.0", "a", "h", 1, 0);
    reg(r, "foo", "1.0", "b", "h", 2, 0);
    reg(r, "foo", "2.0", "a", "h", 1, 0);
    expect_get(r, "foo",
               "[" SVC("foo", "1.0", "[" NODE("b", "h", 2) "]") "," SVC(
                   "foo", "2.0", "[" NODE("a", "h", 1) "]") "]");
    /* The watchers drop it from 1.0 before they see it in 2.0. */
    assert_int_equal(rec.count, 4);
    assert_string_equal(rec.events[2], "delete " SVC("foo", "1.0", "[" NODE("a", "h", 1) "]"));
    assert_string_equal(rec.events[3], "create " SVC("foo", "2.0", "[" NODE("a", "h", 1) "]"));
    recorder_close(&rec);
}

static void test_deregister(void **state)
{
    struct mc_registry *r = *state;
    reg(r, "foo", "", "a", "h", 1, 0);
    reg(r, "foo", "", "b", "h", 2, 0);
    assert_int_equal(dereg(r, "foo", "a"), 0);
    expect_get(r, "foo", "[" SVC("foo", "", "[" NODE("b", "h", 2) "]") "]");
    /* Unknown ids and unknown services are fine: idempotent. */
    assert_int_equal(dereg(r, "foo", "a"), 0);
    assert_int_equal(dereg(r, "foo", "zzz"), 0);
    assert_int_equal(dereg(r, "nobody", "a"), 0);
    expect_get(r, "foo", "[" SVC("foo", "", "[" NODE("b", "h", 2) "]") "]");
    /* The body's version is not needed to find the node. */
    reg(r, "foo", "3.1", "c", "h", 3, 0);
    assert_int_equal(dereg(r, "foo", "c"), 0);
    assert_int_equal(dereg(r, "foo", "b"), 0);
    expect_get(r, "foo", NULL);
    expect_list(r, "[]");
    assert_int_equal(mc_registry_next_expiry_ms(r), 0);
}

static void test_invalid_writes(void **state)
{
    struct mc_registry *r = *state;
    struct mc_service s;
    mc_service_init(&s);
    assert_int_equal(register_now(r, &s, 0), MC_EINVAL); /* no name */
    s.name = strdup("x");
    assert_int_equal(register_now(r, &s, 0), MC_EINVAL); /* no nodes */
    assert_int_equal(deregister_now(r, &s), MC_EINVAL);  /* no nodes */
    mc_service_add_node(&s, "", "h", 1);
    assert_int_equal(register_now(r, &s, 0), MC_EINVAL); /* empty id */
    mc_service_close(&s);
    make(&s, "x", "", "a", "h", 70000);
    assert_int_equal(register_now(r, &s, 0), MC_EINVAL); /* port */
    s.nodes[0].port = -1;
    assert_int_equal(register_now(r, &s, 0), MC_EINVAL);
    s.nodes[0].port = 65535;
    assert_int_equal(register_now(r, &s, 0), 0);
    mc_service_close(&s);
    expect_get(r, "x", "[" SVC("x", "", "[" NODE("a", "h", 65535) "]") "]");
}

static void test_ttl_expiry(void **state)
{
    struct mc_registry *r = *state;
    struct recorder rec = {0};
    mc_registry_watch(r, NULL, record, &rec);
    reg(r, "foo", "", "a", "h", 1, 5000); /* expires at 6000 */
    reg(r, "foo", "", "b", "h", 2, 0);
    reg(r, "bar", "", "c", "h", 3, 2000); /* expires at 3000 */
    recorder_close(&rec);
    assert_int_equal(mc_registry_next_expiry_ms(r), 3000);

    fake_now = 2999;
    expect_list(r, "[" SVC("bar", "", "null") "," SVC("foo", "", "null") "]");
    fake_now = 3000;
    /* bar's only node has expired: gone from every read before expire() runs. */
    expect_list(r, "[" SVC("foo", "", "null") "]");
    expect_get(r, "bar", NULL);
    const struct mc_service *v[2];
    assert_int_equal(mc_registry_lookup(r, "bar", v, 2), 0);

    fake_now = 6000;
    expect_get(r, "foo", "[" SVC("foo", "", "[" NODE("b", "h", 2) "]") "]");
    assert_int_equal(mc_registry_lookup(r, "foo", v, 2), 1);
    assert_int_equal(v[0]->node_count, 1);
    assert_string_equal(v[0]->nodes[0].id, "b");
    assert_string_equal(v[0]->name, "foo");
    assert_int_equal(rec.count, 0); /* nobody was told yet */

    assert_int_equal(mc_registry_expire(r), 2);
    assert_int_equal(rec.count, 2);
    assert_string_equal(rec.events[0], "delete " SVC("bar", "", "[" NODE("c", "h", 3) "]"));
    assert_string_equal(rec.events[1], "delete " SVC("foo", "", "[" NODE("a", "h", 1) "]"));
    assert_int_equal(mc_registry_expire(r), 0);
    assert_int_equal(rec.count, 2);
    assert_int_equal(mc_registry_next_expiry_ms(r), 0);
    /* After expire the view itself is returned again. */
    assert_int_equal(mc_registry_lookup(r, "foo", v, 2), 1);
    assert_int_equal(v[0]->node_count, 1);
    recorder_close(&rec);
}

static void test_renewal_pushes_expiry(void **state)
{
    struct mc_registry *r = *state;
    fake_now = 0;
    reg(r, "foo", "", "a", "h", 1, 5000);
    fake_now = 4000;
    reg(r, "foo", "", "a", "h", 1, 5000);
    assert_int_equal(mc_registry_next_expiry_ms(r), 9000);
    fake_now = 6000;
    assert_int_equal(mc_registry_expire(r), 0);
    expect_get(r, "foo", "[" SVC("foo", "", "[" NODE("a", "h", 1) "]") "]");
    /* Registering without a TTL makes it permanent. */
    reg(r, "foo", "", "a", "h", 1, 0);
    fake_now = 100000;
    assert_int_equal(mc_registry_expire(r), 0);
    assert_int_equal(mc_registry_next_expiry_ms(r), 0);
    reg(r, "foo", "", "a", "h", 1, 1);
    fake_now = 100001;
    assert_int_equal(mc_registry_expire(r), 1);
    expect_get(r, "foo", NULL);
}

static void test_watch_events_and_filter(void **state)
{
    struct mc_registry *r = *state;
    struct recorder all = {0}, foo = {0};
    int id_all = mc_registry_watch(r, NULL, record, &all);
    int id_foo = mc_registry_watch(r, "foo", record, &foo);
    assert_true(id_all > 0);
    assert_true(id_foo > 0);
    assert_int_not_equal(id_all, id_foo);

    reg(r, "foo", "", "a", "h", 1, 0);
    reg(r, "bar", "", "x", "h", 9, 0);
    reg(r, "foo", "", "a", "h2", 2, 0);
    /* One registration with a known and a new node: CREATE for the new, UPDATE for the old. */
    struct mc_service s;
    make(&s, "foo", "", "a", "h3", 3);
    mc_service_add_node(&s, "b", "h", 4);
    assert_int_equal(register_now(r, &s, 0), 0);
    assert_int_equal(deregister_now(r, &s), 0);
    mc_service_close(&s);
    assert_int_equal(dereg(r, "foo", "unknown"), 0); /* nothing removed: no event */

    const char *want_foo[] = {
        "create " SVC("foo", "", "[" NODE("a", "h", 1) "]"),
        "update " SVC("foo", "", "[" NODE("a", "h2", 2) "]"),
        "create " SVC("foo", "", "[" NODE("b", "h", 4) "]"),
        "update " SVC("foo", "", "[" NODE("a", "h3", 3) "]"),
        "delete " SVC("foo", "", "[" NODE("a", "h3", 3) "," NODE("b", "h", 4) "]"),
    };
    assert_int_equal(foo.count, 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(foo.events[i], want_foo[i]);
    assert_int_equal(all.count, 6);
    assert_string_equal(all.events[0], want_foo[0]);
    assert_string_equal(all.events[1], "create " SVC("bar", "", "[" NODE("x", "h", 9) "]"));
    assert_string_equal(all.events[5], want_foo[4]);

    mc_registry_unwatch(r, id_foo);
    mc_registry_unwatch(r, 12345); /* unknown: ignored */
    reg(r, "foo", "", "c", "h", 5, 0);
    assert_int_equal(foo.count, 5);
    assert_int_equal(all.count, 7);
    recorder_close(&all);
    recorder_close(&foo);
}

/* A hand-built service naming one id twice is still one node and one report. */
static void test_duplicate_ids_in_one_registration(void **state)
{
    struct mc_registry *r = *state;
    struct recorder rec = {0};
    mc_registry_watch(r, NULL, record, &rec);
    struct mc_service s;
    make(&s, "foo", "", "a", "h1", 1);
    mc_service_add_node(&s, "a", "h2", 2);
    assert_int_equal(register_now(r, &s, 0), 0);
    assert_int_equal(rec.count, 1);
    assert_string_equal(rec.events[0], "create " SVC("foo", "", "[" NODE("a", "h2", 2) "]"));
    assert_int_equal(register_now(r, &s, 0), 0);
    assert_int_equal(rec.count, 2);
    assert_string_equal(rec.events[1], "update " SVC("foo", "", "[" NODE("a", "h2", 2) "]"));
    mc_service_close(&s);
    expect_get(r, "foo", "[" SVC("foo", "", "[" NODE("a", "h2", 2) "]") "]");
    recorder_close(&rec);
}

/* Counts events and their nodes (for writes too big for the recorder). */
struct tally {
    int events[3];
    size_t nodes[3];
    char first_delete_id[16];
};

static void count_event(void *ctx, enum mc_registry_action action, const struct mc_service *svc)
{
    struct tally *t = ctx;
    if (action == MC_REGISTRY_DELETE && t->events[action] == 0 && svc->node_count)
        snprintf(t->first_delete_id, sizeof t->first_delete_id, "%s", svc->nodes[0].id);
    t->events[action]++;
    t->nodes[action] += svc->node_count;
}

/* Ids "n<i>" for i in [from, to) stepping by step, all at port. */
static void make_many(struct mc_service *s, const char *version, int from, int to, int step,
                      int port)
{
    mc_service_init(s);
    s->name = strdup("big");
    s->version = strdup(version);
    for (int i = from; i < to; i += step) {
        char id[16];
        snprintf(id, sizeof id, "n%d", i);
        mc_service_add_node(s, id, "h", port);
    }
}

/* The nodes of one version, as the view holds them: ids and ports checked in order. */
static void expect_version(struct mc_registry *r, size_t vi, const char *version, int from, int to,
                           int step, const int *ports)
{
    const struct mc_service *v[4];
    size_t nv = mc_registry_lookup(r, "big", v, 4);
    assert_true(vi < nv);
    assert_string_equal(v[vi]->version, version);
    size_t k = 0;
    for (int i = from; i < to; i += step, k++) {
        char id[16];
        snprintf(id, sizeof id, "n%d", i);
        assert_true(k < v[vi]->node_count);
        assert_string_equal(v[vi]->nodes[k].id, id);
        if (ports)
            assert_int_equal(v[vi]->nodes[k].port, ports[i]);
    }
    assert_int_equal(v[vi]->node_count, k);
}

/* The node index through a write of thousands of nodes: update by id keeps positions, a move
 * takes every other node to another version (one DELETE in view order, one CREATE), a delete
 * closes the gaps, and every later write still finds each node where it now is. */
static void test_index_many_nodes(void **state)
{
    struct mc_registry *r = *state;
    enum { N = 4000 };
    static int ports[N];
    struct tally t = {0};
    mc_registry_watch(r, "big", count_event, &t);
    struct mc_service s;

    make_many(&s, "1", 0, N, 1, 1);
    assert_int_equal(register_now(r, &s, 0), 0);
    mc_service_close(&s);
    for (int i = 0; i < N; i++)
        ports[i] = 1;
    expect_version(r, 0, "1", 0, N, 1, ports);
    assert_int_equal(t.events[MC_REGISTRY_CREATE], 1);
    assert_int_equal(t.nodes[MC_REGISTRY_CREATE], N);

    /* Update every third node by id, given in reverse order: positions do not change. */
    mc_service_init(&s);
    s.name = strdup("big");
    s.version = strdup("1");
    for (int i = N - 1; i >= 0; i--)
        if (i % 3 == 0) {
            char id[16];
            snprintf(id, sizeof id, "n%d", i);
            mc_service_add_node(&s, id, "h", 2);
            ports[i] = 2;
        }
    assert_int_equal(register_now(r, &s, 0), 0);
    mc_service_close(&s);
    expect_version(r, 0, "1", 0, N, 1, ports);
    assert_int_equal(t.events[MC_REGISTRY_UPDATE], 1);
    assert_int_equal(t.nodes[MC_REGISTRY_UPDATE], (N + 2) / 3);

    /* Move the even nodes to version 2. */
    make_many(&s, "2", 0, N, 2, 3);
    assert_int_equal(register_now(r, &s, 0), 0);
    mc_service_close(&s);
    expect_version(r, 0, "1", 1, N, 2, ports);
    for (int i = 0; i < N; i += 2)
        ports[i] = 3;
    expect_version(r, 1, "2", 0, N, 2, ports);
    assert_int_equal(t.events[MC_REGISTRY_DELETE], 1);
    assert_int_equal(t.nodes[MC_REGISTRY_DELETE], N / 2);
    assert_string_equal(t.first_delete_id, "n0");
    assert_int_equal(t.events[MC_REGISTRY_CREATE], 2);

    /* Delete every fourth node (from both versions, one call, ids in any order). */
    struct mc_service d;
    make_many(&d, "", 0, N, 4, 0);
    mc_service_add_node(&d, "n0", "", 0); /* named twice: still one removal */
    mc_service_add_node(&d, "nope", "", 0);
    assert_int_equal(deregister_now(r, &d), 0);
    mc_service_close(&d);
    assert_int_equal(t.events[MC_REGISTRY_DELETE], 2); /* all in version 2 */
    assert_int_equal(t.nodes[MC_REGISTRY_DELETE], N / 2 + N / 4);

    /* Every remaining node is still found where it is: move them all back to version 1. */
    make_many(&s, "1", 0, N, 1, 4);
    assert_int_equal(register_now(r, &s, 0), 0);
    mc_service_close(&s);
    const struct mc_service *v[4];
    assert_int_equal(mc_registry_lookup(r, "big", v, 4), 1);
    /* The odd ones stayed (updated), the 2 mod 4 ones came back from 2, the 0 mod 4 were
     * created again: N nodes, each once. */
    assert_int_equal(v[0]->node_count, N);

    /* And everything goes, version by version, leaving an empty view. */
    make_many(&d, "", 0, N, 1, 0);
    assert_int_equal(deregister_now(r, &d), 0);
    mc_service_close(&d);
    assert_int_equal(mc_registry_lookup(r, "big", v, 4), 0);
    expect_list(r, "[]");
}

/* Expiry closes the gaps in one pass too, and the index follows. */
static void test_index_after_expiry(void **state)
{
    struct mc_registry *r = *state;
    for (int i = 0; i < 100; i++) {
        char id[16];
        snprintf(id, sizeof id, "n%d", i);
        reg(r, "big", "1", id, "h", 1, i % 2 ? 0 : 10);
    }
    fake_now += 10;
    assert_int_equal(mc_registry_expire(r), 50);
    static int ports[100];
    for (int i = 0; i < 100; i++)
        ports[i] = 1;
    expect_version(r, 0, "1", 1, 100, 2, ports);
    /* The survivors are found by id at their new positions. */
    struct mc_service s;
    make_many(&s, "1", 1, 100, 2, 5);
    assert_int_equal(register_now(r, &s, 0), 0);
    mc_service_close(&s);
    for (int i = 1; i < 100; i += 2)
        ports[i] = 5;
    expect_version(r, 0, "1", 1, 100, 2, ports);
    assert_int_equal(dereg(r, "big", "n51"), 0);
    reg(r, "big", "1", "n99", "h", 6, 0);
    const struct mc_service *v[1];
    assert_int_equal(mc_registry_lookup(r, "big", v, 1), 1);
    assert_int_equal(v[0]->node_count, 49);
    assert_string_equal(v[0]->nodes[48].id, "n99");
    assert_int_equal(v[0]->nodes[48].port, 6);
}

/* Control characters in a name, version, id or address are refused whoever writes (not only
 * JSON bodies): nothing is stored and no event is sent. */
static void test_control_characters_refused(void **state)
{
    struct mc_registry *r = *state;
    struct recorder rec = {0};
    mc_registry_watch(r, NULL, record, &rec);
    static const char *const cases[][4] = {
        {"foo\r\nContent-Length: 0", "", "a", "h"},
        {"foo\n", "", "a", "h"},
        {"foo", "1\t", "a", "h"},
        {"foo", "", "a\x7f", "h"},
        {"foo", "", "a\x01", "h"},
        {"foo", "", "a", "h\r"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mc_service s;
        make(&s, cases[i][0], cases[i][1], "ok", "h", 1);
        mc_service_add_node(&s, cases[i][2], cases[i][3], 2);
        assert_int_equal(register_now(r, &s, 0), MC_EINVAL);
        assert_int_equal(deregister_now(r, &s), MC_EINVAL);
        mc_service_close(&s);
    }
    expect_list(r, "[]");
    assert_int_equal(rec.count, 0);
    recorder_close(&rec);
}

static void test_unwatch_inside_callback(void **state)
{
    struct mc_registry *r = *state;
    struct recorder self = {0}, other = {0}, killer = {0};
    self.r = r;
    killer.r = r;
    int id_self = mc_registry_watch(r, NULL, record, &self);
    mc_registry_watch(r, NULL, record, &killer);
    int id_other = mc_registry_watch(r, NULL, record, &other);
    /* killer runs before other and unwatches it during the very event other was due. */
    killer.unwatch_id = id_other;
    reg(r, "foo", "1", "a", "h", 1, 0);
    assert_int_equal(self.count, 1);
    assert_int_equal(killer.count, 1);
    assert_int_equal(other.count, 0);

    /* A move is two events from one call: self unwatches itself in the first one. */
    self.unwatch_id = id_self;
    reg(r, "foo", "2", "a", "h", 1, 0);
    assert_int_equal(self.count, 2);
    assert_string_equal(self.events[1], "delete " SVC("foo", "1", "[" NODE("a", "h", 1) "]"));
    assert_int_equal(killer.count, 3);
    reg(r, "foo", "2", "b", "h", 1, 0);
    assert_int_equal(self.count, 2);
    assert_int_equal(other.count, 0);
    assert_int_equal(killer.count, 4);
    recorder_close(&self);
    recorder_close(&other);
    recorder_close(&killer);
}

/* A callback that writes to the registry while events are being delivered. */
struct reentrant {
    struct mc_registry *r;
    int calls;
    int watched;
};

static void reenter(void *ctx, enum mc_registry_action action, const struct mc_service *svc)
{
    struct reentrant *re = ctx;
    re->calls++;
    if (action == MC_REGISTRY_CREATE && strcmp(svc->name, "foo") == 0) {
        /* Remove what was just created, and add watches (growing the array mid-dispatch). */
        assert_int_equal(deregister_now(re->r, svc), 0);
        for (int i = 0; i < 20; i++)
            re->watched += mc_registry_watch(re->r, "never", reenter, re) > 0;
    }
}

static void test_callbacks_may_write(void **state)
{
    struct mc_registry *r = *state;
    struct reentrant re = {r, 0, 0};
    mc_registry_watch(r, NULL, reenter, &re);
    reg(r, "foo", "", "a", "h", 1, 0);
    assert_int_equal(re.calls, 2); /* the create, then the nested delete */
    assert_int_equal(re.watched, 20);
    expect_get(r, "foo", NULL);
}

static void test_register_from_lookup_result(void **state)
{
    struct mc_registry *r = *state;
    reg(r, "foo", "1", "a", "h", 1, 0);
    const struct mc_service *v[1];
    assert_int_equal(mc_registry_lookup(r, "foo", v, 1), 1);
    /* Writes take a copy first, so a pointer into the view is a valid argument. */
    assert_int_equal(register_now(r, v[0], 10), 0);
    assert_int_equal(mc_registry_lookup(r, "foo", v, 1), 1);
    assert_int_equal(deregister_now(r, v[0]), 0);
    expect_get(r, "foo", NULL);
}

static void test_lookup_returns_the_view(void **state)
{
    struct mc_registry *r = *state;
    reg(r, "foo", "", "a", "h", 1, 0);
    const struct mc_service *v1[1], *v2[1];
    assert_int_equal(mc_registry_lookup(r, "foo", v1, 1), 1);
    assert_int_equal(mc_registry_lookup(r, "foo", v2, 1), 1);
    assert_ptr_equal(v1[0], v2[0]);
}

static void test_action_names(void **state)
{
    (void)state;
    assert_string_equal(mc_registry_action_name(MC_REGISTRY_CREATE), "create");
    assert_string_equal(mc_registry_action_name(MC_REGISTRY_UPDATE), "update");
    assert_string_equal(mc_registry_action_name(MC_REGISTRY_DELETE), "delete");
}

/* A backend that records writes without applying them, as a remote one would before its watch
 * reports back: the view (and so every read) must not change until the backend says so. */
/* A remote-like backend: writes stay pending until the test acknowledges them (as a store's
 * answer would), and its close finishes later too. */
struct fake_backend {
    int started, closed, registered, deregistered;
    uint64_t last_ttl;
    mc_registry_done_cb pending;
    void *pending_ctx;
    struct mc_registry *closing;
};

static void fake_start(struct mc_registry *r)
{
    struct fake_backend *b = mc_registry_backend_data(r);
    b->started++;
}

static void fake_register(struct mc_registry *r, const struct mc_service *svc, uint64_t ttl_ms,
                          mc_registry_done_cb done, void *ctx)
{
    (void)svc;
    struct fake_backend *b = mc_registry_backend_data(r);
    b->registered++;
    b->last_ttl = ttl_ms;
    b->pending = done;
    b->pending_ctx = ctx;
}

static void fake_deregister(struct mc_registry *r, const struct mc_service *svc,
                            mc_registry_done_cb done, void *ctx)
{
    (void)svc;
    struct fake_backend *b = mc_registry_backend_data(r);
    b->deregistered++;
    b->pending = done;
    b->pending_ctx = ctx;
}

static void fake_close(struct mc_registry *r)
{
    struct fake_backend *b = mc_registry_backend_data(r);
    b->closed++;
    b->closing = r;
}

static const struct mc_backend_state *fake_state(const struct mc_registry *r)
{
    (void)r;
    static struct mc_backend_state st;
    mc_backend_state_init(&st, "registry", "fake", MC_BACKEND_RETRYING, "down");
    return &st;
}

static const struct mc_registry_ops fake_ops = {
    .name = "fake",
    .start = fake_start,
    .register_service = fake_register,
    .deregister_service = fake_deregister,
    .close = fake_close,
    .state = fake_state,
};

/* The backend answers the pending write with err. */
static void ack(struct fake_backend *b, int err)
{
    assert_non_null(b->pending);
    mc_registry_done_cb done = b->pending;
    b->pending = NULL;
    done(b->pending_ctx, err);
}

static void closed_cb(void *ctx)
{
    (*(int *)ctx)++;
}

static void test_backend_split(void **state)
{
    (void)state;
    struct fake_backend b = {0};
    struct mc_registry_config cfg = {.clock = &fake_clock};
    struct mc_registry *r = mc_registry_new(&fake_ops, &cfg, NULL, 0);
    mc_registry_set_backend_data(r, &b);
    assert_ptr_equal(mc_registry_backend_ops(r), &fake_ops);
    mc_registry_start(r);
    assert_int_equal(b.started, 1);

    struct mc_service s;
    make(&s, "foo", "", "a", "h", 1);
    struct outcome o = {0};
    mc_registry_register(r, &s, 7000, 0, record_write, &o);
    assert_int_equal(b.last_ttl, 7000);
    assert_int_equal(o.calls, 0); /* the answer waits for the backend */
    assert_int_equal(mc_registry_owned_count(r), 0);
    ack(&b, 0);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.err, 0);
    /* acknowledged: owned, with its own lease of 7 s */
    assert_int_equal(mc_registry_owned_count(r), 1);
    struct mc_registry_owned *own = mc_registry_owned_find(r, "foo", "a");
    assert_non_null(own);
    assert_int_equal(own->ttl_ms, 7000);
    assert_int_equal(own->expires_at_ms, fake_now + 7000);
    expect_get(r, "foo", NULL); /* not applied by the backend yet */

    o = (struct outcome){0};
    mc_registry_register(r, &s, 0, 0, record_write, &o);
    ack(&b, MC_EUNAVAIL);
    assert_int_equal(o.err, MC_EUNAVAIL); /* backend errors pass up */
    assert_int_equal(mc_registry_owned_find(r, "foo", "a")->ttl_ms, 7000); /* unchanged */

    /* The backend's watch reports the node: now reads see it. */
    assert_int_equal(mc_registry_view_upsert(r, &s, 0), 0);
    expect_get(r, "foo", "[" SVC("foo", "", "[" NODE("a", "h", 1) "]") "]");
    o = (struct outcome){0};
    mc_registry_deregister(r, &s, record_write, &o);
    assert_int_equal(b.deregistered, 1);
    ack(&b, MC_EUNAVAIL); /* a failed deregistration keeps the node owned */
    assert_int_equal(o.err, MC_EUNAVAIL);
    assert_int_equal(mc_registry_owned_count(r), 1);
    mc_registry_deregister(r, &s, record_write, &o);
    ack(&b, 0);
    assert_int_equal(mc_registry_owned_count(r), 0);
    expect_get(r, "foo", "[" SVC("foo", "", "[" NODE("a", "h", 1) "]") "]");
    assert_int_equal(mc_registry_view_remove(r, &s), 0);
    expect_get(r, "foo", NULL);

    /* A write refused by validation never reaches the backend, yet still answers. */
    struct mc_service bad;
    mc_service_init(&bad);
    o = (struct outcome){0};
    mc_registry_register(r, &bad, 0, 0, record_write, &o);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.err, MC_EINVAL);
    assert_int_equal(b.registered, 2);
    mc_service_close(&bad);

    /* PERSIST: the sidecar's own nodes are owned at once, even when the store is down, so
     * that the backend registers them once it is back. */
    o = (struct outcome){0};
    mc_registry_register(r, &s, 0, MC_REGISTRY_PERSIST, record_write, &o);
    assert_int_equal(mc_registry_owned_count(r), 1);
    ack(&b, MC_EUNAVAIL);
    assert_int_equal(mc_registry_owned_count(r), 1);
    assert_int_equal(mc_registry_owned_at(r, 0)->ttl_ms, 0);
    mc_service_close(&s);

    const struct mc_backend_state *st = mc_registry_backend_state(r);
    assert_string_equal(st->backend, "fake");
    assert_int_equal(st->status, MC_BACKEND_RETRYING);
    assert_string_equal(st->error, "down");

    /* The close is asynchronous: the registry lives until the backend says it is done. */
    int closed = 0;
    mc_registry_free(r, closed_cb, &closed);
    assert_int_equal(b.closed, 1);
    assert_int_equal(closed, 0);
    mc_registry_backend_closed(b.closing);
    assert_int_equal(closed, 1);
    mc_registry_free(NULL, closed_cb, &closed);
    assert_int_equal(closed, 2);
}

static void test_defaults(void **state)
{
    (void)state;
    struct mc_registry *r = mc_registry_new(NULL, NULL, NULL, 0);
    assert_ptr_equal(mc_registry_backend_ops(r), &mc_registry_memory_ops);
    assert_string_equal(mc_registry_backend_ops(r)->name, "memory");
    mc_registry_start(r);
    const struct mc_backend_state *st = mc_registry_backend_state(r);
    assert_string_equal(st->backend, "memory");
    assert_int_equal(st->status, MC_BACKEND_CONNECTED);
    reg(r, "foo", "", "a", "h", 1, 60000);
    expect_list(r, "[" SVC("foo", "", "null") "]");
    int closed = 0;
    mc_registry_free(r, closed_cb, &closed);
    assert_int_equal(closed, 1); /* memory closes before returning */
}

/* One row per backend, picked by the flag's name. */
static void test_backend_table(void **state)
{
    (void)state;
    assert_ptr_equal(mc_registry_backend_find("memory"), &mc_registry_memory_ops);
    assert_ptr_equal(mc_registry_backend_find("etcd"), &mc_registry_etcd_ops);
    assert_null(mc_registry_backend_find("consul"));
    assert_null(mc_registry_backend_find(NULL));
}

/* The serialised read of mc_registry_get_json, through the cache. */
static char *text_of(struct mc_registry *r, const char *name)
{
    size_t len;
    const char *t = mc_registry_get_text(r, name, &len);
    if (!t)
        return NULL;
    json_t *v = mc_registry_get_json(r, name);
    char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    assert_int_equal(strlen(want), len);
    assert_memory_equal(want, t, len); /* the cache never answers differently */
    free(want);
    return mc_strndup(t, len);
}

static void test_read_cache_follows_every_change(void **state)
{
    struct mc_registry *r = *state;
    assert_null(text_of(r, "foo"));
    reg(r, "foo", "", "a", "h", 1, 0);
    size_t l1, l2;
    const char *t1 = mc_registry_get_text(r, "foo", &l1);
    const char *t2 = mc_registry_get_text(r, "foo", &l2);
    assert_ptr_equal(t1, t2); /* served from the cache */
    char *before = text_of(r, "foo");
    reg(r, "foo", "", "b", "h", 2, 5000); /* a change, and a node that expires at 6000 */
    char *after = text_of(r, "foo");
    assert_string_not_equal(before, after);
    assert_non_null(strstr(after, "\"b\""));
    /* Reads hide the expired node as soon as its time comes, before any expiry tick. */
    fake_now = 6000;
    char *expired = text_of(r, "foo");
    assert_null(strstr(expired, "\"b\""));
    assert_string_equal(expired, before);
    assert_int_equal(dereg(r, "foo", "a"), 0);
    char *gone = text_of(r, "foo");
    assert_null(gone);
    /* More names than the cache holds: each still answers its own. */
    char name[16];
    for (int i = 0; i < 3 * MC_REGISTRY_READ_CACHE; i++) {
        snprintf(name, sizeof name, "svc%d", i);
        reg(r, name, "", "n", "h", i, 0);
    }
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 3 * MC_REGISTRY_READ_CACHE; i++) {
            snprintf(name, sizeof name, "svc%d", i);
            char *t = text_of(r, name);
            assert_non_null(strstr(t, name));
            mc_free(t);
        }
    mc_free(before);
    mc_free(after);
    mc_free(expired);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register_then_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_cache_follows_every_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_and_endpoints_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_sorted_with_nulls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upsert_by_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_moves_between_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deregister, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_renewal_pushes_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_events_and_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_ids_in_one_registration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_many_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_after_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_characters_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwatch_inside_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callbacks_may_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_register_from_lookup_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_returns_the_view, setup, teardown),
        cmocka_unit_test(test_action_names),
        cmocka_unit_test(test_backend_split),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_backend_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
