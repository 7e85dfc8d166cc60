/* HTTP/1.x server over mc_conn and llhttp. */
#include "http/server.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <llhttp.h>

#include "http/url.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"

/* After an answer given before the request body ended (a streaming handler's early answer),
 * the rest of the body is read and dropped; each piece must come within this, else the
 * connection closes (a client that never finishes its body keeps no slot). */
#define HC_DISCARD_TIMEOUT_MS 5000

enum hc_state {
    HC_WAIT_HEAD, /* between requests or inside a head */
    HC_READ_BODY, /* buffered route: reading the body */
    HC_HANDLING,  /* dispatched; waiting for the handler's response */
    HC_UPGRADED,  /* taken over by mc_http_upgrade */
    HC_CLOSED,
};

enum hc_token { TOK_NONE, TOK_URL, TOK_FIELD, TOK_VALUE };

struct mc_http_conn {
    struct mc_conn conn;
    uv_timer_t timer;
    llhttp_t parser;
    struct mc_http_server *server;
    struct mc_buf inbuf; /* received, not yet parsed */
    struct mc_http_request *req;
    enum hc_state state;
    enum hc_token last_token;
    struct mc_buf raw;      /* url and header strings, each NUL-terminated */
    size_t *header_offsets; /* (name, value) offset pairs into raw */
    size_t header_offsets_cap;
    size_t header_count;
    size_t head_bytes;
    size_t line_bytes;
    int error_status;         /* set by a parser callback that refuses the request */
    const char *error_detail; /* its reason, when llhttp's own would not say it */
    unsigned host_count;      /* Host header fields in this head (RFC 9112 3.2) */
    int handles_open;
    unsigned answered; /* responses finished since the client last took all our output */
    unsigned parser_paused : 1, message_done : 1, user_paused : 1, processing : 1, peer_eof : 1,
        fresh : 1, dispatch_due : 1, counted : 1, finish_due : 1, output_wait : 1;
    const struct mc_http_route *route;
    int route_status; /* 404/405/200 decided at head time, answered at message end */
    mc_http_abort_cb drain_cb;
    struct mc_http_conn *prev, *next;
    char peer[48]; /* the client's address, looked up once */
};

struct cors_origin {
    char *origin;
};

struct mc_http_server {
    struct mc_net *net;
    const struct mc_conn_type *transport;
    uv_tcp_t listener;
    int listening;
    char *address;
    const struct mc_http_route *routes;
    size_t route_count;
    uint64_t max_body_size;
    unsigned max_connections;
    int cors_any;
    char **cors;
    size_t cors_count;
    FILE *access_log;
    mc_http_observer_cb observer;
    void *observer_ctx;
    llhttp_settings_t settings;
    struct mc_http_conn *conns;
    size_t conn_count;     /* HTTP connections (not upgraded) */
    struct mc_buf scratch; /* response heads are built here, then copied to the conn */
    size_t open_count;     /* every connection still holding memory */
    int draining, freeing;
    void (*drained)(void *ctx);
    void *drained_ctx;
    int port;
};

static void process(struct mc_http_conn *hc);
static void finish_request(struct mc_http_conn *hc);

/* The last step of freeing: every connection and the listener are closed. */
static void server_release(struct mc_http_server *s)
{
    mc_buf_close(&s->scratch);
    mc_free(s);
}
static void conn_close(struct mc_http_conn *hc, int now);
static size_t feed(struct mc_http_conn *hc, const char *data, size_t len);

/* ---------- small helpers ---------- */

const char *mc_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Request Entity Too Large";
    case 414:
        return "Request URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

static void json_string(struct mc_buf *out, const char *s)
{
    mc_buf_append(out, "\"", 1);
    mc_buf_append_json_escaped(out, s);
    mc_buf_append(out, "\"", 1);
}

void mc_http_error_json(struct mc_buf *out, const char *id, int code, const char *detail)
{
    mc_http_error_json_n(out, id, code, detail ? detail : "", detail ? strlen(detail) : 0);
}

void mc_http_error_json_n(struct mc_buf *out, const char *id, int code, const char *detail,
                          size_t detail_len)
{
    mc_buf_append_str(out, "{\"id\":");
    json_string(out, id);
    mc_buf_appendf(out, ",\"code\":%d,\"detail\":\"", code);
    mc_buf_append_json_escaped_n(out, detail, detail_len);
    mc_buf_append_str(out, "\",\"status\":");
    json_string(out, mc_http_reason(code));
    mc_buf_append_str(out, "}");
}

void mc_http_status_line(struct mc_buf *out, int status)
{
    mc_buf_append_str(out, "HTTP/1.1 ");
    mc_buf_append_uint(out, (unsigned)status);
    mc_buf_append(out, " ", 1);
    mc_buf_append_str(out, mc_http_reason(status));
    mc_buf_append_str(out, "\r\n");
}

static unsigned method_bit(int method)
{
    switch (method) {
    case HTTP_GET:
        return MC_HTTP_GET;
    case HTTP_HEAD:
        return MC_HTTP_HEAD;
    case HTTP_POST:
        return MC_HTTP_POST;
    case HTTP_PUT:
        return MC_HTTP_PUT;
    case HTTP_DELETE:
        return MC_HTTP_DELETE;
    case HTTP_OPTIONS:
        return MC_HTTP_OPTIONS;
    case HTTP_PATCH:
        return MC_HTTP_PATCH;
    default:
        return MC_HTTP_OTHER;
    }
}

