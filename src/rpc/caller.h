/* Calls to services (SPEC 4 and 6): finds the service's nodes in the registry's local view,
 * picks one with the load balancer, sends go-micro JSON-RPC over the pooled HTTP client,
 * retries connect failures on other nodes within the request timeout, feeds outcomes back
 * to the balancer (EWMA, ejection) and turns everything into the final HTTP answer. */
#ifndef MC_RPC_CALLER_H
#define MC_RPC_CALLER_H

#include <stddef.h>
#include <stdint.h>

#include "http/client.h"
#include "http/server.h"
#include "lb/lb.h"
#include "registry/registry.h"

struct mc_caller_config {
    uint64_t request_timeout_ms; /* whole call, retries included */
    uint64_t dial_timeout_ms;
    int retries;        /* extra attempts after a connect failure */
    uint64_t max_reply; /* largest reply body read */
};

struct mc_caller;

/* Creates a caller over the registry view, balancer and client (none owned; all must
 * outlive it). Never NULL. */
struct mc_caller *mc_caller_new(uv_loop_t *loop, struct mc_registry *registry, struct mc_lb *lb,
                                struct mc_http_client *client,
                                const struct mc_caller_config *config);
void mc_caller_free(struct mc_caller *caller);

/* The final answer of a call: an HTTP status and a JSON body (the service's result bytes
 * verbatim on success, go-micro error JSON otherwise). Valid during the callback only. */
struct mc_call_answer {
    int status;
    const char *body;
    size_t len;
    const char *node; /* the node of the last attempt ("host:port"); NULL when none was tried */
};
typedef void (*mc_call_done_cb)(void *ctx, const struct mc_call_answer *answer);

struct mc_call_request {
    const char *service;
    const char *method;
    const char *address; /* a node to call directly, or NULL to let the balancer pick */
    const char *params;  /* JSON text (validated by the caller); NULL or "" for {} */
    size_t params_len;
    const struct mc_http_header *headers; /* the caller's headers to pass on (hop-by-hop
                                             ones and framing are dropped here) */
    size_t header_count;
};

struct mc_call;
/* Starts a call (everything in req is copied); done runs exactly once, unless the call is
 * cancelled first. Returns NULL when done already ran (e.g. an unknown service: 404). */
struct mc_call *mc_call_start(struct mc_caller *caller, const struct mc_call_request *req,
                              mc_call_done_cb done, void *ctx);
/* Abandons a call (the client went away): no callback; the node connection is dropped. */
void mc_call_cancel(struct mc_call *call);

/* The addresses ("host:port") of name's live nodes, across versions, for mc_lb_pick. They
 * live in scratch storage of the caller, reused by the next call: no allocation per request
 * once it has grown. */
const char *const *mc_caller_addresses(struct mc_caller *caller, const char *name, size_t *count);
/* Whether header name is hop-by-hop (never forwarded, RFC 9110 7.6.1). */
int mc_http_hop_by_hop(const char *name);

#endif
