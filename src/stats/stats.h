/* The sidecar's own counters, in fixed memory whatever the traffic: requests by status class in
 * 5-second buckets (the 2016 sidecar's /stats counters, the last 23 kept), request latency per
 * route family, call latency per called service (the first MC_STATS_MAX_SERVICES names seen, the
 * rest pooled as "_other", so no client can grow the series), and, read when a snapshot is taken,
 * open connections, WebSocket sessions, the broker's counters, the registry's size, the app's
 * health and the RSS. Recording is a few increments on the loop's thread: no allocation, no
 * lock, no formatting. The snapshot renderings are /stats' JSON (stats.c) and /metrics'
 * Prometheus text (prometheus.c); the dashboard page is dashboard.c. */
#ifndef MC_STATS_STATS_H
#define MC_STATS_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "stats/histogram.h"
#include "util/buf.h"

struct json_t;
struct mc_http_request;
struct mc_http_server;
struct mc_ws_hub;
struct mc_broker;
struct mc_registry;

#define MC_STATS_BUCKET_MS 5000 /* one counters bucket */
#define MC_STATS_BUCKETS 23     /* counters buckets kept (the current one included) */
#define MC_STATS_MAX_SERVICES 64
#define MC_STATS_SERVICE_NAME_MAX 128 /* longer names are pooled as "_other" */
#define MC_STATS_OTHER_SERVICE "_other"

/* Route families; a route row's (and a request's) `family` holds one. 0 is "other" so that
 * anything the router answers itself (404, 405, OPTIONS) counts there. */
enum mc_stats_route {
    MC_STATS_ROUTE_OTHER = 0,
    MC_STATS_ROUTE_REGISTRY,
    MC_STATS_ROUTE_RPC,
    MC_STATS_ROUTE_PATH, /* --handler=rpc path calls */
    MC_STATS_ROUTE_PROXY,
    MC_STATS_ROUTE_BROKER,
    MC_STATS_ROUTE_HEALTH,
    MC_STATS_ROUTES
};
/* Label values, by enum mc_stats_route: "other", "registry", "rpc", "path", "proxy", ... */
extern const char *const mc_stats_route_names[MC_STATS_ROUTES];

#define MC_STATS_CLASSES 5 /* 1xx .. 5xx */

enum mc_stats_health {
    MC_STATS_HEALTH_NONE = 0, /* no --healthcheck_url */
    MC_STATS_HEALTH_STARTING, /* checking, not passed yet */
    MC_STATS_HEALTH_UP,
    MC_STATS_HEALTH_DOWN,
};

struct mc_stats_bucket {
    uint64_t timestamp; /* unix seconds of the bucket's start, a multiple of 5 */
    uint64_t codes[MC_STATS_CLASSES];
    uint64_t total;
};

struct mc_stats_service {
    char name[MC_STATS_SERVICE_NAME_MAX];
    struct mc_histogram latency; /* whole calls, retries included */
    uint64_t failures;           /* calls that ended without a good answer */
};

/* gRPC calls by (service, method): the first MC_STATS_MAX_GRPC pairs seen, the rest (and calls
 * to no known service) pooled as ("_other", "_other"), each counted by grpc-status. */
#define MC_STATS_MAX_GRPC 64
#define MC_STATS_GRPC_NAME_MAX 128 /* longer service or method names are pooled */
#define MC_STATS_GRPC_CODES 17     /* grpc-status 0 OK .. 16 UNAUTHENTICATED */
struct mc_stats_grpc {
    char service[MC_STATS_GRPC_NAME_MAX];
    char method[MC_STATS_GRPC_NAME_MAX];
    uint64_t codes[MC_STATS_GRPC_CODES];
};
/* Requests by protocol: HTTP/1.x and HTTP/2 (req->http_major). */
enum { MC_STATS_PROTO_HTTP1 = 0, MC_STATS_PROTO_HTTP2, MC_STATS_PROTOS };
extern const char *const mc_stats_proto_names[MC_STATS_PROTOS];

/* What a snapshot reads from the daemon's modules (zeros where a source is not attached). */
struct mc_stats_gauges {
    uint64_t connections, websockets;
    uint64_t published, delivered, subscribers, topics, drops;
    uint64_t services, nodes;
    uint64_t rss_bytes;
};

