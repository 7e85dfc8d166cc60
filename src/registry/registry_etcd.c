/* The etcd registry backend (--registry=etcd) over etcd's v3 JSON gateway (/v3/kv/...,
 * /v3/lease/..., /v3/watch: base64 keys and values, int64 as JSON strings), through the sidecar's
 * HTTP client. go-micro's layout: one key per node, /micro/registry/<service>/<node-id>, holding
 * the JSON of its service with that one node. A prefix watch keeps the registry's view; reads never
 * wait. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "http/client.h"
#include "net/conn.h"
#include "registry/registry.h"
#include "util/alloc.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/log.h"

#define PREFIX "/micro/registry/"
#define PREFIX_END "/micro/registry0" /* '/' + 1: the range end of the prefix */
#define OP_TIMEOUT_MS 3000            /* one gateway request */
#define DIAL_TIMEOUT_MS 1000
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 5000
#define MAX_RESPONSE (64u << 20) /* a range of the whole registry */
#define MAX_WATCH_LINE (64u << 20)

struct etcd;

/* A gateway request: cb(e, err, body, arg) runs once with the parsed 200 body (borrowed), or
 * err < 0 (MC_EUNAVAIL after every endpoint failed to answer, MC_ENOTFOUND for etcd's
 * NotFound, MC_EPROTO for another error answer, MC_ECANCELED at close). */
typedef void (*req_cb)(struct etcd *e, int err, json_t *body, void *arg);

struct req {
    struct etcd *e;
    struct mc_http_call *call;
    struct req *prev, *next;
    char *path;
    char *body;
    size_t tries;
    req_cb cb;
    void *arg;
};

struct etcd {
    struct mc_registry *r;
    uv_loop_t *loop;
    struct mc_http_client *client;
    char **endpoints;
    size_t endpoint_count;
    size_t cur; /* the endpoint in use: the next one is tried when it fails */
    uint64_t ttl_ms, keepalive_ms, close_timeout_ms;

    int64_t lease;    /* this sidecar's lease, 0 when none */
    int64_t revision; /* the last store revision the view reflects */
    int need_full;    /* the next sync re-reads the whole prefix */
    json_t *kv;       /* key -> the value text the view holds for it */
    json_t *leases;   /* key -> lease id (string) of a node registered with its own TTL */

    int connected;
    int session; /* a (re)connection is under way or established */
    int pending; /* re-puts outstanding */
    int failed;
    char last_error[200];
    struct mc_backend_state state; /* what /health?verbose=1 shows, logged on change */
    uint64_t backoff_ms;

    struct mc_http_call *watch;
    struct mc_buf watch_buf;

    struct req *reqs; /* in flight, cancelled at close */
    uv_timer_t retry_timer, keepalive_timer, close_timer;
    int handles;
    int closing;
    int finishing;
};

/* ---- small helpers ---- */

static char *b64(const char *s, size_t len)
{
    char *out = mc_malloc(mc_base64_encoded_len(len) + 1);
    out[mc_base64_encode(out, s, len)] = '\0';
    return out;
}

/* The decoded text of a base64 JSON string member, NUL-terminated (caller frees), or NULL. */
static char *unb64(const json_t *j)
{
    const char *s = json_string_value(j);
    if (!s)
        return NULL;
    size_t n = strlen(s), len = 0;
    char *out = mc_malloc(mc_base64_decoded_max(n) + 1);
    if (mc_base64_decode(out, &len, s, n) < 0) {
        mc_free(out);
        return NULL;
    }
    out[len] = '\0';
    return out;
}

/* etcd's int64 fields arrive as JSON strings ("123"); 0 when absent. */
static int64_t int64_of(const json_t *j)
{
    if (json_is_integer(j))
        return json_integer_value(j);
    const char *s = json_string_value(j);
    return s ? strtoll(s, NULL, 10) : 0;
}

static void json_set_str(json_t *obj, const char *key, const char *value)
{
    json_object_set_new(obj, key, json_string(value));
}

static void json_set_int64(json_t *obj, const char *key, int64_t v)
{
    char text[24];
    snprintf(text, sizeof text, "%lld", (long long)v);
    json_set_str(obj, key, text);
}

