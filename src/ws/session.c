/* WebSocket sessions: the I/O-free codec wired to an upgraded connection, one lazily re-armed
 * timer for pings, the idle cut and the close bound, and the outbound queue bound. */
#include "ws/session.h"

#include <string.h>

#include "util/alloc.h"
#include "util/error.h"
#include "util/log.h"
#include "ws/handshake.h"
#include "ws/hub_private.h"
#include "ws/ws.h"

struct mc_ws_shared_frame *mc_ws_shared_frame_new(int opcode, const void *payload, size_t len,
                                                  mc_conn_release_cb release, void *ctx)
{
    struct mc_ws_shared_frame *f = mc_calloc(1, sizeof *f);
    atomic_init(&f->refs, 1);
    f->hdr_len = mc_ws_frame_header(f->hdr, opcode, len);
    f->payload = payload;
    f->len = len;
    f->release = release;
    f->ctx = ctx;
    return f;
}

struct mc_ws_shared_frame *mc_ws_shared_frame_ref(struct mc_ws_shared_frame *f)
{
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

void mc_ws_shared_frame_unref(struct mc_ws_shared_frame *f)
{
    /* acq_rel: every other holder's use happens before the release below */
    if (!f || atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) > 1)
        return;
    if (f->release)
        f->release(f->ctx);
    mc_free(f);
}

static void frame_segment_done(void *ctx)
{
    mc_ws_shared_frame_unref(ctx);
}

/* ---- the backlog ----
 *
 * The connection's queue is handed to the socket in batches of segments, so a frame may be
 * half in flight and half queued there: nothing can be taken back from it. Past
 * MC_WS_SESSION_DIRECT_MAX of pending output, messages wait here instead, in order and as
 * whole frames (its front is always a frame boundary), and go to the connection as it drains
 * (on_drain). A 1008 cut drops the backlog at once, so the close frame follows at most
 * MC_WS_SESSION_DIRECT_MAX of output: the reader gets it promptly rather than after megabytes
 * it no longer needs (and a reader too slow for those would see the connection end without
 * it). */

#define BACKLOG_CHUNK (16u << 10) /* owned copies are coalesced into blocks of this size */

static void owned_release(void *ctx)
{
    mc_free(ctx);
}

static int backlog_empty(const struct mc_ws_session *s)
{
    return s->backlog_head == s->backlog_len;
}

static struct mc_ws_out *backlog_push(struct mc_ws_session *s)
{
    if (s->backlog_len == s->backlog_cap && s->backlog_head > 0) {
        memmove(s->backlog, s->backlog + s->backlog_head,
                (s->backlog_len - s->backlog_head) * sizeof *s->backlog);
        s->backlog_len -= s->backlog_head;
        s->backlog_head = 0;
    }
    if (s->backlog_len == s->backlog_cap) {
        s->backlog_cap = s->backlog_cap ? s->backlog_cap * 2 : 16;
        s->backlog = mc_realloc(s->backlog, s->backlog_cap * sizeof *s->backlog);
    }
    struct mc_ws_out *o = &s->backlog[s->backlog_len++];
    memset(o, 0, sizeof *o);
    return o;
}

static void backlog_copy(struct mc_ws_session *s, const void *data, size_t len)
{
    struct mc_ws_out *o = backlog_empty(s) ? NULL : &s->backlog[s->backlog_len - 1];
    if (!o || !o->owned || o->cap - o->len < len) {
        o = backlog_push(s);
        o->cap = len > BACKLOG_CHUNK ? len : BACKLOG_CHUNK;
        o->base = mc_malloc(o->cap);
        o->owned = 1;
    }
    memcpy((char *)o->base + o->len, data, len);
    o->len += len;
    o->ends_frame = 0;
    s->backlog_bytes += len;
}

