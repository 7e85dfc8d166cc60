/* The power-of-two-choices selector (Linkerd's and Finagle's default): draw two distinct
 * candidates at random and take the one with the lower load, peak-EWMA latency x (in-flight
 * + 1). Two random draws avoid the herd that "always the least loaded" causes when every
 * sidecar sees the same stale numbers, while still steering away from slow or busy nodes. */
#include "lb/lb.h"

static size_t p2c_pick(struct mc_lb *lb, struct mc_lb_endpoint *const *candidates, size_t n,
                       const char *service)
{
    (void)service;
    if (n < 2)
        return 0;
    size_t a = mc_lb_random_below(lb, n);
    size_t b = mc_lb_random_below(lb, n - 1);
    if (b >= a)
        b++; /* distinct from a, still uniform over the others */
    return mc_lb_endpoint_load(candidates[b]) < mc_lb_endpoint_load(candidates[a]) ? b : a;
}

const struct mc_lb_selector_ops mc_lb_p2c_ops = {"p2c", p2c_pick};
