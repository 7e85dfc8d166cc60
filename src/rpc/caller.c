/* Calls to services: node choice, JSON-RPC, retries, outcome accounting. */
#include "rpc/caller.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "rpc/jsonrpc.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/log.h"
#include "util/units.h"

#define CLIENT_ID "go.micro.client"
#define MAX_VERSIONS 32

struct mc_caller {
    uv_loop_t *loop;
    struct mc_registry *registry;
    struct mc_lb *lb;
    struct mc_http_client *client;
    struct mc_caller_config config;
    uint64_t next_id;
    struct mc_log_limit log_limit; /* failed and retried calls */
    /* mc_caller_addresses' scratch: the strings, their offsets, the pointers handed out */
    struct mc_buf address_text;
    size_t *address_offsets;
    const char **addresses;
    size_t address_cap;
};

struct mc_call {
    struct mc_caller *caller;
    char *service;
    char *method;
    char *address;             /* direct node, or NULL */
    struct mc_buf request;     /* the JSON-RPC body, built once */
    uint64_t id;               /* its JSON-RPC id, which the reply must echo when it has one */
    struct mc_buf header_text; /* NUL-separated names and values of the headers to send */
    struct mc_http_header *headers;
    size_t header_count;
    mc_call_done_cb done;
    void *ctx;
    struct mc_http_call *http;
    struct mc_lb_endpoint *ep;
    char *node; /* address of the attempt in flight */
    char **tried;
    size_t tried_count;
    int attempts;
    uint64_t deadline_ms;
    uint64_t attempt_start_ms;
    int last_err;
};

int mc_http_hop_by_hop(const char *name)
{
    /* Called for every header of every proxied request and response: every hop-by-hop name
     * starts with c, k, p, t or u, so most headers cost one test; then the length decides. */
    switch (name[0] | 0x20) {
    case 'c':
    case 'k':
    case 'p':
    case 't':
    case 'u':
        break;
    default:
        return 0;
    }
    switch (strlen(name)) {
    case 2:
        return strcasecmp(name, "TE") == 0;
    case 7:
        return strcasecmp(name, "Trailer") == 0 || strcasecmp(name, "Upgrade") == 0;
    case 10:
        return strcasecmp(name, "Connection") == 0 || strcasecmp(name, "Keep-Alive") == 0;
    case 16:
        return strcasecmp(name, "Proxy-Connection") == 0;
    case 17:
        return strcasecmp(name, "Transfer-Encoding") == 0;
    case 18:
        return strcasecmp(name, "Proxy-Authenticate") == 0;
    case 19:
        return strcasecmp(name, "Proxy-Authorization") == 0;
    default:
        return 0;
    }
}

struct mc_caller *mc_caller_new(uv_loop_t *loop, struct mc_registry *registry, struct mc_lb *lb,
                                struct mc_http_client *client,
                                const struct mc_caller_config *config)
{
    struct mc_caller *c = mc_calloc(1, sizeof *c);
    c->loop = loop;
    c->registry = registry;
    c->lb = lb;
    c->client = client;
    c->config = *config;
    c->next_id = 1;
    return c;
}

void mc_caller_free(struct mc_caller *caller)
{
    if (!caller)
        return;
    mc_buf_close(&caller->address_text);
    mc_free(caller->address_offsets);
    mc_free(caller->addresses);
    mc_free(caller);
}

/* "host:port", "[v6]:port"; an empty host means this machine. */
static void append_node_address(struct mc_buf *out, const struct mc_node *n)
{
    int v6 = strchr(n->address, ':') != NULL;
    if (v6)
        mc_buf_append(out, "[", 1);
    mc_buf_append_str(out, n->address[0] ? n->address : "127.0.0.1");
    mc_buf_append_str(out, v6 ? "]:" : ":");
    mc_buf_append_uint(out, (unsigned)n->port);
    mc_buf_append(out, "", 1);
}

