/* The sidecar's whole API (memory registry and broker, /rpc, path calls, the proxy, gRPC over
 * the HTTP/2 client, WebSocket upgrades, stats) wired as the daemon wires it, over the in-memory
 * transport of mem_transport.h, for the fuzz targets that drive its server (fuzz_h1, fuzz_h2).
 * Calls to nodes dial through the same transport and are refused. Header-only: each target
 * includes it once. */
#ifndef FUZZ_SIDECAR_HARNESS_H
#define FUZZ_SIDECAR_HARNESS_H

#include <assert.h>
#include <string.h>

#include "api/api.h"
#include "broker/broker.h"
#include "conf/conf.h"
#include "http/h1.h"
#include "http/h2_client.h"
#include "lb/lb.h"
#include "mem_transport.h"
#include "registry/registry.h"
#include "rpc/caller.h"
#include "stats/stats.h"
#include "upstream/upstream.h"
#include "util/clock.h"
#include "ws/hub.h"

#define FUZZ_SIDECAR_MAX_ROUTES 32

struct fuzz_sidecar {
    uv_loop_t loop;
    struct mc_net net;
    struct mc_config cfg;
    struct mc_stats stats;
    struct mc_http_client *client;
    struct mc_h2_client *h2;
    struct mc_registry *registry;
    struct mc_broker *broker;
    struct mc_ws_hub *hub;
    struct mc_lb *lb;
    struct mc_upstream *upstream;
    struct mc_caller *caller;
    struct mc_api api;
    struct mc_http_route routes[FUZZ_SIDECAR_MAX_ROUTES];
    struct mc_http_server *server;
};

static void fuzz_sidecar_close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Starts everything in f (which must not move until fuzz_sidecar_stop); variant picks the
 * --handler (rpc, proxy, auto), so that the input chooses it. Clears mem_out. */
static void fuzz_sidecar_start(struct fuzz_sidecar *f, size_t variant)
{
    static const char *const handlers[] = {"--handler=rpc", "--handler=proxy", "--handler=auto"};
    memset(f, 0, sizeof *f);
    mc_log_set_level(MC_LOG_ERROR);
    mc_config_init(&f->cfg);
    char *const argv[] = {"micro",          (char *)handlers[variant % 3],
                          "--enable_stats", "--max_body_size=65536",
                          "--retries=1",    NULL};
    int parsed = mc_config_parse(&f->cfg, 5, argv, NULL, NULL, 0);
    assert(parsed == 0);

    uv_loop_init(&f->loop);
    f->net.loop = &f->loop;
    mc_buf_init(&mem_out);
    mem_out_total = 0;
    mem_refuse_dials = 1;

    mc_stats_init(&f->stats, &f->loop, uv_now(&f->loop), 0);
    struct mc_http_client_config ccfg = {.transport = &mem_type};
    f->client = mc_http_client_new(&f->net, &ccfg);
    struct mc_h2_client_config h2cfg = {.transport = &mem_type};
    f->h2 = mc_h2_client_new(&f->net, &h2cfg);
    struct mc_registry_config rcfg = {.loop = &f->loop, .client = f->client, .close_timeout_ms = 1};
    char err[256];
    f->registry = mc_registry_new(mc_registry_backend_find("memory"), &rcfg, err, sizeof err);
    assert(f->registry);
    mc_registry_start(f->registry);
    struct mc_broker_settings bset = {.max_message = f->cfg.broker_max_message};
    f->broker = mc_broker_new(mc_broker_backend_find("memory"), &f->loop, &bset);
    int started = mc_broker_start(f->broker);
    assert(started == 0);
    f->hub = mc_ws_hub_new(&f->loop);
    f->lb = mc_lb_new(mc_lb_selector_find("roundrobin"), &mc_clock_monotonic, 1);
    struct mc_upstream_config upcfg = {.request_timeout_ms = f->cfg.request_timeout_ms,
                                       .retries = f->cfg.retries};
    f->upstream = mc_upstream_new(&f->loop, f->registry, f->lb, &upcfg);
    struct mc_caller_config callcfg = {.dial_timeout_ms = f->cfg.dial_timeout_ms,
                                       .max_reply = f->cfg.max_body_size};
    f->caller = mc_caller_new(&f->loop, f->upstream, f->client, &callcfg);
    f->api = (struct mc_api){.net = &f->net,
                             .config = &f->cfg,
                             .registry = f->registry,
                             .client = f->client,
                             .broker = f->broker,
                             .caller = f->caller,
                             .lb = f->lb,
                             .ws_hub = f->hub,
                             .stats = &f->stats,
                             .h2 = f->h2};
    size_t nroutes = mc_api_routes(&f->api, f->routes, FUZZ_SIDECAR_MAX_ROUTES);
    struct mc_http_server_config scfg = {
        .address = "127.0.0.1:0",
        .transport = &mem_type,
        .routes = f->routes,
        .route_count = nroutes,
        .max_body_size = f->cfg.max_body_size,
        .max_connections = 4,
        .cors = "*",
        .observer = mc_stats_observe,
        .observer_ctx = &f->stats,
    };
    f->server = mc_http_server_new(&f->net, &scfg);
    assert(f->server);
    mc_stats_attach(&f->stats, f->server, f->hub, f->broker, f->registry);
}

/* Shuts down as the sidecar does, lets every close callback run, and checks that nothing is
 * left: no handle, no connection. Frees mem_out. */
static void fuzz_sidecar_stop(struct fuzz_sidecar *f)
{
    mc_http_server_free(f->server);
    mc_h2_client_free(f->h2);
    mc_api_proxy_close_tunnels(&f->api);
    mc_stats_attach(&f->stats, NULL, NULL, NULL, NULL);
    mc_ws_hub_free(f->hub);
    mc_broker_free(f->broker);
    mc_registry_free(f->registry, NULL, NULL);
    mc_http_client_free(f->client);
    mem_pump(&f->loop, 1000);
    uv_walk(&f->loop, fuzz_sidecar_close_walk_cb, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    mc_net_close(&f->net);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int closed = uv_loop_close(&f->loop);
    assert(closed == 0);
    assert(mem_conn_count == 0);
    mc_api_proxy_free_spares(&f->api);
    mc_caller_free(f->caller);
    mc_upstream_free(f->upstream);
    mc_lb_free(f->lb);
    mc_config_close(&f->cfg);
    mc_buf_close(&mem_out);
}

#endif
