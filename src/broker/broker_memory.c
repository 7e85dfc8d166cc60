/* The embedded broker backend: topics in a chained hash table, synchronous fan-out inside
 * publish. Delivery is re-entrant: while it runs, slots are only nulled (compaction and the
 * freeing of empty groups and topics wait until it ends), and a publish made by a callback is
 * queued and delivered after the current message, so everyone sees publish order. */
#include "broker/broker.h"

#include <string.h>

#include "util/alloc.h"
#include "util/error.h"

/* A subscription as one slot of a topic's plain list or of a group's member list. seq orders
 * subscriptions by creation so a publish skips those made while it runs. */
struct mb_slot {
    struct mc_broker_subscription *sub; /* NULL once unsubscribed, until compaction */
    uint64_t seq;
};

struct mb_list {
    struct mb_slot *v;
    size_t len; /* slots in use, dead ones included */
    size_t cap;
    size_t live;
};

struct mb_group {
    char *name;
    struct mb_list members;
    size_t next; /* round-robin cursor: the slot to try first */
};

struct mb_topic {
    struct mb_topic *next; /* hash chain */
    uint64_t hash;
    char *name;
    struct mb_list plain;
    struct mb_group **groups; /* pointers, so a group outlives a realloc during delivery */
    size_t ngroups;
    size_t groups_cap;
    int dirty;                   /* on the sweep list */
    struct mb_topic *dirty_next; /* sweep list link */
};

/* What the backend keeps per subscription (sub->backend_data): where its slot is. */
struct mb_entry {
    struct mb_topic *topic;
    struct mb_group *group; /* NULL for plain */
    size_t index;           /* slot index in the list; kept current by compaction */
};

/* A message published from inside a callback, waiting for the running delivery to end. */
struct mb_pending {
    struct mc_broker_message *msg; /* one reference held */
    uint64_t snapshot;             /* the last seq that existed when it was published */
};

struct mb_state {
    struct mb_topic **buckets; /* power-of-two count */
    size_t nbuckets;
    size_t ntopics;
    uint64_t seq;           /* last slot seq handed out */
    int delivering;         /* a publish is running callbacks */
    struct mb_topic *dirty; /* topics with dead slots, swept when delivery ends */
    struct mb_pending *queue;
    size_t qhead, qlen, qcap;
};

#define MB_MIN_BUCKETS 16

