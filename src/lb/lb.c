/* The load balancer's state: endpoints and services in sorted arrays, peak-EWMA bookkeeping,
 * passive outlier ejection, and mc_lb_pick, which filters the candidates (only when some node
 * is excluded or ejected) and asks the selector. */
#include "lb/lb.h"

#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "util/alloc.h"
#include "util/decay.h"
#include "util/log.h"

#define PRUNE_EVERY_MS 60000

/* Per service name: the selector's word and the node list of the latest pick, which is what
 * "half of a service's nodes" means when a failure is reported later. */
struct lb_service {
    char *name;
    uint64_t selector_state;
    struct mc_lb_endpoint **nodes; /* not owned: endpoints live in lb->eps */
    size_t n_nodes, cap_nodes;
    uint64_t list_id; /* the caller's id of the address list nodes[] was built from; 0: none */
    uint64_t last_seen_ms;
};

struct mc_lb_endpoint {
    struct mc_lb *lb;
    char *address;
    struct lb_service *svc; /* the service it was last picked for (ejection cap), or NULL */
    unsigned inflight;
    int has_sample;
    double cost_us;    /* peak-EWMA as of stamp_ms */
    uint64_t stamp_ms; /* time of the last sample */
    unsigned failures; /* consecutive */
    unsigned times_ejected;
    uint64_t ejected_until_ms; /* 0 when never ejected */
    int ejection_logged;       /* its last ejection was logged and its return not yet */
    uint64_t last_seen_ms;     /* last pick whose address list named it */
};

struct mc_lb {
    const struct mc_lb_selector_ops *ops;
    const struct mc_clock *clock;
    uint64_t rng;
    struct mc_lb_endpoint **eps; /* owned, sorted by address */
    size_t n_eps, cap_eps;
    struct lb_service **svcs; /* owned, sorted by name */
    size_t n_svcs, cap_svcs;
    struct mc_lb_endpoint **scratch; /* candidate list handed to the selector */
    size_t cap_scratch;
    struct lb_service *current; /* the service being picked for, for mc_lb_selector_state */
    uint64_t last_prune_ms;
    /* What lets a pick skip filtering its candidates: no endpoint is ejected before this
     * time (the latest ejection's end), and none has a return still to log. */
    uint64_t ejected_until_max;
    size_t ejections_logged;
};

static uint64_t now_ms(const struct mc_lb *lb)
{
    return mc_clock_now(lb->clock);
}

/* Binary search over an array of pointers to structs sorted by the string at key_offset in
 * each: the index of key, or where it would be inserted, and whether it was found. */
static size_t find_sorted(void *const *arr, size_t n, size_t key_offset, const char *key,
                          int *found)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(*(char *const *)((const char *)arr[mid] + key_offset), key);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

static size_t find_ep(const struct mc_lb *lb, const char *address, int *found)
{
    return find_sorted((void *const *)lb->eps, lb->n_eps, offsetof(struct mc_lb_endpoint, address),
                       address, found);
}

static size_t find_svc(const struct mc_lb *lb, const char *name, int *found)
{
    return find_sorted((void *const *)lb->svcs, lb->n_svcs, offsetof(struct lb_service, name), name,
                       found);
}

/* Grows an array of pointers so it holds at least need entries. */
static void *grow(void *arr, size_t *cap, size_t need)
{
    if (need <= *cap)
        return arr;
    size_t c = *cap ? *cap * 2 : 8;
    while (c < need)
        c *= 2;
    *cap = c;
    return mc_realloc(arr, c * sizeof(void *));
}

static struct mc_lb_endpoint *get_ep(struct mc_lb *lb, const char *address)
{
    int found;
    size_t i = find_ep(lb, address, &found);
    if (found)
        return lb->eps[i];
    struct mc_lb_endpoint *ep = mc_calloc(1, sizeof *ep);
    ep->lb = lb;
    ep->address = mc_strdup(address);
    lb->eps = grow(lb->eps, &lb->cap_eps, lb->n_eps + 1);
    memmove(lb->eps + i + 1, lb->eps + i, (lb->n_eps - i) * sizeof *lb->eps);
    lb->eps[i] = ep;
    lb->n_eps++;
    return ep;
}

