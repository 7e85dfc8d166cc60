/* The request body's time bound, shared by the HTTP/1 and HTTP/2 codecs: the rule of Apache's
 * mod_reqtimeout "body=T,MinRate=R". A body must keep coming (no silence longer than T) and,
 * once its first T have passed, keep an average rate of at least R bytes/s measured from its
 * start: the deadline is min(last progress + T, start + T + bytes / R). A slow-body client
 * (slowloris) is cut after about T whatever it trickles; an upload at any normal rate only
 * pushes its deadline further. Time the handler held the body paused (backpressure from a
 * node) is not counted against the client. Pure arithmetic on loop milliseconds: no I/O. */
#ifndef MC_HTTP_BODY_CLOCK_H
#define MC_HTTP_BODY_CLOCK_H

#include <stdint.h>

struct mc_http_body_clock {
    uint64_t start;     /* loop ms the body began, moved later by pauses; 0: not running */
    uint64_t last;      /* loop ms of the last progress (or the start, or a resume) */
    uint64_t bytes;     /* received since the start */
    uint64_t paused_at; /* loop ms the handler paused the body; 0: not paused */
};

/* Why a deadline passed. */
enum mc_http_body_verdict {
    MC_HTTP_BODY_OK,      /* not passed (or the clock is stopped or paused) */
    MC_HTTP_BODY_STALLED, /* nothing came for the timeout */
    MC_HTTP_BODY_SLOW,    /* under the minimum average rate */
};

/* Starts (or restarts) the clock at now for a new body. */
void mc_http_body_clock_start(struct mc_http_body_clock *c, uint64_t now);
/* The body ended or no longer matters: the clock stops (its deadline is 0). */
void mc_http_body_clock_stop(struct mc_http_body_clock *c);
static inline int mc_http_body_clock_running(const struct mc_http_body_clock *c)
{
    return c->start != 0;
}
/* len body bytes came at now. */
void mc_http_body_clock_add(struct mc_http_body_clock *c, uint64_t now, uint64_t len);
/* The handler stopped taking the body (not the client's doing) / takes it again: the time in
 * between moves the start and the last progress later. */
void mc_http_body_clock_pause(struct mc_http_body_clock *c, uint64_t now);
void mc_http_body_clock_resume(struct mc_http_body_clock *c, uint64_t now);
/* The loop ms the body must have progressed by, under timeout_ms (> 0) and min_rate bytes/s
 * (0: no rate rule); 0 when stopped or paused (no bound on the client meanwhile). */
uint64_t mc_http_body_clock_deadline(const struct mc_http_body_clock *c, uint64_t timeout_ms,
                                     uint64_t min_rate);
/* Whether, at now, the deadline has passed, and which rule ended it. */
enum mc_http_body_verdict mc_http_body_clock_check(const struct mc_http_body_clock *c, uint64_t now,
                                                   uint64_t timeout_ms, uint64_t min_rate);

#endif
