/* Calls to services: JSON-RPC over the upstream module's attempts. */
#include "rpc/caller.h"

#include <stdio.h>
#include <string.h>

#include "http/head.h"
#include "rpc/jsonrpc.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/log.h"
#include "util/units.h"

#define CLIENT_ID "go.micro.client"

/* Finished call blocks kept for the next calls (no malloc and free per call in the steady
 * state): at most this many, each of at most SPARE_MAX_SIZE bytes (64 KiB in all); a call
 * that needs more takes a block of its own, freed when it ends. */
#define SPARE_CALLS 16
#define SPARE_MAX_SIZE 4096

struct mc_call;

struct mc_caller {
    struct mc_call *spare[SPARE_CALLS];
    size_t spare_count;
    uv_loop_t *loop;
    struct mc_upstream *upstream;
    struct mc_http_client *client;
    struct mc_caller_config config;
    uint64_t next_id;
};

struct mc_call {
    struct mc_caller *caller;
    size_t block_size; /* what the block holds (sizeof the call and its text) */
    char *service;
    char *method;
    char *address;       /* direct node, or NULL */
    const char *request; /* the JSON-RPC body, built once (in text) */
    size_t request_len;
    uint64_t id;                    /* its JSON-RPC id, which the reply must echo when it has one */
    struct mc_http_header *headers; /* in text: the caller's kept headers (their names and
                                       values borrowed from the request), then ours */
    size_t header_count;
    mc_call_done_cb done;
    void *ctx;
    struct mc_http_call *http;
    struct mc_upstream_try try; /* node choice, tried list, deadline */
    /* One block for everything the call owns (one allocation per call): the header array,
     * then service, method and address, the body. */
    _Alignas(struct mc_http_header) char text[];
};

struct mc_caller *mc_caller_new(uv_loop_t *loop, struct mc_upstream *upstream,
                                struct mc_http_client *client,
                                const struct mc_caller_config *config)
{
    struct mc_caller *c = mc_calloc(1, sizeof *c);
    c->loop = loop;
    c->upstream = upstream;
    c->client = client;
    c->config = *config;
    c->next_id = 1;
    return c;
}

void mc_caller_free(struct mc_caller *caller)
{
    if (!caller)
        return; /* a start-up that failed before the caller was made */
    for (size_t i = 0; i < caller->spare_count; i++)
        mc_free(caller->spare[i]);
    mc_free(caller);
}

struct mc_upstream *mc_caller_upstream(struct mc_caller *caller)
{
    return caller->upstream;
}

/* A block of at least size bytes for a call: a spare one when one is big enough. */
static struct mc_call *call_block(struct mc_caller *caller, size_t size)
{
    for (size_t i = caller->spare_count; i-- > 0;) {
        struct mc_call *call = caller->spare[i];
        if (call->block_size >= size) {
            caller->spare[i] = caller->spare[--caller->spare_count];
            return call;
        }
    }
    if (size < 1024)
        size = 1024; /* a usual call fits, so the block serves the next calls too */
    struct mc_call *call = mc_malloc(size);
    call->block_size = size;
    return call;
}

static void call_free(struct mc_call *call)
{
    mc_upstream_try_close(&call->try);
    struct mc_caller *caller = call->caller;
    if (call->block_size <= SPARE_MAX_SIZE && caller->spare_count < SPARE_CALLS) {
        caller->spare[caller->spare_count++] = call;
        return;
    }
    mc_free(call);
}

/* The node of the last attempt, copied out of the call so that it outlives it until done has
 * read it (the access log's upstream=): into buf[cap] when it fits, else a new string in *heap
 * (NULL otherwise; the caller frees it). NULL when no node was tried. */
static const char *take_node(struct mc_call *call, char *buf, size_t cap, char **heap)
{
    *heap = NULL;
    const char *node = call->try.node;
    if (!node)
        return NULL;
    size_t len = strlen(node) + 1;
    if (len <= cap)
        return memcpy(buf, node, len);
    return *heap = mc_strdup(node);
}