static struct lb_service *get_svc(struct mc_lb *lb, const char *name)
{
    int found;
    size_t i = find_svc(lb, name, &found);
    if (found)
        return lb->svcs[i];
    struct lb_service *svc = mc_calloc(1, sizeof *svc);
    svc->name = mc_strdup(name);
    lb->svcs = grow(lb->svcs, &lb->cap_svcs, lb->n_svcs + 1);
    memmove(lb->svcs + i + 1, lb->svcs + i, (lb->n_svcs - i) * sizeof *lb->svcs);
    lb->svcs[i] = svc;
    lb->n_svcs++;
    return svc;
}

static void svc_free(struct lb_service *svc)
{
    if (!svc)
        return;
    mc_free(svc->nodes);
    mc_free(svc->name);
    mc_free(svc);
}

static int is_ejected(const struct mc_lb_endpoint *ep, uint64_t now)
{
    return ep->ejected_until_ms > now;
}

/* Forgets endpoints and services not named by any pick for MC_LB_PRUNE_AFTER_MS, so a
 * registry that churns through addresses does not grow the tables forever. An endpoint with a
 * call in flight is kept whatever its age: the caller still holds its pointer. */
static void prune(struct mc_lb *lb, uint64_t now)
{
    size_t keep = 0;
    for (size_t i = 0; i < lb->n_svcs; i++) {
        struct lb_service *svc = lb->svcs[i];
        if (now - svc->last_seen_ms < MC_LB_PRUNE_AFTER_MS) {
            lb->svcs[keep++] = svc;
            continue;
        }
        for (size_t j = 0; j < lb->n_eps; j++)
            if (lb->eps[j]->svc == svc)
                lb->eps[j]->svc = NULL;
        svc_free(svc);
    }
    lb->n_svcs = keep;

    /* A pick that reuses its service's endpoint table does not stamp each endpoint: the ones a
     * live service still lists were seen when it was. */
    for (size_t i = 0; i < lb->n_svcs; i++) {
        struct lb_service *svc = lb->svcs[i];
        for (size_t j = 0; j < svc->n_nodes; j++)
            if (svc->nodes[j]->last_seen_ms < svc->last_seen_ms)
                svc->nodes[j]->last_seen_ms = svc->last_seen_ms;
    }

    keep = 0;
    for (size_t i = 0; i < lb->n_eps; i++) {
        struct mc_lb_endpoint *ep = lb->eps[i];
        if (ep->inflight > 0 || now - ep->last_seen_ms < MC_LB_PRUNE_AFTER_MS) {
            lb->eps[keep++] = ep;
            continue;
        }
        for (size_t s = 0; s < lb->n_svcs; s++) {
            struct lb_service *svc = lb->svcs[s];
            size_t k = 0;
            for (size_t j = 0; j < svc->n_nodes; j++)
                if (svc->nodes[j] != ep)
                    svc->nodes[k++] = svc->nodes[j];
            if (k != svc->n_nodes)
                svc->list_id = 0; /* no longer the caller's list */
            svc->n_nodes = k;
        }
        if (ep->ejection_logged)
            lb->ejections_logged--;
        mc_free(ep->address);
        mc_free(ep);
    }
    lb->n_eps = keep;
}

struct mc_lb *mc_lb_new(const struct mc_lb_selector_ops *ops, const struct mc_clock *clock,
                        uint64_t seed)
{
    struct mc_lb *lb = mc_calloc(1, sizeof *lb);
    lb->ops = ops;
    lb->clock = clock;
    lb->rng = seed;
    lb->last_prune_ms = now_ms(lb);
    return lb;
}

void mc_lb_free(struct mc_lb *lb)
{
    if (!lb)
        return;
    for (size_t i = 0; i < lb->n_eps; i++) {
        mc_free(lb->eps[i]->address);
        mc_free(lb->eps[i]);
    }
    for (size_t i = 0; i < lb->n_svcs; i++)
        svc_free(lb->svcs[i]);
    mc_free(lb->eps);
    mc_free(lb->svcs);
    mc_free(lb->scratch);
    mc_free(lb);
}

static int is_excluded(const char *address, const char *const *exclude, size_t exclude_n)
{
    for (size_t i = 0; i < exclude_n; i++)
        if (strcmp(address, exclude[i]) == 0)
            return 1;
    return 0;
}

struct mc_lb_endpoint *mc_lb_pick(struct mc_lb *lb, const char *service,
                                  const char *const *addresses, size_t n,
                                  const char *const *exclude, size_t exclude_n,
                                  enum mc_lb_status *status)
{
    return mc_lb_pick_list(lb, service, 0, addresses, n, exclude, exclude_n, status);
}

/* The eligible nodes of svc (not excluded, not ejected) into lb->scratch; logs the return of
 * nodes whose ejection has ended. Returns how many, and counts the excluded ones. */