static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static struct mb_topic *topic_find(struct mb_state *st, const char *name, uint64_t h)
{
    struct mb_topic *t = st->buckets[h & (st->nbuckets - 1)];
    for (; t; t = t->next)
        if (t->hash == h && strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

static void table_grow(struct mb_state *st)
{
    size_t n = st->nbuckets * 2;
    struct mb_topic **nb = mc_calloc(n, sizeof(*nb));
    for (size_t i = 0; i < st->nbuckets; i++) {
        struct mb_topic *t = st->buckets[i], *next;
        for (; t; t = next) {
            next = t->next;
            t->next = nb[t->hash & (n - 1)];
            nb[t->hash & (n - 1)] = t;
        }
    }
    mc_free(st->buckets);
    st->buckets = nb;
    st->nbuckets = n;
}

static struct mb_topic *topic_get(struct mb_state *st, const char *name)
{
    uint64_t h = hash_str(name);
    struct mb_topic *t = topic_find(st, name, h);
    if (t)
        return t;
    if (st->ntopics >= st->nbuckets)
        table_grow(st);
    t = mc_calloc(1, sizeof(*t));
    t->hash = h;
    t->name = mc_strdup(name);
    size_t k = h & (st->nbuckets - 1);
    t->next = st->buckets[k];
    st->buckets[k] = t;
    st->ntopics++;
    return t;
}

static void topic_unlink_free(struct mb_state *st, struct mb_topic *t)
{
    struct mb_topic **pp = &st->buckets[t->hash & (st->nbuckets - 1)];
    while (*pp != t)
        pp = &(*pp)->next;
    *pp = t->next;
    st->ntopics--;
    for (size_t i = 0; i < t->ngroups; i++) {
        mc_free(t->groups[i]->members.v);
        mc_free(t->groups[i]->name);
        mc_free(t->groups[i]);
    }
    mc_free(t->groups);
    mc_free(t->plain.v);
    mc_free(t->name);
    mc_free(t);
}

static size_t list_append(struct mb_list *l, struct mc_broker_subscription *sub, uint64_t seq)
{
    if (l->len == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4;
        l->v = mc_realloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->len] = (struct mb_slot){.sub = sub, .seq = seq};
    l->live++;
    return l->len++;
}

/* Drops dead slots, keeping order and each entry's index current. *cursor, when given, is
 * moved so it still points at the same live slot (or the one after it). */
static void list_compact(struct mb_list *l, size_t *cursor)
{
    size_t w = 0, new_cursor = 0;
    for (size_t r = 0; r < l->len; r++) {
        if (cursor && r == *cursor)
            new_cursor = w;
        if (!l->v[r].sub)
            continue;
        l->v[w] = l->v[r];
        ((struct mb_entry *)l->v[w].sub->backend_data)->index = w;
        w++;
    }
    if (cursor)
        *cursor = *cursor >= l->len ? w : new_cursor;
    l->len = w;
}

/* Worth a pass: the dead slots are at least half, which keeps unsubscribe amortised O(1). */
static int list_needs_compact(const struct mb_list *l)
{
    return l->len - l->live > 0 && (l->len - l->live) * 2 >= l->len;
}

static void topic_sweep(struct mb_state *st, struct mb_topic *t)
{
    if (list_needs_compact(&t->plain))
        list_compact(&t->plain, NULL);
    size_t w = 0;
    for (size_t i = 0; i < t->ngroups; i++) {
        struct mb_group *g = t->groups[i];
        if (g->members.live == 0) {
            mc_free(g->members.v);
            mc_free(g->name);
            mc_free(g);
            continue;
        }
        if (list_needs_compact(&g->members))
            list_compact(&g->members, &g->next);
        t->groups[w++] = g;
    }
    t->ngroups = w;
    if (t->plain.live == 0 && t->ngroups == 0)
        topic_unlink_free(st, t);
}

/* Runs the deferred work once no delivery is iterating any list. */
static void sweep_dirty(struct mb_state *st)
{
    while (st->dirty) {
        struct mb_topic *t = st->dirty;
        st->dirty = t->dirty_next;
        t->dirty = 0;
        t->dirty_next = NULL;
        topic_sweep(st, t);
    }
}

static int mb_start(struct mc_broker *b)
{
    struct mb_state *st = mc_calloc(1, sizeof(*st));
    st->nbuckets = MB_MIN_BUCKETS;
    st->buckets = mc_calloc(st->nbuckets, sizeof(*st->buckets));
    mc_broker_set_backend(b, st);
    return 0;
}

/* Delivers msg to the group's next live member that existed when the publish began. */
static void deliver_group(struct mc_broker *b, struct mb_group *g, uint64_t snapshot,
                          struct mc_broker_message *msg)
{
    size_t n = g->members.len;
    for (size_t k = 0; k < n; k++) {
        size_t i = (g->next + k) % n;
        struct mb_slot s = g->members.v[i];
        if (!s.sub || s.seq > snapshot)
            continue;
        g->next = i + 1 == n ? 0 : i + 1;
        mc_broker_deliver(b, s.sub, msg);
        return;
    }
}

/* Hands msg to every plain subscriber of its topic and to one member of each group, as the
 * subscriptions stood at snapshot. Lists may grow (realloc) and slots may be nulled by the
 * callbacks, but nothing moves or is freed while delivering, so indexes and the topic and
 * group pointers stay valid; the loops re-read the slots after every callback. */
static void route(struct mc_broker *b, struct mb_state *st, struct mc_broker_message *msg,
                  uint64_t snapshot)
{
    const char *name = mc_broker_message_topic(msg);
    struct mb_topic *t = topic_find(st, name, hash_str(name));
    if (!t)
        return;
    for (size_t i = 0; i < t->plain.len; i++) {
        struct mb_slot s = t->plain.v[i];
        if (s.sub && s.seq <= snapshot)
            mc_broker_deliver(b, s.sub, msg);
    }
    for (size_t i = 0; i < t->ngroups; i++)
        deliver_group(b, t->groups[i], snapshot, msg);
}

static int mb_publish(struct mc_broker *b, struct mc_broker_message *msg)
{
    struct mb_state *st = mc_broker_backend(b);
    if (st->delivering) {
        /* Delivering now would put this message ahead of the current one for the
         * subscribers not yet served; queue it for the outermost publish instead. */
        if (st->qlen == st->qcap) {
            st->qcap = st->qcap ? st->qcap * 2 : 8;
            st->queue = mc_realloc(st->queue, st->qcap * sizeof(*st->queue));
        }
        st->queue[st->qlen++] =
            (struct mb_pending){.msg = mc_broker_message_ref(msg), .snapshot = st->seq};
        return 0;
    }
    st->delivering = 1;
    route(b, st, msg, st->seq);
    while (st->qhead < st->qlen) {
        struct mb_pending p = st->queue[st->qhead++];
        route(b, st, p.msg, p.snapshot);
        mc_broker_message_unref(p.msg);
    }
    st->qhead = st->qlen = 0;
    st->delivering = 0;
    sweep_dirty(st);
    return 0;
}

static int mb_subscribe(struct mc_broker *b, struct mc_broker_subscription *sub)
{
    struct mb_state *st = mc_broker_backend(b);
    struct mb_topic *t = topic_get(st, sub->topic);
    struct mb_entry *e = mc_calloc(1, sizeof(*e));
    e->topic = t;
    uint64_t seq = ++st->seq;
    if (!sub->queue) {
        e->index = list_append(&t->plain, sub, seq);
    } else {
        struct mb_group *g = NULL;
        for (size_t i = 0; i < t->ngroups && !g; i++)
            if (strcmp(t->groups[i]->name, sub->queue) == 0)
                g = t->groups[i];
        if (!g) {
            if (t->ngroups == t->groups_cap) {
                t->groups_cap = t->groups_cap ? t->groups_cap * 2 : 2;
                t->groups = mc_realloc(t->groups, t->groups_cap * sizeof(*t->groups));
            }
            g = mc_calloc(1, sizeof(*g));
            g->name = mc_strdup(sub->queue);
            t->groups[t->ngroups++] = g;
        }
        e->group = g;
        e->index = list_append(&g->members, sub, seq);
    }
    sub->backend_data = e;
    return 0;
}

static void mb_unsubscribe(struct mc_broker *b, struct mc_broker_subscription *sub)
{
    struct mb_state *st = mc_broker_backend(b);
    struct mb_entry *e = sub->backend_data;
    struct mb_list *l = e->group ? &e->group->members : &e->topic->plain;
    l->v[e->index].sub = NULL;
    l->live--;
    if (!e->topic->dirty) {
        e->topic->dirty = 1;
        e->topic->dirty_next = st->dirty;
        st->dirty = e->topic;
    }
    sub->backend_data = NULL;
    mc_free(e);
    if (!st->delivering)
        sweep_dirty(st);
}

static void mb_close(struct mc_broker *b)
{
    struct mb_state *st = mc_broker_backend(b);
    /* The core unsubscribed everyone, so every topic has been swept away already; free any
     * left in case a backend user closed mid-publish against the rules. */
    for (size_t i = 0; i < st->nbuckets; i++)
        while (st->buckets[i])
            topic_unlink_free(st, st->buckets[i]);
    for (size_t i = st->qhead; i < st->qlen; i++)
        mc_broker_message_unref(st->queue[i].msg);
    mc_free(st->queue);
    mc_free(st->buckets);
    mc_free(st);
    mc_broker_set_backend(b, NULL);
}

static size_t mb_topic_count(const struct mc_broker *b)
{
    const struct mb_state *st = mc_broker_backend(b);
    return st->ntopics;
}

const struct mc_broker_ops mc_broker_memory_ops = {
    .name = "memory",
    .start = mb_start,
    .publish = mb_publish,
    .subscribe = mb_subscribe,
    .unsubscribe = mb_unsubscribe,
    .close = mb_close,
    .topic_count = mb_topic_count,
};