static void backlog_ref(struct mc_ws_session *s, const void *data, size_t len,
                        mc_conn_release_cb release, void *ctx)
{
    struct mc_ws_out *o = backlog_push(s);
    o->base = data;
    o->len = len;
    o->release = release;
    o->ctx = ctx;
    s->backlog_bytes += len;
}

/* Whether the next message waits in the backlog: one is there already (order), or the
 * connection holds direct_max. */
static int goes_to_backlog(const struct mc_ws_session *s)
{
    return !backlog_empty(s) || mc_conn_pending(s->conn) >= s->cfg.direct_max;
}

/* A frame was produced whole: the backlog may be cut after what it holds now. */
static void backlog_frame_end(struct mc_ws_session *s)
{
    if (!backlog_empty(s))
        s->backlog[s->backlog_len - 1].ends_frame = 1;
}

static void out_release(struct mc_ws_out *o)
{
    if (o->owned)
        mc_free((void *)o->base);
    else if (o->release)
        o->release(o->ctx);
}

/* Drops every frame still in the backlog; returns the bytes dropped. */
static size_t backlog_drop(struct mc_ws_session *s)
{
    size_t dropped = s->backlog_bytes;
    for (size_t i = s->backlog_head; i < s->backlog_len; i++)
        out_release(&s->backlog[i]);
    s->backlog_head = s->backlog_len = 0;
    s->backlog_bytes = 0;
    return dropped;
}

/* Hands whole frames from the backlog to the connection while its pending output is under
 * limit (SIZE_MAX: all of them); the caller flushes. */
static void backlog_move(struct mc_ws_session *s, size_t limit)
{
    if (!s->conn || backlog_empty(s))
        return;
    while (!backlog_empty(s) && mc_conn_pending(s->conn) < limit) {
        unsigned ends;
        do {
            struct mc_ws_out *o = &s->backlog[s->backlog_head++];
            s->backlog_bytes -= o->len;
            ends = o->ends_frame;
            if (o->owned)
                mc_conn_write_ref(s->conn, o->base, o->len, owned_release, (void *)o->base);
            else
                mc_conn_write_ref(s->conn, o->base, o->len, o->release, o->ctx);
        } while (!ends && !backlog_empty(s));
    }
    if (backlog_empty(s))
        s->backlog_head = s->backlog_len = 0;
}

/* Flushes, and refills from the backlog for as long as the socket takes everything at once:
 * the next refill is then due when a write request completes (on_drain), never left to an
 * end-of-turn pass the loop might sleep before. */
static void flush_and_refill(struct mc_ws_session *s)
{
    mc_conn_flush(s->conn);
    while (s->conn && !s->conn->closing && !backlog_empty(s) &&
           mc_conn_pending(s->conn) < s->cfg.direct_max) {
        backlog_move(s, s->cfg.direct_max);
        mc_conn_flush(s->conn);
    }
}

/* ---- lifecycle ---- */

static uint64_t now_ms(const struct mc_ws_session *s)
{
    return uv_now(s->hub->loop);
}

/* Ends the WebSocket for the owner (once): after this no message is reported, nothing is
 * sent, and the owner has released what it attached. */
static void end_session(struct mc_ws_session *s, uint16_t code)
{
    if (s->ended)
        return;
    s->ended = 1;
    if (s->cfg.on_close)
        s->cfg.on_close(s, code);
}

static void close_tcp(struct mc_ws_session *s, int now)
{
    if (!s->conn)
        return;
    if (now)
        backlog_drop(s);
    else
        backlog_move(s, SIZE_MAX); /* a graceful close writes everything first */
    s->tcp_closing = 1;
    mc_conn_close(s->conn, now);
}

static void release(struct mc_ws_session *s)
{
    if (--s->handles_open > 0)
        return;
    mc_ws_free(s->ws);
    s->ws = NULL;
    mc_buf_close(&s->leftover);
    backlog_drop(s);
    mc_free(s->backlog);
    /* Last: removing the final session may finish a drain, which may free the hub. */
    mc_ws_hub_remove(s->hub, s);
    mc_free(s);
}

