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
#include "util/backend_state.h"
#include "util/clock.h"

struct uv_loop_s;
struct mc_http_client;

struct mc_registry;

enum mc_registry_action { MC_REGISTRY_CREATE, MC_REGISTRY_UPDATE, MC_REGISTRY_DELETE };

/* "create", "update" or "delete" (the watch stream's "action" values); "unknown" otherwise. */
const char *mc_registry_action_name(enum mc_registry_action action);

/* A change to the view. service holds the (name, version, metadata, endpoints) of the service
 * and only the nodes the change concerns; it is valid during the call only. */
typedef void (*mc_registry_watch_cb)(void *ctx, enum mc_registry_action action,
                                     const struct mc_service *service);

/* How a write ends: err is 0 once the backend acknowledged it, else a negative code
 * (MC_EINVAL for a bad service, MC_EUNAVAIL while a remote store cannot be reached). */
typedef void (*mc_registry_done_cb)(void *ctx, int err);
/* The registry has finished closing (see mc_registry_free). */
typedef void (*mc_registry_closed_cb)(void *ctx);

/* What a backend is built from. Fields a backend does not use may be 0/NULL (memory uses
 * none). The strings are copied by the backends that keep them. */
struct mc_registry_config {
    struct uv_loop_s *loop;        /* the sidecar's loop (remote backends' timers) */
    struct mc_http_client *client; /* remote backends talk through it; must outlive the close */
    const char *address;           /* --registry_address: "host:port[,host:port...]" */
    uint64_t lease_ttl_ms;         /* --register_ttl: the sidecar's own lease */
    uint64_t renew_interval_ms;    /* --register_interval: keep-alive period (at most TTL/3) */
    uint64_t close_timeout_ms;     /* bound of the close (revoking leases); 0: 5 s */
    const struct mc_clock *clock;  /* NULL = the monotonic clock (copied) */
};

/* A node this sidecar wrote and keeps registered: what a remote backend re-puts after the
 * store lost it (outage, wiped data). One node per entry. */
struct mc_registry_owned {
    struct mc_service service; /* exactly one node */
    uint64_t ttl_ms;           /* 0: on the sidecar's lease; else a lease of its own */
    uint64_t expires_at_ms;    /* ttl_ms > 0: when that lease runs out unless registered again */
};

/* A backend (STYLE habit 9): one static table per file, picked by name from
 * mc_registry_backend_find. register/deregister receive a service already validated and must
 * call done exactly once (at once or later); the memory backend applies it to the view at once
 * with mc_registry_view_upsert / mc_registry_view_remove, a remote one writes it remotely and
 * updates the view from its watch. close releases the private state and calls
 * mc_registry_backend_closed(r) when done (maybe before returning). Any member but name,
 * register_service and deregister_service may be NULL. */
struct mc_registry_ops {
    const char *name;
    /* Checks cfg and sets up private state (mc_registry_set_backend_data); 0 or MC_EINVAL
     * with a one-line reason in err. Nothing is dialled here. */
    int (*init)(struct mc_registry *r, const struct mc_registry_config *cfg, char *err,
                size_t errlen);
    void (*start)(struct mc_registry *r);
    void (*register_service)(struct mc_registry *r, const struct mc_service *svc, uint64_t ttl_ms,
                             mc_registry_done_cb done, void *ctx);
    void (*deregister_service)(struct mc_registry *r, const struct mc_service *svc,
                               mc_registry_done_cb done, void *ctx);
    void (*close)(struct mc_registry *r);
    /* The backend's reachability (NULL op: always connected). */
    const struct mc_backend_state *(*state)(const struct mc_registry *r);
};

/* The embedded backend (--registry=memory) and the etcd one (--registry=etcd). */
extern const struct mc_registry_ops mc_registry_memory_ops;
extern const struct mc_registry_ops mc_registry_etcd_ops;

/* The backend table: the ops named name, NULL when there is none. */
const struct mc_registry_ops *mc_registry_backend_find(const char *name);

/* Creates an empty registry over ops (NULL = memory) configured by cfg (NULL = all defaults;
 * the struct is copied). Returns NULL after writing a one-line reason into err when the
 * backend refuses its settings (e.g. a bad --registry_address). */
struct mc_registry *mc_registry_new(const struct mc_registry_ops *ops,
                                    const struct mc_registry_config *cfg, char *err, size_t errlen);
/* Closes the registry asynchronously: the backend finishes or cancels its calls (etcd revokes
 * this sidecar's leases, deleting its keys, bounded by cfg->close_timeout_ms) and closes its
 * handles; then the view, the watches and the registry are freed and closed(ctx) runs (closed
 * may be NULL). With the memory backend everything happens before this returns. Not from
 * inside a watch callback. NULL is fine (closed still runs). No write may start afterwards. */
void mc_registry_free(struct mc_registry *r, mc_registry_closed_cb closed, void *ctx);
/* For backends: their close has finished; frees the registry (see mc_registry_free). */
void mc_registry_backend_closed(struct mc_registry *r);
/* Calls the backend's start (connects, loads, watches; failures are retried by the backend,
 * never a start-up failure). */
