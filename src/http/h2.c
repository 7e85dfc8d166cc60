/* The HTTP/2 codec over mc_conn and nghttp2. */
#include "http/h2.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <nghttp2/nghttp2.h>
#include <openssl/rand.h>

#include "http/body_clock.h"
#include "http/h2_tunnel.h"
#include "util/alloc.h"
#include "util/base64.h"
#include "util/log.h"

/* SETTINGS_MAX_CONCURRENT_STREAMS we announce (SPEC 12). */
#define H2_MAX_STREAMS 128
/* Each stream's receive window: what a paused stream may hold (the "one window per stream"). */
#define H2_STREAM_WINDOW 65535
/* The connection's receive window: room for many streams' uploads at once. */
#define H2_CONN_WINDOW (1024 * 1024)
/* nghttp2's frames are produced only while less than this is queued to the client: a client
 * that does not read leaves the rest in the streams' own (window-bounded) buffers. */
#define H2_OUTPUT_HIGH_WATER (256 * 1024)
/* Control frames (SETTINGS, PING, PRIORITY, RST_STREAM) a client
 * may send per second, on top of a burst of as many: more is a flood (SPEC 12) and ends the
 * connection with GOAWAY ENHANCE_YOUR_CALM. nghttp2 bounds the queued acks and the reset rate
 * itself; this catches a client that reads its acks and still floods. */
#define H2_CONTROL_BUDGET 1000
/* Empty DATA frames without END_STREAM cost a callback each and carry nothing. */
#define H2_EMPTY_DATA_BUDGET 100
/* Fields of a head kept in the stream itself; a larger head allocates. */
#define H2_INLINE_FIELDS 16
/* A connection's buffered request bodies may hold this many times --max_body_size. */
#define H2_BODY_BUDGET_FACTOR 4
/* After an answer given before the request body ended, the rest of the body must keep coming
 * within this, else the stream is reset (as http/h1.c does). */
#define H2_DISCARD_TIMEOUT_MS 5000

struct h2_conn;

struct mc_h2_stream {
    struct h2_conn *hc;
    int32_t id;
    struct mc_h2_stream *prev, *next; /* in hc->streams */
    struct mc_h2_stream *due_next;    /* in hc->due while a dispatch is due */
    struct mc_http_request *req;
    /* The head: pseudo-headers and fields, each name and value NUL-terminated in raw;
     * offsets pairs index raw (trailers: traw). Built into req at the end of the block. */
    struct mc_buf raw, traw;
    size_t *offsets; /* offsets_inline until a head has more fields */
    size_t offsets_cap, nfields;
    size_t offsets_inline[2 * H2_INLINE_FIELDS];
    /* The request and its field array live in the stream (no allocation for a usual head). */
    struct mc_http_request req_storage;
    struct mc_http_header headers_inline[H2_INLINE_FIELDS];
    size_t head_bytes;
    size_t method_off, path_off, authority_off, protocol_off; /* SIZE_MAX: absent */
    size_t content_type_field; /* 1 + the index of the first content-type field; 0: none */
    int error_status;          /* 431/400 decided while the head came in */
    const struct mc_http_route *route;
    enum mc_http_route_verdict verdict;
    /* Request body held while the handler has paused it (at most one window: not consumed). */
    struct mc_buf held;
    /* The response body not yet taken by nghttp2 (from out_off on). */
    struct mc_buf out;
    size_t out_off;
    struct mc_buf trailer_raw; /* lower-cased names and values of the trailers to send */
    nghttp2_nv *trailers_out;
    size_t trailer_count;
    mc_http_abort_cb drain_cb;
    uint64_t drain_timeout_ms, drain_deadline;
    size_t drain_mark;
    uint64_t body_deadline; /* buffered body or a discarded rest must progress by then; 0 */
    struct mc_http_body_clock clock; /* the request body's bound (not a tunnel's, not gRPC's) */
    size_t body_counted;             /* of req->body, in hc->body_bytes */
    size_t unconsumed; /* of that, not consumed yet: the connection's bodies are over budget */
    struct mc_h2_tunnel *tunnel;
    unsigned in_trailers : 1, head_done : 1, body_done : 1, body_end_delivered : 1, due : 1,
        dispatched : 1, streaming : 1, user_paused : 1, submitted : 1, out_eof : 1, deferred : 1,
        body_none : 1, trailers_due : 1, grpc : 1, body_slow : 1;
};

struct h2_conn {
    struct mc_http_server_link link;
    struct mc_http_server *server;
    struct mc_conn *conn;
    nghttp2_session *session;
    uv_timer_t timer;
    /* One send per loop turn for whatever the handlers produced. An idle handle, not a check:
     * output produced inside another check callback (the connection layer's flush) would
     * otherwise wait for the next poll to wake, up to a timer's period. */
    uv_idle_t send_idle;
    int handles_open;
    struct mc_h2_stream *streams;
    size_t stream_count;
    struct mc_h2_stream *due, **due_tail;
    uint64_t timer_due;    /* when the timer fires; 0 when not armed */
    uint64_t last_active;  /* the last time the stream count fell to 0 (or the start) */
    uint64_t budget_start; /* the second the flood counters are for */
    unsigned control_count, empty_data_count;
    /* Buffered request bodies of all streams: past H2_BODY_BUDGET_FACTOR x --max_body_size the
     * streams' windows stay shut until some are freed (128 streams must not hold 128 bodies). */
    size_t body_bytes;
    /* Past the budget one stream at a time (the first to be shut) still takes its body: a
     * body always completes, so streams never wait on each other until a timeout. Its body
     * adds at most one --max_body_size to the budget. */
    struct mc_h2_stream *body_turn;
    unsigned in_recv : 1, closed : 1, close_due : 1, send_queued : 1, output_wait : 1,
        had_request : 1, going_away : 1, peer_eof : 1;
    char peer[48];
};

static const struct mc_http_stream_ops h2_ops;

static void conn_close(struct h2_conn *hc, int now);
static void do_send(struct h2_conn *hc);
static void schedule_send(struct h2_conn *hc);
static void arm_at(struct h2_conn *hc, uint64_t when);

int mc_h2_preface_match(const char *buf, size_t len)
{
    size_t n = len < MC_H2_PREFACE_LEN ? len : MC_H2_PREFACE_LEN;
    if (memcmp(buf, MC_H2_PREFACE, n) != 0)
        return -1;
    return n == MC_H2_PREFACE_LEN ? 1 : 0;
}

static uint64_t now_ms(const struct h2_conn *hc)
{
    return uv_now(hc->server->net->loop);
}

static const char *conn_peer(struct h2_conn *hc)
{
    if (!hc->peer[0] && hc->conn)
        mc_conn_peer_name(hc->conn, hc->peer, sizeof hc->peer);
    return hc->peer[0] ? hc->peer : "-";
}

static void report(struct h2_conn *hc, const struct mc_http_request *req)
{
    if (mc_http_server_reports(hc->server))
        mc_http_server_report(hc->server, req, hc->server->access_log ? conn_peer(hc) : NULL);
}

static unsigned method_bit(const char *m)
{
    switch (m[0]) {
    case 'G':
        return strcmp(m, "GET") == 0 ? MC_HTTP_GET : MC_HTTP_OTHER;
    case 'H':
        return strcmp(m, "HEAD") == 0 ? MC_HTTP_HEAD : MC_HTTP_OTHER;
    case 'P':
        if (strcmp(m, "POST") == 0)
            return MC_HTTP_POST;
        if (strcmp(m, "PUT") == 0)
            return MC_HTTP_PUT;
        return strcmp(m, "PATCH") == 0 ? MC_HTTP_PATCH : MC_HTTP_OTHER;
    case 'D':
        return strcmp(m, "DELETE") == 0 ? MC_HTTP_DELETE : MC_HTTP_OTHER;
    case 'O':
        return strcmp(m, "OPTIONS") == 0 ? MC_HTTP_OPTIONS : MC_HTTP_OTHER;
    default:
        return MC_HTTP_OTHER;
    }
}

