/* The HTTP/2 client: nghttp2 sessions over struct mc_conn, pooled per node address and
 * multiplexed. nghttp2 owns framing, HPACK, flow control and the peer's concurrency limit (it
 * queues streams past it); this file owns the connections, their timers, the streams' buffers
 * and the mapping of windows to back-pressure. Callbacks into owners run from inside nghttp2's
 * receive callbacks, so everything that could free a connection is deferred to the end of
 * the I/O call (hc->in_io). */
#include "http/h2_client.h"

#include <nghttp2/nghttp2.h>
#include <string.h>

#include "http/head.h"
#include "net/tls.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/log.h"

/* Output queued on a connection past which the client stops framing more (it resumes when
 * the socket drains): nghttp2 keeps the rest in its own queues, bounded by the windows. */
#define OUT_HIGH (256 * 1024)
/* The connection-level window the client grants: room for many streams' windows at once. */
#define CONN_WINDOW (16 * 1024 * 1024)
/* The concurrency assumed before the node's SETTINGS arrive (RFC 9113 recommends >= 100). */
#define ASSUMED_MAX_STREAMS 100

struct pool_host;

enum hc_state { HC_CONNECTING, HC_READY, HC_DRAINING, HC_DEAD };

struct h2conn {
    struct mc_conn conn; /* first: the conn's callbacks find the h2conn through it */
    struct mc_h2_client *client;
    struct pool_host *host;
    struct h2conn *next, *prev; /* in host->conns */
    nghttp2_session *session;
    /* The dial deadline (TCP, TLS, and up to the node's first SETTINGS frame), then the idle
     * deadline. */
    uv_timer_t timer;
    int handles; /* conn + timer, until both close callbacks ran */
    enum hc_state state;
    unsigned streams;             /* attached streams (waiting or submitted) */
    struct mc_h2_call *all;       /* every attached stream */
    struct mc_h2_call *drain_due; /* streams whose body queue emptied, told after I/O */
    int in_io;                    /* depth of nghttp2 calls that may call back */
    struct h2conn *send_next;     /* in client->send_list while a send is due */
    int fail_err;                 /* a failure deferred to the end of the I/O call */
    unsigned fail_due : 1, connected : 1, send_due : 1,
        settings_seen : 1; /* the node's first SETTINGS came: an HTTP/2 server is there */
};

struct pool_host {
    char *address;
    int secure;
    struct h2conn *conns;
    unsigned count;
    struct pool_host *next;
};

struct mc_h2_client {
    struct mc_net *net;
    struct mc_h2_client_config config;
    struct pool_host *hosts;
    struct mc_h2_call *failed; /* streams failed at start, told on the next turn */
    /* nghttp2's callback table and session options, the same for every connection */
    nghttp2_session_callbacks *callbacks;
    nghttp2_option *options;
    uv_timer_t failed_timer;
    /* Sends asked for by owners run from an idle handle at the next turn: an owner may call
     * from inside a check callback (the server codec's), where output queued for the
     * connection layer's flush check would wait for the next poll. */
    uv_idle_t send_idle;
    struct h2conn *send_list;
    size_t refs; /* the timer + connections not yet freed */
    int closing;
};

struct mc_h2_call {
    struct mc_h2_client *client;
    struct h2conn *hc;
    struct mc_h2_call *next, *prev; /* in hc->all, or client->failed */
    struct mc_h2_call *drain_next;
    int32_t id; /* 0 until submitted */
    nghttp2_nv *nv;
    size_t nv_count;
    char *nv_text;
    struct mc_buf out; /* request body not yet framed, from out_off */
    size_t out_off;
    nghttp2_nv *trailers;
    size_t trailer_count;
    char *trailer_text;
    /* response head or trailers being received: "name\0value\0" pairs */
    struct mc_buf hbuf;
    size_t hcount;
    int status;
    size_t unconsumed; /* delivered while paused, not yet given back to the window */
    int fail_err;      /* why the stream was reset by us, or why it failed at start */
    unsigned end_stream : 1, body_ended : 1, deferred : 1, headers_sent : 1, cancelled : 1,
        paused : 1, got_head : 1, on_drain_listed : 1, in_failed : 1, submitted : 1;
    mc_h2_head_cb on_head;
    mc_h2_data_cb on_data;
    mc_h2_done_cb on_done;
    mc_h2_drain_cb on_drain;
    void *ctx;
};

static void hc_send(struct h2conn *hc);
static void hc_fail(struct h2conn *hc, int err);
static void hc_idle_check(struct h2conn *hc);

/* ---- streams ---- */

static void stream_free(struct mc_h2_call *s)
{
    mc_free(s->nv);
    mc_free(s->nv_text);
    mc_free(s->trailers);
    mc_free(s->trailer_text);
    mc_buf_close(&s->out);
    mc_buf_close(&s->hbuf);
    mc_free(s);
}

