/* /health (the app's health, proxied) and the sidecar's own JSON-RPC Debug.Health on "/". */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "health/checker.h"
#include "util/alloc.h"

static void health_abort(struct mc_http_request *req)
{
    mc_health_probe_cancel(req->handler_data);
}

static void health_done(void *ctx, const struct mc_health_result *r)
{
    struct mc_http_request *req = ctx;
    req->on_abort = NULL;
    char body[256];
    if (r->status == 200) {
        mc_http_respond(req, 200, NULL, NULL, 0, NULL, 0);
    } else if (r->status > 0) {
        int n = snprintf(body, sizeof body, "Non 200 response: %d", r->status);
        mc_http_respond(req, r->status, "text/plain; charset=utf-8", NULL, 0, body, (size_t)n);
    } else {
        int n = snprintf(body, sizeof body, "%s", r->reason);
        mc_http_respond(req, 500, "text/plain; charset=utf-8", NULL, 0, body, (size_t)n);
    }
}

void mc_api_health(struct mc_http_request *req, void *ctx)
{
    struct mc_api *api = ctx;
    if (!api->config->healthcheck_url) {
        mc_http_respond(req, 200, NULL, NULL, 0, NULL, 0);
        return;
    }
    req->on_abort = health_abort;
    req->handler_data =
        mc_health_probe_start(api->client, api->config->healthcheck_url,
                              api->config->healthcheck_timeout_ms, health_done, req);
}

/* go-micro's JSON-RPC over HTTP, answered by the sidecar itself: Debug.Health only. */
void mc_api_root(struct mc_http_request *req, void *ctx)
{
    (void)ctx;
    json_t *call = mc_api_parse_json_body(req, "go.micro.sidecar");
    if (!call)
        return;
    json_t *id = json_is_object(call) ? json_object_get(call, "id") : NULL;
    json_t *method = json_is_object(call) ? json_object_get(call, "method") : NULL;
    json_t *reply = json_object();
    json_object_set(reply, "id", id ? id : json_null());
    if (json_is_string(method) && strcmp(json_string_value(method), "Debug.Health") == 0) {
        json_object_set_new(reply, "result", json_pack("{s:s}", "status", "ok"));
        json_object_set_new(reply, "error", json_null());
    } else {
        json_object_set_new(reply, "result", json_null());
        json_object_set_new(reply, "error",
                            json_string("go.micro.sidecar: unknown method (only Debug.Health)"));
    }
    mc_api_respond_json(req, 200, reply);
    json_decref(reply);
    json_decref(call);
}
