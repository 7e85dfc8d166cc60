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
    if (name && *name) {
        size_t len;
        const char *text = mc_registry_get_text(api->registry, name, &len);
        mc_free(name);
        if (!text)
            mc_http_respond_error(req, 404, REGISTRY_ID, "service not found");
        else
            mc_http_respond(req, 200, "application/json", NULL, 0, text, len);
        return;
    }
    mc_free(name);
    json_t *out = mc_registry_list_json(api->registry);
    mc_api_respond_json(req, 200, out);
    json_decref(out);
}

/* A POST/PUT/DELETE waiting for the backend. req is NULL once the client went away: a store
 * write cannot be taken back, so the write runs on and its answer is dropped. */
struct write_wait {
    struct mc_http_request *req;
};

static void write_done(void *ctx, int err)
{
    struct write_wait *w = ctx;
    struct mc_http_request *req = w->req;
    mc_free(w);
    if (!req)
        return;
    req->on_abort = NULL;
    req->handler_data = NULL;
    if (err == MC_EUNAVAIL || err == MC_ETIMEDOUT)
        mc_http_respond_error(req, 503, REGISTRY_ID, "registry backend unavailable");
    else if (err < 0)
        mc_http_respond_error(req, 500, REGISTRY_ID, mc_strerror(err));
    else
        mc_http_respond(req, 200, NULL, NULL, 0, NULL, 0);
}

static void write_abort(struct mc_http_request *req)
{
    struct write_wait *w = req->handler_data;
    w->req = NULL;
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
    /* The answer waits for the backend: 200 only once the store acknowledged the write. */
    struct write_wait *w = mc_calloc(1, sizeof *w);
    w->req = req;
    req->handler_data = w;
    req->on_abort = write_abort;
    if (add)
        mc_registry_register(api->registry, &svc, ttl_ms, 0, write_done, w);
    else
        mc_registry_deregister(api->registry, &svc, write_done, w);
    mc_service_close(&svc);
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
