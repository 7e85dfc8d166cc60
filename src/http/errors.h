/* go-micro's error JSON and the reason phrases, in one place: every error answer the sidecar
 * gives (its own HTTP API, the proxy, the WebSocket handshake, /rpc) is built here. */
#ifndef MC_HTTP_ERRORS_H
#define MC_HTTP_ERRORS_H

#include <stddef.h>

#include "http/request.h"
#include "util/buf.h"

/* The reason phrase for a status ("Not Found"); "Unknown" for others. */
const char *mc_http_reason(int status);
/* Appends {"id":id,"code":code,"detail":detail,"status":reason} to out. */
void mc_http_error_json(struct mc_buf *out, const char *id, int code, const char *detail);
/* The same with detail[0..detail_len), which may hold NULs (escaped, never cut short). */
void mc_http_error_json_n(struct mc_buf *out, const char *id, int code, const char *detail,
                          size_t detail_len);
/* Answers req with the error JSON of mc_http_error_json (application/json). */
void mc_http_respond_error(struct mc_http_request *req, int status, const char *id,
                           const char *detail);

#endif
