/* The HTTP/2 client on the sidecar's own loop (nghttp2 does the framing, HPACK and flow
 * control): per-node pools of multiplexed connections (h2c by prior knowledge over TCP, h2 by
 * ALPN over TLS), many streams per connection and a new connection only past the node's
 * SETTINGS_MAX_CONCURRENT_STREAMS, request and response bodies streamed both ways with flow
 * control mapped to back-pressure, trailers both ways, RST_STREAM CANCEL on cancel, GOAWAY
 * handling. Used by the gRPC proxy (src/api/grpc_api.c). */
#ifndef MC_HTTP_H2_CLIENT_H
#define MC_HTTP_H2_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "http/request.h"
#include "net/conn.h"

/* Bounds of a response head or trailer block from a node (names + values): past either the
 * stream is reset and fails with MC_EPROTO. */
#define MC_H2_CLIENT_MAX_HEAD (64 * 1024)
#define MC_H2_CLIENT_MAX_HEADERS 100
/* The stream window the client grants a node: the most response bytes it ever holds for one
 * stream whose reader is paused (one window per stream). */
#define MC_H2_CLIENT_STREAM_WINDOW (256 * 1024)

/* 0 fields take the defaults in brackets. */
struct mc_h2_client_config {
    /* How "secure" nodes are dialled: secure_transport(secure_ctx) returns a TLS type offering
     * h2 by ALPN (mc_tls_client_new with alpn_h2), asked for on the first secure dial, so a
     * sidecar that never calls such a node builds no TLS context (OpenSSL's tables are some
     * 3.5 MiB of RSS). A NULL callback or result: secure streams fail with MC_EINVAL. */
    const struct mc_conn_type *(*secure_transport)(void *secure_ctx);
    void *secure_ctx;
    /* How plain (h2c) nodes are dialled [NULL: TCP]; the fuzz target's in-memory transport. */
    const struct mc_conn_type *transport;
    unsigned max_conns_per_host; /* connections per node address, busy or idle [8] */
    uint64_t idle_timeout_ms;    /* a connection without streams is closed after this [60000] */
    uint64_t connect_timeout_ms; /* dial + TLS handshake + the node's SETTINGS [10000] */
};

struct mc_h2_client;
struct mc_h2_call;

/* The response head: the final (non-1xx) HEADERS of the stream. end_stream says the stream
 * ended with it (a trailers-only response, as gRPC errors are): no data and no trailers follow.
 * Names are lower-case, pseudo-headers left out; valid during the call only. */
struct mc_h2_response_head {
    int status;
    const struct mc_http_header *headers;
    size_t header_count;
    int end_stream;
};

/* How a stream ended. err 0: complete (trailers, maybe none). Else a negative code: a libuv
 * code for a failed dial, MC_ETIMEDOUT (the dial or handshake took longer than
 * connect_timeout_ms), MC_EPROTO (the node broke the protocol, or did not negotiate h2),
 * MC_ECLOSED (the connection went away), MC_ECANCELED (the node reset the stream: reset_code
 * holds its RST_STREAM code). retryable is 1 only when the node provably never saw the
 * request: the dial failed, the connection was lost before the request's HEADERS were
 * written, the node refused the stream (REFUSED_STREAM), or a GOAWAY's last stream id was
 * below it. Trailers valid during the call only. */
struct mc_h2_done {
    int err;
    int retryable;
    uint32_t reset_code;
    const struct mc_http_header *trailers;
    size_t trailer_count;
};

typedef void (*mc_h2_head_cb)(struct mc_h2_call *s, const struct mc_h2_response_head *head,
                              void *ctx);
typedef void (*mc_h2_data_cb)(struct mc_h2_call *s, const char *data, size_t len, void *ctx);
/* Runs exactly once unless the stream was cancelled; the stream is freed when it returns. */
typedef void (*mc_h2_done_cb)(struct mc_h2_call *s, const struct mc_h2_done *done, void *ctx);
typedef void (*mc_h2_drain_cb)(struct mc_h2_call *s, void *ctx);

struct mc_h2_call_options {
    const char *address; /* "host:port" of the node */
    int secure;          /* dial with the secure transport (h2 by ALPN) */
    const char *method;  /* a token */
    const char *scheme;  /* "http" / "https" */
    const char *authority;
    const char *path; /* non-empty, no CR, LF, NUL, space */
    /* Regular headers, sent as given but for their names lower-cased; hop-by-hop ones (but
     * "te: trailers") and Host are left out. A name that is no token or a value with CR, LF or
     * NUL fails the stream with MC_EHEADER before anything is sent. */
    const struct mc_http_header *headers;
    size_t header_count;
    int end_stream;        /* no body: the HEADERS end the request */
    mc_h2_head_cb on_head; /* optional */
    mc_h2_data_cb on_data; /* optional */
    mc_h2_done_cb on_done; /* required */
    void *ctx;
};

/* A client on net's loop (net must outlive it); config may be NULL. Never NULL. */
struct mc_h2_client *mc_h2_client_new(struct mc_net *net, const struct mc_h2_client_config *config);
/* Fails every stream (no callbacks: as if cancelled) and closes every connection; memory is
 * released by the close callbacks as the loop runs. Accepts NULL. */
void mc_h2_client_free(struct mc_h2_client *client);

/* Starts a stream: the options and what they point to are copied. Picks a pooled connection
 * to the address with room under the node's concurrent-stream limit, else dials a new one
 * (up to max_conns_per_host; past that the stream waits on the least loaded connection, as
 * nghttp2 queues it). Never NULL; on_done never runs inside this call (a refused header or a
 * bad address report on the next loop turn). The stream is freed after on_done returns or
 * once cancelled: drop the pointer then. */
struct mc_h2_call *mc_h2_call_start(struct mc_h2_client *client,
                                    const struct mc_h2_call_options *options);
/* Queues a copy of request body bytes (sent as the node's windows allow). Returns 0, or
 * MC_ECLOSED once the body was ended or the stream failed. */
int mc_h2_call_write(struct mc_h2_call *s, const void *data, size_t len);
/* Ends the request body, with trailers (checked as headers are; NULL/0: none). Returns 0, or
 * MC_EHEADER (nothing ended: cancel the stream) or MC_ECLOSED. Idempotent once ended. */
int mc_h2_call_end(struct mc_h2_call *s, const struct mc_http_header *trailers, size_t count);
/* Request body bytes queued and not yet framed (upload back-pressure). */
size_t mc_h2_call_pending(const struct mc_h2_call *s);
/* Runs cb(s, ctx) once, when the queued body has all been framed; NULL unregisters. */
void mc_h2_call_on_drain(struct mc_h2_call *s, mc_h2_drain_cb cb);
/* Pauses/resumes the response (download back-pressure): while paused, the bytes delivered are
 * not given back to the node's window, so it sends at most one window more. */
void mc_h2_call_pause(struct mc_h2_call *s);
void mc_h2_call_resume(struct mc_h2_call *s);
/* Stops the stream: RST_STREAM CANCEL to the node (when it was sent), no callback afterwards.
 * Safe from the stream's callbacks (a no-op inside on_done) and from outside. */
void mc_h2_call_cancel(struct mc_h2_call *s);

#endif
