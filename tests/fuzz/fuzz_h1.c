/* libFuzzer target: arbitrary client bytes into the sidecar's real HTTP/1 server, with the
 * whole API behind it (memory registry and broker, /rpc, path calls, the proxy, WebSocket
 * upgrades), over the in-memory transport: pipelined requests, chunked bodies, upgrades and
 * half-closes take the real code path. Calls to nodes dial through the same transport and are
 * refused, so a run never leaves the process. The input is the byte stream a client sends; how
 * it is cut into reads, whether EOF follows and the --handler are derived from its bytes.
 * Whatever the sidecar writes back must be HTTP/1.1 responses (or a WebSocket stream after a
 * 101), nothing may crash or leak, and everything must be released at the end. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "broker/broker.h"
#include "conf/conf.h"
#include "http/h1.h"
#include "http/h2.h"
#include "lb/lb.h"
#include "mem_transport.h"
#include "registry/registry.h"
#include "rpc/caller.h"
#include "stats/stats.h"
#include "upstream/upstream.h"
#include "util/clock.h"
#include "ws/hub.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

int FUZZ_ENTRY(const uint8_t *data, size_t size);

#define MAX_ROUTES 32

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    static const char *const handlers[] = {"--handler=rpc", "--handler=proxy", "--handler=auto"};
    mc_log_set_level(MC_LOG_ERROR);
    struct mc_config cfg;
    mc_config_init(&cfg);
    char *const argv[] = {"micro",          (char *)handlers[(size / 7) % 3],
                          "--enable_stats", "--max_body_size=65536",
                          "--retries=1",    NULL};
    int parsed = mc_config_parse(&cfg, 5, argv, NULL, NULL, 0);
    assert(parsed == 0);

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct mc_net net;
    memset(&net, 0, sizeof net);
    net.loop = &loop;
    mc_buf_init(&mem_out);
    mem_out_total = 0;
    mem_refuse_dials = 1;

    struct mc_stats stats;
    mc_stats_init(&stats, &loop, uv_now(&loop), 0);
    struct mc_http_client_config ccfg = {.transport = &mem_type};
    struct mc_http_client *client = mc_http_client_new(&net, &ccfg);
    struct mc_registry_config rcfg = {.loop = &loop, .client = client, .close_timeout_ms = 1};
    char err[256];
    struct mc_registry *registry =
        mc_registry_new(mc_registry_backend_find("memory"), &rcfg, err, sizeof err);
    assert(registry);
    mc_registry_start(registry);
    struct mc_broker_settings bset = {.max_message = cfg.broker_max_message};
    struct mc_broker *broker = mc_broker_new(mc_broker_backend_find("memory"), &loop, &bset);
    int started = mc_broker_start(broker);
    assert(started == 0);
    struct mc_ws_hub *hub = mc_ws_hub_new(&loop);
    struct mc_lb *lb = mc_lb_new(mc_lb_selector_find("roundrobin"), &mc_clock_monotonic, 1);
    struct mc_upstream_config upcfg = {.request_timeout_ms = cfg.request_timeout_ms,
                                       .retries = cfg.retries};
    struct mc_upstream *upstream = mc_upstream_new(&loop, registry, lb, &upcfg);
    struct mc_caller_config callcfg = {.dial_timeout_ms = cfg.dial_timeout_ms,
                                       .max_reply = cfg.max_body_size};
    struct mc_caller *caller = mc_caller_new(&loop, upstream, client, &callcfg);
    struct mc_api api = {.net = &net,
                         .config = &cfg,
                         .registry = registry,
                         .client = client,
                         .broker = broker,
                         .caller = caller,
                         .lb = lb,
                         .ws_hub = hub,
                         .stats = &stats};
    struct mc_http_route routes[MAX_ROUTES];
    size_t nroutes = mc_api_routes(&api, routes, MAX_ROUTES);
    struct mc_http_server_config scfg = {
        .address = "127.0.0.1:0",
        .transport = &mem_type,
        .routes = routes,
        .route_count = nroutes,
        .max_body_size = cfg.max_body_size,
        .max_connections = 4,
        .cors = "*",
        .observer = mc_stats_observe,
        .observer_ctx = &stats,
    };
    struct mc_http_server *server = mc_http_server_new(&net, &scfg);
    assert(server);
    mc_stats_attach(&stats, server, hub, broker, registry);

    /* One client connection, as the listener would hand it over. */
    mem_serve_script = mem_script_of(data, size);
    mc_h1_accept(server, NULL);
    mem_pump(&loop, 200000);

    if (getenv("FUZZ_PRINT")) /* to see what a seed exercises: FUZZ_PRINT=1 fuzz_h1 FILE */
        fprintf(stderr, "%.*s\n", (int)mem_out.len, mem_out.data);
    /* The sidecar answers HTTP/1.1 (a WebSocket stream follows a 101), or, to a connection
     * that opens with the HTTP/2 preface, HTTP/2: its SETTINGS frame comes first. */
    if (mem_out.len > 0 && mc_h2_preface_match((const char *)data, size) == 1)
        assert(mem_out.len >= 9 && (unsigned char)mem_out.data[3] == 0x4 /* SETTINGS */);
    else if (mem_out.len > 0)
        assert(mem_out.len >= 9 && memcmp(mem_out.data, "HTTP/1.1 ", 9) == 0);

    /* Shut down as the sidecar does, then let every close callback run. */
    mc_http_server_free(server);
    mc_api_proxy_close_tunnels(&api);
    mc_stats_attach(&stats, NULL, NULL, NULL, NULL);
    mc_ws_hub_free(hub);
    mc_broker_free(broker);
    mc_registry_free(registry, NULL, NULL);
    mc_http_client_free(client);
    mem_pump(&loop, 1000);
    uv_walk(&loop, close_walk_cb, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    mc_net_close(&net);
    uv_run(&loop, UV_RUN_DEFAULT);
    int closed = uv_loop_close(&loop);
    assert(closed == 0);
    assert(mem_conn_count == 0);
    mc_caller_free(caller);
    mc_upstream_free(upstream);
    mc_lb_free(lb);
    mc_config_close(&cfg);
    mc_buf_close(&mem_out);
    return 0;
}