static size_t filter_candidates(struct mc_lb *lb, struct lb_service *svc, uint64_t now,
                                const char *const *exclude, size_t exclude_n, size_t *excluded)
{
    lb->scratch = grow(lb->scratch, &lb->cap_scratch, svc->n_nodes);
    size_t m = 0;
    *excluded = 0;
    for (size_t i = 0; i < svc->n_nodes; i++) {
        struct mc_lb_endpoint *ep = svc->nodes[i];
        if (ep->ejection_logged && !is_ejected(ep, now)) {
            /* Its ejection ended: it is back among the candidates from this pick on. */
            mc_log_info("node %s of %s back in rotation after its ejection", ep->address,
                        svc->name);
            ep->ejection_logged = 0;
            lb->ejections_logged--;
        }
        if (is_excluded(ep->address, exclude, exclude_n))
            (*excluded)++;
        else if (!is_ejected(ep, now))
            lb->scratch[m++] = ep;
    }
    return m;
}

struct mc_lb_endpoint *mc_lb_pick_list(struct mc_lb *lb, const char *service, uint64_t list_id,
                                       const char *const *addresses, size_t n,
                                       const char *const *exclude, size_t exclude_n,
                                       enum mc_lb_status *status)
{
    enum mc_lb_status dummy;
    if (!status)
        status = &dummy;
    if (n == 0) {
        *status = MC_LB_NO_NODES;
        return NULL;
    }
    uint64_t now = now_ms(lb);
    if (now - lb->last_prune_ms >= PRUNE_EVERY_MS) {
        prune(lb, now);
        lb->last_prune_ms = now;
    }

    struct lb_service *svc = get_svc(lb, service);
    svc->last_seen_ms = now;
    if (list_id == 0 || svc->list_id != list_id || svc->n_nodes != n) {
        svc->nodes = grow(svc->nodes, &svc->cap_nodes, n);
        for (size_t i = 0; i < n; i++) {
            struct mc_lb_endpoint *ep = get_ep(lb, addresses[i]);
            ep->last_seen_ms = now;
            svc->nodes[i] = ep;
        }
        svc->n_nodes = n;
        svc->list_id = list_id;
    }

    struct mc_lb_endpoint *const *candidates = svc->nodes;
    size_t m = n;
    if (exclude_n > 0 || now < lb->ejected_until_max || lb->ejections_logged > 0) {
        size_t excluded;
        m = filter_candidates(lb, svc, now, exclude, exclude_n, &excluded);
        if (m == 0) {
            *status = excluded ? MC_LB_ALL_TRIED : MC_LB_ALL_EJECTED;
            return NULL;
        }
        candidates = lb->scratch;
    }

    lb->current = svc;
    size_t k = m == 1 ? 0 : lb->ops->pick(lb, candidates, m, service);
    lb->current = NULL;
    struct mc_lb_endpoint *ep = candidates[k < m ? k : 0];
    ep->svc = svc;
    *status = MC_LB_PICKED;
    return ep;
}

void mc_lb_call_start(struct mc_lb_endpoint *ep)
{
    ep->inflight++;
}

/* Ejects ep unless that would leave more than half of its service's nodes ejected; when the
 * cap holds it back, the failures stay counted and the next failure asks again. */
static void maybe_eject(struct mc_lb_endpoint *ep, uint64_t now)
{
    struct lb_service *svc = ep->svc;
    if (!svc)
        return; /* no node list to apply the cap to: stay on the safe side */
    size_t ejected = 0;
    for (size_t i = 0; i < svc->n_nodes; i++)
        if (svc->nodes[i] != ep && is_ejected(svc->nodes[i], now))
            ejected++;
    if ((ejected + 1) * 2 > svc->n_nodes)
        return;
    /* A node that has behaved for the longest ejection starts its backoff over (as Envoy
     * decays its ejection multiplier), so one bad hour is not held against it forever. */
    if (ep->times_ejected && now - ep->ejected_until_ms >= MC_LB_EJECT_MAX_MS)
        ep->times_ejected = 0;
    ep->times_ejected++;
    uint64_t span = (uint64_t)MC_LB_EJECT_BASE_MS * ep->times_ejected;
    if (span > MC_LB_EJECT_MAX_MS)
        span = MC_LB_EJECT_MAX_MS;
    ep->ejected_until_ms = now + span;
    if (ep->ejected_until_ms > ep->lb->ejected_until_max)
        ep->lb->ejected_until_max = ep->ejected_until_ms;
    ep->failures = 0;
    /* At most one line per node per ejection (30 s and more apart): no rate limit needed. */
    mc_log_warn("node %s of %s ejected for %llus after %d consecutive failures", ep->address,
                svc->name, (unsigned long long)(span / 1000), MC_LB_EJECT_FAILURES);
    if (!ep->ejection_logged)
        ep->lb->ejections_logged++;
    ep->ejection_logged = 1;
}

