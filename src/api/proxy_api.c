/* --handler=proxy (SPEC 3.3): /foo/anything is reverse-proxied to a node of
 * <namespace>.foo, path and query unchanged, with X-Forwarded-* headers, bodies streamed
 * both ways under bounded memory, and WebSocket (any 101) upgrades tunnelled. Connect
 * failures are retried on another node while the request body sent so far still fits the
 * replay buffer. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "http/head.h"
#include "rpc/caller.h"
#include "rpc/route.h"
#include "util/alloc.h"
#include "util/log.h"
#include "upstream/upstream.h"

#define PROXY_ID "go.micro.sidecar"
#define PROXY_HIGH_WATER (256 * 1024) /* queued bytes that pause the other side */
#define PROXY_REPLAY_MAX (64 * 1024)  /* body bytes kept to replay on a retry */

struct mc_proxy {
    struct mc_http_request *req;
    struct mc_api *api;
    char *service; /* service_inline, or a new string when the name is longer */
    struct mc_http_call *call;
    struct mc_upstream_try try; /* node choice, tried list, deadline, balancer accounting */
    const char *node;           /* the attempt in flight (try.node) */
    char peer[48];
    char *forwarded_for; /* "<their X-Forwarded-For>, <peer>" when the client sent one */
    struct mc_http_header_list headers;
    int has_body, body_done;
    struct mc_buf replay;
    int replay_overflow;
    int got_head;
    char service_inline[128];
};

/* Finished proxy states kept for the next request (with their header array), on the api's
 * list: a steady stream of proxied requests allocates none. Bounded. */
#define PROXY_FREE_MAX 64

static struct mc_proxy *proxy_new(struct mc_api *api)
{
    struct mc_proxy *p = api->spare_proxies;
    if (!p) {
        p = mc_calloc(1, sizeof *p);
        p->api = api;
        return p;
    }
    api->spare_proxies = (struct mc_proxy *)p->req; /* the list's link while free */
    api->spare_proxy_count--;
    struct mc_http_header_list headers = p->headers;
    memset(p, 0, sizeof *p);
    p->headers = headers;
    p->headers.count = 0;
    p->api = api;
    return p;
}

static void proxy_free(struct mc_proxy *p)
{
    if (p->req) {
        p->req->on_abort = NULL;
        p->req->on_body = NULL;
        p->req->handler_data = NULL;
    }
    mc_upstream_try_close(&p->try);
    if (p->service != p->service_inline)
        mc_free(p->service);
    p->service = NULL;
    mc_free(p->forwarded_for);
    mc_buf_close(&p->replay);
    struct mc_api *api = p->api;
    if (api->spare_proxy_count >= PROXY_FREE_MAX || p->headers.blocks || p->headers.cap > 64) {
        mc_http_header_list_close(&p->headers);
        mc_free(p);
        return;
    }
    p->req = (struct mc_http_request *)api->spare_proxies;
    api->spare_proxies = p;
    api->spare_proxy_count++;
}

void mc_api_proxy_free_spares(struct mc_api *api)
{
    while (api->spare_proxies) {
        struct mc_proxy *p = api->spare_proxies;
        api->spare_proxies = (struct mc_proxy *)p->req;
        mc_http_header_list_close(&p->headers);
        mc_free(p);
    }
    api->spare_proxy_count = 0;
}

static void lb_done(struct mc_proxy *p, int ok)
{
    mc_upstream_done(&p->try, ok);
}

/* ---- WebSocket / 101 tunnel: two raw connections copying into each other ---- */

/* Every open tunnel is on its api's list, so shutdown can close the ones still open
 * (mc_api_proxy_close_tunnels) and the idle sweep can find the silent ones; a tunnel leaves
 * the list when its second end has closed. */
struct mc_proxy_tunnel {
    struct mc_api *api;
    struct mc_conn *client, *node;
    int open;
    uint64_t last_active_ms; /* loop time of the last byte read or written either way */
    struct mc_proxy_tunnel *prev, *next;
};

