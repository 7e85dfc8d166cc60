/* gRPC proxying (see grpc_api.h). One struct grpc_call per client stream: the upstream try
 * (node choice, retries, ejection), the HTTP/2 stream to the node, a deadline timer, and a
 * replay buffer of the request body for the only retry gRPC allows: to a node that provably
 * never saw the stream. */
#include "api/grpc_api.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/h2_client.h"
#include "http/head.h"
#include "rpc/caller.h"
#include "stats/stats.h"
#include "upstream/upstream.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/log.h"

#define GRPC_HIGH_WATER (256 * 1024) /* queued bytes that pause the other side */
#define GRPC_REPLAY_MAX (64 * 1024)  /* request body kept to replay on a retry */
#define GRPC_MAX_VERSIONS 16

struct grpc_call {
    struct mc_http_request *req; /* NULL once the client went away */
    struct mc_api *api;
    char *service; /* NULL: no known service (stats pool it) */
    char *method;  /* the request path */
    struct mc_h2_call *stream;
    struct mc_upstream_try try;
    uv_timer_t timer; /* the call's deadline; the call is freed by its close callback */
    uint64_t timeout_ms;
    struct mc_http_header_list headers; /* forwarded to the node, borrowed from req */
    char timeout_text[24];              /* the grpc-timeout sent: what is left of ours */
    const char *authority;
    struct mc_buf replay;
    int replay_overflow, body_done, got_head, finished;
    int grpc_status; /* for the stats: the node's, or the sidecar's own */
};

uint64_t mc_grpc_timeout_ms(const char *v)
{
    uint64_t n = 0;
    size_t i = 0;
    for (; v[i] >= '0' && v[i] <= '9'; i++) {
        if (i == 8)
            return 0;
        n = n * 10 + (uint64_t)(v[i] - '0');
    }
    if (i == 0 || v[i] == '\0' || v[i + 1] != '\0') /* a unit, and nothing after it */
        return 0;
    uint64_t ms;
    switch (v[i]) {
    case 'H':
        ms = n * 3600000;
        break;
    case 'M':
        ms = n * 60000;
        break;
    case 'S':
        ms = n * 1000;
        break;
    case 'm':
        ms = n;
        break;
    case 'u':
        ms = (n + 999) / 1000;
        break;
    case 'n':
        ms = (n + 999999) / 1000000;
        break;
    default:
        return 0;
    }
    return ms ? ms : 1;
}

void mc_grpc_message_encode(struct mc_buf *out, const char *text)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
            mc_buf_append(out, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            mc_buf_append(out, e, 3);
        }
    }
    mc_buf_append(out, "", 1);
    out->len--;
}

/* A trailers-only answer of the sidecar's own: HTTP 200, grpc-status and grpc-message in the
 * one HEADERS frame that ends the stream. */
static void respond_status(struct mc_http_request *req, int code, const char *message)
{
    char status[16];
    snprintf(status, sizeof status, "%d", code);
    struct mc_buf msg;
    mc_buf_init(&msg);
    mc_grpc_message_encode(&msg, message);
    struct mc_http_header extra[2] = {{"grpc-status", status}, {"grpc-message", msg.data}};
    mc_http_respond(req, 200, "application/grpc", extra, 2, NULL, 0);
    mc_buf_close(&msg);
}

/* ---- which service ---- */

static int known_service(struct mc_api *api, const char *name)
{
    const struct mc_service *versions[1];
    return mc_registry_lookup(api->registry, name, versions, 1) > 0;
}

/* The target service (SPEC order): micro-service; else the longest registered name that,
 * followed by a dot, begins the first path segment; else the :authority host when it names a
 * registered service. *named is set when the client named it (micro-service): then it is
 * returned even when unknown. NULL when nothing names a service. */