static double decay_weight(uint64_t from_ms, uint64_t to_ms)
{
    double elapsed = to_ms > from_ms ? (double)(to_ms - from_ms) : 0.0;
    return mc_exp_neg(elapsed / MC_LB_EWMA_TAU_MS);
}

void mc_lb_call_done(struct mc_lb_endpoint *ep, int ok, uint64_t latency_us)
{
    uint64_t now = now_ms(ep->lb);
    double sample = (double)latency_us;
    if (ep->inflight > 0)
        ep->inflight--;
    if (!ep->has_sample || sample > ep->cost_us) {
        /* The peak: a slow sample takes over at once, so a degrading node is shed quickly. */
        ep->cost_us = sample;
        ep->stamp_ms = now;
        ep->has_sample = 1;
    } else if (ok) {
        double w = decay_weight(ep->stamp_ms, now);
        ep->cost_us = ep->cost_us * w + sample * (1.0 - w);
        ep->stamp_ms = now;
    }
    if (ok) {
        ep->failures = 0;
        return;
    }
    ep->failures++;
    if (ep->failures >= MC_LB_EJECT_FAILURES && !is_ejected(ep, now))
        maybe_eject(ep, now);
}

size_t mc_lb_endpoint_count(const struct mc_lb *lb)
{
    return lb->n_eps;
}

struct mc_lb_endpoint *mc_lb_endpoint_at(const struct mc_lb *lb, size_t i)
{
    return i < lb->n_eps ? lb->eps[i] : NULL;
}

struct mc_lb_endpoint *mc_lb_endpoint_find(const struct mc_lb *lb, const char *address)
{
    int found;
    size_t i = find_ep(lb, address, &found);
    return found ? lb->eps[i] : NULL;
}

const char *mc_lb_endpoint_address(const struct mc_lb_endpoint *ep)
{
    return ep->address;
}

unsigned mc_lb_endpoint_inflight(const struct mc_lb_endpoint *ep)
{
    return ep->inflight;
}

unsigned mc_lb_endpoint_failures(const struct mc_lb_endpoint *ep)
{
    return ep->failures;
}

unsigned mc_lb_endpoint_times_ejected(const struct mc_lb_endpoint *ep)
{
    return ep->times_ejected;
}

double mc_lb_endpoint_ewma_us(const struct mc_lb_endpoint *ep)
{
    if (!ep->has_sample)
        return 0.0;
    /* Decay toward 0 as if a zero sample were observed now, without storing it, so reading
     * (for metrics or picks) never changes what the next real sample does. */
    return ep->cost_us * decay_weight(ep->stamp_ms, now_ms(ep->lb));
}

uint64_t mc_lb_endpoint_ejected_ms(const struct mc_lb_endpoint *ep)
{
    uint64_t now = now_ms(ep->lb);
    return is_ejected(ep, now) ? ep->ejected_until_ms - now : 0;
}

double mc_lb_endpoint_load(const struct mc_lb_endpoint *ep)
{
    double cost = mc_lb_endpoint_ewma_us(ep);
    if (cost == 0.0 && ep->inflight > 0)
        return MC_LB_PENALTY_US + ep->inflight;
    return cost * (ep->inflight + 1);
}

/* splitmix64: tiny, seedable with any value (0 included) and good enough to spread load. */
uint64_t mc_lb_random(struct mc_lb *lb)
{
    uint64_t z = (lb->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

size_t mc_lb_random_below(struct mc_lb *lb, size_t n)
{
    /* Modulo bias is below n / 2^64: far under anything a load test could see. */
    return (size_t)(mc_lb_random(lb) % n);
}

uint64_t *mc_lb_selector_state(struct mc_lb *lb)
{
    return &lb->current->selector_state;
}

const struct mc_lb_selector_ops *mc_lb_selector_find(const char *name)
{
    static const struct mc_lb_selector_ops *const all[] = {&mc_lb_random_ops, &mc_lb_roundrobin_ops,
                                                           &mc_lb_p2c_ops};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}