/* Connection-specific fields have no place in HTTP/2 (RFC 9113 8.2.2). */
static int connection_specific(const char *name)
{
    int c = name[0] | 0x20;
    if (c != 'c' && c != 'k' && c != 'p' && c != 't' && c != 'u')
        return 0; /* most names: one comparison */
    return strcasecmp(name, "connection") == 0 || strcasecmp(name, "keep-alive") == 0 ||
           strcasecmp(name, "proxy-connection") == 0 ||
           strcasecmp(name, "transfer-encoding") == 0 || strcasecmp(name, "upgrade") == 0;
}

/* ---------- streams ---------- */

/* A route that takes its body as it comes (on_body) rather than buffered. */
static int stream_route(const struct mc_h2_stream *st)
{
    return st->grpc || (st->route && (st->route->flags & MC_HTTP_ROUTE_STREAM));
}

static struct mc_h2_stream *stream_new(struct h2_conn *hc, int32_t id)
{
    struct mc_h2_stream *st = mc_calloc(1, sizeof *st);
    st->hc = hc;
    st->id = id;
    mc_buf_init(&st->raw);
    mc_buf_init(&st->traw);
    mc_buf_init(&st->held);
    mc_buf_init(&st->out);
    mc_buf_init(&st->trailer_raw);
    st->method_off = st->path_off = st->authority_off = st->protocol_off = SIZE_MAX;
    st->verdict = MC_HTTP_ROUTE_RUN;
    st->next = hc->streams;
    if (hc->streams)
        hc->streams->prev = st;
    hc->streams = st;
    hc->stream_count++;
    st->offsets = st->offsets_inline;
    st->offsets_cap = 2 * H2_INLINE_FIELDS;
    mc_buf_reserve(&st->raw, 240); /* one allocation for a usual head */
    struct mc_http_request *req = st->req = &st->req_storage;
    req->ops = &h2_ops;
    req->stream = st;
    req->http_major = 2;
    req->http_minor = 0;
    req->start_ms = now_ms(hc);
    mc_buf_init(&req->body);
    return st;
}

/* What the request holds (the request itself is the stream's). */
static void request_free(struct mc_http_request *req)
{
    if (!req)
        return;
    struct mc_h2_stream *st = req->stream;
    mc_buf_close(&req->body);
    if (req->headers != st->headers_inline)
        mc_free(req->headers);
    mc_free(req->trailers);
    mc_http_request_set_upstream(req, NULL);
    memset(req, 0, sizeof *req);
}

static void due_remove(struct h2_conn *hc, struct mc_h2_stream *st)
{
    if (!st->due)
        return;
    struct mc_h2_stream **p = &hc->due;
    while (*p && *p != st)
        p = &(*p)->due_next;
    if (*p)
        *p = st->due_next;
    if (hc->due_tail == &st->due_next)
        hc->due_tail = p;
    st->due = 0;
    st->due_next = NULL;
}

static void due_add(struct h2_conn *hc, struct mc_h2_stream *st)
{
    if (st->due)
        return;
    st->due = 1;
    st->due_next = NULL;
    *hc->due_tail = st;
    hc->due_tail = &st->due_next;
}

static size_t body_budget(const struct h2_conn *hc)
{
    uint64_t b = hc->server->max_body_size * H2_BODY_BUDGET_FACTOR;
    return b > SIZE_MAX / 2 ? SIZE_MAX / 2 : (size_t)b;
}

static void arm_at(struct h2_conn *hc, uint64_t when);

/* The stream's body bound (http/body_clock.h: silence and minimum average rate, paused while
 * the sidecar holds the window shut) is its body_deadline now; 0 while paused. */
static void arm_body(struct mc_h2_stream *st)
{
    const struct mc_http_server *s = st->hc->server;
    st->body_deadline =
        mc_http_body_clock_deadline(&st->clock, s->body_timeout_ms, s->body_min_rate);
    arm_at(st->hc, st->body_deadline);
}

static void start_body(struct mc_h2_stream *st)
{
    mc_http_body_clock_start(&st->clock, now_ms(st->hc));
    arm_body(st);
}

/* The stream's window, kept shut, reopens: what it holds is consumed. */
static void reopen_window(struct h2_conn *hc, struct mc_h2_stream *st)
{
    nghttp2_session_consume_stream(hc->session, st->id, st->unconsumed);
    st->unconsumed = 0;
    if (mc_http_body_clock_running(&st->clock)) {
        mc_http_body_clock_resume(&st->clock, now_ms(hc)); /* the client may send again */
        arm_body(st);
    }
    schedule_send(hc);
}

/* The turn past the budget ends with its stream's body (or the stream): the first stream
 * still shut takes it. */
static void pass_body_turn(struct h2_conn *hc)
{
    hc->body_turn = NULL;
    for (struct mc_h2_stream *st = hc->streams; st; st = st->next) {
        if (st->unconsumed) {
            hc->body_turn = st;
            reopen_window(hc, st);
            return;
        }
    }
}

/* st no longer takes its body (it ended, erred, or the stream went): if it held the turn
 * past the budget, the turn passes on (not while the connection is being torn down). */
static void end_body_turn(struct h2_conn *hc, struct mc_h2_stream *st)
{
    if (hc->body_turn != st)
        return;
    hc->body_turn = NULL;
    if (hc->session)
        pass_body_turn(hc);
}

/* Room again under the bodies' budget: the windows kept shut reopen. */
static void consume_held_bodies(struct h2_conn *hc)
{
    for (struct mc_h2_stream *st = hc->streams; st && hc->body_bytes <= body_budget(hc);
         st = st->next) {
        if (st->unconsumed)
            reopen_window(hc, st);
    }
}

/* The stream is gone (closed by nghttp2, or its connection closed): a request the handler
 * still holds is aborted, an answered one reported; everything is freed. */
static void stream_free(struct h2_conn *hc, struct mc_h2_stream *st)
{
    due_remove(hc, st);
    if (st->prev)
        st->prev->next = st->next;
    else
        hc->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    hc->stream_count--;
    hc->body_bytes -= st->body_counted;
    end_body_turn(hc, st); /* st is off the list: the turn goes to another */
    if (st->body_counted && hc->session)
        consume_held_bodies(hc);
    if (st->tunnel) {
        mc_h2_tunnel_detach(st->tunnel);
        st->tunnel = NULL;
    }
    struct mc_http_request *req = st->req;
    st->req = NULL;
    if (req) {
        if (!req->responded && st->dispatched && req->on_abort)
            req->on_abort(req);
        else if (req->responded)
            report(hc, req);
        request_free(req);
    }
    mc_buf_close(&st->raw);
    mc_buf_close(&st->traw);
    mc_buf_close(&st->held);
    mc_buf_close(&st->out);
    mc_buf_close(&st->trailer_raw);
    mc_free(st->trailers_out);
    if (st->offsets != st->offsets_inline)
        mc_free(st->offsets);
    mc_free(st);
    if (hc->stream_count == 0) {
        hc->last_active = now_ms(hc);
        arm_at(hc, hc->last_active + MC_HTTP_IDLE_TIMEOUT_MS);
    }
}

static void push_field(struct mc_h2_stream *st, struct mc_buf *b, const uint8_t *name, size_t nl,
                       const uint8_t *value, size_t vl)
{
    if (st->nfields * 2 + 2 > st->offsets_cap) {
        size_t cap = st->offsets_cap * 2;
        size_t *o = mc_malloc(cap * sizeof *o);
        memcpy(o, st->offsets, st->nfields * 2 * sizeof *o);
        if (st->offsets != st->offsets_inline)
            mc_free(st->offsets);
        st->offsets = o;
        st->offsets_cap = cap;
    }
    mc_buf_reserve(b, nl + vl + 2); /* one reservation, then plain copies */
    char *p = b->data + b->len;
    st->offsets[st->nfields * 2] = b->len;
    memcpy(p, name, nl);
    p[nl] = '\0';
    st->offsets[st->nfields * 2 + 1] = b->len + nl + 1;
    memcpy(p + nl + 1, value, vl);
    p[nl + 1 + vl] = '\0';
    b->len += nl + vl + 2;
    b->data[b->len] = '\0'; /* the buffer's own invariant */
    st->nfields++;
}