/* A tunnel with no byte either way for --proxy_idle_timeout is closed (as nginx's
 * proxy_read_timeout closes an upgraded connection): a WebSocket whose client and app both
 * went silent, or whose reader stopped, does not hold two connections for ever. One timer
 * for all tunnels, every quarter of the timeout while any is open, instead of a timer (and a
 * restart per message) each: a tunnel goes between 1 and 1.25 timeouts after its last byte. */
static uint64_t tunnel_sweep_period(const struct mc_api *api)
{
    uint64_t period = api->config->proxy_idle_timeout_ms / 4;
    return period > 100 ? period : 100;
}

static void tunnel_sweep(uv_timer_t *timer)
{
    struct mc_api *api = timer->data;
    uint64_t now = uv_now(api->net->loop), timeout = api->config->proxy_idle_timeout_ms;
    int open = 0;
    for (struct mc_proxy_tunnel *t = api->tunnels; t; t = t->next) {
        if (t->open < 2)
            continue; /* one end closed: the other is closing (flushing, bounded by linger) */
        if (now - t->last_active_ms < timeout) {
            open = 1;
            continue;
        }
        mc_log_debug("proxy: tunnel closed after %llu ms without a byte either way",
                     (unsigned long long)(now - t->last_active_ms));
        mc_conn_close(t->client, 1);
        mc_conn_close(t->node, 1);
    }
    if (!open)
        uv_timer_stop(timer);
}

static void tunnel_sweep_start(struct mc_api *api)
{
    if (!api->tunnel_sweep_ready) {
        uv_timer_init(api->net->loop, &api->tunnel_sweep);
        api->tunnel_sweep.data = api;
        api->tunnel_sweep_ready = 1;
    }
    if (!uv_is_active((uv_handle_t *)&api->tunnel_sweep)) {
        uint64_t period = tunnel_sweep_period(api);
        uv_timer_start(&api->tunnel_sweep, tunnel_sweep, period, period);
    }
}

static struct mc_conn *peer_of(struct mc_proxy_tunnel *t, struct mc_conn *c)
{
    return c == t->client ? t->node : t->client;
}

static void tunnel_read(struct mc_conn *c, const char *data, ssize_t nread)
{
    struct mc_proxy_tunnel *t = c->data;
    struct mc_conn *other = peer_of(t, c);
    if (nread < 0) {
        mc_conn_close(c, 1);
        mc_conn_close(other, 0); /* flush what it still owes, then close */
        return;
    }
    t->last_active_ms = uv_now(t->api->net->loop);
    mc_conn_write_copy(other, data, (size_t)nread);
    mc_conn_flush(other);
    if (mc_conn_pending(other) > PROXY_HIGH_WATER)
        mc_conn_read_stop(c);
}

static void tunnel_drain(struct mc_conn *c)
{
    struct mc_proxy_tunnel *t = c->data;
    t->last_active_ms = uv_now(t->api->net->loop); /* a slow reader still taking bytes */
    mc_conn_read_start(peer_of(t, c));
}

static void tunnel_closed(struct mc_conn *c)
{
    struct mc_proxy_tunnel *t = c->data;
    struct mc_conn *other = peer_of(t, c);
    mc_conn_free(c);
    if (--t->open > 0) {
        mc_conn_close(other, 0);
        return;
    }
    if (t->prev)
        t->prev->next = t->next;
    else
        t->api->tunnels = t->next;
    if (t->next)
        t->next->prev = t->prev;
    mc_free(t);
}

void mc_api_proxy_close_tunnels(struct mc_api *api)
{
    for (struct mc_proxy_tunnel *t = api->tunnels; t; t = t->next) {
        mc_conn_close(t->client, 1);
        mc_conn_close(t->node, 1);
    }
    if (api->tunnel_sweep_ready && !uv_is_closing((uv_handle_t *)&api->tunnel_sweep))
        uv_close((uv_handle_t *)&api->tunnel_sweep, NULL); /* lives in api: nothing to free */
}

