/* Route table lookups and the answers the router gives itself. */
#include "http/router.h"

#include <string.h>

#include "http/errors.h"

#define ROUTER_ID "go.micro.sidecar"

void mc_http_allow_text(struct mc_buf *out, unsigned methods)
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

enum mc_http_route_verdict mc_http_router_match(const struct mc_http_route *routes, size_t count,
                                                unsigned method_bit, const char *path, size_t len,
                                                const struct mc_http_route **route)
{
    const struct mc_http_route *fallback = NULL, *r = NULL;
    for (size_t i = 0; i < count; i++) {
        if (!routes[i].path) {
            fallback = &routes[i];
            continue;
        }
        /* the second byte rules most routes out without a strlen (this runs per request) */
        const char *rp = routes[i].path;
        if (len > 1 && rp[0] && rp[1] != path[1])
            continue;
        if (strlen(rp) == len && memcmp(rp, path, len) == 0) {
            r = &routes[i];
            break;
        }
    }
    if (!r)
        r = fallback;
    *route = r;
    if (method_bit == MC_HTTP_OPTIONS)
        return MC_HTTP_ROUTE_OPTIONS;
    if (!r)
        return MC_HTTP_ROUTE_NOT_FOUND;
    unsigned allowed = r->methods;
    if (allowed & MC_HTTP_GET)
        allowed |= MC_HTTP_HEAD;
    return (method_bit & allowed) ? MC_HTTP_ROUTE_RUN : MC_HTTP_ROUTE_NOT_ALLOWED;
}

void mc_http_router_answer(struct mc_http_request *req, const struct mc_http_route *route,
                           enum mc_http_route_verdict verdict)
{
    if (verdict == MC_HTTP_ROUTE_OPTIONS || verdict == MC_HTTP_ROUTE_NOT_ALLOWED) {
        struct mc_buf allow;
        mc_buf_init(&allow);
        mc_http_allow_text(&allow, route ? route->methods : MC_HTTP_ANY);
        struct mc_http_header h = {"Allow", allow.data};
        if (verdict == MC_HTTP_ROUTE_OPTIONS) {
            mc_http_respond(req, 200, NULL, &h, 1, NULL, 0);
        } else {
            struct mc_buf body;
            mc_buf_init(&body);
            mc_http_error_json(&body, ROUTER_ID, 405, "method not allowed");
            mc_http_respond(req, 405, "application/json", &h, 1, body.data, body.len);
            mc_buf_close(&body);
        }
        mc_buf_close(&allow);
        return;
    }
    mc_http_respond_error(req, 404, ROUTER_ID, "not found");
}
