/* The NATS broker backend (libnats): topic = subject, queue = queue group, payload = the wire
 * JSON, as go-micro's NATS broker. One NATS subscription per (topic, queue) in this sidecar,
 * shared by all its local subscribers and dropped with the last one. libnats calls back on its
 * own threads; every message and connection event crosses to the loop through the inbox,
 * keyed by the shared subscription's id, and is delivered by local subscription id.
 *
 * libnats's own threads, not its libuv adapter: the adapter only moves socket reads onto the
 * loop (message callbacks still run on libnats threads), its connect is still a blocking call
 * and its detach needs the loop alive during the client's reconnects and close. The only
 * blocking call, the first connect, runs on libuv's thread pool (uv_queue_work); everything
 * the loop calls (publish, subscribe, unsubscribe) only takes libnats's locks and buffers. */
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "broker/broker.h"
#include "broker/inbox.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/log.h"

#define NB_MIN_BUCKETS 16
#define NB_RECONNECT_WAIT_MS 1000
#define NB_CONNECT_TIMEOUT_MS 2000
/* What libnats may hold while reconnecting. A publish is refused (503) while the connection
 * is not up, so this only covers the moment between our check and the connection noticing
 * the loss; those bytes go out after the reconnect. */
#define NB_RECONNECT_BUF (256 * 1024)
/* How long shutdown waits for libnats's threads to unwind (connect timeout included). */
#define NB_CLOSE_WAIT_MS 3000

enum nb_event {
    NB_EV_CONNECTED = 1,
    NB_EV_DISCONNECTED,
    NB_EV_CLOSED,
    NB_EV_ERROR,
};

/* The closure of one NATS subscription: what its callbacks need, no pointer into loop-owned
 * state. Freed by the subscription's on-complete callback, after its last message. */
struct nb_route {
    struct mc_broker_inbox *inbox;
    uint64_t key;
};

/* One NATS subscription and the local subscriptions it feeds. */
struct nb_group {
    struct nb_group *key_next;  /* chain in the by-key table */
    struct nb_group *name_next; /* chain in the by-(topic, queue) table */
    uint64_t key;               /* never 0, never reused */
    uint64_t name_hash;
    char *topic;
    char *queue;            /* NULL for plain subscribers */
    natsSubscription *nsub; /* NULL until there is a connection */
    uint64_t *ids;          /* local subscription ids, unordered */
    size_t nids, cap;
    size_t next; /* queue groups: the local member to hand the next message to */
};

/* The first connect, on the thread pool. Shared with the worker under lock until done. */
struct nb_connect {
    uv_work_t work;
    natsOptions *opts; /* borrowed from the state, alive until the state waited for us */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;               /* guarded by lock */
    natsConnection *nc;     /* result; guarded by lock */
    natsStatus status;      /* guarded by lock */
    char error[256];        /* guarded by lock */
    int abandoned;          /* loop thread: the state is gone, after_work only frees */
    struct nb_state *state; /* loop thread */
};

struct nb_state {
    struct mc_broker *b;
    struct mc_broker_inbox *inbox;
    natsOptions *opts;
    natsConnection *nc;
    struct nb_connect *connecting;
    struct nb_group **by_key, **by_name; /* nbuckets each, a power of two */
    size_t nbuckets;
    size_t ngroups;
    uint64_t last_key;
    uint64_t *scratch; /* one message's fan-out list */
    size_t scratch_cap;
    uint64_t dropped_seen;
};

/* ---- tables ---- */

