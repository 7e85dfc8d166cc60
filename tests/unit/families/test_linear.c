/* Standing test family "every per-request loop is linear" (docs/design.md): each operation a
 * request or a registration can make large is run at two sizes, N and 8N, and its cost must
 * grow about 8 times, not 64. Cost is counted, not timed, where it can be: this binary
 * replaces the allocation wrappers of util/alloc.h with counting ones, so the allocations of
 * each run are an exact count (allowed: 8x + 25%). CPU time (best of three, the process's
 * own clock, so a busy machine matters little) backs it for loops that do not allocate, with
 * a margin a quadratic loop cannot meet: under 40x where quadratic is 64x (a linear loop
 * measures 8-16x; up to 30x where the larger size leaves the CPU caches, as the registry's
 * node index does between 4,000 and 32,000 nodes). Under valgrind (make memcheck sets
 * MC_MEMCHECK) only the counts are checked. A new input that grows with the request gets a row
 * here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "broker/broker.h"
#include "fuzz/mem_transport.h"
#include "http/h1.h"
#include "http/h2.h"
#include "http/server.h"
#include "http/url.h"
#include "registry/registry.h"
#include "registry/service.h"
#include "rpc/jsonrpc.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "ws/ws.h"

/* ---- counting allocation wrappers (this binary's own util/alloc) ---- */

static unsigned long allocs;

void *mc_malloc(size_t size)
{
    allocs++;
    void *p = malloc(size ? size : 1);
    if (!p)
        abort();
    return p;
}

void *mc_calloc(size_t count, size_t size)
{
    allocs++;
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        abort();
    return p;
}

void *mc_realloc(void *ptr, size_t size)
{
    allocs++;
    void *p = realloc(ptr, size ? size : 1);
    if (!p)
        abort();
    return p;
}

char *mc_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = mc_malloc(len + 1);
    memcpy(p, s, len);
    p[len] = 0;
    return p;
}

char *mc_strdup(const char *s)
{
    return mc_strndup(s, strlen(s));
}

char *mc_sprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = mc_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void mc_free(void *ptr)
{
    free(ptr);
}

/* ---- the harness ---- */

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One row: prepare(n) builds the input (not counted), run() is the measured operation,
 * finish() releases. */
struct row {
    const char *name;
    size_t n;
    void (*prepare)(size_t n);
    void (*run)(void);
    void (*finish)(void);
};

static void measure(const struct row *r, size_t n, unsigned long *count, uint64_t *ns)
{
    *ns = UINT64_MAX;
    for (int i = 0; i < 3; i++) {
        r->prepare(n);
        unsigned long a0 = allocs;
        uint64_t t0 = cpu_ns();
        r->run();
        uint64_t t = cpu_ns() - t0;
        *count = allocs - a0;
        if (t < *ns)
            *ns = t;
        r->finish();
    }
}

static void check_row(const struct row *r)
{
    unsigned long a1, a8;
    uint64_t t1, t8;
    /* LINEAR_SCALE=k runs every row at k times its sizes (to look at a curve by hand). */
    size_t n = r->n * (getenv("LINEAR_SCALE") ? (size_t)atoi(getenv("LINEAR_SCALE")) : 1);
    if (getenv("MC_MEMCHECK"))
        n /= 16; /* valgrind: the counts only, at sizes it runs in seconds */
    measure(r, n, &a1, &t1);
    measure(r, 8 * n, &a8, &t8);
    print_message("%-28s N=%-7zu allocs %lu -> %lu (x%.1f), cpu %.2f -> %.2f ms (x%.1f)\n", r->name,
                  n, a1, a8, a1 ? (double)a8 / (double)a1 : 0.0, t1 / 1e6, t8 / 1e6,
                  t1 ? (double)t8 / (double)t1 : 0.0);
    /* Counting: at most 8x and a quarter, plus a constant for growth steps of buffers. */
    assert_true(a8 <= a1 * 10 + 64);
    /* Time, only when the small run is long enough to mean something. */
    if (t1 > 2000000 && !getenv("MC_MEMCHECK"))
        assert_true(t8 < t1 * 40);
}

/* ---- rows ---- */

static uv_loop_t loop;
static struct mc_registry *reg;
static struct mc_service svc;
static json_t *svc_json;
static char *text;
static size_t text_len;

static json_t *service_json(size_t n)
{
    json_t *nodes = json_array();
    for (size_t i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "n%zu", i);
        json_array_append_new(nodes,
                              json_pack("{s:s,s:s,s:i,s:{s:s}}", "id", id, "address", "127.0.0.1",
                                        "port", (int)(1000 + i % 60000), "metadata", "k", "v"));
    }
    return json_pack("{s:s,s:s,s:o}", "name", "scale.svc", "version", "1", "nodes", nodes);
}

