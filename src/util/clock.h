/* An injectable millisecond clock, so TTLs, EWMAs and ejections can be tested without sleeping. */
#ifndef MC_UTIL_CLOCK_H
#define MC_UTIL_CLOCK_H

#include <stddef.h>
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

/* Milliseconds as a user types them in a flag: whole seconds as "10s", anything else as
 * "1500ms"; into out (len bytes, always NUL-terminated). */
void mc_duration_text(char *out, size_t len, uint64_t ms);

#endif