static void start_tunnel(struct mc_proxy *p, int status, const struct mc_http_header *headers,
                         size_t count)
{
    struct mc_http_request *req = p->req;
    struct mc_buf from_client, from_node;
    struct mc_proxy_tunnel *t = mc_calloc(1, sizeof *t);
    t->api = p->api;
    t->next = t->api->tunnels;
    if (t->next)
        t->next->prev = t;
    t->api->tunnels = t;
    t->node = mc_http_call_take_conn(p->call, &from_node);
    p->call = NULL;
    t->client = mc_http_upgrade(req, status, headers, count, &from_client);
    p->req = NULL;
    t->open = 2;
    t->last_active_ms = uv_now(t->api->net->loop);
    tunnel_sweep_start(t->api);
    struct mc_conn *ends[2] = {t->client, t->node};
    for (int i = 0; i < 2; i++) {
        ends[i]->data = t;
        ends[i]->on_read = tunnel_read;
        ends[i]->on_drain = tunnel_drain;
        ends[i]->on_close = tunnel_closed;
    }
    mc_conn_write_copy(t->node, from_client.data, from_client.len);
    mc_conn_write_copy(t->client, from_node.data, from_node.len);
    mc_buf_close(&from_client);
    mc_buf_close(&from_node);
    mc_conn_flush(t->node);
    mc_conn_flush(t->client);
    mc_conn_read_start(t->client);
    mc_conn_read_start(t->node);
}

/* ---- the response: node -> client ---- */

/* Past the client's high-water mark the node is paused until the client takes its output;
 * a client that takes none of it for --proxy_idle_timeout is dropped (its request aborts,
 * which cancels the node call), so a reader that stopped cannot hold both ends for ever. */
static void download_drained(struct mc_http_request *req)
{
    struct mc_proxy *p = req->handler_data;
    if (p && p->call)
        mc_http_call_resume(p->call);
}

static void on_head(struct mc_http_call *call, const struct mc_http_response_head *head, void *ctx)
{
    struct mc_proxy *p = ctx;
    struct mc_http_request *req = p->req;
    if (head->upgrade && !req->upgrade) {
        /* A switch nobody asked for: passing it on would turn the client's HTTP connection
         * into something it never agreed to. (A 101 naming no protocol fails in the client.) */
        char detail[256];
        snprintf(detail, sizeof detail, "service %s: unsolicited 101 from %s", p->service, p->node);
        lb_done(p, 0);
        mc_http_call_cancel(call);
        p->call = NULL;
        proxy_free(p);
        mc_http_respond_error(req, 502, PROXY_ID, detail);
        return;
    }
    p->got_head = 1;
    mc_buf_close(&p->replay);
    lb_done(p, head->status < 500);
    /* The node's address for the access log (into the request's inline room): no retry
     * follows, but the state may be freed before the request is reported. */
    mc_http_request_set_upstream(req, p->node);
    /* The node's headers minus hop-by-hop ones (kept for an upgrade) and its framing: the
     * codec frames the body for this client. Interim 1xx heads never reach on_head. */
    struct mc_http_header stack[32];
    struct mc_http_header *out =
        head->header_count <= 32 ? stack : mc_calloc(head->header_count, sizeof *out);
    size_t n = 0;
    for (size_t i = 0; i < head->header_count; i++) {
        const char *name = head->headers[i].name;
        if (!head->upgrade && mc_http_hop_by_hop(name))
            continue;
        /* framing is the codec's; the first letter rules most names out without a call */
        int first = tolower((unsigned char)name[0]);
        if ((first == 'c' && strcasecmp(name, "Content-Length") == 0) ||
            (first == 't' && strcasecmp(name, "Transfer-Encoding") == 0))
            continue;
        out[n++] = head->headers[i];
    }
    if (head->upgrade) {
        start_tunnel(p, head->status, out, n);
        proxy_free(p);
    } else {
        mc_http_response_begin(req, head->status, out, n,
                               head->has_content_length ? head->content_length
                                                        : MC_HTTP_LENGTH_UNKNOWN);
    }
    if (out != stack)
        mc_free(out);
}

