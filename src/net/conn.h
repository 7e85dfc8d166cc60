/* A connection: a byte stream with an ordered, batched output queue (and the bounded linger of
 * a graceful close), over a transport chosen by a vtable, as Redis's ConnectionType does. The
 * transport owns a connection's whole life on the wire: accept, connect, read, write, shutdown,
 * close, peer address and certificate, and any bytes it holds (TLS: decrypted records); this
 * file owns only what every transport shares. TCP is src/net/tcp.c; TLS is one more file
 * beside it. Owners never touch the libuv handle directly. */
#ifndef MC_NET_CONN_H
#define MC_NET_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Per-loop networking context: the one read buffer every connection reads into (bytes are
 * consumed or copied synchronously in the read callback, so sharing it is safe). */
#define MC_NET_READ_BUF_SIZE (64 * 1024)
struct mc_conn;
struct mc_net {
    uv_loop_t *loop;
    char read_buf[MC_NET_READ_BUF_SIZE];
    int read_buf_busy;
    /* Connections with output queued by mc_conn_flush_soon, flushed by one check handle at
     * the end of the loop turn (STYLE 13: a response head and body produced in one turn go
     * out in one write). The handle is created on first use and only active while needed. */
    uv_check_t flush_check;
    int flush_ready;
    struct mc_conn *flush_list;
    /* A connection's output written at once is reported (on_drain) from the same check, once
     * per connection per pass: a second one waits for the next pass, which this idle handle
     * brings without waiting for I/O (a pipelining client cannot hold the loop). */
    unsigned flush_pass;
    int in_flush_check; /* inside a pass (a pass is the last thing of a loop turn with output) */
    uv_idle_t drain_idle;
    int drain_idle_ready;
    /* Connections closing after their output is written (mc_conn_close(c, 0)), each with a
     * deadline: a peer that never reads must not hold a connection for ever. One timer for
     * them all, created on first use and only active while the list is not empty. */
    uv_timer_t linger_timer;
    int linger_ready;
    struct mc_conn *linger_list;
};

/* How long a graceful close may wait for the peer to take the queued output. */
#define MC_CONN_LINGER_MS 10000

/* Closes what the net created (its flush and linger handles); the loop must run once more. */
void mc_net_close(struct mc_net *net);

struct mc_conn;
/* nread > 0: data (valid only during the call); nread < 0: a libuv error or UV_EOF. */
typedef void (*mc_conn_read_cb)(struct mc_conn *c, const char *data, ssize_t nread);
/* The output queue became empty (used to resume a paused producer). Runs from the loop: after a
 * write request completes, or from the flush pass at the end of the loop turn when the output
 * went out at once; never inside the owner's own call on the connection. */
typedef void (*mc_conn_drain_cb)(struct mc_conn *c);
/* The connection is closed; its memory may be released now. */
typedef void (*mc_conn_close_cb)(struct mc_conn *c);
/* Releases a referenced output segment once written (or dropped). */
typedef void (*mc_conn_release_cb)(void *ctx);

/* A transport. Every operation but peer_cert is required. The asynchronous ones report back
 * through the mc_conn_transport_* functions below, never from inside the call. */
struct mc_conn_type {
    const char *name;
    /* Sets up c->io (and c->tstate, the transport's own state) on c->net's loop, for a
     * connection not yet accepted or dialled. 0 or a libuv error (then nothing to close). */
    int (*init)(struct mc_conn *c);
    /* Takes a pending connection of listener (a listening TCP stream: TLS runs over TCP). */
    int (*accept)(struct mc_conn *c, uv_stream_t *listener);
    /* Dials addr; the outcome goes to mc_conn_transport_connected, once (not when closed
     * first). Returns 0 or a libuv error (then no callback). */
    int (*connect)(struct mc_conn *c, const struct sockaddr *addr);
    /* Delivers plaintext to c->on_read until read_stop. */
    int (*read_start)(struct mc_conn *c);
    int (*read_stop)(struct mc_conn *c);
    /* Sends bufs (at most one write in flight; the bytes stay valid until it completes); the
     * outcome goes to mc_conn_transport_written. 0 or a libuv error (then no callback). */
    int (*write)(struct mc_conn *c, const uv_buf_t *bufs, unsigned count);
    /* Optional (NULL: none): writes what the socket takes now, without waiting or queueing;
     * returns the bytes written (possibly fewer than asked), or a libuv error (UV_EAGAIN: none
     * taken). Lets a flush that fits the socket buffer skip the write request, its completion
     * and the epoll re-arm libuv does after every completed request (see conn.c). */
    int (*try_write)(struct mc_conn *c, const uv_buf_t *bufs, unsigned count);
    /* Ends the sending side once no write is in flight (TCP FIN; TLS close_notify then FIN). */
    int (*shutdown)(struct mc_conn *c);
    /* Releases the transport; mc_conn_transport_closed runs once, on a later loop turn. A
     * write in flight completes (cancelled) before that. */
    void (*close)(struct mc_conn *c);
    /* The peer's address. 0 or a libuv error. */
    int (*peer_addr)(struct mc_conn *c, struct sockaddr_storage *out);
    /* Bytes already read from the socket and held by the transport, not yet given to
     * on_read (TLS: decrypted records); the socket will not signal them again. TCP: 0. */
    size_t (*pending)(const struct mc_conn *c);
    /* The peer's certificate (TLS: an X509 *, still owned by the transport), or NULL when the
     * transport has none (TCP) or the peer sent none. NULL slot: none. */
    const void *(*peer_cert)(struct mc_conn *c);
};

struct mc_conn_seg {
    const char *base;
    size_t len;
    mc_conn_release_cb release; /* NULL for owned copies (base is mc_free()d) */
    void *release_ctx;
    size_t cap; /* capacity of an owned copy, to append more into it */
};

