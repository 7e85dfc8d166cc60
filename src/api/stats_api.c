/* GET /stats (the JSON snapshot or the dashboard page) and GET /metrics (Prometheus). */
#include <jansson.h>
#include <string.h>

#include "api/api.h"
#include "stats/stats.h"

static int wants_json(const struct mc_http_request *req)
{
    const char *ct = req->content_type;
    const char *accept = mc_http_request_header(req, "Accept");
    return (ct && strstr(ct, "application/json")) || (accept && strstr(accept, "application/json"));
}

void mc_api_stats(struct mc_http_request *req, void *ctx)
{
    struct mc_api *api = ctx;
    if (wants_json(req)) {
        json_t *snap = mc_stats_json(api->stats, uv_now(api->net->loop));
        mc_api_respond_json(req, 200, snap);
        json_decref(snap);
        return;
    }
    static const struct mc_http_header no_store[] = {{"Cache-Control", "no-store"}};
    mc_http_respond(req, 200, "text/html; charset=utf-8", no_store, 1, mc_stats_dashboard_html,
                    mc_stats_dashboard_html_len);
}

void mc_api_metrics(struct mc_http_request *req, void *ctx)
{
    struct mc_api *api = ctx;
    struct mc_buf out;
    mc_buf_init(&out);
    mc_stats_prometheus(api->stats, uv_now(api->net->loop), &out);
    mc_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, 0, out.data,
                    out.len);
    mc_buf_close(&out);
}