static void stream_unlink(struct mc_h2_call *s, struct mc_h2_call **head)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        *head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
}

static void stream_link(struct mc_h2_call *s, struct mc_h2_call **head)
{
    s->prev = NULL;
    s->next = *head;
    if (*head)
        (*head)->prev = s;
    *head = s;
}

/* Builds a checked, lower-cased nghttp2 header array: pairs[0..n) of name/value. Returns 0 or
 * MC_EHEADER. */
struct nv_builder {
    struct mc_buf text;
    size_t *offs; /* name offset, name len, value offset, value len per pair */
    size_t count, cap;
};

static void nvb_add(struct nv_builder *b, const char *name, size_t nl, const char *value, size_t vl,
                    int lower)
{
    if (b->count == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->offs = mc_realloc(b->offs, b->cap * 4 * sizeof *b->offs);
    }
    size_t *o = b->offs + 4 * b->count++;
    o[0] = b->text.len;
    o[1] = nl;
    mc_buf_append(&b->text, name, nl);
    if (lower)
        for (size_t i = 0; i < nl; i++) {
            char *c = b->text.data + o[0] + i;
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c + 32);
        }
    mc_buf_append(&b->text, "", 1);
    o[2] = b->text.len;
    o[3] = vl;
    mc_buf_append(&b->text, value, vl);
    mc_buf_append(&b->text, "", 1);
}

/* Adds regular headers, checked. Returns 0 or MC_EHEADER. */
static int nvb_add_headers(struct nv_builder *b, const struct mc_http_header *h, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        size_t nl = strlen(h[i].name), vl = strlen(h[i].value);
        if (!mc_http_is_token(h[i].name, nl) || !mc_http_is_field_value(h[i].value, vl))
            return MC_EHEADER;
        if (mc_http_hop_by_hop(h[i].name)) {
            /* HTTP/2 forbids connection-specific fields; "te: trailers" alone is allowed
             * (and gRPC needs it) */
            if (!(nl == 2 && mc_http_name_eq(h[i].name, "te", 2) &&
                  strcmp(h[i].value, "trailers") == 0))
                continue;
        }
        if ((nl == 4 && mc_http_name_eq(h[i].name, "host", 4)) ||
            (nl == 14 && mc_http_name_eq(h[i].name, "http2-settings", 14)))
            continue; /* :authority carries the host */
        nvb_add(b, h[i].name, nl, h[i].value, vl, 1);
    }
    return 0;
}

/* Moves the builder's pairs into an nv array and its text (both owned by the caller). */
static void nvb_finish(struct nv_builder *b, nghttp2_nv **nv, size_t *count, char **text)
{
    size_t len;
    *text = mc_buf_steal(&b->text, &len);
    *nv = mc_calloc(b->count ? b->count : 1, sizeof **nv);
    for (size_t i = 0; i < b->count; i++) {
        size_t *o = b->offs + 4 * i;
        (*nv)[i] = (nghttp2_nv){(uint8_t *)*text + o[0], (uint8_t *)*text + o[2], o[1], o[3],
                                NGHTTP2_NV_FLAG_NONE};
    }
    *count = b->count;
    mc_free(b->offs);
    b->offs = NULL;
    b->count = b->cap = 0;
}

/* Fills the stream's header block from options; MC_EHEADER when a value cannot be sent. */
static int stream_build_head(struct mc_h2_call *s, const struct mc_h2_call_options *o)
{
    struct nv_builder b = {0};
    mc_buf_init(&b.text);
    const char *method = o->method ? o->method : "GET";
    const char *scheme = o->scheme ? o->scheme : (o->secure ? "https" : "http");
    const char *authority = o->authority && *o->authority ? o->authority : o->address;
    const char *path = o->path ? o->path : "/";
    size_t ml = strlen(method), pl = strlen(path), al = strlen(authority);
    int rc = 0;
    if (!mc_http_is_token(method, ml) || pl == 0 || strcspn(path, " \t\r\n") != pl || al == 0 ||
        strcspn(authority, " \t\r\n") != al)
        rc = MC_EHEADER;
    if (rc == 0) {
        nvb_add(&b, ":method", 7, method, ml, 0);
        nvb_add(&b, ":scheme", 7, scheme, strlen(scheme), 0);
        nvb_add(&b, ":authority", 10, authority, al, 0);
        nvb_add(&b, ":path", 5, path, pl, 0);
        rc = nvb_add_headers(&b, o->headers, o->header_count);
    }
    if (rc == 0) {
        nvb_finish(&b, &s->nv, &s->nv_count, &s->nv_text);
        return 0;
    }
    mc_buf_close(&b.text);
    mc_free(b.offs);
    return rc;
}

/* Tells the owner how the stream ended (unless cancelled) and frees it. The stream must be
 * unlinked from every list already. */
