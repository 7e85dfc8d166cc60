/* /rpc and --handler=rpc path calls (SPEC 3.2, 3.3): decode the caller's input, then hand
 * the call to the caller module and relay its answer. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "rpc/caller.h"
#include "rpc/route.h"
#include "util/alloc.h"

#define RPC_ID "go.micro.rpc"

struct rpc_wait {
    struct mc_http_request *req;
    struct mc_call *call;
};

static void rpc_done(void *ctx, const struct mc_call_answer *a)
{
    struct rpc_wait *w = ctx;
    struct mc_http_request *req = w->req;
    mc_free(w);
    req->on_abort = NULL;
    req->handler_data = NULL;
    mc_http_respond(req, a->status, "application/json", NULL, 0, a->body, a->len);
}

static void rpc_abort(struct mc_http_request *req)
{
    struct rpc_wait *w = req->handler_data;
    mc_call_cancel(w->call);
    mc_free(w);
}

static void start_call(struct mc_http_request *req, struct mc_api *api,
                       const struct mc_call_request *creq)
{
    struct rpc_wait *w = mc_calloc(1, sizeof *w);
    w->req = req;
    req->handler_data = w;
    req->on_abort = rpc_abort;
    /* NULL means rpc_done already ran (and freed w): an answer known at once. */
    struct mc_call *call = mc_call_start(api->caller, creq, rpc_done, w);
    if (call)
        w->call = call;
}

/* "request" as an object (re-encoded) or as JSON text (validated, passed verbatim). */
static int request_params(struct mc_http_request *req, json_t *value, char **out,
                          size_t *len)
{
    if (!value || json_is_null(value)) {
        *out = NULL;
        *len = 0;
        return 0;
    }
    if (json_is_string(value)) {
        const char *text = json_string_value(value);
        size_t tl = json_string_length(value);
        if (tl == 0) {
            *out = NULL;
            *len = 0;
            return 0;
        }
        json_error_t jerr;
        json_t *parsed = json_loadb(text, tl, JSON_DECODE_ANY, &jerr);
        if (!parsed) {
            char detail[300];
            snprintf(detail, sizeof detail, "error decoding request string: %s", jerr.text);
            mc_http_respond_error(req, 400, RPC_ID, detail);
            return -1;
        }
        json_decref(parsed);
        *out = mc_strndup(text, tl);
        *len = tl;
        return 0;
    }
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    *out = mc_strdup(text);
    *len = strlen(text);
    free(text);
    return 0;
}

static json_t *get_ci(json_t *obj, const char *key)
{
    const char *k;
    json_t *v, *found = NULL;
    json_object_foreach(obj, k, v)
    {
        if (strcasecmp(k, key) == 0)
            found = v; /* the last one wins, as Go's decoder does */
    }
    return found;
}

static int is_json_content(const char *ct)
{
    if (!ct)
        return 0;
    size_t n = strcspn(ct, ";");
    while (n > 0 && ct[n - 1] == ' ')
        n--;
    return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

void mc_api_rpc(struct mc_http_request *req, void *ctx)
{
    struct mc_api *api = ctx;
    char *service = NULL, *method = NULL, *address = NULL, *params = NULL;
    size_t params_len = 0;
    if (is_json_content(mc_http_request_header(req, "Content-Type"))) {
        json_t *body = mc_api_parse_json_body(req, RPC_ID);
        if (!body)
            return;
        if (!json_is_object(body)) {
            json_decref(body);
            mc_http_respond_error(req, 400, RPC_ID, "request body must be a JSON object");
            return;
        }
        json_t *v;
        if ((v = get_ci(body, "service")) && json_is_string(v))
            service = mc_strdup(json_string_value(v));
        if ((v = get_ci(body, "method")) && json_is_string(v))
            method = mc_strdup(json_string_value(v));
        if ((v = get_ci(body, "address")) && json_is_string(v))
            address = mc_strdup(json_string_value(v));
        if (service && *service && method && *method &&
            request_params(req, get_ci(body, "request"), &params, &params_len) < 0) {
            json_decref(body);
            goto out;
        }
        json_decref(body);
    } else {
        /* Form fields, from an urlencoded body or the query string (the seed's curl -d). */
        const char *names[] = {"service", "method", "address", "request"};
        char *values[4] = {NULL, NULL, NULL, NULL};
        for (int i = 0; i < 4; i++) {
            if (req->body.len)
                values[i] = mc_http_form_value(req->body.data, req->body.len, names[i]);
            if (!values[i])
                values[i] = mc_http_query_param(req, names[i]);
        }
        service = values[0];
        method = values[1];
        address = values[2];
        if (service && *service && method && *method && values[3] && *values[3]) {
            json_t *s = json_string(values[3]);
            if (!s) {
                mc_http_respond_error(req, 400, RPC_ID,
                                      "error decoding request string: invalid UTF-8");
                mc_free(values[3]);
                goto out;
            }
            int bad = request_params(req, s, &params, &params_len) < 0;
            json_decref(s);
            if (bad) {
                mc_free(values[3]);
                goto out;
            }
        }
        mc_free(values[3]);
    }
    if (!service || !*service) {
        mc_http_respond_error(req, 400, RPC_ID, "invalid service");
        goto out;
    }
    if (!method || !*method) {
        mc_http_respond_error(req, 400, RPC_ID, "invalid method");
        goto out;
    }
    struct mc_call_request creq = {
        .service = service,
        .method = method,
        .address = address,
        .params = params,
        .params_len = params_len,
        .headers = req->headers,
        .header_count = req->header_count,
    };
    start_call(req, api, &creq);
out:
    mc_free(service);
    mc_free(method);
    mc_free(address);
    mc_free(params);
}

/* --handler=rpc: /foo/bar -> <namespace>.foo Foo.Bar, the body is the request. */
void mc_api_path_rpc(struct mc_http_request *req, struct mc_api *api)
{
    char *service, *method;
    if (mc_route_path_to_call(req->path, req->path_len, api->config->namespace, &service,
                              &method) < 0) {
        mc_http_respond_error(req, 404, "go.micro.sidecar", "not found");
        return;
    }
    const char *params = NULL;
    size_t params_len = 0;
    if (req->body.len) {
        json_error_t jerr;
        json_t *v = json_loadb(req->body.data, req->body.len, JSON_DECODE_ANY, &jerr);
        if (!v) {
            char detail[300];
            snprintf(detail, sizeof detail, "error decoding request: %s", jerr.text);
            mc_http_respond_error(req, 400, RPC_ID, detail);
            mc_free(service);
            mc_free(method);
            return;
        }
        json_decref(v);
        params = req->body.data;
        params_len = req->body.len;
    }
    struct mc_call_request creq = {
        .service = service,
        .method = method,
        .params = params,
        .params_len = params_len,
        .headers = req->headers,
        .header_count = req->header_count,
    };
    start_call(req, api, &creq);
    mc_free(service);
    mc_free(method);
}
