/* The protocol-neutral request and response: what routes and handlers see, whatever wire
 * protocol carried the request. A codec (HTTP/1 in http/h1.c; HTTP/2 would be a second one)
 * fills a struct mc_http_request from the wire and implements struct mc_http_stream_ops, which
 * turns the response API below back into wire bytes: the codec alone decides framing
 * (Content-Length or chunked), keep-alive and Connection: close, and that 204/304/HEAD
 * answers carry no body. No handler writes wire bytes. */
#ifndef MC_HTTP_REQUEST_H
#define MC_HTTP_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

struct mc_conn;
struct mc_cors;

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

/* A response body of unknown length (the codec frames it: chunked on HTTP/1.1, read to the
 * close on HTTP/1.0). */
#define MC_HTTP_LENGTH_UNKNOWN UINT64_MAX

struct mc_http_header {
    const char *name;
    const char *value;
};

struct mc_http_request;
typedef void (*mc_http_abort_cb)(struct mc_http_request *req);
/* Streaming routes get body bytes as they arrive, then (NULL, 0) at the end. */
typedef void (*mc_http_body_cb)(struct mc_http_request *req, const char *data, size_t len);

/* What a codec implements for one request; each entry is the function of the same role below.
 * Handlers never call these directly. */
struct mc_http_stream_ops {
    void (*respond)(struct mc_http_request *req, int status, const char *content_type,
                    const struct mc_http_header *extra, size_t extra_count, const void *body,
                    size_t len);
    void (*begin)(struct mc_http_request *req, int status, const struct mc_http_header *headers,
                  size_t count, uint64_t content_length);
    void (*write)(struct mc_http_request *req, const void *data, size_t len);
    void (*trailers)(struct mc_http_request *req, const struct mc_http_header *headers,
                     size_t count);
    void (*end)(struct mc_http_request *req, int complete);
    size_t (*pending_output)(const struct mc_http_request *req);
    void (*wait_drain)(struct mc_http_request *req, mc_http_abort_cb cb, uint64_t timeout_ms);
    void (*pause)(struct mc_http_request *req);
    void (*resume)(struct mc_http_request *req);
    void (*peer)(const struct mc_http_request *req, char *buf, size_t len);
    struct mc_conn *(*upgrade)(struct mc_http_request *req, int status,
                               const struct mc_http_header *headers, size_t count,
                               struct mc_buf *leftover);
    /* The --cors list of the server the request came in on (NULL: none). */
    const struct mc_cors *(*cors)(const struct mc_http_request *req);
};

/* Node addresses up to this size (with the NUL) are kept in the request itself: "[v6]:port"
 * fits, so the access log's upstream= costs no allocation per request. */
#define MC_HTTP_UPSTREAM_INLINE 64

struct mc_http_request {
    const struct mc_http_stream_ops *ops; /* the codec's; private */
    void *stream;                         /* the codec's state for this request; private */
    unsigned method_bit;
    unsigned upgrade : 1;            /* the client asks to switch protocols */
    unsigned has_content_length : 1; /* the body's length is content_length */
    unsigned chunked : 1;            /* a body of unknown length follows */
    unsigned responded : 1;          /* the response is complete (set by the codec) */
    unsigned continues : 1; /* goes on in another codec (Upgrade: h2c): its 101 is not logged */
    const char *method_name;
    char *url; /* NUL-terminated request target */
    size_t url_len;
    const char *path; /* within url, not NUL-terminated at the '?' */
    size_t path_len;
    const char *query; /* after '?', NULL when absent */
    size_t query_len;
    struct mc_http_header *headers; /* NUL-terminated names and values */
    size_t header_count;
    /* The first Content-Type field's value (NULL: none), noted by the codec as the head came
     * in: the handlers that read it (every /rpc call) do not search the headers. */
    const char *content_type;
    struct mc_http_header *trailers; /* after the body ends (chunked trailers); else NULL */
    size_t trailer_count;
    int http_major, http_minor;
    uint64_t content_length; /* when has_content_length */
    struct mc_buf body;      /* buffered routes: the whole body */
    uint64_t start_ms;

    /* Set by the handler. */
    mc_http_abort_cb on_abort;
    mc_http_body_cb on_body;
    void *handler_data;
    /* The node that answered (proxy, /rpc), for the access log; NULL when none. Points at
     * upstream_inline, or at an owned string when the address is longer: set and released only
     * with mc_http_request_set_upstream (NULL releases) or _give_upstream. */
    char *upstream;
    char upstream_inline[MC_HTTP_UPSTREAM_INLINE];

    /* Response bookkeeping (read by observers). */
    int status;
    uint64_t bytes_sent; /* body bytes, without framing */
    /* The route family for the stats (enum mc_stats_route; 0 "other"): the matched route's
     * MC_HTTP_ROUTE_FAMILY, which a handler that picks its path later (--handler=auto) may change.
     */
    unsigned char family;
};