struct mc_conn {
    /* The transport's socket and requests: a stream every transport so far runs over. */
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
    } io;
    uv_write_t write_req;
    uv_connect_t connect_req;
    void *tstate; /* the transport's own state (a TLS session); NULL for TCP */
    struct mc_net *net;
    const struct mc_conn_type *type;
    void *data; /* the owner's */
    mc_conn_read_cb on_read;
    mc_conn_drain_cb on_drain;
    mc_conn_close_cb on_close;
    struct mc_conn_seg *queue; /* not yet handed to the transport */
    size_t queue_len, queue_cap;
    struct mc_conn_seg *inflight; /* being written */
    size_t inflight_len, inflight_cap;
    size_t queued_bytes; /* queue + inflight */
    char *spare;         /* a released owned segment kept for the next write */
    unsigned writing : 1, reading : 1, closing : 1, close_when_flushed : 1, connected : 1,
        flush_queued : 1, transport_closing : 1, shutdown_when_flushed : 1, drain_due : 1;
    struct mc_conn *flush_prev, *flush_next;   /* in net->flush_list */
    unsigned drain_pass;                       /* the flush pass that last ran on_drain */
    struct mc_conn *linger_prev, *linger_next; /* in net->linger_list while lingering */
    uint64_t linger_deadline_ms;
    int lingering;
    void (*connect_cb)(struct mc_conn *c, int status);
};

/* Plain TCP (src/net/tcp.c), the default of the HTTP server and client. */
extern const struct mc_conn_type mc_conn_tcp_type;

/* Initializes c (storage owned by the caller, which must stay valid until on_close) as a
 * connection of transport type (NULL: TCP) on net's loop. 0 or a libuv error (then c holds
 * nothing to close). */
int mc_conn_init(struct mc_conn *c, struct mc_net *net, const struct mc_conn_type *type);
/* Accepts a pending connection of listener into c (after mc_conn_init). */
int mc_conn_accept(struct mc_conn *c, uv_stream_t *listener);
/* Dials addr; cb(c, 0 or a libuv error) runs once, unless c is closed first. */
int mc_conn_connect(struct mc_conn *c, const struct sockaddr *addr,
                    void (*cb)(struct mc_conn *c, int status));
int mc_conn_read_start(struct mc_conn *c);
int mc_conn_read_stop(struct mc_conn *c);
/* Queues a copy of data. Nothing is sent until mc_conn_flush(). */
void mc_conn_write_copy(struct mc_conn *c, const void *data, size_t len);
/* Queues data by reference; release(ctx) runs once it is written or dropped. */
void mc_conn_write_ref(struct mc_conn *c, const void *data, size_t len, mc_conn_release_cb release,
                       void *ctx);
/* Hands everything queued to the transport: written at once when the socket takes it (no write
 * request), else the rest through one write request (at most one in flight). A peer found gone
 * closes the connection (on_close follows, as for a failed write request). */
void mc_conn_flush(struct mc_conn *c);
/* Flushes at the end of this loop turn, so later writes of the same turn join the batch. */
void mc_conn_flush_soon(struct mc_conn *c);
/* From on_drain: runs on_drain again at the next flush pass, on a later loop turn, rather
 * than now (an owner that bounds its work per loop turn). */
void mc_conn_drain_later(struct mc_conn *c);
/* Bytes queued or in flight: the measure producers use for backpressure. */
static inline size_t mc_conn_pending(const struct mc_conn *c)
{
    return c->queued_bytes;
}
/* Frees a connection that is its own heap block, as every connection the HTTP layer hands over
 * is (mc_http_upgrade on the server, mc_http_call_take_conn on the client: one way whichever
 * side made it). Call from the connection's on_close. */
void mc_conn_free(struct mc_conn *c);
/* Closes after the queue is flushed (graceful, at most MC_CONN_LINGER_MS: then the queue is
 * dropped), or at once when 'now' is set (dropping the queue). on_close runs exactly once, after
 * which the owner may free c. Idempotent. */
void mc_conn_close(struct mc_conn *c, int now);
/* Ends the sending side once everything queued is written (reading goes on). Idempotent. */
void mc_conn_shutdown(struct mc_conn *c);
/* Peer address as text ("127.0.0.1"), into buf; "-" when unknown. */
void mc_conn_peer_name(struct mc_conn *c, char *buf, size_t len);
/* Bytes the transport holds for on_read that the socket will not signal again (see
 * mc_conn_type.pending): an owner that stopped reading must not wait on the socket for them. */
static inline size_t mc_conn_transport_pending(const struct mc_conn *c)
{
    return c->type->pending(c);
}
/* The peer's certificate (see mc_conn_type.peer_cert), NULL for TCP. Owned by the transport. */
const void *mc_conn_peer_cert(struct mc_conn *c);

/* For transports only: the completions of their asynchronous operations. */
void mc_conn_transport_connected(struct mc_conn *c, int status);
void mc_conn_transport_written(struct mc_conn *c, int status);
void mc_conn_transport_closed(struct mc_conn *c);
/* Splits "host:port", ":port" or "[v6]:port" into host (brackets removed, may be empty; host_len
 * bytes including the NUL) and a port in 0..65535. The one host:port parser: every address the
 * sidecar reads (flags, registrations, /rpc's address) goes through it. Returns 0, or
 * MC_EINVAL (host and port untouched or partly written) for text without a port, a port that is
 * not a decimal number in range, or a host too long for the buffer. */
int mc_net_split_host_port(const char *text, char *host, size_t host_len, int *port);
/* Resolves "host:port", ":port" or "[v6]:port" (numeric hosts and "localhost") into out. */
int mc_net_parse_address(const char *text, struct sockaddr_storage *out);

#endif