/* A field of the head (names lowercase: nghttp2 refuses others, the h2c copy lowers them);
 * the first content-type is noted for the request as it comes. */
static void push_head_field(struct mc_h2_stream *st, const uint8_t *name, size_t namelen,
                            const uint8_t *value, size_t valuelen)
{
    if (namelen == 12 && !st->content_type_field && memcmp(name, "content-type", 12) == 0)
        st->content_type_field = st->nfields + 1;
    push_field(st, &st->raw, name, namelen, value, valuelen);
}

/* The fields collected in b as an array pointing into it (b no longer grows). */
static struct mc_http_header *fix_fields(struct mc_h2_stream *st, struct mc_buf *b, size_t extra,
                                         int inline_ok)
{
    size_t n = st->nfields + extra + 1;
    struct mc_http_header *h = inline_ok && n <= H2_INLINE_FIELDS
                                   ? memset(st->headers_inline, 0, n * sizeof *h)
                                   : mc_calloc(n, sizeof *h);
    for (size_t i = 0; i < st->nfields; i++) {
        h[i].name = b->data + st->offsets[i * 2];
        h[i].value = b->data + st->offsets[i * 2 + 1];
    }
    return h;
}

/* ---------- the response ---------- */

/* v in decimal into buf (24 bytes at least), NUL-terminated; returns its length. */
static size_t decimal(char *buf, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return n;
}

/* Builds nghttp2's name/value array for a head: ":status" then fields, names lower-cased
 * into names (which must not grow after), connection-specific fields left out. */
static size_t build_nv(nghttp2_nv *nv, struct mc_buf *names, const char *status,
                       const struct mc_http_header *h, size_t count)
{
    size_t n = 0;
    if (status) {
        nv[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, strlen(status),
                               NGHTTP2_NV_FLAG_NONE};
    }
    size_t total = 0;
    for (size_t i = 0; i < count; i++)
        total += strlen(h[i].name) + 1;
    mc_buf_reset(names);
    mc_buf_reserve(names, total + 1);
    for (size_t i = 0; i < count; i++) {
        if (connection_specific(h[i].name))
            continue;
        size_t nl = strlen(h[i].name);
        char *p = names->data + names->len;
        for (size_t k = 0; k < nl; k++)
            p[k] = (char)tolower((unsigned char)h[i].name[k]);
        names->len += nl;
        nv[n++] = (nghttp2_nv){(uint8_t *)p, (uint8_t *)h[i].value, nl, strlen(h[i].value),
                               NGHTTP2_NV_FLAG_NONE};
    }
    return n;
}

static ssize_t data_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *user_data)
{
    (void)session;
    (void)stream_id;
    (void)user_data;
    struct mc_h2_stream *st = source->ptr;
    size_t avail = st->out.len - st->out_off;
    size_t n = avail < length ? avail : length;
    if (n) {
        memcpy(buf, st->out.data + st->out_off, n);
        st->out_off += n;
        if (st->out_off == st->out.len) {
            mc_buf_reset(&st->out);
            st->out_off = 0;
        }
    }
    if (st->out_off == st->out.len && st->out_eof) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (st->trailers_due) {
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            nghttp2_submit_trailer(st->hc->session, st->id, st->trailers_out, st->trailer_count);
        }
        return (ssize_t)n;
    }
    if (n == 0) {
        st->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

static void resume_data(struct mc_h2_stream *st)
{
    if (st->deferred) {
        st->deferred = 0;
        nghttp2_session_resume_data(st->hc->session, st->id);
    }
    schedule_send(st->hc);
}

/* Submits the head; with_body: a data provider follows (else END_STREAM on the head). */
static void submit_head(struct mc_h2_stream *st, const nghttp2_nv *nv, size_t n, int with_body)
{
    struct h2_conn *hc = st->hc;
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = data_read};
    st->submitted = 1;
    if (nghttp2_submit_response(hc->session, st->id, nv, n, with_body ? &prd : NULL) != 0)
        nghttp2_submit_rst_stream(hc->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    schedule_send(hc);
}

/* A response is complete: the rest of a request body still coming is not wanted. */
static void answered(struct mc_h2_stream *st)
{
    if (!st->body_done && st->hc->session) {
        st->body_deadline = now_ms(st->hc) + H2_DISCARD_TIMEOUT_MS;
        arm_at(st->hc, st->body_deadline);
    }
    if (st->user_paused) {
        st->user_paused = 0; /* nobody resumes it now: the held body is dropped and consumed */
        if (st->held.len)
            nghttp2_session_consume_stream(st->hc->session, st->id, st->held.len);
        mc_buf_reset(&st->held);
    }
}

static void h2_respond(struct mc_http_request *req, int status, const char *content_type,
                       const struct mc_http_header *extra, size_t extra_count, const void *body,
                       size_t len)
{
    struct mc_h2_stream *st = req->stream;
    if (req->responded || st->streaming)
        return;
    req->responded = 1;
    req->status = status;
    struct mc_http_header cors[MC_CORS_MAX_HEADERS];
    size_t ncors =
        mc_cors_headers(&st->hc->server->cors, mc_http_request_header(req, "origin"), cors);
    size_t count = extra_count + ncors + 2;
    struct mc_http_header fixed[16];
    struct mc_http_header *h = count <= 16 ? fixed : mc_malloc(count * sizeof *h);
    size_t n = 0;
    char clen[24], stext[24];
    decimal(clen, len);
    decimal(stext, (uint64_t)status);
    if (content_type)
        h[n++] = (struct mc_http_header){"content-type", content_type};
    h[n++] = (struct mc_http_header){"content-length", clen};
    for (size_t i = 0; i < extra_count; i++)
        h[n++] = extra[i];
    for (size_t i = 0; i < ncors; i++)
        h[n++] = cors[i];
    nghttp2_nv nvfixed[17];
    nghttp2_nv *nv = n + 1 <= 17 ? nvfixed : mc_malloc((n + 1) * sizeof *nv);
    struct mc_buf *names = &st->hc->server->scratch;
    size_t nn = build_nv(nv, names, stext, h, n);
    int head_only = req->method_bit == MC_HTTP_HEAD || status == 204 || status == 304;
    if (len && !head_only) {
        mc_buf_append(&st->out, body, len);
        st->out_eof = 1;
    }
    req->bytes_sent = head_only ? 0 : len;
    submit_head(st, nv, nn, len && !head_only);
    if (nv != nvfixed)
        mc_free(nv);
    if (h != fixed)
        mc_free(h);
    answered(st);
}

static void h2_begin(struct mc_http_request *req, int status, const struct mc_http_header *headers,
                     size_t count, uint64_t content_length)
{
    struct mc_h2_stream *st = req->stream;
    if (req->responded || st->streaming)
        return;
    st->streaming = 1;
    req->status = status;
    int no_body_status = status == 204 || status == 304 || status < 200;
    st->body_none = no_body_status || req->method_bit == MC_HTTP_HEAD;
    nghttp2_nv nvfixed[32];
    nghttp2_nv *nv = count + 2 <= 32 ? nvfixed : mc_malloc((count + 2) * sizeof *nv);
    char stext[24], clen[24];
    decimal(stext, (uint64_t)status);
    size_t n = build_nv(nv, &st->hc->server->scratch, stext, headers, count);
    if (!no_body_status && content_length != MC_HTTP_LENGTH_UNKNOWN) {
        decimal(clen, content_length);
        nv[n++] = (nghttp2_nv){(uint8_t *)"content-length", (uint8_t *)clen, 14, strlen(clen),
                               NGHTTP2_NV_FLAG_NONE};
    }
    submit_head(st, nv, n, !st->body_none);
    if (nv != nvfixed)
        mc_free(nv);
}

static void h2_write(struct mc_http_request *req, const void *data, size_t len)
{
    struct mc_h2_stream *st = req->stream;
    if (!st->streaming || req->responded || st->body_none || len == 0)
        return;
    if (st->out_off && st->out_off >= st->out.len / 2) {
        mc_buf_consume(&st->out, st->out_off); /* keep the buffer from creeping forward */
        st->out_off = 0;
    }
    mc_buf_append(&st->out, data, len);
    req->bytes_sent += len;
    resume_data(st);
}

static void h2_trailers(struct mc_http_request *req, const struct mc_http_header *headers,
                        size_t count)
{
    struct mc_h2_stream *st = req->stream;
    if (!st->streaming || st->body_none || st->trailers_due || req->responded || count == 0)
        return;
    /* Kept (lower-cased) until the data provider reaches the end of the body. */
    size_t total = 0;
    for (size_t i = 0; i < count; i++)
        total += strlen(headers[i].name) + strlen(headers[i].value) + 2;
    mc_buf_reset(&st->trailer_raw);
    mc_buf_reserve(&st->trailer_raw, total);
    mc_free(st->trailers_out);
    st->trailers_out = mc_calloc(count, sizeof *st->trailers_out);
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        if (connection_specific(headers[i].name))
            continue;
        size_t nl = strlen(headers[i].name), vl = strlen(headers[i].value);
        char *p = st->trailer_raw.data + st->trailer_raw.len;
        for (size_t k = 0; k < nl; k++)
            p[k] = (char)tolower((unsigned char)headers[i].name[k]);
        memcpy(p + nl + 1, headers[i].value, vl + 1);
        p[nl] = '\0';
        st->trailer_raw.len += nl + vl + 2;
        st->trailers_out[n++] =
            (nghttp2_nv){(uint8_t *)p, (uint8_t *)p + nl + 1, nl, vl, NGHTTP2_NV_FLAG_NONE};
    }
    st->trailer_count = n;
    st->trailers_due = n > 0;
}

