/* The random selector: every eligible node equally likely, from the lb's seeded generator. */
#include "lb/lb.h"

static size_t random_pick(struct mc_lb *lb, struct mc_lb_endpoint *const *candidates, size_t n,
                          const char *service)
{
    (void)candidates;
    (void)service;
    return mc_lb_random_below(lb, n);
}

const struct mc_lb_selector_ops mc_lb_random_ops = {"random", random_pick};