static void on_node_body(struct mc_http_call *call, const char *data, size_t len, void *ctx)
{
    struct mc_proxy *p = ctx;
    struct mc_http_request *req = p->req;
    mc_http_response_write(req, data, len);
    if (mc_http_request_pending_output(req) > PROXY_HIGH_WATER) {
        mc_http_call_pause(call);
        mc_http_request_on_drain_within(req, download_drained,
                                        p->api->config->proxy_idle_timeout_ms);
    }
}

static int attempt(struct mc_proxy *p);

/* Answers the upstream's final error (detail is closed here): the same detail as /rpc's,
 * naming the nodes tried, under the proxy's own error id. */
static void respond_failure(struct mc_proxy *p, int status, struct mc_buf *detail)
{
    struct mc_http_request *req = p->req;
    if (status >= 500)
        mc_upstream_log(&p->try, "failed", detail->data, detail->len);
    mc_http_request_set_upstream(req, p->node); /* the last node tried, for the access log */
    proxy_free(p);
    mc_http_respond_error(req, status, PROXY_ID, detail->data);
    mc_buf_close(detail);
}

static void on_done(struct mc_http_call *call, int err, int retryable, void *ctx)
{
    (void)call;
    struct mc_proxy *p = ctx;
    struct mc_http_request *req = p->req;
    p->call = NULL;
    if (p->got_head) {
        /* A node failing mid-body: the codec shows the client a cut body (HTTP/1: it closes). */
        proxy_free(p);
        mc_http_response_end(req, err == 0);
        return;
    }
    /* Nothing reached the client yet: the upstream's retry rule, plus ours (the body sent so
     * far must still fit the replay buffer), and its error mapping. */
    struct mc_buf detail;
    mc_buf_init(&detail);
    int status = mc_upstream_failed(&p->try, err, retryable && !p->replay_overflow, &detail);
    if (status == 0) {
        mc_buf_close(&detail);
        attempt(p);
        return;
    }
    respond_failure(p, status, &detail);
}

/* ---- the request: client -> node ---- */

static void upload_drained(struct mc_http_call *call, void *ctx)
{
    (void)call;
    struct mc_proxy *p = ctx;
    if (p->req)
        mc_http_request_resume(p->req);
}

static void on_client_body(struct mc_http_request *req, const char *data, size_t len)
{
    struct mc_proxy *p = req->handler_data;
    if (!p || !p->call)
        return;
    if (!data) {
        p->body_done = 1;
        if (p->has_body)
            mc_http_call_end(p->call);
        return;
    }
    if (!p->got_head && !p->replay_overflow) {
        if (p->replay.len + len <= PROXY_REPLAY_MAX) {
            mc_buf_append(&p->replay, data, len);
        } else {
            p->replay_overflow = 1;
            mc_buf_close(&p->replay);
        }
    }
    mc_http_call_write(p->call, data, len);
    if (mc_http_call_pending(p->call) > PROXY_HIGH_WATER) {
        mc_http_request_pause(req);
        mc_http_call_on_drain(p->call, upload_drained);
    }
}

static void on_client_abort(struct mc_http_request *req)
{
    struct mc_proxy *p = req->handler_data;
    p->req = NULL;
    if (p->call)
        mc_http_call_cancel(p->call);
    lb_done(p, 1);
    proxy_free(p);
}

/* The node sees the client's headers minus hop-by-hop ones (kept for an upgrade, which needs
 * Connection and Upgrade), plus X-Forwarded-For/-Proto/-Host. Names and values point into the
 * request, which outlives every attempt, so nothing is copied. */
