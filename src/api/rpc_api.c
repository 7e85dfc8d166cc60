/* /rpc and --handler=rpc path calls (SPEC 3.2, 3.3): decode the caller's input, then hand
 * the call to the caller module and relay its answer. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "rpc/caller.h"
#include "rpc/jsonrpc.h"
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

/* Validating only: jansson refuses integers beyond 64 bits ("too big integer"), yet go-micro
 * services use uint64 ids and bigger numbers that the sidecar merely passes on. Decoding
 * integers as reals accepts them, and nothing validated here is ever re-encoded: the text goes
 * to the node verbatim. */
#define LENIENT_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL)

/* "request" given as a JSON string: its text is the request (validated, passed verbatim). */
static int request_from_string(struct mc_http_request *req, const char *text, size_t tl, char **out,
                               size_t *len)
{
    *out = NULL;
    *len = 0;
    if (tl == 0)
        return 0;
    json_error_t jerr;
    json_t *parsed = json_loadb(text, tl, LENIENT_FLAGS, &jerr);
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

/* The request of a JSON body: an object (or any non-string value) passed on byte for byte, a
 * string holding JSON text, or absent/null for {}. */
static int request_from_body(struct mc_http_request *req, const char *body, size_t n, char **out,
                             size_t *len)
{
    size_t start, vlen;
    *out = NULL;
    *len = 0;
    if (mc_json_member_span(body, n, "request", &start, &vlen) != 1 || body[start] == 'n')
        return 0;
    if (body[start] != '"') {
        *out = mc_strndup(body + start, vlen);
        *len = vlen;
        return 0;
    }
    json_t *str = json_loadb(body + start, vlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    int rc = request_from_string(req, json_string_value(str), json_string_length(str), out, len);
    json_decref(str);
    return rc;
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
        json_error_t jerr;
        const char *text = req->body.data ? req->body.data : "";
        json_t *body = json_loadb(text, req->body.len, LENIENT_FLAGS, &jerr);
        if (!body) {
            char detail[256];
            snprintf(detail, sizeof detail, "invalid JSON: %s (line %d, column %d)", jerr.text,
                     jerr.line, jerr.column);
            mc_http_respond_error(req, 400, RPC_ID, detail);
            return;
        }
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
            request_from_body(req, text, req->body.len, &params, &params_len) < 0) {
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
        if (service && *service && method && *method && values[3] &&
            request_from_string(req, values[3], strlen(values[3]), &params, &params_len) < 0) {
            mc_free(values[3]);
            goto out;
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
    if (mc_route_path_to_call(req->path, req->path_len, api->config->namespace, &service, &method) <
        0) {
        mc_http_respond_error(req, 404, "go.micro.sidecar", "not found");
        return;
    }
    const char *params = NULL;
    size_t params_len = 0;
    if (req->body.len) {
        json_error_t jerr;
        json_t *v = json_loadb(req->body.data, req->body.len, LENIENT_FLAGS, &jerr);
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
