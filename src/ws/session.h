/* One WebSocket session over a connection taken from the HTTP server: the codec (ws.h) wired
 * to the socket, a ping every 54 s and a cut after 60 s of silence, the close handshake with
 * a bound, and a bounded outbound queue (a reader that cannot keep up is closed with 1008,
 * nobody waits for it, the messages still queued for it are dropped so that the close frame
 * reaches it next, and it is not read until its output drains). Control frames count
 * toward the bound, and a peer's pings get at most one pong in the queue at a time: while one
 * is queued, later pings only replace the payload of the next answer (RFC 6455 5.5.3). Every
 * session belongs to a hub (hub.h), which flushes their output once per loop turn and closes them
 * all at shutdown. Loop thread only. */
#ifndef MC_WS_SESSION_H
#define MC_WS_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "http/server.h"
#include "net/conn.h"
#include "ws/hub.h"

#define MC_WS_SESSION_MAX_QUEUE (8u << 20) /* outbound bytes (any frame) before a 1008 cut */
/* Outbound bytes handed to the connection at most; further messages wait in the session's
 * own backlog as whole frames, so that a reader cut with 1008 has at most this much (plus the
 * socket's buffers) to read before the close frame: the backlog is dropped. */
#define MC_WS_SESSION_DIRECT_MAX (256u << 10)
#define MC_WS_SESSION_PING_MS 54000   /* a ping this long after the previous one */
#define MC_WS_SESSION_IDLE_MS 60000   /* nothing received for this long: close */
#define MC_WS_SESSION_CLOSE_MS 5000   /* our close sent: wait this long for the peer */
#define MC_WS_SESSION_CLOSE_IDLE 1001 /* the code an idle session is closed with */
#define MC_WS_CLOSE_ABNORMAL 1006     /* reported when TCP ended without a close */

struct mc_ws_session;

/* A whole message from the client (UTF-8 already checked for text); data is valid only during
 * the call. Not called once the session has ended. */
typedef void (*mc_ws_session_message_cb)(struct mc_ws_session *s, int is_text, const uint8_t *data,
                                         size_t len);
/* The session has ended: called exactly once, with the close code that ended it (the peer's,
 * ours when we started the close or failed the connection, MC_WS_CLOSE_ABNORMAL when the TCP
 * connection went away first). From here on sends fail and no message is reported; the
 * owner releases what it attached to the session. The session's memory outlives the call. */
typedef void (*mc_ws_session_close_cb)(struct mc_ws_session *s, uint16_t code);

struct mc_ws_session_config {
    uint64_t max_message;      /* largest message from the client (0: MC_WS_DEFAULT_MAX_MESSAGE) */
    size_t max_queue;          /* 0: MC_WS_SESSION_MAX_QUEUE */
    size_t direct_max;         /* 0: MC_WS_SESSION_DIRECT_MAX */
    uint64_t ping_interval_ms; /* 0: MC_WS_SESSION_PING_MS */
    uint64_t idle_timeout_ms;  /* 0: MC_WS_SESSION_IDLE_MS */
    uint64_t close_timeout_ms; /* 0: MC_WS_SESSION_CLOSE_MS */
    mc_ws_session_message_cb on_message; /* NULL: client messages are dropped */
    mc_ws_session_close_cb on_close;     /* may be NULL */
    void *data;                          /* the owner's, see mc_ws_session_data() */
};

/* Answers a WebSocket upgrade request: refuses a disallowed Origin with 403, a bad handshake
 * with the status mc_ws_check_upgrade() gives (426 with Sec-WebSocket-Version), and a hub
 * that is shutting down with 503, each as error JSON from id; and returns NULL (req is then
 * answered). Otherwise writes the 101 response, takes the connection (mc_http_upgrade; req is
 * finished and must not be touched), and returns a session in hub. cfg is copied. The session
 * does not read until mc_ws_session_start(), so the owner can subscribe first; sends work at
 * once. The session frees itself after it ends and its connection is closed. */
struct mc_ws_session *mc_ws_session_accept(struct mc_http_request *req, struct mc_ws_hub *hub,
                                           const struct mc_ws_session_config *cfg, const char *id);

/* Starts reading: processes the bytes that came with the request head, then the socket.
 * Callbacks may run before it returns (the session may even end). */
void mc_ws_session_start(struct mc_ws_session *s);

/* The owner's pointer from the config (valid until after on_close). */
void *mc_ws_session_data(const struct mc_ws_session *s);

/* Sends one message (copied). Returns 0; MC_ECLOSED once the session is closing or ended;
 * MC_EINVAL for text that is not UTF-8; MC_ETOOBIG when it would pass the queue bound, in
 * which case the session has been closed with 1008 (and counted in the hub). */
int mc_ws_session_send(struct mc_ws_session *s, int is_text, const void *data, size_t len);

/* A frame several sessions send without copying: the frame header is built once and the
 * payload is referenced. release(ctx) runs once, when the last session let go of it. */
struct mc_ws_shared_frame;

/* Builds a FIN frame of opcode around len bytes at payload (kept alive by the caller's
 * release/ctx, which the frame now owns). Returns it with one reference for the caller. */
struct mc_ws_shared_frame *mc_ws_shared_frame_new(int opcode, const void *payload, size_t len,
                                                  mc_conn_release_cb release, void *ctx);
/* Takes one more reference; returns f. */
struct mc_ws_shared_frame *mc_ws_shared_frame_ref(struct mc_ws_shared_frame *f);
/* Drops one reference; the last one calls release(ctx) and frees f. NULL is a no-op. */
void mc_ws_shared_frame_unref(struct mc_ws_shared_frame *f);

/* Queues f (the session takes its own references; text payloads must be UTF-8: not checked
 * here). Returns as mc_ws_session_send() does. */
int mc_ws_session_send_shared(struct mc_ws_session *s, struct mc_ws_shared_frame *f);

/* Starts the close handshake with code and reason (see mc_ws_close; NULL for none). The
 * session ends now (on_close runs with code); the connection closes when the peer answers,
 * or after the close timeout. Returns 0, MC_EINVAL for a bad code, MC_ECLOSED if already
 * closing. */
int mc_ws_session_close(struct mc_ws_session *s, uint16_t code, const char *reason);

/* Outbound bytes queued or in flight (the measure of the queue bound). */
size_t mc_ws_session_pending(const struct mc_ws_session *s);

/* ---- Hub helpers beside hub.h (implemented in hub.c) ---- */

/* Sessions closed with 1008 for not keeping up, since the hub was created. */
uint64_t mc_ws_hub_slow_closes(const struct mc_ws_hub *hub);

/* Fan-out cache: a broker delivers one message to all its subscribers in a row, so the hub
 * remembers the last shared frame built (until the end of the loop turn). Returns it,
 * borrowed, when it wraps exactly payload/len, else NULL. */
struct mc_ws_shared_frame *mc_ws_hub_cached_frame(struct mc_ws_hub *hub, const void *payload,
                                                  size_t len);
/* Remembers f (takes a reference; drops the previous one). */
void mc_ws_hub_cache_frame(struct mc_ws_hub *hub, struct mc_ws_shared_frame *f);

#endif
