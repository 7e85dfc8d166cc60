/* The registry's local view (services sorted by (name, version), each with its nodes), the
 * front end that validates and hands writes to the backend, and the watch fan-out. */
#include "registry/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registry/node_index.h"
#include "util/alloc.h"
#include "util/error.h"

struct watch {
    int id;
    int removed;  /* unwatched during a dispatch; compacted when the dispatch ends */
    char *filter; /* NULL = every service */
    mc_registry_watch_cb cb;
    void *ctx;
};

/* One (name, version) of the view. Heap-allocated so that its address (and the node index's
 * owner pointers to it) stays put while the sorted array of pointers shifts. */
struct vent {
    struct mc_service svc; /* what lookups return pointers to */
    size_t cap;            /* room in svc.nodes */
};

struct mc_registry {
    const struct mc_registry_ops *ops;
    void *backend_data;
    struct mc_registry_config config;
    struct mc_clock clock;
    struct mc_backend_state state; /* a backend without a state op: connected */
    mc_registry_closed_cb closed;
    void *closed_ctx;

    /* The nodes this sidecar wrote and keeps (see struct mc_registry_owned), unordered, and
     * an index (name, id) -> position so that a write of N nodes stays O(N) (apps may
     * register 100k+ nodes through one sidecar). The index borrows the entries' strings. */
    struct mc_registry_owned *owned;
    size_t owned_count;
    size_t owned_cap;
    struct mc_node_index owned_ids;

    /* The view: sorted by (name, version) in byte order, so the versions of a name are
     * contiguous and already in the order reads return them. Every entry has >= 1 node, kept
     * in registration order. */
    struct vent **services;
    size_t count;
    size_t cap;
    /* Bumped by every change of the view (each mutation ends in dispatch): what the read
     * cache checks its answers against. */
    uint64_t generation;
    /* GET /registry?service=NAME answers, serialised: valid while the view is unchanged and
     * no node has reached its expiry (reads hide expired nodes before the expiry tick). */
    struct read_cache_entry {
        char *name;
        char *text;
        size_t len;
        uint64_t generation;
        uint64_t valid_until_ms; /* 0: no node has an expiry */
    } read_cache[MC_REGISTRY_READ_CACHE];
    unsigned read_cache_next;
    /* Every node of the view by (name, id) -> (its vent, its position there): node ids are
     * unique within a name, and this is what keeps a write of N nodes O(N), not O(N * view).
     * Borrows the vent's name and the node's id strings. */
    struct mc_node_index ids;

    struct watch *watches;
    size_t watch_count;
    size_t watch_cap;
    int next_watch_id;
    int dispatching; /* nesting depth of dispatch(): callbacks may cause events themselves */

    /* mc_registry_lookup's filtered copies when expired nodes still sit in the view: grown
     * once, reused, so the hot path does not allocate in the steady state. Shallow: they
     * borrow the view's strings. */
    struct mc_service *scratch_services;
    size_t scratch_services_cap;
    struct mc_node *scratch_nodes;
    size_t scratch_nodes_cap;
};

/* A change waiting to be told to the watchers; its service is a deep copy, so callbacks may
 * change the view while it is delivered. */
struct event {
    enum mc_registry_action action;
    struct mc_service svc;
};

struct events {
    struct event *v;
    size_t n;
    size_t cap;
};

const char *mc_registry_action_name(enum mc_registry_action action)
{
    switch (action) {
    case MC_REGISTRY_CREATE:
        return "create";
    case MC_REGISTRY_UPDATE:
        return "update";
    case MC_REGISTRY_DELETE:
        return "delete";
    }
    return "unknown";
}

/* ---- small helpers ---- */

static const char *ver(const char *v)
{
    return v ? v : "";
}

static void json_replace(json_t **slot, const json_t *src)
{
    json_t *c = mc_json_copy(src);
    if (*slot)
        json_decref(*slot);
    *slot = c;
}

static int live(const struct mc_node *n, uint64_t now)
{
    return n->expires_at_ms == 0 || now < n->expires_at_ms;
}

static size_t live_count(const struct mc_service *s, uint64_t now)
{
    size_t c = 0;
    for (size_t i = 0; i < s->node_count; i++)
        c += live(&s->nodes[i], now);
    return c;
}

static uint64_t now_ms(struct mc_registry *r)
{
    return mc_clock_now(&r->clock);
}