static void append_allow(struct mc_buf *out, unsigned methods)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{MC_HTTP_GET, "GET"},    {MC_HTTP_HEAD, "HEAD"},     {MC_HTTP_POST, "POST"},
                 {MC_HTTP_PUT, "PUT"},    {MC_HTTP_DELETE, "DELETE"}, {MC_HTTP_OPTIONS, "OPTIONS"},
                 {MC_HTTP_PATCH, "PATCH"}};
    if (methods & MC_HTTP_GET)
        methods |= MC_HTTP_HEAD;
    methods |= MC_HTTP_OPTIONS;
    int first = 1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (methods & names[i].bit) {
            mc_buf_appendf(out, "%s%s", first ? "" : ", ", names[i].name);
            first = 0;
        }
    }
}

const char *mc_http_headers_find(const struct mc_http_header *headers, size_t count,
                                 const char *name)
{
    /* The first letter rules most headers out without a call (this runs per request). */
    int first = tolower((unsigned char)name[0]);
    for (size_t i = 0; i < count; i++)
        if (tolower((unsigned char)headers[i].name[0]) == first &&
            strcasecmp(headers[i].name, name) == 0)
            return headers[i].value;
    return NULL;
}

const char *mc_http_request_header(const struct mc_http_request *req, const char *name)
{
    return mc_http_headers_find(req->headers, req->header_count, name);
}

int mc_http_query_param(const struct mc_http_request *req, const char *name, char **value)
{
    if (!req->query) {
        *value = NULL;
        return MC_ENOTFOUND;
    }
    return mc_url_form_value(req->query, req->query_len, name, value);
}

static const char *conn_peer(struct mc_http_conn *hc)
{
    if (!hc->peer[0])
        mc_conn_peer_name(&hc->conn, hc->peer, sizeof hc->peer);
    return hc->peer;
}

void mc_http_request_peer(const struct mc_http_request *req, char *buf, size_t len)
{
    /* a bounded copy, not snprintf: the proxy asks for every request (X-Forwarded-For) */
    if (len == 0)
        return;
    const char *peer = conn_peer(req->hc);
    size_t n = strnlen(peer, len - 1);
    memcpy(buf, peer, n);
    buf[n] = '\0';
}

/* ---------- CORS ---------- */

int mc_http_origin_allowed(const struct mc_http_request *req)
{
    const char *origin = mc_http_request_header(req, "Origin");
    if (!origin)
        return 1;
    struct mc_http_server *s = req->server;
    if (s->cors_any)
        return 1;
    for (size_t i = 0; i < s->cors_count; i++)
        if (strcmp(s->cors[i], origin) == 0)
            return 1;
    return 0;
}

void mc_http_cors_headers(const struct mc_http_request *req, struct mc_buf *out)
{
    const char *origin = mc_http_request_header(req, "Origin");
    if (!origin || !mc_http_origin_allowed(req))
        return;
    mc_buf_appendf(out,
                   "Access-Control-Allow-Origin: %s\r\n"
                   "Access-Control-Allow-Credentials: true\r\n"
                   "Access-Control-Allow-Methods: POST, GET, OPTIONS, PUT, DELETE\r\n"
                   "Access-Control-Allow-Headers: Content-Type, Content-Length, Accept-Encoding, "
                   "X-CSRF-Token, Authorization\r\n",
                   origin);
}

static int parse_cors(struct mc_http_server *s, const char *list)
{
    if (!list)
        return 0;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *trim = end;
        while (trim > p && trim[-1] == ' ')
            trim--;
        if (trim - p == 1 && *p == '*') {
            s->cors_any = 1;
        } else {
            for (const char *q = p; q < trim; q++)
                if ((unsigned char)*q < 0x21 || (unsigned char)*q > 0x7e)
                    return -1;
            s->cors = mc_realloc(s->cors, (s->cors_count + 1) * sizeof *s->cors);
            s->cors[s->cors_count++] = mc_strndup(p, (size_t)(trim - p));
        }
        p = end;
    }
    return 0;
}

/* ---------- requests ---------- */

static void request_free(struct mc_http_request *req)
{
    if (!req)
        return;
    mc_buf_close(&req->body);
    mc_free(req->headers);
    mc_free(req);
}

static void reset_head_state(struct mc_http_conn *hc)
{
    mc_buf_reset(&hc->raw);
    hc->header_count = 0;
    hc->head_bytes = 0;
    hc->line_bytes = 0;
    hc->last_token = TOK_NONE;
    hc->error_status = 0;
    hc->error_detail = NULL;
    hc->host_count = 0;
    hc->route = NULL;
    hc->route_status = 0;
    hc->message_done = 0;
}

static void on_timer(uv_timer_t *t);

static void arm_timer(struct mc_http_conn *hc, uint64_t ms)
{
    uv_timer_start(&hc->timer, on_timer, ms, 0);
}

/* ---------- llhttp callbacks ---------- */

static struct mc_http_conn *hc_of(llhttp_t *p)
{
    return p->data;
}