static void stream_finish(struct mc_h2_call *s, const struct mc_h2_done *d)
{
    if (!s->cancelled && s->on_done)
        s->on_done(s, d, s->ctx);
    stream_free(s);
}

/* The pairs gathered in hbuf as an array (into storage of at least hcount entries). */
static void stream_fields(struct mc_h2_call *s, struct mc_http_header *out)
{
    const char *p = s->hbuf.data;
    for (size_t i = 0; i < s->hcount; i++) {
        out[i].name = p;
        p += strlen(p) + 1;
        out[i].value = p;
        p += strlen(p) + 1;
    }
}

/* ---- the data provider: the request body, deferred while the owner has nothing queued ---- */

static ssize_t read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
    (void)user_data;
    struct mc_h2_call *s = source->ptr;
    size_t avail = s->out.len - s->out_off;
    if (avail == 0) {
        if (!s->body_ended) {
            s->deferred = 1;
            return NGHTTP2_ERR_DEFERRED;
        }
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        if (s->trailer_count) {
            *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            if (nghttp2_submit_trailer(session, stream_id, s->trailers, s->trailer_count) != 0)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        return 0;
    }
    size_t n = avail < length ? avail : length;
    memcpy(buf, s->out.data + s->out_off, n);
    s->out_off += n;
    if (s->out_off == s->out.len) {
        mc_buf_reset(&s->out);
        s->out_off = 0;
        if (s->on_drain && !s->on_drain_listed && s->hc) {
            s->on_drain_listed = 1;
            s->drain_next = s->hc->drain_due;
            s->hc->drain_due = s;
        }
    } else if (s->out_off > 64 * 1024 && s->out_off * 2 > s->out.len) {
        mc_buf_consume(&s->out, s->out_off); /* keep the queue's storage from creeping */
        s->out_off = 0;
    }
    return (ssize_t)n;
}

/* Hands a stream to its connection's session. */
static void stream_submit(struct h2conn *hc, struct mc_h2_call *s)
{
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = read_body};
    int32_t id = nghttp2_submit_request(hc->session, NULL, s->nv, s->nv_count,
                                        s->end_stream ? NULL : &prd, s);
    mc_free(s->nv); /* nghttp2 copied the pairs */
    s->nv = NULL;
    mc_free(s->nv_text);
    s->nv_text = NULL;
    s->submitted = 1;
    if (id < 0) {
        /* out of stream ids on this connection: fail the stream as never sent */
        stream_unlink(s, &hc->all);
        hc->streams--;
        s->hc = NULL;
        struct mc_h2_done d = {.err = MC_ECLOSED, .retryable = 1};
        stream_finish(s, &d);
        return;
    }
    s->id = id;
}

/* ---- nghttp2 callbacks ---- */