/* Takes n's fields into v (n is left empty), growing geometrically; returns its position. */
static size_t vent_append_move(struct vent *v, struct mc_node *n)
{
    if (v->svc.node_count == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 4;
        v->svc.nodes = mc_realloc(v->svc.nodes, v->cap * sizeof(*v->svc.nodes));
    }
    v->svc.nodes[v->svc.node_count] = *n;
    memset(n, 0, sizeof(*n));
    return v->svc.node_count++;
}

/* ---- the sorted view ---- */

static int key_cmp(const struct mc_service *s, const char *name, const char *version)
{
    int c = strcmp(s->name, name);
    return c ? c : strcmp(ver(s->version), version);
}

/* The first index whose (name, version) is >= the key. */
static size_t lower_bound(const struct mc_registry *r, const char *name, const char *version)
{
    size_t lo = 0, hi = r->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(&r->services[mid]->svc, name, version) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* [*begin, *end) are the versions of name ("" sorts before every other version). */
static void name_range(const struct mc_registry *r, const char *name, size_t *begin, size_t *end)
{
    size_t i = lower_bound(r, name, "");
    *begin = i;
    while (i < r->count && strcmp(r->services[i]->svc.name, name) == 0)
        i++;
    *end = i;
}

static struct vent *view_find(const struct mc_registry *r, const char *name, const char *version)
{
    size_t i = lower_bound(r, name, version);
    if (i < r->count && key_cmp(&r->services[i]->svc, name, version) == 0)
        return r->services[i];
    return NULL;
}

static struct vent *view_get_or_insert(struct mc_registry *r, const char *name, const char *version)
{
    size_t i = lower_bound(r, name, version);
    if (i < r->count && key_cmp(&r->services[i]->svc, name, version) == 0)
        return r->services[i];
    if (r->count == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->services = mc_realloc(r->services, r->cap * sizeof(*r->services));
    }
    memmove(&r->services[i + 1], &r->services[i], (r->count - i) * sizeof(*r->services));
    r->count++;
    struct vent *v = mc_calloc(1, sizeof(*v));
    mc_service_init(&v->svc);
    v->svc.name = mc_strdup(name);
    v->svc.version = mc_strdup(version);
    r->services[i] = v;
    return v;
}

/* Frees the vent at i, whose nodes are already out of the index. */
static void view_remove_at(struct mc_registry *r, size_t i)
{
    mc_service_close(&r->services[i]->svc);
    mc_free(r->services[i]);
    memmove(&r->services[i], &r->services[i + 1], (r->count - i - 1) * sizeof(*r->services));
    r->count--;
}

/* ---- events and watches ---- */

/* Queues an event for s's (name, version, metadata, endpoints) with room for room nodes and
 * none yet; the result is valid until the next push. */
static struct mc_service *event_push(struct events *ev, enum mc_registry_action action,
                                     const struct mc_service *s, size_t room)
{
    if (ev->n == ev->cap) {
        ev->cap = ev->cap ? ev->cap * 2 : 4;
        ev->v = mc_realloc(ev->v, ev->cap * sizeof(*ev->v));
    }
    struct event *e = &ev->v[ev->n++];
    e->action = action;
    mc_service_init(&e->svc);
    e->svc.name = mc_strdup(s->name);
    e->svc.version = mc_strdup(ver(s->version));
    e->svc.metadata = mc_json_copy(s->metadata);
    e->svc.endpoints = mc_json_copy(s->endpoints);
    e->svc.nodes = mc_calloc(room ? room : 1, sizeof(*e->svc.nodes));
    return &e->svc;
}

/* Appends a deep copy of n to an event made with room for it. */
static void event_add_copy(struct mc_service *e, const struct mc_node *n)
{
    struct mc_node *c = &e->nodes[e->node_count++];
    c->id = mc_strdup(n->id);
    c->address = mc_strdup(n->address ? n->address : "");
    c->port = n->port;
    c->metadata = mc_json_copy(n->metadata);
    c->expires_at_ms = n->expires_at_ms;
}

static void watches_compact(struct mc_registry *r)
{
    size_t j = 0;
    for (size_t i = 0; i < r->watch_count; i++) {
        if (r->watches[i].removed) {
            mc_free(r->watches[i].filter);
            continue;
        }
        r->watches[j++] = r->watches[i];
    }
    r->watch_count = j;
}

/* Delivers and frees the queued events. Watches are re-read by index after every callback
 * because a callback may add one (growing the array) or remove one (marked, compacted later);
 * watches added during an event start with the next event. */
static void dispatch(struct mc_registry *r, struct events *ev)
{
    r->generation++;
    r->dispatching++;
    for (size_t e = 0; e < ev->n; e++) {
        const struct event *event = &ev->v[e];
        size_t n = r->watch_count;
        for (size_t i = 0; i < n; i++) {
            const struct watch *w = &r->watches[i];
            if (w->removed)
                continue;
            if (w->filter && strcmp(w->filter, event->svc.name) != 0)
                continue;
            w->cb(w->ctx, event->action, &event->svc);
        }
    }
    r->dispatching--;
    if (r->dispatching == 0)
        watches_compact(r);
    for (size_t e = 0; e < ev->n; e++)
        mc_service_close(&ev->v[e].svc);
    mc_free(ev->v);
    memset(ev, 0, sizeof(*ev));
}

int mc_registry_watch(struct mc_registry *r, const char *service_filter, mc_registry_watch_cb cb,
                      void *ctx)
{
    if (!cb)
        return MC_EINVAL;
    if (r->watch_count == r->watch_cap) {
        r->watch_cap = r->watch_cap ? r->watch_cap * 2 : 8;
        r->watches = mc_realloc(r->watches, r->watch_cap * sizeof(*r->watches));
    }
    struct watch *w = &r->watches[r->watch_count++];
    w->id = ++r->next_watch_id;
    w->removed = 0;
    w->filter = service_filter ? mc_strdup(service_filter) : NULL;
    w->cb = cb;
    w->ctx = ctx;
    return w->id;
}

void mc_registry_unwatch(struct mc_registry *r, int id)
{
    for (size_t i = 0; i < r->watch_count; i++) {
        if (r->watches[i].id != id || r->watches[i].removed)
            continue;
        r->watches[i].removed = 1;
        /* During a dispatch the array is being walked: leave the slot, compact afterwards. */
        if (r->dispatching == 0)
            watches_compact(r);
        return;
    }
}

/* ---- view mutators ---- */

/* Removes the nodes at positions pos[0..k) (ascending, distinct, k >= 1) of the vent at index
 * vi, in one pass: they leave the index and move, in their order, into one DELETE event; the
 * nodes behind them close up (keeping their order) and their index entries follow. A vent left
 * without nodes disappears. */
static void vent_remove_positions(struct mc_registry *r, size_t vi, const size_t *pos, size_t k,
                                  struct events *ev)
{
    struct vent *v = r->services[vi];
    struct mc_service *s = &v->svc;
    struct mc_service *del = event_push(ev, MC_REGISTRY_DELETE, s, k);
    size_t w = pos[0], p = 0;
    for (size_t j = pos[0]; j < s->node_count; j++) {
        struct mc_node *n = &s->nodes[j];
        if (p < k && pos[p] == j) {
            mc_node_index_remove(&r->ids, s->name, n->id);
            del->nodes[del->node_count++] = *n;
            p++;
            continue;
        }
        if (w != j) {
            s->nodes[w] = *n;
            mc_node_index_find(&r->ids, s->name, n->id)->pos = w;
        }
        w++;
    }
    s->node_count = w;
    if (w == 0)
        view_remove_at(r, vi);
}

/* A node of the view that a write names: where it is now. */
struct hit {
    struct vent *v;
    size_t pos;
};

/* The versions of one name are distinct, so the version orders vents as the view does. */
static int hit_cmp(const void *a, const void *b)
{
    const struct hit *x = a, *y = b;
    if (x->v != y->v)
        return strcmp(x->v->svc.version, y->v->svc.version);
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Removes the nodes hits[0..n) name (duplicates allowed), queueing one DELETE per (name,
 * version) in version order, with the nodes in their view order. O(n log n) plus one pass over
 * each vent touched. */
static void remove_hits(struct mc_registry *r, struct hit *hits, size_t n, struct events *ev)
{
    if (n == 0)
        return;
    qsort(hits, n, sizeof(*hits), hit_cmp);
    size_t *pos = mc_malloc(n * sizeof(*pos));
    for (size_t g = 0; g < n;) {
        struct vent *v = hits[g].v;
        size_t k = 0;
        for (; g < n && hits[g].v == v; g++)
            if (k == 0 || pos[k - 1] != hits[g].pos)
                pos[k++] = hits[g].pos;
        size_t vi = lower_bound(r, v->svc.name, v->svc.version);
        vent_remove_positions(r, vi, pos, k, ev);
    }
    mc_free(pos);
}

/* Looks up the ids in names under in->name, skipping those held by keep (NULL: none kept);
 * returns how many it stored in the new array *out (the caller frees it). */
static size_t find_hits(struct mc_registry *r, const struct mc_service *in, const struct vent *keep,
                        struct hit **out)
{
    struct hit *hits = mc_malloc((in->node_count ? in->node_count : 1) * sizeof(*hits));
    size_t n = 0;
    for (size_t i = 0; i < in->node_count; i++) {
        const struct mc_node_slot *slot = mc_node_index_find(&r->ids, in->name, in->nodes[i].id);
        if (slot && slot->owner != keep)
            hits[n++] = (struct hit){slot->owner, slot->pos};
    }
    *out = hits;
    return n;
}

int mc_registry_view_upsert(struct mc_registry *r, const struct mc_service *svc_in, uint64_t ttl_ms)
{
    /* Nothing to upsert: creating an entry would leave a (name, version) without nodes. */
    if (!svc_in->name || svc_in->node_count == 0)
        return svc_in->name ? 0 : MC_EINVAL;
    /* Work on a copy: svc_in may point into the view (a lookup result), which this changes.
     * The same id twice in one call is one node (the last values win), reported once. */
    struct mc_service in;
    mc_service_copy(&in, svc_in);
    mc_service_merge_duplicate_nodes(&in);
    struct events ev = {0};
    uint64_t now = now_ms(r);
    uint64_t expires = 0;
    if (ttl_ms)
        expires = ttl_ms > UINT64_MAX - now ? UINT64_MAX : now + ttl_ms;

    /* 1. A node id is unique within a name: take it out of any other version first, telling
     * the watchers, so their caches drop it there before it appears here. */
    struct hit *hits;
    size_t nhits = find_hits(r, &in, view_find(r, in.name, in.version), &hits);
    remove_hits(r, hits, nhits, &ev);
    mc_free(hits);

    /* 2. Upsert into (name, version); the latest registration's service fields win. */
    struct vent *t = view_get_or_insert(r, in.name, in.version);
    json_replace(&t->svc.metadata, in.metadata);
    json_replace(&t->svc.endpoints, in.endpoints);
    size_t *created = mc_malloc(in.node_count * sizeof(*created));
    size_t *updated = mc_malloc(in.node_count * sizeof(*updated));
    size_t ncreated = 0, nupdated = 0;
    for (size_t i = 0; i < in.node_count; i++) {
        struct mc_node *n = &in.nodes[i];
        struct mc_node_slot *slot = mc_node_index_find(&r->ids, t->svc.name, n->id);
        if (!slot) {
            n->expires_at_ms = expires;
            size_t at = vent_append_move(t, n);
            slot = mc_node_index_insert(&r->ids, t->svc.name, t->svc.nodes[at].id);
            slot->owner = t;
            slot->pos = at;
            created[ncreated++] = at;
            continue;
        }
        struct mc_node *old = &t->svc.nodes[slot->pos];
        mc_free(old->address);
        old->address = n->address;
        n->address = NULL;
        old->port = n->port;
        json_replace(&old->metadata, n->metadata);
        old->expires_at_ms = expires;
        updated[nupdated++] = slot->pos;
    }
    if (ncreated) {
        struct mc_service *e = event_push(&ev, MC_REGISTRY_CREATE, &t->svc, ncreated);
        for (size_t c = 0; c < ncreated; c++)
            event_add_copy(e, &t->svc.nodes[created[c]]);
    }
    if (nupdated) {
        struct mc_service *e = event_push(&ev, MC_REGISTRY_UPDATE, &t->svc, nupdated);
        for (size_t u = 0; u < nupdated; u++)
            event_add_copy(e, &t->svc.nodes[updated[u]]);
    }
    mc_free(created);
    mc_free(updated);
    mc_service_close(&in);
    dispatch(r, &ev);
    return 0;
}

int mc_registry_view_remove(struct mc_registry *r, const struct mc_service *svc_in)
{
    if (!svc_in->name)
        return MC_EINVAL;
    struct events ev = {0};
    /* The hits are collected before anything changes, so svc_in may even point into the view:
     * its strings are only read here. */
    struct hit *hits;
    size_t nhits = find_hits(r, svc_in, NULL, &hits);
    remove_hits(r, hits, nhits, &ev);
    mc_free(hits);
    dispatch(r, &ev);
    return 0;
}

size_t mc_registry_expire(struct mc_registry *r)
{
    uint64_t now = now_ms(r);
    struct events ev = {0};
    size_t dropped = 0;
    size_t *pos = NULL, pos_cap = 0;
    for (size_t i = 0; i < r->count;) {
        const struct mc_service *s = &r->services[i]->svc;
        size_t k = 0;
        for (size_t j = 0; j < s->node_count; j++) {
            if (live(&s->nodes[j], now))
                continue;
            if (k == pos_cap) {
                pos_cap = pos_cap ? pos_cap * 2 : 16;
                pos = mc_realloc(pos, pos_cap * sizeof(*pos));
            }
            pos[k++] = j;
        }
        size_t before = r->count;
        if (k) {
            vent_remove_positions(r, i, pos, k, &ev);
            dropped += k;
        }
        if (r->count == before)
            i++;
    }
    mc_free(pos);
    dispatch(r, &ev);
    return dropped;
}

uint64_t mc_registry_generation(const struct mc_registry *r)
{
    return r->generation;
}

int mc_registry_read_valid(struct mc_registry *r, uint64_t generation, uint64_t valid_until_ms)
{
    return generation == r->generation && (valid_until_ms == 0 || now_ms(r) < valid_until_ms);
}

uint64_t mc_registry_next_expiry_ms(struct mc_registry *r)
{
    uint64_t next = 0;
    for (size_t i = 0; i < r->count; i++) {
        const struct mc_service *s = &r->services[i]->svc;
        for (size_t j = 0; j < s->node_count; j++) {
            uint64_t e = s->nodes[j].expires_at_ms;
            if (e && (next == 0 || e < next))
                next = e;
        }
    }
    return next;
}

/* ---- lifecycle and front end ---- */

static const struct mc_registry_ops *const backends[] = {
    &mc_registry_memory_ops,
    &mc_registry_etcd_ops,
};

const struct mc_registry_ops *mc_registry_backend_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof backends / sizeof backends[0]; i++)
        if (strcmp(backends[i]->name, name) == 0)
            return backends[i];
    return NULL;
}