static char *resolve_service(struct mc_api *api, struct mc_http_request *req, int *named)
{
    *named = 0;
    const char *h = mc_http_request_header(req, "micro-service");
    if (h && *h) {
        *named = 1;
        return mc_strdup(h);
    }
    const char *seg = req->path_len > 1 ? req->path + 1 : "";
    size_t seg_len = req->path_len > 1 ? req->path_len - 1 : 0;
    const char *slash = memchr(seg, '/', seg_len);
    if (slash)
        seg_len = (size_t)(slash - seg);
    /* longest first: one lookup per dot, from the right */
    for (size_t i = seg_len; i > 1; i--) {
        if (seg[i - 1] != '.')
            continue;
        char *cand = mc_strndup(seg, i - 1);
        if (known_service(api, cand))
            return cand;
        mc_free(cand);
    }
    const char *authority = mc_http_request_header(req, ":authority");
    if (!authority)
        authority = mc_http_request_header(req, "host");
    if (authority && *authority) {
        char host[256];
        int port;
        const char *name = authority;
        if (mc_net_split_host_port(authority, host, sizeof host, &port) == 0)
            name = host;
        if (strlen(name) < sizeof host && known_service(api, name))
            return mc_strdup(name);
    }
    return NULL;
}

/* Whether the node at address (one of service's) says "secure":"true" in its metadata. */
static int node_secure(struct mc_api *api, const char *service, const char *address)
{
    const struct mc_service *versions[GRPC_MAX_VERSIONS];
    size_t nv = mc_registry_lookup(api->registry, service, versions, GRPC_MAX_VERSIONS);
    char text[300];
    for (size_t v = 0; v < nv; v++)
        for (size_t i = 0; i < versions[v]->node_count; i++) {
            const struct mc_node *n = &versions[v]->nodes[i];
            int v6 = strchr(n->address, ':') != NULL;
            snprintf(text, sizeof text, v6 ? "[%s]:%d" : "%s:%d",
                     n->address[0] ? n->address : "127.0.0.1", n->port);
            if (strcmp(text, address) != 0)
                continue;
            json_t *s = n->metadata ? json_object_get(n->metadata, "secure") : NULL;
            return s && json_is_string(s) && strcmp(json_string_value(s), "true") == 0;
        }
    return 0;
}

/* ---- the call's life ---- */

static void call_closed(uv_handle_t *h)
{
    struct grpc_call *c = h->data;
    mc_free(c->service);
    mc_free(c->method);
    mc_http_header_list_close(&c->headers);
    mc_buf_close(&c->replay);
    mc_free(c);
}

/* Ends the call: detaches it from the request (answered by the caller, or gone), stops the
 * node's stream (RST_STREAM CANCEL when it still runs), counts it, and frees it. */
static void call_finish(struct grpc_call *c)
{
    if (c->finished)
        return;
    c->finished = 1;
    if (c->req) {
        c->req->on_abort = NULL;
        c->req->on_body = NULL;
        c->req->handler_data = NULL;
        c->req = NULL;
    }
    if (c->stream) {
        mc_h2_call_cancel(c->stream);
        c->stream = NULL;
    }
    mc_upstream_try_close(&c->try);
    if (c->api->stats)
        mc_stats_grpc_call(c->api->stats, c->service, c->method, c->grpc_status);
    uv_close((uv_handle_t *)&c->timer, call_closed);
}

/* Answers a trailers-only status and ends the call. */
static void fail_call(struct grpc_call *c, int code, const char *message)
{
    struct mc_http_request *req = c->req;
    c->grpc_status = code;
    if (c->try.node)
        mc_http_request_set_upstream(req, c->try.node);
    call_finish(c);
    respond_status(req, code, message);
}

static int attempt(struct grpc_call *c);

/* The grpc-status a node's headers or trailers carry; -1 when absent. */
static int status_of(const struct mc_http_header *h, size_t n)
{
    const char *v = mc_http_headers_find(h, n, "grpc-status");
    if (!v || !isdigit((unsigned char)v[0]))
        return -1;
    return atoi(v);
}

static void download_drained(struct mc_http_request *req)
{
    struct grpc_call *c = req->handler_data;
    if (c && c->stream)
        mc_h2_call_resume(c->stream);
}

