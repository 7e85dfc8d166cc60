/* The route table and JSON helpers shared by the handlers. */
#include "api/api.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

size_t mc_api_routes(struct mc_api *api, struct mc_http_route *routes, size_t max)
{
    const struct mc_http_route table[] = {
        {"/registry", MC_HTTP_GET | MC_HTTP_POST | MC_HTTP_PUT | MC_HTTP_DELETE, 0, mc_api_registry,
         api},
        {"/health", MC_HTTP_GET, 0, mc_api_health, api},
        {"/broker", MC_HTTP_GET | MC_HTTP_POST, 0, mc_api_broker, api},
        {"/rpc", MC_HTTP_POST, 0, mc_api_rpc, api},
        {"/", MC_HTTP_POST, 0, mc_api_root, api},
        {NULL, MC_HTTP_ANY, 0, mc_api_fallback, api},
    };
    int proxy = api->config->handler && strcmp(api->config->handler, "proxy") == 0;
    size_t n = sizeof table / sizeof table[0];
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++) {
        routes[i] = table[i];
        if (!routes[i].path && proxy) {
            /* the reverse proxy streams bodies both ways instead of buffering them */
            routes[i].flags = MC_HTTP_ROUTE_STREAM;
            routes[i].handler = mc_api_proxy;
        }
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

void mc_api_fallback(struct mc_http_request *req, void *ctx)
{
    mc_api_path_rpc(req, ctx);
}