struct mc_registry *mc_registry_new(const struct mc_registry_ops *ops,
                                    const struct mc_registry_config *cfg, char *err, size_t errlen)
{
    struct mc_registry *r = mc_calloc(1, sizeof(*r));
    r->ops = ops ? ops : &mc_registry_memory_ops;
    if (cfg)
        r->config = *cfg;
    r->clock = r->config.clock ? *r->config.clock : mc_clock_monotonic;
    r->config.clock = &r->clock;
    mc_backend_state_init(&r->state, "registry", r->ops->name, MC_BACKEND_CONNECTED, NULL);
    mc_node_index_init(&r->ids);
    mc_node_index_init(&r->owned_ids);
    if (r->ops->init && r->ops->init(r, &r->config, err, errlen) < 0) {
        mc_node_index_close(&r->ids);
        mc_node_index_close(&r->owned_ids);
        mc_free(r);
        return NULL;
    }
    r->config.address = NULL; /* the caller's string; backends copied what they keep */
    return r;
}

static void owned_entry_close(struct mc_registry_owned *o)
{
    mc_service_close(&o->service);
}

void mc_registry_backend_closed(struct mc_registry *r)
{
    mc_registry_closed_cb closed = r->closed;
    void *ctx = r->closed_ctx;
    for (size_t i = 0; i < r->count; i++) {
        mc_service_close(&r->services[i]->svc);
        mc_free(r->services[i]);
    }
    mc_free(r->services);
    mc_node_index_close(&r->ids);
    for (size_t i = 0; i < r->watch_count; i++)
        mc_free(r->watches[i].filter);
    mc_free(r->watches);
    for (size_t i = 0; i < r->owned_count; i++)
        owned_entry_close(&r->owned[i]);
    mc_free(r->owned);
    mc_node_index_close(&r->owned_ids);
    mc_free(r->scratch_services);
    mc_free(r->scratch_nodes);
    for (size_t i = 0; i < MC_REGISTRY_READ_CACHE; i++) {
        mc_free(r->read_cache[i].name);
        free(r->read_cache[i].text); /* json_dumps's */
    }
    mc_free(r);
    if (closed)
        closed(ctx);
}