static int count_head(struct mc_http_conn *hc, size_t len, int line)
{
    hc->head_bytes += len;
    if (line)
        hc->line_bytes += len;
    if (hc->head_bytes > MC_HTTP_MAX_HEAD || hc->line_bytes > MC_HTTP_MAX_HEADER_LINE) {
        hc->error_status = 431;
        return HPE_USER;
    }
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    struct mc_http_conn *hc = hc_of(p);
    reset_head_state(hc);
    hc->req = mc_calloc(1, sizeof *hc->req);
    hc->req->hc = hc;
    hc->req->server = hc->server;
    hc->req->start_ms = uv_now(hc->server->net->loop);
    mc_buf_init(&hc->req->body);
    if (hc->state == HC_WAIT_HEAD && !hc->fresh)
        arm_timer(hc, MC_HTTP_HEAD_TIMEOUT_MS); /* a new head started: 10 s to finish it */
    hc->fresh = 0;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct mc_http_conn *hc = hc_of(p);
    hc->last_token = TOK_URL;
    mc_buf_append(&hc->raw, at, len);
    return count_head(hc, len, 1);
}

static void push_offset(struct mc_http_conn *hc, size_t off)
{
    if (hc->header_count * 2 + 2 > hc->header_offsets_cap) {
        hc->header_offsets_cap = hc->header_offsets_cap ? hc->header_offsets_cap * 2 : 32;
        hc->header_offsets =
            mc_realloc(hc->header_offsets, hc->header_offsets_cap * sizeof(size_t));
    }
    hc->header_offsets[hc->header_count * 2] = off;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct mc_http_conn *hc = hc_of(p);
    if (hc->last_token != TOK_FIELD) {
        mc_buf_append(&hc->raw, "", 1); /* terminate the url or the previous value */
        if (hc->header_count >= MC_HTTP_MAX_HEADERS) {
            hc->error_status = 431;
            return HPE_USER;
        }
        push_offset(hc, hc->raw.len);
        hc->line_bytes = 0;
        hc->last_token = TOK_FIELD;
    }
    mc_buf_append(&hc->raw, at, len);
    return count_head(hc, len, 1);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct mc_http_conn *hc = hc_of(p);
    if (hc->last_token != TOK_VALUE) {
        /* The name is complete here: count Host fields now rather than search them later. */
        size_t name = hc->header_offsets[hc->header_count * 2];
        if (hc->raw.len - name == 4 && strncasecmp(hc->raw.data + name, "host", 4) == 0)
            hc->host_count++;
        mc_buf_append(&hc->raw, "", 1);
        hc->header_offsets[hc->header_count * 2 + 1] = hc->raw.len;
        hc->header_count++;
        hc->last_token = TOK_VALUE;
    }
    mc_buf_append(&hc->raw, at, len);
    return count_head(hc, len, 1);
}

static const struct mc_http_route *find_route(struct mc_http_server *s, const char *path,
                                              size_t len, const struct mc_http_route **fallback)
{
    *fallback = NULL;
    for (size_t i = 0; i < s->route_count; i++) {
        const struct mc_http_route *r = &s->routes[i];
        if (!r->path) {
            *fallback = r;
            continue;
        }
        if (strlen(r->path) == len && memcmp(r->path, path, len) == 0)
            return r;
    }
    return NULL;
}

/* curl and others wait for "100 Continue" before sending a large body. */
static void send_continue(struct mc_http_conn *hc)
{
    const char *expect = mc_http_request_header(hc->req, "Expect");
    if (expect && strcasecmp(expect, "100-continue") == 0 && hc->req->http_minor >= 1) {
        static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
        mc_conn_write_copy(&hc->conn, line, sizeof line - 1);
        mc_conn_flush(&hc->conn); /* the client is waiting for it: no batching */
    }
}

