/* Node choice, attempts, balancer accounting, the retry rule and the final error, once. */
#include "upstream/upstream.h"

#include <stdio.h>
#include <string.h>

#include "util/alloc.h"
#include "util/error.h"
#include "util/units.h"

#define MAX_VERSIONS 32

/* The address list of one service as the registry last showed it, kept until the view
 * changes (or one of its nodes expires), so a call costs no walk over the nodes: a service
 * with 10,000 nodes is picked from as fast as one with 3. */
struct address_list {
    char *name;           /* NULL: an empty slot */
    uint64_t generation;  /* the registry's, when read */
    uint64_t valid_until; /* the earliest expiry among its nodes, 0: none */
    uint64_t id;          /* names this list to the balancer (mc_lb_pick_list) */
    struct mc_buf text;   /* the "host:port" strings, NUL-terminated, one after another */
    size_t *offsets;
    const char **addresses;
    size_t count, cap;
};

struct mc_upstream {
    uv_loop_t *loop;
    struct mc_registry *registry;
    struct mc_lb *lb;
    struct mc_upstream_config config;
    struct mc_log_limit log_limit; /* retried and failed calls, every caller together */
    struct address_list lists[MC_UPSTREAM_LIST_CACHE];
    size_t next_slot; /* the slot a new service's list replaces (round robin) */
    uint64_t last_list_id;
};

struct mc_upstream *mc_upstream_new(uv_loop_t *loop, struct mc_registry *registry, struct mc_lb *lb,
                                    const struct mc_upstream_config *config)
{
    struct mc_upstream *up = mc_calloc(1, sizeof *up);
    up->loop = loop;
    up->registry = registry;
    up->lb = lb;
    up->config = *config;
    for (size_t i = 0; i < MC_UPSTREAM_LIST_CACHE; i++)
        mc_buf_init(&up->lists[i].text);
    return up;
}

void mc_upstream_free(struct mc_upstream *up)
{
    if (!up)
        return;
    for (size_t i = 0; i < MC_UPSTREAM_LIST_CACHE; i++) {
        struct address_list *l = &up->lists[i];
        mc_free(l->name);
        mc_buf_close(&l->text);
        mc_free(l->offsets);
        mc_free(l->addresses);
    }
    mc_free(up);
}

/* "host:port", "[v6]:port"; an empty host means this machine. */
static void append_node_address(struct mc_buf *out, const struct mc_node *n)
{
    int v6 = strchr(n->address, ':') != NULL;
    if (v6)
        mc_buf_append(out, "[", 1);
    mc_buf_append_str(out, n->address[0] ? n->address : "127.0.0.1");
    mc_buf_append_str(out, v6 ? "]:" : ":");
    mc_buf_append_uint(out, (unsigned)n->port);
    mc_buf_append(out, "", 1);
}

/* Reads name's live nodes from the registry into l. */
static void address_list_fill(struct mc_upstream *up, struct address_list *l, const char *name)
{
    const struct mc_service *versions[MAX_VERSIONS];
    l->generation = mc_registry_generation(up->registry);
    size_t nv = mc_registry_lookup(up->registry, name, versions, MAX_VERSIONS);
    size_t total = 0;
    for (size_t i = 0; i < nv; i++)
        total += versions[i]->node_count;
    if (total > l->cap) {
        l->cap = total;
        l->offsets = mc_realloc(l->offsets, total * sizeof *l->offsets);
        l->addresses = mc_realloc(l->addresses, total * sizeof *l->addresses);
    }
    mc_buf_reset(&l->text);
    size_t k = 0;
    l->valid_until = 0;
    for (size_t i = 0; i < nv; i++) {
        for (size_t j = 0; j < versions[i]->node_count; j++) {
            const struct mc_node *n = &versions[i]->nodes[j];
            if (n->expires_at_ms && (l->valid_until == 0 || n->expires_at_ms < l->valid_until))
                l->valid_until = n->expires_at_ms;
            l->offsets[k++] = l->text.len;
            append_node_address(&l->text, n);
        }
    }
    /* Offsets first, pointers last: the text may move while it grows. */
    for (size_t i = 0; i < k; i++)
        l->addresses[i] = l->text.data + l->offsets[i];
    l->count = k;
    l->id = ++up->last_list_id;
}