/* go-micro's key: the service name with '/' replaced by '-', then the node id. */
static char *node_key(const char *name, const char *id)
{
    char *key = mc_sprintf(PREFIX "%s/%s", name, id);
    for (char *p = key + strlen(PREFIX); *p && p < key + strlen(PREFIX) + strlen(name); p++)
        if (*p == '/')
            *p = '-';
    return key;
}

/* The value of a node's key: its service with that one node, as go-micro writes it. */
static char *node_value(const struct mc_service *svc, const struct mc_node *n)
{
    struct mc_service one = *svc;
    one.nodes = (struct mc_node *)n;
    one.node_count = 1;
    json_t *j = mc_service_to_json(&one, 1);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!text) {
        fprintf(stderr, "micro: out of memory building JSON\n");
        abort();
    }
    return text;
}

static void set_state(struct etcd *e, int connected, const char *why)
{
    if (why && why != e->last_error)
        snprintf(e->last_error, sizeof e->last_error, "%s", why);
    e->connected = connected;
    char detail[sizeof e->last_error + 32];
    snprintf(detail, sizeof detail, "%s; serving the last view",
             e->last_error[0] ? e->last_error : "not connected yet");
    if (mc_backend_state_set(&e->state, connected ? MC_BACKEND_CONNECTED : MC_BACKEND_RETRYING,
                             connected ? NULL : detail) &&
        connected)
        mc_log_info("registry etcd: using %s", e->endpoints[e->cur]);
}

/* ---- requests through the gateway ---- */

static void req_send(struct req *q);

static void req_finish(struct req *q, int err, json_t *body)
{
    struct etcd *e = q->e;
    if (q->prev)
        q->prev->next = q->next;
    else
        e->reqs = q->next;
    if (q->next)
        q->next->prev = q->prev;
    req_cb cb = q->cb;
    void *arg = q->arg;
    mc_free(q->path);
    mc_free(q->body);
    mc_free(q);
    cb(e, err, body, arg);
}

static void req_done(struct mc_http_call *call, int err, int retryable, void *ctx)
{
    (void)retryable;
    struct req *q = ctx;
    struct etcd *e = q->e;
    q->call = NULL;
    if (err < 0) {
        /* This endpoint did not answer: the next one is tried, each once. */
        snprintf(e->last_error, sizeof e->last_error, "%s: %s", e->endpoints[e->cur],
                 mc_strerror(err));
        e->cur = (e->cur + 1) % e->endpoint_count;
        if (++q->tries < e->endpoint_count && !e->closing) {
            req_send(q);
            return;
        }
        req_finish(q, MC_EUNAVAIL, NULL);
        return;
    }
    const struct mc_buf *b = mc_http_call_body(call);
    json_t *body = json_loadb(b->data ? b->data : "", b->len, 0, NULL);
    int status = 0;
    /* The status is not kept by the call: an error answer carries "code" (gRPC's). */
    if (!body || !json_is_object(body))
        status = MC_EPROTO;
    else if (json_object_get(body, "error") || json_object_get(body, "code"))
        status = int64_of(json_object_get(body, "code")) == 5 ? MC_ENOTFOUND : MC_EPROTO;
    if (status == MC_EPROTO) {
        const char *msg = body ? json_string_value(json_object_get(body, "message")) : NULL;
        snprintf(e->last_error, sizeof e->last_error, "%s", msg ? msg : "bad answer from etcd");
    }
    req_finish(q, status, status == 0 ? body : NULL);
    json_decref(body);
}

static void req_send(struct req *q)
{
    struct etcd *e = q->e;
    static const struct mc_http_header hdr[] = {{"Content-Type", "application/json"}};
    struct mc_http_call_options o = {
        .address = e->endpoints[e->cur],
        .method = "POST",
        .target = q->path,
        .headers = hdr,
        .header_count = 1,
        .body = q->body,
        .body_len = strlen(q->body),
        .dial_timeout_ms = DIAL_TIMEOUT_MS,
        .timeout_ms = OP_TIMEOUT_MS,
        .buffer_body = 1,
        .max_body = MAX_RESPONSE,
        .on_done = req_done,
        .ctx = q,
    };
    q->call = mc_http_call_start(e->client, &o);
}

/* POSTs body (taken) to path; cb runs once, never before this returns. */
static void post(struct etcd *e, const char *path, json_t *body, req_cb cb, void *arg)
{
    struct req *q = mc_calloc(1, sizeof *q);
    q->e = e;
    q->path = mc_strdup(path);
    q->body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    q->cb = cb;
    q->arg = arg;
    q->next = e->reqs;
    if (e->reqs)
        e->reqs->prev = q;
    e->reqs = q;
    req_send(q);
}