const char *const *mc_caller_addresses(struct mc_caller *caller, const char *name, size_t *count)
{
    const struct mc_service *versions[MAX_VERSIONS];
    size_t nv = mc_registry_lookup(caller->registry, name, versions, MAX_VERSIONS);
    size_t total = 0;
    for (size_t i = 0; i < nv; i++)
        total += versions[i]->node_count;
    if (total > caller->address_cap) {
        caller->address_cap = total;
        caller->address_offsets =
            mc_realloc(caller->address_offsets, total * sizeof *caller->address_offsets);
        caller->addresses = mc_realloc(caller->addresses, total * sizeof *caller->addresses);
    }
    mc_buf_reset(&caller->address_text);
    size_t k = 0;
    for (size_t i = 0; i < nv; i++) {
        for (size_t j = 0; j < versions[i]->node_count; j++) {
            caller->address_offsets[k++] = caller->address_text.len;
            append_node_address(&caller->address_text, &versions[i]->nodes[j]);
        }
    }
    /* Offsets first, pointers last: the text may move while it grows. */
    for (size_t i = 0; i < k; i++)
        caller->addresses[i] = caller->address_text.data + caller->address_offsets[i];
    *count = k;
    return caller->addresses;
}

static void call_free(struct mc_call *call)
{
    mc_free(call->service);
    mc_free(call->method);
    mc_free(call->address);
    mc_free(call->node);
    mc_buf_close(&call->request);
    mc_buf_close(&call->header_text);
    mc_free(call->headers);
    for (size_t i = 0; i < call->tried_count; i++)
        mc_free(call->tried[i]);
    mc_free(call->tried);
    mc_free(call);
}

static void answer(struct mc_call *call, int status, const char *body, size_t len)
{
    /* the node outlives the call until done has read it (the access log's upstream=) */
    char *node = call->node;
    call->node = NULL;
    struct mc_call_answer a = {status, body, len, node};
    mc_call_done_cb done = call->done;
    void *ctx = call->ctx;
    call_free(call);
    done(ctx, &a);
    mc_free(node);
}

/* One warn line per failed or retried call, rate-limited so a storm cannot flood the log. */
static void log_call(struct mc_call *call, const char *what, const char *why, size_t why_len)
{
    if (mc_log_limit_take(&call->caller->log_limit, uv_now(call->caller->loop)))
        mc_log_warn("call %s %s: %s: %.*s", call->service, call->method, what, (int)why_len, why);
}

/* detail[0..len) may hold NULs (a service's error string): the client sees them escaped. */
static void answer_error_n(struct mc_call *call, int status, const char *detail, size_t len)
{
    if (status >= 500 || status == 408)
        log_call(call, "failed", detail, len);
    struct mc_buf b;
    mc_buf_init(&b);
    mc_http_error_json_n(&b, CLIENT_ID, status, detail, len);
    char *node = call->node;
    call->node = NULL;
    struct mc_call_answer a = {status, b.data, b.len, node};
    mc_call_done_cb done = call->done;
    void *ctx = call->ctx;
    call_free(call);
    done(ctx, &a);
    mc_free(node);
    mc_buf_close(&b);
}

static void answer_error(struct mc_call *call, int status, const char *detail)
{
    answer_error_n(call, status, detail, strlen(detail));
}

/* The answer for a call whose last attempt failed with err at the transport level. The detail
 * names what was tried and the limit that was hit, so the error says what to look at. */
static void answer_transport_error(struct mc_call *call, int err)
{
    struct mc_buf detail;
    mc_buf_init(&detail);
    int status = 502;
    if (err == MC_ETIMEDOUT) {
        char limit[32];
        mc_duration_text(limit, sizeof limit, call->caller->config.request_timeout_ms);
        status = 408;
        mc_buf_appendf(&detail, "request timeout: %s did not answer within --request_timeout=%s",
                       call->service, limit);
    } else {
        /* a refused head (MC_EHEADER) is the caller's value: nothing was sent, a 400 */
        status = err == MC_EHEADER ? 400 : 502;
        mc_buf_appendf(&detail, "service %s", call->service);
        for (size_t i = 0; i < call->tried_count; i++)
            mc_buf_appendf(&detail, "%s%s", i ? ", " : ": ", call->tried[i]);
        if (!call->tried_count && call->node) /* a direct call (address) */
            mc_buf_appendf(&detail, ": %s", call->node);
        mc_buf_appendf(&detail, ": %s", mc_strerror(err));
    }
    answer_error_n(call, status, detail.data, detail.len);
    mc_buf_close(&detail);
}