static void h2_end(struct mc_http_request *req, int complete)
{
    struct mc_h2_stream *st = req->stream;
    if (req->responded)
        return;
    if (!st->streaming)
        h2_begin(req, complete ? 200 : 502, NULL, 0, 0);
    req->responded = 1;
    if (!complete) {
        /* A cut body: the client must not take it for the whole one. */
        nghttp2_submit_rst_stream(st->hc->session, NGHTTP2_FLAG_NONE, st->id,
                                  NGHTTP2_INTERNAL_ERROR);
        schedule_send(st->hc);
    } else {
        st->out_eof = 1;
        resume_data(st);
    }
    answered(st);
}

static size_t h2_pending_output(const struct mc_http_request *req)
{
    const struct mc_h2_stream *st = req->stream;
    return st->out.len - st->out_off;
}

static void h2_wait_drain(struct mc_http_request *req, mc_http_abort_cb cb, uint64_t timeout_ms)
{
    struct mc_h2_stream *st = req->stream;
    st->drain_cb = cb;
    st->drain_timeout_ms = cb ? timeout_ms : 0;
    if (cb && timeout_ms) {
        st->drain_mark = st->out.len - st->out_off;
        st->drain_deadline = now_ms(st->hc) + timeout_ms;
        arm_at(st->hc, st->drain_deadline);
    }
    if (cb)
        schedule_send(st->hc); /* the drain is noticed after the next send */
}

/* Body bytes to the handler (streaming route); they are consumed (the window reopens) only
 * once given. */
static void deliver(struct mc_h2_stream *st, const uint8_t *data, size_t len)
{
    struct mc_http_request *req = st->req;
    if (req->on_body)
        req->on_body(req, (const char *)data, len);
    struct h2_conn *hc = st->hc;
    if (hc->session)
        nghttp2_session_consume_stream(hc->session, st->id, len);
}

/* Hands what was held while paused to the handler, then the end of the body. Stops when the
 * handler pauses again or the stream goes away. */
static void deliver_held(struct mc_h2_stream *st)
{
    struct h2_conn *hc = st->hc;
    int32_t id = st->id;
    if (st->held.len && !st->user_paused) {
        struct mc_buf held = st->held;
        mc_buf_init(&st->held);
        deliver(st, (const uint8_t *)held.data, held.len);
        mc_buf_close(&held);
        if (!nghttp2_session_get_stream_user_data(hc->session, id))
            return;
    }
    if (st->body_done && !st->body_end_delivered && !st->user_paused && st->held.len == 0 &&
        st->req && !st->req->responded) {
        st->body_end_delivered = 1;
        if (st->req->on_body)
            st->req->on_body(st->req, NULL, 0);
    }
}

static void h2_pause(struct mc_http_request *req)
{
    struct mc_h2_stream *st = req->stream;
    st->user_paused = 1;
    if (mc_http_body_clock_running(&st->clock) && !req->responded) {
        /* the window stays shut by us: not the client's time */
        mc_http_body_clock_pause(&st->clock, now_ms(st->hc));
        st->body_deadline = 0;
    }
}

static void h2_resume(struct mc_http_request *req)
{
    struct mc_h2_stream *st = req->stream;
    if (!st->user_paused)
        return;
    st->user_paused = 0;
    struct h2_conn *hc = st->hc;
    if (mc_http_body_clock_running(&st->clock) && !req->responded) {
        mc_http_body_clock_resume(&st->clock, now_ms(hc));
        arm_body(st);
    }
    deliver_held(st);
    schedule_send(hc); /* window updates */
}

static void h2_peer(const struct mc_http_request *req, char *buf, size_t len)
{
    if (len == 0)
        return;
    const struct mc_h2_stream *st = req->stream;
    const char *peer = conn_peer(st->hc);
    size_t n = strnlen(peer, len - 1);
    memcpy(buf, peer, n);
    buf[n] = '\0';
}

static const struct mc_cors *h2_cors(const struct mc_http_request *req)
{
    const struct mc_h2_stream *st = req->stream;
    return &st->hc->server->cors;
}

/* An extended CONNECT (RFC 8441) taken: 200 instead of 101, and the stream's DATA frames become
 * the byte stream of the returned connection (http/h2_tunnel.h). */
static struct mc_conn *h2_upgrade(struct mc_http_request *req, int status,
                                  const struct mc_http_header *headers, size_t count,
                                  struct mc_buf *leftover)
{
    (void)headers;
    (void)count;
    struct mc_h2_stream *st = req->stream;
    struct h2_conn *hc = st->hc;
    st->streaming = 1;
    req->status = status == 101 ? 200 : status;
    static const nghttp2_nv ok = {(uint8_t *)":status", (uint8_t *)"200", 7, 3,
                                  NGHTTP2_NV_FLAG_NONE};
    submit_head(st, &ok, 1, 1);
    *leftover = st->held;
    mc_buf_init(&st->held);
    if (leftover->len)
        nghttp2_session_consume_stream(hc->session, st->id, leftover->len);
    req->responded = 1;
    report(hc, req);
    st->req = NULL;
    request_free(req);
    st->tunnel = mc_h2_tunnel_new(hc->server->net, st);
    if (!st->tunnel)
        return NULL;
    return mc_h2_tunnel_conn(st->tunnel);
}

static const struct mc_http_stream_ops h2_ops = {
    .respond = h2_respond,
    .begin = h2_begin,
    .write = h2_write,
    .trailers = h2_trailers,
    .end = h2_end,
    .pending_output = h2_pending_output,
    .wait_drain = h2_wait_drain,
    .pause = h2_pause,
    .resume = h2_resume,
    .peer = h2_peer,
    .upgrade = h2_upgrade,
    .cors = h2_cors,
};

/* ---------- the tunnel's side (http/h2_tunnel.c) ---------- */

void mc_h2_stream_write(struct mc_h2_stream *st, const void *data, size_t len)
{
    mc_buf_append(&st->out, data, len);
    resume_data(st);
}

size_t mc_h2_stream_pending(const struct mc_h2_stream *st)
{
    return st->out.len - st->out_off;
}