/* Whether req is a gRPC call: a POST whose Content-Type is application/grpc, alone or with a
 * "+codec" or parameters. Cheap (the noted Content-Type, only for POSTs): every proxied request
 * and every HTTP/2 stream asks. */
int mc_http_request_is_grpc(const struct mc_http_request *req);

/* Finds header name (case-insensitive) in headers[0..count); NULL when absent. */
const char *mc_http_headers_find(const struct mc_http_header *headers, size_t count,
                                 const char *name);
/* Whether the request's Upgrade header lists protocol (case-insensitive token match). */
int mc_http_request_upgrade_to(const struct mc_http_request *req, const char *protocol);
/* Finds a request header (case-insensitive); NULL when absent. */
const char *mc_http_request_header(const struct mc_http_request *req, const char *name);
/* The value of query parameter name, decoded by mc_url_form_value (see http/url.h) into
 * *value, a new string the caller frees: 0, MC_ENOTFOUND (absent) or MC_EINVAL (it decodes to a
 * NUL: answer 400 rather than let it name something else). */
int mc_http_query_param(const struct mc_http_request *req, const char *name, char **value);
/* The client's address as text ("127.0.0.1"), into buf. */
void mc_http_request_peer(const struct mc_http_request *req, char *buf, size_t len);
/* Records the node that served the request (copied, into the request's inline room when it
 * fits; NULL clears it and frees any longer copy) for the access log. */
void mc_http_request_set_upstream(struct mc_http_request *req, const char *address);
/* The same, taking address (mc_malloc'd) over: the request frees it. For a handler that holds
 * the string already and is about to drop it (no copy on the proxy's hot path). */
void mc_http_request_give_upstream(struct mc_http_request *req, char *address);

/* ---- the response: either one mc_http_respond, or begin, write*, [trailers], end ---- */

/* Answers with a complete response of the sidecar's own (the codec adds the CORS headers the
 * request's Origin earns). extra headers may be NULL. content_type may be NULL (no
 * Content-Type). The body is copied. */
void mc_http_respond(struct mc_http_request *req, int status, const char *content_type,
                     const struct mc_http_header *extra, size_t extra_count, const void *body,
                     size_t len);
/* Starts a streamed response: status and headers as given (a proxied response: no CORS or
 * framing headers added but the codec's own; hop-by-hop and framing headers must not be in
 * headers). content_length is the body's length or MC_HTTP_LENGTH_UNKNOWN. */
void mc_http_response_begin(struct mc_http_request *req, int status,
                            const struct mc_http_header *headers, size_t count,
                            uint64_t content_length);
/* Body bytes (copied); dropped for answers that carry no body (HEAD, 204, 304). */
void mc_http_response_write(struct mc_http_request *req, const void *data, size_t len);
/* Trailer fields after the body (sent where the framing carries them; else dropped). */
void mc_http_response_trailers(struct mc_http_request *req, const struct mc_http_header *headers,
                               size_t count);
/* Ends the response. complete = 0 says the body was cut short (the upstream failed): the codec
 * makes that visible to the client (HTTP/1: no last chunk, and the connection closes). The
 * request is finished: req must not be touched afterwards by the handler. */
void mc_http_response_end(struct mc_http_request *req, int complete);

/* Bytes queued to the client but not yet written (backpressure for streamed responses). */
size_t mc_http_request_pending_output(const struct mc_http_request *req);
/* Runs cb(req) when the client's output queue has drained (one shot); NULL cancels. */
void mc_http_request_on_drain(struct mc_http_request *req, mc_http_abort_cb cb);
/* The same, bounded: when timeout_ms passes with none of the queued output taken by the
 * client, the connection is closed and the request aborted (on_abort runs instead of cb). */
void mc_http_request_on_drain_within(struct mc_http_request *req, mc_http_abort_cb cb,
                                     uint64_t timeout_ms);
/* Pauses/resumes reading the request body from the client (streaming routes). */
void mc_http_request_pause(struct mc_http_request *req);
void mc_http_request_resume(struct mc_http_request *req);

/* Answers status (101) with headers (sent as given, Connection and Upgrade included) and
 * detaches the client's transport from the HTTP layer, whose state for the connection is freed.
 * The caller owns the returned connection from now on: it sets conn->data/on_read/on_drain/
 * on_close, must close it, and frees it with mc_conn_free from on_close. Reading is
 * stopped. leftover receives the bytes that arrived after the head (initialized here; the
 * caller closes it). The request is finished (observers see the status). */
struct mc_conn *mc_http_upgrade(struct mc_http_request *req, int status,
                                const struct mc_http_header *headers, size_t count,
                                struct mc_buf *leftover);

#endif
