/* The service registry: a local view of services (by name and version) and their nodes, kept by
 * a backend behind an ops table (memory now, etcd later), plus change watches. Reads (list, get,
 * lookup) always come from the view, never from the backend. Single-threaded: call from the
 * loop thread only. */
#ifndef MC_REGISTRY_REGISTRY_H
#define MC_REGISTRY_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "registry/service.h"
#include "util/clock.h"

struct mc_registry;

enum mc_registry_action { MC_REGISTRY_CREATE, MC_REGISTRY_UPDATE, MC_REGISTRY_DELETE };

/* "create", "update" or "delete" (the watch stream's "action" values); "unknown" otherwise. */
const char *mc_registry_action_name(enum mc_registry_action action);

/* A change to the view. service holds the (name, version, metadata, endpoints) of the service
 * and only the nodes the change concerns; it is valid during the call only. */
typedef void (*mc_registry_watch_cb)(void *ctx, enum mc_registry_action action,
                                     const struct mc_service *service);

/* A backend. register/deregister receive a service already validated by mc_registry_register
 * / mc_registry_deregister; the memory backend applies it to the view at once with
 * mc_registry_view_upsert / mc_registry_view_remove, a remote one writes it remotely and updates
 * the view from its watch. Any member but name may be NULL (no-op, returns 0). */
struct mc_registry_ops {
    const char *name;
    int (*start)(struct mc_registry *r);
    int (*register_service)(struct mc_registry *r, const struct mc_service *svc, uint64_t ttl_ms);
    int (*deregister_service)(struct mc_registry *r, const struct mc_service *svc);
    void (*close)(struct mc_registry *r);
};

/* The embedded backend (--registry=memory). */
extern const struct mc_registry_ops mc_registry_memory_ops;

/* Creates an empty registry over ops (NULL = memory) reading time from clock (NULL = the
 * monotonic clock; the struct is copied, its ctx must outlive the registry). Never NULL. */
struct mc_registry *mc_registry_new(const struct mc_registry_ops *ops,
                                    const struct mc_clock *clock);
/* Calls the backend's close, then frees the view, the watches and the registry. Not from inside
 * a watch callback. NULL is fine. */
void mc_registry_free(struct mc_registry *r);
/* Calls the backend's start (connects, loads, watches). Returns its result, 0 for memory. */
int mc_registry_start(struct mc_registry *r);
/* The backend's private state: set by the backend (typically in start), freed by its close. */
void *mc_registry_backend_data(const struct mc_registry *r);
void mc_registry_set_backend_data(struct mc_registry *r, void *data);
const struct mc_registry_ops *mc_registry_backend_ops(const struct mc_registry *r);

/* Registers svc's nodes (upsert by id into (name, version)) through the backend. ttl_ms 0 = no
 * expiry, else each node expires ttl_ms after now unless registered again (renewal). A node id
 * registered under another version of the same name moves to this one. The service's metadata
 * and endpoints become svc's (the latest registration wins, as go-micro's memory registry does).
 * svc is only read (it may even point into the view). Returns 0; MC_EINVAL when svc has no name,
 * no nodes, a node without id, a port outside 0..65535, or a control character in its name,
 * version, a node id or address (mc_service_has_control_char); or the backend's error. The same
 * id twice in svc is one node (the last values win). Costs O(nodes of svc) plus one pass over
 * each version a node moves out of, through the view's node index. Emits watch
 * events (see mc_registry_view_upsert) before returning when the backend applies at once. */
int mc_registry_register(struct mc_registry *r, const struct mc_service *svc, uint64_t ttl_ms);
/* Removes the nodes of svc->name whose ids svc->nodes name, from whichever version holds them
 * (node ids are unique within a service name; svc->version is not consulted, so a body without
 * a version still deregisters). Unknown ids are fine (returns 0: idempotent). A (name, version)
 * left with no nodes disappears. Returns MC_EINVAL when svc has no name or no nodes (or a control
 * character, as for register). O(nodes of svc) plus one pass over each version touched. */
int mc_registry_deregister(struct mc_registry *r, const struct mc_service *svc);

/* GET /registry: a new JSON array (caller decrefs) with one entry per service name that has a
 * live node, sorted by name (byte order), in go-micro's ListServices shape: the name only,
 * {"name":"foo","version":"","metadata":null,"endpoints":null,"nodes":null}. */
json_t *mc_registry_list_json(struct mc_registry *r);
/* GET /registry?service=NAME: a new JSON array with one element per version of name that has a
 * live node (sorted by version, byte order), nodes included; NULL when there is none (-> 404). */
json_t *mc_registry_get_json(struct mc_registry *r, const char *name);
/* For load balancing, without allocating in the steady state: stores in versions[] up to max
 * pointers to the versions of name that have live nodes (sorted by version) and returns how
 * many it stored. The services hold live nodes only. The pointers (into the view, or into a
 * scratch copy when some nodes expired and mc_registry_expire has not run yet) are valid until
 * the next mutation of the registry or the next mc_registry_lookup call. */
size_t mc_registry_lookup(struct mc_registry *r, const char *name,
                          const struct mc_service **versions, size_t max);

/* Drops every node whose expiry time has come (expires_at_ms <= now), emitting one DELETE per
 * (name, version) with the removed nodes; returns how many nodes were dropped. Reads already
 * hide such nodes; this makes it final and tells the watchers. The daemon calls it from a timer
 * armed with mc_registry_next_expiry_ms. */
size_t mc_registry_expire(struct mc_registry *r);
/* The earliest expires_at_ms in the view (possibly already past), 0 when no node expires. */
uint64_t mc_registry_next_expiry_ms(struct mc_registry *r);

/* Calls cb(ctx, action, service) for every change to services named service_filter (a copy is
 * kept; NULL = every service). Returns a watch id > 0. Callbacks run synchronously after the
 * change is complete, so they may read, register, deregister, watch or unwatch. */
int mc_registry_watch(struct mc_registry *r, const char *service_filter, mc_registry_watch_cb cb,
                      void *ctx);
/* Stops watch id (unknown ids ignored); safe inside any callback, including its own: it receives
 * no further event once this returns. */
void mc_registry_unwatch(struct mc_registry *r, int id);

/* View mutators for backends (the memory backend is exactly these two). They do not validate:
 * callers pass what mc_registry_register / mc_registry_deregister accept.
 * mc_registry_view_upsert: upserts svc's nodes with expiry now + ttl_ms (0 = never) and emits,
 * in this order: DELETE for ids moved away from another version of the name, CREATE with the
 * nodes new to (name, version), UPDATE with the ones it already held. Returns 0.
 * mc_registry_view_remove: removes the nodes whose ids svc names from every version of
 * svc->name and emits one DELETE per (name, version) with the nodes removed. Returns 0. */
int mc_registry_view_upsert(struct mc_registry *r, const struct mc_service *svc, uint64_t ttl_ms);
int mc_registry_view_remove(struct mc_registry *r, const struct mc_service *svc);

#endif