void mc_registry_free(struct mc_registry *r, mc_registry_closed_cb closed, void *ctx)
{
    if (!r) {
        if (closed)
            closed(ctx);
        return;
    }
    r->closed = closed;
    r->closed_ctx = ctx;
    if (r->ops->close)
        r->ops->close(r); /* calls mc_registry_backend_closed, now or later */
    else
        mc_registry_backend_closed(r);
}

void mc_registry_start(struct mc_registry *r)
{
    if (r->ops->start)
        r->ops->start(r);
}

void *mc_registry_backend_data(const struct mc_registry *r)
{
    return r->backend_data;
}

void mc_registry_set_backend_data(struct mc_registry *r, void *data)
{
    r->backend_data = data;
}

const struct mc_registry_ops *mc_registry_backend_ops(const struct mc_registry *r)
{
    return r->ops;
}

const struct mc_registry_config *mc_registry_config(const struct mc_registry *r)
{
    return &r->config;
}

const struct mc_backend_state *mc_registry_backend_state(const struct mc_registry *r)
{
    return r->ops->state ? r->ops->state(r) : &r->state;
}

/* ---- the owned table ---- */

size_t mc_registry_owned_count(const struct mc_registry *r)
{
    return r->owned_count;
}

struct mc_registry_owned *mc_registry_owned_at(struct mc_registry *r, size_t i)
{
    return i < r->owned_count ? &r->owned[i] : NULL;
}

