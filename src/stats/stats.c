/* Counters and the /stats JSON snapshot (see stats.h). */
#include "stats/stats.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker.h"
#include "http/server.h"
#include "registry/registry.h"
#include "ws/hub.h"
#include "ws/session.h"

const char *const mc_stats_route_names[MC_STATS_ROUTES] = {
    "other", "registry", "rpc", "path", "proxy", "broker", "health",
};

const char *const mc_stats_proto_names[MC_STATS_PROTOS] = {"HTTP/1.1", "HTTP/2"};

static const char *const class_keys[MC_STATS_CLASSES] = {"10x", "20x", "30x", "40x", "50x"};
static const char *const health_names[] = {"none", "starting", "up", "down"};

void mc_stats_init(struct mc_stats *s, uv_loop_t *loop, uint64_t now_ms, uint64_t now_unix_ms)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->started_loop_ms = now_ms;
    s->started_unix_ms = now_unix_ms;
    snprintf(s->services[MC_STATS_MAX_SERVICES].name, MC_STATS_SERVICE_NAME_MAX, "%s",
             MC_STATS_OTHER_SERVICE);
    snprintf(s->grpc[MC_STATS_MAX_GRPC].service, MC_STATS_GRPC_NAME_MAX, "%s",
             MC_STATS_OTHER_SERVICE);
    snprintf(s->grpc[MC_STATS_MAX_GRPC].method, MC_STATS_GRPC_NAME_MAX, "%s",
             MC_STATS_OTHER_SERVICE);
    uint64_t unix_ms = now_unix_ms;
    s->ring[0].timestamp = unix_ms / MC_STATS_BUCKET_MS * (MC_STATS_BUCKET_MS / 1000);
    s->filled = 1;
    s->bucket_end_ms = now_ms + (MC_STATS_BUCKET_MS - unix_ms % MC_STATS_BUCKET_MS);
}

void mc_stats_attach(struct mc_stats *s, struct mc_http_server *server, struct mc_ws_hub *hub,
                     struct mc_broker *broker, struct mc_registry *registry)
{
    s->server = server;
    s->hub = hub;
    s->broker = broker;
    s->registry = registry;
}

void mc_stats_advance(struct mc_stats *s, uint64_t now_ms)
{
    if (now_ms < s->bucket_end_ms)
        return;
    /* whole buckets passed since the current one ended, at most the ring's length */
    uint64_t steps = 1 + (now_ms - s->bucket_end_ms) / MC_STATS_BUCKET_MS;
    uint64_t ts = s->ring[s->head].timestamp + steps * (MC_STATS_BUCKET_MS / 1000);
    s->bucket_end_ms += steps * MC_STATS_BUCKET_MS;
    if (steps > MC_STATS_BUCKETS)
        steps = MC_STATS_BUCKETS;
    for (uint64_t i = steps; i > 0; i--) {
        s->head = (s->head + 1) % MC_STATS_BUCKETS;
        s->ring[s->head] =
            (struct mc_stats_bucket){.timestamp = ts - (i - 1) * (MC_STATS_BUCKET_MS / 1000)};
        if (s->filled < MC_STATS_BUCKETS)
            s->filled++;
    }
}

void mc_stats_record_request(struct mc_stats *s, unsigned family, int status, uint64_t now_ms,
                             uint64_t duration_us)
{
    if (now_ms >= s->bucket_end_ms)
        mc_stats_advance(s, now_ms);
    unsigned cls = status >= 100 && status < 600 ? (unsigned)status / 100 - 1 : 4;
    if (family >= MC_STATS_ROUTES)
        family = MC_STATS_ROUTE_OTHER;
    struct mc_stats_bucket *b = &s->ring[s->head];
    b->codes[cls]++;
    b->total++;
    s->requests[family][cls]++;
    mc_histogram_record(&s->routes[family], duration_us);
}

void mc_stats_observe(void *ctx, const struct mc_http_request *req)
{
    struct mc_stats *s = ctx;
    uint64_t now = uv_now(s->loop);
    mc_stats_record_request(s, req->family, req->status, now,
                            (now > req->start_ms ? now - req->start_ms : 0) * 1000);
    s->protocols[req->http_major >= 2 ? MC_STATS_PROTO_HTTP2 : MC_STATS_PROTO_HTTP1]++;
}

/* FNV-1a: a few instructions a byte, and names are short. */
static uint32_t name_hash(const char *name, size_t *len)
{
    uint32_t h = 2166136261u;
    const unsigned char *p = (const unsigned char *)name;
    for (; *p; p++)
        h = (h ^ *p) * 16777619u;
    *len = (size_t)(p - (const unsigned char *)name);
    return h;
}