void mc_registry_start(struct mc_registry *r);
/* The backend's private state: set by the backend (typically in init), freed by its close. */
void *mc_registry_backend_data(const struct mc_registry *r);
void mc_registry_set_backend_data(struct mc_registry *r, void *data);
const struct mc_registry_ops *mc_registry_backend_ops(const struct mc_registry *r);
/* The registry's settings as given to mc_registry_new (address NULL after init). */
const struct mc_registry_config *mc_registry_config(const struct mc_registry *r);
/* The backend's reachability, for logs and /health?verbose=1 (memory: always connected, since
 * creation). Owned by the registry; valid until the next loop turn. */
const struct mc_backend_state *mc_registry_backend_state(const struct mc_registry *r);

/* The owned-node table (unordered): entries [0, count) valid until the next write. */
size_t mc_registry_owned_count(const struct mc_registry *r);
struct mc_registry_owned *mc_registry_owned_at(struct mc_registry *r, size_t i);
/* The entry for (name, node id), NULL when it is not owned. */
struct mc_registry_owned *mc_registry_owned_find(struct mc_registry *r, const char *name,
                                                 const char *id);

/* Flags of mc_registry_register. */
enum {
    /* Keep the nodes in the owned table even when this write fails, so that the backend
     * registers them as soon as the store can be reached (the sidecar's own nodes: a store
     * down at start-up is not a start-up failure). Without it a node is owned once a write
     * of it succeeded. */
    MC_REGISTRY_PERSIST = 1 << 0,
};

/* Registers svc's nodes (upsert by id into (name, version)) through the backend. ttl_ms 0 = no
 * expiry (remote stores: on the sidecar's lease, gone within a TTL of the sidecar's death), else
 * each node expires ttl_ms after now unless registered again (renewal). A node id
 * registered under another version of the same name moves to this one. The service's metadata
 * and endpoints become svc's (the latest registration wins, as go-micro's memory registry does).
 * svc is only read (it may even point into the view) and may be freed once this returns.
 * done(ctx, err) runs exactly once, maybe before this returns (memory, or a refused write):
 * err 0; MC_EINVAL when svc has no name, no nodes, a node without id, a port outside
 * 0..65535, or a control character in its name, version, a node id or address
 * (mc_service_has_control_char); or the backend's error (MC_EUNAVAIL: the store is out of
 * reach). done may be NULL. On success (or at once with MC_REGISTRY_PERSIST) each node enters
 * the owned table. The same id twice in svc is one node (the last values win). Costs O(nodes
 * of svc) plus one pass over each version a node moves out of, through the view's node index.
 * Emits watch events (see mc_registry_view_upsert) before done when the backend applies at
 * once. */
void mc_registry_register(struct mc_registry *r, const struct mc_service *svc, uint64_t ttl_ms,
                          unsigned flags, mc_registry_done_cb done, void *ctx);
/* Removes the nodes of svc->name whose ids svc->nodes name, from whichever version holds them
 * (node ids are unique within a service name; svc->version is not consulted, so a body without
 * a version still deregisters). Unknown ids are fine (err 0: idempotent). A (name, version)
 * left with no nodes disappears. done(ctx, err) runs exactly once as for register: MC_EINVAL
 * when svc has no name or no nodes (or a control character, as for register), or the
 * backend's error. The nodes leave the owned table once the backend acknowledged (a failed
 * deregistration keeps them: the caller sees the error and may retry). O(nodes of svc) plus
 * one pass over each version touched. */
void mc_registry_deregister(struct mc_registry *r, const struct mc_service *svc,
                            mc_registry_done_cb done, void *ctx);

/* GET /registry: a new JSON array (caller decrefs) with one entry per service name that has a
 * live node, sorted by name (byte order), in go-micro's ListServices shape: the name only,
 * {"name":"foo","version":"","metadata":null,"endpoints":null,"nodes":null}. */
json_t *mc_registry_list_json(struct mc_registry *r);
/* GET /registry?service=NAME: a new JSON array with one element per version of name that has a
 * live node (sorted by version, byte order), nodes included; NULL when there is none (-> 404). */
/* The same as mc_registry_get_json, serialised compactly (what GET /registry?service=NAME
 * answers): NULL when NAME has no live node, else text[0..*len) owned by the registry and
 * valid until the next call or change of the registry. Served from a small cache of the last
 * MC_REGISTRY_READ_CACHE names, checked against every change of the view and the next node
 * expiry, so a repeated read costs a lookup, not a serialisation. */
#define MC_REGISTRY_READ_CACHE 8
const char *mc_registry_get_text(struct mc_registry *r, const char *name, size_t *len);
json_t *mc_registry_get_json(struct mc_registry *r, const char *name);
/* For load balancing, without allocating in the steady state: stores in versions[] up to max
 * pointers to the versions of name that have live nodes (sorted by version) and returns how
 * many it stored. The services hold live nodes only. The pointers (into the view, or into a
 * scratch copy when some nodes expired and mc_registry_expire has not run yet) are valid until
 * the next mutation of the registry or the next mc_registry_lookup call. */
size_t mc_registry_lookup(struct mc_registry *r, const char *name,
                          const struct mc_service **versions, size_t max);
/* A number that changes with every change of the view (a registration, a deregistration, an
 * expiry swept), for caches of what was read from it. */
uint64_t mc_registry_generation(const struct mc_registry *r);
/* Whether a read made at generation is still the view's content: the view has not changed
 * since, and no node read has reached its expiry (reads hide expired nodes before they are
 * swept). valid_until_ms is the earliest expires_at_ms among the nodes read, 0 when none
 * expires. */
int mc_registry_read_valid(struct mc_registry *r, uint64_t generation, uint64_t valid_until_ms);

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
