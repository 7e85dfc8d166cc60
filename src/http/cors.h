/* --cors: which browser origins may call the sidecar, and the headers that say so. */
#ifndef MC_HTTP_CORS_H
#define MC_HTTP_CORS_H

#include <stddef.h>

#include "http/request.h"

struct mc_cors {
    int any; /* "*" */
    char **origins;
    size_t count;
};

/* The most header fields mc_cors_headers produces. */
#define MC_CORS_MAX_HEADERS 4

/* Parses a comma list of origins ("*" for any; NULL or "" for none) into c (zeroed first).
 * 0, or MC_EINVAL for an origin with a control character or space (c is then empty). */
int mc_cors_parse(struct mc_cors *c, const char *list);
void mc_cors_close(struct mc_cors *c);
/* Whether origin (NULL: no Origin header, allowed) may call. c may be NULL (no list). */
int mc_cors_allowed(const struct mc_cors *c, const char *origin);
/* Fills out with the CORS response fields an allowed origin earns; returns their count (0 for
 * no Origin or a refused one). The values point at origin and static strings. */
size_t mc_cors_headers(const struct mc_cors *c, const char *origin,
                       struct mc_http_header out[MC_CORS_MAX_HEADERS]);
/* Whether the request's Origin (if any) is allowed by the server's --cors. No Origin: allowed. */
int mc_http_origin_allowed(const struct mc_http_request *req);

#endif
