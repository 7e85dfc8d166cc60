/* The HTTP/1.x server: accepts connections, parses requests with llhttp (keep-alive,
 * pipelining, HTTP/1.0, chunked bodies), enforces the limits of SPEC section 11, routes by
 * exact path, and writes responses in request order. One request per connection is in
 * handling at a time; later pipelined requests wait in the input buffer, which keeps
 * responses ordered without a reorder queue. */
#ifndef MC_HTTP_SERVER_H
#define MC_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "net/conn.h"
#include "util/buf.h"

#define MC_HTTP_MAX_HEAD (64 * 1024)       /* whole request head -> 431 */
#define MC_HTTP_MAX_HEADER_LINE (8 * 1024) /* one header line -> 431 */
#define MC_HTTP_MAX_HEADERS 100            /* header count -> 431 */
#define MC_HTTP_HEAD_TIMEOUT_MS 10000      /* head not complete -> 408 */
#define MC_HTTP_BODY_TIMEOUT_MS 60000      /* no body progress -> 408 */
#define MC_HTTP_IDLE_TIMEOUT_MS 75000      /* idle keep-alive connection -> silent close */
/* Backpressure on a pipelining client: the next request is not read while more than this
 * much output is unsent, or once this many answers were queued since the output last
 * drained; it resumes when the client has taken everything (the kernel's send buffer keeps
 * the pipe full meanwhile). */
#define MC_HTTP_OUTPUT_HIGH_WATER (256 * 1024)
#define MC_HTTP_PIPELINE_BATCH 32

/* Method bits for route tables and Allow headers. */
enum {
    MC_HTTP_GET = 1 << 0,
    MC_HTTP_HEAD = 1 << 1,
    MC_HTTP_POST = 1 << 2,
    MC_HTTP_PUT = 1 << 3,
    MC_HTTP_DELETE = 1 << 4,
    MC_HTTP_OPTIONS = 1 << 5,
    MC_HTTP_PATCH = 1 << 6,
    MC_HTTP_OTHER = 1 << 7,
    MC_HTTP_ANY = 0xff,
};

struct mc_http_header {
    const char *name;
    const char *value;
};

struct mc_http_server;
struct mc_http_conn;
struct mc_http_request;

/* Runs a route. The handler answers now or later with one mc_http_respond* call (or takes
 * the connection over with mc_http_upgrade); until then req stays valid, unless the client
 * goes away, in which case req->on_abort runs and req must not be touched afterwards. */
typedef void (*mc_http_handler_cb)(struct mc_http_request *req, void *ctx);
typedef void (*mc_http_abort_cb)(struct mc_http_request *req);
/* Streaming routes get body bytes as they arrive, then (NULL, 0) at the end. */
typedef void (*mc_http_body_cb)(struct mc_http_request *req, const char *data, size_t len);
/* Observes every completed response (stats, access log). */
typedef void (*mc_http_observer_cb)(void *ctx, const struct mc_http_request *req);

enum {
    MC_HTTP_ROUTE_STREAM = 1 << 0, /* handler runs at end of head; body via on_body */
};

struct mc_http_route {
    const char *path; /* exact path; NULL marks the fallback (any other path) */
    unsigned methods; /* MC_HTTP_* bits the route answers; others get 405 + Allow */
    unsigned flags;
    mc_http_handler_cb handler;
    void *ctx;
};

struct mc_http_request {
    struct mc_http_conn *hc; /* private */
    struct mc_http_server *server;
    unsigned method_bit;
    const char *method_name;
    char *url; /* NUL-terminated request target */
    size_t url_len;
    const char *path; /* within url, not NUL-terminated at the '?' */
    size_t path_len;
    const char *query; /* after '?', NULL when absent */
    size_t query_len;
    struct mc_http_header *headers; /* NUL-terminated names and values */
    size_t header_count;
    int http_major, http_minor;
    int keep_alive;
    int upgrade;
    uint64_t content_length; /* when known (has_content_length) */
    int has_content_length, chunked;
    struct mc_buf body; /* buffered routes: the whole body */
    uint64_t start_ms;

    /* Set by the handler. */
    mc_http_abort_cb on_abort;
    mc_http_body_cb on_body;
    void *handler_data;

    /* Response bookkeeping (read by observers). */
    int status;
    uint64_t bytes_sent;
    int responded;
    int close_after;
};

struct mc_http_server_config {
    const char *address;                  /* "host:port" or ":port" */
    const struct mc_conn_type *transport; /* what accepted connections speak; NULL: TCP */
    const struct mc_http_route *routes;
    size_t route_count;
    uint64_t max_body_size;
    unsigned max_connections;
    const char *cors; /* comma list of origins, "*" for any; NULL or "" for none */
    FILE *access_log; /* NULL: off; not owned */
    mc_http_observer_cb observer;
    void *observer_ctx;
};

/* Allocates a server on net's loop; copies what it keeps from config (routes are referenced:
 * they must outlive the server). Returns NULL only for a bad CORS list. */
