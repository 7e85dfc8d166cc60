/* The node index: (service name, node id) -> the caller's (owner, pos), hashed with SipHash-1-3
 * under a per-table random key. */
#include "registry/node_index.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "util/alloc.h"

/* ---- SipHash-1-3 over "name \0 id", fed a byte at a time (keys are short) ---- */

struct sip {
    uint64_t v0, v1, v2, v3;
    uint64_t m; /* the word being filled */
    size_t len; /* bytes fed so far */
};

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static void sip_round(struct sip *s)
{
    s->v0 += s->v1;
    s->v1 = rotl(s->v1, 13);
    s->v1 ^= s->v0;
    s->v0 = rotl(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = rotl(s->v3, 16);
    s->v3 ^= s->v2;
    s->v0 += s->v3;
    s->v3 = rotl(s->v3, 21);
    s->v3 ^= s->v0;
    s->v2 += s->v1;
    s->v1 = rotl(s->v1, 17);
    s->v1 ^= s->v2;
    s->v2 = rotl(s->v2, 32);
}

static void sip_feed(struct sip *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        s->m |= (uint64_t)(unsigned char)p[i] << (8 * (s->len % 8));
        if (++s->len % 8 == 0) {
            s->v3 ^= s->m;
            sip_round(s);
            s->v0 ^= s->m;
            s->m = 0;
        }
    }
}

static uint64_t key_hash(const struct mc_node_index *ix, const char *name, const char *id)
{
    struct sip s = {
        .v0 = ix->k0 ^ 0x736f6d6570736575ULL,
        .v1 = ix->k1 ^ 0x646f72616e646f6dULL,
        .v2 = ix->k0 ^ 0x6c7967656e657261ULL,
        .v3 = ix->k1 ^ 0x7465646279746573ULL,
    };
    /* Names hold no NUL, so "name \0 id" is a different stream for every (name, id). */
    if (name)
        sip_feed(&s, name, strlen(name));
    sip_feed(&s, "", 1);
    sip_feed(&s, id, strlen(id));
    uint64_t b = ((uint64_t)s.len << 56) | s.m;
    s.v3 ^= b;
    sip_round(&s);
    s.v0 ^= b;
    s.v2 ^= 0xff;
    for (int i = 0; i < 3; i++)
        sip_round(&s);
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

/* ---- the table ---- */

static int key_eq(const struct mc_node_slot *slot, uint64_t hash, const char *name, const char *id)
{
    return slot->hash == hash && strcmp(slot->id, id) == 0 &&
           strcmp(slot->name ? slot->name : "", name ? name : "") == 0;
}

void mc_node_index_init(struct mc_node_index *ix)
{
    memset(ix, 0, sizeof(*ix));
    uint64_t key[2];
    if (getrandom(key, sizeof key, GRND_NONBLOCK) != (ssize_t)sizeof key) {
        /* No entropy yet (early boot): still a key an outside client cannot read. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        key[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)ix;
        key[1] = (uint64_t)ts.tv_sec * 0xbf58476d1ce4e5b9ULL ^ (uint64_t)(uintptr_t)&ts;
    }
    ix->k0 = key[0];
    ix->k1 = key[1];
}

void mc_node_index_close(struct mc_node_index *ix)
{
    mc_free(ix->slots);
    ix->slots = NULL;
    ix->cap = 0;
    ix->count = 0;
}

struct mc_node_slot *mc_node_index_find(const struct mc_node_index *ix, const char *name,
                                        const char *id)
{
    if (ix->count == 0 || !id)
        return NULL;
    uint64_t h = key_hash(ix, name, id);
    size_t mask = ix->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct mc_node_slot *slot = &ix->slots[i];
        if (!slot->id)
            return NULL;
        if (key_eq(slot, h, name, id))
            return slot;
    }
}

/* Places a filled slot into slots (which has room), probing from its home. */
static struct mc_node_slot *place(struct mc_node_slot *slots, size_t cap,
                                  const struct mc_node_slot *s)
{
    size_t mask = cap - 1;
    size_t i = s->hash & mask;
    while (slots[i].id)
        i = (i + 1) & mask;
    slots[i] = *s;
    return &slots[i];
}

struct mc_node_slot *mc_node_index_insert(struct mc_node_index *ix, const char *name,
                                          const char *id)
{
    /* At most half full keeps probe runs short. */
    if ((ix->count + 1) * 2 > ix->cap) {
        size_t cap = ix->cap ? ix->cap * 2 : 16;
        struct mc_node_slot *slots = mc_calloc(cap, sizeof(*slots));
        for (size_t i = 0; i < ix->cap; i++)
            if (ix->slots[i].id)
                place(slots, cap, &ix->slots[i]);
        mc_free(ix->slots);
        ix->slots = slots;
        ix->cap = cap;
    }
    struct mc_node_slot s = {.name = name, .id = id, .hash = key_hash(ix, name, id)};
    ix->count++;
    return place(ix->slots, ix->cap, &s);
}

int mc_node_index_remove(struct mc_node_index *ix, const char *name, const char *id)
{
    struct mc_node_slot *slot = mc_node_index_find(ix, name, id);
    if (!slot)
        return 0;
    /* Backward-shift deletion: pull later members of the probe run into the hole when their
     * home is not between the hole and themselves, so no tombstones are needed. */
    size_t mask = ix->cap - 1;
    size_t hole = (size_t)(slot - ix->slots);
    for (size_t j = (hole + 1) & mask; ix->slots[j].id; j = (j + 1) & mask) {
        size_t home = ix->slots[j].hash & mask;
        int stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (stays)
            continue;
        ix->slots[hole] = ix->slots[j];
        hole = j;
    }
    memset(&ix->slots[hole], 0, sizeof(ix->slots[hole]));
    ix->count--;
    return 1;
}