void mc_h2_stream_end(struct mc_h2_stream *st, int reset)
{
    if (reset) {
        st->tunnel = NULL; /* the tunnel is going: the stream no longer reports to it */
        nghttp2_submit_rst_stream(st->hc->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
        schedule_send(st->hc);
    } else {
        st->out_eof = 1;
        resume_data(st);
    }
}

void mc_h2_stream_consume(struct mc_h2_stream *st, size_t len)
{
    if (len) {
        nghttp2_session_consume_stream(st->hc->session, st->id, len);
        schedule_send(st->hc);
    }
}

int mc_h2_stream_peer_addr(struct mc_h2_stream *st, struct sockaddr_storage *out)
{
    struct mc_conn *c = st->hc->conn;
    return c ? c->type->peer_addr(c, out) : UV_ENOTCONN;
}

/* ---------- the request head ---------- */

static void refuse(struct mc_h2_stream *st, int status, const char *detail)
{
    st->verdict = MC_HTTP_ROUTE_RUN;
    st->route = NULL;
    st->dispatched = 1;
    mc_http_respond_error(st->req, status, "go.micro.sidecar", detail);
}

/* An extended CONNECT for a WebSocket also carries the fields of its HTTP/1.1 form (Upgrade,
 * Connection, a fresh Sec-WebSocket-Key): the reverse proxy forwards it to the node as the
 * HTTP/1.1 upgrade it understands, and relays the frames once the node switches (RFC 8441
 * frames are RFC 6455's). The sidecar's own WebSocket routes ignore them over HTTP/2. */
static void websocket_fields(struct mc_h2_stream *st)
{
    static const struct {
        const char *name, *value;
    } fields[] = {{"upgrade", "websocket"}, {"connection", "upgrade"}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        push_field(st, &st->raw, (const uint8_t *)fields[i].name, strlen(fields[i].name),
                   (const uint8_t *)fields[i].value, strlen(fields[i].value));
    unsigned char nonce[16];
    char key[32];
    if (RAND_bytes(nonce, sizeof nonce) != 1)
        memset(nonce, 0x5a, sizeof nonce); /* the key only proves the node speaks WebSocket */
    size_t n = mc_base64_encode(key, nonce, sizeof nonce);
    push_field(st, &st->raw, (const uint8_t *)"sec-websocket-key", 17, (const uint8_t *)key, n);
}

/* The head is complete: the request object is built and routed; a streaming route (or an
 * answer of the router's own) is dispatched now, a buffered one once its body is in. */
static void head_complete(struct mc_h2_stream *st, int end_stream)
{
    struct h2_conn *hc = st->hc;
    struct mc_http_request *req = st->req;
    struct mc_http_server *s = hc->server;
    st->head_done = 1;
    st->body_deadline = 0;
    hc->had_request = 1;
    if (st->protocol_off != SIZE_MAX && !st->error_status &&
        strcasecmp(st->raw.data + st->protocol_off, "websocket") == 0)
        websocket_fields(st);
    size_t extra = st->authority_off != SIZE_MAX ? 1 : 0;
    req->headers = fix_fields(st, &st->raw, extra, 1);
    req->header_count = st->nfields;
    if (st->content_type_field)
        req->content_type = req->headers[st->content_type_field - 1].value;
    st->nfields = 0;
    if (st->error_status) {
        due_add(hc, st);
        return;
    }
    if (st->method_off == SIZE_MAX || st->path_off == SIZE_MAX) {
        st->error_status = 400; /* nghttp2 checks the pseudo-headers; CONNECT has no :path */
        due_add(hc, st);
        return;
    }
    /* HTTP/2 names the host in :authority; handlers read Host as over HTTP/1.1. */
    if (extra && !mc_http_request_header(req, "host"))
        req->headers[req->header_count++] =
            (struct mc_http_header){"host", st->raw.data + st->authority_off};
    req->method_name = st->raw.data + st->method_off;
    req->method_bit = method_bit(req->method_name);
    if (st->protocol_off != SIZE_MAX) {
        /* An extended CONNECT is the HTTP/2 form of a GET with an Upgrade (RFC 8441 4): the
         * route sees a GET asking to switch; the method name stays CONNECT. */
        req->upgrade = strcasecmp(st->raw.data + st->protocol_off, "websocket") == 0;
        if (req->upgrade)
            req->method_bit = MC_HTTP_GET;
    }
    req->url = st->raw.data + st->path_off;
    req->url_len = strlen(req->url);
    const char *q = strchr(req->url, '?');
    req->path = req->url;
    req->path_len = q ? (size_t)(q - req->url) : req->url_len;
    req->query = q ? q + 1 : NULL;
    req->query_len = q ? strlen(q + 1) : 0;
    const char *cl = mc_http_request_header(req, "content-length");
    if (cl) {
        char *end;
        req->content_length = strtoull(cl, &end, 10);
        req->has_content_length = 1; /* nghttp2 has checked it is a number the body matches */
    } else if (!end_stream) {
        req->chunked = 1; /* a body of unknown length follows */
    }
    st->verdict = mc_http_router_match(s->routes, s->route_count, req->method_bit, req->path,
                                       req->path_len, &st->route);
    if (st->route)
        req->family = (unsigned char)MC_HTTP_ROUTE_FAMILY_OF(st->route->flags);
    if (req->upgrade && stream_route(st))
        req->method_name = "GET"; /* the proxy forwards the HTTP/1.1 form (websocket_fields) */
    if (st->verdict != MC_HTTP_ROUTE_RUN) {
        due_add(hc, st);
        return;
    }
    /* gRPC streams whatever the route (a client- or bidi-streaming call cannot wait for its
     * whole body): src/api/grpc_api.c takes these requests on every handler's fallback. */
    st->grpc = mc_http_request_is_grpc(req);
    if (stream_route(st) || req->upgrade) {
        due_add(hc, st); /* an extended CONNECT's DATA is the tunnel's, held till it exists */
        /* A streamed body (a proxied upload) is bounded as a buffered one is; a tunnel's data
         * and a gRPC stream's messages are not a body (the call's deadline bounds gRPC). */
        if (!end_stream && !req->upgrade && !st->grpc)
            start_body(st);
        return;
    }
    if (req->has_content_length && req->content_length > s->max_body_size) {
        st->error_status = 413;
        due_add(hc, st);
        return;
    }
    if (end_stream)
        due_add(hc, st);
    else
        start_body(st);
}

static void dispatch(struct mc_h2_stream *st)
{
    struct mc_http_request *req = st->req;
    struct h2_conn *hc = st->hc;
    if (st->dispatched || !req)
        return;
    if (st->error_status) {
        char detail[96];
        const char *d = "malformed request";
        if (st->error_status == 431) {
            d = "request header fields too large";
        } else if (st->error_status == 413) {
            snprintf(detail, sizeof detail, "request body over %s", hc->server->max_body_text);
            d = detail;
        } else if (st->error_status == 408) {
            d = st->body_slow ? "request body under --body_min_rate after --body_timeout"
                              : "request body stalled for --body_timeout";
        }
        refuse(st, st->error_status, d);
        return;
    }
    st->dispatched = 1;
    if (st->verdict != MC_HTTP_ROUTE_RUN || !st->route) {
        mc_http_router_answer(req, st->route,
                              st->verdict != MC_HTTP_ROUTE_RUN ? st->verdict
                                                               : MC_HTTP_ROUTE_NOT_FOUND);
        return;
    }
    st->route->handler(req, st->route->ctx);
}

static void run_due(struct h2_conn *hc)
{
    while (hc->due && !hc->closed) {
        struct mc_h2_stream *st = hc->due;
        hc->due = st->due_next;
        if (!hc->due)
            hc->due_tail = &hc->due;
        st->due = 0;
        st->due_next = NULL;
        int32_t id = st->id;
        dispatch(st);
        /* A streaming route dispatched at its head may have a body (or its end) waiting. */
        if (!hc->closed && nghttp2_session_get_stream_user_data(hc->session, id) == st &&
            stream_route(st) && st->req && !st->req->responded)
            deliver_held(st);
    }
}

/* ---------- nghttp2 callbacks ---------- */

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct h2_conn *hc = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        struct mc_h2_stream *st = stream_new(hc, frame->hd.stream_id);
        nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, st);
        /* A header block must end in time: until it does, the connection carries nothing
         * else (CONTINUATION frames only), so one that stalls ends the connection. */
        st->body_deadline = now_ms(hc) + MC_HTTP_HEAD_TIMEOUT_MS;
        arm_at(hc, st->body_deadline);
        return 0;
    }
    struct mc_h2_stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (st) {
        st->in_trailers = 1;
        st->nfields = 0;
        st->head_bytes = 0;
    }
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    (void)flags;
    (void)user_data;
    struct mc_h2_stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!st || st->error_status)
        return 0;
    /* The head's bound as over HTTP/1 (SPEC 11/12): its decoded size, and its field count. */
    st->head_bytes += namelen + valuelen + 4;
    if (st->head_bytes > MC_HTTP_MAX_HEAD || st->nfields >= MC_HTTP_MAX_HEADERS + 8) {
        if (st->in_trailers)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
        st->error_status = 431;
        return 0;
    }
    if (st->in_trailers) {
        push_field(st, &st->traw, name, namelen, value, valuelen);
        return 0;
    }
    if (namelen && name[0] == ':') {
        size_t *off = NULL;
        if (namelen == 7 && memcmp(name, ":method", 7) == 0)
            off = &st->method_off;
        else if (namelen == 5 && memcmp(name, ":path", 5) == 0)
            off = &st->path_off;
        else if (namelen == 10 && memcmp(name, ":authority", 10) == 0)
            off = &st->authority_off;
        else if (namelen == 9 && memcmp(name, ":protocol", 9) == 0)
            off = &st->protocol_off;
        if (off) {
            /* pseudo-headers come first: they sit before the fields, as "\0value\0" */
            struct mc_buf *b = &st->raw;
            mc_buf_reserve(b, valuelen + 2);
            b->data[b->len] = '\0';
            *off = b->len + 1;
            memcpy(b->data + b->len + 1, value, valuelen);
            b->data[b->len + 1 + valuelen] = '\0';
            b->len += valuelen + 2;
            b->data[b->len] = '\0';
        }
        return 0;
    }
    if (st->nfields >= MC_HTTP_MAX_HEADERS) {
        st->error_status = 431;
        return 0;
    }
    push_head_field(st, name, namelen, value, valuelen);
    return 0;
}