static void ignore(struct etcd *e, int err, json_t *body, void *arg)
{
    (void)e, (void)err, (void)body, (void)arg;
}

static void revoke(struct etcd *e, int64_t lease, req_cb cb)
{
    json_t *b = json_object();
    json_set_int64(b, "ID", lease);
    post(e, "/v3/lease/revoke", b, cb ? cb : ignore, NULL);
}

/* ---- the view, from etcd's keys ---- */

/* A key now holds text (NULL: deleted). The view changes only when the text did: our own
 * writes are applied at once and their watch events then change nothing. */
static void apply(struct etcd *e, const char *key, const char *text)
{
    const char *old = json_string_value(json_object_get(e->kv, key));
    if (text && old && strcmp(old, text) == 0)
        return;
    if (!text && !old)
        return;
    if (old) {
        json_t *j = json_loads(old, 0, NULL);
        struct mc_service s;
        if (j && mc_service_from_json(j, MC_SERVICE_REQUIRE_NODES, &s, NULL, 0) == 0) {
            mc_registry_view_remove(e->r, &s);
            mc_service_close(&s);
        }
        json_decref(j);
        json_object_del(e->kv, key);
    }
    if (!text)
        return;
    json_t *j = json_loads(text, 0, NULL);
    struct mc_service s;
    if (j && mc_service_from_json(j, MC_SERVICE_REQUIRE_NODES, &s, NULL, 0) == 0) {
        mc_registry_view_upsert(e->r, &s, 0);
        mc_service_close(&s);
        json_object_set_new(e->kv, key, json_string(text));
    } else {
        mc_log_warn("registry etcd: ignoring %s: not a go-micro service", key);
    }
    json_decref(j);
}

/* ---- the session: lease, re-puts, read, watch ---- */

static void session_step_lease(struct etcd *e);
static void session_step_view(struct etcd *e);

static void retry_tick(uv_timer_t *t)
{
    struct etcd *e = t->data;
    session_step_lease(e);
}

static void watch_stop(struct etcd *e)
{
    if (e->watch)
        mc_http_call_cancel(e->watch);
    e->watch = NULL;
    mc_buf_reset(&e->watch_buf);
}

/* Something failed: keep the view, retry with capped exponential backoff and jitter. */
static void session_fail(struct etcd *e, const char *why)
{
    if (e->closing || !e->session)
        return;
    e->session = 0;
    watch_stop(e);
    uv_timer_stop(&e->keepalive_timer);
    set_state(e, 0, why[0] ? why : "etcd unreachable");
    uint64_t cap = e->keepalive_ms < BACKOFF_MAX_MS ? e->keepalive_ms : BACKOFF_MAX_MS;
    if (cap < BACKOFF_MIN_MS)
        cap = BACKOFF_MIN_MS;
    e->backoff_ms = e->backoff_ms ? e->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (e->backoff_ms > cap)
        e->backoff_ms = cap;
    uint64_t delay = e->backoff_ms / 2 + (uint64_t)rand() % (e->backoff_ms / 2 + 1);
    uv_timer_start(&e->retry_timer, retry_tick, delay, 0);
}

static void session_start(struct etcd *e)
{
    if (e->closing || e->session)
        return;
    e->session = 1;
    uv_timer_stop(&e->retry_timer);
    session_step_lease(e);
}

/* One node's put (on lease), then cb. */
struct put {
    char *key;
    char *text;
    void (*cb)(struct etcd *e, int err, void *arg);
    void *arg;
};

static void put_done(struct etcd *e, int err, json_t *body, void *arg)
{
    (void)body;
    struct put *p = arg;
    if (err == 0)
        apply(e, p->key, p->text);
    p->cb(e, err, p->arg);
    mc_free(p->key);
    free(p->text);
    mc_free(p);
}