static int on_headers_complete(llhttp_t *p)
{
    struct mc_http_conn *hc = hc_of(p);
    struct mc_http_request *req = hc->req;
    mc_buf_append(&hc->raw, "", 1);
    if (hc->last_token == TOK_FIELD) {
        /* a field with no value at all: treat as empty */
        hc->header_offsets[hc->header_count * 2 + 1] = hc->raw.len - 1;
        hc->header_count++;
    }
    if (p->http_major != 1) {
        hc->error_status = 400; /* HTTP/0.9 (no version) and 2.x+ are not spoken here */
        return HPE_USER;
    }
    /* Header names are tokens already: llhttp is built in strict mode (see the Makefile). An
     * HTTP/1.1 request names exactly one Host (RFC 9112 3.2); HTTP/1.0 may omit it. */
    if (hc->host_count > 1 || (hc->host_count == 0 && p->http_minor >= 1)) {
        hc->error_status = 400;
        hc->error_detail = hc->host_count ? "more than one Host header" : "missing Host header";
        return HPE_USER;
    }
    /* Fix the strings in place: raw no longer grows for this request. */
    req->url = hc->raw.data;
    req->url_len = strlen(req->url);
    req->headers = mc_calloc(hc->header_count + 1, sizeof *req->headers);
    req->header_count = hc->header_count;
    for (size_t i = 0; i < hc->header_count; i++) {
        req->headers[i].name = hc->raw.data + hc->header_offsets[i * 2];
        req->headers[i].value = hc->raw.data + hc->header_offsets[i * 2 + 1];
    }
    /* The request target: origin-form, or absolute-form whose path we take. */
    const char *path = req->url;
    if (strncmp(path, "http://", 7) == 0 || strncmp(path, "https://", 8) == 0) {
        const char *slash = strchr(strstr(path, "//") + 2, '/');
        path = slash ? slash : "/";
    }
    const char *q = strchr(path, '?');
    req->path = path;
    req->path_len = q ? (size_t)(q - path) : strlen(path);
    req->query = q ? q + 1 : NULL;
    req->query_len = q ? strlen(q + 1) : 0;
    req->method_bit = method_bit(p->method);
    req->method_name = llhttp_method_name((llhttp_method_t)p->method);
    req->http_major = p->http_major;
    req->http_minor = p->http_minor;
    req->keep_alive = llhttp_should_keep_alive(p);
    req->upgrade = p->upgrade;
    req->chunked = (p->flags & F_CHUNKED) != 0;
    req->has_content_length = (p->flags & F_CONTENT_LENGTH) != 0;
    req->content_length = p->content_length;
    uv_timer_stop(&hc->timer);

    struct mc_http_server *s = hc->server;
    const struct mc_http_route *fallback;
    const struct mc_http_route *r = find_route(s, req->path, req->path_len, &fallback);
    if (!r)
        r = fallback;
    if (req->method_bit == MC_HTTP_OPTIONS) {
        hc->route = r;
        hc->route_status = 200;
        hc->state = HC_READ_BODY;
        arm_timer(hc, MC_HTTP_BODY_TIMEOUT_MS);
        return 0;
    }
    hc->route = r;
    if (!r) {
        hc->route_status = 404;
    } else {
        unsigned allowed = r->methods;
        if (allowed & MC_HTTP_GET)
            allowed |= MC_HTTP_HEAD;
        if (!(req->method_bit & allowed))
            hc->route_status = 405;
    }
    if (!hc->route_status && (r->flags & MC_HTTP_ROUTE_STREAM)) {
        send_continue(hc);
        hc->state = HC_HANDLING;
        hc->dispatch_due = 1;
        return HPE_PAUSED;
    }
    if (req->has_content_length && req->content_length > s->max_body_size) {
        hc->error_status = 413;
        return HPE_USER;
    }
    if (!hc->route_status)
        send_continue(hc); /* a body we will read; a refused one is skipped unasked */
    hc->state = HC_READ_BODY;
    if (req->chunked || req->content_length > 0)
        arm_timer(hc, MC_HTTP_BODY_TIMEOUT_MS); /* bodiless requests complete right away */
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct mc_http_conn *hc = hc_of(p);
    struct mc_http_request *req = hc->req;
    if (hc->state == HC_HANDLING) {
        if (!req->responded) {
            if (req->on_body)
                req->on_body(req, at, len);
        } else {
            arm_timer(hc, HC_DISCARD_TIMEOUT_MS); /* answered early: dropped, must keep coming */
        }
        return 0;
    }
    if (hc->route_status)
        return 0; /* answered with an error at message end; the body is skipped */
    if (req->body.len + len > hc->server->max_body_size) {
        hc->error_status = 413;
        return HPE_USER;
    }
    mc_buf_append(&req->body, at, len);
    arm_timer(hc, MC_HTTP_BODY_TIMEOUT_MS);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct mc_http_conn *hc = hc_of(p);
    hc->message_done = 1;
    uv_timer_stop(&hc->timer);
    if (hc->state == HC_HANDLING) {
        /* Streaming route: the body ended. */
        struct mc_http_request *req = hc->req;
        if (req->on_body && !req->responded)
            req->on_body(req, NULL, 0);
        if (hc->req && hc->req->responded)
            hc->finish_due = 1; /* finished by the parse loop, outside llhttp */
        return HPE_PAUSED;
    }
    hc->state = HC_HANDLING;
    hc->dispatch_due = 1;
    return HPE_PAUSED;
}

/* ---------- responses ---------- */

static void write_access_log(struct mc_http_conn *hc, struct mc_http_request *req)
{
    FILE *f = hc->server->access_log;
    if (!f)
        return;
    const char *peer = conn_peer(hc);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char stamp[64];
    strftime(stamp, sizeof stamp, "%d/%b/%Y:%H:%M:%S +0000", &tm);
    const char *referer = mc_http_request_header(req, "Referer");
    const char *ua = mc_http_request_header(req, "User-Agent");
    fprintf(f, "%s - - [%s] \"%s %s HTTP/%d.%d\" %d %llu \"%s\" \"%s\"\n", peer, stamp,
            req->method_name ? req->method_name : "-", req->url ? req->url : "-", req->http_major,
            req->http_minor, req->status, (unsigned long long)req->bytes_sent,
            referer ? referer : "-", ua ? ua : "-");
    fflush(f);
}

static void write_head(struct mc_http_request *req, struct mc_buf *head, int status,
                       const char *content_type, const struct mc_http_header *extra,
                       size_t extra_count, size_t body_len)
{
    struct mc_http_conn *hc = req->hc;
    if (!req->keep_alive || hc->server->draining || hc->peer_eof)
        req->close_after = 1;
    mc_http_status_line(head, status);
    if (content_type)
        mc_buf_append_header(head, "Content-Type", content_type);
    mc_buf_append_str(head, "Content-Length: ");
    mc_buf_append_uint(head, body_len);
    mc_buf_append_str(head, "\r\n");
    for (size_t i = 0; i < extra_count; i++)
        mc_buf_append_header(head, extra[i].name, extra[i].value);
    mc_http_cors_headers(req, head);
    if (req->close_after)
        mc_buf_append_str(head, "Connection: close\r\n");
    else if (req->http_major == 1 && req->http_minor == 0)
        mc_buf_append_str(head, "Connection: keep-alive\r\n");
    mc_buf_append_str(head, "\r\n");
}

/* The response is queued in full. With the request's body in too, the next request may
 * start. An answer given before the body ended (a streaming handler answering early, or
 * giving up on a node) leaves the rest of the body to be read and dropped under
 * HC_DISCARD_TIMEOUT_MS, or the connection closed at once when it will not be kept alive. */
