/* go-micro API path rules: path -> (service, method) and path -> service. */
#include "rpc/route.h"

#include <string.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/error.h"

struct seg {
    const char *p;
    size_t n;
};

/* Segments kept on the stack: a longer path takes one heap array (rare: a path of over 32
 * bytes with over 16 segments). */
#define SEGS_INLINE 16

/* Splits the path part of the target into cleaned segments (no empty, ".", or ".." ones) and
 * returns how many there are; the first min(count, cap) are stored in segs[]. A segment past
 * cap is counted but not stored: a ".." only ever pops the last one, so the stored ones stay
 * exactly the cleaned path's first cap segments. */
static size_t split_path_into(const char *path, size_t len, struct seg *segs, size_t cap)
{
    const char *q = memchr(path, '?', len);
    if (q)
        len = (size_t)(q - path);
    q = memchr(path, '#', len);
    if (q)
        len = (size_t)(q - path);
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        const char *slash = memchr(path + i, '/', len - i);
        size_t j = slash ? (size_t)(slash - path) : len;
        struct seg s = {path + i, j - i};
        if (s.n == 2 && s.p[0] == '.' && s.p[1] == '.') {
            if (k)
                k--;
        } else if (s.n && !(s.n == 1 && s.p[0] == '.')) {
            if (k < cap)
                segs[k] = s;
            k++;
        }
        i = j + 1;
    }
    return k;
}

/* Every segment: into stack[SEGS_INLINE] when they fit, else a new array (*heap, which the
 * caller frees; NULL otherwise). */
static size_t split_path(const char *path, size_t len, struct seg *stack, struct seg **segs,
                         struct seg **heap)
{
    *heap = NULL;
    *segs = stack;
    if (len / 2 + 1 <= SEGS_INLINE)
        return split_path_into(path, len, stack, SEGS_INLINE);
    *heap = mc_malloc((len / 2 + 1) * sizeof **heap);
    *segs = *heap;
    return split_path_into(path, len, *heap, len / 2 + 1);
}

/* go-micro's versionRe: ^v[0-9]+$ */
static int is_version(struct seg s)
{
    if (s.n < 2 || s.p[0] != 'v')
        return 0;
    for (size_t i = 1; i < s.n; i++)
        if (s.p[i] < '0' || s.p[i] > '9')
            return 0;
    return 1;
}

static int is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* go-micro's toCamel: split on '-', strings.Title each word, join. Title capitalises a letter
 * that follows a separator (ASCII other than letters, digits and '_'). Returns bytes added. */
static size_t append_camel(struct mc_buf *b, struct seg s)
{
    size_t before = b->len;
    int at_start = 1;
    for (size_t i = 0; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c == '-') {
            at_start = 1;
            continue;
        }
        char out = (char)(at_start && c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
        mc_buf_append(b, &out, 1);
        at_start = c < 0x80 && !is_alnum(c) && c != '_';
    }
    return b->len - before;
}

static void append_service(struct mc_buf *b, const char *ns, const struct seg *segs, size_t n)
{
    mc_buf_append_str(b, ns);
    for (size_t i = 0; i < n; i++) {
        if (b->len)
            mc_buf_append(b, ".", 1);
        mc_buf_append(b, segs[i].p, segs[i].n);
    }
}

int mc_route_path_to_call(const char *path, size_t len, const char *namespace_, char **service_out,
                          char **method_out)
{
    *service_out = NULL;
    *method_out = NULL;
    struct seg stack[SEGS_INLINE], *segs, *heap;
    size_t k = split_path(path, len, stack, &segs, &heap);
    if (k == 0) {
        mc_free(heap);
        return MC_ENOTFOUND;
    }
    size_t svc_n, first_method;
    if (k <= 2) {
        svc_n = 1;
        first_method = 0;
    } else if (k == 3 && is_version(segs[0])) {
        svc_n = 2;
        first_method = 1;
    } else {
        svc_n = k - 2;
        first_method = k - 2;
    }
    struct mc_buf svc, method;
    mc_buf_init(&svc);
    mc_buf_init(&method);
    append_service(&svc, namespace_, segs, svc_n);
    int ok = 1;
    for (size_t i = first_method; i < k; i++) {
        if (i > first_method)
            mc_buf_append(&method, ".", 1);
        ok &= append_camel(&method, segs[i]) > 0;
    }
    if (k == 1)
        mc_buf_append_str(&method, ".Call"); /* /foo calls Foo.Call, the default handler */
    mc_free(heap);
    if (!ok) {
        mc_buf_close(&svc);
        mc_buf_close(&method);
        return MC_ENOTFOUND;
    }
    *service_out = mc_buf_steal(&svc, NULL);
    *method_out = mc_buf_steal(&method, NULL);
    return 0;
}

/* go-micro's proxyRe: ^[a-zA-Z0-9]+(-[a-zA-Z0-9]+)*$ */
static int is_proxy_name(struct seg s)
{
    if (s.n == 0 || s.p[0] == '-' || s.p[s.n - 1] == '-')
        return 0;
    for (size_t i = 0; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (!is_alnum(c) && !(c == '-' && s.p[i - 1] != '-'))
            return 0;
    }
    return 1;
}

/* Copies src[0..n) into out at *at, as far as cap allows; *at counts every byte. */
static void put(char *out, size_t cap, size_t *at, const char *src, size_t n)
{
    if (*at < cap)
        memcpy(out + *at, src, n < cap - *at ? n : cap - *at);
    *at += n;
}

int mc_route_service_into(const char *path, size_t len, const char *namespace_, char *out,
                          size_t cap, size_t *need)
{
    /* Only the first two cleaned segments matter: <name> or <vN>/<name>. */
    struct seg segs[2];
    size_t k = split_path_into(path, len, segs, 2);
    size_t n = k >= 2 && is_version(segs[0]) ? 2 : 1;
    if (k == 0 || !is_proxy_name(segs[n - 1]))
        return MC_ENOTFOUND;
    size_t at = 0, nsl = strlen(namespace_);
    put(out, cap, &at, namespace_, nsl);
    for (size_t i = 0; i < n; i++) {
        if (at)
            put(out, cap, &at, ".", 1);
        put(out, cap, &at, segs[i].p, segs[i].n);
    }
    *need = at + 1;
    if (at >= cap)
        return MC_ETOOBIG;
    out[at] = '\0';
    return 0;
}

char *mc_route_service_in(const char *path, size_t len, const char *namespace_, char *buf,
                          size_t cap)
{
    size_t need;
    int rc = mc_route_service_into(path, len, namespace_, buf, cap, &need);
    if (rc == MC_ENOTFOUND)
        return NULL;
    if (rc == 0)
        return buf;
    char *s = mc_malloc(need);
    mc_route_service_into(path, len, namespace_, s, need, &need);
    return s;
}

int mc_route_path_to_service(const char *path, size_t len, const char *namespace_,
                             char **service_out)
{
    *service_out = mc_route_service_in(path, len, namespace_, NULL, 0);
    return *service_out ? 0 : MC_ENOTFOUND;
}