static struct mc_h2_call *stream_of(nghttp2_session *session, int32_t id)
{
    return nghttp2_session_get_stream_user_data(session, id);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    (void)user_data;
    struct mc_h2_call *s = stream_of(session, frame->hd.stream_id);
    if (s && frame->hd.type == NGHTTP2_HEADERS) {
        mc_buf_reset(&s->hbuf);
        s->hcount = 0;
    }
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    (void)flags;
    (void)user_data;
    struct mc_h2_call *s = stream_of(session, frame->hd.stream_id);
    if (!s || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        /* three digits, 100-999 (RFC 9110 15): anything else is a malformed response, the
         * stream's error, never a status passed on */
        int ok = valuelen == 3;
        for (size_t i = 0; ok && i < 3; i++)
            ok = value[i] >= '0' && value[i] <= '9';
        if (!ok || value[0] == '0') {
            s->fail_err = MC_EPROTO;
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
        }
        s->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
        return 0;
    }
    if (namelen > 0 && name[0] == ':')
        return 0;
    /* nghttp2 checked the field (RFC 9113 8.2.1); the bounds are ours */
    if (s->hcount >= MC_H2_CLIENT_MAX_HEADERS ||
        s->hbuf.len + namelen + valuelen + 2 > MC_H2_CLIENT_MAX_HEAD) {
        s->fail_err = MC_EPROTO;
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    }
    mc_buf_append(&s->hbuf, name, namelen);
    mc_buf_append(&s->hbuf, "", 1);
    mc_buf_append(&s->hbuf, value, valuelen);
    mc_buf_append(&s->hbuf, "", 1);
    s->hcount++;
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct h2conn *hc = user_data;
    if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK) &&
        !hc->settings_seen) {
        hc->settings_seen = 1;
        uv_timer_stop(&hc->timer); /* dialled: the idle clock starts after this I/O */
        return 0;
    }
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        /* no new streams here; nghttp2 closes those above last_stream_id as REFUSED_STREAM */
        if (hc->state == HC_READY)
            hc->state = HC_DRAINING;
        return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct mc_h2_call *s = stream_of(session, frame->hd.stream_id);
    if (!s || s->cancelled)
        return 0;
    if (!s->got_head) {
        if (s->status >= 100 && s->status < 200)
            return 0; /* informational: the final head follows */
        s->got_head = 1;
        struct mc_http_header fields[MC_H2_CLIENT_MAX_HEADERS];
        stream_fields(s, fields);
        struct mc_h2_response_head head = {
            .status = s->status,
            .headers = fields,
            .header_count = s->hcount,
            .end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0,
        };
        if (s->on_head)
            s->on_head(s, &head, s->ctx);
        mc_buf_reset(&s->hbuf); /* the fields pointed into it until now */
        s->hcount = 0;
    }
    /* else: trailers, kept in hbuf for on_done */
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
    (void)flags;
    (void)user_data;
    struct mc_h2_call *s = stream_of(session, stream_id);
    if (!s || s->cancelled) {
        nghttp2_session_consume(session, stream_id, len);
        return 0;
    }
    if (s->on_data)
        s->on_data(s, (const char *)data, len, s->ctx);
    if (s->paused && !s->cancelled)
        s->unconsumed += len; /* the node's window stays closed by this much */
    else
        nghttp2_session_consume(session, stream_id, len);
    return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    (void)user_data;
    if (frame->hd.type == NGHTTP2_HEADERS) {
        struct mc_h2_call *s = stream_of(session, frame->hd.stream_id);
        if (s)
            s->headers_sent = 1;
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    struct h2conn *hc = user_data;
    struct mc_h2_call *s = stream_of(session, stream_id);
    if (!s)
        return 0;
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    if (s->unconsumed)
        nghttp2_session_consume_connection(session, s->unconsumed);
    if (s->on_drain_listed) {
        for (struct mc_h2_call **pp = &hc->drain_due; *pp; pp = &(*pp)->drain_next)
            if (*pp == s) {
                *pp = s->drain_next;
                break;
            }
    }
    stream_unlink(s, &hc->all);
    hc->streams--;
    s->hc = NULL;
    struct mc_h2_done d = {0};
    struct mc_http_header fields[MC_H2_CLIENT_MAX_HEADERS];
    if (s->fail_err) {
        d.err = s->fail_err;
    } else if (error_code != NGHTTP2_NO_ERROR || !s->got_head) {
        d.err = error_code == NGHTTP2_NO_ERROR ? MC_EPROTO : MC_ECANCELED;
        d.reset_code = error_code;
        /* RFC 9113 8.7: a refused stream was never processed (GOAWAY beyond it is reported
         * by nghttp2 as REFUSED_STREAM too) */
        d.retryable = error_code == NGHTTP2_REFUSED_STREAM && !s->got_head;
    } else {
        stream_fields(s, fields);
        d.trailers = fields;
        d.trailer_count = s->hcount;
    }
    stream_finish(s, &d);
    return 0;
}

static ssize_t no_send(nghttp2_session *session, const uint8_t *data, size_t length, int flags,
                       void *user_data)
{
    (void)session, (void)data, (void)length, (void)flags, (void)user_data;
    return NGHTTP2_ERR_CALLBACK_FAILURE; /* mem_send is used; never called */
}

/* The callback table and options every connection's session is made with; freed by
 * client_unref with the client. */
static void session_setup(struct mc_h2_client *client)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(cbs, no_send);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    client->callbacks = cbs;
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    /* windows are given back as the owner takes the bytes (back-pressure) */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_peer_max_concurrent_streams(opt, ASSUMED_MAX_STREAMS);
    client->options = opt;
}

/* ---- connections ---- */

static void client_unref(struct mc_h2_client *client);

static void hc_maybe_free(struct h2conn *hc)
{
    if (hc->handles > 0)
        return;
    struct mc_h2_client *client = hc->client;
    mc_free(hc);
    client_unref(client);
}

static void hc_conn_closed(struct mc_conn *c)
{
    struct h2conn *hc = (struct h2conn *)c;
    hc->handles--;
    hc_maybe_free(hc);
}

static void hc_timer_closed(uv_handle_t *h)
{
    struct h2conn *hc = h->data;
    hc->handles--;
    hc_maybe_free(hc);
}

static void host_drop(struct mc_h2_client *client, struct pool_host *host)
{
    for (struct pool_host **pp = &client->hosts; *pp; pp = &(*pp)->next)
        if (*pp == host) {
            *pp = host->next;
            break;
        }
    mc_free(host->address);
    mc_free(host);
}

static void host_remove(struct h2conn *hc)
{
    struct pool_host *host = hc->host;
    if (!host)
        return;
    if (hc->prev)
        hc->prev->next = hc->next;
    else
        host->conns = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    hc->next = hc->prev = NULL;
    hc->host = NULL;
    if (--host->count == 0)
        host_drop(hc->client, host);
}

