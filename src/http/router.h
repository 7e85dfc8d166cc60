/* The route table: exact paths plus one fallback, the method check (405 with Allow), the
 * OPTIONS preflight any route answers, and 404. Protocol-neutral: it sees only requests. */
#ifndef MC_HTTP_ROUTER_H
#define MC_HTTP_ROUTER_H

#include <stddef.h>

#include "http/request.h"
#include "util/buf.h"

/* Runs a route. The handler answers now or later through the response API (or takes the
 * connection over with mc_http_upgrade); until then req stays valid, unless the client goes
 * away, in which case req->on_abort runs and req must not be touched afterwards. */
typedef void (*mc_http_handler_cb)(struct mc_http_request *req, void *ctx);

enum {
    MC_HTTP_ROUTE_STREAM = 1 << 0, /* handler runs at end of head; body via on_body */
};
/* A route's family for the stats (enum mc_stats_route), carried in the upper bits of its
 * flags and copied into each request it runs (req->family). 0: "other". */
#define MC_HTTP_ROUTE_FAMILY(f) ((unsigned)(f) << 8)
#define MC_HTTP_ROUTE_FAMILY_OF(flags) ((unsigned)(flags) >> 8)

struct mc_http_route {
    const char *path; /* exact path; NULL marks the fallback (any other path) */
    unsigned methods; /* MC_HTTP_* bits the route answers; others get 405 + Allow */
    unsigned flags;
    mc_http_handler_cb handler;
    void *ctx;
};

/* What the router decided for a request head. */
enum mc_http_route_verdict {
    MC_HTTP_ROUTE_RUN = 0,       /* *route runs the request */
    MC_HTTP_ROUTE_OPTIONS = 200, /* a preflight: answered with Allow by mc_http_router_answer */
    MC_HTTP_ROUTE_NOT_FOUND = 404,
    MC_HTTP_ROUTE_NOT_ALLOWED = 405,
};

/* Picks the route for method_bit on path[0..len) among routes[0..count) (the exact path, else
 * the fallback) into *route (NULL when none). */
enum mc_http_route_verdict mc_http_router_match(const struct mc_http_route *routes, size_t count,
                                                unsigned method_bit, const char *path, size_t len,
                                                const struct mc_http_route **route);
/* Answers a verdict other than MC_HTTP_ROUTE_RUN: 200 + Allow for OPTIONS, 405 + Allow, or
 * 404, as go-micro error JSON where there is a body. */
void mc_http_router_answer(struct mc_http_request *req, const struct mc_http_route *route,
                           enum mc_http_route_verdict verdict);
/* Appends the Allow value for a route's methods ("GET, HEAD, OPTIONS"): GET brings HEAD, and
 * OPTIONS is always allowed. */
void mc_http_allow_text(struct mc_buf *out, unsigned methods);

#endif
