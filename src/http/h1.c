/* The HTTP/1.x codec over mc_conn and llhttp. */
#include "http/h1.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

#include "http/access_log.h"
#include "http/body_clock.h"
#include "http/h2.h"
#include "http/head.h"
#include "net/tls.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"
#include "util/units.h"

/* After an answer given before the request body ended (a streaming handler's early answer),
 * the rest of the body is read and dropped; each piece must come within this, else the
 * connection closes (a client that never finishes its body keeps no slot). */
#define HC_DISCARD_TIMEOUT_MS 5000
/* The connection's timer is never set further ahead than this, the head timeout: a request's
 * deadlines (head, body, idle: none shorter) then always fall at or after the running timer,
 * which is left alone (lazy re-arm, as nginx and HAProxy do) instead of moved in the timer
 * heap two or three times per request; only a shorter bound (the discard, a drain wait) moves
 * it. An idle connection's timer wakes once per granule and re-arms. */
#define HC_TIMER_GRANULE_MS MC_HTTP_HEAD_TIMEOUT_MS

enum hc_state {
    HC_WAIT_HEAD, /* between requests or inside a head */
    HC_READ_BODY, /* buffered route: reading the body */
    HC_HANDLING,  /* dispatched; waiting for the handler's response */
    HC_UPGRADED,  /* handed over by mc_http_upgrade; freed when its timer has closed */
    HC_CLOSED,
};

enum hc_token { TOK_NONE, TOK_URL, TOK_FIELD, TOK_VALUE };

struct h1_conn {
    struct mc_http_server_link link;
    /* The transport is its own allocation: an upgrade hands it over and frees the rest. */
    struct mc_conn *conn;
    uv_timer_t timer;
    llhttp_t parser;
    struct mc_http_server *server;
    struct mc_buf inbuf; /* received, not yet parsed */
    struct mc_http_request *req;
    struct mc_http_request *spare_req; /* a finished request kept for the next one */
    /* The requests' header and trailer arrays, reused: one request at a time per connection
     * (the next head is parsed only once the last request is finished). */
    struct mc_http_header *fields, *tfields;
    size_t fields_cap, tfields_cap;
    uint64_t deadline;              /* loop ms the current bound ends at; 0: none */
    uint64_t timer_due;             /* loop ms the running timer fires at; 0: not running */
    struct mc_http_body_clock body; /* the request body's bound, while one is coming */
    enum hc_state state;
    enum hc_token last_token;
    struct mc_buf raw;      /* url and header strings, each NUL-terminated */
    struct mc_buf traw;     /* trailer strings, the same way (raw no longer grows then) */
    struct mc_buf *strings; /* raw in a head, traw in trailers */
    size_t *header_offsets; /* (name, value) offset pairs into raw (traw for trailers) */
    size_t header_offsets_cap;
    size_t header_count;
    size_t head_bytes;
    size_t line_bytes;
    int error_status;         /* set by a parser callback that refuses the request */
    const char *error_detail; /* its reason, when llhttp's own would not say it */
    unsigned host_count;      /* Host header fields in this head (RFC 9112 3.2) */
    /* 1 + the index of the head's first Expect, Origin and Content-Type fields (0: none),
     * noted as their names complete (note_field) so that nothing searches the head for them. */
    size_t expect_field, origin_field, content_type_field;
    int handles_open;
    unsigned answered;   /* responses finished since the client last took all our output */
    unsigned batch_pass; /* the flush pass ending the loop turn a batch of answers was made in */
    unsigned parser_paused : 1, message_done : 1, user_paused : 1, processing : 1, peer_eof : 1,
        fresh : 1, dispatch_due : 1, finish_due : 1, output_wait : 1, in_trailers : 1,
        h2_checked : 1,   /* the first bytes were looked at for HTTP/2 */
        body_arm_due : 1; /* the body began or grew in this parse: its bound is armed after */
    /* The response being written. */
    unsigned keep_alive : 1, close_after : 1, streaming : 1, chunked_out : 1, body_none : 1,
        trailers_sent : 1;
    const struct mc_http_route *route;
    enum mc_http_route_verdict verdict; /* decided at head time, answered at message end */
    mc_http_abort_cb drain_cb;
    uint64_t drain_timeout_ms; /* a bounded wait for the client to take output: 0 when none */
    size_t drain_mark;         /* output pending when that wait was last armed */
    char peer[48];             /* the client's address, looked up once */
};

static const struct mc_http_stream_ops h1_ops;

static void process(struct h1_conn *hc);
static int h2_offer(struct h1_conn *hc, const char *data, size_t len);
static void finish_request(struct h1_conn *hc);
static void conn_close(struct h1_conn *hc, int now);
static size_t feed(struct h1_conn *hc, const char *data, size_t len);
static void refuse(struct h1_conn *hc, int status);

/* ---------- small helpers ---------- */

static void status_line(struct mc_buf *out, int status)
{
    mc_buf_append_str(out, "HTTP/1.1 ");
    mc_buf_append_uint(out, (unsigned)status);
    mc_buf_append(out, " ", 1);
    mc_buf_append_str(out, mc_http_reason(status));
    mc_buf_append_str(out, "\r\n");
}

static unsigned method_bit(int method)
{
    switch (method) {
    case HTTP_GET:
        return MC_HTTP_GET;
    case HTTP_HEAD:
        return MC_HTTP_HEAD;
    case HTTP_POST:
        return MC_HTTP_POST;
    case HTTP_PUT:
        return MC_HTTP_PUT;
    case HTTP_DELETE:
        return MC_HTTP_DELETE;
    case HTTP_OPTIONS:
        return MC_HTTP_OPTIONS;
    case HTTP_PATCH:
        return MC_HTTP_PATCH;
    default:
        return MC_HTTP_OTHER;
    }
}

static const char *conn_peer(struct h1_conn *hc)
{
    if (!hc->peer[0])
        mc_conn_peer_name(hc->conn, hc->peer, sizeof hc->peer);
    return hc->peer;
}

static void h1_peer(const struct mc_http_request *req, char *buf, size_t len)
{
    /* a bounded copy, not snprintf: the proxy asks for every request (X-Forwarded-For) */
    if (len == 0)
        return;
    const char *peer = conn_peer(req->stream);
    size_t n = strnlen(peer, len - 1);
    memcpy(buf, peer, n);
    buf[n] = '\0';
}

