/* Clocks. */
#include "util/clock.h"

#include <time.h>

static uint64_t monotonic_now_ms(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const struct mc_clock mc_clock_monotonic = {monotonic_now_ms, NULL};
