/* The daemon's wiring and lifecycle. */
#include "sidecar/sidecar.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uuid.h>
#include <uv.h>

#include "api/api.h"
#include "broker/broker.h"
#include "health/checker.h"
#include "http/client.h"
#include "http/h2_client.h"
#include "http/server.h"
#include "http/url.h"
#include "lb/lb.h"
#include "net/tls.h"
#include "registry/registry.h"
#include "rpc/caller.h"
#include "stats/stats.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/log.h"
#include "ws/hub.h"

#define MAX_ROUTES 16
#define EXPIRE_TICK_MS 1000
#define TRIM_EVERY_TICKS 10 /* give freed heap back to the system every 10 s */

/* A node this sidecar registers itself: on the sidecar's lease (kept alive by the registry
 * backend, re-registered by it after a store outage), deregistered on shutdown. */
struct owned_node {
    struct mc_service service; /* exactly one node */
    int active;
};

struct sidecar {
    const struct mc_config *config;
    uv_loop_t loop;
    struct mc_net net;
    struct mc_registry *registry;
    struct mc_http_client *client;
    struct mc_http_server *server;
    struct mc_tls *tls;      /* --enable_tls: the API's certificate and policy; NULL: plain TCP */
    struct mc_h2_client *h2; /* gRPC to nodes */
    struct mc_tls *node_tls; /* h2 by ALPN to "secure":"true" nodes (system CAs); lazy */
    int node_tls_failed;     /* making it failed (logged once): secure nodes are off */
    struct mc_health_checker *checker;
    struct mc_broker *broker;
    struct mc_ws_hub *ws_hub;
    struct mc_lb *lb;
    struct mc_upstream *upstream; /* node choice and retries, for calls and the proxy */
    struct mc_caller *caller;
    struct mc_api api;
    struct mc_stats stats; /* /stats and /metrics: fixed size, recorded on the loop */
    struct mc_http_route routes[MAX_ROUTES];
    FILE *access_log;
    struct owned_node self, app;
    int has_app;
    uv_timer_t expire_timer, drain_timer;
    uv_signal_t sigterm, sigint;
    uv_signal_t sighup; /* reload, never stop (SPEC 9) */
    int stopping;
    int drains_pending; /* HTTP server and WebSocket hub */
    unsigned ticks;
    int finished;
    int exit_code;
};