struct mc_registry_owned *mc_registry_owned_find(struct mc_registry *r, const char *name,
                                                 const char *id)
{
    const struct mc_node_slot *slot = mc_node_index_find(&r->owned_ids, name, id);
    return slot ? &r->owned[slot->pos] : NULL;
}

/* Records (or refreshes) one entry per node of svc: O(1) each through the index. */
static void owned_put(struct mc_registry *r, const struct mc_service *svc, uint64_t ttl_ms)
{
    uint64_t now = now_ms(r);
    for (size_t i = 0; i < svc->node_count; i++) {
        const struct mc_node *n = &svc->nodes[i];
        struct mc_node_slot *slot = mc_node_index_find(&r->owned_ids, svc->name, n->id);
        struct mc_registry_owned *o;
        if (slot) {
            o = &r->owned[slot->pos];
            owned_entry_close(o); /* the slot's borrowed strings are re-pointed below */
        } else {
            if (r->owned_count == r->owned_cap) {
                r->owned_cap = r->owned_cap ? r->owned_cap * 2 : 4;
                r->owned = mc_realloc(r->owned, r->owned_cap * sizeof(*r->owned));
            }
            o = &r->owned[r->owned_count++];
        }
        memset(o, 0, sizeof(*o));
        mc_service_init(&o->service);
        o->service.name = mc_strdup(svc->name);
        o->service.version = mc_strdup(ver(svc->version));
        o->service.metadata = mc_json_copy(svc->metadata);
        o->service.endpoints = mc_json_copy(svc->endpoints);
        mc_service_add_node(&o->service, n->id, n->address ? n->address : "", n->port);
        o->service.nodes[0].metadata = mc_json_copy(n->metadata);
        o->ttl_ms = ttl_ms;
        o->expires_at_ms = ttl_ms ? now + ttl_ms : 0;
        if (!slot)
            slot = mc_node_index_insert(&r->owned_ids, o->service.name, o->service.nodes[0].id);
        slot->name = o->service.name;
        slot->id = o->service.nodes[0].id;
        slot->pos = (size_t)(o - r->owned);
    }
}

