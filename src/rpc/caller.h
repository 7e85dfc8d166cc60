/* Calls to services (SPEC 4 and 6): go-micro JSON-RPC over the pooled HTTP client, with the
 * node choice, attempts, balancer accounting, retry rule and transport errors of the upstream
 * module (src/upstream/), and the service's reply turned into the final HTTP answer. */
#ifndef MC_RPC_CALLER_H
#define MC_RPC_CALLER_H

#include <stddef.h>
#include <stdint.h>

#include "http/client.h"
#include "http/server.h"
#include "upstream/upstream.h"

struct mc_caller_config {
    uint64_t dial_timeout_ms;
    uint64_t max_reply; /* largest reply body read */
};

struct mc_caller;

/* Creates a caller over the upstream (node choice, retries: see upstream.h) and the client
 * (neither owned; both must outlive it). Never NULL. */
struct mc_caller *mc_caller_new(uv_loop_t *loop, struct mc_upstream *upstream,
                                struct mc_http_client *client,
                                const struct mc_caller_config *config);
/* Frees the caller and the finished call blocks it kept; NULL is a no-op. Calls in flight
 * must have ended or been cancelled first. */
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
    /* strlen of each when the caller knows it (a decoder does), else 0: measured here */
    size_t service_len, method_len, address_len;
    const char *params; /* JSON text (validated by the caller); NULL or "" for {} */
    size_t params_len;
    const struct mc_http_header *headers; /* the caller's headers to pass on (hop-by-hop
                                             ones and framing are dropped here); borrowed */
    size_t header_count;
};

struct mc_call;
/* Starts a call; done runs exactly once, unless the call is cancelled first. Everything in
 * req is copied but the headers' names and values, which are borrowed: they must stay valid
 * until done runs or the call is cancelled (a request's own headers do: the request outlives
 * its call, which it cancels when it goes away). Returns NULL when done already ran (e.g. an
 * unknown service: 404). */
struct mc_call *mc_call_start(struct mc_caller *caller, const struct mc_call_request *req,
                              mc_call_done_cb done, void *ctx);
/* Abandons a call (the client went away): no callback; the node connection is dropped. */
void mc_call_cancel(struct mc_call *call);

/* The upstream the caller was made with (the proxy shares it). */
struct mc_upstream *mc_caller_upstream(struct mc_caller *caller);

#endif