struct mc_stats {
    uv_loop_t *loop;
    uint64_t started_unix_ms, started_loop_ms;
    /* counters: ring[head] is the current bucket, filled buckets end at head */
    struct mc_stats_bucket ring[MC_STATS_BUCKETS];
    size_t head, filled;
    uint64_t bucket_end_ms; /* loop time at which ring[head] ends */
    uint64_t requests[MC_STATS_ROUTES][MC_STATS_CLASSES];
    struct mc_histogram routes[MC_STATS_ROUTES];
    /* services[0..service_count) by first sight, services[MC_STATS_MAX_SERVICES] the pool */
    struct mc_stats_service services[MC_STATS_MAX_SERVICES + 1];
    size_t service_count;
    uint8_t index[2 * MC_STATS_MAX_SERVICES]; /* open addressing: slot + 1, 0 = empty */
    uint64_t protocols[MC_STATS_PROTOS];
    /* grpc[0..grpc_count) by first sight, grpc[MC_STATS_MAX_GRPC] the pool */
    struct mc_stats_grpc grpc[MC_STATS_MAX_GRPC + 1];
    size_t grpc_count;
    uint8_t grpc_index[2 * MC_STATS_MAX_GRPC]; /* open addressing: slot + 1, 0 = empty */
    enum mc_stats_health health;
    /* sources, borrowed (set by mc_stats_attach; each may be NULL) */
    struct mc_http_server *server;
    struct mc_ws_hub *hub;
    struct mc_broker *broker;
    struct mc_registry *registry;
};

/* Starts the counters at loop time now_ms, which is unix time now_unix_ms. loop (borrowed) is
 * what the observer and the call hook read the time from; NULL for tests that pass times. */
void mc_stats_init(struct mc_stats *s, uv_loop_t *loop, uint64_t now_ms, uint64_t now_unix_ms);
/* Borrows the modules a snapshot reads; each must outlive the stats or be detached (NULL). */
void mc_stats_attach(struct mc_stats *s, struct mc_http_server *server, struct mc_ws_hub *hub,
                     struct mc_broker *broker, struct mc_registry *registry);

/* Counts a finished request of route family `family` with status at loop time now_ms, taking
 * duration_us. */
void mc_stats_record_request(struct mc_stats *s, unsigned family, int status, uint64_t now_ms,
                             uint64_t duration_us);
/* The server's observer (ctx: the stats): mc_stats_record_request for req, timed by the loop. */
void mc_stats_observe(void *ctx, const struct mc_http_request *req);
/* The slot of service name: its own while fewer than MC_STATS_MAX_SERVICES names were seen
 * (one hash lookup), else the "_other" pool. Never fails, never allocates. */
struct mc_stats_service *mc_stats_service(struct mc_stats *s, const char *name);
/* The upstream's call hook (ctx: the stats): a call of service ended after duration_us, ok or
 * not. */
void mc_stats_call_done(void *ctx, const char *service, uint64_t duration_us, int ok);

/* Counts a gRPC call of service (NULL: no known service: pooled) and method (the request path)
 * that ended with grpc_status (outside 0..16: 2 UNKNOWN). Never allocates. */
void mc_stats_grpc_call(struct mc_stats *s, const char *service, const char *method,
                        int grpc_status);

/* Moves the counters on to loop time now_ms (empty buckets for the time without requests). */
void mc_stats_advance(struct mc_stats *s, uint64_t now_ms);
/* Reads the attached sources and the RSS. */
void mc_stats_gauges(const struct mc_stats *s, struct mc_stats_gauges *g);

/* /stats' JSON at loop time now_ms (a new reference): the 2016 fields started, memory, threads,
 * gc_pause and counters, then uptime, connections, websockets, broker, registry, health,
 * totals, routes and services (latency percentiles in milliseconds). */
struct json_t *mc_stats_json(struct mc_stats *s, uint64_t now_ms);
/* Appends /metrics (Prometheus text format 0.0.4) at loop time now_ms to out. */
void mc_stats_prometheus(struct mc_stats *s, uint64_t now_ms, struct mc_buf *out);

/* The dashboard page (a NUL-terminated HTML document, no external resources) and its length. */
extern const char mc_stats_dashboard_html[];
extern const size_t mc_stats_dashboard_html_len;

#endif