static void new_uuid(char out[37])
{
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

/* SPEC 1: a registry address may not be empty or a wildcard: use the first non-loopback
 * IPv4 address, else 127.0.0.1. */
static void advertised_host(const char *host, char *out, size_t len)
{
    if (host[0] && strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0) {
        snprintf(out, len, "%s", host);
        return;
    }
    snprintf(out, len, "127.0.0.1");
    uv_interface_address_t *ifs;
    int count;
    if (uv_interface_addresses(&ifs, &count) != 0)
        return;
    for (int i = 0; i < count; i++) {
        if (!ifs[i].is_internal && ifs[i].address.address4.sin_family == AF_INET) {
            uv_ip4_name(&ifs[i].address.address4, out, len);
            break;
        }
    }
    uv_free_interface_addresses(ifs, count);
}

static void owned_node_init(struct owned_node *n, const char *name, const char *version,
                            const char *host, int port)
{
    mc_service_init(&n->service);
    n->service.name = mc_strdup(name);
    n->service.version = mc_strdup(version ? version : "");
    char uuid[37];
    new_uuid(uuid);
    char *id = mc_sprintf("%s-%s", name, uuid);
    mc_service_add_node(&n->service, id, host, port);
    mc_free(id);
}

/* The outcome of an owned node's write: logged, as nobody else waits for it. A failed
 * registration needs no retry here: the node is in the registry's owned table
 * (MC_REGISTRY_PERSIST) and the backend registers it once the store is back. */
struct owned_write {
    char *id;
    int add;
};

static void owned_write_done(void *ctx, int err)
{
    struct owned_write *w = ctx;
    if (err == MC_EUNAVAIL && w->add)
        mc_log_info("registry unavailable: %s is registered once it is back", w->id);
    else if (err < 0)
        mc_log_warn("%s %s failed: %s", w->add ? "registering" : "deregistering", w->id,
                    mc_strerror(err));
    else
        mc_log_info("%s %s", w->add ? "registered" : "deregistered", w->id);
    mc_free(w->id);
    mc_free(w);
}

static void owned_node_write(struct sidecar *sc, struct owned_node *n, int add)
{
    struct owned_write *w = mc_calloc(1, sizeof *w);
    w->id = mc_strdup(n->service.nodes[0].id);
    w->add = add;
    if (add)
        mc_registry_register(sc->registry, &n->service, 0, MC_REGISTRY_PERSIST, owned_write_done,
                             w);
    else
        mc_registry_deregister(sc->registry, &n->service, owned_write_done, w);
}

static void owned_node_register(struct sidecar *sc, struct owned_node *n)
{
    if (n->active)
        return;
    n->active = 1;
    owned_node_write(sc, n, 1);
}

static void owned_node_deregister(struct sidecar *sc, struct owned_node *n)
{
    if (!n->active)
        return;
    n->active = 0;
    owned_node_write(sc, n, 0);
}

static void on_expire_tick(uv_timer_t *t)
{
    struct sidecar *sc = t->data;
    mc_registry_expire(sc->registry);
    /* After a burst (a broker fan-out queues megabytes for a moment) glibc keeps the freed
     * pages; a sidecar should not sit on its high-water mark for the rest of its life. */
    if (++sc->ticks % TRIM_EVERY_TICKS == 0)
        malloc_trim(0);
}

static void on_app_health(void *ctx, int healthy)
{
    struct sidecar *sc = ctx;
    sc->stats.health = healthy ? MC_STATS_HEALTH_UP : MC_STATS_HEALTH_DOWN;
    if (sc->stopping)
        return;
    if (healthy)
        owned_node_register(sc, &sc->app);
    else
        owned_node_deregister(sc, &sc->app);
}

/* ---- shutdown ---- */

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* The registry closed last (its backend may still be revoking leases through the client):
 * only now may the client go and the loop stop. */
static void on_registry_closed(void *ctx)
{
    struct sidecar *sc = ctx;
    mc_http_client_free(sc->client);
    sc->client = NULL;
    uv_stop(&sc->loop);
}

static void finish_shutdown(struct sidecar *sc)
{
    /* Reached from the drain timeout or from the last drain callback, and a module being
     * freed here may still report its drain: only the first call counts. */
    if (sc->finished)
        return;
    sc->finished = 1;
    uv_timer_stop(&sc->drain_timer);
    mc_http_server_free(sc->server);
    sc->server = NULL;
    mc_h2_client_free(sc->h2); /* its streams' requests went with the server */
    sc->h2 = sc->api.h2 = NULL;
    /* Proxy tunnels left the server at their upgrade: the loop's last run must free them. */
    mc_api_proxy_close_tunnels(&sc->api);
    mc_health_checker_free(sc->checker);
    sc->checker = NULL;
    mc_stats_attach(&sc->stats, NULL, NULL, NULL, NULL); /* its sources go now */
    mc_ws_hub_free(sc->ws_hub);
    sc->ws_hub = NULL;
    /* After the hub (its sessions unsubscribe) and while the loop lives: a backend with its
     * own threads (nats) stops them here, bounded, and closes its handles. */
    mc_broker_free(sc->broker);
    sc->broker = NULL;
    /* Nothing reads the registry any more: close it (etcd revokes this sidecar's leases,
     * bounded by --drain_timeout), then on_registry_closed frees the client and stops. */
    uv_timer_stop(&sc->expire_timer);
    struct mc_registry *reg = sc->registry;
    sc->registry = NULL;
    mc_registry_free(reg, on_registry_closed, sc);
}

static void on_drained(void *ctx)
{
    struct sidecar *sc = ctx;
    if (--sc->drains_pending == 0)
        finish_shutdown(sc);
}

static void on_drain_timeout(uv_timer_t *t)
{
    struct sidecar *sc = t->data;
    mc_log_warn("drain timeout: closing %zu connection(s) still busy",
                mc_http_server_connections(sc->server));
    finish_shutdown(sc);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct sidecar *sc = s->data;
    if (sc->stopping) {
        mc_log_warn("second signal %d: exiting now", signum);
        _exit(1);
    }
    sc->stopping = 1;
    mc_log_info("signal %d: shutting down", signum);
    owned_node_deregister(sc, &sc->app);
    owned_node_deregister(sc, &sc->self);
    uv_timer_start(&sc->drain_timer, on_drain_timeout, sc->config->drain_timeout_ms, 0);
    sc->drains_pending = 2;
    mc_ws_hub_close_all(sc->ws_hub, 1001, on_drained, sc);
    mc_http_server_drain(sc->server, on_drained, sc);
}

/* ---- reload ---- */

/* What SIGHUP reloads: the TLS certificate and key (rotated in production). Connections
 * accepted from now on get the new pair, open ones keep theirs; a bad new pair is logged and
 * the old one kept. */
static void reload(struct sidecar *sc)
{
    if (!sc->tls) {
        mc_log_info("SIGHUP received: nothing to reload (TLS is off)");
        return;
    }
    char err[512];
    if (mc_tls_reload(sc->tls, err, sizeof err) < 0)
        mc_log_error("SIGHUP: TLS reload failed, keeping the previous certificate: %s", err);
    else
        mc_log_info("SIGHUP: TLS certificate and key reloaded from %s and %s",
                    sc->config->tls_cert_file, sc->config->tls_key_file);
}

/* SIGHUP's default action would kill the sidecar without a drain, a 1001 or a
 * deregistration (a closed terminal or an operator's reload is not a shutdown). */
static void on_sighup(uv_signal_t *s, int signum)
{
    (void)signum;
    reload(s->data);
}

/* ---- start-up ---- */

static int prepare_app(struct sidecar *sc, char *err, size_t errlen)
{
    const struct mc_config *cfg = sc->config;
    if (!cfg->server_name)
        return 0;
    const char *addr = cfg->server_advertise ? cfg->server_advertise : cfg->server_address;
    char host[256], adv[256];
    int port;
    if (mc_net_split_host_port(addr, host, sizeof host, &port) < 0) {
        snprintf(err, errlen, "invalid value \"%s\" for flag --%s: expected host:port", addr,
                 cfg->server_advertise ? "server_advertise" : "server_address");
        return -1;
    }
    advertised_host(host, adv, sizeof adv);
    owned_node_init(&sc->app, cfg->server_name, cfg->server_version, adv, port);
    if (cfg->server_metadata_count) {
        json_t *md = json_object();
        for (size_t i = 0; i < cfg->server_metadata_count; i++)
            json_object_set_new(md, cfg->server_metadata[i].key,
                                json_string(cfg->server_metadata[i].value));
        sc->app.service.nodes[0].metadata = md;
    }
    sc->has_app = 1;
    return 0;
}

/* The health URL is dialled without DNS (numeric hosts and localhost, as every address the
 * sidecar dials): one that cannot be is a bad flag value, not a check that fails for ever. */
static int check_health_url(const char *text, char *err, size_t errlen)
{
    struct mc_url url;
    struct sockaddr_storage ss;
    int ok = mc_url_parse(text, &url) == 0;
    ok = ok && !url.tls && mc_net_parse_address(url.address, &ss) == 0;
    if (!ok)
        snprintf(err, errlen,
                 "invalid value \"%s\" for flag --healthcheck_url: expected "
                 "http://host:port/path with a numeric host or localhost",
                 text);
    mc_url_close(&url); /* zeroed by a failed parse */
    return ok ? 0 : -1;
}

/* What the backends mean for the user, once at start-up: two sidecars on the embedded ones
 * are two separate worlds, the commonest first-hour surprise. */
static void log_backends(const struct mc_config *cfg)
{
    int local_registry = strcmp(cfg->registry, "memory") == 0;
    int local_broker = strcmp(cfg->broker, "memory") == 0;
    if (local_registry && local_broker) {
        mc_log_info("registry=memory broker=memory: services and messages live in this process "
                    "only; apps behind another sidecar will not see them (share one sidecar per "
                    "host, or use --registry=etcd --broker=nats)");
        return;
    }
    if (local_registry || local_broker)
        mc_log_info("%s=memory: %s live in this process only; apps behind another sidecar will "
                    "not see them",
                    local_registry ? "registry" : "broker",
                    local_registry ? "services" : "messages");
    if (!local_registry)
        mc_log_info("registry=%s at %s: services are shared with every sidecar on it",
                    cfg->registry, cfg->registry_address);
    if (!local_broker)
        mc_log_info("broker=%s at %s: messages are shared with every sidecar on it", cfg->broker,
                    cfg->broker_address);
}

/* The TLS type gRPC calls to "secure":"true" nodes dial with, made on the first such call:
 * verified against the system's CAs (OpenSSL's SSL_CERT_FILE and SSL_CERT_DIR point
 * elsewhere) and the address dialled. NULL when it cannot be made (said once). */
static const struct mc_conn_type *node_tls_type(void *ctx)
{
    struct sidecar *sc = ctx;
    if (!sc->node_tls && !sc->node_tls_failed) {
        char err[256];
        struct mc_tls_config ntcfg = {.alpn_h2 = 1};
        sc->node_tls = mc_tls_client_new(&ntcfg, err, sizeof err);
        if (!sc->node_tls) {
            sc->node_tls_failed = 1;
            mc_log_warn("gRPC to secure nodes is off: %s", err);
        }
    }
    return sc->node_tls ? mc_tls_type(sc->node_tls) : NULL;
}

static int start(struct sidecar *sc)
{
    const struct mc_config *cfg = sc->config;
    char err[512];
    if (prepare_app(sc, err, sizeof err) < 0 ||
        (cfg->healthcheck_url && check_health_url(cfg->healthcheck_url, err, sizeof err) < 0)) {
        fprintf(stderr, "micro: %s\n", err);
        return 2;
    }
    if (cfg->access_log) {
        if (strcmp(cfg->access_log, "-") == 0) {
            sc->access_log = stderr;
        } else {
            sc->access_log = fopen(cfg->access_log, "a");
            if (!sc->access_log) {
                fprintf(stderr, "micro: invalid value \"%s\" for flag --access_log: %s\n",
                        cfg->access_log, strerror(errno));
                return 2;
            }
        }
    }
    if (cfg->enable_tls) {
        /* Every file is read and checked now, before anything is registered (exit 2). */
        struct mc_tls_config tcfg = {.cert_file = cfg->tls_cert_file,
                                     .key_file = cfg->tls_key_file,
                                     .client_ca_file = cfg->tls_client_ca_file};
        sc->tls = mc_tls_server_new(&tcfg, err, sizeof err);
        if (!sc->tls) {
            fprintf(stderr, "micro: %s\n", err);
            return 2;
        }
    }
    struct mc_http_client_config ccfg = {.max_idle_per_host = 1024, .idle_timeout_ms = 60000};
    sc->client = mc_http_client_new(&sc->net, &ccfg);
    struct mc_h2_client_config h2cfg = {
        .secure_transport = node_tls_type,
        .secure_ctx = sc,
        .connect_timeout_ms = cfg->dial_timeout_ms,
    };
    sc->h2 = mc_h2_client_new(&sc->net, &h2cfg);
    struct mc_registry_config rcfg = {
        .loop = &sc->loop,
        .client = sc->client,
        .address = cfg->registry_address,
        .lease_ttl_ms = cfg->register_ttl_ms,
        .renew_interval_ms = cfg->register_interval_ms,
        .close_timeout_ms = cfg->drain_timeout_ms ? cfg->drain_timeout_ms : 1,
    };
    sc->registry = mc_registry_new(mc_registry_backend_find(cfg->registry), &rcfg, err, sizeof err);
    if (!sc->registry) {
        fprintf(stderr, "micro: %s\n", err);
        return 2;
    }
    /* The flag parser accepted only names the table has, and --broker_address with nats. */
    const struct mc_broker_settings bset = {
        .address = cfg->broker_address,
        .max_message = cfg->broker_max_message,
    };
    sc->broker = mc_broker_new(mc_broker_backend_find(cfg->broker), &sc->loop, &bset);
    if (mc_broker_start(sc->broker) < 0) {
        fprintf(stderr, "micro: cannot start the %s broker\n", cfg->broker);
        return 1;
    }
    sc->ws_hub = mc_ws_hub_new(&sc->loop);
    sc->lb = mc_lb_new(mc_lb_selector_find(cfg->selector), &mc_clock_monotonic, uv_hrtime());
    struct mc_upstream_config upcfg = {
        .request_timeout_ms = cfg->request_timeout_ms,
        .retries = cfg->retries,
        .on_call = mc_stats_call_done,
        .on_call_ctx = &sc->stats,
    };
    sc->upstream = mc_upstream_new(&sc->loop, sc->registry, sc->lb, &upcfg);
    struct mc_caller_config callcfg = {
        .dial_timeout_ms = cfg->dial_timeout_ms,
        .max_reply = cfg->max_body_size,
    };
    sc->caller = mc_caller_new(&sc->loop, sc->upstream, sc->client, &callcfg);
    sc->api = (struct mc_api){.net = &sc->net,
                              .config = cfg,
                              .registry = sc->registry,
                              .client = sc->client,
                              .broker = sc->broker,
                              .caller = sc->caller,
                              .lb = sc->lb,
                              .ws_hub = sc->ws_hub,
                              .stats = &sc->stats,
                              .h2 = sc->h2};
    size_t nroutes = mc_api_routes(&sc->api, sc->routes, MAX_ROUTES);
    struct mc_http_server_config scfg = {
        .address = cfg->sidecar_address,
        .transport = sc->tls ? mc_tls_type(sc->tls) : NULL,
        .routes = sc->routes,
        .route_count = nroutes,
        .max_body_size = cfg->max_body_size,
        .body_timeout_ms = cfg->body_timeout_ms,
        .body_min_rate = cfg->body_min_rate,
        .body_rate_off = cfg->body_min_rate == 0,
        .max_connections = (unsigned)cfg->max_connections,
        .cors = cfg->cors,
        .access_log = sc->access_log,
        .observer = mc_stats_observe,
        .observer_ctx = &sc->stats,
    };
    sc->server = mc_http_server_new(&sc->net, &scfg);
    if (!sc->server) {
        fprintf(stderr, "micro: invalid value \"%s\" for flag --cors\n", cfg->cors);
        return 2;
    }
    mc_stats_attach(&sc->stats, sc->server, sc->ws_hub, sc->broker, sc->registry);
    if (mc_http_server_listen(sc->server, err, sizeof err) < 0) {
        fprintf(stderr, "micro: %s\n", err);
        return 1;
    }
    mc_log_info("sidecar listening on %s (port %d)%s", cfg->sidecar_address,
                mc_http_server_port(sc->server),
                sc->tls ? (cfg->tls_client_ca_file ? " with TLS, client certificates required"
                                                   : " with TLS")
                        : "");
    /* The commonest first-hour surprise: two sidecars with the embedded backends are two
     * separate worlds. Say so where the user looks first. */
    log_backends(cfg);
    /* A store out of reach is retried by the backend, never a start-up failure (SPEC 1). */
    mc_registry_start(sc->registry);

    /* Only now that start-up has succeeded is anything registered. */
    char host[256], adv[256];
    int port;
    if (mc_net_split_host_port(cfg->sidecar_address, host, sizeof host, &port) < 0)
        host[0] = '\0';
    advertised_host(host, adv, sizeof adv);
    owned_node_init(&sc->self, "go.micro.sidecar", "", adv, mc_http_server_port(sc->server));
    if (sc->tls) { /* callers must dial it with https:// */
        json_t *md = json_object();
        json_object_set_new(md, "secure", json_string("true"));
        sc->self.service.nodes[0].metadata = md;
    }
    owned_node_register(sc, &sc->self);
    if (sc->has_app) {
        if (cfg->healthcheck_url) {
            struct mc_health_checker_config hcfg = {
                .url = cfg->healthcheck_url,
                .interval_ms = cfg->healthcheck_interval_ms,
                .timeout_ms = cfg->healthcheck_timeout_ms,
                .rise = cfg->healthcheck_rise,
                .fall = cfg->healthcheck_fall,
                .on_change = on_app_health,
                .ctx = sc,
            };
            mc_log_info("starting health checker for %s", cfg->healthcheck_url);
            sc->stats.health = MC_STATS_HEALTH_STARTING;
            sc->checker = mc_health_checker_new(&sc->loop, sc->client, &hcfg);
        } else {
            owned_node_register(sc, &sc->app);
        }
    }
    uv_timer_start(&sc->expire_timer, on_expire_tick, EXPIRE_TICK_MS, EXPIRE_TICK_MS);
    uv_signal_start(&sc->sigterm, on_signal, SIGTERM);
    uv_signal_start(&sc->sigint, on_signal, SIGINT);
    uv_signal_start(&sc->sighup, on_sighup, SIGHUP);
    return 0;
}

int mc_sidecar_run(const struct mc_config *cfg)
{
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN); /* until on_sighup takes over, once serving */
    struct sidecar *sc = mc_calloc(1, sizeof *sc);
    sc->config = cfg;
    uv_loop_init(&sc->loop);
    sc->net.loop = &sc->loop;
    uv_timeval64_t tv;
    uv_gettimeofday(&tv);
    mc_stats_init(&sc->stats, &sc->loop, uv_now(&sc->loop),
                  (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000);
    uv_timer_init(&sc->loop, &sc->expire_timer);
    uv_timer_init(&sc->loop, &sc->drain_timer);
    uv_signal_init(&sc->loop, &sc->sigterm);
    uv_signal_init(&sc->loop, &sc->sigint);
    uv_signal_init(&sc->loop, &sc->sighup);
    sc->sighup.data = sc;
    sc->expire_timer.data = sc->drain_timer.data = sc;
    sc->sigterm.data = sc->sigint.data = sc;
    mc_service_init(&sc->self.service);
    mc_service_init(&sc->app.service);

    int code = start(sc);
    if (code == 0)
        uv_run(&sc->loop, UV_RUN_DEFAULT);
    else {
        mc_http_server_free(sc->server);
        mc_registry_free(sc->registry, NULL, NULL); /* nothing in flight: never started */
        sc->registry = NULL;
        mc_http_client_free(sc->client);
        mc_h2_client_free(sc->h2);
        if (sc->ws_hub)
            mc_ws_hub_free(sc->ws_hub);
        mc_broker_free(sc->broker); /* before the walk: its threads must stop first */
        sc->broker = NULL;
    }
    /* Close whatever is left and let the close callbacks release memory. */
    uv_walk(&sc->loop, close_walk_cb, NULL);
    uv_run(&sc->loop, UV_RUN_DEFAULT);
    uv_loop_close(&sc->loop);
    mc_api_proxy_free_spares(&sc->api);
    mc_caller_free(sc->caller);
    mc_upstream_free(sc->upstream);
    mc_lb_free(sc->lb);
    mc_broker_free(sc->broker);
    mc_service_close(&sc->self.service);
    mc_service_close(&sc->app.service);
    if (sc->access_log && sc->access_log != stderr)
        fclose(sc->access_log);
    mc_tls_free(sc->tls); /* every connection of its type is closed with the loop */
    mc_tls_free(sc->node_tls);
    mc_free(sc);
    if (code == 0)
        mc_log_info("sidecar stopped");
    return code;
}
