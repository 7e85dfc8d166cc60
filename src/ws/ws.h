/* An I/O-free RFC 6455 server codec over wslay: bytes from the client go in through
 * mc_ws_feed(), whole messages and the close come out through callbacks, and every byte to
 * send leaves through the write callback. No sockets, no event loop, no timers: the glue
 * owns those (SPEC 3.4: pings every 54 s, idle close after 60 s). */
#ifndef MC_WS_WS_H
#define MC_WS_WS_H

#include <stddef.h>
#include <stdint.h>

/* Opcodes (RFC 6455 5.2), for mc_ws_frame_header(). */
#define MC_WS_OP_TEXT 0x1
#define MC_WS_OP_BINARY 0x2
#define MC_WS_OP_CLOSE 0x8
#define MC_WS_OP_PING 0x9
#define MC_WS_OP_PONG 0xA

/* Close codes the codec sends itself. */
#define MC_WS_CLOSE_NORMAL 1000
#define MC_WS_CLOSE_GOING_AWAY 1001
#define MC_WS_CLOSE_PROTOCOL 1002
#define MC_WS_CLOSE_NO_STATUS 1005 /* reported, never sent: the peer's close had no code */
#define MC_WS_CLOSE_BAD_DATA 1007
#define MC_WS_CLOSE_POLICY 1008
#define MC_WS_CLOSE_TOO_BIG 1009

/* Largest message accepted when the caller sets no limit (SPEC: --broker_max_message). */
#define MC_WS_DEFAULT_MAX_MESSAGE (1u << 20)
/* Largest close reason a close frame can carry (125 - 2 bytes of code). */
#define MC_WS_MAX_CLOSE_REASON 123

/* A whole message from the peer: fragments reassembled, text already valid UTF-8. data is
 * valid only during the call (never NULL, even when len is 0). */
typedef void (*mc_ws_message_cb)(void *ctx, int is_text, const uint8_t *data, size_t len);
/* The connection is closing, reported once per codec: the peer's close (its code, or 1005
 * when it sent none, and its reason) after our echo was written, or the code we sent when
 * we failed the connection for a protocol error. reason is valid only during the call. */
typedef void (*mc_ws_close_cb)(void *ctx, uint16_t code, const char *reason, size_t len);
/* Bytes to put on the wire, in order. The glue copies them (they are valid only during the
 * call) and must not block or fail; it may be called from every mc_ws_* call below. */
typedef void (*mc_ws_write_cb)(void *ctx, const void *data, size_t len);
/* A ping from the peer (payload unmasked, at most 125 bytes, valid only during the call),
 * reported only while the codec may still send. The glue answers it when it chooses, with
 * mc_ws_frame_header(MC_WS_OP_PONG) and the same payload: RFC 6455 5.5.3 lets it answer
 * only the latest of several pings, which is what keeps a ping flood from a peer that
 * never reads from queueing a pong per ping. */
typedef void (*mc_ws_ping_cb)(void *ctx, const uint8_t *payload, size_t len);

struct mc_ws_callbacks {
    mc_ws_message_cb on_message;
    mc_ws_close_cb on_close; /* may be NULL */
    mc_ws_write_cb write;
    mc_ws_ping_cb on_ping; /* NULL: the codec writes a pong for every ping at once */
};

struct mc_ws_limits {
    uint64_t max_message; /* bytes of one reassembled message; over it the codec closes 1009 */
};

struct mc_ws;

/* Creates a server-side codec for a connection whose 101 response has been written. cbs is
 * copied (on_message and write are required); ctx is passed to every callback; limits may
 * be NULL for the defaults. Never returns NULL (out of memory aborts). Free with
 * mc_ws_free(). */
struct mc_ws *mc_ws_new(const struct mc_ws_callbacks *cbs, void *ctx,
                        const struct mc_ws_limits *limits);

/* Frees ws and anything queued in it; NULL is fine. May be called from inside a callback:
 * the memory is then released when the mc_ws_* call that made the callback returns, and
 * no further callback is made. */
void mc_ws_free(struct mc_ws *ws);

/* Processes all len bytes the client sent, calling on_message for each complete message,
 * answering pings with pongs (or reporting them to on_ping), echoing the peer's close then
 * reporting it with on_close, and on a protocol violation writing a close frame with its code (1002
 * framing, 1007 UTF-8, 1009 too big) then reporting it. Bytes after a close are ignored. data is
 * borrowed for the call. Returns 0, MC_EPROTO if the peer violated the protocol, or
 * MC_ETOOBIG if a message passed max_message (in both cases now or earlier; the close
 * frame has been written and mc_ws_want_close_connection() is 1). */
int mc_ws_feed(struct mc_ws *ws, const uint8_t *data, size_t len);

/* Sends one unfragmented message (copied). Text must be valid UTF-8. Returns 0, MC_EINVAL
 * for bad text, or MC_ECLOSED once a close has been sent or queued. */
int mc_ws_send(struct mc_ws *ws, int is_text, const void *data, size_t len);

/* Sends a ping with an empty payload (the peer's pong is consumed silently; any input
 * proves the peer alive). Returns 0 or MC_ECLOSED. */
int mc_ws_ping(struct mc_ws *ws);

/* Starts the close handshake: sends a close frame with code (1000..1003, 1007..1014 or
 * 3000..4999) and reason (UTF-8, at most MC_WS_MAX_CLOSE_REASON bytes; NULL for none).
 * Frames still arriving are processed until the peer's close, which is then reported with
 * on_close. Returns 0, MC_EINVAL for a bad code or reason, MC_ECLOSED if a close was
 * already sent or queued. */
int mc_ws_close(struct mc_ws *ws, uint16_t code, const char *reason);

/* Returns 1 when the glue should close the TCP connection once its output is flushed: our
 * close has been written and either the peer's close arrived or we failed the connection
 * (RFC 6455 7.1.1: the server closes TCP first). Else 0. */
int mc_ws_want_close_connection(const struct mc_ws *ws);

/* Returns 1 while data frames may still be sent (no close sent, queued or received), else 0.
 * The fan-out path checks it before writing mc_ws_frame_header() + payload itself. */
int mc_ws_can_send(const struct mc_ws *ws);

/* Writes the header of an unmasked server frame with FIN set, the given opcode and
 * payload_len to out and returns its size (2, 4 or 10). For fan-out without copying: the
 * glue writes this header then one shared payload on many connections. That is only
 * correct between whole frames; it holds here because the codec always drives wslay's send
 * path to completion before returning (the write callback never refuses bytes), so no
 * partial frame is ever pending when control returns to the glue. Do not call it from
 * inside a write callback. */
size_t mc_ws_frame_header(uint8_t out[10], int opcode, uint64_t payload_len);

#endif