static void on_node_head(struct mc_h2_call *s, const struct mc_h2_response_head *head, void *ctx)
{
    (void)s;
    struct grpc_call *c = ctx;
    struct mc_http_request *req = c->req;
    c->got_head = 1;
    mc_buf_close(&c->replay);
    mc_upstream_done(&c->try, head->status < 500);
    mc_http_request_set_upstream(req, c->try.node);
    /* the node's fields but framing ones (the codec frames) */
    struct mc_http_header stack[32];
    struct mc_http_header *out =
        head->header_count <= 32 ? stack : mc_calloc(head->header_count, sizeof *out);
    size_t n = 0;
    for (size_t i = 0; i < head->header_count; i++) {
        const char *name = head->headers[i].name;
        if (strcmp(name, "content-length") == 0 || mc_http_hop_by_hop(name))
            continue;
        out[n++] = head->headers[i];
    }
    if (head->end_stream) {
        /* trailers-only (a gRPC error): passed on as one HEADERS frame that ends the stream */
        c->grpc_status = status_of(out, n);
        c->stream = NULL;     /* the stream is done: its on_done follows, then it is freed */
        mc_h2_call_cancel(s); /* no callback: the answer is complete */
        call_finish(c);
        mc_http_respond(req, head->status, NULL, out, n, NULL, 0);
    } else {
        mc_http_response_begin(req, head->status, out, n, MC_HTTP_LENGTH_UNKNOWN);
    }
    if (out != stack)
        mc_free(out);
}

static void on_node_data(struct mc_h2_call *s, const char *data, size_t len, void *ctx)
{
    struct grpc_call *c = ctx;
    struct mc_http_request *req = c->req;
    mc_http_response_write(req, data, len);
    if (mc_http_request_pending_output(req) > GRPC_HIGH_WATER) {
        /* the node may send one more window, then waits for the client to read */
        mc_h2_call_pause(s);
        mc_http_request_on_drain_within(req, download_drained,
                                        c->api->config->proxy_idle_timeout_ms);
    }
}

/* The status a node's reset of a stream that had not answered maps to (as gRPC clients map
 * RST_STREAM codes). */
static int reset_status(uint32_t code)
{
    switch (code) {
    case 0x8: /* CANCEL */
        return MC_GRPC_CANCELLED;
    case 0x7: /* REFUSED_STREAM */
        return MC_GRPC_UNAVAILABLE;
    default:
        return MC_GRPC_INTERNAL;
    }
}

/* Ends a call whose response head was already sent with the sidecar's own status as its
 * trailers (a gRPC client reads the reason there; a reset stream would say only INTERNAL). */
static void end_with_status(struct grpc_call *c, int code, const char *message)
{
    struct mc_http_request *req = c->req;
    c->grpc_status = code;
    call_finish(c);
    char code_text[12];
    snprintf(code_text, sizeof code_text, "%d", code);
    struct mc_buf enc;
    mc_buf_init(&enc);
    mc_grpc_message_encode(&enc, message);
    struct mc_http_header tr[2] = {{"grpc-status", code_text}, {"grpc-message", enc.data}};
    mc_http_response_trailers(req, tr, 2);
    mc_http_response_end(req, 1);
    mc_buf_close(&enc);
}

static void on_node_done(struct mc_h2_call *s, const struct mc_h2_done *d, void *ctx)
{
    (void)s;
    struct grpc_call *c = ctx;
    struct mc_http_request *req = c->req;
    c->stream = NULL;
    if (c->got_head) {
        if (d->err == 0) {
            c->grpc_status = status_of(d->trailers, d->trailer_count);
            call_finish(c);
            if (d->trailer_count)
                mc_http_response_trailers(req, d->trailers, d->trailer_count);
            mc_http_response_end(req, 1);
        } else {
            /* cut mid-stream (the node reset it, or the connection went): the client gets
             * the status that says so as trailers */
            char msg[200];
            int code;
            if (d->err == MC_ECANCELED) {
                code = reset_status(d->reset_code);
                snprintf(msg, sizeof msg, "node %s reset the stream (HTTP/2 error %u)",
                         c->try.node ? c->try.node : "-", d->reset_code);
            } else {
                code = MC_GRPC_UNAVAILABLE;
                snprintf(msg, sizeof msg, "node %s: the stream was cut: %s",
                         c->try.node ? c->try.node : "-", mc_strerror(d->err));
            }
            end_with_status(c, code, msg);
        }
        return;
    }
    /* No answer yet: the upstream's retry rule (only a stream the node never saw), and the
     * replay buffer's (the body sent so far must be replayable). */
    struct mc_buf detail;
    mc_buf_init(&detail);
    int status = mc_upstream_failed(&c->try, d->err, d->retryable && !c->replay_overflow, &detail);
    if (status == 0) {
        mc_buf_close(&detail);
        attempt(c);
        return;
    }
    mc_upstream_log(&c->try, "failed", detail.data, detail.len);
    int code = MC_GRPC_UNAVAILABLE;
    if (d->err == MC_ETIMEDOUT && status == c->try.timeout_status)
        code = MC_GRPC_DEADLINE_EXCEEDED;
    else if (d->err == MC_EHEADER)
        code = MC_GRPC_INTERNAL;
    else if (d->err == MC_ECANCELED)
        code = reset_status(d->reset_code);
    fail_call(c, code, detail.data);
    mc_buf_close(&detail);
}