/* Ends the connection: every attached stream is told err (retryable when its request never
 * left, or the dial failed) and freed; the connection closes. Deferred inside nghttp2 calls. */
static void hc_fail(struct h2conn *hc, int err)
{
    if (hc->state == HC_DEAD)
        return;
    if (hc->in_io) {
        if (!hc->fail_due) {
            hc->fail_due = 1;
            hc->fail_err = err;
        }
        return;
    }
    /* Until the node's SETTINGS, a failure is a dial failure: a node that never spoke HTTP/2
     * processed nothing. */
    int dial_failed = !hc->connected || !hc->settings_seen;
    hc->state = HC_DEAD;
    if (hc->send_due) {
        for (struct h2conn **pp = &hc->client->send_list; *pp; pp = &(*pp)->send_next)
            if (*pp == hc) {
                *pp = hc->send_next;
                break;
            }
        hc->send_due = 0;
    }
    host_remove(hc);
    if (hc->session) {
        /* a last GOAWAY when the transport still works (idle close) */
        if (err == 0 && nghttp2_session_terminate_session(hc->session, NGHTTP2_NO_ERROR) == 0) {
            const uint8_t *data;
            ssize_t n;
            while ((n = nghttp2_session_mem_send(hc->session, &data)) > 0)
                mc_conn_write_copy(&hc->conn, data, (size_t)n);
        }
        nghttp2_session_del(hc->session); /* no callbacks: the streams are ours to end */
        hc->session = NULL;
    }
    uv_timer_stop(&hc->timer);
    while (hc->all) {
        struct mc_h2_call *s = hc->all;
        stream_unlink(s, &hc->all);
        hc->streams--;
        s->hc = NULL;
        struct mc_h2_done d = {.err = err ? err : MC_ECLOSED,
                               .retryable = dial_failed || !s->headers_sent};
        stream_finish(s, &d);
    }
    hc->drain_due = NULL;
    mc_conn_close(&hc->conn, err != 0);
    uv_close((uv_handle_t *)&hc->timer, hc_timer_closed);
}

/* After an I/O call: the deferred failure, the drained bodies, the end of a draining or
 * finished session, the idle clock. */
static void hc_after_io(struct h2conn *hc)
{
    if (hc->fail_due) {
        hc->fail_due = 0;
        hc_fail(hc, hc->fail_err);
        return;
    }
    if (hc->state == HC_DEAD)
        return;
    while (hc->drain_due) {
        struct mc_h2_call *s = hc->drain_due;
        hc->drain_due = s->drain_next;
        s->on_drain_listed = 0;
        mc_h2_drain_cb cb = s->on_drain;
        s->on_drain = NULL;
        if (cb && !s->cancelled) {
            hc->in_io++; /* the owner may write (resuming data) or cancel */
            cb(s, s->ctx);
            hc->in_io--;
            if (hc->fail_due || hc->state == HC_DEAD) {
                hc_after_io(hc);
                return;
            }
        }
    }
    if (hc->session && !nghttp2_session_want_read(hc->session) &&
        !nghttp2_session_want_write(hc->session)) {
        hc_fail(hc, 0);
        return;
    }
    if (hc->state == HC_DRAINING && hc->streams == 0)
        hc_fail(hc, 0);
}

static void idle_fire(uv_timer_t *t)
{
    struct h2conn *hc = t->data;
    if (hc->state == HC_CONNECTING || !hc->settings_seen) {
        /* --dial_timeout: no connection, no TLS, or no SETTINGS from the node in time. A
         * connect failure (the streams go to another node), not the call's deadline. */
        mc_log_warn("h2 client: node %s %s within the dial timeout",
                    hc->host ? hc->host->address : "-",
                    hc->state == HC_CONNECTING ? "did not accept the connection"
                                               : "sent no HTTP/2 SETTINGS");
        hc_fail(hc, UV_ETIMEDOUT);
        return;
    }
    if (hc->streams == 0)
        hc_fail(hc, 0); /* ping-free: an idle connection simply goes */
}

static void hc_idle_check(struct h2conn *hc)
{
    if (hc->state == HC_READY && hc->streams == 0 && hc->settings_seen)
        uv_timer_start(&hc->timer, idle_fire, hc->client->config.idle_timeout_ms, 0);
}

/* Frames what nghttp2 has to send into the connection's queue, up to OUT_HIGH; a drained
 * body's owner may queue more, which is framed in the same call. */
