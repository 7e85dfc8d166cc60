/* The HTTP/1.1 client on the sidecar's own loop: per-node keep-alive pools, dial and total
 * timeouts, cancellation, llhttp response parsing, streaming both ways. Used by the health
 * checker, /rpc, the reverse proxy and (later) the etcd gateway backend. */
#ifndef MC_HTTP_CLIENT_H
#define MC_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "http/server.h"
#include "net/conn.h"
#include "util/buf.h"

#define MC_HTTP_CLIENT_MAX_HEAD (64 * 1024) /* response status line + headers -> MC_EPROTO */
#define MC_HTTP_CLIENT_MAX_HEADERS 100      /* response header count -> MC_EPROTO */

/* 0 fields take the defaults in brackets. */
struct mc_http_client_config {
    const struct mc_conn_type *transport; /* how nodes are dialled; NULL: TCP */
    unsigned max_idle_per_host;           /* idle keep-alive connections kept per address [16] */
    uint64_t idle_timeout_ms; /* an idle pooled connection is closed after this [60000] */
};

struct mc_http_response_head {
    int status;
    int http_major, http_minor;
    struct mc_http_header *headers; /* NUL-terminated; valid during on_head only */
    size_t header_count;
    int keep_alive;
    int chunked;
    int has_content_length;
    uint64_t content_length;
    int upgrade; /* 101 Switching Protocols */
};

struct mc_http_client;
struct mc_http_call;

/* err is 0 on a complete response, else a negative code: a libuv code such as
 * UV_ECONNREFUSED for a failed dial, MC_ETIMEDOUT, MC_ECANCELED never (cancel is silent),
 * MC_EPROTO for a malformed response, MC_ETOOBIG for a buffered body over its bound,
 * MC_EHEADER (before anything is dialed or sent) for a method that is not a token, a target
 * or header value holding CR, LF or whitespace where it cannot be, or a header name that is
 * not a token.
 * retryable is 1 when the request provably never reached the node: connect failure, or the
 * connection reset/closed before any byte of the response (e.g. a stale pooled connection). */
typedef void (*mc_http_call_done_cb)(struct mc_http_call *call, int err, int retryable, void *ctx);
typedef void (*mc_http_call_head_cb)(struct mc_http_call *call,
                                     const struct mc_http_response_head *head, void *ctx);
typedef void (*mc_http_call_body_cb)(struct mc_http_call *call, const char *data, size_t len,
                                     void *ctx);

struct mc_http_call_options {
    const char *address;                  /* "host:port" (numeric host or localhost) */
    const char *method;                   /* "GET", "POST", ... */
    const char *target;                   /* origin-form path and query, e.g. "/" */
    const struct mc_http_header *headers; /* sent as given; Host and Content-Length/
                                             Transfer-Encoding are added when absent */
    size_t header_count;
    const void *body; /* whole body (copied), when !stream_body */
    size_t body_len;
    int stream_body;          /* the body follows with mc_http_call_write / mc_http_call_end; sent
                                 chunked unless a Content-Length header is given */
    uint64_t dial_timeout_ms; /* 0: none */
    uint64_t idle_timeout_ms; /* after the head: longest silence between body bytes, not
                                 counting time the caller kept the call paused (0: none) */
    uint64_t timeout_ms;      /* whole call, from start to the last byte; 0: none */
    int timeout_to_head;      /* timeout_ms bounds only the wait for the response head,
                                 counted from the last body byte written with
                                 mc_http_call_write/_end (a proxy's uploads and downloads may
                                 then last as long as they need) */
    int buffer_body;          /* collect the response body; read it in on_done with
                                 mc_http_call_body() */
    uint64_t max_body;        /* bound for buffer_body (0: unbounded) */
    mc_http_call_head_cb on_head; /* optional */
    mc_http_call_body_cb on_body; /* optional; not called when buffer_body */
    mc_http_call_done_cb on_done; /* required; runs exactly once unless cancelled */
    void *ctx;
};

/* Allocates a client on net's loop (net must outlive it). config may be NULL (defaults).
 * Never NULL. Free it with mc_http_client_free. */
struct mc_http_client *mc_http_client_new(struct mc_net *net,
                                          const struct mc_http_client_config *config);
/* Cancels every call (no callbacks) and closes every connection; memory is released as the
 * loop runs the close callbacks. Accepts NULL. No call may be started afterwards. */
void mc_http_client_free(struct mc_http_client *client);

/* Starts a call; the options (and what they point to: headers, body, address) are copied.
 * Reuses an idle pooled connection to the address when there is one, else dials. Never NULL,
 * and on_done never runs inside this function: a bad address (MC_EINVAL, not retryable)
 * reports through on_done on the next loop turn. The call is freed after on_done returns
 * (or once cancelled), so the caller must drop its pointer then. */
struct mc_http_call *mc_http_call_start(struct mc_http_client *client,
                                        const struct mc_http_call_options *options);
/* Streaming upload: queues a copy of body bytes (one chunk when chunked). Returns 0, or
 * MC_ECLOSED once the body was ended, the call failed or it was not a stream_body call. */
int mc_http_call_write(struct mc_http_call *call, const void *data, size_t len);
/* Ends a streamed request body (the last chunk when chunked). Idempotent. */
void mc_http_call_end(struct mc_http_call *call);
/* Bytes of request queued to the node and not yet written (upload backpressure). */
size_t mc_http_call_pending(const struct mc_http_call *call);
/* Runs cb(call, ctx) once, the next time that queue drains after a write; register it when
 * mc_http_call_pending() is above your bound. NULL unregisters. */
void mc_http_call_on_drain(struct mc_http_call *call, void (*cb)(struct mc_http_call *, void *));
/* Pauses/resumes reading the response (download backpressure). Safe inside on_head/on_body:
 * no on_body runs between a pause and its resume; resume may deliver buffered bytes (and
 * even run on_done) before it returns. */
void mc_http_call_pause(struct mc_http_call *call);
void mc_http_call_resume(struct mc_http_call *call);
/* The buffered body (buffer_body), owned by the call and valid inside on_done. */
const struct mc_buf *mc_http_call_body(const struct mc_http_call *call);
/* Stops the call: no callback runs after this; the connection is closed (not pooled). Safe
 * from any callback of the call or from outside; a no-op inside on_done. */
void mc_http_call_cancel(struct mc_http_call *call);
/* Inside on_head that reported a 101 upgrade: takes the raw connection (still reading: the
 * caller sets data and on_read before returning, sets on_close, and closes it; free it from
 * on_close with mc_conn_free) and moves the bytes already received after the head
 * into *leftover (initialized here; the caller closes it). The call ends without on_done.
 * NULL (and an empty leftover) when there is no upgrade to take. */
struct mc_conn *mc_http_call_take_conn(struct mc_http_call *call, struct mc_buf *leftover);

#endif