static void put_key(struct etcd *e, char *key, char *text, int64_t lease,
                    void (*cb)(struct etcd *, int, void *), void *arg)
{
    struct put *p = mc_calloc(1, sizeof *p);
    p->key = key;
    p->text = text;
    p->cb = cb;
    p->arg = arg;
    json_t *b = json_object();
    char *k = b64(key, strlen(key)), *v = b64(text, strlen(text));
    json_set_str(b, "key", k);
    json_set_str(b, "value", v);
    mc_free(k);
    mc_free(v);
    if (lease)
        json_set_int64(b, "lease", lease);
    post(e, "/v3/kv/put", b, put_done, p);
}

/* A node with its own TTL: a lease of its own (granted here), then the put; the pending put
 * (struct put) rides along with the grant. */
static void own_grant_done(struct etcd *e, int err, json_t *body, void *arg)
{
    struct put *o = arg;
    int64_t id = err == 0 ? int64_of(json_object_get(body, "ID")) : 0;
    if (err == 0 && id == 0)
        err = MC_EPROTO;
    if (err < 0 || e->closing) {
        o->cb(e, err < 0 ? err : MC_ECANCELED, o->arg);
        if (id)
            revoke(e, id, NULL);
        mc_free(o->key);
        free(o->text);
        mc_free(o);
        return;
    }
    /* A new registration replaces the previous lease: revoke it rather than let it linger. */
    int64_t prev = int64_of(json_object_get(e->leases, o->key));
    if (prev && prev != id)
        revoke(e, prev, NULL);
    json_t *idj = json_object();
    json_set_int64(idj, "id", id);
    json_object_set(e->leases, o->key, json_object_get(idj, "id"));
    json_decref(idj);
    put_key(e, o->key, o->text, id, o->cb, o->arg);
    mc_free(o);
}

static void put_node(struct etcd *e, const struct mc_service *svc, const struct mc_node *n,
                     uint64_t ttl_ms, void (*cb)(struct etcd *, int, void *), void *arg)
{
    char *key = node_key(svc->name, n->id);
    char *text = node_value(svc, n);
    if (ttl_ms == 0) {
        put_key(e, key, text, e->lease, cb, arg);
        return;
    }
    struct put *o = mc_calloc(1, sizeof *o);
    o->key = key;
    o->text = text;
    o->cb = cb;
    o->arg = arg;
    json_t *b = json_object();
    json_set_int64(b, "TTL", (int64_t)((ttl_ms + 999) / 1000));
    post(e, "/v3/lease/grant", b, own_grant_done, o);
}

static void reput_done(struct etcd *e, int err, void *arg)
{
    (void)arg;
    if (err < 0)
        e->failed = 1;
    if (--e->pending > 0 || e->closing)
        return;
    if (e->failed)
        session_fail(e, e->last_error);
    else
        session_step_view(e);
}

/* Every node this sidecar owns goes back into the store (its lease is new: the old one
 * expired during an outage or the store's data was wiped). */
static void session_step_reput(struct etcd *e)
{
    uint64_t now = mc_clock_now(mc_registry_config(e->r)->clock);
    e->pending = 1; /* held until every put is started */
    e->failed = 0;
    size_t n = mc_registry_owned_count(e->r);
    for (size_t i = 0; i < n; i++) {
        const struct mc_registry_owned *o = mc_registry_owned_at(e->r, i);
        uint64_t ttl = o->ttl_ms;
        if (ttl) {
            if (o->expires_at_ms <= now)
                continue; /* ran out: only a new registration would have renewed it */
            ttl = o->expires_at_ms - now;
        }
        e->pending++;
        put_node(e, &o->service, &o->service.nodes[0], ttl, reput_done, NULL);
    }
    reput_done(e, 0, NULL);
}

static void grant_done(struct etcd *e, int err, json_t *body, void *arg)
{
    (void)arg;
    if (e->closing)
        return;
    int64_t id = err == 0 ? int64_of(json_object_get(body, "ID")) : 0;
    if (id == 0) {
        session_fail(e, err == MC_EUNAVAIL ? e->last_error : "lease grant refused");
        return;
    }
    e->lease = id;
    session_step_reput(e);
}

static void grant_lease(struct etcd *e)
{
    json_t *b = json_object();
    json_set_int64(b, "TTL", (int64_t)((e->ttl_ms + 999) / 1000));
    post(e, "/v3/lease/grant", b, grant_done, NULL);
}

/* A keep-alive's answer: result.TTL > 0 while the lease exists. */
static int keepalive_alive(json_t *body)
{
    json_t *res = json_object_get(body, "result");
    return int64_of(json_object_get(res ? res : body, "TTL")) > 0;
}

