/* Shared between hub.c and session.c only: the hub's lists and the hooks each side calls on
 * the other. Not part of any public contract. */
#ifndef MC_WS_HUB_PRIVATE_H
#define MC_WS_HUB_PRIVATE_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "util/buf.h"
#include "ws/session.h"

struct mc_ws;

/* The largest server frame header (mc_ws_frame_header), counted against the queue bound. */
#define MC_WS_FRAME_HEADER_MAX 10

struct mc_ws_shared_frame {
    /* Atomic: once there are several loops, one frame fanned out to sessions on different
     * loops is released by whichever loop writes it last. */
    atomic_size_t refs;
    uint8_t hdr[MC_WS_FRAME_HEADER_MAX];
    size_t hdr_len;
    const void *payload;
    size_t len;
    mc_conn_release_cb release;
    void *ctx;
};

/* A piece of output held in a session's backlog (see session.c): an owned copy (owned: base
 * is mc_free()d, more bytes may be appended up to cap) or a reference released by
 * release(ctx). ends_frame: the backlog may be cut after it without breaking the framing. */
struct mc_ws_out {
    const char *base;
    size_t len, cap;
    mc_conn_release_cb release;
    void *ctx;
    unsigned owned : 1, ends_frame : 1;
};

struct mc_ws_session {
    struct mc_ws_hub *hub;
    struct mc_ws_session *prev, *next;             /* hub->sessions */
    struct mc_ws_session *dirty_prev, *dirty_next; /* hub->dirty while dirty is set */
    struct mc_conn *conn;
    struct mc_ws *ws;
    uv_timer_t timer; /* ping, idle cut, close bound: one deadline re-armed lazily */
    struct mc_buf leftover;
    struct mc_ws_session_config cfg;
    uint64_t last_rx_ms, last_ping_ms;
    uint64_t close_deadline_ms; /* 0 while not closing */
    int handles_open;           /* timer + connection */
    /* Pongs: at most one in the connection's output (pong_frame, written by reference),
     * and the payload of the latest ping not yet answered, which a later ping replaces. */
    uint8_t pong_frame[2 + 125];
    uint8_t ping[125];
    size_t ping_len;
    /* Output past MC_WS_SESSION_DIRECT_MAX waits here as whole frames, in order, instead of in
     * the connection's queue: a 1008 cut drops it and the close frame goes out next. */
    struct mc_ws_out *backlog;
    size_t backlog_head, backlog_len, backlog_cap; /* entries [head, len) are live */
    size_t backlog_bytes;
    unsigned dirty : 1, ended : 1, tcp_closing : 1, started : 1, pong_queued : 1,
        ping_unanswered : 1, read_paused : 1, to_backlog : 1;
};

struct mc_ws_hub {
    uv_loop_t *loop;
    struct mc_ws_session *sessions; /* every live session (doubly linked via prev/next) */
    size_t count;
    struct mc_ws_session *dirty; /* sessions with output to flush this turn */
    uv_prepare_t flush;          /* runs before the loop blocks: one flush per turn */
    uv_timer_t close_bound;      /* close_all: cut whoever has not answered in time */
    struct mc_ws_shared_frame *cached;
    uint64_t slow_closes;
    void (*drain_done)(void *ctx);
    void *drain_ctx;
    unsigned draining : 1, freeing : 1;
    int handles_open; /* flush + close_bound, until their close callbacks ran */
};

/* session.c -> hub.c */
void mc_ws_hub_add(struct mc_ws_hub *hub, struct mc_ws_session *s);
/* Unlinks s (called when its memory is about to be released); may finish a drain or free. */
void mc_ws_hub_remove(struct mc_ws_hub *hub, struct mc_ws_session *s);
/* Queues s for the flush at the end of this loop turn. */
void mc_ws_hub_mark_dirty(struct mc_ws_hub *hub, struct mc_ws_session *s);

/* hub.c -> session.c */
void mc_ws_session_flush(struct mc_ws_session *s);
/* Closes with code, giving the peer at most bound_ms to answer. */
void mc_ws_session_shutdown(struct mc_ws_session *s, uint16_t code, uint64_t bound_ms);
/* Ends s now and closes its connection without waiting. */
void mc_ws_session_abort(struct mc_ws_session *s);

#endif
