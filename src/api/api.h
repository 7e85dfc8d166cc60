/* The sidecar's HTTP API: one route table, one handler file per route family. Handlers reach
 * the daemon's modules through struct mc_api, never through globals. */
#ifndef MC_API_API_H
#define MC_API_API_H

#include <stddef.h>

#include "conf/conf.h"
#include "http/client.h"
#include "http/server.h"
#include "registry/registry.h"

struct mc_broker;
struct mc_ws_hub;
struct mc_caller;
struct mc_lb;
struct mc_backend_state;
struct mc_stats;
struct mc_h2_client;

struct mc_api {
    struct mc_net *net;
    const struct mc_config *config;
    struct mc_registry *registry;
    struct mc_http_client *client;
    struct mc_broker *broker;
    struct mc_caller *caller;        /* calls to services: /rpc, path calls */
    struct mc_lb *lb;                /* node choice, shared by calls and the proxy */
    struct mc_ws_hub *ws_hub;        /* every live WebSocket session (broker, registry watch) */
    struct mc_proxy_tunnel *tunnels; /* the proxy's open 101 tunnels (src/api/proxy_api.c) */
    uv_timer_t tunnel_sweep;         /* closes idle tunnels; initialised with the first one */
    int tunnel_sweep_ready;
    struct mc_stats *stats;  /* the counters behind /stats and /metrics */
    struct mc_h2_client *h2; /* HTTP/2 to nodes: gRPC (src/api/grpc_api.c) */
    /* Finished proxy states kept for reuse (src/api/proxy_api.c); freed by
     * mc_api_proxy_free_spares. Zero-initialised with the rest. */
    struct mc_proxy *spare_proxies;
    unsigned spare_proxy_count;
};

/* Fills routes (up to max) with the API's routes, each bound to api, and returns the count.
 * api must outlive the server using the routes. */
size_t mc_api_routes(struct mc_api *api, struct mc_http_route *routes, size_t max);

/* Route handlers (ctx is the struct mc_api). */
void mc_api_registry(struct mc_http_request *req, void *ctx);
void mc_api_health(struct mc_http_request *req, void *ctx);
void mc_api_root(struct mc_http_request *req, void *ctx);
void mc_api_fallback(struct mc_http_request *req, void *ctx);
void mc_api_broker(struct mc_http_request *req, void *ctx);
void mc_api_rpc(struct mc_http_request *req, void *ctx);
/* GET /stats (--enable_stats): the JSON snapshot for a client that sends or accepts
 * application/json, else the dashboard page (src/api/stats_api.c). */
void mc_api_stats(struct mc_http_request *req, void *ctx);
/* GET /metrics: the Prometheus text exposition format 0.0.4. */
void mc_api_metrics(struct mc_http_request *req, void *ctx);
/* --handler=rpc: the path names the call (src/api/rpc_api.c). */
void mc_api_path_rpc(struct mc_http_request *req, struct mc_api *api);
/* --handler=proxy: a streaming route that reverse-proxies to <namespace>.<segment>. */
void mc_api_proxy(struct mc_http_request *req, void *ctx);
/* --handler=auto: a streaming route that proxies (as mc_api_proxy) when the service named by
 * the path has a node with metadata protocol=http, and otherwise gathers the body (bounded by
 * --max_body_size: 413) and makes the path call of --handler=rpc. */
void mc_api_auto(struct mc_http_request *req, void *ctx);
/* Closes both connections of every open proxy tunnel at once (queued bytes are dropped), and
 * the tunnels' idle timer; each tunnel's memory, and its connections', is released by their
 * close callbacks as the loop runs. For shutdown: the loop must run again afterwards. */
void mc_api_proxy_close_tunnels(struct mc_api *api);
/* Frees the proxy states kept for reuse. For the end: after the loop's last run, when no
 * request can finish any more. */
void mc_api_proxy_free_spares(struct mc_api *api);
/* GET /registry with a WebSocket upgrade: streams watch events (src/api/registry_watch.c). */
void mc_api_registry_watch(struct mc_http_request *req, struct mc_api *api);

/* Parses a request body as JSON whatever its Content-Type; on failure answers 400 with id and
 * returns NULL. The caller decrefs the result. */
struct json_t;
struct json_t *mc_api_parse_json_body(struct mc_http_request *req, const char *id);
/* Answers 200 with the JSON value (not stolen). */
void mc_api_respond_json(struct mc_http_request *req, int status, const struct json_t *value);

#endif