static void deadline_fire(uv_timer_t *t)
{
    struct grpc_call *c = t->data;
    char msg[160];
    snprintf(msg, sizeof msg, "deadline exceeded: %s did not answer within %llums",
             c->service ? c->service : "the service", (unsigned long long)c->timeout_ms);
    if (!c->got_head) {
        if (c->try.ep) {
            struct mc_buf detail;
            mc_buf_init(&detail);
            mc_upstream_failed(&c->try, MC_ETIMEDOUT, 0, &detail); /* a node's failure */
            mc_buf_close(&detail);
        }
        fail_call(c, MC_GRPC_DEADLINE_EXCEEDED, msg);
        return;
    }
    /* mid-stream: the node's stream is cancelled, the client gets the status as trailers */
    end_with_status(c, MC_GRPC_DEADLINE_EXCEEDED, msg);
}

/* ---- the request: client -> node ---- */

static void upload_drained(struct mc_h2_call *s, void *ctx)
{
    (void)s;
    struct grpc_call *c = ctx;
    if (c->req)
        mc_http_request_resume(c->req);
}

static void end_upload(struct grpc_call *c)
{
    struct mc_http_request *req = c->req;
    /* MC_ECLOSED: the stream failed already, and its on_done tells how */
    if (mc_h2_call_end(c->stream, req->trailers, req->trailer_count) == MC_EHEADER) {
        /* a trailer the node must not get (no token, or CR/LF/NUL): nothing more is sent */
        mc_upstream_done(&c->try, 1);
        fail_call(c, MC_GRPC_INTERNAL, "request trailer not allowed");
    }
}

static void on_client_body(struct mc_http_request *req, const char *data, size_t len)
{
    struct grpc_call *c = req->handler_data;
    if (!c)
        return;
    if (!data) {
        c->body_done = 1;
        if (c->stream)
            end_upload(c);
        return;
    }
    if (!c->got_head && !c->replay_overflow) {
        if (c->replay.len + len <= GRPC_REPLAY_MAX) {
            mc_buf_append(&c->replay, data, len);
        } else {
            c->replay_overflow = 1;
            mc_buf_close(&c->replay);
        }
    }
    if (!c->stream)
        return;
    mc_h2_call_write(c->stream, data, len);
    if (mc_h2_call_pending(c->stream) > GRPC_HIGH_WATER) {
        mc_http_request_pause(req);
        mc_h2_call_on_drain(c->stream, upload_drained);
    }
}

/* The client reset its stream or went away: the node's stream is cancelled (RST_STREAM
 * CANCEL), which the node sees as CANCELLED. */
static void on_client_abort(struct mc_http_request *req)
{
    struct grpc_call *c = req->handler_data;
    c->req = NULL;
    c->grpc_status = MC_GRPC_CANCELLED;
    call_finish(c);
}

