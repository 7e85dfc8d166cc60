/* Calls to a service's nodes, the part every caller shares (/rpc, path calls, the proxy, gRPC;
 * later the CLI): pick a node the call has not tried yet, start an attempt, account it in
 * the load balancer, decide whether a failure is retried, and map the final failure to an HTTP
 * status and a detail naming the service, every node tried and the reason. What goes over the
 * wire (JSON-RPC, a proxied request) stays with the caller. As in h2o, the balancer only
 * chooses; the tried list lives here, one per call (struct mc_upstream_try). */
#ifndef MC_UPSTREAM_UPSTREAM_H
#define MC_UPSTREAM_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lb/lb.h"
#include "registry/registry.h"
#include "util/buf.h"
#include "util/log.h"

/* Told of every call that made at least one attempt, when its try is closed: the service, the
 * call's whole duration (retries included) and whether its last attempt was answered well.
 * For the stats: it must be cheap (it runs on the proxy's hot path). */
typedef void (*mc_upstream_call_cb)(void *ctx, const char *service, uint64_t duration_us, int ok);

struct mc_upstream_config {
    uint64_t request_timeout_ms; /* a whole call, retries included (--request_timeout) */
    int retries;                 /* extra attempts after a retryable failure (--retries) */
    mc_upstream_call_cb on_call; /* NULL: none */
    void *on_call_ctx;
};

struct mc_upstream;

/* Creates the upstream over the registry's view and the balancer (neither owned; both must
 * outlive it). Never NULL. */
struct mc_upstream *mc_upstream_new(uv_loop_t *loop, struct mc_registry *registry, struct mc_lb *lb,
                                    const struct mc_upstream_config *config);
/* Frees what mc_upstream_new made. Accepts NULL. Every try must be closed first. */
void mc_upstream_free(struct mc_upstream *up);

/* The addresses ("host:port") of name's live nodes, across versions, for mc_lb_pick_list,
 * with the id of that list (list_id may be NULL). Kept for the last MC_UPSTREAM_LIST_CACHE
 * services until the registry changes or one of the nodes expires: a call re-reads nothing in
 * the steady state. Owned by the upstream; valid until the next mc_upstream_* call. */
#define MC_UPSTREAM_LIST_CACHE 8
const char *const *mc_upstream_addresses(struct mc_upstream *up, const char *name, size_t *count,
                                         uint64_t *list_id);

/* The tried list's inline room: the first MC_UPSTREAM_TRIED_INLINE attempts, and their
 * addresses while they fit in MC_UPSTREAM_TRIED_TEXT bytes, take no allocation; more attempts
 * (a larger --retries) or longer addresses go to the heap. */
#define MC_UPSTREAM_TRIED_INLINE 4
#define MC_UPSTREAM_TRIED_TEXT 192

/* One call's attempts. Embedded in the caller's own call; everything it points to (service,
 * method, address) is borrowed and must outlive it. It points into itself once an attempt has
 * started: never copy or move one. */
struct mc_upstream_try {
    struct mc_upstream *up;
    const char *service;
    const char *method;  /* for the log ("call <service> <method>"); NULL: "proxy <service>" */
    const char *address; /* a node named by the caller: tried alone, never retried */
    int timeout_status;  /* the status a timeout maps to (408 for /rpc, 504 for a gateway) */
    const char *node;    /* the attempt in flight (the last of tried); NULL before the first.
                          * Valid until the try is closed. */
    const char **tried;  /* every node attempted, in order: tried_inline or a new array; each
                          * string in tried_text or a new one (owned) */
    size_t tried_count;
    int attempts;
    int last_err; /* the last attempt's transport error */
    uint64_t deadline_ms, attempt_start_ms;
    struct mc_lb_endpoint *ep; /* the balancer's endpoint of the attempt in flight */
    uint64_t start_ns;         /* for on_call (0: not timed, or reported already) */
    int ok;                    /* the last attempt was answered well */
    size_t tried_text_len;
    const char *tried_inline[MC_UPSTREAM_TRIED_INLINE];
    char tried_text[MC_UPSTREAM_TRIED_TEXT];
};

/* Starts a try (the deadline is now + --request_timeout). address NULL or "": the balancer
 * picks. Allocates nothing. */
void mc_upstream_try_init(struct mc_upstream_try *t, struct mc_upstream *up, const char *service,
                          const char *method, const char *address, int timeout_status);
/* Frees the tried list. An attempt still in flight is accounted as a success: the client
 * left, the node did nothing wrong. Idempotent. */
void mc_upstream_try_close(struct mc_upstream_try *t);

/* Starts the next attempt: picks a node not tried yet (or the caller's address), accounts
 * the start in the balancer and sets t->node. Returns 0, or the HTTP status of the call's
 * final error with its detail appended to detail: 404 (no such service or no nodes), 503
 * (every node ejected), the timeout status (the deadline passed), or the last attempt's
 * error once every node was tried (see mc_upstream_failed). */
int mc_upstream_next(struct mc_upstream_try *t, struct mc_buf *detail);
/* Milliseconds left before the deadline, at least 1 (the budget of the attempt in flight). */
uint64_t mc_upstream_remaining(const struct mc_upstream_try *t);
/* The attempt in flight ended with an answer from the node: ok is zero when it counts as the
 * node's failure (a 5xx, an invalid reply). Accounts it in the balancer. */
void mc_upstream_done(struct mc_upstream_try *t, int ok);
/* The attempt in flight failed at the transport (err; retryable as the HTTP client says: a
 * connect failure, or a connection reset or closed before any byte of the reply; for an HTTP/2
 * stream as the HTTP/2 client says: the node provably never saw it, i.e. a connect failure, a
 * connection lost before the stream's HEADERS were written, REFUSED_STREAM, or a GOAWAY whose
 * last stream id is below it). Accounts it
 * (a head refused before sending, MC_EHEADER, is no fault of the node) and applies the retry
 * rule (SPEC 4): retryable, no address named, within --retries and the deadline. Returns 0
 * when the caller should start another attempt (mc_upstream_next), otherwise the final HTTP
 * status with its detail appended to detail: the timeout status naming --request_timeout,
 * 400 for MC_EHEADER, 502 naming the service, every node tried and the reason. */
int mc_upstream_failed(struct mc_upstream_try *t, int err, int retryable, struct mc_buf *detail);
/* One warn line "<call>: <what>: <why>", rate-limited across every call of the upstream so a
 * storm cannot flood the log. why[0..why_len) may hold NULs. */
void mc_upstream_log(const struct mc_upstream_try *t, const char *what, const char *why,
                     size_t why_len);

#endif
