/* The round-robin selector: a real one across calls. The candidate list is rebuilt from the
 * registry view on every call, so the position lives in the lb, one counter per service name;
 * the view keeps nodes in a stable order, so successive calls cycle through them. */
#include "lb/lb.h"

static size_t roundrobin_pick(struct mc_lb *lb, struct mc_lb_endpoint *const *candidates, size_t n,
                              const char *service)
{
    (void)candidates;
    (void)service;
    uint64_t *next = mc_lb_selector_state(lb);
    return (size_t)((*next)++ % n);
}

const struct mc_lb_selector_ops mc_lb_roundrobin_ops = {"roundrobin", roundrobin_pick};