static uint64_t name_hash(const char *topic, const char *queue)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a over topic, NUL, queue */
    for (const char *s = topic; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    h = (h ^ 0xff) * 0x100000001b3ULL;
    for (const char *s = queue ? queue : ""; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

static size_t key_bucket(uint64_t key, size_t n)
{
    return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 32) & (n - 1);
}

static void link_group(struct nb_state *st, struct nb_group *g)
{
    size_t k = key_bucket(g->key, st->nbuckets), n = g->name_hash & (st->nbuckets - 1);
    g->key_next = st->by_key[k];
    st->by_key[k] = g;
    g->name_next = st->by_name[n];
    st->by_name[n] = g;
}

static void tables_grow(struct nb_state *st)
{
    struct nb_group **old = st->by_key;
    size_t oldn = st->nbuckets;
    mc_free(st->by_name);
    st->nbuckets *= 2;
    st->by_key = mc_calloc(st->nbuckets, sizeof *st->by_key);
    st->by_name = mc_calloc(st->nbuckets, sizeof *st->by_name);
    for (size_t i = 0; i < oldn; i++) {
        struct nb_group *g = old[i], *next;
        for (; g; g = next) {
            next = g->key_next;
            link_group(st, g);
        }
    }
    mc_free(old);
}

static struct nb_group *find_by_key(const struct nb_state *st, uint64_t key)
{
    struct nb_group *g = st->by_key[key_bucket(key, st->nbuckets)];
    while (g && g->key != key)
        g = g->key_next;
    return g;
}

static struct nb_group *find_by_name(const struct nb_state *st, const char *topic,
                                     const char *queue)
{
    uint64_t h = name_hash(topic, queue);
    for (struct nb_group *g = st->by_name[h & (st->nbuckets - 1)]; g; g = g->name_next) {
        if (g->name_hash == h && strcmp(g->topic, topic) == 0 &&
            ((!g->queue && !queue) || (g->queue && queue && strcmp(g->queue, queue) == 0)))
            return g;
    }
    return NULL;
}

static void unlink_group(struct nb_state *st, struct nb_group *g)
{
    struct nb_group **pp = &st->by_key[key_bucket(g->key, st->nbuckets)];
    while (*pp != g)
        pp = &(*pp)->key_next;
    *pp = g->key_next;
    pp = &st->by_name[g->name_hash & (st->nbuckets - 1)];
    while (*pp != g)
        pp = &(*pp)->name_next;
    *pp = g->name_next;
    st->ngroups--;
}

/* ---- libnats threads: everything goes through the inbox ---- */

static void on_nats_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc;
    (void)sub;
    struct nb_route *r = closure;
    const char *subject = natsMsg_GetSubject(m);
    const char *data = natsMsg_GetData(m);
    size_t len = (size_t)natsMsg_GetDataLength(m);
    /* Validated here, off the loop. A payload that is not our JSON envelope (a plain NATS
     * publisher) becomes the body of one, so subscribers always get the same shape. */
    struct mc_broker_message *msg = mc_broker_message_from_json(subject, data ? data : "", len);
    if (!msg)
        msg = mc_broker_message_new(subject, NULL, 0, data, len);
    natsMsg_Destroy(m);
    if (msg)
        mc_broker_inbox_push(r->inbox, r->key, msg); /* counts a drop itself */
}

static void on_nats_complete(void *closure)
{
    mc_free(closure);
}

/* The connection's last error as text, for the state and the log. */
static void last_error(natsConnection *nc, char *out, size_t len, const char *fallback)
{
    const char *text = NULL;
    natsStatus s = nc ? natsConnection_GetLastError(nc, &text) : NATS_OK;
    if (s != NATS_OK && text && *text)
        snprintf(out, len, "%s: %s", fallback, text);
    else if (s != NATS_OK)
        snprintf(out, len, "%s: %s", fallback, natsStatus_GetText(s));
    else
        snprintf(out, len, "%s", fallback);
}

static void on_nats_connected(natsConnection *nc, void *closure)
{
    (void)nc;
    mc_broker_inbox_push_event(closure, NB_EV_CONNECTED, NULL);
}

static void on_nats_disconnected(natsConnection *nc, void *closure)
{
    char text[256];
    last_error(nc, text, sizeof text, "connection lost");
    mc_broker_inbox_push_event(closure, NB_EV_DISCONNECTED, text);
}