static void answer(struct mc_call *call, int status, const char *body, size_t len)
{
    char buf[MC_HTTP_UPSTREAM_INLINE], *heap;
    const char *node = take_node(call, buf, sizeof buf, &heap);
    struct mc_call_answer a = {status, body, len, node};
    mc_call_done_cb done = call->done;
    void *ctx = call->ctx;
    call_free(call);
    done(ctx, &a);
    if (heap) /* the rule is a node address that fits buf */
        mc_free(heap);
}

/* detail[0..len) may hold NULs (a service's error string): the client sees them escaped. */
static void answer_error_n(struct mc_call *call, int status, const char *detail, size_t len)
{
    if (status >= 500 || status == 408)
        mc_upstream_log(&call->try, "failed", detail, len);
    struct mc_buf b;
    mc_buf_init(&b);
    mc_http_error_json_n(&b, CLIENT_ID, status, detail, len);
    char buf[MC_HTTP_UPSTREAM_INLINE], *heap;
    const char *node = take_node(call, buf, sizeof buf, &heap);
    struct mc_call_answer a = {status, b.data, b.len, node};
    mc_call_done_cb done = call->done;
    void *ctx = call->ctx;
    call_free(call);
    done(ctx, &a);
    mc_free(heap);
    mc_buf_close(&b);
}

static void answer_error(struct mc_call *call, int status, const char *detail)
{
    answer_error_n(call, status, detail, strlen(detail));
}

/* Starts the next attempt; returns 1 when the call was answered (and freed) instead. */
static int attempt(struct mc_call *call);