/* Picks a node and starts the stream; returns 1 when the call was answered instead. */
static int attempt(struct grpc_call *c)
{
    struct mc_buf detail;
    mc_buf_init(&detail);
    int status = mc_upstream_next(&c->try, &detail);
    if (status) {
        int code =
            status == c->try.timeout_status ? MC_GRPC_DEADLINE_EXCEEDED : MC_GRPC_UNAVAILABLE;
        fail_call(c, code, detail.data);
        mc_buf_close(&detail);
        return 1;
    }
    mc_buf_close(&detail);
    int secure = node_secure(c->api, c->service, c->try.node);
    snprintf(c->timeout_text, sizeof c->timeout_text, "%llum",
             (unsigned long long)mc_upstream_remaining(&c->try));
    struct mc_h2_call_options o = {
        .address = c->try.node,
        .secure = secure,
        .method = "POST",
        .scheme = secure ? "https" : "http",
        .authority = c->authority,
        .path = c->method,
        .headers = c->headers.items,
        .header_count = c->headers.count,
        .on_head = on_node_head,
        .on_data = on_node_data,
        .on_done = on_node_done,
        .ctx = c,
    };
    c->stream = mc_h2_call_start(c->api->h2, &o);
    if (c->replay.len)
        mc_h2_call_write(c->stream, c->replay.data, c->replay.len);
    if (c->body_done)
        end_upload(c);
    return 0;
}

/* The node gets the client's fields but hop-by-hop ones ("te: trailers" aside), Host (the
 * :authority carries it) and grpc-timeout, which is replaced by what is left of the deadline. */
static void build_headers(struct grpc_call *c, struct mc_http_request *req)
{
    mc_http_header_list_init(&c->headers, req->header_count + 1);
    for (size_t i = 0; i < req->header_count; i++) {
        const char *name = req->headers[i].name;
        if (name[0] == ':')
            continue;
        if (mc_http_name_is(name, "host", 4)) {
            if (!c->authority)
                c->authority = req->headers[i].value;
            continue;
        }
        if (mc_http_name_is(name, "grpc-timeout", 12))
            continue;
        if (mc_http_hop_by_hop(name) && !mc_http_name_is(name, "te", 2))
            continue;
        mc_http_header_list_add(&c->headers, name, req->headers[i].value);
    }
    mc_http_header_list_add(&c->headers, "grpc-timeout", c->timeout_text);
}

void mc_api_grpc(struct mc_http_request *req, struct mc_api *api)
{
    if (req->http_major < 2) {
        mc_http_respond_error(req, 505, "go.micro.sidecar",
                              "gRPC needs HTTP/2 (its status travels in trailers, which HTTP/1.1 "
                              "responses here cannot carry): use h2c or h2");
        return;
    }
    struct grpc_call *c = mc_calloc(1, sizeof *c);
    c->req = req;
    c->api = api;
    c->method = mc_strndup(req->path, req->path_len);
    c->grpc_status = MC_GRPC_UNKNOWN;
    mc_buf_init(&c->replay);
    uv_timer_init(api->net->loop, &c->timer);
    c->timer.data = c;
    const char *t = mc_http_request_header(req, "grpc-timeout");
    c->timeout_ms = t ? mc_grpc_timeout_ms(t) : 0;
    if (!c->timeout_ms)
        c->timeout_ms = api->config->request_timeout_ms;
    int named;
    char *service = resolve_service(api, req, &named);
    mc_upstream_try_init(&c->try, mc_caller_upstream(api->caller), service ? service : "-",
                         c->method, NULL, 504);
    c->try.deadline_ms = uv_now(api->net->loop) + c->timeout_ms;
    if (!service) {
        char msg[200];
        snprintf(msg, sizeof msg, "unknown service: no registered service is named by %.*s",
                 (int)(req->path_len < 120 ? req->path_len : 120), req->path);
        fail_call(c, MC_GRPC_UNIMPLEMENTED, msg);
        return;
    }
    c->service = service;
    c->try.service = c->service;
    c->authority = mc_http_request_header(req, ":authority");
    build_headers(c, req);
    req->handler_data = c;
    req->on_body = on_client_body;
    req->on_abort = on_client_abort;
    uv_timer_start(&c->timer, deadline_fire, c->timeout_ms, 0);
    (void)named; /* a named service that is unknown has no node: 14, from the upstream */
    attempt(c);
}