static void on_nats_closed(natsConnection *nc, void *closure)
{
    (void)nc;
    mc_broker_inbox_push_event(closure, NB_EV_CLOSED, "connection closed");
}

static void on_nats_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    (void)nc;
    (void)sub;
    mc_broker_inbox_push_event(closure, NB_EV_ERROR, natsStatus_GetText(err));
}

/* ---- the loop side ---- */

/* Starts the group's NATS subscription. Returns 0 or a negative code. */
static int group_nats_subscribe(struct nb_state *st, struct nb_group *g)
{
    struct nb_route *r = mc_malloc(sizeof *r);
    r->inbox = st->inbox;
    r->key = g->key;
    natsStatus s = g->queue ? natsConnection_QueueSubscribe(&g->nsub, st->nc, g->topic, g->queue,
                                                            on_nats_msg, r)
                            : natsConnection_Subscribe(&g->nsub, st->nc, g->topic, on_nats_msg, r);
    if (s == NATS_OK)
        s = natsSubscription_SetOnCompleteCB(g->nsub, on_nats_complete, r);
    if (s == NATS_OK)
        return 0;
    mc_log_warn("broker nats: subscribe to %s%s%s failed: %s", g->topic, g->queue ? " queue " : "",
                g->queue ? g->queue : "", natsStatus_GetText(s));
    if (g->nsub) {
        /* Subscribed but without its completion hook: the route must outlive any callback
         * libnats may still make, so it is left to the process (never reached in practice). */
        natsSubscription_Unsubscribe(g->nsub);
        natsSubscription_Destroy(g->nsub);
        g->nsub = NULL;
    } else {
        mc_free(r);
    }
    return s == NATS_INVALID_SUBJECT || s == NATS_INVALID_QUEUE_NAME || s == NATS_INVALID_ARG
               ? MC_EINVAL
               : MC_EUNAVAIL;
}

static void group_free(struct nb_group *g)
{
    if (g->nsub) {
        natsSubscription_Unsubscribe(g->nsub); /* only buffers an UNSUB; never waits */
        natsSubscription_Destroy(g->nsub);
    }
    mc_free(g->ids);
    mc_free(g->topic);
    mc_free(g->queue);
    mc_free(g);
}

static void on_inbox_message(void *ctx, uint64_t key, struct mc_broker_message *msg)
{
    struct nb_state *st = ctx;
    uint64_t dropped = mc_broker_inbox_dropped(st->inbox);
    if (dropped != st->dropped_seen) {
        mc_log_warn("broker nats: %llu message(s) dropped: the loop fell more than %u MiB behind",
                    (unsigned long long)(dropped - st->dropped_seen),
                    MC_BROKER_INBOX_MAX_BYTES >> 20);
        st->dropped_seen = dropped;
    }
    struct nb_group *g = find_by_key(st, key);
    if (!g || g->nids == 0)
        return; /* unsubscribed while the message was on its way */
    if (g->queue) {
        /* NATS gave the group's message to this sidecar; one local member gets it. */
        size_t i = g->next++ % g->nids;
        mc_broker_deliver_id(st->b, g->ids[i], msg);
        return;
    }
    /* A callback may unsubscribe anyone (the group included): walk a copy, by id. */
    size_t n = g->nids;
    if (n > st->scratch_cap) {
        st->scratch_cap = n;
        st->scratch = mc_realloc(st->scratch, n * sizeof *st->scratch);
    }
    memcpy(st->scratch, g->ids, n * sizeof *st->scratch);
    uint64_t *ids = st->scratch;
    for (size_t i = 0; i < n; i++)
        mc_broker_deliver_id(st->b, ids[i], msg);
}

