/* /health (the app's health, proxied) and the sidecar's own JSON-RPC Debug.Health on "/". */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "broker/broker.h"
#include "health/checker.h"
#include "util/alloc.h"
#include "util/backend_state.h"

/* One /health request waiting for its probe. */
struct health_call {
    struct mc_http_request *req;
    struct mc_api *api;
    struct mc_health_probe *probe;
    int verbose;
};

static void health_abort(struct mc_http_request *req)
{
    struct health_call *call = req->handler_data;
    mc_health_probe_cancel(call->probe);
    mc_free(call);
}

/* A backend's state as /health?verbose=1 shows it: error and since only while retrying. */
static json_t *backend_json(const char *backend, const struct mc_backend_state *st)
{
    json_t *o = json_pack("{s:s, s:s}", "backend", backend, "state",
                          mc_backend_status_name(st ? st->status : MC_BACKEND_CONNECTED));
    if (st && st->status != MC_BACKEND_CONNECTED) {
        char since[40];
        json_object_set_new(o, "error", json_string(st->error));
        json_object_set_new(o, "since",
                            json_string(mc_backend_state_since(st, since, sizeof since)));
    }
    return o;
}

/* The verbose answer: the app's health as plain /health judged it (status is also the
 * response's code, so probes keep their meaning) beside each backend's reachability. */
static void respond_verbose(struct mc_http_request *req, struct mc_api *api, int status,
                            const char *error)
{
    json_t *app = json_pack("{s:i, s:s}", "status", status, "state",
                            !api->config->healthcheck_url ? "unchecked"
                            : status == 200               ? "healthy"
                                                          : "unhealthy");
    if (api->config->healthcheck_url)
        json_object_set_new(app, "healthcheck_url", json_string(api->config->healthcheck_url));
    if (error)
        json_object_set_new(app, "error", json_string(error));
    json_t *body = json_pack(
        "{s:o, s:o, s:o}", "app", app, "registry",
        backend_json(api->config->registry, mc_registry_backend_state(api->registry)), "broker",
        backend_json(mc_broker_name(api->broker), mc_broker_state(api->broker)));
    mc_api_respond_json(req, status, body);
    json_decref(body);
}

static void health_done(void *ctx, const struct mc_health_result *r)
{
    struct health_call *call = ctx;
    struct mc_http_request *req = call->req;
    struct mc_api *api = call->api;
    int verbose = call->verbose;
    mc_free(call);
    req->on_abort = NULL;
    req->handler_data = NULL;
    char body[256];
    int status = r->status == 200 ? 200 : r->status > 0 ? r->status : 500;
    if (r->status == 200)
        body[0] = '\0';
    else if (r->status > 0)
        snprintf(body, sizeof body, "Non 200 response: %d", r->status);
    else
        snprintf(body, sizeof body, "%s", r->reason);
    if (verbose)
        respond_verbose(req, api, status, body[0] ? body : NULL);
    else if (status == 200)
        mc_http_respond(req, 200, NULL, NULL, 0, NULL, 0);
    else
        mc_http_respond(req, status, "text/plain; charset=utf-8", NULL, 0, body, strlen(body));
}

static int wants_verbose(const struct mc_http_request *req)
{
    char *v = NULL;
    mc_http_query_param(req, "verbose", &v); /* absent or undecodable: not verbose */
    int on = v && *v && strcmp(v, "0") != 0 && strcmp(v, "false") != 0;
    mc_free(v);
    return on;
}

void mc_api_health(struct mc_http_request *req, void *ctx)
{
    struct mc_api *api = ctx;
    int verbose = wants_verbose(req);
    if (!api->config->healthcheck_url) {
        if (verbose)
            respond_verbose(req, api, 200, NULL);
        else
            mc_http_respond(req, 200, NULL, NULL, 0, NULL, 0);
        return;
    }
    struct health_call *call = mc_calloc(1, sizeof *call);
    call->req = req;
    call->api = api;
    call->verbose = verbose;
    req->on_abort = health_abort;
    req->handler_data = call;
    call->probe = mc_health_probe_start(api->client, api->config->healthcheck_url,
                                        api->config->healthcheck_timeout_ms, health_done, call);
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