/* The observer and the access log see a finished request (the peer is looked up only then). */
static void report(struct h1_conn *hc, const struct mc_http_request *req)
{
    /* the peer is formatted only for the access log: the stats observer never needs it */
    if (mc_http_server_reports(hc->server))
        mc_http_server_report(hc->server, req, hc->server->access_log ? conn_peer(hc) : NULL);
}

static struct mc_buf *scratch(struct h1_conn *hc)
{
    struct mc_buf *b = &hc->server->scratch; /* reused: no allocation per response */
    mc_buf_reset(b);
    return b;
}

/* ---------- requests ---------- */

static struct mc_http_request *request_new(struct h1_conn *hc)
{
    struct mc_http_request *req = hc->spare_req;
    if (req) {
        hc->spare_req = NULL;
        struct mc_buf body = req->body; /* its storage is kept, emptied */
        memset(req, 0, sizeof *req);
        req->body = body;
        mc_buf_reset(&req->body);
    } else {
        req = mc_calloc(1, sizeof *req);
        mc_buf_init(&req->body);
    }
    req->ops = &h1_ops;
    req->stream = hc;
    return req;
}

/* The connection keeps one finished request for the next, with its body buffer when that is
 * small (an idle connection must not hold a large one); its header arrays are the
 * connection's. */
#define SPARE_BODY_MAX 4096
static void request_free(struct mc_http_request *req)
{
    if (!req)
        return;
    struct h1_conn *hc = req->stream;
    mc_http_request_set_upstream(req, NULL);
    if (!hc->spare_req && hc->state != HC_CLOSED && hc->state != HC_UPGRADED) {
        if (req->body.cap > SPARE_BODY_MAX)
            mc_buf_close(&req->body);
        hc->spare_req = req;
        return;
    }
    mc_buf_close(&req->body);
    mc_free(req);
}

static void reset_head_state(struct h1_conn *hc)
{
    mc_buf_reset(&hc->raw);
    if (hc->traw.len)
        mc_buf_reset(&hc->traw);
    /* Header strings go to raw; trailer strings to traw, since the request's url and headers
     * point into raw, which must not move once the head is complete. */
    hc->strings = &hc->raw;
    hc->header_count = 0;
    hc->head_bytes = 0;
    hc->line_bytes = 0;
    hc->last_token = TOK_NONE;
    hc->error_status = 0;
    hc->error_detail = NULL;
    hc->host_count = 0;
    hc->expect_field = hc->origin_field = hc->content_type_field = 0;
    hc->route = NULL;
    hc->verdict = MC_HTTP_ROUTE_RUN;
    hc->message_done = 0;
    hc->in_trailers = 0;
    hc->close_after = 0;
    hc->streaming = 0;
    hc->chunked_out = 0;
    hc->body_none = 0;
    hc->trailers_sent = 0;
}

static void on_timer(uv_timer_t *t);

/* The connection's one bound (head, body, idle, drain...) ends in ms. Lazy: a running timer
 * due no later than that is left alone; when it fires early, on_timer re-arms it. */
static void arm_timer(struct h1_conn *hc, uint64_t ms)
{
    uint64_t now = uv_now(hc->server->net->loop);
    hc->deadline = now + ms;
    if (hc->timer_due && hc->timer_due <= hc->deadline)
        return;
    if (ms > HC_TIMER_GRANULE_MS)
        ms = HC_TIMER_GRANULE_MS;
    hc->timer_due = now + ms;
    uv_timer_start(&hc->timer, on_timer, ms, 0);
}

/* No bound now; the running timer finds none when it fires. */
static void disarm_timer(struct h1_conn *hc)
{
    hc->deadline = 0;
}

/* Whether the request's body is still coming under its bound (not answered yet). */
static int body_bounded(const struct h1_conn *hc)
{
    return mc_http_body_clock_running(&hc->body) && !hc->message_done && hc->req &&
           !hc->req->responded;
}

/* The request body's bound (http/body_clock.h: silence and minimum average rate) is the
 * connection's bound now. Its deadline only moves later as bytes come, so the running timer is
 * left alone (arm_timer's lazy rule); paused by the handler, there is none. */
static void arm_body(struct h1_conn *hc)
{
    const struct mc_http_server *s = hc->server;
    uint64_t due = mc_http_body_clock_deadline(&hc->body, s->body_timeout_ms, s->body_min_rate);
    if (!due) {
        disarm_timer(hc);
        return;
    }
    uint64_t now = uv_now(s->net->loop);
    arm_timer(hc, due > now ? due - now : 0);
}

/* A request body begins: its clock starts now (its bound is armed when the parse ends). */
static void start_body(struct h1_conn *hc)
{
    mc_http_body_clock_start(&hc->body, uv_now(hc->server->net->loop));
    hc->body_arm_due = 1;
}

/* The body grew or resumed: its bound is armed again, unless a shorter wait (for the client
 * to take output, drain_timeout_ms) holds the timer; end_wait restores the bound after it. */
static void rearm_body(struct h1_conn *hc)
{
    if (body_bounded(hc) && !hc->drain_timeout_ms)
        arm_body(hc);
}

/* A shorter wait (for the client to take output) ended: the body's bound, if one is still
 * running, is the bound again. */
static void end_wait(struct h1_conn *hc)
{
    if (body_bounded(hc))
        arm_body(hc);
    else
        disarm_timer(hc);
}

/* ---------- llhttp callbacks ---------- */

static struct h1_conn *hc_of(llhttp_t *p)
{
    return p->data;
}

static int count_head(struct h1_conn *hc, size_t len, int line)
{
    hc->head_bytes += len;
    if (line)
        hc->line_bytes += len;
    if (hc->head_bytes > MC_HTTP_MAX_HEAD || hc->line_bytes > MC_HTTP_MAX_HEADER_LINE) {
        hc->error_status = 431;
        return HPE_USER;
    }
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    struct h1_conn *hc = hc_of(p);
    reset_head_state(hc);
    hc->req = request_new(hc);
    hc->req->start_ms = uv_now(hc->server->net->loop);
    if (hc->state == HC_WAIT_HEAD && !hc->fresh)
        arm_timer(hc, MC_HTTP_HEAD_TIMEOUT_MS); /* a new head started: 10 s to finish it */
    hc->fresh = 0;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct h1_conn *hc = hc_of(p);
    hc->last_token = TOK_URL;
    mc_buf_append(&hc->raw, at, len);
    return count_head(hc, len, 1);
}