struct mc_stats_service *mc_stats_service(struct mc_stats *s, const char *name)
{
    size_t len;
    uint32_t h = name_hash(name, &len);
    if (len >= MC_STATS_SERVICE_NAME_MAX)
        return &s->services[MC_STATS_MAX_SERVICES];
    const size_t mask = sizeof s->index - 1;
    /* at most half full: the probe always ends on an empty entry */
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        uint8_t slot = s->index[i];
        if (!slot) {
            if (s->service_count == MC_STATS_MAX_SERVICES)
                return &s->services[MC_STATS_MAX_SERVICES];
            struct mc_stats_service *svc = &s->services[s->service_count];
            memcpy(svc->name, name, len + 1);
            s->index[i] = (uint8_t)++s->service_count;
            return svc;
        }
        if (strcmp(s->services[slot - 1].name, name) == 0)
            return &s->services[slot - 1];
    }
}

void mc_stats_call_done(void *ctx, const char *service, uint64_t duration_us, int ok)
{
    struct mc_stats_service *svc = mc_stats_service(ctx, service);
    mc_histogram_record(&svc->latency, duration_us);
    if (!ok)
        svc->failures++;
}

void mc_stats_grpc_call(struct mc_stats *s, const char *service, const char *method,
                        int grpc_status)
{
    unsigned code =
        grpc_status >= 0 && grpc_status < MC_STATS_GRPC_CODES ? (unsigned)grpc_status : 2;
    struct mc_stats_grpc *g = &s->grpc[MC_STATS_MAX_GRPC];
    size_t sl, ml;
    if (service && method) {
        uint32_t h = name_hash(service, &sl);
        uint32_t hm = name_hash(method, &ml);
        h ^= hm * 31u;
        const size_t mask = sizeof s->grpc_index - 1;
        for (size_t i = h & mask; sl < MC_STATS_GRPC_NAME_MAX && ml < MC_STATS_GRPC_NAME_MAX;
             i = (i + 1) & mask) {
            uint8_t slot = s->grpc_index[i];
            if (!slot) {
                if (s->grpc_count == MC_STATS_MAX_GRPC)
                    break;
                g = &s->grpc[s->grpc_count];
                memcpy(g->service, service, sl + 1);
                memcpy(g->method, method, ml + 1);
                s->grpc_index[i] = (uint8_t)++s->grpc_count;
                break;
            }
            struct mc_stats_grpc *e = &s->grpc[slot - 1];
            if (strcmp(e->service, service) == 0 && strcmp(e->method, method) == 0) {
                g = e;
                break;
            }
        }
    }
    g->codes[code]++;
}

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void registry_size(struct mc_registry *r, uint64_t *services, uint64_t *nodes)
{
    json_t *list = mc_registry_list_json(r);
    size_t i;
    json_t *v;
    *services = json_array_size(list);
    *nodes = 0;
    json_array_foreach(list, i, v)
    {
        const char *name = json_string_value(json_object_get(v, "name"));
        const struct mc_service *versions[32];
        size_t n = name ? mc_registry_lookup(r, name, versions, 32) : 0;
        for (size_t k = 0; k < n; k++)
            *nodes += versions[k]->node_count;
    }
    json_decref(list);
}

void mc_stats_gauges(const struct mc_stats *s, struct mc_stats_gauges *g)
{
    memset(g, 0, sizeof *g);
    if (s->server)
        g->connections = mc_http_server_connections(s->server);
    if (s->hub) {
        g->websockets = mc_ws_hub_count(s->hub);
        g->drops = mc_ws_hub_slow_closes(s->hub);
    }
    if (s->broker) {
        struct mc_broker_stats bs;
        mc_broker_get_stats(s->broker, &bs);
        g->published = bs.published;
        g->delivered = bs.delivered;
        g->subscribers = bs.subscribers;
        g->topics = bs.topics;
    }
    if (s->registry)
        registry_size(s->registry, &g->services, &g->nodes);
    g->rss_bytes = rss_bytes();
}

static json_t *latency_json(const struct mc_histogram *h)
{
    return json_pack("{s:I,s:f,s:f,s:f,s:f,s:f}", "count", (json_int_t)h->count, "mean_ms",
                     h->count ? (double)h->sum_us / (double)h->count / 1000.0 : 0.0, "p50_ms",
                     (double)mc_histogram_quantile(h, 0.50) / 1000.0, "p90_ms",
                     (double)mc_histogram_quantile(h, 0.90) / 1000.0, "p99_ms",
                     (double)mc_histogram_quantile(h, 0.99) / 1000.0, "max_ms",
                     (double)h->max_us / 1000.0);
}

