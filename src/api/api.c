/* The route table and JSON helpers shared by the handlers. */
#include "api/api.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/grpc_api.h"
#include "rpc/route.h"
#include "stats/stats.h"
#include "util/alloc.h"
#include "util/units.h"

/* --handler=proxy's route: gRPC calls first (any handler forwards them over HTTP/2), then the
 * HTTP/1.1 reverse proxy. */
static void proxy_route(struct mc_http_request *req, void *ctx)
{
    if (mc_http_request_is_grpc(req)) {
        mc_api_grpc(req, ctx);
        return;
    }
    mc_api_proxy(req, ctx);
}

size_t mc_api_routes(struct mc_api *api, struct mc_http_route *routes, size_t max)
{
    const char *handler = api->config->handler ? api->config->handler : "rpc";
    int proxy = strcmp(handler, "proxy") == 0, autodetect = strcmp(handler, "auto") == 0;
#define FAMILY(f) MC_HTTP_ROUTE_FAMILY(MC_STATS_ROUTE_##f)
    const struct mc_http_route table[] = {
        {"/registry", MC_HTTP_GET | MC_HTTP_POST | MC_HTTP_PUT | MC_HTTP_DELETE, FAMILY(REGISTRY),
         mc_api_registry, api},
        {"/health", MC_HTTP_GET, FAMILY(HEALTH), mc_api_health, api},
        {"/broker", MC_HTTP_GET | MC_HTTP_POST, FAMILY(BROKER), mc_api_broker, api},
        {"/rpc", MC_HTTP_POST, FAMILY(RPC), mc_api_rpc, api},
        {"/", MC_HTTP_POST, FAMILY(OTHER), mc_api_root, api},
        {"/metrics", MC_HTTP_GET, FAMILY(OTHER), mc_api_metrics, api},
        /* without --enable_stats /stats is an ordinary path (a 404 unless a service owns it) */
        {api->config->enable_stats ? "/stats" : NULL, MC_HTTP_GET, FAMILY(OTHER), mc_api_stats,
         api},
        {NULL, MC_HTTP_ANY, FAMILY(PATH), mc_api_fallback, api},
    };
#undef FAMILY
    size_t n = 0;
    for (size_t i = 0; i < sizeof table / sizeof table[0] && n < max; i++) {
        if (!table[i].path && table[i].handler != mc_api_fallback)
            continue; /* a row switched off */
        routes[n] = table[i];
        if (!routes[n].path && (proxy || autodetect)) {
            /* the reverse proxy streams bodies both ways instead of buffering them; auto
             * decides at the end of the head, before any body byte is read */
            routes[n].flags =
                MC_HTTP_ROUTE_STREAM |
                MC_HTTP_ROUTE_FAMILY(proxy ? MC_STATS_ROUTE_PROXY : MC_STATS_ROUTE_PATH);
            routes[n].handler = proxy ? proxy_route : mc_api_auto;
        }
        n++;
    }
    return n;
}

json_t *mc_api_parse_json_body(struct mc_http_request *req, const char *id)
{
    json_error_t jerr;
    json_t *v = json_loadb(req->body.data ? req->body.data : "", req->body.len,
                           JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!v) {
        char detail[256];
        snprintf(detail, sizeof detail, "invalid JSON: %s (line %d, column %d)", jerr.text,
                 jerr.line, jerr.column);
        mc_http_respond_error(req, 400, id, detail);
    }
    return v;
}

void mc_api_respond_json(struct mc_http_request *req, int status, const json_t *value)
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    mc_http_respond(req, status, "application/json", NULL, 0, text, strlen(text));
    free(text);
}

/* Whether any live node of service name carries metadata protocol=http (go-micro nodes carry
 * a "protocol" key; an HTTP app registers with protocol=http). */
static int speaks_http(struct mc_registry *registry, const char *name)
{
    const struct mc_service *versions[16];
    size_t n = mc_registry_lookup(registry, name, versions, 16);
    for (size_t v = 0; v < n; v++)
        for (size_t i = 0; i < versions[v]->node_count; i++) {
            json_t *p = json_object_get(versions[v]->nodes[i].metadata, "protocol");
            if (p && json_is_string(p) && strcmp(json_string_value(p), "http") == 0)
                return 1;
        }
    return 0;
}

/* --handler=auto, for bodies that go to a path call: the route streams (the proxy needs it),
 * so the body is gathered here, bounded by --max_body_size as a buffered route's is. */
static void auto_body(struct mc_http_request *req, const char *data, size_t len)
{
    struct mc_api *api = req->handler_data;
    if (!data) {
        req->on_body = NULL;
        req->handler_data = NULL;
        mc_api_path_rpc(req, api);
        return;
    }
    if (req->body.len + len > api->config->max_body_size) {
        char detail[96], limit[32];
        mc_size_text(limit, sizeof limit, api->config->max_body_size);
        snprintf(detail, sizeof detail, "request body over --max_body_size=%s", limit);
        req->on_body = NULL;
        req->handler_data = NULL;
        mc_http_respond_error(req, 413, "go.micro.sidecar", detail);
        return;
    }
    mc_buf_append(&req->body, data, len);
}

void mc_api_auto(struct mc_http_request *req, void *ctx)
{
    struct mc_api *api = ctx;
    if (mc_http_request_is_grpc(req)) {
        mc_api_grpc(req, api);
        return;
    }
    /* The name on the stack: deciding where a request goes allocates nothing unless the name
     * is longer than any a registry is likely to hold. */
    char name[128];
    char *service =
        mc_route_service_in(req->path, req->path_len, api->config->namespace, name, sizeof name);
    int http = service && speaks_http(api->registry, service);
    if (service != name)
        mc_free(service);
    if (http) {
        req->family = MC_STATS_ROUTE_PROXY; /* auto chose: count it where it went */
        mc_api_proxy(req, ctx);
        return;
    }
    req->handler_data = api;
    req->on_body = auto_body;
}

void mc_api_fallback(struct mc_http_request *req, void *ctx)
{
    if (mc_http_request_is_grpc(req)) {
        /* --handler=rpc's fallback is a buffered route, but the HTTP/2 codec streams gRPC
         * whatever the route (HTTP/1.x gRPC is refused before any body is read) */
        mc_api_grpc(req, ctx);
        return;
    }
    mc_api_path_rpc(req, ctx);
}