/* Removes svc's nodes from the table; the last entry fills each hole. */
static void owned_remove(struct mc_registry *r, const struct mc_service *svc)
{
    for (size_t i = 0; i < svc->node_count; i++) {
        struct mc_node_slot *slot = mc_node_index_find(&r->owned_ids, svc->name, svc->nodes[i].id);
        if (!slot)
            continue;
        size_t at = slot->pos;
        struct mc_registry_owned *o = &r->owned[at];
        mc_node_index_remove(&r->owned_ids, o->service.name, o->service.nodes[0].id);
        owned_entry_close(o);
        size_t last = --r->owned_count;
        if (at != last) {
            r->owned[at] = r->owned[last];
            const struct mc_service *m = &r->owned[at].service;
            mc_node_index_find(&r->owned_ids, m->name, m->nodes[0].id)->pos = at;
        }
    }
}

/* 1 when s (NULL reads as "") holds a control character: the same rule mc_service_from_json
 * applies to bodies, applied to every writer (flags, backends), since these strings reach the
 * HTTP heads sent to nodes. */
static int bad_text(const char *s)
{
    return s && mc_service_has_control_char(s, strlen(s));
}

/* What both writes need: a name and at least one node, each with an id; no control character
 * in the name, version, ids and addresses. */
static int validate(const struct mc_service *svc, int check_ports)
{
    if (!svc || !svc->name || !svc->name[0] || svc->node_count == 0 || !svc->nodes)
        return MC_EINVAL;
    if (bad_text(svc->name) || bad_text(svc->version))
        return MC_EINVAL;
    for (size_t i = 0; i < svc->node_count; i++) {
        const struct mc_node *n = &svc->nodes[i];
        if (!n->id || !n->id[0] || bad_text(n->id) || bad_text(n->address))
            return MC_EINVAL;
        if (check_ports && (n->port < 0 || n->port > 65535))
            return MC_EINVAL;
    }
    return 0;
}

