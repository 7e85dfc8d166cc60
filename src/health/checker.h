/* The app health checker (SPEC 5): polls --healthcheck_url every interval with a timeout and
 * reports transitions with rise/fall hysteresis, so one failed check never deregisters. */
#ifndef MC_HEALTH_CHECKER_H
#define MC_HEALTH_CHECKER_H

#include <stdint.h>
#include <uv.h>

#include "http/client.h"

/* The outcome of one probe: status is the app's HTTP status, or 0 when it could not be
 * reached (reason says why). */
struct mc_health_result {
    int status;
    const char *reason;
};

typedef void (*mc_health_probe_cb)(void *ctx, const struct mc_health_result *result);
/* healthy flips: 1 after rise consecutive passes (or the very first pass), 0 after fall
 * consecutive failures. */
typedef void (*mc_health_change_cb)(void *ctx, int healthy);

/* One GET of url bounded by timeout_ms; cb runs exactly once (also for a bad URL, on the next
 * loop turn), unless the probe is cancelled first. The probe frees itself after cb. */
struct mc_health_probe;
struct mc_health_probe *mc_health_probe_start(struct mc_http_client *client, const char *url,
                                              uint64_t timeout_ms, mc_health_probe_cb cb,
                                              void *ctx);
/* Abandons a probe: no callback, its connection closed, its memory freed. */
void mc_health_probe_cancel(struct mc_health_probe *probe);

struct mc_health_checker_config {
    const char *url; /* copied */
    uint64_t interval_ms, timeout_ms;
    int rise, fall;
    mc_health_change_cb on_change;
    void *ctx;
};

/* Starts checking at once, then every interval. mc_health_checker_free cancels a probe in
 * flight and frees the checker once its timer is closed. */
struct mc_health_checker *mc_health_checker_new(uv_loop_t *loop, struct mc_http_client *client,
                                                const struct mc_health_checker_config *config);
void mc_health_checker_free(struct mc_health_checker *hc);

#endif
