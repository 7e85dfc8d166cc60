/* The embedded registry backend (--registry=memory): the local view is the registry, so writes
 * apply to it at once and TTLs are enforced by mc_registry_expire. */
#include "registry/registry.h"

static int memory_register(struct mc_registry *r, const struct mc_service *svc, uint64_t ttl_ms)
{
    return mc_registry_view_upsert(r, svc, ttl_ms);
}

static int memory_deregister(struct mc_registry *r, const struct mc_service *svc)
{
    return mc_registry_view_remove(r, svc);
}

/* Nothing to connect to and no private state: start and close are absent. */
const struct mc_registry_ops mc_registry_memory_ops = {
    .name = "memory",
    .start = NULL,
    .register_service = memory_register,
    .deregister_service = memory_deregister,
    .close = NULL,
};
