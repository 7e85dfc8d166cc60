/* /metrics: the counters of stats.c in the Prometheus text exposition format 0.0.4. Every
 * label set is bounded: routes and status classes are fixed lists, services are at most
 * MC_STATS_MAX_SERVICES + 1 ("_other"). */
#include <stdio.h>
#include <string.h>

#include "stats/stats.h"

/* Histogram boundaries in microseconds: each is a bucket edge of stats/histogram.h, so the
 * cumulative counts are exact. */
static const struct {
    uint64_t us;
    const char *text;
} les[] = {
    {100, "0.0001"},  {200, "0.0002"},  {500, "0.0005"},  {1000, "0.001"}, {2000, "0.002"},
    {5000, "0.005"},  {10000, "0.01"},  {20000, "0.02"},  {50000, "0.05"}, {100000, "0.1"},
    {200000, "0.2"},  {500000, "0.5"},  {1000000, "1"},   {2000000, "2"},  {5000000, "5"},
    {10000000, "10"}, {30000000, "30"}, {60000000, "60"},
};

static const char *const class_labels[MC_STATS_CLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

static void family_head(struct mc_buf *out, const char *name, const char *type, const char *help)
{
    mc_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge(struct mc_buf *out, const char *name, const char *type, const char *help,
                  uint64_t value)
{
    family_head(out, name, type, help);
    mc_buf_appendf(out, "%s %llu\n", name, (unsigned long long)value);
}

/* A label value with \, " and newline escaped (the format's only escapes). */
static void label_value(struct mc_buf *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            mc_buf_appendf(out, "\\%c", *v);
        else if (*v == '\n')
            mc_buf_append_str(out, "\\n");
        else
            mc_buf_append(out, v, 1);
    }
}

static void histogram(struct mc_buf *out, const char *name, const char *label, const char *value,
                      const struct mc_histogram *h)
{
    for (size_t i = 0; i < sizeof les / sizeof les[0]; i++) {
        mc_buf_appendf(out, "%s_bucket{%s=\"", name, label);
        label_value(out, value);
        mc_buf_appendf(out, "\",le=\"%s\"} %llu\n", les[i].text,
                       (unsigned long long)mc_histogram_count_le(h, les[i].us));
    }
    mc_buf_appendf(out, "%s_bucket{%s=\"", name, label);
    label_value(out, value);
    mc_buf_appendf(out, "\",le=\"+Inf\"} %llu\n", (unsigned long long)h->count);
    mc_buf_appendf(out, "%s_sum{%s=\"", name, label);
    label_value(out, value);
    mc_buf_appendf(out, "\"} %.6f\n", (double)h->sum_us / 1e6);
    mc_buf_appendf(out, "%s_count{%s=\"", name, label);
    label_value(out, value);
    mc_buf_appendf(out, "\"} %llu\n", (unsigned long long)h->count);
}

static int service_listed(const struct mc_stats *s, size_t i)
{
    return i < s->service_count || (i == MC_STATS_MAX_SERVICES && s->services[i].latency.count > 0);
}

void mc_stats_prometheus(struct mc_stats *s, uint64_t now_ms, struct mc_buf *out)
{
    mc_stats_advance(s, now_ms);
    struct mc_stats_gauges g;
    mc_stats_gauges(s, &g);

    family_head(out, "micro_http_requests_total", "counter",
                "HTTP requests answered, by route family and status class.");
    for (size_t r = 0; r < MC_STATS_ROUTES; r++)
        for (size_t c = 0; c < MC_STATS_CLASSES; c++)
            mc_buf_appendf(out, "micro_http_requests_total{route=\"%s\",code=\"%s\"} %llu\n",
                           mc_stats_route_names[r], class_labels[c],
                           (unsigned long long)s->requests[r][c]);
    family_head(out, "micro_http_request_duration_seconds", "histogram",
                "Time from the request head to the end of the response, by route family.");
    for (size_t r = 0; r < MC_STATS_ROUTES; r++)
        histogram(out, "micro_http_request_duration_seconds", "route", mc_stats_route_names[r],
                  &s->routes[r]);
    family_head(out, "micro_call_duration_seconds", "histogram",
                "Calls to a service's nodes (rpc, path calls, proxy), retries included, by "
                "called service (the first 64 seen; the rest as _other).");
    for (size_t i = 0; i <= MC_STATS_MAX_SERVICES; i++)
        if (service_listed(s, i))
            histogram(out, "micro_call_duration_seconds", "service", s->services[i].name,
                      &s->services[i].latency);
    family_head(out, "micro_call_failures_total", "counter",
                "Calls that ended without a good answer, by called service.");
    for (size_t i = 0; i <= MC_STATS_MAX_SERVICES; i++)
        if (service_listed(s, i)) {
            mc_buf_append_str(out, "micro_call_failures_total{service=\"");
            label_value(out, s->services[i].name);
            mc_buf_appendf(out, "\"} %llu\n", (unsigned long long)s->services[i].failures);
        }
    family_head(out, "micro_http_requests_by_protocol_total", "counter",
                "HTTP requests answered, by protocol (HTTP/1.1 counts HTTP/1.0 too).");
    for (size_t i = 0; i < MC_STATS_PROTOS; i++)
        mc_buf_appendf(out, "micro_http_requests_by_protocol_total{protocol=\"%s\"} %llu\n",
                       mc_stats_proto_names[i], (unsigned long long)s->protocols[i]);
    family_head(out, "micro_grpc_calls_total", "counter",
                "gRPC calls through the sidecar by service, method and grpc-status (the first 64 "
                "service/method pairs; the rest, and unknown services, as _other).");
    for (size_t i = 0; i <= MC_STATS_MAX_GRPC; i++) {
        if (i >= s->grpc_count && i < MC_STATS_MAX_GRPC)
            continue;
        for (size_t c = 0; c < MC_STATS_GRPC_CODES; c++) {
            if (!s->grpc[i].codes[c])
                continue;
            mc_buf_append_str(out, "micro_grpc_calls_total{service=\"");
            label_value(out, s->grpc[i].service);
            mc_buf_append_str(out, "\",method=\"");
            label_value(out, s->grpc[i].method);
            mc_buf_appendf(out, "\",grpc_status=\"%zu\"} %llu\n", c,
                           (unsigned long long)s->grpc[i].codes[c]);
        }
    }
    gauge(out, "micro_http_connections", "gauge", "Open HTTP connections (not upgraded).",
          g.connections);
    gauge(out, "micro_websocket_sessions", "gauge", "Open WebSocket sessions.", g.websockets);
    gauge(out, "micro_broker_published_total", "counter", "Messages published to the broker.",
          g.published);
    gauge(out, "micro_broker_delivered_total", "counter", "Messages delivered to subscribers.",
          g.delivered);
    gauge(out, "micro_broker_dropped_total", "counter",
          "WebSocket readers cut with 1008 for being too slow.", g.drops);
    gauge(out, "micro_broker_subscriptions", "gauge", "Live broker subscriptions.", g.subscribers);
    gauge(out, "micro_registry_services", "gauge", "Services in the registry view.", g.services);
    gauge(out, "micro_registry_nodes", "gauge", "Live nodes in the registry view.", g.nodes);
    family_head(out, "micro_app_healthy", "gauge",
                "The app's health check: 1 passing (or no check), 0 failing or not passed yet.");
    mc_buf_appendf(out, "micro_app_healthy %d\n",
                   s->health == MC_STATS_HEALTH_NONE || s->health == MC_STATS_HEALTH_UP);
    gauge(out, "micro_process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
          g.rss_bytes);
    family_head(out, "micro_process_start_time_seconds", "gauge",
                "Start time of the process since the unix epoch in seconds.");
    mc_buf_appendf(out, "micro_process_start_time_seconds %llu\n",
                   (unsigned long long)(s->started_unix_ms / 1000));
    gauge(out, "micro_uptime_seconds", "gauge", "Seconds since the sidecar started.",
          (now_ms - s->started_loop_ms) / 1000);
}