static void response_done(struct mc_http_conn *hc)
{
    if (hc->message_done) {
        finish_request(hc);
    } else if (hc->req->close_after) {
        conn_close(hc, 0); /* the rest of the request body is not worth reading */
    } else {
        arm_timer(hc, HC_DISCARD_TIMEOUT_MS);
        if (hc->user_paused) { /* whoever paused the body will not resume it now */
            hc->user_paused = 0;
            mc_conn_read_start(&hc->conn);
        }
    }
}

void mc_http_respond(struct mc_http_request *req, int status, const char *content_type,
                     const struct mc_http_header *extra, size_t extra_count, const void *body,
                     size_t len)
{
    struct mc_http_conn *hc = req->hc;
    if (req->responded)
        return;
    req->responded = 1;
    req->status = status;
    struct mc_buf *head = mc_http_scratch(req); /* reused: no allocation per response */
    write_head(req, head, status, content_type, extra, extra_count, len);
    int head_only = req->method_bit == MC_HTTP_HEAD;
    mc_conn_write_copy(&hc->conn, head->data, head->len);
    if (len && !head_only)
        mc_conn_write_copy(&hc->conn, body, len);
    req->bytes_sent = head_only ? 0 : len;
    mc_conn_flush_soon(&hc->conn);
    response_done(hc);
}

void mc_http_respond_error(struct mc_http_request *req, int status, const char *id,
                           const char *detail)
{
    struct mc_buf body;
    mc_buf_init(&body);
    mc_http_error_json(&body, id, status, detail);
    mc_http_respond(req, status, "application/json", NULL, 0, body.data, body.len);
    mc_buf_close(&body);
}

void mc_http_respond_raw_begin(struct mc_http_request *req, int status)
{
    req->status = status;
    if (!req->keep_alive || req->hc->server->draining)
        req->close_after = 1;
}

void mc_http_respond_raw_write(struct mc_http_request *req, const void *data, size_t len)
{
    mc_conn_write_copy(&req->hc->conn, data, len);
    req->bytes_sent += len;
    mc_conn_flush_soon(&req->hc->conn);
}

void mc_http_respond_raw_end(struct mc_http_request *req, int keep_alive)
{
    struct mc_http_conn *hc = req->hc;
    if (req->responded)
        return;
    req->responded = 1;
    if (!keep_alive)
        req->close_after = 1;
    mc_conn_flush_soon(&hc->conn);
    response_done(hc);
}

struct mc_buf *mc_http_scratch(struct mc_http_request *req)
{
    struct mc_buf *b = &req->hc->server->scratch;
    mc_buf_reset(b);
    return b;
}

size_t mc_http_request_pending_output(const struct mc_http_request *req)
{
    return mc_conn_pending(&req->hc->conn);
}

static void on_client_drain(struct mc_conn *c)
{
    struct mc_http_conn *hc = c->data;
    hc->answered = 0; /* the client took everything: a new batch of answers may start */
    mc_http_abort_cb cb = hc->drain_cb;
    hc->drain_cb = NULL;
    if (cb && hc->req) {
        cb(hc->req);
        return;
    }
    if (hc->output_wait) {
        hc->output_wait = 0;
        if (!hc->peer_eof)
            mc_conn_read_start(&hc->conn);
        process(hc);
    }
}

void mc_http_request_on_drain(struct mc_http_request *req, mc_http_abort_cb cb)
{
    req->hc->drain_cb = cb;
}

void mc_http_request_pause(struct mc_http_request *req)
{
    req->hc->user_paused = 1;
    mc_conn_read_stop(&req->hc->conn);
}

void mc_http_request_resume(struct mc_http_request *req)
{
    struct mc_http_conn *hc = req->hc;
    if (!hc->user_paused)
        return;
    hc->user_paused = 0;
    if (!hc->peer_eof)
        mc_conn_read_start(&hc->conn);
    process(hc);
}

/* The request is answered and its body consumed: log it, free it, go on with the next. */
static void finish_request(struct mc_http_conn *hc)
{
    struct mc_http_request *req = hc->req;
    struct mc_http_server *s = hc->server;
    if (s->observer)
        s->observer(s->observer_ctx, req);
    write_access_log(hc, req);
    int close_after = req->close_after || hc->error_status;
    hc->req = NULL;
    hc->drain_cb = NULL;
    request_free(req);
    reset_head_state(hc);
    if (close_after) {
        conn_close(hc, 0);
        return;
    }
    hc->state = HC_WAIT_HEAD;
    hc->user_paused = 0;
    arm_timer(hc, MC_HTTP_IDLE_TIMEOUT_MS);
    if (hc->parser_paused) {
        hc->parser_paused = 0;
        llhttp_resume(&hc->parser);
    }
    /* A pipelining client that does not read its answers must not make us produce more: past
     * the high-water mark of unsent output, or after a batch of answers in one go, the next
     * request waits (unread, reading stopped) until the output drains (on_client_drain). The
     * batch bound also keeps one connection's pipeline from holding the loop for long. */
    size_t pending = mc_conn_pending(&hc->conn);
    if (pending > MC_HTTP_OUTPUT_HIGH_WATER ||
        (++hc->answered >= MC_HTTP_PIPELINE_BATCH && pending > 0)) {
        hc->output_wait = 1;
        mc_conn_read_stop(&hc->conn);
        return;
    }
    if (!hc->peer_eof)
        mc_conn_read_start(&hc->conn);
    process(hc);
}