static void hc_send(struct h2conn *hc)
{
    if (hc->state == HC_DEAD || !hc->session || hc->in_io)
        return;
    for (;;) {
        hc->in_io++;
        while (mc_conn_pending(&hc->conn) < OUT_HIGH) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(hc->session, &data);
            if (n < 0) {
                hc->in_io--;
                hc_fail(hc, MC_EPROTO);
                return;
            }
            if (n == 0)
                break;
            mc_conn_write_copy(&hc->conn, data, (size_t)n);
        }
        hc->in_io--;
        /* nghttp2 batched the frames: one write now (a flush-soon queued from the idle phase
         * would wait for the poll after it) */
        mc_conn_flush(&hc->conn);
        int drained = hc->drain_due != NULL;
        hc_after_io(hc);
        if (hc->state == HC_DEAD)
            return;
        if (!drained || mc_conn_pending(&hc->conn) >= OUT_HIGH ||
            !nghttp2_session_want_write(hc->session))
            break;
    }
    hc_idle_check(hc);
}

static void hc_on_read(struct mc_conn *c, const char *data, ssize_t nread)
{
    struct h2conn *hc = (struct h2conn *)c;
    if (nread < 0) {
        hc_fail(hc, MC_ECLOSED);
        return;
    }
    if (!hc->session)
        return;
    hc->in_io++;
    ssize_t rv = nghttp2_session_mem_recv(hc->session, (const uint8_t *)data, (size_t)nread);
    hc->in_io--;
    if (rv < 0) {
        hc_fail(hc, MC_EPROTO);
        return;
    }
    hc_after_io(hc);
    hc_send(hc);
}

static void hc_on_drain(struct mc_conn *c)
{
    hc_send((struct h2conn *)c);
}

static void send_idle_fire(uv_idle_t *h)
{
    struct mc_h2_client *client = h->data;
    uv_idle_stop(h);
    while (client->send_list) {
        struct h2conn *hc = client->send_list;
        client->send_list = hc->send_next;
        hc->send_next = NULL;
        hc->send_due = 0;
        hc_send(hc);
    }
}

/* hc_send at the next turn (batched with whatever else the owners queue until then). */
static void hc_send_soon(struct h2conn *hc)
{
    if (hc->send_due || hc->state == HC_DEAD)
        return;
    hc->send_due = 1;
    hc->send_next = hc->client->send_list;
    hc->client->send_list = hc;
    uv_idle_start(&hc->client->send_idle, send_idle_fire);
}

