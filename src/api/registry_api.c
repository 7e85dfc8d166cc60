/* /registry: discovery (GET), registration (POST/PUT, ?ttl=), deregistration (DELETE). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "registry/service.h"
#include "util/alloc.h"
#include "util/error.h"

#define REGISTRY_ID "go.micro.registry"

static void registry_get(struct mc_http_request *req, struct mc_api *api)
{
    char *name;
    if (mc_http_query_param(req, "service", &name) == MC_EINVAL) {
        mc_http_respond_error(req, 400, REGISTRY_ID, "invalid service: contains a NUL (%00)");
        return;
    }
    json_t *out;
    if (name && *name) {
        out = mc_registry_get_json(api->registry, name);
        if (!out) {
            mc_http_respond_error(req, 404, REGISTRY_ID, "service not found");
            mc_free(name);
            return;
        }
    } else {
        out = mc_registry_list_json(api->registry);
    }
    mc_free(name);
    mc_api_respond_json(req, 200, out);
    json_decref(out);
}

static void registry_change(struct mc_http_request *req, struct mc_api *api, int add)
{
    uint64_t ttl_ms = 0;
    char *ttl;
    int found = mc_http_query_param(req, "ttl", &ttl);
    if (found != MC_ENOTFOUND) {
        int bad = found < 0 || mc_parse_duration_ms(ttl, &ttl_ms) < 0;
        mc_free(ttl);
        if (bad) {
            mc_http_respond_error(req, 400, REGISTRY_ID,
                                  "invalid ttl: expected a duration such as 30s or 1m");
            return;
        }
    }
    json_t *body = mc_api_parse_json_body(req, REGISTRY_ID);
    if (!body)
        return;
    struct mc_service svc;
    char err[256];
    if (mc_service_from_json(body, MC_SERVICE_REQUIRE_NODES, &svc, err, sizeof err) < 0) {
        json_decref(body);
        mc_http_respond_error(req, 400, REGISTRY_ID, err);
        return;
    }
    json_decref(body);
    int rc = add ? mc_registry_register(api->registry, &svc, ttl_ms)
                 : mc_registry_deregister(api->registry, &svc);
    mc_service_close(&svc);
    if (rc < 0) {
        mc_http_respond_error(req, 500, REGISTRY_ID, mc_strerror(rc));
        return;
    }
    mc_http_respond(req, 200, NULL, NULL, 0, NULL, 0);
}

void mc_api_registry(struct mc_http_request *req, void *ctx)
{
    struct mc_api *api = ctx;
    switch (req->method_bit) {
    case MC_HTTP_GET:
    case MC_HTTP_HEAD:
        if (req->upgrade)
            mc_api_registry_watch(req, api);
        else
            registry_get(req, api);
        break;
    case MC_HTTP_POST:
    case MC_HTTP_PUT:
        registry_change(req, api, 1);
        break;
    default:
        registry_change(req, api, 0);
        break;
    }
}