/* ---------- the parse loop ---------- */

static void refuse(struct mc_http_conn *hc, int status)
{
    struct mc_http_request *req = hc->req;
    if (!req) {
        req = hc->req = mc_calloc(1, sizeof *req);
        req->hc = hc;
        req->server = hc->server;
        mc_buf_init(&req->body);
        req->http_major = 1;
        req->http_minor = 1;
    }
    if (req->responded) {
        conn_close(hc, 0);
        return;
    }
    req->keep_alive = 0;
    hc->message_done = 1;
    hc->state = HC_HANDLING;
    const char *detail;
    switch (status) {
    case 408:
        detail = "request timeout";
        break;
    case 413:
        detail = "request body too large";
        break;
    case 431:
        detail = "request header fields too large";
        break;
    default:
        detail = hc->error_detail ? hc->error_detail : llhttp_get_error_reason(&hc->parser);
        if (!detail || !*detail)
            detail = "malformed request";
    }
    mc_http_respond_error(req, status, "go.micro.sidecar", detail);
}

static void dispatch(struct mc_http_conn *hc)
{
    struct mc_http_request *req = hc->req;
    hc->dispatch_due = 0;
    if (hc->route_status == 200) {
        /* OPTIONS preflight on any route */
        struct mc_buf allow;
        mc_buf_init(&allow);
        append_allow(&allow, hc->route ? hc->route->methods : MC_HTTP_ANY);
        struct mc_http_header h = {"Allow", allow.data};
        mc_http_respond(req, 200, NULL, &h, 1, NULL, 0);
        mc_buf_close(&allow);
        return;
    }
    if (hc->route_status == 405) {
        struct mc_buf allow;
        mc_buf_init(&allow);
        append_allow(&allow, hc->route->methods);
        struct mc_buf body;
        mc_buf_init(&body);
        mc_http_error_json(&body, "go.micro.sidecar", 405, "method not allowed");
        struct mc_http_header h = {"Allow", allow.data};
        mc_http_respond(req, 405, "application/json", &h, 1, body.data, body.len);
        mc_buf_close(&allow);
        mc_buf_close(&body);
        return;
    }
    if (hc->route_status == 404 || !hc->route) {
        mc_http_respond_error(req, 404, "go.micro.sidecar", "not found");
        return;
    }
    hc->route->handler(req, hc->route->ctx);
    if (hc->state == HC_HANDLING && !hc->message_done && hc->parser_paused) {
        /* A streaming route was dispatched at the end of the head: go on parsing its body
         * (the handler forwards or discards it through on_body). */
        hc->parser_paused = 0;
        llhttp_resume(&hc->parser);
        if (hc->inbuf.len == 0)
            feed(hc, "", 0); /* a bodiless request completes without another byte */
    }
}

/* Parses what is buffered or just read. Returns how many bytes of data were consumed. */
static size_t feed(struct mc_http_conn *hc, const char *data, size_t len)
{
    enum llhttp_errno err = llhttp_execute(&hc->parser, data, len);
    if (err == HPE_OK)
        return len;
    size_t used = len;
    const char *pos = llhttp_get_error_pos(&hc->parser);
    if (pos && pos >= data && pos <= data + len)
        used = (size_t)(pos - data);
    if (err == HPE_PAUSED) {
        hc->parser_paused = 1;
        return used;
    }
    if (err == HPE_PAUSED_UPGRADE) {
        /* An upgrade the route did not take: nothing after it is HTTP we can parse. */
        hc->parser_paused = 1;
        if (hc->req)
            hc->req->close_after = 1;
        else
            conn_close(hc, 0);
        return len;
    }
    int status = hc->error_status ? hc->error_status : 400;
    refuse(hc, status);
    return len;
}

static void process(struct mc_http_conn *hc)
{
    if (hc->processing)
        return; /* the running loop below picks the new state up */
    hc->processing = 1;
    while (hc->state != HC_CLOSED && hc->state != HC_UPGRADED) {
        if (hc->dispatch_due) {
            dispatch(hc);
            continue;
        }
        if (hc->finish_due) {
            hc->finish_due = 0;
            finish_request(hc);
            continue;
        }
        if (hc->parser_paused || hc->user_paused || hc->output_wait || hc->inbuf.len == 0)
            break;
        size_t used = feed(hc, hc->inbuf.data, hc->inbuf.len);
        if (hc->state == HC_CLOSED || hc->state == HC_UPGRADED)
            break;
        mc_buf_consume(&hc->inbuf, used);
    }
    hc->processing = 0;
    if (hc->state == HC_CLOSED || hc->state == HC_UPGRADED)
        return;
    /* Bound what a pipelining or paused client can make us hold. */
    if (hc->inbuf.len > MC_HTTP_MAX_HEAD && hc->conn.reading)
        mc_conn_read_stop(&hc->conn);
    else if (hc->peer_eof && !hc->req && hc->inbuf.len == 0)
        conn_close(hc, 0);
}