static void on_reply(struct mc_http_call *http, int err, int retryable, void *ctx)
{
    struct mc_call *call = ctx;
    call->http = NULL;
    if (err < 0) {
        struct mc_buf detail;
        mc_buf_init(&detail);
        int status = mc_upstream_failed(&call->try, err, retryable, &detail);
        if (status)
            answer_error_n(call, status, detail.data, detail.len);
        else
            attempt(call);
        mc_buf_close(&detail);
        return;
    }
    const struct mc_buf *body = mc_http_call_body(http);
    struct mc_jsonrpc_reply reply;
    const char *why = "not one JSON object";
    if (mc_jsonrpc_decode_reply(body->data ? body->data : "", body->len, &reply) < 0 ||
        !mc_jsonrpc_reply_answers(&reply, call->id, &why)) {
        mc_jsonrpc_reply_close(&reply);
        mc_upstream_done(&call->try, 0);
        char detail[320];
        snprintf(detail, sizeof detail, "service %s: invalid JSON-RPC reply from %s: %s",
                 call->service, call->try.node, why);
        answer_error(call, 502, detail);
        return;
    }
    if (reply.error) {
        /* Carried with its length: a NUL in a service's error string is part of it. */
        int status;
        if (mc_jsonrpc_micro_error(reply.error, reply.error_len, &status)) {
            mc_upstream_done(&call->try, status < 500);
            answer(call, status, reply.error, reply.error_len); /* the reply is not the call's */
        } else {
            mc_upstream_done(&call->try, 0);
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
    mc_upstream_done(&call->try, 1);
    if (reply.result_len == 0) {
        mc_jsonrpc_reply_close(&reply);
        answer(call, 200, "{}", 2);
        return;
    }
    /* The result goes out byte for byte, straight from the client's buffer: the HTTP call's
     * body stays valid while its on_done (this function) runs, and answering frees only our
     * call, not the HTTP one. */
    size_t start = reply.result_start, len = reply.result_len;
    mc_jsonrpc_reply_close(&reply);
    answer(call, 200, body->data + start, len);
}

static int attempt(struct mc_call *call)
{
    struct mc_caller *caller = call->caller;
    struct mc_buf detail;
    mc_buf_init(&detail);
    int status = mc_upstream_next(&call->try, &detail);
    if (status) {
        answer_error_n(call, status, detail.data, detail.len);
        mc_buf_close(&detail);
        return 1;
    }
    uint64_t remaining = mc_upstream_remaining(&call->try);
    uint64_t dial = caller->config.dial_timeout_ms;
    struct mc_http_call_options o = {
        .address = call->try.node,
        .method = "POST",
        .target = "/",
        .headers = call->headers,
        .header_count = call->header_count,
        .body = call->request,
        .body_len = call->request_len,
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

/* The headers a call does not pass on: framing and hop-by-hop ones, Host, Expect, and
 * X-Micro-* (ours to set). The first letter rules most names out, then the length (this runs
 * for every header of every call). */
static int dropped_header(const char *name)
{
    switch (name[0] | 0x20) {
    case 'h':
        return mc_http_name_is(name, "host", 4);
    case 'e':
        return mc_http_name_is(name, "expect", 6);
    case 'x':
        return mc_http_name_eq(name, "x-micro-", 8); /* stops at a shorter name's NUL */
    case 'c': {
        size_t n = strlen(name);
        if (n == 12)
            return mc_http_name_eq_words(name, "content-type", 12);
        if (n == 14)
            return mc_http_name_eq_words(name, "content-length", 14);
        return mc_http_hop_by_hop(name);
    }
    case 'u': /* the one hop-by-hop name with a u (User-Agent is the usual header here) */
        return mc_http_name_is(name, "upgrade", 7);
    case 'k': /* every other hop-by-hop name starts with k, p or t */
    case 'p':
    case 't':
        return mc_http_hop_by_hop(name);
    default:
        return 0;
    }
}

/* Copies s[0..n] (its NUL included) to *at and advances it; returns the copy. */
static char *put(char **at, const char *s, size_t n)
{
    char *copy = memcpy(*at, s, n + 1);
    *at += n + 1;
    return copy;
}

struct mc_call *mc_call_start(struct mc_caller *caller, const struct mc_call_request *req,
                              mc_call_done_cb done, void *ctx)
{
    /* Sizes first: the names, a header array with room for all of the request's headers
     * (borrowed: the request outlives its call) and ours, and the body's bound. */
    size_t sl = req->service_len ? req->service_len : strlen(req->service);
    size_t ml = req->method_len ? req->method_len : strlen(req->method);
    size_t al = req->address && *req->address
                    ? (req->address_len ? req->address_len : strlen(req->address))
                    : 0;
    size_t params_len = req->params ? req->params_len : 0;
    /* mc_jsonrpc_encode_request writes at most 53 bytes of framing and digits, the method
     * escaped (6 bytes per byte at worst: \u00XX), and the params (or "{}") */
    size_t body_max = 64 + 6 * ml + params_len;
    size_t header_max = req->header_count + 3;
    size_t size = sizeof(struct mc_call) + header_max * sizeof(struct mc_http_header) + sl + 1 +
                  ml + 1 + (al ? al + 1 : 0) + body_max;
    struct mc_call *call = call_block(caller, size);
    /* every field set here (no memset: the try, the bulk of the call, is set by its init) */
    call->caller = caller;
    call->headers = (struct mc_http_header *)call->text;
    char *at = call->text + header_max * sizeof(struct mc_http_header);
    call->service = put(&at, req->service, sl);
    call->method = put(&at, req->method, ml);
    call->address = al ? put(&at, req->address, al) : NULL;
    call->done = done;
    call->ctx = ctx;
    call->http = NULL;
    /* the kept headers in one pass (minus hop-by-hop and framing), then ours */
    size_t n = 0;
    for (size_t i = 0; i < req->header_count; i++)
        if (!dropped_header(req->headers[i].name))
            call->headers[n++] = req->headers[i];
    call->headers[n++] = (struct mc_http_header){"Content-Type", "application/json"};
    call->headers[n++] = (struct mc_http_header){"X-Micro-Service", call->service};
    call->headers[n++] = (struct mc_http_header){"X-Micro-Method", call->method};
    call->header_count = n;
    /* The body, encoded into the rest of the block through a buffer that views it: its
     * capacity is the bound above, so it never grows (and so never frees or moves the view). */
    call->id = caller->next_id++;
    struct mc_buf body = {.data = at, .len = 0, .cap = body_max};
    mc_jsonrpc_encode_request(&body, req->method, req->params ? req->params : "", params_len,
                              call->id);
    call->request = body.data;
    call->request_len = body.len;
    mc_upstream_try_init(&call->try, caller->upstream, call->service, call->method, call->address,
                         408);
    return attempt(call) ? NULL : call;
}

void mc_call_cancel(struct mc_call *call)
{
    if (call->http)
        mc_http_call_cancel(call->http);
    call->http = NULL;
    call_free(call); /* an attempt in flight is a success: the node did nothing wrong */
}