static void lease_lost(struct etcd *e)
{
    /* Gone (expired during an outage, or the store was wiped): a new lease, every owned
     * node again, and a full re-read since the store's history may have restarted. */
    mc_log_warn("registry etcd: lease %lld lost; registering this sidecar's nodes again",
                (long long)e->lease);
    e->lease = 0;
    e->need_full = 1;
    json_object_clear(e->leases);
    grant_lease(e);
}

static void first_keepalive_done(struct etcd *e, int err, json_t *body, void *arg)
{
    (void)arg;
    if (e->closing)
        return;
    if (err == MC_EUNAVAIL) {
        session_fail(e, e->last_error);
        return;
    }
    if (err == 0 && keepalive_alive(body))
        session_step_view(e); /* the store kept our keys */
    else
        lease_lost(e);
}

static void session_step_lease(struct etcd *e)
{
    e->session = 1;
    if (e->lease == 0) {
        grant_lease(e);
        return;
    }
    json_t *b = json_object();
    json_set_int64(b, "ID", e->lease);
    post(e, "/v3/lease/keepalive", b, first_keepalive_done, NULL);
}

static void keepalive_done(struct etcd *e, int err, json_t *body, void *arg)
{
    (void)arg;
    if (e->closing || !e->session)
        return;
    if (err == MC_EUNAVAIL) {
        session_fail(e, e->last_error);
        return;
    }
    if (err == 0 && keepalive_alive(body))
        return;
    watch_stop(e);
    uv_timer_stop(&e->keepalive_timer);
    lease_lost(e);
}

static void keepalive_tick(uv_timer_t *t)
{
    struct etcd *e = t->data;
    if (!e->lease || !e->connected)
        return;
    json_t *b = json_object();
    json_set_int64(b, "ID", e->lease);
    post(e, "/v3/lease/keepalive", b, keepalive_done, NULL);
}

/* -- the watch -- */

static void watch_open(struct etcd *e);

static void connected(struct etcd *e)
{
    e->backoff_ms = 0;
    e->last_error[0] = '\0';
    set_state(e, 1, NULL);
    uv_timer_start(&e->keepalive_timer, keepalive_tick, e->keepalive_ms, e->keepalive_ms);
}

/* One message of the watch stream. Returns 0, or -1 when the watch has to be re-made. */
static int watch_message(struct etcd *e, json_t *msg)
{
    json_t *res = json_object_get(msg, "result");
    if (!res)
        return -1; /* an error answer */
    int64_t rev = int64_of(json_object_get(json_object_get(res, "header"), "revision"));
    if (json_object_get(res, "compact_revision") ||
        json_is_true(json_object_get(res, "canceled"))) {
        /* Our revision was compacted away: only a full read can tell what changed. */
        e->need_full = 1;
        return -1;
    }
    if (json_is_true(json_object_get(res, "created"))) {
        if (rev && rev < e->revision) {
            /* The store's history went backwards: its data was wiped. */
            e->need_full = 1;
            return -1;
        }
        connected(e);
    }
    json_t *ev;
    size_t i;
    json_array_foreach(json_object_get(res, "events"), i, ev)
    {
        json_t *kv = json_object_get(ev, "kv");
        char *key = unb64(json_object_get(kv, "key"));
        if (!key)
            continue;
        const char *type = json_string_value(json_object_get(ev, "type"));
        if (type && strcmp(type, "DELETE") == 0) {
            apply(e, key, NULL);
        } else { /* PUT is the default, omitted from the JSON */
            char *text = unb64(json_object_get(kv, "value"));
            if (text)
                apply(e, key, text);
            mc_free(text);
        }
        mc_free(key);
        int64_t mod = int64_of(json_object_get(kv, "mod_revision"));
        if (mod > e->revision)
            e->revision = mod;
    }
    if (rev > e->revision)
        e->revision = rev;
    return 0;
}