/* A write in flight: what to record in the owned table once the backend answers. The
 * service is a copy, as the caller's may be gone by then. */
struct write {
    struct mc_registry *r;
    struct mc_service svc;
    uint64_t ttl_ms;
    int add;
    mc_registry_done_cb done;
    void *ctx;
};

static void write_done(void *ctx, int err)
{
    struct write *w = ctx;
    if (err == 0) {
        if (w->add)
            owned_put(w->r, &w->svc, w->ttl_ms);
        else
            owned_remove(w->r, &w->svc);
    }
    mc_registry_done_cb done = w->done;
    void *dctx = w->ctx;
    mc_service_close(&w->svc);
    mc_free(w);
    if (done)
        done(dctx, err);
}

static void start_write(struct mc_registry *r, const struct mc_service *svc, uint64_t ttl_ms,
                        int add, mc_registry_done_cb done, void *ctx)
{
    struct write *w = mc_calloc(1, sizeof(*w));
    w->r = r;
    mc_service_copy(&w->svc, svc);
    w->ttl_ms = ttl_ms;
    w->add = add;
    w->done = done;
    w->ctx = ctx;
    if (add)
        r->ops->register_service(r, &w->svc, ttl_ms, write_done, w);
    else
        r->ops->deregister_service(r, &w->svc, write_done, w);
}

void mc_registry_register(struct mc_registry *r, const struct mc_service *svc, uint64_t ttl_ms,
                          unsigned flags, mc_registry_done_cb done, void *ctx)
{
    int rc = validate(svc, 1);
    if (rc < 0) {
        if (done)
            done(ctx, rc);
        return;
    }
    if (flags & MC_REGISTRY_PERSIST)
        owned_put(r, svc, ttl_ms);
    start_write(r, svc, ttl_ms, 1, done, ctx);
}

void mc_registry_deregister(struct mc_registry *r, const struct mc_service *svc,
                            mc_registry_done_cb done, void *ctx)
{
    int rc = validate(svc, 0);
    if (rc < 0) {
        if (done)
            done(ctx, rc);
        return;
    }
    start_write(r, svc, 0, 0, done, ctx);
}

/* ---- reads: from the view, hiding nodes whose expiry has come ---- */

static void json_append(json_t *arr, json_t *item)
{
    if (json_array_append_new(arr, item) < 0) {
        fprintf(stderr, "micro: out of memory building JSON\n");
        abort();
    }
}

static json_t *json_array_or_die(void)
{
    json_t *a = json_array();
    if (!a) {
        fprintf(stderr, "micro: out of memory building JSON\n");
        abort();
    }
    return a;
}

json_t *mc_registry_list_json(struct mc_registry *r)
{
    uint64_t now = now_ms(r);
    json_t *arr = json_array_or_die();
    const char *last = NULL;
    for (size_t i = 0; i < r->count; i++) {
        const struct mc_service *s = &r->services[i]->svc;
        if (live_count(s, now) == 0 || (last && strcmp(last, s->name) == 0))
            continue;
        last = s->name;
        /* go-micro's ListServices returns names only; the other fields read as absent. */
        struct mc_service name_only;
        mc_service_init(&name_only);
        name_only.name = s->name;
        json_append(arr, mc_service_to_json(&name_only, 0));
    }
    return arr;
}

