/* --cors origins. */
#include "http/cors.h"

#include <string.h>

#include "util/alloc.h"
#include "util/error.h"

int mc_cors_parse(struct mc_cors *c, const char *list)
{
    memset(c, 0, sizeof *c);
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
            c->any = 1;
        } else {
            for (const char *q = p; q < trim; q++)
                if ((unsigned char)*q < 0x21 || (unsigned char)*q > 0x7e) {
                    mc_cors_close(c);
                    return MC_EINVAL;
                }
            c->origins = mc_realloc(c->origins, (c->count + 1) * sizeof *c->origins);
            c->origins[c->count++] = mc_strndup(p, (size_t)(trim - p));
        }
        p = end;
    }
    return 0;
}

void mc_cors_close(struct mc_cors *c)
{
    for (size_t i = 0; i < c->count; i++)
        mc_free(c->origins[i]);
    mc_free(c->origins);
    memset(c, 0, sizeof *c);
}

int mc_cors_allowed(const struct mc_cors *c, const char *origin)
{
    if (!origin)
        return 1;
    if (!c)
        return 0;
    if (c->any)
        return 1;
    for (size_t i = 0; i < c->count; i++)
        if (strcmp(c->origins[i], origin) == 0)
            return 1;
    return 0;
}

size_t mc_cors_headers(const struct mc_cors *c, const char *origin,
                       struct mc_http_header out[MC_CORS_MAX_HEADERS])
{
    if (!origin || !mc_cors_allowed(c, origin))
        return 0;
    out[0] = (struct mc_http_header){"Access-Control-Allow-Origin", origin};
    out[1] = (struct mc_http_header){"Access-Control-Allow-Credentials", "true"};
    out[2] =
        (struct mc_http_header){"Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE"};
    out[3] = (struct mc_http_header){"Access-Control-Allow-Headers",
                                     "Content-Type, Content-Length, Accept-Encoding, "
                                     "X-CSRF-Token, Authorization"};
    return 4;
}

int mc_http_origin_allowed(const struct mc_http_request *req)
{
    return mc_cors_allowed(req->ops->cors(req), mc_http_request_header(req, "Origin"));
}
