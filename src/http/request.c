/* The protocol-neutral request: accessors, and the response API dispatched to the codec. */
#include "http/request.h"

#include <string.h>
#include <strings.h>

#include "http/url.h"
#include "util/alloc.h"
#include "util/error.h"

const char *mc_http_headers_find(const struct mc_http_header *headers, size_t count,
                                 const char *name)
{
    /* The first letter rules most headers out without a call (HTTP/2 looks Origin up for
     * every answer; HTTP/1.1 notes Origin, Expect and Content-Type as it parses): bytes equal but
     * for ASCII case are equal with 0x20 set, so the fold never rules out a match, and
     * strcasecmp decides. */
    unsigned char first = (unsigned char)name[0] | 0x20;
    for (size_t i = 0; i < count; i++)
        if (((unsigned char)headers[i].name[0] | 0x20) == first &&
            strcasecmp(headers[i].name, name) == 0)
            return headers[i].value;
    return NULL;
}

int mc_http_request_is_grpc(const struct mc_http_request *req)
{
    if (req->method_bit != MC_HTTP_POST)
        return 0;
    const char *ct = req->content_type;
    return ct && strncasecmp(ct, "application/grpc", 16) == 0 &&
           (ct[16] == '\0' || ct[16] == '+' || ct[16] == ';');
}

const char *mc_http_request_header(const struct mc_http_request *req, const char *name)
{
    return mc_http_headers_find(req->headers, req->header_count, name);
}

int mc_http_request_upgrade_to(const struct mc_http_request *req, const char *protocol)
{
    const char *list = mc_http_request_header(req, "Upgrade");
    size_t tl = strlen(protocol);
    for (const char *p = list; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *l = e;
        while (l > p && (l[-1] == ' ' || l[-1] == '\t'))
            l--;
        /* a token may carry a version ("h2c", "websocket", "foo/2"): the name is compared */
        const char *slash = memchr(p, '/', (size_t)(l - p));
        size_t n = slash ? (size_t)(slash - p) : (size_t)(l - p);
        if (n == tl && strncasecmp(p, protocol, tl) == 0)
            return 1;
        p = e;
    }
    return 0;
}

int mc_http_query_param(const struct mc_http_request *req, const char *name, char **value)
{
    if (!req->query) {
        *value = NULL;
        return MC_ENOTFOUND;
    }
    return mc_url_form_value(req->query, req->query_len, name, value);
}

void mc_http_request_peer(const struct mc_http_request *req, char *buf, size_t len)
{
    req->ops->peer(req, buf, len);
}

void mc_http_request_set_upstream(struct mc_http_request *req, const char *address)
{
    size_t len = address ? strlen(address) + 1 : 0;
    if (len == 0 || len > sizeof req->upstream_inline) {
        mc_http_request_give_upstream(req, address ? mc_strdup(address) : NULL);
        return;
    }
    if (req->upstream != req->upstream_inline)
        mc_free(req->upstream);
    /* memmove: address may be the request's own upstream */
    req->upstream = memmove(req->upstream_inline, address, len);
}

void mc_http_request_give_upstream(struct mc_http_request *req, char *address)
{
    if (req->upstream != req->upstream_inline)
        mc_free(req->upstream);
    req->upstream = address;
}

void mc_http_respond(struct mc_http_request *req, int status, const char *content_type,
                     const struct mc_http_header *extra, size_t extra_count, const void *body,
                     size_t len)
{
    req->ops->respond(req, status, content_type, extra, extra_count, body, len);
}

void mc_http_response_begin(struct mc_http_request *req, int status,
                            const struct mc_http_header *headers, size_t count,
                            uint64_t content_length)
{
    req->ops->begin(req, status, headers, count, content_length);
}

void mc_http_response_write(struct mc_http_request *req, const void *data, size_t len)
{
    req->ops->write(req, data, len);
}

void mc_http_response_trailers(struct mc_http_request *req, const struct mc_http_header *headers,
                               size_t count)
{
    req->ops->trailers(req, headers, count);
}

void mc_http_response_end(struct mc_http_request *req, int complete)
{
    req->ops->end(req, complete);
}

size_t mc_http_request_pending_output(const struct mc_http_request *req)
{
    return req->ops->pending_output(req);
}

void mc_http_request_on_drain(struct mc_http_request *req, mc_http_abort_cb cb)
{
    req->ops->wait_drain(req, cb, 0);
}

void mc_http_request_on_drain_within(struct mc_http_request *req, mc_http_abort_cb cb,
                                     uint64_t timeout_ms)
{
    req->ops->wait_drain(req, cb, timeout_ms);
}

void mc_http_request_pause(struct mc_http_request *req)
{
    req->ops->pause(req);
}

void mc_http_request_resume(struct mc_http_request *req)
{
    req->ops->resume(req);
}

struct mc_conn *mc_http_upgrade(struct mc_http_request *req, int status,
                                const struct mc_http_header *headers, size_t count,
                                struct mc_buf *leftover)
{
    return req->ops->upgrade(req, status, headers, count, leftover);
}
