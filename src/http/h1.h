/* The HTTP/1.x codec: one accepted connection, parsed with llhttp (keep-alive, pipelining,
 * HTTP/1.0, chunked bodies) into protocol-neutral requests (http/request.h) under the limits of
 * SPEC section 11, routed by http/router.h, and answered in request order: the response API's
 * status, headers, body chunks, trailers and end become HTTP/1 wire bytes here and nowhere
 * else. One request per connection is in handling at a time; later pipelined requests wait in
 * the input buffer, which keeps responses ordered without a reorder queue. */
#ifndef MC_HTTP_H1_H
#define MC_HTTP_H1_H

#include <uv.h>

#include "http/server_private.h"

/* Accepts a pending connection of listener for s and starts serving it (or closes it at once
 * when s is at --max_connections or draining). The connection owns itself: it reports to s
 * through the functions of server_private.h and frees its memory when closed. */
void mc_h1_accept(struct mc_http_server *s, uv_stream_t *listener);
/* Closes the connection of link (now: dropping queued output). */
void mc_h1_close(struct mc_http_server_link *link, int now);
/* Whether the connection of link waits for a request with nothing buffered (safe to close). */
int mc_h1_idle(const struct mc_http_server_link *link);

#endif
