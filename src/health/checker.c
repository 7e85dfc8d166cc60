/* App health checker. */
#include "health/checker.h"

#include <stdio.h>
#include <string.h>

#include "http/url.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/log.h"

struct mc_health_probe {
    struct mc_http_call *call;
    mc_health_probe_cb cb;
    void *ctx;
    int status;
    int bad_url;
};

static void on_probe_head(struct mc_http_call *call, const struct mc_http_response_head *head,
                          void *ctx)
{
    (void)call;
    struct mc_health_probe *p = ctx;
    p->status = head->status;
}

static void on_probe_done(struct mc_http_call *call, int err, int retryable, void *ctx)
{
    (void)call;
    (void)retryable;
    struct mc_health_probe *p = ctx;
    struct mc_health_result r = {p->status, ""};
    char reason[160];
    if (p->bad_url) {
        r.reason = "invalid health check URL (http://host:port/path expected)";
    } else if (err < 0 && p->status == 0) {
        snprintf(reason, sizeof reason, "%s", mc_strerror(err));
        r.reason = reason;
    }
    mc_health_probe_cb cb = p->cb;
    void *cb_ctx = p->ctx;
    mc_free(p);
    cb(cb_ctx, &r);
}

struct mc_health_probe *mc_health_probe_start(struct mc_http_client *client, const char *url,
                                              uint64_t timeout_ms, mc_health_probe_cb cb, void *ctx)
{
    struct mc_health_probe *p = mc_calloc(1, sizeof *p);
    p->cb = cb;
    p->ctx = ctx;
    struct mc_url u;
    if (mc_url_parse(url, &u) < 0 || u.tls) {
        /* The client reports an unusable address on the next loop turn, like every other
         * outcome, so a bad URL takes the same path (and the same cancel) as a good one. */
        if (u.address)
            mc_url_close(&u);
        p->bad_url = 1;
        struct mc_http_call_options o = {
            .address = "", .method = "GET", .target = "/", .on_done = on_probe_done, .ctx = p};
        p->call = mc_http_call_start(client, &o);
        return p;
    }
    struct mc_http_header headers[] = {{"Host", u.host}, {"User-Agent", "micro-sidecar"}};
    struct mc_http_call_options o = {
        .address = u.address,
        .method = "GET",
        .target = u.target,
        .headers = headers,
        .header_count = 2,
        .dial_timeout_ms = timeout_ms,
        .timeout_ms = timeout_ms,
        .buffer_body = 1,
        .max_body = 64 * 1024,
        .on_head = on_probe_head,
        .on_done = on_probe_done,
        .ctx = p,
    };
    p->call = mc_http_call_start(client, &o);
    mc_url_close(&u);
    return p;
}

void mc_health_probe_cancel(struct mc_health_probe *p)
{
    mc_http_call_cancel(p->call);
    mc_free(p);
}

struct mc_health_checker {
    uv_timer_t timer;
    struct mc_http_client *client;
    struct mc_health_probe *probe; /* in flight, or NULL */
    char *url;
    uint64_t interval_ms, timeout_ms;
    int rise, fall;
    mc_health_change_cb on_change;
    void *ctx;
    int healthy;               /* -1 unknown (before the first pass), 0, 1 */
    int passes, fails;         /* consecutive */
    uint64_t startup_delay_ms; /* next retry while the app has never answered */
};

/* While the app has never passed (it is usually still starting), checks come sooner than the
 * interval: 250 ms, doubling up to the interval, so registration follows the app's start
 * closely instead of a whole interval later. */
#define STARTUP_FIRST_RETRY_MS 250

static void checker_closed(uv_handle_t *h)
{
    struct mc_health_checker *hc = h->data;
    mc_free(hc->url);
    mc_free(hc);
}

static void check_now(uv_timer_t *t);

/* Hysteresis: unknown -> healthy on the first pass (the app registers as soon as it is up);
 * healthy -> unhealthy after `fall` consecutive failures; unhealthy -> healthy after `rise`
 * consecutive passes. */
static int next_state(const struct mc_health_checker *hc, int ok)
{
    switch (hc->healthy) {
    case -1:
        return ok ? 1 : -1;
    case 1:
        return !ok && hc->fails >= hc->fall ? 0 : 1;
    default:
        return ok && hc->passes >= hc->rise ? 1 : 0;
    }
}

static void on_check(void *ctx, const struct mc_health_result *r)
{
    struct mc_health_checker *hc = ctx;
    hc->probe = NULL;
    int ok = r->status == 200;
    if (ok) {
        hc->passes++;
        hc->fails = 0;
    } else {
        hc->fails++;
        hc->passes = 0;
        char why[176];
        if (r->status)
            snprintf(why, sizeof why, "status %d", r->status);
        else
            snprintf(why, sizeof why, "%s", r->reason);
        /* Before the first pass the app is most likely still starting: say so once instead of
         * a warning per early retry. */
        if (hc->healthy != -1)
            mc_log_warn("health check %s failed: %s", hc->url, why);
        else if (hc->fails == 1)
            mc_log_info("waiting for the app at %s (%s); checking again from %dms up to every "
                        "%llums",
                        hc->url, why, STARTUP_FIRST_RETRY_MS, (unsigned long long)hc->interval_ms);
    }
    int next = next_state(hc, ok);
    if (next != hc->healthy) {
        hc->healthy = next;
        mc_log_info("app health changed: %s (%s)", next ? "healthy" : "unhealthy", hc->url);
        hc->on_change(hc->ctx, next);
    }
    uint64_t delay = hc->interval_ms;
    if (hc->healthy == -1) {
        delay = hc->startup_delay_ms < hc->interval_ms ? hc->startup_delay_ms : hc->interval_ms;
        hc->startup_delay_ms *= 2;
    }
    uv_timer_start(&hc->timer, check_now, delay, 0);
}

static void check_now(uv_timer_t *t)
{
    struct mc_health_checker *hc = t->data;
    hc->probe = mc_health_probe_start(hc->client, hc->url, hc->timeout_ms, on_check, hc);
}

struct mc_health_checker *mc_health_checker_new(uv_loop_t *loop, struct mc_http_client *client,
                                                const struct mc_health_checker_config *config)
{
    struct mc_health_checker *hc = mc_calloc(1, sizeof *hc);
    hc->client = client;
    hc->url = mc_strdup(config->url);
    hc->interval_ms = config->interval_ms;
    hc->timeout_ms = config->timeout_ms;
    hc->rise = config->rise;
    hc->fall = config->fall;
    hc->on_change = config->on_change;
    hc->ctx = config->ctx;
    hc->healthy = -1;
    hc->startup_delay_ms = STARTUP_FIRST_RETRY_MS;
    uv_timer_init(loop, &hc->timer);
    hc->timer.data = hc;
    uv_timer_start(&hc->timer, check_now, 0, 0);
    return hc;
}

void mc_health_checker_free(struct mc_health_checker *hc)
{
    if (!hc)
        return;
    if (hc->probe)
        mc_health_probe_cancel(hc->probe);
    hc->probe = NULL;
    uv_close((uv_handle_t *)&hc->timer, checker_closed);
}