static void on_conn_read(struct mc_conn *c, const char *data, ssize_t nread)
{
    struct mc_http_conn *hc = c->data;
    if (nread < 0) {
        if (nread == UV_EOF && hc->req && hc->state == HC_HANDLING && !hc->message_done) {
            /* EOF inside a streamed request body: the request can never complete. A handler
             * still at work is aborted (on_abort); what is queued is written, then close. */
            conn_close(hc, 0);
            return;
        }
        if (nread == UV_EOF && hc->req && hc->state == HC_HANDLING) {
            /* Half-close after a complete request: answer, then close. */
            hc->peer_eof = 1;
            mc_conn_read_stop(c);
            return;
        }
        if (nread == UV_EOF && !hc->req && hc->inbuf.len > 0) {
            hc->peer_eof = 1;
            mc_conn_read_stop(c);
            process(hc);
            return;
        }
        conn_close(hc, 1);
        return;
    }
    if (hc->inbuf.len == 0 && !hc->parser_paused && !hc->user_paused && !hc->output_wait &&
        !hc->processing) {
        /* Fast path: parse straight from the read buffer, keep only the rest. */
        hc->processing = 1;
        size_t used = feed(hc, data, (size_t)nread);
        hc->processing = 0;
        if (hc->state == HC_CLOSED)
            return;
        if (hc->state == HC_UPGRADED) {
            return;
        }
        if (used < (size_t)nread)
            mc_buf_append(&hc->inbuf, data + used, (size_t)nread - used);
    } else {
        mc_buf_append(&hc->inbuf, data, (size_t)nread);
    }
    process(hc);
}

/* ---------- connections ---------- */

static void on_timer(uv_timer_t *t)
{
    struct mc_http_conn *hc = t->data;
    switch (hc->state) {
    case HC_WAIT_HEAD:
        if (hc->req || hc->fresh) {
            mc_conn_read_stop(&hc->conn);
            refuse(hc, 408);
        } else {
            /* Idle keep-alive connection; one whose client took none of our output for that
             * long is dropped with its queue (a graceful close would wait on it for ever). */
            conn_close(hc, hc->output_wait);
        }
        break;
    case HC_READ_BODY:
        mc_conn_read_stop(&hc->conn);
        refuse(hc, 408);
        break;
    case HC_HANDLING:
        if (hc->req && hc->req->responded && !hc->message_done)
            conn_close(hc, 0); /* the rest of an early-answered body stopped coming */
        break;
    default:
        break;
    }
}

static void hc_release(struct mc_http_conn *hc)
{
    if (--hc->handles_open > 0)
        return;
    struct mc_http_server *s = hc->server;
    mc_buf_close(&hc->inbuf);
    mc_buf_close(&hc->raw);
    mc_free(hc->header_offsets);
    mc_free(hc);
    if (!s)
        return; /* an upgraded connection: no longer the server's */
    s->open_count--;
    if (s->freeing && s->open_count == 0 && !s->listening)
        server_release(s);
}

static void on_timer_closed(uv_handle_t *h)
{
    hc_release(h->data);
}

static void unlink_conn(struct mc_http_conn *hc)
{
    struct mc_http_server *s = hc->server;
    if (hc->prev)
        hc->prev->next = hc->next;
    else if (s->conns == hc)
        s->conns = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    hc->prev = hc->next = NULL;
    if (hc->counted) {
        hc->counted = 0;
        s->conn_count--;
    }
}

static void check_drained(struct mc_http_server *s)
{
    if (s->draining && s->conn_count == 0 && s->drained) {
        void (*done)(void *) = s->drained;
        s->drained = NULL;
        done(s->drained_ctx);
    }
}

static void on_conn_closed(struct mc_conn *c)
{
    struct mc_http_conn *hc = c->data;
    /* The transport closed itself (a write failed: the client reset). A connection that was
     * not reading (waiting for its output to drain, or paused) learns it only here: release
     * its slot, timer and request now rather than at its idle timeout. */
    if (hc->state != HC_CLOSED)
        conn_close(hc, 1);
    hc_release(hc);
}

static void conn_close(struct mc_http_conn *hc, int now)
{
    if (hc->state == HC_CLOSED)
        return;
    struct mc_http_request *req = hc->req;
    int aborted = req && !req->responded;
    hc->state = HC_CLOSED;
    hc->req = NULL;
    if (aborted && req->on_abort)
        req->on_abort(req);
    else if (req && req->responded) {
        struct mc_http_server *s = hc->server;
        if (s->observer)
            s->observer(s->observer_ctx, req);
        write_access_log(hc, req);
    }
    request_free(req);
    uv_timer_stop(&hc->timer);
    uv_close((uv_handle_t *)&hc->timer, on_timer_closed);
    mc_conn_close(&hc->conn, now);
    struct mc_http_server *s = hc->server;
    unlink_conn(hc);
    check_drained(s);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct mc_http_server *s = listener->data;
    if (status < 0) {
        mc_log_warn("accept failed: %s", uv_strerror(status));
        return;
    }
    struct mc_http_conn *hc = mc_calloc(1, sizeof *hc);
    hc->server = s;
    if (mc_conn_init(&hc->conn, s->net, s->transport) < 0) {
        mc_free(hc);
        return;
    }
    hc->conn.data = hc;
    hc->conn.on_read = on_conn_read;
    hc->conn.on_close = on_conn_closed;
    hc->conn.on_drain = on_client_drain;
    uv_timer_init(s->net->loop, &hc->timer);
    hc->timer.data = hc;
    hc->handles_open = 2;
    s->open_count++;
    mc_buf_init(&hc->inbuf);
    mc_buf_init(&hc->raw);
    if (mc_conn_accept(&hc->conn, listener) < 0) {
        hc->state = HC_CLOSED;
        uv_close((uv_handle_t *)&hc->timer, on_timer_closed);
        mc_conn_close(&hc->conn, 1);
        return;
    }
    if (s->conn_count >= s->max_connections || s->draining) {
        /* Over the limit: closed at once, the others keep being served. */
        hc->state = HC_CLOSED;
        uv_close((uv_handle_t *)&hc->timer, on_timer_closed);
        mc_conn_close(&hc->conn, 1);
        return;
    }
    hc->next = s->conns;
    if (s->conns)
        s->conns->prev = hc;
    s->conns = hc;
    hc->counted = 1;
    s->conn_count++;
    llhttp_init(&hc->parser, HTTP_REQUEST, &s->settings);
    hc->parser.data = hc;
    hc->state = HC_WAIT_HEAD;
    hc->fresh = 1;
    uv_timer_start(&hc->timer, on_timer, MC_HTTP_HEAD_TIMEOUT_MS, 0);
    mc_conn_read_start(&hc->conn);
}

