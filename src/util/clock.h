/* An injectable millisecond clock, so TTLs, EWMAs and ejections can be tested without sleeping. */
#ifndef MC_UTIL_CLOCK_H
#define MC_UTIL_CLOCK_H

#include <stdint.h>

struct mc_clock {
    uint64_t (*now_ms)(void *ctx); /* monotonic milliseconds */
    void *ctx;
};

/* The process's monotonic clock (CLOCK_MONOTONIC); ctx unused. */
extern const struct mc_clock mc_clock_monotonic;

static inline uint64_t mc_clock_now(const struct mc_clock *clock)
{
    return clock->now_ms(clock->ctx);
}

#endif