struct mc_http_server *mc_http_server_new(struct mc_net *net,
                                          const struct mc_http_server_config *config);
/* Binds and listens. 0, or a libuv error with a human line in err. */
int mc_http_server_listen(struct mc_http_server *s, char *err, size_t errlen);
/* The port actually bound (for ":0"). */
int mc_http_server_port(const struct mc_http_server *s);
/* Stops accepting, closes idle connections and asks busy ones to close after their
 * response; done(ctx) runs once every connection is gone (at once if none). Upgraded
 * connections are the upgrader's to close. */
void mc_http_server_drain(struct mc_http_server *s, void (*done)(void *ctx), void *ctx);
/* Closes every connection now and the listener; the server is freed after the loop runs the
 * close callbacks. */
void mc_http_server_free(struct mc_http_server *s);
/* Live connection count (HTTP, not upgraded). */
size_t mc_http_server_connections(const struct mc_http_server *s);

/* The client's address as text ("127.0.0.1"), into buf. */
void mc_http_request_peer(const struct mc_http_request *req, char *buf, size_t len);
/* Finds header name (case-insensitive) in headers[0..count); NULL when absent. */
const char *mc_http_headers_find(const struct mc_http_header *headers, size_t count,
                                 const char *name);
/* Finds a request header (case-insensitive); NULL when absent. */
const char *mc_http_request_header(const struct mc_http_request *req, const char *name);
/* The value of query parameter name, decoded by mc_url_form_value (see http/url.h) into
 * *value, a new string the caller frees: 0, MC_ENOTFOUND (absent) or MC_EINVAL (it decodes to a
 * NUL: answer 400 rather than let it name something else). */
int mc_http_query_param(const struct mc_http_request *req, const char *name, char **value);

/* Answers with a complete response. extra headers may be NULL. content_type may be NULL
 * (no Content-Type). The body is copied. */
void mc_http_respond(struct mc_http_request *req, int status, const char *content_type,
                     const struct mc_http_header *extra, size_t extra_count, const void *body,
                     size_t len);
/* Answers with go-micro's error JSON: {"id":id,"code":status,"detail":detail,"status":reason}. */
void mc_http_respond_error(struct mc_http_request *req, int status, const char *id,
                           const char *detail);
/* Appends the error JSON of mc_http_respond_error to out. */
void mc_http_error_json(struct mc_buf *out, const char *id, int code, const char *detail);
/* The same with detail[0..detail_len), which may hold NULs (escaped, never cut short). */
void mc_http_error_json_n(struct mc_buf *out, const char *id, int code, const char *detail,
                          size_t detail_len);
/* Appends "HTTP/1.1 <status> <reason>\r\n". */
void mc_http_status_line(struct mc_buf *out, int status);
/* The reason phrase for a status ("Not Found"); "Unknown" for others. */
const char *mc_http_reason(int status);

/* Raw responses, for the reverse proxy: the caller writes the status line and headers itself
 * (mc_http_cors_headers adds the CORS lines), then body bytes, then ends. keep_alive says
 * whether the response was framed so that the connection can carry another request. */
void mc_http_respond_raw_begin(struct mc_http_request *req, int status);
void mc_http_respond_raw_write(struct mc_http_request *req, const void *data, size_t len);
void mc_http_respond_raw_end(struct mc_http_request *req, int keep_alive);
/* An empty buffer owned by the server for building a response head without allocating; it
 * stays valid until the next call into the server (mc_http_respond* included). */
struct mc_buf *mc_http_scratch(struct mc_http_request *req);
/* Bytes queued to the client but not yet written (backpressure for raw writers). */
size_t mc_http_request_pending_output(const struct mc_http_request *req);
/* Runs cb(req) when the client's output queue has drained (one shot); NULL cancels. */
void mc_http_request_on_drain(struct mc_http_request *req, mc_http_abort_cb cb);
/* Appends the CORS header lines the request's Origin earns ("" when none). */
void mc_http_cors_headers(const struct mc_http_request *req, struct mc_buf *out);
/* Whether the request's Origin (if any) is allowed by --cors. No Origin: allowed. */
int mc_http_origin_allowed(const struct mc_http_request *req);
/* Pauses/resumes reading the request body from the client (streaming routes). */
void mc_http_request_pause(struct mc_http_request *req);
void mc_http_request_resume(struct mc_http_request *req);

/* Takes the connection over (WebSocket, proxied upgrade). The caller owns conn from now on:
 * it sets conn->data/on_read/on_close and must close it; leftover holds bytes that arrived
 * after the head (copied into *leftover, which the caller closes). The request is finished
 * for the server (observers see status 101). */
struct mc_conn *mc_http_upgrade(struct mc_http_request *req, struct mc_buf *leftover);
/* Frees a connection taken with mc_http_upgrade; call from its on_close callback. */
void mc_http_upgraded_conn_free(struct mc_conn *conn);

#endif