static json_t *codes_json(const uint64_t codes[MC_STATS_CLASSES])
{
    json_t *o = json_object();
    for (size_t c = 0; c < MC_STATS_CLASSES; c++)
        json_object_set_new(o, class_keys[c], json_integer((json_int_t)codes[c]));
    return o;
}

json_t *mc_stats_json(struct mc_stats *s, uint64_t now_ms)
{
    mc_stats_advance(s, now_ms);
    struct mc_stats_gauges g;
    mc_stats_gauges(s, &g);
    char memory[32];
    snprintf(memory, sizeof memory, "%.2fmb", (double)g.rss_bytes / (1024.0 * 1024.0));

    json_t *counters = json_array();
    for (size_t k = 0; k < s->filled; k++) {
        const struct mc_stats_bucket *b =
            &s->ring[(s->head + MC_STATS_BUCKETS - (s->filled - 1 - k)) % MC_STATS_BUCKETS];
        json_array_append_new(counters,
                              json_pack("{s:I,s:o,s:I}", "timestamp", (json_int_t)b->timestamp,
                                        "status_codes", codes_json(b->codes), "total_reqs",
                                        (json_int_t)b->total));
    }
    uint64_t totals[MC_STATS_CLASSES] = {0}, total = 0;
    json_t *routes = json_object();
    for (size_t r = 0; r < MC_STATS_ROUTES; r++) {
        uint64_t n = 0;
        for (size_t c = 0; c < MC_STATS_CLASSES; c++) {
            totals[c] += s->requests[r][c];
            n += s->requests[r][c];
        }
        total += n;
        json_t *lat = latency_json(&s->routes[r]);
        json_object_set_new(lat, "status_codes", codes_json(s->requests[r]));
        json_object_set_new(routes, mc_stats_route_names[r], lat);
    }
    json_t *services = json_array();
    for (size_t i = 0; i <= MC_STATS_MAX_SERVICES; i++) {
        const struct mc_stats_service *svc = &s->services[i];
        if (i >= s->service_count && (i < MC_STATS_MAX_SERVICES || svc->latency.count == 0))
            continue;
        json_t *lat = latency_json(&svc->latency);
        json_object_set_new(lat, "name", json_string(svc->name));
        json_object_set_new(lat, "failures", json_integer((json_int_t)svc->failures));
        json_array_append_new(services, lat);
    }
    json_t *protocols = json_object();
    for (size_t i = 0; i < MC_STATS_PROTOS; i++)
        json_object_set_new(protocols, mc_stats_proto_names[i],
                            json_integer((json_int_t)s->protocols[i]));
    json_t *grpc = json_array();
    for (size_t i = 0; i <= MC_STATS_MAX_GRPC; i++) {
        const struct mc_stats_grpc *e = &s->grpc[i];
        if (i >= s->grpc_count && i < MC_STATS_MAX_GRPC)
            continue;
        json_t *codes = json_object();
        for (size_t c = 0; c < MC_STATS_GRPC_CODES; c++)
            if (e->codes[c]) {
                char key[8];
                snprintf(key, sizeof key, "%zu", c);
                json_object_set_new(codes, key, json_integer((json_int_t)e->codes[c]));
            }
        if (i == MC_STATS_MAX_GRPC && json_object_size(codes) == 0) {
            json_decref(codes);
            continue;
        }
        json_array_append_new(grpc, json_pack("{s:s,s:s,s:o}", "service", e->service, "method",
                                              e->method, "codes", codes));
    }
    json_t *totals_json = codes_json(totals);
    json_object_set_new(totals_json, "total_reqs", json_integer((json_int_t)total));
    json_t *out = json_pack(
        "{s:I,s:s,s:i,s:s,s:o,s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I,s:I,s:I},s:{s:I,s:I},s:s,s:o,s:o,s:o}",
        "started", (json_int_t)(s->started_unix_ms / 1000), "memory", memory, "threads", 1,
        "gc_pause", "0.000ms", "counters", counters, "uptime",
        (json_int_t)((now_ms - s->started_loop_ms) / 1000), "memory_bytes", (json_int_t)g.rss_bytes,
        "connections", (json_int_t)g.connections, "websockets", (json_int_t)g.websockets, "broker",
        "published", (json_int_t)g.published, "delivered", (json_int_t)g.delivered, "subscribers",
        (json_int_t)g.subscribers, "topics", (json_int_t)g.topics, "drops", (json_int_t)g.drops,
        "registry", "services", (json_int_t)g.services, "nodes", (json_int_t)g.nodes, "health",
        health_names[s->health], "totals", totals_json, "routes", routes, "services", services);
    json_object_set_new(out, "protocols", protocols);
    json_object_set_new(out, "grpc", grpc);
    return out;
}