/* Starts the next attempt; returns 1 when the call was answered (and freed) instead. */
static int attempt(struct mc_call *call);

static void finish_attempt(struct mc_call *call, int ok)
{
    uint64_t now = uv_now(call->caller->loop);
    if (call->ep) {
        mc_lb_call_done(call->ep, ok, (now - call->attempt_start_ms) * 1000);
        call->ep = NULL;
    }
}

static void on_reply(struct mc_http_call *http, int err, int retryable, void *ctx)
{
    struct mc_call *call = ctx;
    call->http = NULL;
    if (err < 0) {
        finish_attempt(call, err == MC_EHEADER); /* a refused head is no fault of the node */
        call->last_err = err;
        uint64_t now = uv_now(call->caller->loop);
        if (retryable && !call->address && call->attempts <= call->caller->config.retries &&
            now < call->deadline_ms) {
            char what[300];
            snprintf(what, sizeof what, "node %s failed, retrying on another node", call->node);
            log_call(call, what, mc_strerror(err), strlen(mc_strerror(err)));
            attempt(call);
            return;
        }
        answer_transport_error(call, err);
        return;
    }
    const struct mc_buf *body = mc_http_call_body(http);
    struct mc_jsonrpc_reply reply;
    const char *why = "not one JSON object";
    if (mc_jsonrpc_decode_reply(body->data ? body->data : "", body->len, &reply) < 0 ||
        !mc_jsonrpc_reply_answers(&reply, call->id, &why)) {
        mc_jsonrpc_reply_close(&reply);
        finish_attempt(call, 0);
        char detail[320];
        snprintf(detail, sizeof detail, "service %s: invalid JSON-RPC reply from %s: %s",
                 call->service, call->node, why);
        answer_error(call, 502, detail);
        return;
    }
    if (reply.error) {
        /* Carried with its length: a NUL in a service's error string is part of it. */
        int status;
        if (mc_jsonrpc_micro_error(reply.error, reply.error_len, &status)) {
            finish_attempt(call, status < 500);
            answer(call, status, reply.error, reply.error_len); /* the reply is not the call's */
        } else {
            finish_attempt(call, 0);
            struct mc_buf detail;
            mc_buf_init(&detail);
            mc_buf_append_str(&detail, "error during request: ");
            mc_buf_append(&detail, reply.error, reply.error_len);
            answer_error_n(call, 500, detail.data, detail.len);
            mc_buf_close(&detail);
        }
        mc_jsonrpc_reply_close(&reply);
        return;
    }
    finish_attempt(call, 1);
    if (reply.result_len == 0) {
        mc_jsonrpc_reply_close(&reply);
        answer(call, 200, "{}", 2);
        return;
    }
    /* The result goes out byte for byte: copy it out of the client's buffer first, since
     * answering frees the call and with it nothing else, but keeps the bytes independent. */
    size_t start = reply.result_start, len = reply.result_len;
    mc_jsonrpc_reply_close(&reply);
    char *result = mc_strndup(body->data + start, len);
    answer(call, 200, result, len);
    mc_free(result);
}