static void body_done(struct mc_h2_stream *st)
{
    st->body_done = 1;
    end_body_turn(st->hc, st);
    st->body_deadline = 0;
    mc_http_body_clock_stop(&st->clock);
    if (st->tunnel) {
        mc_h2_tunnel_eof(st->tunnel);
        return;
    }
    if (!st->head_done || !st->req)
        return;
    if (st->dispatched) {
        if (stream_route(st))
            deliver_held(st);
        return;
    }
    if (stream_route(st) && st->verdict == MC_HTTP_ROUTE_RUN && !st->error_status)
        return; /* due already: its body end is given after the dispatch */
    due_add(st->hc, st);
}

static int count_flood(struct h2_conn *hc, const nghttp2_frame_hd *hd)
{
    int empty =
        hd->type == NGHTTP2_DATA && hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_STREAM);
    /* WINDOW_UPDATE is left out: a reader sends one per few frames it takes, and answering
     * one costs nothing. */
    int control = hd->type == NGHTTP2_SETTINGS || hd->type == NGHTTP2_PING ||
                  hd->type == NGHTTP2_PRIORITY || hd->type == NGHTTP2_RST_STREAM;
    if (!empty && !control)
        return 0;
    uint64_t now = now_ms(hc);
    if (now - hc->budget_start >= 1000) {
        /* a new second: the counts start over below the burst (budget kept for one second) */
        hc->budget_start = now;
        hc->control_count = hc->control_count > H2_CONTROL_BUDGET ? H2_CONTROL_BUDGET : 0;
        hc->empty_data_count = 0;
    }
    if (empty && ++hc->empty_data_count > H2_EMPTY_DATA_BUDGET)
        return -1;
    if (control && ++hc->control_count > 2 * H2_CONTROL_BUDGET)
        return -1;
    return 0;
}

static int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd, void *user_data)
{
    struct h2_conn *hc = user_data;
    if (count_flood(hc, hd) < 0) {
        mc_log_warn("http2 client %s floods control frames: closing", conn_peer(hc));
        nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM);
        hc->close_due = 1;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    struct mc_h2_stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!st)
        return 0;
    int end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS) {
        if (st->in_trailers) {
            if (st->req && st->nfields) {
                st->req->trailers = fix_fields(st, &st->traw, 0, 0);
                st->req->trailer_count = st->nfields;
            }
        } else {
            head_complete(st, end);
        }
    }
    if (end)
        body_done(st);
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
    (void)flags;
    (void)user_data;
    /* The connection window reopens at once: a paused stream holds its own window shut, never
     * its neighbours'. */
    nghttp2_session_consume_connection(session, len);
    struct mc_h2_stream *st = nghttp2_session_get_stream_user_data(session, stream_id);
    if (st && st->tunnel) {
        mc_h2_tunnel_data(st->tunnel, (const char *)data, len); /* consumed as it is read */
        return 0;
    }
    if (!st || !st->req || st->req->responded || st->error_status) {
        if (st && st->req && st->req->responded && !st->body_done)
            st->body_deadline = now_ms(st->hc) + H2_DISCARD_TIMEOUT_MS;
        nghttp2_session_consume_stream(session, stream_id, len);
        return 0;
    }
    struct mc_http_request *req = st->req;
    if (req->upgrade && st->verdict == MC_HTTP_ROUTE_RUN) {
        mc_buf_append(&st->held, data, len); /* the tunnel's, once the route takes it */
        return 0;
    }
    if (stream_route(st) && st->verdict == MC_HTTP_ROUTE_RUN) {
        if (mc_http_body_clock_running(&st->clock)) {
            mc_http_body_clock_add(&st->clock, now_ms(st->hc), len);
            if (!st->clock.paused_at)
                arm_body(st);
        }
        if (st->dispatched && !st->user_paused && st->held.len == 0 && !st->due)
            deliver(st, data, len);
        else
            mc_buf_append(&st->held, data, len); /* within the stream's window */
        return 0;
    }
    if (st->verdict != MC_HTTP_ROUTE_RUN) {
        nghttp2_session_consume_stream(session, stream_id, len);
        return 0; /* answered by the router: the body is skipped */
    }
    if (req->body.len + len > st->hc->server->max_body_size) {
        nghttp2_session_consume_stream(session, stream_id, len);
        st->error_status = 413;
        st->body_deadline = 0;
        due_add(st->hc, st);
        end_body_turn(st->hc, st); /* its body is no longer taken */
        return 0;
    }
    mc_buf_append(&req->body, data, len);
    st->body_counted += len;
    st->hc->body_bytes += len;
    mc_http_body_clock_add(&st->clock, now_ms(st->hc), len);
    if (!st->hc->body_turn && st->hc->body_bytes > body_budget(st->hc))
        st->hc->body_turn = st; /* the first over the budget goes on: see body_turn */
    if (st->hc->body_bytes <= body_budget(st->hc) || st->hc->body_turn == st) {
        nghttp2_session_consume_stream(session, stream_id, len);
        if (st->unconsumed)
            reopen_window(st->hc, st); /* shut before it took the turn */
        else
            arm_body(st);
    } else {
        st->unconsumed += len; /* this stream's window stays shut for now: not its time */
        mc_http_body_clock_pause(&st->clock, now_ms(st->hc));
        st->body_deadline = 0;
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    (void)error_code;
    struct h2_conn *hc = user_data;
    struct mc_h2_stream *st = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!st)
        return 0;
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    stream_free(hc, st);
    return 0;
}

/* ---------- the connection ---------- */

static void after_send(struct h2_conn *hc)
{
    /* Streams whose output nghttp2 has taken whole, and whose handler waits for that. A
     * callback neither frees streams (only nghttp2's callbacks and conn_close do) nor sends. */
    int room = mc_conn_pending(hc->conn) <= H2_OUTPUT_HIGH_WATER;
    for (struct mc_h2_stream *st = hc->streams; st && !hc->closed; st = st->next) {
        if (st->tunnel) {
            mc_h2_tunnel_drained(st->tunnel);
        } else if (st->drain_cb && room && st->out.len == st->out_off && st->req) {
            mc_http_abort_cb cb = st->drain_cb;
            st->drain_cb = NULL;
            st->drain_timeout_ms = 0;
            cb(st->req);
        }
    }
}

