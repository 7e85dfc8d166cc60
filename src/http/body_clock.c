/* The request body's time bound (mod_reqtimeout's body=T,MinRate=R): see body_clock.h. */
#include "http/body_clock.h"

void mc_http_body_clock_start(struct mc_http_body_clock *c, uint64_t now)
{
    /* Loop time 0 is the loop's first millisecond, not "stopped". */
    c->start = c->last = now ? now : 1;
    c->bytes = 0;
    c->paused_at = 0;
}

void mc_http_body_clock_stop(struct mc_http_body_clock *c)
{
    c->start = 0;
    c->paused_at = 0;
}

void mc_http_body_clock_add(struct mc_http_body_clock *c, uint64_t now, uint64_t len)
{
    c->bytes += len;
    if (now > c->last)
        c->last = now;
}

void mc_http_body_clock_pause(struct mc_http_body_clock *c, uint64_t now)
{
    if (c->start && !c->paused_at)
        c->paused_at = now ? now : 1;
}

void mc_http_body_clock_resume(struct mc_http_body_clock *c, uint64_t now)
{
    if (!c->start || !c->paused_at)
        return;
    uint64_t held = now > c->paused_at ? now - c->paused_at : 0;
    c->start += held;
    c->last += held;
    c->paused_at = 0;
}

uint64_t mc_http_body_clock_deadline(const struct mc_http_body_clock *c, uint64_t timeout_ms,
                                     uint64_t min_rate)
{
    if (!c->start || c->paused_at)
        return 0;
    uint64_t stall = c->last + timeout_ms;
    if (!min_rate)
        return stall;
    /* bytes / rate seconds of credit; past ~584 million years of it, no rate bound. */
    if (c->bytes > UINT64_MAX / 1000)
        return stall;
    uint64_t rate = c->start + timeout_ms + c->bytes * 1000 / min_rate;
    return rate < stall ? rate : stall;
}

enum mc_http_body_verdict mc_http_body_clock_check(const struct mc_http_body_clock *c, uint64_t now,
                                                   uint64_t timeout_ms, uint64_t min_rate)
{
    uint64_t due = mc_http_body_clock_deadline(c, timeout_ms, min_rate);
    if (!due || now < due)
        return MC_HTTP_BODY_OK;
    return now >= c->last + timeout_ms ? MC_HTTP_BODY_STALLED : MC_HTTP_BODY_SLOW;
}
