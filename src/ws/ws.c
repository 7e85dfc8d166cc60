/* RFC 6455 server codec. wslay's event API does the framing, unmasking, reassembly, size
 * limit and automatic pongs; this file feeds it from a borrowed buffer through a small
 * frame-header scanner (control-frame rules, and the peer's close, which wslay 1.1 judges
 * wrongly), validates text, and turns the outcome into one on_close report. */
#include "ws/ws.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <wslay/wslay.h>

#include "util/alloc.h"
#include "util/error.h"
#include "util/log.h"
#include "ws/utf8.h"

/* The largest control frame: 2 header bytes, 4 of mask, 125 of payload. It also bounds
 * any frame header (at most 14 bytes), so the stash below holds either. */
#define MAX_CTRL_FRAME (2 + 4 + 125)

struct mc_ws {
    wslay_event_context_ptr wslay;
    struct mc_ws_callbacks cbs;
    void *ctx;

    /* The bytes of the mc_ws_feed() in progress, handed to wslay by recv_cb. */
    const uint8_t *in;
    size_t in_len;
    int in_feed;

    /* Frame scanner in front of wslay (see recv_cb). skip: bytes of the current data frame
     * still to pass through unexamined; stash: an incomplete header or control frame
     * carried over to the next feed; bad_frame: a header broke a rule, stop there. */
    uint64_t skip;
    size_t stash_len;
    size_t stash_off;
    int bad_frame;
    uint8_t stash[MAX_CTRL_FRAME];

    /* Re-entrancy: mc_ws_free() from a callback only marks the codec. */
    int depth;
    int free_pending;

    int closing;          /* mc_ws_close() queued our close */
    uint16_t failed_code; /* code we failed the connection with, 0 if none */
    int error;            /* what mc_ws_feed() returns from now on */
    int reported;         /* on_close has been called */

    int peer_closed;
    uint16_t peer_code;
    size_t peer_reason_len;
    char peer_reason[MC_WS_MAX_CLOSE_REASON + 1];

    /* The frame and data message being received, for UTF-8 checks across fragments. */
    uint8_t frame_opcode;
    int msg_is_text;
    struct mc_utf8 msg_utf8;
};

static const uint8_t empty_payload[1];

static void oom(void)
{
    /* The rest of the program aborts on out of memory (util/alloc.h); wslay allocates
     * with plain malloc, so its WSLAY_ERR_NOMEM gets the same verdict here. */
    mc_log_error("ws: out of memory in wslay");
    abort();
}

/* Codes an endpoint may put in a close frame (RFC 6455 7.4.1/7.4.2 and the IANA registry):
 * 1004-1006 and 1015 are reserved for reports, 1016-2999 unassigned, 0-999 and >= 5000
 * unused. */
static int close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* Fails the connection (RFC 6455 7.1.7): queue our close with code, stop reading. The close
 * is written by the flush at the end of mc_ws_feed(). */
static void fail(struct mc_ws *ws, uint16_t code)
{
    if (ws->failed_code != 0)
        return;
    ws->failed_code = code;
    ws->error = code == MC_WS_CLOSE_TOO_BIG ? MC_ETOOBIG : MC_EPROTO;
    int r = wslay_event_queue_close(ws->wslay, code, NULL, 0);
    if (r == WSLAY_ERR_NOMEM)
        oom();
    /* WSLAY_ERR_NO_MORE_MSG: a close is already queued or sent (ours or the echo); the peer
     * gets that one. */
    wslay_event_shutdown_read(ws->wslay);
}

/* Bytes of the feed not yet handed to wslay: the stash first, then the caller's buffer. */
static size_t avail(const struct mc_ws *ws)
{
    return ws->stash_len - ws->stash_off + ws->in_len;
}

static uint8_t peek(const struct mc_ws *ws, size_t k)
{
    size_t s = ws->stash_len - ws->stash_off;
    return k < s ? ws->stash[ws->stash_off + k] : ws->in[k - s];
}

static void take(struct mc_ws *ws, uint8_t *dst, size_t n)
{
    size_t s = ws->stash_len - ws->stash_off;
    size_t a = n < s ? n : s;
    memcpy(dst, ws->stash + ws->stash_off, a);
    ws->stash_off += a;
    if (ws->stash_off == ws->stash_len)
        ws->stash_off = ws->stash_len = 0;
    memcpy(dst + a, ws->in, n - a);
    ws->in += n - a;
    ws->in_len -= n - a;
}

/* Keeps the unexamined tail (an incomplete header or control frame, < MAX_CTRL_FRAME bytes)
 * for the next feed, since the caller's buffer is only borrowed. */
