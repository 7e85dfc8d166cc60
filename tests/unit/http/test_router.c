/* Unit tests for src/http/router: exact paths before the fallback, 404/405 verdicts, the
 * OPTIONS preflight on any path, the Allow text, and the router's own answers, seen through a
 * fake codec (the router is protocol-neutral: it only calls the response API). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/router.h"
#include "util/alloc.h"

/* ---- a fake codec that records the one complete response ---- */

struct answer {
    int status;
    char content_type[64];
    char allow[128];
    char body[256];
};

static void fake_respond(struct mc_http_request *req, int status, const char *content_type,
                         const struct mc_http_header *extra, size_t extra_count, const void *body,
                         size_t len)
{
    struct answer *a = req->stream;
    a->status = status;
    snprintf(a->content_type, sizeof a->content_type, "%s", content_type ? content_type : "");
    const char *allow = mc_http_headers_find(extra, extra_count, "Allow");
    snprintf(a->allow, sizeof a->allow, "%s", allow ? allow : "");
    snprintf(a->body, sizeof a->body, "%.*s", (int)len, (const char *)body);
    req->responded = 1;
}

static const struct mc_http_stream_ops fake_ops = {.respond = fake_respond};

static void answer(const struct mc_http_route *route, enum mc_http_route_verdict v,
                   struct answer *a)
{
    memset(a, 0, sizeof *a);
    struct mc_http_request req = {.ops = &fake_ops, .stream = a};
    mc_http_router_answer(&req, route, v);
    assert_true(req.responded);
}

static void handler(struct mc_http_request *req, void *ctx)
{
    (void)req;
    (void)ctx;
}

static const struct mc_http_route routes[] = {
    {"/registry", MC_HTTP_GET | MC_HTTP_POST | MC_HTTP_DELETE, 0, handler, NULL},
    {"/rpc", MC_HTTP_POST, 0, handler, NULL},
    {NULL, MC_HTTP_ANY, MC_HTTP_ROUTE_STREAM, handler, NULL}, /* the fallback, listed early */
    {"/health", MC_HTTP_GET, 0, handler, NULL},
};

static enum mc_http_route_verdict match(const struct mc_http_route *table, size_t n, unsigned m,
                                        const char *path, const struct mc_http_route **r)
{
    return mc_http_router_match(table, n, m, path, strlen(path), r);
}

static void test_match(void **state)
{
    (void)state;
    const struct mc_http_route *r;
    size_t n = sizeof routes / sizeof routes[0];
    assert_int_equal(match(routes, n, MC_HTTP_GET, "/registry", &r), MC_HTTP_ROUTE_RUN);
    assert_ptr_equal(r, &routes[0]);
    /* an exact path after the fallback in the table still wins */
    assert_int_equal(match(routes, n, MC_HTTP_GET, "/health", &r), MC_HTTP_ROUTE_RUN);
    assert_ptr_equal(r, &routes[3]);
    /* GET brings HEAD */
    assert_int_equal(match(routes, n, MC_HTTP_HEAD, "/health", &r), MC_HTTP_ROUTE_RUN);
    /* a prefix is not the path */
    assert_int_equal(match(routes, n, MC_HTTP_GET, "/rpcx", &r), MC_HTTP_ROUTE_RUN);
    assert_ptr_equal(r, &routes[2]);
    assert_int_equal(match(routes, n, MC_HTTP_GET, "/rpc", &r), MC_HTTP_ROUTE_NOT_ALLOWED);
    assert_ptr_equal(r, &routes[1]);
    assert_int_equal(match(routes, n, MC_HTTP_OPTIONS, "/rpc", &r), MC_HTTP_ROUTE_OPTIONS);
    assert_ptr_equal(r, &routes[1]);
    /* no fallback: 404, and OPTIONS is still a preflight */
    assert_int_equal(match(routes, 2, MC_HTTP_GET, "/nope", &r), MC_HTTP_ROUTE_NOT_FOUND);
    assert_null(r);
    assert_int_equal(match(routes, 2, MC_HTTP_OPTIONS, "/nope", &r), MC_HTTP_ROUTE_OPTIONS);
    assert_null(r);
}

static void test_allow_text(void **state)
{
    (void)state;
    struct mc_buf b;
    mc_buf_init(&b);
    mc_http_allow_text(&b, MC_HTTP_GET | MC_HTTP_POST);
    assert_string_equal(b.data, "GET, HEAD, POST, OPTIONS");
    mc_buf_reset(&b);
    mc_http_allow_text(&b, MC_HTTP_DELETE);
    assert_string_equal(b.data, "DELETE, OPTIONS");
    mc_buf_reset(&b);
    mc_http_allow_text(&b, MC_HTTP_ANY);
    assert_string_equal(b.data, "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH");
    mc_buf_close(&b);
}

static void test_answers(void **state)
{
    (void)state;
    struct answer a;
    answer(&routes[1], MC_HTTP_ROUTE_OPTIONS, &a);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.allow, "POST, OPTIONS");
    assert_string_equal(a.body, "");
    answer(NULL, MC_HTTP_ROUTE_OPTIONS, &a); /* a path no route serves: everything */
    assert_string_equal(a.allow, "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH");
    answer(&routes[1], MC_HTTP_ROUTE_NOT_ALLOWED, &a);
    assert_int_equal(a.status, 405);
    assert_string_equal(a.content_type, "application/json");
    assert_string_equal(a.allow, "POST, OPTIONS");
    assert_string_equal(a.body, "{\"id\":\"go.micro.sidecar\",\"code\":405,\"detail\":\"method not "
                                "allowed\",\"status\":\"Method Not Allowed\"}");
    answer(NULL, MC_HTTP_ROUTE_NOT_FOUND, &a);
    assert_int_equal(a.status, 404);
    assert_string_equal(a.allow, "");
    assert_string_equal(a.body, "{\"id\":\"go.micro.sidecar\",\"code\":404,\"detail\":\"not "
                                "found\",\"status\":\"Not Found\"}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_allow_text),
        cmocka_unit_test(test_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