const char *const *mc_upstream_addresses(struct mc_upstream *up, const char *name, size_t *count,
                                         uint64_t *list_id)
{
    struct address_list *l = NULL;
    for (size_t i = 0; i < MC_UPSTREAM_LIST_CACHE && !l; i++)
        if (up->lists[i].name && strcmp(up->lists[i].name, name) == 0)
            l = &up->lists[i];
    if (!l) {
        l = &up->lists[up->next_slot];
        up->next_slot = (up->next_slot + 1) % MC_UPSTREAM_LIST_CACHE;
        mc_free(l->name);
        l->name = mc_strdup(name);
        address_list_fill(up, l, name);
    } else if (!mc_registry_read_valid(up->registry, l->generation, l->valid_until)) {
        address_list_fill(up, l, name);
    }
    *count = l->count;
    if (list_id)
        *list_id = l->id;
    return l->addresses;
}

void mc_upstream_try_init(struct mc_upstream_try *t, struct mc_upstream *up, const char *service,
                          const char *method, const char *address, int timeout_status)
{
    *t = (struct mc_upstream_try){
        .up = up,
        .service = service,
        .method = method,
        .address = address && *address ? address : NULL,
        .timeout_status = timeout_status,
        .deadline_ms = uv_now(up->loop) + up->config.request_timeout_ms,
        /* the loop's millisecond clock is too coarse for calls on one host */
        .start_ns = up->config.on_call ? uv_hrtime() : 0,
    };
}

void mc_upstream_done(struct mc_upstream_try *t, int ok)
{
    if (!t->ep)
        return;
    uint64_t now = uv_now(t->up->loop);
    mc_lb_call_done(t->ep, ok, (now - t->attempt_start_ms) * 1000);
    t->ep = NULL;
    t->ok = ok;
}

/* Whether s lives in the try's inline text (not a string of its own to free). */
static int in_text(const struct mc_upstream_try *t, const char *s)
{
    uintptr_t p = (uintptr_t)s, start = (uintptr_t)t->tried_text;
    return p >= start && p - start < sizeof t->tried_text;
}

/* Appends a copy of node to the tried list: inline while there is room, the heap after. */
static const char *tried_add(struct mc_upstream_try *t, const char *node)
{
    size_t n = t->tried_count;
    if (n < MC_UPSTREAM_TRIED_INLINE) {
        t->tried = t->tried_inline;
    } else if (n == MC_UPSTREAM_TRIED_INLINE) {
        const char **heap = mc_malloc((n + 1) * sizeof *heap);
        memcpy(heap, t->tried_inline, n * sizeof *heap);
        t->tried = heap;
    } else {
        t->tried = mc_realloc(t->tried, (n + 1) * sizeof *t->tried);
    }
    size_t len = strlen(node) + 1;
    char *copy;
    if (len <= sizeof t->tried_text - t->tried_text_len) {
        copy = memcpy(t->tried_text + t->tried_text_len, node, len);
        t->tried_text_len += len;
    } else {
        copy = mc_strdup(node);
    }
    t->tried[t->tried_count++] = copy;
    return copy;
}

void mc_upstream_try_close(struct mc_upstream_try *t)
{
    if (t->ep)
        mc_upstream_done(t, 1);
    /* only calls that reached a node: a name nobody registered cannot take a stats slot */
    if (t->start_ns && t->attempts > 0)
        t->up->config.on_call(t->up->config.on_call_ctx, t->service,
                              (uv_hrtime() - t->start_ns) / 1000, t->ok);
    t->start_ns = 0;
    for (size_t i = 0; i < t->tried_count; i++)
        if (!in_text(t, t->tried[i]))
            mc_free((char *)t->tried[i]);
    if (t->tried != t->tried_inline)
        mc_free(t->tried);
    t->tried = NULL;
    t->tried_count = 0;
    t->tried_text_len = 0;
    t->node = NULL;
}

