/* Load balancing for calls to services (SPEC 6): a table of endpoints ("host:port") with
 * in-flight counts, peak-EWMA latency and passive outlier ejection, and a pluggable selector
 * (random, roundrobin, p2c) behind an ops table. Pure logic: no I/O, no loop; time comes from
 * an injected clock and randomness from a seeded generator, so every decision is replayable. */
#ifndef MC_LB_LB_H
#define MC_LB_LB_H

#include <stddef.h>
#include <stdint.h>

#include "util/clock.h"

#define MC_LB_EWMA_TAU_MS 10000       /* peak-EWMA decay constant (Finagle/Linkerd use 10 s) */
#define MC_LB_EJECT_FAILURES 5        /* consecutive failures that eject an endpoint */
#define MC_LB_EJECT_BASE_MS 30000     /* ejection lasts base x times ejected ... */
#define MC_LB_EJECT_MAX_MS 300000     /* ... capped here; this long unejected forgets the count */
#define MC_LB_PRUNE_AFTER_MS 600000   /* endpoints/services unseen this long are forgotten */
#define MC_LB_PENALTY_US 1000000000.0 /* load of a sampleless endpoint with calls in flight */

struct mc_lb;
struct mc_lb_endpoint; /* owned by the lb; see mc_lb_pick for how long a pointer stays valid */

/* A selection strategy. pick() gets n >= 1 eligible candidates (in the order of the service's
 * node list, excluded and ejected ones already removed) and returns an index below n. It may
 * use mc_lb_random*, mc_lb_endpoint_load and mc_lb_selector_state; it must not keep pointers. */
struct mc_lb_selector_ops {
    const char *name;
    size_t (*pick)(struct mc_lb *lb, struct mc_lb_endpoint *const *candidates, size_t n,
                   const char *service);
};

extern const struct mc_lb_selector_ops mc_lb_random_ops;     /* uniform */
extern const struct mc_lb_selector_ops mc_lb_roundrobin_ops; /* cycles per service, across calls */
extern const struct mc_lb_selector_ops mc_lb_p2c_ops;        /* power of two choices, peak-EWMA */

/* Finds a selector by its --selector name ("random", "roundrobin", "p2c"); NULL if unknown. */
const struct mc_lb_selector_ops *mc_lb_selector_find(const char *name);

/* Why mc_lb_pick returned what it did; the caller maps it to an HTTP answer. */
enum mc_lb_status {
    MC_LB_PICKED = 0,  /* an endpoint was returned */
    MC_LB_NO_NODES,    /* the service has no nodes at all: 404 */
    MC_LB_ALL_EJECTED, /* nothing excluded, and every node is ejected: 503 */
    MC_LB_ALL_TRIED    /* every node not ejected was already tried in this call: report the
                          last attempt's error (e.g. 502 when each one refused) */
};

/* Creates a balancer using ops (not copied; usually one of the mc_lb_*_ops) and clock (must
 * outlive the lb), with its random generator seeded by seed. Never NULL; mc_lb_free() frees. */
struct mc_lb *mc_lb_new(const struct mc_lb_selector_ops *ops, const struct mc_clock *clock,
                        uint64_t seed);
/* Frees the lb and every endpoint it holds (pointers to them die with it). NULL is a no-op. */
void mc_lb_free(struct mc_lb *lb);

/* Picks a node of service among addresses[0..n) ("host:port" strings of its current nodes, as
 * the registry view lists them; not kept), skipping the exclude_n addresses in exclude (nodes
 * already tried by this call, so a retry goes elsewhere) and ejected endpoints. Endpoint state
 * is created on first sight of an address. Returns the endpoint, or NULL with *status saying
 * why (status may be NULL). The endpoint stays valid while a call on it is in flight, so call
 * mc_lb_call_start() before the next mc_lb_* call, and drop the pointer after mc_lb_call_done(). */
struct mc_lb_endpoint *mc_lb_pick(struct mc_lb *lb, const char *service,
                                  const char *const *addresses, size_t n,
                                  const char *const *exclude, size_t exclude_n,
                                  enum mc_lb_status *status);
/* The same, for a caller that keeps its address lists (mc_upstream does, per service, until the
 * registry changes): list_id, nonzero, names this exact list of addresses, so when the last
 * pick for service passed the same id the balancer reuses its endpoint table for the service
 * instead of looking every address up. On a first attempt (nothing to exclude) while no
 * endpoint is ejected, a pick then costs the selector's work alone, whatever the node count.
 * list_id 0 is mc_lb_pick. */
struct mc_lb_endpoint *mc_lb_pick_list(struct mc_lb *lb, const char *service, uint64_t list_id,
                                       const char *const *addresses, size_t n,
                                       const char *const *exclude, size_t exclude_n,
                                       enum mc_lb_status *status);

/* Marks a call on ep as started (in-flight + 1). */
void mc_lb_call_start(struct mc_lb_endpoint *ep);
/* Marks a call started with mc_lb_call_start as finished after latency_us. ok is nonzero for
 * success; a failure (connect error, timeout, 5xx-class error: the caller decides) counts
 * toward ejection, a success resets the consecutive-failure count. Latency: a success feeds the
 * peak-EWMA; a failure only raises it (a slow failure such as a timeout is a real peak, but a
 * fast "connection refused" must not make a broken node look fast: ejection handles those). */
void mc_lb_call_done(struct mc_lb_endpoint *ep, int ok, uint64_t latency_us);

/* Reading endpoints, for /metrics and tests. Endpoints are kept sorted by address;
 * mc_lb_endpoint_at(lb, i) for i below mc_lb_endpoint_count(lb) walks them in that order. */
size_t mc_lb_endpoint_count(const struct mc_lb *lb);
struct mc_lb_endpoint *mc_lb_endpoint_at(const struct mc_lb *lb, size_t i);
/* The endpoint for address, or NULL if the lb has none. */
struct mc_lb_endpoint *mc_lb_endpoint_find(const struct mc_lb *lb, const char *address);
const char *mc_lb_endpoint_address(const struct mc_lb_endpoint *ep);
unsigned mc_lb_endpoint_inflight(const struct mc_lb_endpoint *ep);
unsigned mc_lb_endpoint_failures(const struct mc_lb_endpoint *ep); /* consecutive */
unsigned mc_lb_endpoint_times_ejected(const struct mc_lb_endpoint *ep);
/* Peak-EWMA latency in microseconds as of now: with no new sample it decays toward 0 (as
 * Finagle and Linkerd do), so a node that once spiked is eventually tried again. 0 if no
 * sample yet. */
double mc_lb_endpoint_ewma_us(const struct mc_lb_endpoint *ep);
/* Milliseconds of ejection left; 0 when the endpoint is eligible. */
uint64_t mc_lb_endpoint_ejected_ms(const struct mc_lb_endpoint *ep);
/* The p2c cost: ewma x (in-flight + 1); an endpoint with no sample yet costs 0 when idle (so
 * new nodes get tried) and MC_LB_PENALTY_US + in-flight when busy (as Finagle's P2C). */
double mc_lb_endpoint_load(const struct mc_lb_endpoint *ep);

/* For selectors: 64 random bits, and a uniform number below n (n >= 1). */
uint64_t mc_lb_random(struct mc_lb *lb);
size_t mc_lb_random_below(struct mc_lb *lb, size_t n);
/* For selectors, only inside pick(): a 64-bit word of state kept per service name for the
 * selector (0 when the service is first seen), e.g. the round-robin counter. */
uint64_t *mc_lb_selector_state(struct mc_lb *lb);

#endif
