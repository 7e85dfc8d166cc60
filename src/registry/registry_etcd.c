/* placeholder */
#include "registry/registry.h"
#include "util/error.h"
static void w(struct mc_registry *r, const struct mc_service *s, uint64_t t, mc_registry_done_cb d,
              void *c)
{
    (void)r;
    (void)s;
    (void)t;
    d(c, MC_EUNAVAIL);
}
static void dw(struct mc_registry *r, const struct mc_service *s, mc_registry_done_cb d, void *c)
{
    (void)r;
    (void)s;
    d(c, MC_EUNAVAIL);
}
const struct mc_registry_ops mc_registry_etcd_ops = {
    .name = "etcd", .register_service = w, .deregister_service = dw};