static void on_inbox_event(void *ctx, int event, const char *text)
{
    struct nb_state *st = ctx;
    switch (event) {
    case NB_EV_CONNECTED:
        mc_broker_set_state(st->b, MC_BACKEND_CONNECTED, NULL);
        break;
    case NB_EV_DISCONNECTED:
    case NB_EV_CLOSED:
        mc_broker_set_state(st->b, MC_BACKEND_RETRYING, text);
        break;
    default:
        mc_log_warn("broker nats: %s", text ? text : "error");
        break;
    }
}

static void connect_work(uv_work_t *w)
{
    struct nb_connect *c = w->data;
    natsConnection *nc = NULL;
    natsStatus s = natsConnection_Connect(&nc, c->opts);
    char error[sizeof c->error] = "";
    if (s != NATS_OK) {
        /* libnats keeps the detail per thread: read it here, on the thread that failed. */
        const char *text = nats_GetLastError(NULL);
        snprintf(error, sizeof error, "%s", text && *text ? text : natsStatus_GetText(s));
    }
    pthread_mutex_lock(&c->lock);
    c->nc = nc;
    c->status = s;
    memcpy(c->error, error, sizeof error);
    c->done = 1;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void connect_free(struct nb_connect *c)
{
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    mc_free(c);
}

static void connect_after(uv_work_t *w, int status)
{
    struct nb_connect *c = w->data;
    (void)status;
    if (c->abandoned) {
        connect_free(c); /* the state took (and closed) the connection when it went away */
        return;
    }
    struct nb_state *st = c->state;
    st->connecting = NULL;
    st->nc = c->nc;
    if (!st->nc) {
        /* Retry-on-failed-connect hands back a connection for every reachability problem;
         * no connection means a configuration libnats refused. Nothing will change it. */
        char text[300];
        snprintf(text, sizeof text, "cannot connect: %s", c->error);
        mc_broker_set_state(st->b, MC_BACKEND_RETRYING, text);
        mc_log_error("broker nats: %s (not retried)", c->error);
        connect_free(c);
        return;
    }
    /* Local subscriptions made while connecting get their NATS subscription now; libnats
     * sends them when the connection is (or becomes) up and resends them after reconnects. */
    for (size_t i = 0; i < st->nbuckets; i++)
        for (struct nb_group *g = st->by_key[i]; g; g = g->key_next)
            if (!g->nsub)
                group_nats_subscribe(st, g);
    if (natsConnection_Status(st->nc) == NATS_CONN_STATUS_CONNECTED) {
        mc_broker_set_state(st->b, MC_BACKEND_CONNECTED, NULL);
    } else {
        char text[300];
        snprintf(text, sizeof text, "cannot connect: %s", c->error);
        mc_broker_set_state(st->b, MC_BACKEND_RETRYING, text);
    }
    connect_free(c);
}

/* Splits "nats://a:1,nats://b:2" into the options' server list. */
static natsStatus set_servers(natsOptions *opts, const char *address)
{
    char *copy = mc_strdup(address);
    const char *urls[64];
    int n = 0;
    char *save = NULL;
    for (char *u = strtok_r(copy, ",", &save); u && n < 64; u = strtok_r(NULL, ",", &save))
        if (*u)
            urls[n++] = u;
    natsStatus s = n > 0 ? natsOptions_SetServers(opts, urls, n) : NATS_ADDRESS_MISSING;
    mc_free(copy);
    return s;
}

static natsStatus make_options(struct nb_state *st, const struct mc_broker_settings *set)
{
    uint64_t wait = set->reconnect_wait_ms ? set->reconnect_wait_ms : NB_RECONNECT_WAIT_MS;
    uint64_t timeout = set->connect_timeout_ms ? set->connect_timeout_ms : NB_CONNECT_TIMEOUT_MS;
    natsStatus s = natsOptions_Create(&st->opts);
    if (s == NATS_OK)
        s = set_servers(st->opts, set->address ? set->address : "");
    if (s == NATS_OK)
        s = natsOptions_SetName(st->opts, "micro-sidecar");
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(st->opts, (int64_t)timeout);
    /* Unlimited reconnects, a fixed pause between rounds: the sidecar outlives any outage. */
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(st->opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(st->opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(st->opts, (int64_t)wait);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectBufSize(st->opts, NB_RECONNECT_BUF);
    /* One pool thread delivers for every subscription: a sidecar with a thousand topics must
     * not run a thousand threads, and the loop is the fan-out's bottleneck anyway. */
    if (s == NATS_OK)
        s = natsOptions_UseGlobalMessageDelivery(st->opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(st->opts, true, on_nats_connected, st->inbox);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(st->opts, on_nats_disconnected, st->inbox);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(st->opts, on_nats_connected, st->inbox);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(st->opts, on_nats_closed, st->inbox);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(st->opts, on_nats_error, st->inbox);
    return s;
}

static void state_free(struct nb_state *st)
{
    mc_free(st->scratch);
    mc_free(st->by_key);
    mc_free(st->by_name);
    mc_free(st);
}

static int nats_start(struct mc_broker *b)
{
    const struct mc_broker_settings *set = mc_broker_settings_of(b);
    uv_loop_t *loop = mc_broker_loop(b);
    if (!loop || !set->address || !*set->address)
        return MC_EINVAL;
    natsStatus s = nats_Open(-1);
    if (s != NATS_OK) {
        mc_log_error("broker nats: cannot initialise libnats: %s", natsStatus_GetText(s));
        return MC_EINVAL;
    }
    struct nb_state *st = mc_calloc(1, sizeof *st);
    st->b = b;
    st->nbuckets = NB_MIN_BUCKETS;
    st->by_key = mc_calloc(st->nbuckets, sizeof *st->by_key);
    st->by_name = mc_calloc(st->nbuckets, sizeof *st->by_name);
    st->inbox = mc_broker_inbox_new(loop, on_inbox_message, on_inbox_event, st);
    s = make_options(st, set);
    if (s != NATS_OK) {
        mc_log_error("broker nats: bad settings for %s: %s", set->address, natsStatus_GetText(s));
        natsOptions_Destroy(st->opts);
        mc_broker_inbox_free(st->inbox);
        state_free(st);
        return MC_EINVAL;
    }
    mc_broker_set_backend(b, st);
    mc_broker_set_state(b, MC_BACKEND_RETRYING, "connecting");
    struct nb_connect *c = mc_calloc(1, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->opts = st->opts;
    c->state = st;
    c->work.data = c;
    st->connecting = c;
    uv_queue_work(loop, &c->work, connect_work, connect_after);
    return 0;
}

static int nats_publish(struct mc_broker *b, struct mc_broker_message *msg)
{
    struct nb_state *st = mc_broker_backend(b);
    /* While NATS is away a publish is refused, not queued: the publisher hears it now
     * (POST 503, a WebSocket close 1013) instead of a message vanishing later. */
    if (!st->nc || natsConnection_Status(st->nc) != NATS_CONN_STATUS_CONNECTED)
        return MC_EUNAVAIL;
    size_t len;
    const char *json = mc_broker_message_json(msg, &len);
    if (len > INT32_MAX)
        return MC_ETOOBIG;
    natsStatus s = natsConnection_Publish(st->nc, mc_broker_message_topic(msg), json, (int)len);
    switch (s) {
    case NATS_OK:
        return 0;
    case NATS_INVALID_SUBJECT:
    case NATS_INVALID_ARG:
        return MC_EINVAL;
    case NATS_MAX_PAYLOAD:
        return MC_ETOOBIG;
    default:
        return MC_EUNAVAIL;
    }
}

static int nats_subscribe(struct mc_broker *b, struct mc_broker_subscription *sub)
{
    struct nb_state *st = mc_broker_backend(b);
    struct nb_group *g = find_by_name(st, sub->topic, sub->queue);
    if (!g) {
        g = mc_calloc(1, sizeof *g);
        g->key = ++st->last_key;
        g->topic = mc_strdup(sub->topic);
        g->queue = sub->queue ? mc_strdup(sub->queue) : NULL;
        g->name_hash = name_hash(g->topic, g->queue);
        if (st->nc) {
            int rc = group_nats_subscribe(st, g);
            if (rc < 0) {
                group_free(g);
                return rc;
            }
        }
        if (st->ngroups >= st->nbuckets)
            tables_grow(st);
        link_group(st, g);
        st->ngroups++;
    }
    if (g->nids == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 4;
        g->ids = mc_realloc(g->ids, g->cap * sizeof *g->ids);
    }
    g->ids[g->nids++] = sub->id;
    sub->backend_data = g;
    return 0;
}

static void nats_unsubscribe(struct mc_broker *b, struct mc_broker_subscription *sub)
{
    struct nb_state *st = mc_broker_backend(b);
    struct nb_group *g = sub->backend_data;
    sub->backend_data = NULL;
    for (size_t i = 0; i < g->nids; i++) {
        if (g->ids[i] == sub->id) {
            g->ids[i] = g->ids[--g->nids];
            break;
        }
    }
    if (g->nids > 0)
        return;
    /* The last local subscriber left: so does the NATS subscription. Messages for it still
     * in the inbox find no group and are dropped there. */
    unlink_group(st, g);
    group_free(g);
}

static void nats_close(struct mc_broker *b)
{
    struct nb_state *st = mc_broker_backend(b);
    for (size_t i = 0; i < st->nbuckets; i++)
        while (st->by_key[i]) {
            struct nb_group *g = st->by_key[i];
            unlink_group(st, g);
            group_free(g);
        }
    struct nb_connect *c = st->connecting;
    if (c) {
        /* A connect still on the pool: cancel it, or wait for its one attempt (bounded by
         * the connect timeout) and take its connection; after_work then only frees it. */
        if (uv_cancel((uv_req_t *)&c->work) != 0) {
            pthread_mutex_lock(&c->lock);
            while (!c->done)
                pthread_cond_wait(&c->cond, &c->lock);
            st->nc = c->nc;
            pthread_mutex_unlock(&c->lock);
        }
        c->abandoned = 1;
        st->connecting = NULL;
    }
    if (st->nc)
        natsConnection_Destroy(st->nc); /* closes; libnats's threads wind down */
    st->nc = NULL;
    natsOptions_Destroy(st->opts);
    /* The inbox may be freed only once no libnats thread can push into it. */
    natsStatus s = nats_CloseAndWait(NB_CLOSE_WAIT_MS);
    if (s == NATS_OK)
        mc_broker_inbox_free(st->inbox);
    else
        mc_log_warn("broker nats: libnats did not stop within %d ms (%s); leaving its inbox",
                    NB_CLOSE_WAIT_MS, natsStatus_GetText(s));
    state_free(st);
    mc_broker_set_backend(b, NULL);
}

static size_t nats_topic_count(const struct mc_broker *b)
{
    const struct nb_state *st = mc_broker_backend(b);
    /* Distinct topics over the groups; only /metrics asks. */
    size_t count = 0;
    for (size_t i = 0; i < st->nbuckets; i++)
        for (const struct nb_group *g = st->by_key[i]; g; g = g->key_next) {
            int seen = 0;
            for (size_t j = 0; j <= i && !seen; j++)
                for (const struct nb_group *h = st->by_key[j]; h && h != g && !seen;
                     h = h->key_next)
                    seen = strcmp(h->topic, g->topic) == 0;
            count += !seen;
        }
    return count;
}

const struct mc_broker_ops mc_broker_nats_ops = {
    .name = "nats",
    .start = nats_start,
    .publish = nats_publish,
    .subscribe = nats_subscribe,
    .unsubscribe = nats_unsubscribe,
    .close = nats_close,
    .topic_count = nats_topic_count,
};