static int attempt(struct mc_call *call)
{
    struct mc_caller *caller = call->caller;
    uint64_t now = uv_now(caller->loop);
    if (now >= call->deadline_ms) {
        answer_error(call, 408, "request timeout");
        return 1;
    }
    mc_free(call->node);
    call->node = NULL;
    if (call->address) {
        call->node = mc_strdup(call->address);
    } else {
        size_t n;
        const char *const *addrs = mc_caller_addresses(caller, call->service, &n);
        enum mc_lb_status status;
        struct mc_lb_endpoint *ep =
            mc_lb_pick(caller->lb, call->service, addrs, n, (const char *const *)call->tried,
                       call->tried_count, &status);
        if (!ep) {
            char detail[256];
            switch (status) {
            case MC_LB_NO_NODES:
                snprintf(detail, sizeof detail, "service %s: not found", call->service);
                answer_error(call, 404, detail);
                return 1;
            case MC_LB_ALL_EJECTED:
                snprintf(detail, sizeof detail,
                         "service %s: service unavailable (every node ejected)", call->service);
                answer_error(call, 503, detail);
                return 1;
            default:
                answer_transport_error(call, call->last_err ? call->last_err : MC_EUNAVAIL);
                return 1;
            }
        }
        mc_lb_call_start(ep);
        call->ep = ep;
        call->node = mc_strdup(mc_lb_endpoint_address(ep));
        call->tried = mc_realloc(call->tried, (call->tried_count + 1) * sizeof *call->tried);
        call->tried[call->tried_count++] = mc_strdup(call->node);
    }
    call->attempts++;
    call->attempt_start_ms = now;
    uint64_t remaining = call->deadline_ms - now;
    uint64_t dial = caller->config.dial_timeout_ms;
    struct mc_http_call_options o = {
        .address = call->node,
        .method = "POST",
        .target = "/",
        .headers = call->headers,
        .header_count = call->header_count,
        .body = call->request.data,
        .body_len = call->request.len,
        .dial_timeout_ms = dial && dial < remaining ? dial : remaining,
        .timeout_ms = remaining,
        .buffer_body = 1,
        .max_body = caller->config.max_reply,
        .on_done = on_reply,
        .ctx = call,
    };
    call->http = mc_http_call_start(caller->client, &o);
    return 0;
}

static void add_header(struct mc_call *call, size_t *offsets, const char *name, const char *value)
{
    offsets[call->header_count * 2] = call->header_text.len;
    mc_buf_append(&call->header_text, name, strlen(name) + 1);
    offsets[call->header_count * 2 + 1] = call->header_text.len;
    mc_buf_append(&call->header_text, value, strlen(value) + 1);
    call->header_count++;
}

static int dropped_header(const char *name)
{
    return mc_http_hop_by_hop(name) || strcasecmp(name, "Host") == 0 ||
           strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Content-Type") == 0 ||
           strcasecmp(name, "Expect") == 0 || strncasecmp(name, "X-Micro-", 8) == 0;
}

struct mc_call *mc_call_start(struct mc_caller *caller, const struct mc_call_request *req,
                              mc_call_done_cb done, void *ctx)
{
    struct mc_call *call = mc_calloc(1, sizeof *call);
    call->caller = caller;
    call->service = mc_strdup(req->service);
    call->method = mc_strdup(req->method);
    call->address = req->address && *req->address ? mc_strdup(req->address) : NULL;
    call->done = done;
    call->ctx = ctx;
    mc_buf_init(&call->request);
    mc_buf_init(&call->header_text);
    call->id = caller->next_id++;
    mc_jsonrpc_encode_request(&call->request, req->method, req->params ? req->params : "",
                              req->params ? req->params_len : 0, call->id);
    /* Headers: the caller's own (minus hop-by-hop and framing), then ours. Offsets first,
     * pointers after, since header_text grows. */
    size_t max = req->header_count + 3;
    size_t *offsets = mc_calloc(max * 2, sizeof *offsets);
    for (size_t i = 0; i < req->header_count; i++)
        if (!dropped_header(req->headers[i].name))
            add_header(call, offsets, req->headers[i].name, req->headers[i].value);
    add_header(call, offsets, "Content-Type", "application/json");
    add_header(call, offsets, "X-Micro-Service", req->service);
    add_header(call, offsets, "X-Micro-Method", req->method);
    call->headers = mc_calloc(call->header_count, sizeof *call->headers);
    for (size_t i = 0; i < call->header_count; i++) {
        call->headers[i].name = call->header_text.data + offsets[i * 2];
        call->headers[i].value = call->header_text.data + offsets[i * 2 + 1];
    }
    mc_free(offsets);
    call->deadline_ms = uv_now(caller->loop) + caller->config.request_timeout_ms;
    return attempt(call) ? NULL : call;
}

void mc_call_cancel(struct mc_call *call)
{
    if (call->http)
        mc_http_call_cancel(call->http);
    call->http = NULL;
    finish_attempt(call, 1); /* the node did nothing wrong: the client left */
    call_free(call);
}
