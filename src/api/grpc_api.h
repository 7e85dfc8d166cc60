/* gRPC through the sidecar (any --handler): a request with content-type application/grpc…
 * is forwarded over HTTP/2 (src/http/h2_client.c) to a node of the service it names, chosen,
 * retried and ejected by the upstream module, streaming both ways with trailers, deadline and
 * cancellation passed through; the sidecar's own failures are trailers-only gRPC statuses. */
#ifndef MC_API_GRPC_API_H
#define MC_API_GRPC_API_H

#include "api/api.h"

/* gRPC status codes the sidecar answers with itself. */
enum {
    MC_GRPC_OK = 0,
    MC_GRPC_CANCELLED = 1,
    MC_GRPC_UNKNOWN = 2,
    MC_GRPC_INVALID_ARGUMENT = 3,
    MC_GRPC_DEADLINE_EXCEEDED = 4,
    MC_GRPC_UNIMPLEMENTED = 12,
    MC_GRPC_INTERNAL = 13,
    MC_GRPC_UNAVAILABLE = 14,
};

/* Takes a gRPC request over: answers it, now or as the call goes. The request must have been
 * dispatched as a stream (body through on_body): the HTTP/2 codec streams every gRPC request
 * whatever the route. Over HTTP/1.x, which cannot carry trailers, it answers 505 at once with
 * an error naming HTTP/2. */
void mc_api_grpc(struct mc_http_request *req, struct mc_api *api);

/* grpc-timeout's value ("100m", "5S": 1 to 8 digits and a unit H M S m u n) in milliseconds,
 * rounded up to at least 1; 0 when it does not parse (then --request_timeout applies). */
uint64_t mc_grpc_timeout_ms(const char *value);

/* grpc-message's percent-encoding (bytes outside 0x20..0x7e, and '%', as %XX) of text. */
void mc_grpc_message_encode(struct mc_buf *out, const char *text);

#endif