static void build_headers(struct mc_proxy *p, struct mc_http_request *req)
{
    const char *xff = NULL, *host = NULL;
    if (p->headers.cap < req->header_count + 3) {
        mc_http_header_list_close(&p->headers);
        mc_http_header_list_init(&p->headers,
                                 req->header_count + 3 < 16 ? 16 : req->header_count + 3);
    }
    for (size_t i = 0; i < req->header_count; i++) {
        const char *name = req->headers[i].name;
        int first = tolower((unsigned char)name[0]);
        /* names are tokens (llhttp checked them): mc_http_name_is compares them inline */
        if (first == 'x' && mc_http_name_eq(name, "x-forwarded-", 12)) {
            int is_for = mc_http_name_is(name + 12, "for", 3);
            if (is_for)
                xff = req->headers[i].value;
            if (is_for || mc_http_name_is(name + 12, "proto", 5) ||
                mc_http_name_is(name + 12, "host", 4))
                continue;
        }
        if (first == 'e' && mc_http_name_is(name, "expect", 6))
            continue; /* the sidecar answered it */
        if (first == 'h' && !host && mc_http_name_is(name, "host", 4))
            host = req->headers[i].value; /* noticed here: no second scan for it */
        /* hop-by-hop names starting with c or u are Connection and Upgrade */
        if (mc_http_hop_by_hop(name) && !(req->upgrade && (first == 'c' || first == 'u')))
            continue;
        mc_http_header_list_add(&p->headers, name, req->headers[i].value);
    }
    mc_http_request_peer(req, p->peer, sizeof p->peer);
    if (xff)
        p->forwarded_for = mc_sprintf("%s, %s", xff, p->peer);
    mc_http_header_list_add(&p->headers, "X-Forwarded-For", xff ? p->forwarded_for : p->peer);
    mc_http_header_list_add(&p->headers, "X-Forwarded-Proto",
                            p->api->config->enable_tls ? "https" : "http");
    if (host)
        mc_http_header_list_add(&p->headers, "X-Forwarded-Host", host);
}

/* Picks a node and starts the call; returns 1 when the request was answered instead. */
static int attempt(struct mc_proxy *p)
{
    struct mc_http_request *req = p->req;
    struct mc_api *api = p->api;
    struct mc_buf detail;
    mc_buf_init(&detail);
    int status = mc_upstream_next(&p->try, &detail);
    if (status) {
        respond_failure(p, status, &detail);
        return 1;
    }
    p->node = p->try.node;
    /* The target is the request's own, path and query unchanged. */
    struct mc_http_call_options o = {
        .address = p->node,
        .method = req->method_name,
        .target = req->path,
        .headers = p->headers.items,
        .header_count = p->headers.count,
        .stream_body = p->has_body,
        .dial_timeout_ms = api->config->dial_timeout_ms,
        .timeout_ms = mc_upstream_remaining(&p->try),
        .timeout_to_head = 1,
        .idle_timeout_ms = api->config->proxy_idle_timeout_ms,
        .on_head = on_head,
        .on_body = on_node_body,
        .on_done = on_done,
        .ctx = p,
    };
    p->call = mc_http_call_start(api->client, &o);
    if (p->replay.len)
        mc_http_call_write(p->call, p->replay.data, p->replay.len);
    if (p->body_done && p->has_body)
        mc_http_call_end(p->call);
    return 0;
}

void mc_api_proxy(struct mc_http_request *req, void *ctx)
{
    struct mc_api *api = ctx;
    /* The service name goes into the state's own buffer (a longer one into a new string). */
    struct mc_proxy *p = proxy_new(api);
    p->service = mc_route_service_in(req->path, req->path_len, api->config->namespace,
                                     p->service_inline, sizeof p->service_inline);
    if (!p->service) {
        proxy_free(p);
        mc_http_respond_error(req, 404, PROXY_ID, "not found");
        return;
    }
    p->req = req;
    mc_buf_init(&p->replay);
    p->has_body = req->chunked || (req->has_content_length && req->content_length > 0);
    mc_upstream_try_init(&p->try, mc_caller_upstream(api->caller), p->service, NULL, NULL, 504);
    build_headers(p, req);
    req->handler_data = p;
    req->on_body = on_client_body;
    req->on_abort = on_client_abort;
    attempt(p);
}
