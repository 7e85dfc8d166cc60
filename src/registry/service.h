/* The registry's data model (a service: name, version, metadata, endpoints, nodes) and its
 * JSON mapping, as go-micro's registry.Service travels over the sidecar's /registry API. */
#ifndef MC_REGISTRY_SERVICE_H
#define MC_REGISTRY_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* One instance of a service. Every pointer is owned by the node's service. */
struct mc_node {
    char *id;
    char *address;          /* "" when absent */
    int port;               /* 0..65535 */
    json_t *metadata;       /* object of strings, or NULL; owned reference */
    uint64_t expires_at_ms; /* 0 = never; set by the registry from a registration's TTL */
};

/* A service at one version and the nodes registered under it. Everything is owned. */
struct mc_service {
    char *name;
    char *version;     /* "" when absent; code that accepts a service also reads NULL as "" */
    json_t *metadata;  /* object of strings, or NULL */
    json_t *endpoints; /* any JSON or NULL, passed through untouched */
    struct mc_node *nodes;
    size_t node_count;
};

/* mc_service_from_json flag: the body must name at least one node (register, deregister). */
#define MC_SERVICE_REQUIRE_NODES 0x1u

/* A deep copy of j (NULL for NULL) that the caller decrefs; out of memory aborts, as mc_malloc
 * does (json_deep_copy returns NULL only then). */
json_t *mc_json_copy(const json_t *j);

/* Embeds an empty service (every pointer NULL, no nodes); allocates nothing. */
void mc_service_init(struct mc_service *s);
/* Frees everything s owns and leaves it as mc_service_init() does; safe on an empty or
 * half-built service and safe to call twice. */
void mc_service_close(struct mc_service *s);
/* Makes dst a deep copy of src (strings duplicated, JSON deep-copied, expiries kept). dst is
 * overwritten without being closed first; the caller mc_service_close()s it. dst->version is
 * never NULL afterwards. */
void mc_service_copy(struct mc_service *dst, const struct mc_service *src);
/* Appends a node with copies of id and address (NULL address = "") and no metadata or expiry;
 * returns it (valid until the next node is added) so the caller can set metadata. */
struct mc_node *mc_service_add_node(struct mc_service *s, const char *id, const char *address,
                                    int port);

/* A node id given twice in one write is one node (upsert by id): merges every later node with
 * an id already seen into the first one's position, with the later one's values (the last one
 * wins). Frees what the merged-away nodes owned; the first ones keep their id strings. O(nodes)
 * through a node index, never a scan per node. */
void mc_service_merge_duplicate_nodes(struct mc_service *s);

/* 1 when the n bytes at s hold a control character (a byte below 0x20, or 0x7f, NUL included),
 * else 0. Names, versions, node ids and addresses end up in HTTP heads sent to nodes
 * (X-Micro-Service, Host, ...): the registry refuses such values so they can never split a
 * head. */
int mc_service_has_control_char(const char *s, size_t n);

/* Maps a request body (go-micro's registry.Service JSON) to out. Keys match case-insensitively
 * at the service and node levels (Name/name/NAME; when a key appears twice the last wins),
 * unknown keys are ignored, JSON null counts as absent. Name, version, node id and node address
 * must hold no control character (mc_service_has_control_char; the reason names the field, as
 * "service name contains a control character"). Accepted:
 *   name      non-empty string (required)
 *   version   string
 *   metadata  object whose values are all strings (go-micro's map[string]string): any other
 *             value is rejected rather than stringified, so a client learns its mistake instead
 *             of reading back something it did not send
 *   endpoints any JSON, kept as is
 *   nodes     array of objects: id (non-empty string, required), address (string, may be
 *             absent), port (integer 0..65535, or a string of 1..5 decimal digits in that
 *             range such as "9091"), metadata (as above). A node id given twice keeps the
 *             last one's values at the first one's position
 *             (mc_service_merge_duplicate_nodes).
 * flags: MC_SERVICE_REQUIRE_NODES or 0. out is initialised here (not closed first). Returns 0
 * and fills out (the caller mc_service_close()s it), or MC_EINVAL with out left empty and a
 * one-line reason in err (NUL-terminated, truncated to errlen; err may be NULL) meant to be
 * used verbatim as a 400 error's detail. Does not keep references to json. */
int mc_service_from_json(const json_t *json, unsigned flags, struct mc_service *out, char *err,
                         size_t errlen);

/* Returns a new JSON reference (the caller json_decref()s it) holding
 * {"name","version","metadata","endpoints","nodes"} in that key order, absent maps and lists as
 * null, nodes as [{"id","address","port","metadata"}]. With include_nodes == 0, "nodes" is null
 * (the GET /registry list form). Metadata and endpoints are deep copies: changing the result
 * never changes s. */
json_t *mc_service_to_json(const struct mc_service *s, int include_nodes);

#endif