static void do_send(struct h2_conn *hc)
{
    if (hc->in_recv || hc->closed)
        return;
    while (mc_conn_pending(hc->conn) < H2_OUTPUT_HIGH_WATER) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(hc->session, &data);
        if (n < 0) {
            conn_close(hc, 1);
            return;
        }
        if (n == 0)
            break;
        mc_conn_write_copy(hc->conn, data, (size_t)n);
        if (hc->closed)
            return;
    }
    mc_conn_flush(hc->conn); /* nghttp2 batched the frames already: one write now */
    if (!nghttp2_session_want_read(hc->session) && !nghttp2_session_want_write(hc->session)) {
        conn_close(hc, 0); /* GOAWAY exchanged and every stream done */
        return;
    }
    after_send(hc);
}

static void on_send_idle(uv_idle_t *h)
{
    struct h2_conn *hc = h->data;
    uv_idle_stop(h);
    hc->send_queued = 0;
    do_send(hc);
}

static void schedule_send(struct h2_conn *hc)
{
    if (hc->send_queued || hc->closed)
        return;
    hc->send_queued = 1;
    uv_idle_start(&hc->send_idle, on_send_idle);
}

/* After input: the dispatches it made due, the close it asked for, and what it produced. */
static void after_input(struct h2_conn *hc)
{
    run_due(hc);
    if (hc->closed)
        return;
    do_send(hc);
    if (hc->closed)
        return;
    if (hc->close_due) {
        conn_close(hc, 0);
        return;
    }
    /* A client that does not take its output is not read either: it cannot make us queue more
     * (acks of its PINGs and SETTINGS included). */
    if (mc_conn_pending(hc->conn) >= H2_OUTPUT_HIGH_WATER && hc->conn->reading) {
        hc->output_wait = 1;
        mc_conn_read_stop(hc->conn);
    }
}

static void on_conn_read(struct mc_conn *c, const char *data, ssize_t nread)
{
    struct h2_conn *hc = c->data;
    if (nread < 0) {
        conn_close(hc, 1);
        return;
    }
    hc->in_recv = 1;
    ssize_t rv = nghttp2_session_mem_recv(hc->session, (const uint8_t *)data, (size_t)nread);
    hc->in_recv = 0;
    if (rv < 0) {
        /* a protocol error (a bad preface, a flood): nghttp2 queued its GOAWAY */
        if (rv != NGHTTP2_ERR_CALLBACK_FAILURE)
            mc_log_debug("http2 client %s: %s", conn_peer(hc), nghttp2_strerror((int)rv));
        hc->close_due = 1;
    }
    after_input(hc);
}

static void on_conn_drain(struct mc_conn *c)
{
    struct h2_conn *hc = c->data;
    if (hc->output_wait) {
        hc->output_wait = 0;
        mc_conn_read_start(c);
    }
    do_send(hc);
}

static void on_timer(uv_timer_t *t);

static void arm_timer(struct h2_conn *hc, uint64_t when)
{
    uint64_t now = now_ms(hc);
    hc->timer_due = when;
    uv_timer_start(&hc->timer, on_timer, when > now ? when - now : 0, 0);
}

/* One timer per connection, due at the earliest of its deadlines (idle, head, each stream's
 * body and drain waits); a later deadline leaves it as it is, on_timer finds the next. */
static void arm_at(struct h2_conn *hc, uint64_t when)
{
    if (hc->closed || !when || (hc->timer_due && hc->timer_due <= when))
        return;
    arm_timer(hc, when);
}

static void on_timer(uv_timer_t *t)
{
    struct h2_conn *hc = t->data;
    uint64_t now = now_ms(hc);
    uint64_t next = 0;
    hc->timer_due = 0;
#define NEXT(w) (next = (!next || (w) < next) ? (w) : next)
    if (hc->stream_count == 0) {
        uint64_t limit = hc->had_request ? MC_HTTP_IDLE_TIMEOUT_MS : MC_HTTP_HEAD_TIMEOUT_MS;
        if (now >= hc->last_active + limit) {
            /* idle, or a preface never followed by a request: GOAWAY and close */
            nghttp2_session_terminate_session(hc->session, NGHTTP2_NO_ERROR);
            do_send(hc);
            if (!hc->closed)
                conn_close(hc, 0);
            return;
        }
        NEXT(hc->last_active + limit);
    }
    for (struct mc_h2_stream *st = hc->streams; st;) {
        struct mc_h2_stream *next_st = st->next;
        if (st->drain_timeout_ms && st->drain_cb) {
            size_t pending = st->out.len - st->out_off;
            if (now >= st->drain_deadline) {
                if (pending < st->drain_mark) {
                    st->drain_mark = pending; /* progress: wait again */
                    st->drain_deadline = now + st->drain_timeout_ms;
                } else {
                    mc_log_debug("http2 client %s took no output for %llums: resetting stream",
                                 conn_peer(hc), (unsigned long long)st->drain_timeout_ms);
                    st->drain_cb = NULL;
                    st->drain_timeout_ms = 0;
                    nghttp2_submit_rst_stream(hc->session, NGHTTP2_FLAG_NONE, st->id,
                                              NGHTTP2_CANCEL);
                    schedule_send(hc);
                    st = next_st;
                    continue;
                }
            }
            NEXT(st->drain_deadline);
        }
        if (st->body_deadline) {
            if (now >= st->body_deadline && !st->head_done) {
                mc_log_debug("http2 client %s: header block not complete in time: closing",
                             conn_peer(hc));
                nghttp2_session_terminate_session(hc->session, NGHTTP2_PROTOCOL_ERROR);
                do_send(hc);
                if (!hc->closed)
                    conn_close(hc, 0);
                return;
            }
            if (now >= st->body_deadline) {
                st->body_deadline = 0;
                struct mc_http_request *req = st->req;
                st->body_slow =
                    mc_http_body_clock_check(&st->clock, now, hc->server->body_timeout_ms,
                                             hc->server->body_min_rate) == MC_HTTP_BODY_SLOW;
                mc_http_body_clock_stop(&st->clock);
                if (req && !req->responded && !st->submitted &&
                    (!st->dispatched || req->on_abort)) {
                    if (st->dispatched) {
                        /* A streaming handler (proxied upload) lets go first, as for a client
                         * that went away; the 408 is then ours to give. */
                        mc_http_abort_cb abort_cb = req->on_abort;
                        req->on_abort = NULL;
                        req->on_body = NULL;
                        abort_cb(req);
                        st->dispatched = 0;
                    }
                    st->error_status = 408;
                    due_add(hc, st);
                } else {
                    nghttp2_submit_rst_stream(hc->session, NGHTTP2_FLAG_NONE, st->id,
                                              NGHTTP2_CANCEL);
                }
                schedule_send(hc);
            } else {
                NEXT(st->body_deadline);
            }
        }
        st = next_st;
    }
#undef NEXT
    run_due(hc);
    if (!hc->closed && next)
        arm_timer(hc, next);
}

static void hc_release(struct h2_conn *hc)
{
    if (--hc->handles_open > 0)
        return;
    struct mc_http_server *s = hc->server;
    mc_free(hc);
    mc_http_server_conn_released(s);
}

static void on_handle_closed(uv_handle_t *h)
{
    hc_release(h->data);
}

static void on_conn_closed(struct mc_conn *c)
{
    struct h2_conn *hc = c->data;
    if (!hc->closed)
        conn_close(hc, 1);
    hc->conn = NULL;
    mc_conn_free(c);
    hc_release(hc);
}