static void watch_body(struct mc_http_call *call, const char *data, size_t len, void *ctx)
{
    (void)call;
    struct etcd *e = ctx;
    mc_buf_append(&e->watch_buf, data, len);
    for (;;) {
        char *nl = memchr(e->watch_buf.data, '\n', e->watch_buf.len);
        if (!nl)
            break;
        size_t n = (size_t)(nl - e->watch_buf.data);
        json_t *msg = json_loadb(e->watch_buf.data, n, 0, NULL);
        mc_buf_consume(&e->watch_buf, n + 1);
        int rc = msg ? watch_message(e, msg) : 0;
        json_decref(msg);
        if (rc < 0) {
            watch_stop(e); /* cancels this call: nothing more is read from it */
            if (e->need_full)
                session_step_view(e);
            else
                session_fail(e, "watch refused");
            return;
        }
    }
    if (e->watch_buf.len > MAX_WATCH_LINE) {
        watch_stop(e);
        session_fail(e, "watch message too large");
    }
}

static void watch_done(struct mc_http_call *call, int err, int retryable, void *ctx)
{
    (void)call, (void)retryable;
    struct etcd *e = ctx;
    e->watch = NULL;
    mc_buf_reset(&e->watch_buf);
    if (err < 0)
        snprintf(e->last_error, sizeof e->last_error, "watch: %s", mc_strerror(err));
    else
        snprintf(e->last_error, sizeof e->last_error, "watch closed by etcd");
    session_fail(e, e->last_error);
}

static void watch_open(struct etcd *e)
{
    json_t *cr = json_object();
    char *k = b64(PREFIX, strlen(PREFIX)), *end = b64(PREFIX_END, strlen(PREFIX_END));
    json_set_str(cr, "key", k);
    json_set_str(cr, "range_end", end);
    mc_free(k);
    mc_free(end);
    json_set_int64(cr, "start_revision", e->revision + 1);
    json_t *b = json_object();
    json_object_set_new(b, "create_request", cr);
    char *text = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    static const struct mc_http_header hdr[] = {{"Content-Type", "application/json"}};
    struct mc_http_call_options o = {
        .address = e->endpoints[e->cur],
        .method = "POST",
        .target = "/v3/watch",
        .headers = hdr,
        .header_count = 1,
        .body = text,
        .body_len = strlen(text),
        .dial_timeout_ms = DIAL_TIMEOUT_MS,
        .on_body = watch_body,
        .on_done = watch_done,
        .ctx = e,
    };
    mc_buf_reset(&e->watch_buf);
    e->watch = mc_http_call_start(e->client, &o);
    free(text);
}

/* A full read of the prefix: the view becomes exactly what the store holds. */
static void range_done(struct etcd *e, int err, json_t *body, void *arg)
{
    (void)arg;
    if (e->closing || !e->session)
        return;
    if (err < 0) {
        session_fail(e, e->last_error);
        return;
    }
    json_t *now = json_object();
    json_t *kv;
    size_t i;
    json_array_foreach(json_object_get(body, "kvs"), i, kv)
    {
        char *key = unb64(json_object_get(kv, "key"));
        char *text = unb64(json_object_get(kv, "value"));
        if (key && text)
            json_object_set_new(now, key, json_string(text));
        mc_free(key);
        mc_free(text);
    }
    /* Keys gone from the store leave the view; new or changed ones enter it. */
    const char *key;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(e->kv, tmp, key, v)
    {
        if (!json_object_get(now, key))
            apply(e, key, NULL);
    }
    json_object_foreach(now, key, v) apply(e, key, json_string_value(v));
    json_decref(now);
    e->revision = int64_of(json_object_get(json_object_get(body, "header"), "revision"));
    e->need_full = 0;
    watch_open(e);
}

static void session_step_view(struct etcd *e)
{
    if (e->closing || !e->session)
        return;
    if (e->need_full || e->revision == 0) {
        json_t *b = json_object();
        char *k = b64(PREFIX, strlen(PREFIX)), *end = b64(PREFIX_END, strlen(PREFIX_END));
        json_set_str(b, "key", k);
        json_set_str(b, "range_end", end);
        mc_free(k);
        mc_free(end);
        post(e, "/v3/kv/range", b, range_done, NULL);
        return;
    }
    watch_open(e); /* resumed from the last revision seen */
}

/* ---- writes ---- */

/* One API write over several nodes: done runs once, when the last node's request ended,
 * with the first error. */
struct write {
    int pending;
    int err;
    mc_registry_done_cb done;
    void *ctx;
};

/* A write of several keys answered once, when the last one is done: the count starts at 1 for
 * the caller, who drops it with a final write_node_done(e, 0, w) after starting every key. */