static void push_offset(struct h1_conn *hc, size_t off)
{
    if (hc->header_count * 2 + 2 > hc->header_offsets_cap) {
        hc->header_offsets_cap = hc->header_offsets_cap ? hc->header_offsets_cap * 2 : 32;
        hc->header_offsets =
            mc_realloc(hc->header_offsets, hc->header_offsets_cap * sizeof(size_t));
    }
    hc->header_offsets[hc->header_count * 2] = off;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct h1_conn *hc = hc_of(p);
    struct mc_buf *b = hc->strings;
    if (hc->last_token != TOK_FIELD) {
        /* terminate the url or the previous value (trailers start with a spare NUL) */
        mc_buf_append(b, "", 1);
        if (hc->header_count >= MC_HTTP_MAX_HEADERS) {
            hc->error_status = 431;
            return HPE_USER;
        }
        push_offset(hc, b->len);
        hc->line_bytes = 0;
        hc->last_token = TOK_FIELD;
    }
    mc_buf_append(b, at, len);
    return count_head(hc, len, 1);
}

/* A field name of len bytes at n, complete (its field is the next one): Host fields are
 * counted, and the first Expect, Origin and Content-Type of the head noted, as they come. */
static void note_field(struct h1_conn *hc, const char *n, size_t len)
{
    size_t *field = NULL;
    unsigned first = (unsigned char)*n | 0x20;
    switch (len) {
    case 4:
        if (mc_http_name_eq(n, "host", 4))
            hc->host_count++;
        return;
    case 6:
        if (first == 'e' && mc_http_name_eq(n, "expect", 6))
            field = &hc->expect_field;
        else if (first == 'o' && mc_http_name_eq(n, "origin", 6))
            field = &hc->origin_field;
        break;
    case 12:
        if (first == 'c' && mc_http_name_eq_words(n, "content-type", 12))
            field = &hc->content_type_field;
        break;
    default:
        return;
    }
    if (field && !*field && !hc->in_trailers)
        *field = hc->header_count + 1;
}

/* The value of a field note_field noted (NULL when none: also before the head is complete). */
static const char *noted_field(const struct h1_conn *hc, size_t field)
{
    const struct mc_http_request *req = hc->req;
    return field && req && field <= req->header_count ? req->headers[field - 1].value : NULL;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct h1_conn *hc = hc_of(p);
    struct mc_buf *b = hc->strings;
    if (hc->last_token != TOK_VALUE) {
        size_t name = hc->header_offsets[hc->header_count * 2];
        note_field(hc, b->data + name, b->len - name); /* the name is complete here */
        mc_buf_append(b, "", 1);
        hc->header_offsets[hc->header_count * 2 + 1] = b->len;
        hc->header_count++;
        hc->last_token = TOK_VALUE;
    }
    mc_buf_append(b, at, len);
    return count_head(hc, len, 1);
}

/* Ends the strings of a head or trailer section and returns its fields (count in *n), which
 * point into b; NULL when there are none. */
static struct mc_http_header *fix_fields(struct h1_conn *hc, struct mc_buf *b, size_t *n)
{
    mc_buf_append(b, "", 1);
    if (hc->last_token == TOK_FIELD) {
        /* a field with no value at all: treat as empty */
        hc->header_offsets[hc->header_count * 2 + 1] = b->len - 1;
        hc->header_count++;
    }
    *n = hc->header_count;
    if (!hc->in_trailers || hc->header_count) {
        struct mc_http_header **arr = hc->in_trailers ? &hc->tfields : &hc->fields;
        size_t *cap = hc->in_trailers ? &hc->tfields_cap : &hc->fields_cap;
        if (hc->header_count + 1 > *cap) {
            *cap = hc->header_count + 1 < 32 ? 32 : hc->header_count + 1;
            mc_free(*arr);
            *arr = mc_malloc(*cap * sizeof **arr);
        }
        struct mc_http_header *h = *arr;
        h[hc->header_count].name = h[hc->header_count].value = NULL;
        for (size_t i = 0; i < hc->header_count; i++) {
            h[i].name = b->data + hc->header_offsets[i * 2];
            h[i].value = b->data + hc->header_offsets[i * 2 + 1];
        }
        return h;
    }
    return NULL;
}

/* curl and others wait for "100 Continue" before sending a large body. */
static void send_continue(struct h1_conn *hc)
{
    const char *expect = noted_field(hc, hc->expect_field);
    if (expect && strcasecmp(expect, "100-continue") == 0 && hc->req->http_minor >= 1) {
        static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
        mc_conn_write_copy(hc->conn, line, sizeof line - 1);
        mc_conn_flush(hc->conn); /* the client is waiting for it: no batching */
    }
}