static int hc_limit(struct h2conn *hc)
{
    if (!hc->session)
        return ASSUMED_MAX_STREAMS;
    uint32_t m =
        nghttp2_session_get_remote_settings(hc->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    return m > 1000000 ? 1000000 : (int)m;
}

static void hc_connected(struct mc_conn *c, int status)
{
    struct h2conn *hc = (struct h2conn *)c;
    if (status < 0) {
        hc_fail(hc, status);
        return;
    }
    if (hc->host && hc->host->secure && !mc_tls_alpn_is(c, "h2")) {
        mc_log_warn("h2 client: node %s did not negotiate h2 by ALPN", hc->host->address);
        hc_fail(hc, MC_EPROTO);
        return;
    }
    /* The dial timer runs on: the node's SETTINGS must come within it too (on_frame_recv). */
    nghttp2_session_client_new2(&hc->session, hc->client->callbacks, hc, hc->client->options);
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, MC_H2_CLIENT_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MC_H2_CLIENT_MAX_HEAD},
    };
    nghttp2_submit_settings(hc->session, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
    nghttp2_session_set_local_window_size(hc->session, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
    hc->connected = 1;
    hc->state = HC_READY;
    mc_conn_read_start(c);
    /* the streams that waited for the dial, oldest first (the list is newest first) */
    struct mc_h2_call *last = hc->all;
    while (last && last->next)
        last = last->next;
    for (struct mc_h2_call *s = last, *prev; s; s = prev) {
        prev = s->prev;
        if (!s->submitted)
            stream_submit(hc, s);
    }
    hc_send(hc);
}

/* ---- the pool ---- */

static void client_unref(struct mc_h2_client *client)
{
    if (--client->refs == 0) {
        nghttp2_session_callbacks_del(client->callbacks);
        nghttp2_option_del(client->options);
        mc_free(client);
    }
}

static struct pool_host *host_get(struct mc_h2_client *client, const char *address, int secure)
{
    for (struct pool_host *h = client->hosts; h; h = h->next)
        if (h->secure == secure && strcmp(h->address, address) == 0)
            return h;
    struct pool_host *h = mc_calloc(1, sizeof *h);
    h->address = mc_strdup(address);
    h->secure = secure;
    h->next = client->hosts;
    client->hosts = h;
    return h;
}

/* A dial that could not start: its failure is told on the next turn, like a refused dial. */
static void dial_fail_fire(uv_timer_t *t)
{
    struct h2conn *hc = t->data;
    hc_fail(hc, hc->fail_err);
}

/* A new connection to host (dialling). NULL with *err set when the address does not parse or
 * the dial cannot start. */
static struct h2conn *hc_dial(struct mc_h2_client *client, struct pool_host *host, int *err)
{
    struct sockaddr_storage ss;
    if (mc_net_parse_address(host->address, &ss) != 0) {
        *err = MC_EINVAL;
        return NULL;
    }
    const struct mc_conn_type *type = host->secure ? NULL : client->config.transport;
    if (host->secure && client->config.secure_transport)
        type = client->config.secure_transport(client->config.secure_ctx);
    if (host->secure && !type) {
        *err = MC_EINVAL;
        return NULL;
    }
    struct h2conn *hc = mc_calloc(1, sizeof *hc);
    int rc = mc_conn_init(&hc->conn, client->net, type);
    if (rc < 0) {
        mc_free(hc);
        *err = rc;
        return NULL;
    }
    hc->client = client;
    hc->conn.on_read = hc_on_read;
    hc->conn.on_drain = hc_on_drain;
    hc->conn.on_close = hc_conn_closed;
    uv_timer_init(client->net->loop, &hc->timer);
    hc->timer.data = hc;
    hc->handles = 2;
    client->refs++;
    hc->state = HC_CONNECTING;
    hc->host = host;
    hc->next = host->conns;
    if (host->conns)
        host->conns->prev = hc;
    host->conns = hc;
    host->count++;
    uv_timer_start(&hc->timer, idle_fire, client->config.connect_timeout_ms, 0);
    rc = mc_conn_connect(&hc->conn, (const struct sockaddr *)&ss, hc_connected);
    if (rc < 0) {
        /* told to the streams like any dial failure, on the next turn */
        hc->fail_err = rc;
        uv_timer_start(&hc->timer, dial_fail_fire, 0, 0);
    }
    return hc;
}

/* The connection a new stream to host goes on: one with room under the node's limit, else a
 * new one while under max_conns_per_host, else the least loaded. */
static struct h2conn *pick_conn(struct mc_h2_client *client, struct pool_host *host, int *err)
{
    struct h2conn *least = NULL;
    unsigned usable = 0;
    for (struct h2conn *hc = host->conns; hc; hc = hc->next) {
        if (hc->state != HC_READY && hc->state != HC_CONNECTING)
            continue;
        usable++;
        if ((int)hc->streams < hc_limit(hc))
            return hc;
        if (!least || hc->streams < least->streams)
            least = hc;
    }
    if (least && usable >= client->config.max_conns_per_host)
        return least; /* nghttp2 queues past the node's limit */
    return hc_dial(client, host, err);
}

static void failed_fire(uv_timer_t *t)
{
    struct mc_h2_client *client = t->data;
    while (client->failed) {
        struct mc_h2_call *s = client->failed;
        stream_unlink(s, &client->failed);
        s->in_failed = 0;
        struct mc_h2_done d = {.err = s->fail_err};
        stream_finish(s, &d);
    }
}

static void fail_later(struct mc_h2_client *client, struct mc_h2_call *s, int err)
{
    s->fail_err = err;
    s->in_failed = 1;
    stream_link(s, &client->failed);
    uv_timer_start(&client->failed_timer, failed_fire, 0, 0);
}

struct mc_h2_call *mc_h2_call_start(struct mc_h2_client *client, const struct mc_h2_call_options *o)
{
    struct mc_h2_call *s = mc_calloc(1, sizeof *s);
    s->client = client;
    s->on_head = o->on_head;
    s->on_data = o->on_data;
    s->on_done = o->on_done;
    s->ctx = o->ctx;
    s->end_stream = o->end_stream != 0;
    s->body_ended = s->end_stream;
    mc_buf_init(&s->out);
    mc_buf_init(&s->hbuf);
    int rc = stream_build_head(s, o);
    if (rc < 0) {
        fail_later(client, s, rc);
        return s;
    }
    struct pool_host *host = host_get(client, o->address, o->secure != 0);
    int err = 0;
    struct h2conn *hc = pick_conn(client, host, &err);
    if (!hc) {
        if (host->count == 0)
            host_drop(client, host);
        fail_later(client, s, err);
        return s;
    }
    s->hc = hc;
    stream_link(s, &hc->all);
    hc->streams++;
    if (hc->state == HC_READY) {
        if (hc->settings_seen)
            uv_timer_stop(&hc->timer); /* not idle any more (else: the dial deadline runs) */
        stream_submit(hc, s);
        hc_send_soon(hc);
    }
    return s;
}

/* Schedules the framing of what a public call queued (done at the end of the I/O call when
 * inside one). */
static void stream_kick(struct mc_h2_call *s)
{
    if (s->hc && s->hc->state == HC_READY && s->id > 0) {
        if (s->deferred) {
            s->deferred = 0;
            nghttp2_session_resume_data(s->hc->session, s->id);
        }
        hc_send_soon(s->hc);
    }
}

int mc_h2_call_write(struct mc_h2_call *s, const void *data, size_t len)
{
    if (s->body_ended || s->cancelled || s->in_failed || (!s->hc && s->submitted))
        return MC_ECLOSED;
    mc_buf_append(&s->out, data, len);
    stream_kick(s);
    return 0;
}

int mc_h2_call_end(struct mc_h2_call *s, const struct mc_http_header *trailers, size_t count)
{
    if (s->body_ended)
        return 0;
    if (s->cancelled || s->in_failed || (!s->hc && s->submitted))
        return MC_ECLOSED;
    if (count) {
        struct nv_builder b = {0};
        mc_buf_init(&b.text);
        int rc = nvb_add_headers(&b, trailers, count);
        if (rc < 0) {
            mc_buf_close(&b.text);
            mc_free(b.offs);
            return rc;
        }
        nvb_finish(&b, &s->trailers, &s->trailer_count, &s->trailer_text);
    }
    s->body_ended = 1;
    stream_kick(s);
    return 0;
}

size_t mc_h2_call_pending(const struct mc_h2_call *s)
{
    return s->out.len - s->out_off;
}

void mc_h2_call_on_drain(struct mc_h2_call *s, mc_h2_drain_cb cb)
{
    s->on_drain = cb;
    if (cb && mc_h2_call_pending(s) == 0 && s->hc && !s->on_drain_listed) {
        s->on_drain_listed = 1;
        s->drain_next = s->hc->drain_due;
        s->hc->drain_due = s;
    }
}

void mc_h2_call_pause(struct mc_h2_call *s)
{
    s->paused = 1;
}

void mc_h2_call_resume(struct mc_h2_call *s)
{
    if (!s->paused)
        return;
    s->paused = 0;
    if (s->unconsumed && s->hc && s->hc->session && s->id > 0) {
        nghttp2_session_consume(s->hc->session, s->id, s->unconsumed);
        s->unconsumed = 0;
        hc_send_soon(s->hc);
    }
}

void mc_h2_call_cancel(struct mc_h2_call *s)
{
    if (s->cancelled)
        return;
    s->cancelled = 1;
    s->on_drain = NULL;
    if (s->in_failed) {
        stream_unlink(s, &s->client->failed);
        stream_free(s);
        return;
    }
    struct h2conn *hc = s->hc;
    if (!hc)
        return; /* inside on_done, or the connection is ending it: freed there */
    if (hc->state == HC_DEAD)
        return;
    if (s->id > 0) {
        /* freed by on_stream_close: once the reset is out, or at once when both sides had
         * ended the stream already (nothing to reset: a frame on a closed stream is an error) */
        if (nghttp2_session_get_stream_remote_close(hc->session, s->id) != 1 ||
            nghttp2_session_get_stream_local_close(hc->session, s->id) != 1)
            nghttp2_submit_rst_stream(hc->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
        hc_send_soon(hc);
        return;
    }
    /* still waiting for the dial: the node never heard of it */
    stream_unlink(s, &hc->all);
    hc->streams--;
    s->hc = NULL;
    stream_free(s);
    hc_idle_check(hc);
}

struct mc_h2_client *mc_h2_client_new(struct mc_net *net, const struct mc_h2_client_config *config)
{
    struct mc_h2_client *client = mc_calloc(1, sizeof *client);
    client->net = net;
    if (config)
        client->config = *config;
    if (!client->config.max_conns_per_host)
        client->config.max_conns_per_host = 8;
    if (!client->config.idle_timeout_ms)
        client->config.idle_timeout_ms = 60000;
    if (!client->config.connect_timeout_ms)
        client->config.connect_timeout_ms = 10000;
    session_setup(client);
    uv_timer_init(net->loop, &client->failed_timer);
    client->failed_timer.data = client;
    uv_idle_init(net->loop, &client->send_idle);
    client->send_idle.data = client;
    client->refs = 2;
    return client;
}

/* The failed timer and the send idle handle: one reference each. */
static void failed_timer_closed(uv_handle_t *h)
{
    client_unref(h->data);
}

void mc_h2_client_free(struct mc_h2_client *client)
{
    if (!client)
        return;
    client->closing = 1;
    while (client->failed) {
        struct mc_h2_call *s = client->failed;
        stream_unlink(s, &client->failed);
        stream_free(s);
    }
    while (client->hosts) {
        struct h2conn *hc = client->hosts->conns;
        for (struct mc_h2_call *s = hc->all; s; s = s->next)
            s->cancelled = 1; /* no callbacks */
        hc->in_io = 0;
        hc->fail_due = 0;
        hc_fail(hc, MC_ECANCELED); /* removes it from its host, and the host when empty */
    }
    client->send_list = NULL;
    uv_close((uv_handle_t *)&client->failed_timer, failed_timer_closed);
    uv_close((uv_handle_t *)&client->send_idle, failed_timer_closed);
}