static struct write *write_new(mc_registry_done_cb done, void *ctx)
{
    struct write *w = mc_calloc(1, sizeof *w);
    w->done = done;
    w->ctx = ctx;
    w->pending = 1;
    return w;
}

static void write_node_done(struct etcd *e, int err, void *arg)
{
    (void)e;
    struct write *w = arg;
    if (err < 0 && w->err == 0)
        w->err = err == MC_ENOTFOUND || err == MC_EPROTO ? MC_EUNAVAIL : err;
    if (--w->pending > 0)
        return;
    mc_registry_done_cb done = w->done;
    void *ctx = w->ctx;
    int rc = w->err;
    mc_free(w);
    done(ctx, rc);
}

static void etcd_register(struct mc_registry *r, const struct mc_service *svc, uint64_t ttl_ms,
                          mc_registry_done_cb done, void *ctx)
{
    struct etcd *e = mc_registry_backend_data(r);
    /* While the store is out of reach a write is refused at once (503), never queued and
     * never dropped silently. */
    if (!e->connected || e->closing || (ttl_ms == 0 && !e->lease)) {
        done(ctx, MC_EUNAVAIL);
        return;
    }
    struct write *w = write_new(done, ctx);
    for (size_t i = 0; i < svc->node_count; i++) {
        w->pending++;
        put_node(e, svc, &svc->nodes[i], ttl_ms, write_node_done, w);
    }
    write_node_done(e, 0, w);
}

struct del {
    struct write *w;
    char *key;
};

static void delete_done(struct etcd *e, int err, json_t *body, void *arg)
{
    (void)body;
    struct del *d = arg;
    if (err == 0) {
        apply(e, d->key, NULL);
        int64_t own = int64_of(json_object_get(e->leases, d->key));
        if (own) {
            revoke(e, own, NULL);
            json_object_del(e->leases, d->key);
        }
    }
    write_node_done(e, err, d->w);
    mc_free(d->key);
    mc_free(d);
}

static void etcd_deregister(struct mc_registry *r, const struct mc_service *svc,
                            mc_registry_done_cb done, void *ctx)
{
    struct etcd *e = mc_registry_backend_data(r);
    if (!e->connected || e->closing) {
        done(ctx, MC_EUNAVAIL);
        return;
    }
    struct write *w = write_new(done, ctx);
    for (size_t i = 0; i < svc->node_count; i++) {
        struct del *d = mc_calloc(1, sizeof *d);
        d->w = w;
        d->key = node_key(svc->name, svc->nodes[i].id);
        w->pending++;
        json_t *b = json_object();
        char *k = b64(d->key, strlen(d->key));
        json_set_str(b, "key", k);
        mc_free(k);
        post(e, "/v3/kv/deleterange", b, delete_done, d);
    }
    write_node_done(e, 0, w);
}

/* ---- lifecycle ---- */

static void endpoints_free(struct etcd *e)
{
    for (size_t i = 0; i < e->endpoint_count; i++)
        mc_free(e->endpoints[i]);
    mc_free(e->endpoints);
}

static int etcd_init(struct mc_registry *r, const struct mc_registry_config *cfg, char *err,
                     size_t errlen)
{
    if (!cfg->loop || !cfg->client || !cfg->address || !*cfg->address) {
        snprintf(err, errlen, "--registry=etcd requires --registry_address");
        return MC_EINVAL;
    }
    struct etcd *e = mc_calloc(1, sizeof *e);
    e->r = r;
    e->loop = cfg->loop;
    e->client = cfg->client;
    const char *p = cfg->address;
    for (;;) {
        size_t len = strcspn(p, ",");
        char host[256];
        int port;
        char *entry = mc_strndup(p, len);
        if (mc_net_split_host_port(entry, host, sizeof host, &port) < 0) {
            snprintf(err, errlen,
                     "invalid value \"%s\" for flag --registry_address: expected "
                     "host:port[,host:port...]",
                     cfg->address);
            mc_free(entry);
            endpoints_free(e);
            mc_free(e);
            return MC_EINVAL;
        }
        e->endpoints = mc_realloc(e->endpoints, (e->endpoint_count + 1) * sizeof(char *));
        e->endpoints[e->endpoint_count++] = entry;
        if (!p[len])
            break;
        p += len + 1;
    }
    e->ttl_ms = cfg->lease_ttl_ms ? cfg->lease_ttl_ms : 30000;
    /* The lease is renewed every TTL/3 (sooner when --register_interval asks for it): two
     * keep-alives may be lost before the lease runs out. */
    e->keepalive_ms = e->ttl_ms / 3;
    if (cfg->renew_interval_ms && cfg->renew_interval_ms < e->keepalive_ms)
        e->keepalive_ms = cfg->renew_interval_ms;
    if (e->keepalive_ms == 0)
        e->keepalive_ms = 1;
    e->close_timeout_ms = cfg->close_timeout_ms ? cfg->close_timeout_ms : 5000;
    e->kv = json_object();
    e->leases = json_object();
    mc_buf_init(&e->watch_buf);
    snprintf(e->last_error, sizeof e->last_error, "not connected yet");
    mc_backend_state_init(&e->state, "registry", "etcd", MC_BACKEND_RETRYING, e->last_error);
    uv_timer_init(e->loop, &e->retry_timer);
    uv_timer_init(e->loop, &e->keepalive_timer);
    uv_timer_init(e->loop, &e->close_timer);
    e->retry_timer.data = e->keepalive_timer.data = e->close_timer.data = e;
    e->handles = 3;
    mc_registry_set_backend_data(r, e);
    return 0;
}