static void prep_registry(size_t n)
{
    uv_loop_init(&loop);
    struct mc_registry_config cfg = {.loop = &loop};
    char err[128];
    reg = mc_registry_new(mc_registry_backend_find("memory"), &cfg, err, sizeof err);
    mc_registry_start(reg);
    svc_json = service_json(n);
    char e[256];
    assert_int_equal(mc_service_from_json(svc_json, MC_SERVICE_REQUIRE_NODES, &svc, e, sizeof e),
                     0);
}

static void done_ok(void *ctx, int err)
{
    (void)ctx;
    assert_int_equal(err, 0);
}

static void run_register(void)
{
    mc_registry_register(reg, &svc, 0, 0, done_ok, NULL);
}

static void finish_registry(void)
{
    mc_service_close(&svc);
    json_decref(svc_json);
    mc_registry_free(reg, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

static void prep_deregister(size_t n)
{
    prep_registry(n);
    mc_registry_register(reg, &svc, 0, 0, done_ok, NULL);
}

static void run_deregister(void)
{
    mc_registry_deregister(reg, &svc, done_ok, NULL);
}

static void run_move(void)
{
    /* the same nodes registered under another version: each moves out of version 1 */
    mc_free(svc.version);
    svc.version = mc_strdup("2");
    mc_registry_register(reg, &svc, 0, 0, done_ok, NULL);
}

static void run_read(void)
{
    size_t len;
    assert_non_null(mc_registry_get_text(reg, "scale.svc", &len));
}

static void run_from_json(void)
{
    struct mc_service s;
    char e[256];
    assert_int_equal(mc_service_from_json(svc_json, MC_SERVICE_REQUIRE_NODES, &s, e, sizeof e), 0);
    mc_service_close(&s);
}

static void prep_members(size_t n)
{
    struct mc_buf b;
    mc_buf_init(&b);
    mc_buf_append_str(&b, "{");
    for (size_t i = 0; i < n; i++)
        mc_buf_appendf(&b, "\"pad%zu\":[1,\"x\\u00e9\",{\"a\":null}],", i);
    mc_buf_append_str(&b, "\"service\":\"s\",\"method\":\"M.C\",\"request\":{}}");
    text = mc_buf_steal(&b, &text_len);
}

static void run_members(void)
{
    struct mc_json_member m[3] = {{.key = "service"}, {.key = "method"}, {.key = "request"}};
    assert_int_equal(mc_json_members(text, text_len, m, 3), 0);
    assert_true(m[0].found && m[1].found && m[2].found);
}

static void finish_text(void)
{
    mc_free(text);
}

static void prep_form(size_t n)
{
    struct mc_buf b;
    mc_buf_init(&b);
    for (size_t i = 0; i < n; i++)
        mc_buf_appendf(&b, "p%07zu=%%41%%42+c&", i); /* names of one length */
    mc_buf_append_str(&b, "service=go.micro.srv.x");
    text = mc_buf_steal(&b, &text_len);
}

static void run_form(void)
{
    char *v = NULL;
    assert_int_equal(mc_url_form_value(text, text_len, "service", &v), 0);
    mc_free(v);
}

static void ws_message(void *ctx, int is_text, const uint8_t *p, size_t len)
{
    (void)ctx, (void)is_text, (void)p, (void)len;
}
static void ws_close(void *ctx, uint16_t code, const char *reason, size_t len)
{
    (void)ctx, (void)code, (void)reason, (void)len;
}
static void ws_write(void *ctx, const void *p, size_t len)
{
    (void)ctx, (void)p, (void)len;
}

static void prep_frames(size_t n)
{
    struct mc_buf b;
    mc_buf_init(&b);
    for (size_t i = 0; i < n; i++) {
        /* a masked text frame "hello" (key 0) */
        static const uint8_t f[] = {0x81, 0x85, 0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o'};
        mc_buf_append(&b, f, sizeof f);
    }
    text = mc_buf_steal(&b, &text_len);
}

static void run_frames(void)
{
    static const struct mc_ws_callbacks cbs = {ws_message, ws_close, ws_write, NULL};
    struct mc_ws_limits limits = {.max_message = 1024};
    struct mc_ws *ws = mc_ws_new(&cbs, NULL, &limits);
    assert_int_equal(mc_ws_feed(ws, (const uint8_t *)text, text_len), 0);
    mc_ws_free(ws);
}

static struct mc_broker *broker;
static unsigned long delivered, subscribers;

static void deliver(void *ctx, struct mc_broker_message *msg)
{
    (void)ctx, (void)msg;
    delivered++;
}

static void prep_fanout(size_t n)
{
    uv_loop_init(&loop);
    struct mc_broker_settings set = {0};
    broker = mc_broker_new(mc_broker_backend_find("memory"), &loop, &set);
    assert_int_equal(mc_broker_start(broker), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(mc_broker_subscribe(broker, "t", NULL, deliver, NULL, NULL), 0);
    delivered = 0;
    subscribers = n;
}

static void run_fanout(void)
{
    struct mc_broker_message *m = mc_broker_message_new("t", NULL, 0, "x", 1);
    assert_int_equal(mc_broker_publish(broker, m), 0);
    mc_broker_message_unref(m);
}

static void finish_fanout(void)
{
    assert_int_equal(delivered, subscribers);
    mc_broker_free(broker);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

/* N streams on one HTTP/2 connection, through the real codec (nghttp2's session, the stream
 * table, the router, the response path) over the fuzz targets' in-memory transport: the client
 * sends the preface and N GETs, each a HEADERS frame ending its stream, read 32 frames at a time
 * (under the 128 concurrent streams), and every one is answered. */
static struct mc_net h2_net;
static struct mc_http_server *h2_server;
static struct mc_http_route h2_route;
static unsigned long h2_answered, h2_expected;

static void h2_answer(struct mc_http_request *req, void *ctx)
{
    (void)ctx;
    h2_answered++;
    mc_http_respond(req, 204, NULL, NULL, 0, NULL, 0);
}

static void prep_h2(size_t n)
{
    /* :method GET, :scheme http, :path /, :authority localhost (literal, indexed) */
    static const uint8_t block[] = {0x82, 0x86, 0x84, 0x41, 9,   'l', 'o',
                                    'c',  'a',  'l',  'h',  'o', 's', 't'};
    static const uint8_t settings[] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
    struct mc_buf b;
    mc_buf_init(&b);
    mc_buf_append(&b, MC_H2_PREFACE, MC_H2_PREFACE_LEN);
    mc_buf_append(&b, settings, sizeof settings);
    for (size_t i = 0; i < n; i++) {
        uint32_t id = (uint32_t)(2 * i + 1);
        uint8_t hd[9] = {0,
                         0,
                         sizeof block,
                         1,
                         0x5 /* END_STREAM | END_HEADERS */,
                         (uint8_t)(id >> 24),
                         (uint8_t)(id >> 16),
                         (uint8_t)(id >> 8),
                         (uint8_t)id};
        mc_buf_append(&b, hd, sizeof hd);
        mc_buf_append(&b, block, sizeof block);
    }
    text = mc_buf_steal(&b, &text_len);
    uv_loop_init(&loop);
    memset(&h2_net, 0, sizeof h2_net);
    h2_net.loop = &loop;
    mc_buf_init(&mem_out);
    mem_out_total = 0;
    h2_route = (struct mc_http_route){"/", MC_HTTP_GET, 0, h2_answer, NULL};
    struct mc_http_server_config scfg = {.address = "127.0.0.1:0",
                                         .transport = &mem_type,
                                         .routes = &h2_route,
                                         .route_count = 1,
                                         .max_body_size = 1024,
                                         .max_connections = 4};
    h2_server = mc_http_server_new(&h2_net, &scfg);
    assert_non_null(h2_server);
    h2_answered = 0;
    h2_expected = n;
}

static void run_h2(void)
{
    (void)mem_script_of; /* the fuzz targets' cut; here a fixed one */
    mem_serve_script = (struct mem_script){(const uint8_t *)text, text_len, 32 * (9 + 14), 0};
    mc_h1_accept(h2_server, NULL);
    mem_pump(&loop, 1000000);
}

static void h2_close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void finish_h2(void)
{
    assert_int_equal(h2_answered, h2_expected);
    mc_http_server_free(h2_server);
    mem_pump(&loop, 1000);
    uv_walk(&loop, h2_close_walk, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    mc_net_close(&h2_net);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(mem_conn_count, 0);
    mc_buf_close(&mem_out);
    finish_text();
}

static const struct row rows[] = {
    {"register N nodes", 4000, prep_registry, run_register, finish_registry},
    {"deregister N nodes", 4000, prep_deregister, run_deregister, finish_registry},
    {"move N nodes to a version", 4000, prep_deregister, run_move, finish_registry},
    {"read a service of N nodes", 4000, prep_deregister, run_read, finish_registry},
    {"decode N nodes", 4000, prep_registry, run_from_json, finish_registry},
    {"/rpc body of N members", 4000, prep_members, run_members, finish_text},
    {"form of N pairs", 4000, prep_form, run_form, finish_text},
    {"N WebSocket frames", 8000, prep_frames, run_frames, finish_text},
    {"publish to N subscribers", 4000, prep_fanout, run_fanout, finish_fanout},
    {"N streams on one HTTP/2 conn", 2000, prep_h2, run_h2, finish_h2},
};

static void test_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        check_row(&rows[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_rows)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
