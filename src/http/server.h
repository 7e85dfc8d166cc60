/* The HTTP server: the listener, the connection count and limit, drain and free, and the
 * settings every connection shares (routes, --cors, --max_body_size, the access log and the
 * observer). Each accepted connection is spoken by a codec (HTTP/1: http/h1.c) that produces
 * protocol-neutral requests (http/request.h) for the router (http/router.h). Including this
 * header brings the whole handler-facing API: request, router, errors, cors. */
#ifndef MC_HTTP_SERVER_H
#define MC_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "http/cors.h"
#include "http/errors.h"
#include "http/request.h"
#include "http/router.h"
#include "net/conn.h"
#include "util/buf.h"

#define MC_HTTP_MAX_HEAD (64 * 1024)       /* whole request head -> 431 */
#define MC_HTTP_MAX_HEADER_LINE (8 * 1024) /* one header line -> 431 */
#define MC_HTTP_MAX_HEADERS 100            /* header count -> 431 */
#define MC_HTTP_HEAD_TIMEOUT_MS 10000      /* head not complete -> 408 */
/* A request body (when the config leaves them 0): silent this long, or past it slower on
 * average than the rate in bytes/s -> 408 (http/body_clock.h, --body_timeout,
 * --body_min_rate). */
#define MC_HTTP_BODY_TIMEOUT_MS 20000
#define MC_HTTP_BODY_MIN_RATE 500
#define MC_HTTP_IDLE_TIMEOUT_MS 75000 /* idle keep-alive connection -> silent close */
/* Backpressure on a pipelining client: the next request is not read while more than this
 * much output is unsent, or once this many answers were queued since the output last
 * drained; it resumes when the client has taken everything (the kernel's send buffer keeps
 * the pipe full meanwhile). */
#define MC_HTTP_OUTPUT_HIGH_WATER (256 * 1024)
#define MC_HTTP_PIPELINE_BATCH 32

struct mc_http_server;

/* Observes every completed response (stats, access log). */
typedef void (*mc_http_observer_cb)(void *ctx, const struct mc_http_request *req);

struct mc_http_server_config {
    const char *address;                  /* "host:port" or ":port" */
    const struct mc_conn_type *transport; /* what accepted connections speak; NULL: TCP */
    const struct mc_http_route *routes;
    size_t route_count;
    uint64_t max_body_size;
    uint64_t body_timeout_ms; /* 0: MC_HTTP_BODY_TIMEOUT_MS */
    uint64_t body_min_rate;   /* bytes/s; 0: MC_HTTP_BODY_MIN_RATE (body_rate_off: none) */
    int body_rate_off;        /* no rate rule, only the silence bound */
    unsigned max_connections;
    const char *cors; /* comma list of origins, "*" for any; NULL or "" for none */
    FILE *access_log; /* NULL: off; not owned */
    mc_http_observer_cb observer;
    void *observer_ctx;
};

/* Allocates a server on net's loop; copies what it keeps from config (routes are referenced:
 * they must outlive the server). Returns NULL only for a bad CORS list. */
struct mc_http_server *mc_http_server_new(struct mc_net *net,
                                          const struct mc_http_server_config *config);
/* Binds and listens. 0, or a libuv error with a human line in err. */
int mc_http_server_listen(struct mc_http_server *s, char *err, size_t errlen);
/* The port actually bound (for ":0"). */
int mc_http_server_port(const struct mc_http_server *s);
/* Stops accepting, closes idle connections and asks busy ones to close after their
 * response; done(ctx) runs once every connection is gone (at once if none). Upgraded
 * connections are the upgrader's to close. */
void mc_http_server_drain(struct mc_http_server *s, void (*done)(void *ctx), void *ctx);
/* Closes every connection now and the listener; the server is freed after the loop runs the
 * close callbacks. */
void mc_http_server_free(struct mc_http_server *s);
/* Live connection count (HTTP, not upgraded). */
size_t mc_http_server_connections(const struct mc_http_server *s);

#endif