static int on_headers_complete(llhttp_t *p)
{
    struct h1_conn *hc = hc_of(p);
    struct mc_http_request *req = hc->req;
    req->headers = fix_fields(hc, &hc->raw, &req->header_count);
    req->content_type = noted_field(hc, hc->content_type_field);
    hc->in_trailers = 1; /* from here on, fields are trailers */
    hc->strings = &hc->traw;
    hc->header_count = 0;
    hc->last_token = TOK_NONE;
    if (p->http_major != 1) {
        hc->error_status = 400; /* HTTP/0.9 (no version) and 2.x+ are not spoken here */
        return HPE_USER;
    }
    /* Header names are tokens already: llhttp is built in strict mode (see the Makefile). An
     * HTTP/1.1 request names exactly one Host (RFC 9112 3.2); HTTP/1.0 may omit it. */
    if (hc->host_count > 1 || (hc->host_count == 0 && p->http_minor >= 1)) {
        hc->error_status = 400;
        hc->error_detail = hc->host_count ? "more than one Host header" : "missing Host header";
        return HPE_USER;
    }
    req->url = hc->raw.data;
    req->url_len = strlen(req->url);
    /* The request target: origin-form, or absolute-form whose path we take. */
    const char *path = req->url;
    if (strncmp(path, "http://", 7) == 0 || strncmp(path, "https://", 8) == 0) {
        const char *slash = strchr(strstr(path, "//") + 2, '/');
        path = slash ? slash : "/";
    }
    const char *q = strchr(path, '?');
    req->path = path;
    req->path_len = q ? (size_t)(q - path) : strlen(path);
    req->query = q ? q + 1 : NULL;
    req->query_len = q ? strlen(q + 1) : 0;
    req->method_bit = method_bit(p->method);
    req->method_name = llhttp_method_name((llhttp_method_t)p->method);
    req->http_major = p->http_major;
    req->http_minor = p->http_minor;
    hc->keep_alive = llhttp_should_keep_alive(p) != 0;
    req->upgrade = p->upgrade;
    req->chunked = (p->flags & F_CHUNKED) != 0;
    req->has_content_length = (p->flags & F_CONTENT_LENGTH) != 0;
    req->content_length = p->content_length;
    disarm_timer(hc);

    struct mc_http_server *s = hc->server;
    hc->verdict = mc_http_router_match(s->routes, s->route_count, req->method_bit, req->path,
                                       req->path_len, &hc->route);
    if (hc->verdict == MC_HTTP_ROUTE_OPTIONS) {
        hc->state = HC_READ_BODY;
        start_body(hc);
        return 0;
    }
    if (hc->verdict == MC_HTTP_ROUTE_RUN && (hc->route->flags & MC_HTTP_ROUTE_STREAM)) {
        send_continue(hc);
        hc->state = HC_HANDLING;
        hc->dispatch_due = 1;
        /* A streamed body (a proxied upload) has the same bound as a buffered one: a trickle
         * would otherwise hold this connection and the node's for ever. */
        if (req->chunked || req->content_length > 0)
            start_body(hc);
        return HPE_PAUSED;
    }
    if (req->has_content_length && req->content_length > s->max_body_size) {
        hc->error_status = 413;
        return HPE_USER;
    }
    if (hc->verdict == MC_HTTP_ROUTE_RUN)
        send_continue(hc); /* a body we will read; a refused one is skipped unasked */
    hc->state = HC_READ_BODY;
    if (req->chunked || req->content_length > 0)
        start_body(hc); /* bodiless requests complete right away */
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct h1_conn *hc = hc_of(p);
    struct mc_http_request *req = hc->req;
    if (hc->state == HC_HANDLING) {
        if (!req->responded) {
            /* Counted before the handler sees it: it may pause the body or answer. */
            mc_http_body_clock_add(&hc->body, uv_now(hc->server->net->loop), len);
            hc->body_arm_due = 1;
            if (req->on_body)
                req->on_body(req, at, len);
        } else {
            arm_timer(hc, HC_DISCARD_TIMEOUT_MS); /* answered early: dropped, must keep coming */
        }
        return 0;
    }
    if (hc->verdict != MC_HTTP_ROUTE_RUN)
        return 0; /* answered by the router at message end; the body is skipped */
    if (req->body.len + len > hc->server->max_body_size) {
        hc->error_status = 413;
        return HPE_USER;
    }
    mc_buf_append(&req->body, at, len);
    mc_http_body_clock_add(&hc->body, uv_now(hc->server->net->loop), len);
    hc->body_arm_due = 1;
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct h1_conn *hc = hc_of(p);
    hc->message_done = 1;
    disarm_timer(hc);
    mc_http_body_clock_stop(&hc->body);
    if (hc->req && hc->last_token != TOK_NONE)
        hc->req->trailers = fix_fields(hc, &hc->traw, &hc->req->trailer_count);
    if (hc->state == HC_HANDLING) {
        /* Streaming route: the body ended. */
        struct mc_http_request *req = hc->req;
        if (req->on_body && !req->responded)
            req->on_body(req, NULL, 0);
        if (hc->req && hc->req->responded)
            hc->finish_due = 1; /* finished by the parse loop, outside llhttp */
        return HPE_PAUSED;
    }
    hc->state = HC_HANDLING;
    hc->dispatch_due = 1;
    return HPE_PAUSED;
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---------- responses ---------- */

/* Whether this response must be the connection's last. */
static int closing(struct h1_conn *hc)
{
    return !hc->keep_alive || hc->server->draining || hc->peer_eof;
}

static void end_head(struct h1_conn *hc, struct mc_buf *head)
{
    if (hc->close_after)
        mc_buf_append_str(head, "Connection: close\r\n");
    else if (hc->req->http_major == 1 && hc->req->http_minor == 0)
        mc_buf_append_str(head, "Connection: keep-alive\r\n");
    mc_buf_append_str(head, "\r\n");
}

/* The response is queued in full. With the request's body in too, the next request may
 * start. An answer given before the body ended (a streaming handler answering early, or
 * giving up on a node) leaves the rest of the body to be read and dropped under
 * HC_DISCARD_TIMEOUT_MS, or the connection closed at once when it will not be kept alive. */
static void response_done(struct h1_conn *hc)
{
    mc_conn_flush_soon(hc->conn);
    if (hc->drain_timeout_ms) {
        hc->drain_timeout_ms = 0;
        disarm_timer(hc);
    }
    if (hc->message_done) {
        finish_request(hc);
    } else if (hc->close_after) {
        conn_close(hc, 0); /* the rest of the request body is not worth reading */
    } else {
        arm_timer(hc, HC_DISCARD_TIMEOUT_MS);
        if (hc->user_paused) { /* whoever paused the body will not resume it now */
            hc->user_paused = 0;
            mc_conn_read_start(hc->conn);
        }
    }
}

static void h1_respond(struct mc_http_request *req, int status, const char *content_type,
                       const struct mc_http_header *extra, size_t extra_count, const void *body,
                       size_t len)
{
    struct h1_conn *hc = req->stream;
    if (req->responded || hc->streaming)
        return;
    req->responded = 1;
    req->status = status;
    if (closing(hc))
        hc->close_after = 1;
    struct mc_buf *head = scratch(hc);
    status_line(head, status);
    if (content_type)
        mc_buf_append_header(head, "Content-Type", content_type);
    mc_buf_append_str(head, "Content-Length: ");
    mc_buf_append_uint(head, len);
    mc_buf_append_str(head, "\r\n");
    for (size_t i = 0; i < extra_count; i++)
        mc_buf_append_header(head, extra[i].name, extra[i].value);
    struct mc_http_header cors[MC_CORS_MAX_HEADERS];
    size_t ncors = mc_cors_headers(&hc->server->cors, noted_field(hc, hc->origin_field), cors);
    for (size_t i = 0; i < ncors; i++)
        mc_buf_append_header(head, cors[i].name, cors[i].value);
    end_head(hc, head);
    int head_only = req->method_bit == MC_HTTP_HEAD;
    mc_conn_write_copy(hc->conn, head->data, head->len);
    if (len && !head_only)
        mc_conn_write_copy(hc->conn, body, len);
    req->bytes_sent = head_only ? 0 : len;
    response_done(hc);
}

/* 1xx, 204 and 304 end at their head whatever the upstream framed (RFC 9112 6.3), and so does
 * any answer to HEAD: such a response is sent neither a length of its own nor a body. */
static void h1_begin(struct mc_http_request *req, int status, const struct mc_http_header *headers,
                     size_t count, uint64_t content_length)
{
    struct h1_conn *hc = req->stream;
    if (req->responded || hc->streaming)
        return;
    hc->streaming = 1;
    req->status = status;
    if (closing(hc))
        hc->close_after = 1;
    struct mc_buf *head = scratch(hc);
    status_line(head, status);
    for (size_t i = 0; i < count; i++)
        mc_buf_append_header(head, headers[i].name, headers[i].value);
    int no_body_status = status == 204 || status == 304 || status < 200;
    hc->body_none = no_body_status || req->method_bit == MC_HTTP_HEAD;
    if (no_body_status) {
        /* no body, no length */
    } else if (content_length != MC_HTTP_LENGTH_UNKNOWN) {
        mc_buf_append_str(head, "Content-Length: ");
        mc_buf_append_uint(head, content_length);
        mc_buf_append_str(head, "\r\n");
    } else if (req->method_bit == MC_HTTP_HEAD) {
        /* no body follows: nothing to frame */
    } else if (req->http_minor >= 1) {
        mc_buf_append_str(head, "Transfer-Encoding: chunked\r\n");
        hc->chunked_out = 1;
    } else {
        hc->close_after = 1; /* an HTTP/1.0 client reads to the close */
    }
    end_head(hc, head);
    mc_conn_write_copy(hc->conn, head->data, head->len);
    mc_conn_flush_soon(hc->conn);
}

static void h1_write(struct mc_http_request *req, const void *data, size_t len)
{
    struct h1_conn *hc = req->stream;
    if (!hc->streaming || req->responded || hc->body_none || len == 0)
        return;
    if (hc->chunked_out) {
        /* the chunk-size line, "<hex>\r\n", written backwards */
        char size[24];
        size_t n = sizeof size;
        size[--n] = '\n';
        size[--n] = '\r';
        size_t v = len;
        do {
            size[--n] = "0123456789abcdef"[v & 15];
            v >>= 4;
        } while (v);
        mc_conn_write_copy(hc->conn, size + n, sizeof size - n);
        mc_conn_write_copy(hc->conn, data, len);
        mc_conn_write_copy(hc->conn, "\r\n", 2);
    } else {
        mc_conn_write_copy(hc->conn, data, len);
    }
    req->bytes_sent += len;
    mc_conn_flush_soon(hc->conn);
}

static void h1_trailers(struct mc_http_request *req, const struct mc_http_header *headers,
                        size_t count)
{
    struct h1_conn *hc = req->stream;
    if (!hc->chunked_out || hc->trailers_sent || req->responded)
        return; /* only chunked framing carries trailers */
    hc->trailers_sent = 1;
    struct mc_buf *out = scratch(hc);
    mc_buf_append_str(out, "0\r\n");
    for (size_t i = 0; i < count; i++)
        mc_buf_append_header(out, headers[i].name, headers[i].value);
    mc_buf_append_str(out, "\r\n");
    mc_conn_write_copy(hc->conn, out->data, out->len);
}

static void h1_end(struct mc_http_request *req, int complete)
{
    struct h1_conn *hc = req->stream;
    if (req->responded)
        return;
    if (!hc->streaming)
        h1_begin(req, complete ? 200 : 502, NULL, 0, 0);
    req->responded = 1;
    if (!complete)
        hc->close_after = 1; /* a cut body: closing is the only honest end left */
    else if (hc->chunked_out && !hc->trailers_sent)
        mc_conn_write_copy(hc->conn, "0\r\n\r\n", 5);
    response_done(hc);
}

static size_t h1_pending_output(const struct mc_http_request *req)
{
    const struct h1_conn *hc = req->stream;
    return mc_conn_pending(hc->conn);
}

static void h1_wait_drain(struct mc_http_request *req, mc_http_abort_cb cb, uint64_t timeout_ms)
{
    struct h1_conn *hc = req->stream;
    hc->drain_cb = cb;
    if (cb && timeout_ms) {
        hc->drain_timeout_ms = timeout_ms;
        hc->drain_mark = mc_conn_pending(hc->conn);
        arm_timer(hc, timeout_ms);
    } else if (hc->drain_timeout_ms) {
        hc->drain_timeout_ms = 0;
        end_wait(hc);
    }
}

static void on_client_drain(struct mc_conn *c)
{
    struct h1_conn *hc = c->data;
    if (hc->output_wait && !hc->drain_cb && c->net->in_flush_check &&
        c->net->flush_pass == hc->batch_pass) {
        /* Taken within the turn the batch was made in (written at once): the next batch
         * waits for the next turn, so one pipeline cannot hold the loop. */
        mc_conn_drain_later(c);
        return;
    }
    hc->answered = 0; /* the client took everything: a new batch of answers may start */
    if (hc->drain_timeout_ms) {
        hc->drain_timeout_ms = 0;
        end_wait(hc);
    }
    mc_http_abort_cb cb = hc->drain_cb;
    hc->drain_cb = NULL;
    if (cb && hc->req) {
        cb(hc->req);
        return;
    }
    if (hc->output_wait) {
        hc->output_wait = 0;
        if (!hc->peer_eof)
            mc_conn_read_start(hc->conn);
        process(hc);
    }
}

static void h1_pause(struct mc_http_request *req)
{
    struct h1_conn *hc = req->stream;
    hc->user_paused = 1;
    mc_conn_read_stop(hc->conn);
    /* Held back by the handler (a node slow to take an upload): not the client's time. */
    mc_http_body_clock_pause(&hc->body, uv_now(hc->server->net->loop));
}

static void h1_resume(struct mc_http_request *req)
{
    struct h1_conn *hc = req->stream;
    if (!hc->user_paused)
        return;
    hc->user_paused = 0;
    mc_http_body_clock_resume(&hc->body, uv_now(hc->server->net->loop));
    rearm_body(hc);
    if (!hc->peer_eof)
        mc_conn_read_start(hc->conn);
    process(hc);
}

/* The request is answered and its body consumed: log it, free it, go on with the next. */
static void finish_request(struct h1_conn *hc)
{
    struct mc_http_request *req = hc->req;
    report(hc, req);
    int close_after = hc->close_after || hc->error_status;
    hc->req = NULL;
    hc->drain_cb = NULL;
    request_free(req);
    reset_head_state(hc);
    if (close_after) {
        conn_close(hc, 0);
        return;
    }
    hc->state = HC_WAIT_HEAD;
    hc->user_paused = 0;
    arm_timer(hc, MC_HTTP_IDLE_TIMEOUT_MS);
    if (hc->parser_paused) {
        hc->parser_paused = 0;
        llhttp_resume(&hc->parser);
    }
    /* A pipelining client that does not read its answers must not make us produce more: past
     * the high-water mark of unsent output, or after a batch of answers in one go, the next
     * request waits (unread, reading stopped) until the output drains (on_client_drain). The
     * batch bound also keeps one connection's pipeline from holding the loop for long. */
    size_t pending = mc_conn_pending(hc->conn);
    if (pending > MC_HTTP_OUTPUT_HIGH_WATER ||
        (++hc->answered >= MC_HTTP_PIPELINE_BATCH && pending > 0)) {
        hc->output_wait = 1;
        struct mc_net *net = hc->conn->net;
        hc->batch_pass = net->in_flush_check ? net->flush_pass : net->flush_pass + 1;
        mc_conn_read_stop(hc->conn);
        return;
    }
    if (!hc->peer_eof)
        mc_conn_read_start(hc->conn);
    process(hc);
}

/* ---------- the parse loop ---------- */

static void refuse(struct h1_conn *hc, int status)
{
    struct mc_http_request *req = hc->req;
    if (!req) {
        req = hc->req = request_new(hc);
        req->http_major = 1;
        req->http_minor = 1;
    }
    if (req->responded) {
        conn_close(hc, 0);
        return;
    }
    if (req->on_abort && !hc->streaming) {
        /* A streaming handler still holds the request (its body turned out malformed, too
         * large or too slow): it lets go first, as for a client that went away, so the
         * refusal below never frees the request behind its back (fuzz_h1 found the proxy
         * answering a freed request when its dial failed after the 400). */
        mc_http_abort_cb abort_cb = req->on_abort;
        req->on_abort = NULL;
        req->on_body = NULL;
        abort_cb(req);
    }
    hc->keep_alive = 0;
    hc->message_done = 1;
    hc->state = HC_HANDLING;
    const char *detail;
    char text[96], limit[32];
    switch (status) {
    case 408:
    case 413:
        /* name the limit, as the user would set or look it up */
        detail = text;
        if (status == 413) {
            snprintf(text, sizeof text, "request body over %s", hc->server->max_body_text);
        } else if (hc->error_detail) {
            detail = hc->error_detail;
        } else {
            mc_duration_text(limit, sizeof limit, MC_HTTP_HEAD_TIMEOUT_MS);
            snprintf(text, sizeof text, "request head not complete within %s", limit);
        }
        break;
    case 431:
        detail = "request header fields too large";
        break;
    default:
        detail = hc->error_detail ? hc->error_detail : llhttp_get_error_reason(&hc->parser);
        if (!detail || !*detail)
            detail = "malformed request";
    }
    mc_http_respond_error(req, status, "go.micro.sidecar", detail);
}

static void dispatch(struct h1_conn *hc)
{
    struct mc_http_request *req = hc->req;
    hc->dispatch_due = 0;
    if (req->upgrade) {
        if (mc_h2_upgrade(hc->server, req))
            return; /* Upgrade: h2c taken: the connection is HTTP/2's now */
        /* An upgrade nobody here takes is ignored (RFC 9110 7.8): the proxy tunnels any
         * protocol, the sidecar's own routes take websocket alone. */
        if (hc->route && !(hc->route->flags & MC_HTTP_ROUTE_STREAM) &&
            !mc_http_request_upgrade_to(req, "websocket"))
            req->upgrade = 0;
    }
    if (hc->route)
        req->family = (unsigned char)MC_HTTP_ROUTE_FAMILY_OF(hc->route->flags);
    if (hc->verdict != MC_HTTP_ROUTE_RUN || !hc->route) {
        mc_http_router_answer(req, hc->route,
                              hc->verdict != MC_HTTP_ROUTE_RUN ? hc->verdict
                                                               : MC_HTTP_ROUTE_NOT_FOUND);
        return;
    }
    hc->route->handler(req, hc->route->ctx);
    if (hc->state == HC_HANDLING && !hc->message_done && hc->parser_paused) {
        /* A streaming route was dispatched at the end of the head: go on parsing its body
         * (the handler forwards or discards it through on_body). */
        hc->parser_paused = 0;
        llhttp_resume(&hc->parser);
        if (hc->inbuf.len == 0)
            feed(hc, "", 0); /* a bodiless request completes without another byte */
    }
}

/* Parses what is buffered or just read. Returns how many bytes of data were consumed. */
static size_t feed(struct h1_conn *hc, const char *data, size_t len)
{
    enum llhttp_errno err = llhttp_execute(&hc->parser, data, len);
    /* The body's bound once per parse, not per piece of it: a body that arrived whole with
     * its head (the common case) is complete by now and never arms it. */
    if (hc->body_arm_due) {
        hc->body_arm_due = 0;
        rearm_body(hc);
    }
    if (err == HPE_OK)
        return len;
    size_t used = len;
    const char *pos = llhttp_get_error_pos(&hc->parser);
    if (pos && pos >= data && pos <= data + len)
        used = (size_t)(pos - data);
    if (err == HPE_PAUSED) {
        hc->parser_paused = 1;
        return used;
    }
    if (err == HPE_PAUSED_UPGRADE) {
        /* An upgrade the route did not take: nothing after it is HTTP we can parse. */
        hc->parser_paused = 1;
        if (hc->req)
            hc->close_after = 1;
        else
            conn_close(hc, 0);
        return len;
    }
    int status = hc->error_status ? hc->error_status : 400;
    refuse(hc, status);
    return len;
}

static void process(struct h1_conn *hc)
{
    if (hc->processing)
        return; /* the running loop below picks the new state up */
    hc->processing = 1;
    while (hc->state != HC_CLOSED && hc->state != HC_UPGRADED) {
        if (hc->dispatch_due) {
            dispatch(hc);
            continue;
        }
        if (hc->finish_due) {
            hc->finish_due = 0;
            finish_request(hc);
            continue;
        }
        if (hc->parser_paused || hc->user_paused || hc->output_wait || hc->inbuf.len == 0)
            break;
        size_t used = feed(hc, hc->inbuf.data, hc->inbuf.len);
        if (hc->state == HC_CLOSED || hc->state == HC_UPGRADED)
            break;
        mc_buf_consume(&hc->inbuf, used);
    }
    hc->processing = 0;
    if (hc->state == HC_CLOSED || hc->state == HC_UPGRADED)
        return;
    /* Bound what a pipelining or paused client can make us hold. */
    if (hc->inbuf.len > MC_HTTP_MAX_HEAD && hc->conn->reading)
        mc_conn_read_stop(hc->conn);
    else if (hc->peer_eof && !hc->req && hc->inbuf.len == 0)
        conn_close(hc, 0);
}

static void on_conn_read(struct mc_conn *c, const char *data, ssize_t nread)
{
    struct h1_conn *hc = c->data;
    if (nread < 0) {
        if (nread == UV_EOF && hc->req && hc->state == HC_HANDLING && !hc->message_done) {
            /* EOF inside a streamed request body: the request can never complete. A handler
             * still at work is aborted (on_abort); what is queued is written, then close. */
            conn_close(hc, 0);
            return;
        }
        if (nread == UV_EOF && hc->req && hc->state == HC_HANDLING) {
            /* Half-close after a complete request: answer, then close. */
            hc->peer_eof = 1;
            mc_conn_read_stop(c);
            return;
        }
        if (nread == UV_EOF && !hc->req && hc->inbuf.len > 0) {
            hc->peer_eof = 1;
            mc_conn_read_stop(c);
            process(hc);
            return;
        }
        conn_close(hc, 1);
        return;
    }
    if (!hc->h2_checked && h2_offer(hc, data, (size_t)nread))
        return;
    if (hc->inbuf.len == 0 && !hc->parser_paused && !hc->user_paused && !hc->output_wait &&
        !hc->processing) {
        /* Fast path: parse straight from the read buffer, keep only the rest. */
        hc->processing = 1;
        size_t used = feed(hc, data, (size_t)nread);
        hc->processing = 0;
        if (hc->state == HC_CLOSED || hc->state == HC_UPGRADED)
            return;
        if (used < (size_t)nread)
            mc_buf_append(&hc->inbuf, data + used, (size_t)nread - used);
    } else {
        mc_buf_append(&hc->inbuf, data, (size_t)nread);
    }
    process(hc);
}

/* ---------- connections ---------- */

/* The body's bound fired: a body that broke the rule is refused with 408 (a streaming
 * handler lets go of it first; one that answered already sees the connection close). */
static void body_timeout(struct h1_conn *hc, uint64_t now)
{
    const struct mc_http_server *s = hc->server;
    enum mc_http_body_verdict v =
        mc_http_body_clock_check(&hc->body, now, s->body_timeout_ms, s->body_min_rate);
    if (v == MC_HTTP_BODY_OK) {
        arm_body(hc); /* paused meanwhile, or moved later: nothing or a later bound */
        return;
    }
    if (hc->streaming) {
        /* The answer has begun: no 408 can follow it; the connection ends the request. */
        mc_log_debug("client %s: request body too slow after the answer began: closing",
                     conn_peer(hc));
        conn_close(hc, 0);
        return;
    }
    char detail[128], limit[32];
    mc_duration_text(limit, sizeof limit, s->body_timeout_ms);
    if (v == MC_HTTP_BODY_STALLED)
        snprintf(detail, sizeof detail, "request body stalled for %s", limit);
    else
        snprintf(detail, sizeof detail,
                 "request body under --body_min_rate=%llu bytes/s after --body_timeout=%s",
                 (unsigned long long)s->body_min_rate, limit);
    hc->error_detail = detail; /* read by refuse() now, before it goes out of scope */
    mc_conn_read_stop(hc->conn);
    refuse(hc, 408);
    hc->error_detail = NULL;
}

static void on_timer(uv_timer_t *t)
{
    struct h1_conn *hc = t->data;
    hc->timer_due = 0;
    if (!hc->deadline)
        return; /* disarmed since it was set */
    uint64_t now = uv_now(hc->server->net->loop);
    if (now < hc->deadline) {
        arm_timer(hc, hc->deadline - now); /* set for a bound that has since moved later */
        return;
    }
    hc->deadline = 0;
    switch (hc->state) {
    case HC_WAIT_HEAD:
        if (hc->req || hc->fresh) {
            mc_conn_read_stop(hc->conn);
            refuse(hc, 408);
        } else {
            /* Idle keep-alive connection; one whose client took none of our output for that
             * long is dropped with its queue (a graceful close would wait on it for ever). */
            conn_close(hc, hc->output_wait);
        }
        break;
    case HC_READ_BODY:
        body_timeout(hc, now);
        break;
    case HC_HANDLING:
        if (hc->drain_timeout_ms) {
            /* A streamed response waits for the client to take its output: progress re-arms
             * the wait; none for the whole timeout drops the client (the request aborts). */
            size_t pending = mc_conn_pending(hc->conn);
            if (pending < hc->drain_mark) {
                hc->drain_mark = pending;
                arm_timer(hc, hc->drain_timeout_ms);
            } else {
                mc_log_debug("client %s took no output for %llums: closing", conn_peer(hc),
                             (unsigned long long)hc->drain_timeout_ms);
                conn_close(hc, 1);
            }
        } else if (hc->req && hc->req->responded && !hc->message_done) {
            conn_close(hc, 0); /* the rest of an early-answered body stopped coming */
        } else if (body_bounded(hc)) {
            body_timeout(hc, now); /* a streamed body (proxied upload) too slow */
        }
        break;
    default:
        break;
    }
}

static void hc_release(struct h1_conn *hc)
{
    if (--hc->handles_open > 0)
        return;
    struct mc_http_server *s = hc->server;
    mc_buf_close(&hc->inbuf);
    mc_buf_close(&hc->raw);
    mc_buf_close(&hc->traw);
    mc_free(hc->header_offsets);
    mc_free(hc->fields);
    mc_free(hc->tfields);
    if (hc->spare_req) {
        mc_buf_close(&hc->spare_req->body);
        mc_free(hc->spare_req);
    }
    mc_free(hc);
    mc_http_server_conn_released(s);
}

static void on_timer_closed(uv_handle_t *h)
{
    hc_release(h->data);
}

static void on_conn_closed(struct mc_conn *c)
{
    struct h1_conn *hc = c->data;
    /* The transport closed itself (a write failed: the client reset). A connection that was
     * not reading (waiting for its output to drain, or paused) learns it only here: release
     * its slot, timer and request now rather than at its idle timeout. */
    if (hc->state != HC_CLOSED)
        conn_close(hc, 1);
    hc->conn = NULL;
    mc_conn_free(c);
    hc_release(hc);
}

static void conn_close(struct h1_conn *hc, int now)
{
    if (hc->state == HC_CLOSED)
        return;
    struct mc_http_request *req = hc->req;
    int aborted = req && !req->responded;
    int was_linked = hc->state != HC_UPGRADED;
    hc->state = HC_CLOSED;
    hc->req = NULL;
    if (aborted && req->on_abort)
        req->on_abort(req);
    else if (req && req->responded)
        report(hc, req);
    request_free(req);
    uv_timer_stop(&hc->timer);
    uv_close((uv_handle_t *)&hc->timer, on_timer_closed);
    mc_conn_close(hc->conn, now);
    if (was_linked)
        mc_http_server_unlink(hc->server, &hc->link);
}

void mc_h1_close(struct mc_http_server_link *link, int now)
{
    conn_close(link->conn, now);
}

int mc_h1_idle(const struct mc_http_server_link *link)
{
    const struct h1_conn *hc = link->conn;
    return hc->state == HC_WAIT_HEAD && !hc->req && hc->inbuf.len == 0;
}

void mc_h1_accept(struct mc_http_server *s, uv_stream_t *listener)
{
    struct mc_conn *conn = mc_calloc(1, sizeof *conn);
    struct h1_conn *hc = mc_calloc(1, sizeof *hc);
    hc->server = s;
    hc->link.conn = hc;
    hc->conn = conn;
    if (mc_conn_init(hc->conn, s->net, s->transport) < 0) {
        mc_free(hc->conn);
        mc_free(hc);
        return;
    }
    hc->conn->data = hc;
    hc->conn->on_read = on_conn_read;
    hc->conn->on_close = on_conn_closed;
    hc->conn->on_drain = on_client_drain;
    uv_timer_init(s->net->loop, &hc->timer);
    hc->timer.data = hc;
    hc->handles_open = 2;
    s->open_count++;
    mc_buf_init(&hc->inbuf);
    mc_buf_init(&hc->raw);
    mc_buf_init(&hc->traw);
    if (mc_conn_accept(hc->conn, listener) < 0 || s->conn_count >= s->max_connections ||
        s->draining) {
        /* Failed, or over the limit: closed at once, the others keep being served. */
        hc->state = HC_CLOSED;
        uv_close((uv_handle_t *)&hc->timer, on_timer_closed);
        mc_conn_close(hc->conn, 1);
        return;
    }
    hc->link.next = s->conns;
    if (s->conns)
        s->conns->prev = &hc->link;
    s->conns = &hc->link;
    hc->link.counted = 1;
    s->conn_count++;
    llhttp_init(&hc->parser, HTTP_REQUEST, &parser_settings);
    hc->parser.data = hc;
    hc->state = HC_WAIT_HEAD;
    hc->fresh = 1;
    arm_timer(hc, MC_HTTP_HEAD_TIMEOUT_MS);
    mc_conn_read_start(hc->conn);
}

/* The transport leaves the HTTP/1 codec (an upgrade, or a handover to HTTP/2) with the bytes
 * not parsed yet (moved into leftover); the rest of the connection's state is freed. */
static struct mc_conn *detach(struct h1_conn *hc, struct mc_buf *leftover)
{
    struct mc_conn *conn = hc->conn;
    *leftover = hc->inbuf;
    mc_buf_init(&hc->inbuf);
    hc->state = HC_UPGRADED;
    uv_timer_stop(&hc->timer);
    mc_http_server_unlink(hc->server, &hc->link);
    mc_conn_read_stop(conn);
    conn->data = NULL;
    conn->on_read = NULL;
    conn->on_drain = NULL;
    conn->on_close = NULL;
    hc->conn = NULL;
    hc->handles_open--; /* the transport no longer reports here */
    uv_close((uv_handle_t *)&hc->timer, on_timer_closed);
    return conn;
}

/* The first bytes of a connection decide its protocol: HTTP/2 (ALPN "h2" over TLS, or the
 * h2c connection preface) goes to http/h2.c. Runs on the first read only (or until a short
 * prefix of the preface is complete), never on the requests after. Returns 1 when it took
 * data (held, or handed over with the connection). */
static int h2_offer(struct h1_conn *hc, const char *data, size_t len)
{
    const char *buf = data;
    size_t n = len;
    if (hc->inbuf.len) {
        mc_buf_append(&hc->inbuf, data, len);
        buf = hc->inbuf.data;
        n = hc->inbuf.len;
    }
    int match = mc_tls_alpn_is(hc->conn, "h2") ? 1 : mc_h2_preface_match(buf, n);
    if (match == 0) {
        if (buf == data)
            mc_buf_append(&hc->inbuf, data, len); /* a prefix of the preface: wait for more */
        return 1;
    }
    hc->h2_checked = 1;
    if (match < 0) {
        if (buf == data)
            return 0;
        process(hc); /* HTTP/1 after all: the held bytes are parsed */
        return 1;
    }
    struct mc_http_server *s = hc->server;
    struct mc_buf held;
    struct mc_conn *conn = detach(hc, &held);
    if (held.len)
        mc_h2_serve(s, conn, held.data, held.len);
    else
        mc_h2_serve(s, conn, data, len);
    mc_buf_close(&held);
    return 1;
}

/* h2o's socket export: the transport and the unread bytes leave; the HTTP state is freed. */
static struct mc_conn *h1_upgrade(struct mc_http_request *req, int status,
                                  const struct mc_http_header *headers, size_t count,
                                  struct mc_buf *leftover)
{
    struct h1_conn *hc = req->stream;
    struct mc_conn *conn = hc->conn;
    struct mc_buf *head = scratch(hc);
    status_line(head, status);
    for (size_t i = 0; i < count; i++)
        mc_buf_append_header(head, headers[i].name, headers[i].value);
    mc_buf_append_str(head, "\r\n");
    mc_conn_write_copy(conn, head->data, head->len);
    mc_conn_flush_soon(conn);
    req->status = status;
    req->responded = 1;
    if (!req->continues)
        report(hc, req); /* an h2c upgrade is logged and counted once, as its stream 1 */
    hc->req = NULL;
    request_free(req);
    return detach(hc, leftover);
}

static const struct mc_cors *h1_cors(const struct mc_http_request *req)
{
    const struct h1_conn *hc = req->stream;
    return &hc->server->cors;
}

static const struct mc_http_stream_ops h1_ops = {
    .respond = h1_respond,
    .begin = h1_begin,
    .write = h1_write,
    .trailers = h1_trailers,
    .end = h1_end,
    .pending_output = h1_pending_output,
    .wait_drain = h1_wait_drain,
    .pause = h1_pause,
    .resume = h1_resume,
    .peer = h1_peer,
    .upgrade = h1_upgrade,
    .cors = h1_cors,
};
