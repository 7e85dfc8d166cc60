/* The embedded registry backend (--registry=memory): the local view is the registry, so writes
 * apply to it at once (and complete through their callback before returning) and TTLs are
 * enforced by mc_registry_expire. */
#include "registry/registry.h"

static void memory_register(struct mc_registry *r, const struct mc_service *svc, uint64_t ttl_ms,
                            mc_registry_done_cb done, void *ctx)
{
    done(ctx, mc_registry_view_upsert(r, svc, ttl_ms));
}

static void memory_deregister(struct mc_registry *r, const struct mc_service *svc,
                              mc_registry_done_cb done, void *ctx)
{
    done(ctx, mc_registry_view_remove(r, svc));
}

/* Nothing to connect to and no private state: init, start, close and state are absent. */
const struct mc_registry_ops mc_registry_memory_ops = {
    .name = "memory",
    .register_service = memory_register,
    .deregister_service = memory_deregister,
};
