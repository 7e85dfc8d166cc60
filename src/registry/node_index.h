/* An index of nodes by (service name, node id): an open-addressing hash table (linear probing,
 * backward-shift deletion, at most half full) keyed with a random SipHash key per table, so a
 * client choosing node ids cannot make them collide on purpose. It is what keeps registering,
 * moving and deleting N nodes O(N) instead of a scan per node. */
#ifndef MC_REGISTRY_NODE_INDEX_H
#define MC_REGISTRY_NODE_INDEX_H

#include <stddef.h>
#include <stdint.h>

/* One entry. The key strings are borrowed: whoever inserts them keeps them alive (and
 * unchanged) until the entry is removed, or re-points name/id at an equal string that lives
 * longer. owner and pos are the caller's: where the node is (its service, its position). */
struct mc_node_slot {
    const char *name; /* NULL reads as "" */
    const char *id;   /* NULL: the slot is empty */
    uint64_t hash;
    void *owner;
    size_t pos;
};

/* Embedded by its user: _init / _close. */
struct mc_node_index {
    struct mc_node_slot *slots;
    size_t cap; /* 0 or a power of two */
    size_t count;
    uint64_t k0, k1; /* the SipHash key */
};

/* An empty index with a fresh random key; allocates nothing until the first insert. */
void mc_node_index_init(struct mc_node_index *ix);
/* Frees the table (never the borrowed keys); the index is empty and usable again. */
void mc_node_index_close(struct mc_node_index *ix);
/* The entry for (name, id), or NULL. Valid until the next insert or remove; the caller may
 * change owner, pos and (to an equal string) name and id through it. */
struct mc_node_slot *mc_node_index_find(const struct mc_node_index *ix, const char *name,
                                        const char *id);
/* Adds (name, id), which must not be present (id not NULL), and returns its entry for the
 * caller to fill owner and pos (valid until the next insert or remove). */
struct mc_node_slot *mc_node_index_insert(struct mc_node_index *ix, const char *name,
                                          const char *id);
/* Removes (name, id); returns 1 when it was present, else 0. */
int mc_node_index_remove(struct mc_node_index *ix, const char *name, const char *id);

#endif