static void on_timer_closed(uv_handle_t *h)
{
    release(h->data);
}

static void close_timer(struct mc_ws_session *s)
{
    if (!uv_is_closing((uv_handle_t *)&s->timer))
        uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

static void on_conn_closed(struct mc_conn *c)
{
    struct mc_ws_session *s = c->data;
    end_session(s, MC_WS_CLOSE_ABNORMAL);
    backlog_drop(s); /* shared frames go back to their publishers now */
    s->conn = NULL;
    mc_conn_free(c);
    close_timer(s);
    release(s);
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t);
static int make_room(struct mc_ws_session *s, size_t add);

/* One timer serves three deadlines; activity only updates timestamps, and the timer re-reads
 * them when it fires, so a busy session costs no timer operation per frame. */
static void arm_timer(struct mc_ws_session *s)
{
    if (uv_is_closing((uv_handle_t *)&s->timer))
        return;
    uint64_t now = now_ms(s), due;
    if (s->close_deadline_ms) {
        due = s->close_deadline_ms;
    } else {
        due = s->last_ping_ms + s->cfg.ping_interval_ms;
        uint64_t idle_due = s->last_rx_ms + s->cfg.idle_timeout_ms;
        if (idle_due < due)
            due = idle_due;
    }
    uv_timer_start(&s->timer, on_timer, due > now ? due - now : 0, 0);
}

static void set_close_deadline(struct mc_ws_session *s, uint64_t bound_ms)
{
    uint64_t deadline = now_ms(s) + bound_ms;
    if (!s->close_deadline_ms || deadline < s->close_deadline_ms)
        s->close_deadline_ms = deadline;
    arm_timer(s);
}

static void on_timer(uv_timer_t *t)
{
    struct mc_ws_session *s = t->data;
    uint64_t now = now_ms(s);
    if (s->close_deadline_ms) {
        if (now >= s->close_deadline_ms) {
            /* The peer did not finish the close handshake (or read our output) in time. */
            end_session(s, MC_WS_CLOSE_ABNORMAL);
            close_tcp(s, 1);
            return;
        }
    } else if (now >= s->last_rx_ms + s->cfg.idle_timeout_ms) {
        /* A silent peer will not answer our close either: close TCP once it is written. */
        mc_log_debug("websocket idle for %llu ms: closing",
                     (unsigned long long)(now - s->last_rx_ms));
        mc_ws_close(s->ws, MC_WS_SESSION_CLOSE_IDLE, "idle timeout");
        backlog_frame_end(s);
        end_session(s, MC_WS_SESSION_CLOSE_IDLE);
        close_tcp(s, 0);
        s->close_deadline_ms = now + s->cfg.close_timeout_ms;
    } else if (now >= s->last_ping_ms + s->cfg.ping_interval_ms) {
        if (make_room(s, 2) == 0) {
            mc_ws_ping(s->ws);
            backlog_frame_end(s);
        }
        s->last_ping_ms = now;
    }
    arm_timer(s);
}

/* ---- codec glue ---- */

static void codec_write(void *ctx, const void *data, size_t len)
{
    struct mc_ws_session *s = ctx;
    if (!s->conn)
        return;
    /* Behind a backlog, every frame waits its turn (a close must not pass a message). */
    if (s->to_backlog || !backlog_empty(s)) {
        backlog_copy(s, data, len);
        return;
    }
    mc_conn_write_copy(s->conn, data, len);
    mc_ws_hub_mark_dirty(s->hub, s);
}

static void codec_message(void *ctx, int is_text, const uint8_t *data, size_t len)
{
    struct mc_ws_session *s = ctx;
    if (!s->ended && s->cfg.on_message)
        s->cfg.on_message(s, is_text, data, len);
}

static void pong_written(void *ctx);

/* Puts the answer to the latest ping in the output, unless a pong is already there: that one
 * is written first, and pong_written() then sends the latest. So a peer that pings and never
 * reads costs one pong, not one per ping, and the pong counts toward the queue bound. */
static void send_pong(struct mc_ws_session *s)
{
    if (!s->ping_unanswered || s->pong_queued)
        return;
    if (make_room(s, 2 + s->ping_len) < 0)
        return;
    s->ping_unanswered = 0;
    size_t hl = mc_ws_frame_header(s->pong_frame, MC_WS_OP_PONG, s->ping_len);
    memcpy(s->pong_frame + hl, s->ping, s->ping_len);
    s->pong_queued = 1;
    mc_conn_write_ref(s->conn, s->pong_frame, hl + s->ping_len, pong_written, s);
    mc_ws_hub_mark_dirty(s->hub, s);
}

/* The queued pong left (or was dropped with the connection's output). The session outlives
 * every segment of its connection, so s is valid here. */
static void pong_written(void *ctx)
{
    struct mc_ws_session *s = ctx;
    s->pong_queued = 0;
    if (!s->tcp_closing && s->conn && !s->conn->closing)
        send_pong(s);
}

static void codec_ping(void *ctx, const uint8_t *payload, size_t len)
{
    struct mc_ws_session *s = ctx;
    if (s->ended)
        return;
    memcpy(s->ping, payload, len); /* RFC 6455 5.5.3: only the latest needs an answer */
    s->ping_len = len;
    s->ping_unanswered = 1;
    send_pong(s);
}

static void codec_close(void *ctx, uint16_t code, const char *reason, size_t len)
{
    (void)reason;
    (void)len;
    end_session(ctx, code);
}

static void feed(struct mc_ws_session *s, const char *data, size_t len)
{
    s->last_rx_ms = now_ms(s);
    mc_ws_feed(s->ws, (const uint8_t *)data, len);
    backlog_frame_end(s); /* a close echo, or our close for a protocol error */
    if (!s->tcp_closing && mc_ws_want_close_connection(s->ws)) {
        /* RFC 6455 7.1.1: the server closes TCP first, once the close frame is out. */
        end_session(s, MC_WS_CLOSE_PROTOCOL); /* normally done already by codec_close */
        close_tcp(s, 0);
        set_close_deadline(s, s->cfg.close_timeout_ms);
    }
}

static void on_read(struct mc_conn *c, const char *data, ssize_t nread)
{
    struct mc_ws_session *s = c->data;
    if (nread < 0) {
        end_session(s, MC_WS_CLOSE_ABNORMAL);
        close_tcp(s, 1);
        return;
    }
    feed(s, data, (size_t)nread);
}

/* The output drained: a reader paused for being too slow (make_room) has caught up, and is
 * read again so that its answer to our close completes the handshake. */
static void on_drain(struct mc_conn *c)
{
    struct mc_ws_session *s = c->data;
    if (!backlog_empty(s))
        flush_and_refill(s);
    if (s->read_paused && !s->tcp_closing) {
        s->read_paused = 0;
        mc_conn_read_start(c);
    }
}

/* ---- public ---- */

static void refuse(struct mc_http_request *req, int status, const char *id, const char *detail)
{
    if (status != 426) {
        mc_http_respond_error(req, status, id, detail);
        return;
    }
    struct mc_buf body;
    mc_buf_init(&body);
    mc_http_error_json(&body, id, status, detail);
    const struct mc_http_header version = {"Sec-WebSocket-Version", "13"};
    mc_http_respond(req, status, "application/json", &version, 1, body.data, body.len);
    mc_buf_close(&body);
}

struct mc_ws_session *mc_ws_session_accept(struct mc_http_request *req, struct mc_ws_hub *hub,
                                           const struct mc_ws_session_config *cfg, const char *id)
{
    if (!mc_http_origin_allowed(req)) {
        refuse(req, 403, id, "origin not allowed");
        return NULL;
    }
    if (hub->draining || hub->freeing) {
        refuse(req, 503, id, "shutting down");
        return NULL;
    }
    struct mc_ws_upgrade_request u = {
        .method = req->method_name,
        .http_major = req->http_major,
        .http_minor = req->http_minor,
        .upgrade = mc_http_request_header(req, "Upgrade"),
        .connection = mc_http_request_header(req, "Connection"),
        .version = mc_http_request_header(req, "Sec-WebSocket-Version"),
        .key = mc_http_request_header(req, "Sec-WebSocket-Key"),
    };
    char accept[MC_WS_ACCEPT_LEN];
    int status = 400;
    if (mc_ws_check_upgrade(&u, accept, &status) < 0) {
        refuse(req, status, id, "bad websocket handshake");
        return NULL;
    }

    struct mc_ws_session *s = mc_calloc(1, sizeof *s);
    s->hub = hub;
    s->cfg = *cfg;
    if (!s->cfg.max_message)
        s->cfg.max_message = MC_WS_DEFAULT_MAX_MESSAGE;
    if (!s->cfg.max_queue)
        s->cfg.max_queue = MC_WS_SESSION_MAX_QUEUE;
    if (!s->cfg.direct_max)
        s->cfg.direct_max = MC_WS_SESSION_DIRECT_MAX;
    if (!s->cfg.ping_interval_ms)
        s->cfg.ping_interval_ms = MC_WS_SESSION_PING_MS;
    if (!s->cfg.idle_timeout_ms)
        s->cfg.idle_timeout_ms = MC_WS_SESSION_IDLE_MS;
    if (!s->cfg.close_timeout_ms)
        s->cfg.close_timeout_ms = MC_WS_SESSION_CLOSE_MS;

    const struct mc_http_header head[] = {
        {"Upgrade", "websocket"}, {"Connection", "Upgrade"}, {"Sec-WebSocket-Accept", accept}};
    s->conn = mc_http_upgrade(req, 101, head, sizeof head / sizeof head[0], &s->leftover);
    s->conn->data = s;
    s->conn->on_read = on_read;
    s->conn->on_close = on_conn_closed;
    s->conn->on_drain = on_drain; /* reading stays stopped until mc_ws_session_start() */

    const struct mc_ws_callbacks cbs = {.on_message = codec_message,
                                        .on_close = codec_close,
                                        .write = codec_write,
                                        .on_ping = codec_ping};
    const struct mc_ws_limits limits = {.max_message = s->cfg.max_message};
    s->ws = mc_ws_new(&cbs, s, &limits);

    uv_timer_init(hub->loop, &s->timer);
    s->timer.data = s;
    s->handles_open = 2;
    s->last_rx_ms = s->last_ping_ms = now_ms(s);
    mc_ws_hub_add(hub, s);
    mc_ws_hub_mark_dirty(hub, s);
    arm_timer(s);
    return s;
}

void mc_ws_session_start(struct mc_ws_session *s)
{
    if (s->started)
        return;
    s->started = 1;
    if (s->leftover.len && !s->tcp_closing) {
        size_t n;
        char *early = mc_buf_steal(&s->leftover, &n);
        feed(s, early, n);
        mc_free(early);
    }
    if (!s->tcp_closing && s->conn && !s->read_paused)
        mc_conn_read_start(s->conn);
}

void *mc_ws_session_data(const struct mc_ws_session *s)
{
    return s->cfg.data;
}

size_t mc_ws_session_pending(const struct mc_ws_session *s)
{
    return s->conn ? mc_conn_pending(s->conn) + s->backlog_bytes : 0;
}

/* The one gate for everything the session queues except close frames (messages, shared
 * frames, pongs, our pings): whether add more bytes may be queued. Past the bound the reader
 * is cut with 1008 so that neither the publisher nor anyone else waits for it and its memory
 * stays bounded; and it is no longer read until its output drains, so whatever it keeps
 * sending waits in the kernel's buffers (back-pressure) and the close timeout ends it. */
static int make_room(struct mc_ws_session *s, size_t add)
{
    if (s->ended || !s->conn || !mc_ws_can_send(s->ws))
        return MC_ECLOSED;
    size_t pending = mc_conn_pending(s->conn) + s->backlog_bytes;
    if (pending > 0 && pending + add > s->cfg.max_queue) {
        s->hub->slow_closes++;
        /* The messages not handed to the socket yet are lost to this reader anyway (that is
         * what 1008 says): dropped, so that the close frame is what it reads next. */
        size_t dropped = backlog_drop(s);
        mc_log_warn("websocket reader too slow (%zu bytes queued, %zu dropped): closing with 1008",
                    pending, dropped);
        mc_ws_session_close(s, MC_WS_CLOSE_POLICY, "reader too slow");
        if (s->conn && !s->tcp_closing) {
            s->read_paused = 1;
            mc_conn_read_stop(s->conn);
        }
        return MC_ETOOBIG;
    }
    return 0;
}

int mc_ws_session_send(struct mc_ws_session *s, int is_text, const void *data, size_t len)
{
    int rc = make_room(s, len + MC_WS_FRAME_HEADER_MAX);
    if (rc < 0)
        return rc;
    s->to_backlog = goes_to_backlog(s);
    rc = mc_ws_send(s->ws, is_text, data, len);
    s->to_backlog = 0;
    backlog_frame_end(s);
    return rc;
}

int mc_ws_session_send_shared(struct mc_ws_session *s, struct mc_ws_shared_frame *f)
{
    int rc = make_room(s, f->hdr_len + f->len);
    if (rc < 0)
        return rc;
    if (goes_to_backlog(s)) {
        backlog_ref(s, f->hdr, f->hdr_len, frame_segment_done, mc_ws_shared_frame_ref(f));
        backlog_ref(s, f->payload, f->len, frame_segment_done, mc_ws_shared_frame_ref(f));
        backlog_frame_end(s);
        return 0;
    }
    mc_conn_write_ref(s->conn, f->hdr, f->hdr_len, frame_segment_done, mc_ws_shared_frame_ref(f));
    mc_conn_write_ref(s->conn, f->payload, f->len, frame_segment_done, mc_ws_shared_frame_ref(f));
    mc_ws_hub_mark_dirty(s->hub, s);
    return 0;
}

int mc_ws_session_close(struct mc_ws_session *s, uint16_t code, const char *reason)
{
    if (s->ended || !s->conn)
        return MC_ECLOSED;
    int rc = mc_ws_close(s->ws, code, reason);
    if (rc < 0)
        return rc;
    /* No message follows a close: whatever still waits goes to the connection now, the close
     * last (after a 1008 cut, the backlog was dropped: the close alone). */
    backlog_frame_end(s);
    if (!backlog_empty(s)) {
        backlog_move(s, SIZE_MAX);
        mc_ws_hub_mark_dirty(s->hub, s);
    }
    end_session(s, code);
    set_close_deadline(s, s->cfg.close_timeout_ms);
    return 0;
}

/* ---- for the hub ---- */

void mc_ws_session_flush(struct mc_ws_session *s)
{
    if (s->conn)
        flush_and_refill(s);
}

void mc_ws_session_shutdown(struct mc_ws_session *s, uint16_t code, uint64_t bound_ms)
{
    mc_ws_session_close(s, code, "shutting down");
    set_close_deadline(s, bound_ms);
}

void mc_ws_session_abort(struct mc_ws_session *s)
{
    end_session(s, MC_WS_CLOSE_GOING_AWAY);
    close_tcp(s, 1);
    /* Closed here, not from the connection's callback: the daemon may walk and close every
     * remaining handle right after this returns. */
    close_timer(s);
}
