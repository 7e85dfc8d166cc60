/* A connection: a byte stream with an ordered, batched output queue, over a transport chosen
 * by a vtable (plain TCP now; TLS slots in as another struct mc_conn_type, as Redis's
 * ConnectionType does). Owners never touch the libuv handle directly. */
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
/* The output queue became empty (used to resume a paused producer). */
typedef void (*mc_conn_drain_cb)(struct mc_conn *c);
/* The connection is closed; its memory may be released now. */
typedef void (*mc_conn_close_cb)(struct mc_conn *c);
/* Releases a referenced output segment once written (or dropped). */
typedef void (*mc_conn_release_cb)(void *ctx);

struct mc_conn_type {
    const char *name;
    int (*read_start)(struct mc_conn *c);
    int (*read_stop)(struct mc_conn *c);
    int (*write)(struct mc_conn *c, const uv_buf_t *bufs, unsigned count);
    void (*close)(struct mc_conn *c);
};

struct mc_conn_seg {
    const char *base;
    size_t len;
    mc_conn_release_cb release; /* NULL for owned copies (base is mc_free()d) */
    void *release_ctx;
    size_t cap; /* capacity of an owned copy, to append more into it */
};

struct mc_conn {
    uv_tcp_t tcp;
    uv_write_t write_req;
    uv_connect_t connect_req;
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
        flush_queued : 1;
    struct mc_conn *flush_prev, *flush_next;   /* in net->flush_list */
    struct mc_conn *linger_prev, *linger_next; /* in net->linger_list while lingering */
    uint64_t linger_deadline_ms;
    int lingering;
    void (*connect_cb)(struct mc_conn *c, int status);
};

extern const struct mc_conn_type mc_conn_tcp_type;

/* Initializes c (storage owned by the caller, which must stay valid until on_close) as a
 * TCP connection on net's loop. 0 or a libuv error. */
int mc_conn_init_tcp(struct mc_conn *c, struct mc_net *net);
/* Accepts a pending connection of server into c (after mc_conn_init_tcp). */
int mc_conn_accept(struct mc_conn *c, uv_stream_t *server);
/* Dials addr; cb(c, 0 or a libuv error) runs once. */
int mc_conn_connect(struct mc_conn *c, const struct sockaddr *addr,
                    void (*cb)(struct mc_conn *c, int status));
int mc_conn_read_start(struct mc_conn *c);
int mc_conn_read_stop(struct mc_conn *c);
/* Queues a copy of data. Nothing is sent until mc_conn_flush(). */
void mc_conn_write_copy(struct mc_conn *c, const void *data, size_t len);
/* Queues data by reference; release(ctx) runs once it is written or dropped. */
void mc_conn_write_ref(struct mc_conn *c, const void *data, size_t len, mc_conn_release_cb release,
                       void *ctx);
/* Hands everything queued to the transport (one writev per loop turn at most in flight). */
void mc_conn_flush(struct mc_conn *c);
/* Flushes at the end of this loop turn, so later writes of the same turn join the batch. */
void mc_conn_flush_soon(struct mc_conn *c);
/* Bytes queued or in flight: the measure producers use for backpressure. */
static inline size_t mc_conn_pending(const struct mc_conn *c)
{
    return c->queued_bytes;
}
/* Closes after the queue is flushed (graceful, at most MC_CONN_LINGER_MS: then the queue is
 * dropped), or at once when 'now' is set (dropping the queue). on_close runs exactly once, after
 * which the owner may free c. Idempotent. */
void mc_conn_close(struct mc_conn *c, int now);
/* Peer address as text ("127.0.0.1"), into buf; "-" when unknown. */
void mc_conn_peer_name(struct mc_conn *c, char *buf, size_t len);
/* Splits "host:port", ":port" or "[v6]:port" into host (brackets removed, may be empty; host_len
 * bytes including the NUL) and a port in 0..65535. The one host:port parser: every address the
 * sidecar reads (flags, registrations, /rpc's address) goes through it. Returns 0, or
 * MC_EINVAL (host and port untouched or partly written) for text without a port, a port that is
 * not a decimal number in range, or a host too long for the buffer. */
int mc_net_split_host_port(const char *text, char *host, size_t host_len, int *port);
/* Resolves "host:port", ":port" or "[v6]:port" (numeric hosts and "localhost") into out. */
int mc_net_parse_address(const char *text, struct sockaddr_storage *out);

#endif