void mc_upstream_log(const struct mc_upstream_try *t, const char *what, const char *why,
                     size_t why_len)
{
    if (!mc_log_limit_take(&t->up->log_limit, uv_now(t->up->loop)))
        return;
    if (t->method)
        mc_log_warn("call %s %s: %s: %.*s", t->service, t->method, what, (int)why_len, why);
    else
        mc_log_warn("proxy %s: %s: %.*s", t->service, what, (int)why_len, why);
}

/* The final error of a call whose last attempt failed with err at the transport: the detail
 * names what was tried and the limit that was hit, so the error says what to look at. */
static int transport_error(struct mc_upstream_try *t, int err, struct mc_buf *detail)
{
    if (err == MC_ETIMEDOUT) {
        char limit[32];
        mc_duration_text(limit, sizeof limit, t->up->config.request_timeout_ms);
        mc_buf_appendf(detail, "request timeout: %s did not answer within --request_timeout=%s",
                       t->service, limit);
        return t->timeout_status;
    }
    mc_buf_appendf(detail, "service %s", t->service);
    for (size_t i = 0; i < t->tried_count; i++)
        mc_buf_appendf(detail, "%s%s", i ? ", " : ": ", t->tried[i]);
    mc_buf_appendf(detail, ": %s", mc_strerror(err));
    /* a refused head (MC_EHEADER) is the caller's value: nothing was sent, a 400 */
    return err == MC_EHEADER ? 400 : 502;
}

int mc_upstream_next(struct mc_upstream_try *t, struct mc_buf *detail)
{
    struct mc_upstream *up = t->up;
    uint64_t now = uv_now(up->loop);
    if (now >= t->deadline_ms)
        return transport_error(t, MC_ETIMEDOUT, detail);
    const char *node;
    if (t->address) {
        node = t->address;
    } else {
        size_t n;
        uint64_t list_id;
        const char *const *addrs = mc_upstream_addresses(up, t->service, &n, &list_id);
        enum mc_lb_status status;
        struct mc_lb_endpoint *ep = mc_lb_pick_list(up->lb, t->service, list_id, addrs, n, t->tried,
                                                    t->tried_count, &status);
        if (!ep) {
            switch (status) {
            case MC_LB_NO_NODES:
                mc_buf_appendf(detail, "service %s: not found", t->service);
                return 404;
            case MC_LB_ALL_EJECTED:
                mc_buf_appendf(detail, "service %s: service unavailable (every node ejected)",
                               t->service);
                return 503;
            default:
                return transport_error(t, t->last_err ? t->last_err : MC_EUNAVAIL, detail);
            }
        }
        mc_lb_call_start(ep);
        t->ep = ep;
        node = mc_lb_endpoint_address(ep);
    }
    t->node = tried_add(t, node);
    t->attempts++;
    t->attempt_start_ms = now;
    return 0;
}

uint64_t mc_upstream_remaining(const struct mc_upstream_try *t)
{
    uint64_t now = uv_now(t->up->loop);
    return t->deadline_ms > now ? t->deadline_ms - now : 1;
}

int mc_upstream_failed(struct mc_upstream_try *t, int err, int retryable, struct mc_buf *detail)
{
    mc_upstream_done(t, err == MC_EHEADER); /* a refused head is no fault of the node */
    t->ok = 0;                              /* but the call got no answer */
    t->last_err = err;
    uint64_t now = uv_now(t->up->loop);
    if (retryable && !t->address && t->attempts <= t->up->config.retries && now < t->deadline_ms) {
        char what[300];
        snprintf(what, sizeof what, "node %s failed, retrying on another node", t->node);
        const char *why = mc_strerror(err);
        mc_upstream_log(t, what, why, strlen(why));
        return 0;
    }
    return transport_error(t, err, detail);
}