static void etcd_start(struct mc_registry *r)
{
    struct etcd *e = mc_registry_backend_data(r);
    mc_log_info("registry etcd: endpoints %s (key prefix " PREFIX ")",
                e->endpoints[0]); /* first one; the rest are tried in turn */
    session_start(e);
}

static void handle_closed(uv_handle_t *h)
{
    struct etcd *e = h->data;
    if (--e->handles > 0)
        return;
    struct mc_registry *r = e->r;
    json_decref(e->kv);
    json_decref(e->leases);
    mc_buf_close(&e->watch_buf);
    endpoints_free(e);
    mc_free(e);
    mc_registry_set_backend_data(r, NULL);
    mc_registry_backend_closed(r);
}

/* Every request still in flight ends (its callback sees MC_ECANCELED), the handles close. */
static void close_finish(struct etcd *e)
{
    if (e->finishing)
        return;
    e->finishing = 1; /* the cancelled requests' callbacks may come back here */
    while (e->reqs) {
        struct req *q = e->reqs;
        if (q->call)
            mc_http_call_cancel(q->call);
        q->call = NULL;
        req_finish(q, MC_ECANCELED, NULL);
    }
    uv_close((uv_handle_t *)&e->retry_timer, handle_closed);
    uv_close((uv_handle_t *)&e->keepalive_timer, handle_closed);
    uv_close((uv_handle_t *)&e->close_timer, handle_closed);
}

static void close_timeout(uv_timer_t *t)
{
    close_finish(t->data);
}

static void revoked(struct etcd *e, int err, json_t *body, void *arg)
{
    (void)err, (void)body, (void)arg;
    /* The last revoke out: nothing else is worth waiting for. */
    if (e->reqs == NULL)
        close_finish(e);
}

static void etcd_close(struct mc_registry *r)
{
    struct etcd *e = mc_registry_backend_data(r);
    e->closing = 1;
    watch_stop(e);
    uv_timer_stop(&e->retry_timer);
    uv_timer_stop(&e->keepalive_timer);
    /* Revoking our leases deletes every key on them at once: the sidecar's and its apps'
     * nodes do not linger for a TTL after a graceful stop. */
    int revoking = 0;
    if (e->lease && e->connected) {
        revoke(e, e->lease, revoked);
        revoking = 1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(e->leases, key, v)
    {
        if (e->connected) {
            revoke(e, int64_of(v), revoked);
            revoking = 1;
        }
    }
    if (!revoking && e->reqs == NULL) {
        close_finish(e);
        return;
    }
    uv_timer_start(&e->close_timer, close_timeout, e->close_timeout_ms, 0);
}

static const struct mc_backend_state *etcd_state(const struct mc_registry *r)
{
    const struct etcd *e = mc_registry_backend_data(r);
    return &e->state;
}

const struct mc_registry_ops mc_registry_etcd_ops = {
    .name = "etcd",
    .init = etcd_init,
    .start = etcd_start,
    .register_service = etcd_register,
    .deregister_service = etcd_deregister,
    .close = etcd_close,
    .state = etcd_state,
};