static void stash_rest(struct mc_ws *ws)
{
    assert(avail(ws) < MAX_CTRL_FRAME);
    if (ws->stash_off > 0) {
        memmove(ws->stash, ws->stash + ws->stash_off, ws->stash_len - ws->stash_off);
        ws->stash_len -= ws->stash_off;
        ws->stash_off = 0;
    }
    memcpy(ws->stash + ws->stash_len, ws->in, ws->in_len);
    ws->stash_len += ws->in_len;
    ws->in += ws->in_len;
    ws->in_len = 0;
}

/* Reads the header at the start of the unexamined bytes. Returns its length, 0 if more
 * bytes are needed, or -1 if it breaks a framing rule that this wslay version answers with
 * an empty close instead of 1002 (control frames over 125 bytes or fragmented) or may not
 * check at all (lengths not in minimal form, a 64-bit length with the top bit set). */
static int scan_header(const struct mc_ws *ws, int *is_ctrl, uint64_t *payload_len)
{
    size_t n = avail(ws);
    if (n < 2)
        return 0;
    uint8_t b0 = peek(ws, 0), b1 = peek(ws, 1);
    size_t hl = 2 + ((b1 & 0x7F) == 126 ? 2 : (b1 & 0x7F) == 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
    if (n < hl)
        return 0;
    uint64_t len = b1 & 0x7F;
    if (len == 126) {
        len = ((uint64_t)peek(ws, 2) << 8) | peek(ws, 3);
        if (len < 126)
            return -1;
    } else if (len == 127) {
        len = 0;
        for (size_t i = 0; i < 8; i++)
            len = (len << 8) | peek(ws, 2 + i);
        if (len <= 0xFFFF || (len >> 63) != 0)
            return -1;
    }
    *is_ctrl = (b0 & 0x08) != 0;
    if (*is_ctrl && (!(b0 & 0x80) || len > 125))
        return -1;
    *payload_len = len;
    return (int)hl;
}

/* The peer's close frame, whole (header and payload), taken out of the stream before wslay
 * sees it. wslay 1.1's own close handling is wrong three ways for a server that must
 * answer with the right code: it checks the reason's UTF-8 per received chunk, skipping the
 * first two bytes of every chunk as if each held the code; it refuses the registered codes
 * 1012-1014; and it takes a 1-byte payload for "no code" (RFC 6455 5.5.1: malformed). So
 * the close is judged here and the echo is queued through wslay's send path. */
/* Takes a whole control frame (header hl, payload plen) kept from wslay into f, checks what
 * wslay would have checked (masked, no RSV bits) and unmasks it. Returns its payload, or NULL
 * after failing the connection with 1002. */
static uint8_t *take_control(struct mc_ws *ws, size_t hl, size_t plen, uint8_t f[MAX_CTRL_FRAME])
{
    take(ws, f, hl + plen);
    if (!(f[1] & 0x80) || (f[0] & 0x70) != 0) {
        fail(ws, MC_WS_CLOSE_PROTOCOL);
        return NULL;
    }
    uint8_t *p = f + hl;
    for (size_t i = 0; i < plen; i++)
        p[i] ^= f[hl - 4 + i % 4];
    return p;
}

static void take_close(struct mc_ws *ws, size_t hl, size_t plen)
{
    uint8_t f[MAX_CTRL_FRAME];
    uint8_t *p = take_control(ws, hl, plen, f);
    if (!p)
        return;
    uint16_t code = 0;
    const uint8_t *reason = p + 2;
    size_t reason_len = plen >= 2 ? plen - 2 : 0;
    if (plen >= 2)
        code = (uint16_t)((p[0] << 8) | p[1]);
    if (plen == 1 || (plen >= 2 && !close_code_valid(code))) {
        fail(ws, MC_WS_CLOSE_PROTOCOL);
        return;
    }
    if (!mc_utf8_valid(reason, reason_len)) {
        fail(ws, MC_WS_CLOSE_BAD_DATA);
        return;
    }
    ws->peer_closed = 1;
    ws->peer_code = plen >= 2 ? code : MC_WS_CLOSE_NO_STATUS;
    memcpy(ws->peer_reason, reason, reason_len);
    ws->peer_reason[reason_len] = '\0';
    ws->peer_reason_len = reason_len;
    /* Echo the code and reason (RFC 6455 5.5.1). If our own close went out first this is
     * refused (WSLAY_ERR_NO_MORE_MSG) and the handshake is simply complete. */
    int r = wslay_event_queue_close(ws->wslay, code, reason, reason_len);
    if (r == WSLAY_ERR_NOMEM)
        oom();
    wslay_event_shutdown_read(ws->wslay);
}

static int flush(struct mc_ws *ws);

/* The peer's ping, whole, taken out of the stream before wslay sees it: wslay queues a pong
 * for every ping, without bound, while the glue may answer only the latest (on_ping). */
static void take_ping(struct mc_ws *ws, size_t hl, size_t plen)
{
    uint8_t f[MAX_CTRL_FRAME];
    uint8_t *p = take_control(ws, hl, plen, f);
    if (!p || !mc_ws_can_send(ws))
        return; /* after a close (ours or the peer's) no pong is due */
    if (ws->cbs.on_ping) {
        if (!ws->free_pending)
            ws->cbs.on_ping(ws->ctx, p, plen);
        return;
    }
    struct wslay_event_msg pong = {.opcode = WSLAY_PONG, .msg = p, .msg_length = plen};
    if (wslay_event_queue_msg(ws->wslay, &pong) == WSLAY_ERR_NOMEM)
        oom();
    /* Sent now rather than after the rest of this feed, so it goes out even if a later frame
     * fails the connection. */
    flush(ws);
}

/* wslay pulls input through here. Besides copying, it scans frame headers: data frames pass
 * through in any pieces; pings and pongs are handed over whole; a close frame is kept from
 * wslay and judged by take_close() once everything before it has been processed. */
static ssize_t recv_cb(wslay_event_context_ptr wctx, uint8_t *buf, size_t len, int flags,
                       void *user)
{
    struct mc_ws *ws = user;
    (void)flags;
    size_t out = 0;
    while (out < len && avail(ws) > 0 && !ws->bad_frame) {
        if (ws->skip > 0) {
            size_t n = len - out;
            if (n > avail(ws))
                n = avail(ws);
            if (n > ws->skip)
                n = (size_t)ws->skip;
            take(ws, buf + out, n);
            out += n;
            ws->skip -= n;
            continue;
        }
        int is_ctrl = 0;
        uint64_t plen = 0;
        int hl = scan_header(ws, &is_ctrl, &plen);
        if (hl < 0) {
            ws->bad_frame = 1; /* failed with 1002 once wslay returns */
            break;
        }
        if (hl == 0)
            break; /* incomplete header */
        if (!is_ctrl) {
            ws->skip = hl + plen; /* passes through the branch above */
            continue;
        }
        size_t fs = (size_t)hl + (size_t)plen;
        if (avail(ws) < fs)
            break; /* incomplete control frame: wait for the rest */
        if ((peek(ws, 0) & 0x0F) == WSLAY_CONNECTION_CLOSE) {
            /* wslay calls back for more only once it has consumed what it was given, so
             * with out == 0 every earlier message has been delivered. */
            if (out == 0)
                take_close(ws, (size_t)hl, (size_t)plen);
            break;
        }
        if ((peek(ws, 0) & 0x0F) == WSLAY_PING) {
            if (out > 0)
                break; /* answered in order, after what wslay holds has been delivered */
            take_ping(ws, (size_t)hl, (size_t)plen);
            if (ws->failed_code != 0 || ws->free_pending)
                break;
            continue;
        }
        if (len - out < fs) {
            if (out > 0)
                break;     /* let wslay consume what it has; it asks again with room */
            ws->skip = fs; /* wslay's buffer cannot hold it whole: pass it in pieces */
            continue;
        }
        take(ws, buf + out, fs);
        out += fs;
    }
    if (out > 0)
        return (ssize_t)out;
    if (!ws->bad_frame && !ws->peer_closed && ws->failed_code == 0)
        stash_rest(ws);
    /* Fed bytes drained: tell wslay to return, keeping its partial frame state. */
    wslay_event_set_error(wctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
}

static ssize_t send_cb(wslay_event_context_ptr wctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    struct mc_ws *ws = user;
    (void)wctx;
    (void)flags;
    /* The glue queues everything, so a frame is never left half-written (which is what
     * makes mc_ws_frame_header() safe between calls). After a deferred free the bytes have
     * nowhere to go. */
    if (!ws->free_pending)
        ws->cbs.write(ws->ctx, data, len);
    return (ssize_t)len;
}

static void frame_start_cb(wslay_event_context_ptr wctx,
                           const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
    struct mc_ws *ws = user;
    (void)wctx;
    if (ws->failed_code != 0)
        return;
    ws->frame_opcode = arg->opcode;
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
        ws->msg_is_text = arg->opcode == WSLAY_TEXT_FRAME;
        mc_utf8_init(&ws->msg_utf8);
    }
}

static void frame_chunk_cb(wslay_event_context_ptr wctx,
                           const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user)
{
    struct mc_ws *ws = user;
    (void)wctx;
    if (ws->failed_code != 0)
        return;
    /* Validate text as it arrives so a bad byte fails the connection at once, whatever the
     * fragmentation (RFC 6455 8.1), and without trusting one wslay version's checks. */
    int text_data = ws->frame_opcode == WSLAY_TEXT_FRAME ||
                    (ws->frame_opcode == WSLAY_CONTINUATION_FRAME && ws->msg_is_text);
    if (text_data && mc_utf8_feed(&ws->msg_utf8, arg->data, arg->data_length) != 0)
        fail(ws, MC_WS_CLOSE_BAD_DATA);
}

/* Writes everything wslay has queued. The write callback never refuses bytes, so this
 * always completes (no partial frame stays behind). */
static int flush(struct mc_ws *ws)
{
    int r = wslay_event_send(ws->wslay);
    if (r == WSLAY_ERR_NOMEM)
        oom();
    return r == 0 ? 0 : MC_EPROTO;
}

static void msg_cb(wslay_event_context_ptr wctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user)
{
    struct mc_ws *ws = user;
    (void)wctx;
    if (ws->failed_code != 0)
        return;
    switch (arg->opcode) {
    case WSLAY_TEXT_FRAME:
    case WSLAY_BINARY_FRAME:
        /* A text message may end inside a character (RFC 6455 8.1). */
        if (arg->opcode == WSLAY_TEXT_FRAME && !mc_utf8_complete(&ws->msg_utf8)) {
            fail(ws, MC_WS_CLOSE_BAD_DATA);
            return;
        }
        if (!ws->free_pending)
            ws->cbs.on_message(ws->ctx, arg->opcode == WSLAY_TEXT_FRAME,
                               arg->msg_length ? arg->msg : empty_payload, arg->msg_length);
        break;
    default:
        /* Pongs only prove liveness, which the glue sees as input. Pings and close frames
         * never reach wslay (see take_ping and take_close). */
        break;
    }
}

/* Calls on_close once, after the close frame that explains it has been written. */
static void report_close(struct mc_ws *ws)
{
    if (ws->reported)
        return;
    uint16_t code;
    const char *reason = "";
    size_t reason_len = 0;
    if (ws->failed_code != 0) {
        code = ws->failed_code;
    } else if (ws->peer_closed) {
        code = ws->peer_code;
        reason = ws->peer_reason;
        reason_len = ws->peer_reason_len;
    } else if (!wslay_event_get_read_enabled(ws->wslay)) {
        /* wslay found the violation itself (masking, RSV, opcode, sequence, length, close
         * code) and queued its close: its code is the one it sent. If our own close went out
         * first, the peer got that one; report a protocol error. */
        code = ws->closing ? MC_WS_CLOSE_PROTOCOL : wslay_event_get_status_code_sent(ws->wslay);
        if (!close_code_valid(code))
            code = MC_WS_CLOSE_PROTOCOL;
        ws->failed_code = code;
        ws->error = code == MC_WS_CLOSE_TOO_BIG ? MC_ETOOBIG : MC_EPROTO;
    } else {
        return;
    }
    ws->reported = 1;
    if (ws->cbs.on_close != NULL && !ws->free_pending)
        ws->cbs.on_close(ws->ctx, code, reason, reason_len);
}

static void destroy(struct mc_ws *ws)
{
    wslay_event_context_free(ws->wslay);
    ws->wslay = NULL;
    mc_free(ws);
}

static void enter(struct mc_ws *ws)
{
    ws->depth++;
}

/* Leaves a public entry point; releases ws if a callback asked for it. Returns rc. */
static int leave(struct mc_ws *ws, int rc)
{
    if (--ws->depth == 0 && ws->free_pending)
        destroy(ws);
    return rc;
}

struct mc_ws *mc_ws_new(const struct mc_ws_callbacks *cbs, void *ctx,
                        const struct mc_ws_limits *limits)
{
    struct wslay_event_callbacks wcbs = {
        .recv_callback = recv_cb,
        .send_callback = send_cb,
        .genmask_callback = NULL, /* servers never mask */
        .on_frame_recv_start_callback = frame_start_cb,
        .on_frame_recv_chunk_callback = frame_chunk_cb,
        .on_frame_recv_end_callback = NULL,
        .on_msg_recv_callback = msg_cb,
    };
    struct mc_ws *ws = mc_calloc(1, sizeof(*ws));
    ws->cbs = *cbs;
    ws->ctx = ctx;
    mc_utf8_init(&ws->msg_utf8);
    if (wslay_event_context_server_init(&ws->wslay, &wcbs, ws) != 0)
        oom(); /* its only failure is WSLAY_ERR_NOMEM */
    uint64_t max = limits != NULL && limits->max_message != 0 ? limits->max_message
                                                              : MC_WS_DEFAULT_MAX_MESSAGE;
    /* wslay checks this as each frame starts, before buffering its payload, so an oversized
     * declared length costs nothing (the named limit of STYLE habit 12). */
    wslay_event_config_set_max_recv_msg_length(ws->wslay, max);
    return ws;
}

void mc_ws_free(struct mc_ws *ws)
{
    if (ws == NULL)
        return;
    if (ws->depth > 0) {
        ws->free_pending = 1;
        return;
    }
    destroy(ws);
}

int mc_ws_feed(struct mc_ws *ws, const uint8_t *data, size_t len)
{
    if (ws->in_feed)
        return MC_EINVAL; /* not re-entrant: wslay's receive state is mid-frame */
    enter(ws);
    ws->in = data;
    ws->in_len = len;
    ws->in_feed = 1;
    int r = 0;
    if (wslay_event_get_read_enabled(ws->wslay)) {
        r = wslay_event_recv(ws->wslay);
        if (r == WSLAY_ERR_NOMEM)
            oom();
    }
    ws->in = NULL;
    ws->in_len = 0;
    ws->in_feed = 0;
    if (ws->bad_frame)
        fail(ws, MC_WS_CLOSE_PROTOCOL);
    if (r != 0 && ws->failed_code == 0) {
        /* Only a failing callback gets here, and ours don't fail; fail safe anyway. */
        fail(ws, MC_WS_CLOSE_PROTOCOL);
    }
    flush(ws);
    report_close(ws);
    return leave(ws, ws->error);
}

static int queue(struct mc_ws *ws, uint8_t opcode, const void *data, size_t len)
{
    struct wslay_event_msg msg = {
        .opcode = opcode,
        .msg = len ? data : empty_payload,
        .msg_length = len,
    };
    if (!mc_ws_can_send(ws))
        return MC_ECLOSED;
    int r = wslay_event_queue_msg(ws->wslay, &msg);
    if (r == WSLAY_ERR_NOMEM)
        oom();
    if (r == WSLAY_ERR_NO_MORE_MSG)
        return MC_ECLOSED;
    if (r != 0)
        return MC_EINVAL;
    enter(ws);
    flush(ws);
    return leave(ws, 0);
}

int mc_ws_send(struct mc_ws *ws, int is_text, const void *data, size_t len)
{
    if (is_text && !mc_utf8_valid(data, len))
        return MC_EINVAL;
    return queue(ws, is_text ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME, data, len);
}

int mc_ws_ping(struct mc_ws *ws)
{
    return queue(ws, WSLAY_PING, NULL, 0);
}

int mc_ws_close(struct mc_ws *ws, uint16_t code, const char *reason)
{
    size_t rlen = reason != NULL ? strlen(reason) : 0;
    if (!close_code_valid(code) || rlen > MC_WS_MAX_CLOSE_REASON ||
        !mc_utf8_valid((const uint8_t *)reason, rlen))
        return MC_EINVAL;
    if (!mc_ws_can_send(ws))
        return MC_ECLOSED;
    int r = wslay_event_queue_close(ws->wslay, code, (const uint8_t *)reason, rlen);
    if (r == WSLAY_ERR_NOMEM)
        oom();
    if (r != 0)
        return MC_ECLOSED;
    ws->closing = 1;
    enter(ws);
    flush(ws);
    return leave(ws, 0);
}

int mc_ws_want_close_connection(const struct mc_ws *ws)
{
    /* Reading stops when the peer's close arrives or when we fail the connection. */
    return wslay_event_get_close_sent(ws->wslay) && !wslay_event_get_read_enabled(ws->wslay);
}

int mc_ws_can_send(const struct mc_ws *ws)
{
    return !ws->closing && ws->failed_code == 0 && wslay_event_get_read_enabled(ws->wslay) &&
           wslay_event_get_write_enabled(ws->wslay);
}

size_t mc_ws_frame_header(uint8_t out[10], int opcode, uint64_t payload_len)
{
    out[0] = (uint8_t)(0x80 | (opcode & 0x0F));
    if (payload_len < 126) {
        out[1] = (uint8_t)payload_len;
        return 2;
    }
    if (payload_len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
    return 10;
}