const char *mc_registry_get_text(struct mc_registry *r, const char *name, size_t *len)
{
    for (size_t i = 0; i < MC_REGISTRY_READ_CACHE; i++) {
        struct read_cache_entry *c = &r->read_cache[i];
        if (c->name && mc_registry_read_valid(r, c->generation, c->valid_until_ms) &&
            strcmp(c->name, name) == 0) {
            *len = c->len;
            return c->text;
        }
    }
    json_t *v = mc_registry_get_json(r, name);
    if (!v)
        return NULL;
    struct read_cache_entry *c = &r->read_cache[r->read_cache_next];
    r->read_cache_next = (r->read_cache_next + 1) % MC_REGISTRY_READ_CACHE;
    mc_free(c->name);
    free(c->text);
    c->name = mc_strdup(name);
    c->text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    if (!c->text) {
        fprintf(stderr, "micro: out of memory serialising the registry\n");
        abort();
    }
    c->len = strlen(c->text);
    c->generation = r->generation;
    c->valid_until_ms = mc_registry_next_expiry_ms(r);
    *len = c->len;
    return c->text;
}

json_t *mc_registry_get_json(struct mc_registry *r, const char *name)
{
    if (!name)
        return NULL;
    uint64_t now = now_ms(r);
    size_t begin, end;
    name_range(r, name, &begin, &end);
    json_t *arr = NULL;
    for (size_t i = begin; i < end; i++) {
        const struct mc_service *s = &r->services[i]->svc;
        size_t lc = live_count(s, now);
        if (lc == 0)
            continue;
        /* A shallow copy holding the live nodes only: it borrows everything from the view. */
        struct mc_service shown = *s;
        shown.nodes = mc_malloc(lc * sizeof(*shown.nodes));
        shown.node_count = 0;
        for (size_t j = 0; j < s->node_count; j++)
            if (live(&s->nodes[j], now))
                shown.nodes[shown.node_count++] = s->nodes[j];
        if (!arr)
            arr = json_array_or_die();
        json_append(arr, mc_service_to_json(&shown, 1));
        mc_free(shown.nodes);
    }
    return arr;
}

size_t mc_registry_lookup(struct mc_registry *r, const char *name,
                          const struct mc_service **versions, size_t max)
{
    if (!name || max == 0)
        return 0;
    uint64_t now = now_ms(r);
    size_t begin, end;
    name_range(r, name, &begin, &end);

    /* Usually no node is past its expiry and the view itself is returned. Otherwise the
     * affected versions are shown through shallow filtered copies in the scratch arrays, sized
     * first so that pointers into them stay put while they are filled. */
    size_t need_svc = 0, need_nodes = 0, found = 0;
    for (size_t i = begin; i < end && found < max; i++) {
        size_t lc = live_count(&r->services[i]->svc, now);
        if (lc == 0)
            continue;
        found++;
        if (lc < r->services[i]->svc.node_count) {
            need_svc++;
            need_nodes += lc;
        }
    }
    if (need_svc > r->scratch_services_cap) {
        r->scratch_services_cap = need_svc;
        r->scratch_services =
            mc_realloc(r->scratch_services, need_svc * sizeof(*r->scratch_services));
    }
    if (need_nodes > r->scratch_nodes_cap) {
        r->scratch_nodes_cap = need_nodes;
        r->scratch_nodes = mc_realloc(r->scratch_nodes, need_nodes * sizeof(*r->scratch_nodes));
    }

    size_t out = 0, sv = 0, nd = 0;
    for (size_t i = begin; i < end && out < max; i++) {
        const struct mc_service *s = &r->services[i]->svc;
        size_t lc = live_count(s, now);
        if (lc == 0)
            continue;
        if (lc == s->node_count) {
            versions[out++] = s;
            continue;
        }
        struct mc_service *c = &r->scratch_services[sv++];
        *c = *s;
        c->nodes = &r->scratch_nodes[nd];
        c->node_count = 0;
        for (size_t j = 0; j < s->node_count; j++)
            if (live(&s->nodes[j], now))
                r->scratch_nodes[nd + c->node_count++] = s->nodes[j];
        nd += c->node_count;
        versions[out++] = c;
    }
    return out;
}
