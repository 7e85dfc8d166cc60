/* --access_log: one line per finished request, the combined log format followed by
 * " upstream=<node address or -> duration=<ms>ms". */
#ifndef MC_HTTP_ACCESS_LOG_H
#define MC_HTTP_ACCESS_LOG_H

#include <stdint.h>
#include <stdio.h>

#include "http/request.h"

/* Writes req's line to f (flushed) when f is not NULL. peer is the client's address; now_ms
 * the loop's clock, against req->start_ms for the duration. */
void mc_http_access_log_write(FILE *f, const struct mc_http_request *req, const char *peer,
                              uint64_t now_ms);

#endif