static void conn_close(struct h2_conn *hc, int now)
{
    if (hc->closed)
        return;
    if (hc->in_recv) {
        hc->close_due = 1; /* nghttp2 is on the stack: after it returns */
        return;
    }
    hc->closed = 1;
    while (hc->streams)
        stream_free(hc, hc->streams);
    nghttp2_session_del(hc->session);
    hc->session = NULL;
    uv_timer_stop(&hc->timer);
    uv_idle_stop(&hc->send_idle);
    uv_close((uv_handle_t *)&hc->timer, on_handle_closed);
    uv_close((uv_handle_t *)&hc->send_idle, on_handle_closed);
    mc_conn_close(hc->conn, now);
    mc_http_server_unlink(hc->server, &hc->link);
}

void mc_h2_close(struct mc_http_server_link *link)
{
    conn_close(link->conn, 1);
}

void mc_h2_drain(struct mc_http_server_link *link)
{
    struct h2_conn *hc = link->conn;
    if (hc->closed || hc->going_away)
        return;
    hc->going_away = 1;
    nghttp2_submit_goaway(hc->session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(hc->session), NGHTTP2_NO_ERROR,
                          NULL, 0);
    do_send(hc);
}

/* The callback table and options every HTTP/2 session of s is made with: made once, with
 * the first, and kept by the server until mc_h2_server_close. */
static void session_setup(struct mc_http_server *s)
{
    if (s->h2_callbacks)
        return;
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
    s->h2_callbacks = cbs;
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    /* Flow control is ours: a stream's window reopens only as its handler takes the body. */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    /* Acks queued for a client that does not read them: past this, GOAWAY. */
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_settings(opt, 32);
    /* Rapid reset (CVE-2023-44487): streams reset faster than this end the connection. */
    nghttp2_option_set_stream_reset_rate_limit(opt, 200, 100);
    /* CONTINUATION flood (CVE-2024-27316 family): a header block in at most this many. */
    nghttp2_option_set_max_continuations(opt, 8);
    nghttp2_option_set_max_send_header_block_length(opt, MC_HTTP_MAX_HEAD);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
    s->h2_options = opt;
}

void mc_h2_server_close(struct mc_http_server *s)
{
    nghttp2_session_callbacks_del(s->h2_callbacks); /* both accept NULL */
    nghttp2_option_del(s->h2_options);
    s->h2_callbacks = NULL;
    s->h2_options = NULL;
}

static struct h2_conn *conn_new(struct mc_http_server *s, struct mc_conn *conn)
{
    struct h2_conn *hc = mc_calloc(1, sizeof *hc);
    hc->server = s;
    hc->conn = conn;
    hc->link.conn = hc;
    hc->link.h2 = 1;
    hc->due_tail = &hc->due;
    conn->data = hc;
    conn->on_read = on_conn_read;
    conn->on_drain = on_conn_drain;
    conn->on_close = on_conn_closed;
    uv_timer_init(s->net->loop, &hc->timer);
    hc->timer.data = hc;
    uv_idle_init(s->net->loop, &hc->send_idle);
    hc->send_idle.data = hc;
    hc->handles_open = 3; /* timer, idle, transport */
    s->open_count++;
    hc->link.next = s->conns;
    if (s->conns)
        s->conns->prev = &hc->link;
    s->conns = &hc->link;
    hc->link.counted = 1;
    s->conn_count++;
    session_setup(s);
    nghttp2_session_server_new2(&hc->session, s->h2_callbacks, hc, s->h2_options);
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MC_HTTP_MAX_HEAD},
        {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
    };
    nghttp2_submit_settings(hc->session, NGHTTP2_FLAG_NONE, settings,
                            sizeof settings / sizeof settings[0]);
    nghttp2_session_set_local_window_size(hc->session, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW);
    hc->last_active = now_ms(hc);
    hc->budget_start = hc->last_active;
    arm_timer(hc, hc->last_active + MC_HTTP_HEAD_TIMEOUT_MS);
    return hc;
}

void mc_h2_serve(struct mc_http_server *s, struct mc_conn *conn, const char *data, size_t len)
{
    struct h2_conn *hc = conn_new(s, conn);
    if (s->draining)
        mc_h2_drain(&hc->link);
    if (!hc->closed)
        mc_conn_read_start(conn);
    if (len && !hc->closed)
        on_conn_read(conn, data, (ssize_t)len);
    else if (!hc->closed)
        do_send(hc);
}

/* HTTP2-Settings is base64url without padding (RFC 7540 3.2.1). */
static int decode_settings(const char *text, uint8_t *out, size_t *out_len)
{
    size_t len = strlen(text);
    if (len > 1024)
        return -1;
    char b64[1100];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (c == '=' || c == ' ')
            continue;
        b64[n++] = c;
    }
    while (n % 4)
        b64[n++] = '=';
    return mc_base64_decode(out, out_len, b64, n) == 0 ? 0 : -1;
}

int mc_h2_upgrade(struct mc_http_server *s, struct mc_http_request *req)
{
    const char *up = mc_http_request_header(req, "Upgrade");
    const char *settings = mc_http_request_header(req, "HTTP2-Settings");
    /* h2c is for plain TCP only (RFC 7540 3.2); a request body would have to be read first. */
    if (!up || !settings || !mc_http_request_upgrade_to(req, "h2c") ||
        (s->transport && s->transport != &mc_conn_tcp_type) || req->chunked ||
        (req->has_content_length && req->content_length > 0) || req->http_minor < 1)
        return 0;
    uint8_t payload[800];
    size_t plen = 0;
    if (decode_settings(settings, payload, &plen) < 0)
        return 0;
    /* The request is served again as stream 1: its head is copied before the upgrade frees
     * it (the HTTP/1 fields keep their names, lower-cased). */
    struct mc_buf copy;
    mc_buf_init(&copy);
    mc_buf_append_str(&copy, req->method_name);
    mc_buf_append(&copy, "", 1);
    mc_buf_append(&copy, req->url, req->url_len);
    mc_buf_append(&copy, "", 1);
    size_t count = 0;
    for (size_t i = 0; i < req->header_count; i++) {
        const char *n = req->headers[i].name;
        if (connection_specific(n) || strcasecmp(n, "http2-settings") == 0)
            continue;
        for (const char *p = n; *p; p++) {
            char c = (char)tolower((unsigned char)*p);
            mc_buf_append(&copy, &c, 1);
        }
        mc_buf_append(&copy, "", 1);
        mc_buf_append_str(&copy, req->headers[i].value);
        mc_buf_append(&copy, "", 1);
        count++;
    }
    int head = req->method_bit == MC_HTTP_HEAD;
    static const struct mc_http_header switching[] = {{"Connection", "Upgrade"},
                                                      {"Upgrade", "h2c"}};
    struct mc_buf leftover;
    req->continues = 1;
    struct mc_conn *conn = mc_http_upgrade(req, 101, switching, 2, &leftover);
    struct h2_conn *hc = conn_new(s, conn);
    if (nghttp2_session_upgrade2(hc->session, payload, plen, head, NULL) != 0) {
        mc_buf_close(&copy);
        mc_buf_close(&leftover);
        conn_close(hc, 0);
        return 1;
    }
    struct mc_h2_stream *st = stream_new(hc, 1);
    nghttp2_session_set_stream_user_data(hc->session, 1, st);
    /* Fill the stream as the header callbacks would have. */
    const char *p = copy.data;
    const char *method = p;
    p += strlen(p) + 1;
    const char *url = p;
    p += strlen(p) + 1;
    mc_buf_append(&st->raw, "", 1);
    st->method_off = st->raw.len;
    mc_buf_append(&st->raw, method, strlen(method) + 1);
    st->path_off = st->raw.len;
    mc_buf_append(&st->raw, url, strlen(url) + 1);
    for (size_t i = 0; i < count; i++) {
        const char *n = p;
        p += strlen(p) + 1;
        const char *v = p;
        p += strlen(p) + 1;
        push_head_field(st, (const uint8_t *)n, strlen(n), (const uint8_t *)v, strlen(v));
    }
    mc_buf_close(&copy);
    head_complete(st, 1);
    st->body_done = 1;
    if (!st->due && !st->dispatched)
        due_add(hc, st);
    mc_conn_read_start(conn);
    if (leftover.len)
        on_conn_read(conn, leftover.data, (ssize_t)leftover.len);
    else
        after_input(hc);
    mc_buf_close(&leftover);
    return 1;
}