struct mc_conn *mc_http_upgrade(struct mc_http_request *req, struct mc_buf *leftover)
{
    struct mc_http_conn *hc = req->hc;
    struct mc_http_server *s = hc->server;
    mc_buf_init(leftover);
    /* Bytes after the head: what the parser had not consumed yet. */
    if (hc->inbuf.len)
        mc_buf_append(leftover, hc->inbuf.data, hc->inbuf.len);
    req->status = 101;
    req->responded = 1;
    if (s->observer)
        s->observer(s->observer_ctx, req);
    write_access_log(hc, req);
    hc->req = NULL;
    request_free(req);
    hc->state = HC_UPGRADED;
    uv_timer_stop(&hc->timer);
    unlink_conn(hc);
    hc->server = NULL; /* from here on the upgrader owns the memory, not the server */
    s->open_count--;
    uv_close((uv_handle_t *)&hc->timer, on_timer_closed);
    hc->conn.data = NULL;
    hc->conn.on_read = NULL;
    hc->conn.on_drain = NULL;
    hc->conn.on_close = NULL;
    check_drained(s);
    return &hc->conn;
}

void mc_http_upgraded_conn_free(struct mc_conn *conn)
{
    struct mc_http_conn *hc = (struct mc_http_conn *)conn;
    hc_release(hc);
}

/* ---------- server ---------- */

struct mc_http_server *mc_http_server_new(struct mc_net *net,
                                          const struct mc_http_server_config *config)
{
    struct mc_http_server *s = mc_calloc(1, sizeof *s);
    s->net = net;
    s->transport = config->transport;
    s->address = mc_strdup(config->address);
    s->routes = config->routes;
    s->route_count = config->route_count;
    s->max_body_size = config->max_body_size;
    s->max_connections = config->max_connections ? config->max_connections : 10000;
    s->access_log = config->access_log;
    s->observer = config->observer;
    s->observer_ctx = config->observer_ctx;
    if (parse_cors(s, config->cors) < 0) {
        for (size_t i = 0; i < s->cors_count; i++)
            mc_free(s->cors[i]);
        mc_free(s->cors);
        mc_free(s->address);
        mc_free(s);
        return NULL;
    }
    llhttp_settings_init(&s->settings);
    s->settings.on_message_begin = on_message_begin;
    s->settings.on_url = on_url;
    s->settings.on_header_field = on_header_field;
    s->settings.on_header_value = on_header_value;
    s->settings.on_headers_complete = on_headers_complete;
    s->settings.on_body = on_body;
    s->settings.on_message_complete = on_message_complete;
    return s;
}

int mc_http_server_listen(struct mc_http_server *s, char *err, size_t errlen)
{
    struct sockaddr_storage addr;
    if (mc_net_parse_address(s->address, &addr) < 0) {
        snprintf(err, errlen, "invalid listen address %s", s->address);
        return MC_EINVAL;
    }
    uv_tcp_init(s->net->loop, &s->listener);
    s->listener.data = s;
    s->listening = 1;
    int rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", s->address, uv_strerror(rc));
        return rc;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len);
    s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    return 0;
}

int mc_http_server_port(const struct mc_http_server *s)
{
    return s->port;
}

size_t mc_http_server_connections(const struct mc_http_server *s)
{
    return s->conn_count;
}

static void on_listener_closed(uv_handle_t *h)
{
    struct mc_http_server *s = h->data;
    s->listening = 0;
    if (s->freeing && s->open_count == 0)
        server_release(s);
}

static void close_listener(struct mc_http_server *s)
{
    if (s->listening && !uv_is_closing((uv_handle_t *)&s->listener))
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}

void mc_http_server_drain(struct mc_http_server *s, void (*done)(void *ctx), void *ctx)
{
    s->draining = 1;
    s->drained = done;
    s->drained_ctx = ctx;
    close_listener(s);
    struct mc_http_conn *hc = s->conns;
    while (hc) {
        struct mc_http_conn *next = hc->next;
        if (hc->state == HC_WAIT_HEAD && !hc->req && hc->inbuf.len == 0)
            conn_close(hc, 0);
        hc = next;
    }
    check_drained(s);
}

void mc_http_server_free(struct mc_http_server *s)
{
    if (!s)
        return;
    s->drained = NULL;
    while (s->conns)
        conn_close(s->conns, 1);
    for (size_t i = 0; i < s->cors_count; i++)
        mc_free(s->cors[i]);
    mc_free(s->cors);
    s->cors = NULL;
    s->cors_count = 0;
    mc_free(s->address);
    s->address = NULL;
    s->freeing = 1;
    close_listener(s);
    if (!s->listening && s->open_count == 0)
        server_release(s);
}
